"""The TIMIT layout: ``<root>/TRAIN|TEST/DR1..DR8/<SPEAKER>/<UTT>.{WAV,PHN,WRD,TXT}``.

Reads the LDC tree as users have it (upper or lower case, possibly one folder
down, e.g. ``TIMIT/`` or ``data/``) with the standard splits of Graves et al.
2013 and Kaldi's timit recipe:

- ``train``: the 462 training speakers, SA sentences excluded (3696 utterances);
- ``dev``: the 50 speakers of Kaldi's ``conf/dev_spk.list`` (400 utterances);
- ``core``: the 24-speaker core test set (192 utterances);
- ``test``: the complete test set without SA (1344 utterances; it contains the
  dev and core speakers, for comparison with papers that report it).

A tree without any of the standard test speakers (the synthesized corpus) takes
its splits from the tree itself. Where its ``DOC/SPKRINFO.TXT`` marks speakers
``DEV`` in the Use column (the generator's held-out development voices), those
are ``dev`` and the other TEST speakers are ``core`` and ``test``; otherwise
``dev`` is every third TEST speaker in sorted order (one of each synthesized
voice's three), ``core`` and ``test`` are the others.

Each utterance carries its speaker's dialect region (the DR folder) and, in a
synthesized tree whose SPKRINFO.TXT header names a ``voice`` column, the voice
that spoke it: evaluation reports error rates per voice or per region.
"""

from __future__ import annotations

from pathlib import Path

from asr.corpora.base import Segment, Utterance
from asr.errors import UserError, file_error

CORE_TEST_SPEAKERS = frozenset(
    "MDAB0 MWBT0 FELC0 MTAS1 MWEW0 FPAS0 MJMP0 MLNT0 FPKT0 MLLL0 MTLS0 FJLM0 "
    "MBPM0 MKLT0 FNLP0 MCMJ0 MJDH0 FMGD0 MGRT0 MNJM0 FDHC0 MJLN0 MPAM0 FMLD0".split()
)

# Kaldi egs/timit/s5/conf/dev_spk.list: 50 further test-set speakers, for early stopping
DEV_SPEAKERS = frozenset(
    "FAKS0 MMDB1 MBDG0 FEDW0 MTDT0 FSEM0 MDVC0 MRJM4 MJSW0 MTEB0 FDAC1 MMDM2 MBWM0 "
    "MGJF0 MTHC0 MBNS0 MERS0 FCAL1 MREB0 MJFC0 FJEM0 MPDF0 MCSH0 MGLB0 MWJG0 MMJR0 "
    "FMAH0 MMWH0 FGJD0 MRJR0 MGWT0 FCMH0 FADG0 MRTK0 FNMR0 MDLS0 FDRW0 FJSJ0 FJMG0 "
    "FMML0 MJAR0 FKMS0 FDMS0 MTAA0 FREW0 MDLF0 MRCS0 MAJC0 MROA0 MRWS1".split()
)

STANDARD_SPEAKERS = CORE_TEST_SPEAKERS | DEV_SPEAKERS  # no synthesized speaker uses these IDs

SPLITS = ("train", "dev", "core", "test")


def find_timit_root(path: Path) -> Path | None:
    """The folder holding TRAIN and TEST (any case), at `path` or up to two levels below."""
    candidates = [path, *sorted(p for p in path.glob("*") if p.is_dir()),
                  *sorted(p for p in path.glob("*/*") if p.is_dir())]
    for candidate in candidates:
        names = {p.name.upper() for p in candidate.iterdir() if p.is_dir()} if candidate.is_dir() else set()
        if {"TRAIN", "TEST"} <= names:
            return candidate
    return None


def _child(folder: Path, name: str) -> Path:
    """`folder/name` matched case-insensitively (LDC discs are upper case, many copies lower)."""
    for child in folder.iterdir():
        if child.name.upper() == name:
            return child
    raise file_error(folder / name, "missing", "A TIMIT tree has TRAIN and TEST folders")


def _read_segments(path: Path) -> tuple[Segment, ...]:
    segments = []
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise file_error(path, f"line {number} is not 'start end label'", "Check the file")
        segments.append(Segment(int(fields[0]), int(fields[1]), fields[2]))
    return tuple(segments)


def _read_text(path: Path) -> str:
    fields = path.read_text(encoding="latin-1").split(maxsplit=2)
    return fields[2].strip() if len(fields) == 3 else ""


def _utterance_files(speaker_dir: Path) -> dict[str, dict[str, Path]]:
    """Utterance name -> {'WAV': path, 'PHN': path, ...}, names upper-cased."""
    files: dict[str, dict[str, Path]] = {}
    for path in speaker_dir.iterdir():
        stem, _, ext = path.name.partition(".")
        if ext.upper() in ("WAV", "PHN", "WRD", "TXT"):
            files.setdefault(stem.upper(), {})[ext.upper()] = path
    return files


