"""The corpus on disk, in TIMIT's layout: write utterances atomically, check the whole tree.

``<root>/TRAIN|TEST/DR<n>/<SPEAKER>/<UTT>.{WAV,PHN,WRD,TXT}``, upper case as on
the LDC CD. WAV: NIST SPHERE, 16 kHz, 16-bit PCM. PHN and WRD: ``start end
label`` per line, in samples; TXT: ``0 <samples> <text>``. An utterance whose
synthesizer gave no word timings has no WRD file. Each file is written to a
temporary name and renamed, TXT last, and an utterance counts as written only
when its TXT exists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from asr.atomic import atomic_path, write_text
from asr.corpora.base import Segment
from data.synth.labels import CorpusError, check_utterance
from data.synth.render import SAMPLE_RATE
from data.synth.text import sentence_key

EXTENSIONS = (".WAV", ".PHN", ".WRD", ".TXT")  # TXT last: written means all exist
REQUIRED = (".WAV", ".PHN", ".TXT")  # WRD only where the synthesizer gave word timings
SPLITS = ("TRAIN", "TEST")


def write_utterance(
    stem: Path, audio: np.ndarray, phones: Sequence[Segment], words: Sequence[Segment] | None, text: str
) -> None:
    """`stem`.WAV/.PHN/.WRD/.TXT (no WRD if `words` is None), each written to a temporary
    file and renamed into place."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    wav = stem.with_suffix(".WAV")
    with atomic_path(wav) as temporary:
        soundfile.write(temporary, audio, SAMPLE_RATE, format="NIST", subtype="PCM_16")
    write_text(stem.with_suffix(".PHN"), _segment_lines(phones))
    if words is not None:
        write_text(stem.with_suffix(".WRD"), _segment_lines(words))
    write_text(stem.with_suffix(".TXT"), f"0 {len(audio)} {text}\n")


def is_written(stem: Path) -> bool:
    return all(stem.with_suffix(ext).is_file() for ext in REQUIRED)


def _segment_lines(segments: Sequence[Segment]) -> str:
    return "".join(f"{s.start} {s.end} {s.label}\n" for s in segments)


def _read_segments(path: Path) -> list[Segment]:
    segments = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if len(fields) != 3:
            raise CorpusError(f"{path}:{number}: expected 'start end label', got {line!r}")
        segments.append(Segment(int(fields[0]), int(fields[1]), fields[2]))
    return segments


@dataclass
class TreeSummary:
    """What a checked tree holds."""

    utterances: dict[str, int] = field(default_factory=dict)  # by split
    speakers: dict[str, list[str]] = field(default_factory=dict)  # by split
    seconds: float = 0.0
    phones: dict[str, int] = field(default_factory=dict)  # label counts


def check_utterance_files(stem: Path) -> tuple[int, list[Segment], str]:
    """Check one utterance's four files; returns (samples, phones, text)."""
    wav = stem.with_suffix(".WAV")
    info = soundfile.info(wav)
    if (info.format, info.subtype, info.samplerate, info.channels) != ("NIST", "PCM_16", SAMPLE_RATE, 1):
        raise CorpusError(
            f"{wav}: {info.format} {info.subtype} {info.samplerate} Hz x{info.channels}, "
            f"not NIST PCM_16 {SAMPLE_RATE} Hz mono"
        )
    start, end, text = stem.with_suffix(".TXT").read_text().rstrip("\n").split(" ", 2)
    if (int(start), int(end)) != (0, info.frames):
        raise CorpusError(f"{stem}.TXT: spans {start}-{end}, the audio 0-{info.frames}")
    phones = _read_segments(stem.with_suffix(".PHN"))
    wrd = stem.with_suffix(".WRD")
    words = _read_segments(wrd) if wrd.is_file() else None
    check_utterance(info.frames, phones, words, text, str(stem))
    return info.frames, phones, text


def check_tree(root: Path) -> TreeSummary:
    """Check every utterance under `root` and TIMIT's split rules; raise `CorpusError` if broken.

    Rules: the layout and file formats; labels valid and covering the audio;
    no speaker in both TRAIN and TEST; no SI/SX sentence in both.
    """
    summary = TreeSummary()
    sentences: dict[str, set[str]] = {split: set() for split in SPLITS}
    phone_counts: dict[str, int] = defaultdict(int)
    folders = []
    for split in SPLITS:
        speakers = sorted(p for p in (root / split).glob("DR[1-8]/*") if p.is_dir())
        if not speakers:
            raise CorpusError(f"{root / split}: no speaker folders DR<n>/<SPEAKER>")
        summary.speakers[split] = [p.name for p in speakers]
        summary.utterances[split] = 0
        folders += [(split, folder) for folder in speakers]
    for split, folder in tqdm(folders, desc="checking", unit="speaker", leave=False):
        files = sorted(p.name for p in folder.iterdir())
        stems = sorted({name.rsplit(".", 1)[0] for name in files})
        for stem in stems:
            missing = [ext for ext in REQUIRED if stem + ext not in files]
            if missing:
                raise CorpusError(f"{folder / stem}: no {', '.join(missing)} file")
            samples, phones, text = check_utterance_files(folder / stem)
            summary.seconds += samples / SAMPLE_RATE
            summary.utterances[split] += 1
            for seg in phones:
                phone_counts[seg.label] += 1
            if not stem.startswith("SA"):
                sentences[split].add(sentence_key(text))
    shared_speakers = set(summary.speakers["TRAIN"]) & set(summary.speakers["TEST"])
    if shared_speakers:
        raise CorpusError(f"{root}: speakers in both TRAIN and TEST: {sorted(shared_speakers)}")
    shared_sentences = sentences["TRAIN"] & sentences["TEST"]
    if shared_sentences:
        raise CorpusError(f"{root}: SI/SX sentences in both TRAIN and TEST: {sorted(shared_sentences)[:3]}")
    summary.phones = dict(sorted(phone_counts.items()))
    return summary
