"""Carry a TIMIT-layout corpus to another machine small: pack its audio as Ogg Opus, unpack it
back to NIST SPHERE .WAV files there.

A GPU machine that cannot run the speech synthesizers (or is lent for minutes, with a cap
on what travels) can still train on the corpus: at Opus's lowest bitrate (about 9 kbit/s,
its speech mode) ten hours of audio are about 40 MB instead of 1.1 GB. The codec's loss
is slight next to the augmentation's noise, reverberation and telephone channel; decode
and evaluate on the original files.

    python recipes/english/pack_corpus.py pack ~/corpora/english-v2 .gpu/english-v2
    python recipes/english/pack_corpus.py unpack .gpu/english-v2 /tmp/english-v2   # there
"""

from __future__ import annotations

import argparse
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

COMPRESSION = 1.0  # soundfile's Opus compression level: 1.0 is the lowest bitrate
TEXT = "TEXT.tar.gz"  # the packed corpus's other files (transcripts, DOC/), a fifth of their size


def _pack_one(paths: tuple[Path, Path]) -> None:
    source, target = paths
    audio, rate = sf.read(source, dtype="float32")
    sf.write(target, audio, rate, format="OGG", subtype="OPUS", compression_level=COMPRESSION)


def _unpack_one(paths: tuple[Path, Path]) -> None:
    source, target = paths
    audio, rate = sf.read(source, dtype="float32")
    sf.write(target, audio, rate, format="NIST", subtype="PCM_16")


def _audio_pairs(source_root: Path, target_root: Path, pattern: str, suffix: str) -> list[tuple[Path, Path]]:
    pairs = []
    for path in sorted(source_root.rglob(pattern)):
        target = (target_root / path.relative_to(source_root)).with_suffix(suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        pairs.append((path, target))
    return pairs


def pack(source: Path, target: Path, jobs: int) -> int:
    pairs = _audio_pairs(source, target, "*.WAV", ".ogg")
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_pack_one, pairs, chunksize=64))
    with tarfile.open(target / TEXT, "w:gz") as text:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.match("*.WAV"):
                text.add(path, arcname=str(path.relative_to(source)))
    return len(pairs)


def unpack(source: Path, target: Path, jobs: int) -> int:
    pairs = _audio_pairs(source, target, "*.ogg", ".WAV")
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_unpack_one, pairs, chunksize=64))
    with tarfile.open(source / TEXT) as text:
        text.extractall(target, filter="data")
    return len(pairs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    count = (pack if args.action == "pack" else unpack)(args.source, args.target, args.jobs)
    size = sum(p.stat().st_size for p in args.target.rglob("*") if p.is_file())
    print(f"{args.action}ed {count} audio files into {args.target} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