def _read_speaker(speaker_dir: Path, with_sa: bool, voices: dict[str, str]) -> list[Utterance]:
    speaker = speaker_dir.name.upper()
    utterances = []
    for name, files in sorted(_utterance_files(speaker_dir).items()):
        if name.startswith("SA") and not with_sa:
            continue
        missing = {"WAV", "PHN"} - files.keys()
        if missing:
            raise file_error(speaker_dir / name, f"has no {' or '.join(sorted(missing))} file",
                             "Every TIMIT utterance needs its .WAV and .PHN")
        utterances.append(Utterance(
            id=f"{speaker}_{name}",
            path=files["WAV"],
            text=_read_text(files["TXT"]) if "TXT" in files else "",
            speaker=speaker,
            phones=_read_segments(files["PHN"]),
            words=_read_segments(files["WRD"]) if "WRD" in files else (),
            voice=voices.get(speaker, ""),
            region=speaker_dir.parent.name.upper(),
        ))
    return utterances


def _speaker_dirs(part_dir: Path) -> list[Path]:
    return sorted((s for dr in part_dir.iterdir() if dr.is_dir() for s in dr.iterdir() if s.is_dir()),
                  key=lambda p: p.name.upper())


def _synthetic_dev(root: Path, speakers: list[str]) -> set[str]:
    """The speakers DOC/SPKRINFO.TXT marks DEV (held-out development voices), if any; else
    every third test speaker in sorted order: the synthesizer makes three test speakers per
    voice with consecutive IDs, so dev gets one of each voice."""
    marked = _speakers_marked(root, "DEV") & set(speakers)
    if marked:
        return marked
    return set(sorted(speakers)[::3]) if len(speakers) > 1 else set()


def _speakers_marked(root: Path, use: str) -> set[str]:
    """IDs whose Use column in DOC/SPKRINFO.TXT is `use`."""
    _, rows = _speaker_info(root)
    return {speaker for speaker, row in rows.items() if len(row) >= 4 and row[3].upper() == use}


def _voices(root: Path) -> dict[str, str]:
    """Speaker ID -> the synthesized voice that speaks it, from the DOC/SPKRINFO.TXT column its header
    names ``voice``; empty for LDC TIMIT, whose fifth column is the recording date."""
    columns, rows = _speaker_info(root)
    if "voice" not in columns:
        return {}
    column = columns.index("voice")
    return {speaker: row[column] for speaker, row in rows.items() if len(row) > column}


def _speaker_info(root: Path) -> tuple[list[str], dict[str, list[str]]]:
    """DOC/SPKRINFO.TXT's column names (lower case, from the last ';' comment line naming an ID column)
    and its rows by upper-cased speaker ID (rows: ID Sex DR Use ...); nothing where the file is missing."""
    info = next((p for p in (root / "DOC" / "SPKRINFO.TXT", root / "doc" / "spkrinfo.txt") if p.is_file()), None)
    if info is None:
        return [], {}
    columns, rows = [], {}
    for line in info.read_text(encoding="latin-1").splitlines():
        fields = line.lstrip(";").split() if line.startswith(";") else line.split()
        names = [f.lower() for f in fields]
        if line.startswith(";") and "id" in names:
            columns = names[names.index("id"):]
        elif not line.startswith(";") and fields:
            rows[fields[0].upper()] = fields
    return columns, rows


def read_timit(path: str | Path, split: str, with_sa: bool = False) -> list[Utterance]:
    """The utterances of one split (`SPLITS`) of a TIMIT-layout tree, sorted by id."""
    if split not in SPLITS:
        raise UserError(f"unknown TIMIT split {split!r}: choose one of {', '.join(SPLITS)}")
    root = find_timit_root(Path(path))
    if root is None:
        raise file_error(path, "is not a TIMIT tree (no TRAIN and TEST folders found)",
                         "Point at the folder that holds TRAIN/ and TEST/")
    part = _child(root, "TRAIN" if split == "train" else "TEST")
    speaker_dirs = _speaker_dirs(part)
    if split != "train":
        names = [d.name.upper() for d in speaker_dirs]
        if STANDARD_SPEAKERS & set(names):
            chosen = {"dev": DEV_SPEAKERS, "core": CORE_TEST_SPEAKERS, "test": set(names)}[split]
        else:
            dev = _synthetic_dev(root, names)
            chosen = dev if split == "dev" else set(names) - dev
        speaker_dirs = [d for d in speaker_dirs if d.name.upper() in chosen]
    voices = _voices(root)
    return [u for d in speaker_dirs for u in _read_speaker(d, with_sa, voices)]
