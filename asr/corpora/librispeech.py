"""The LibriSpeech layout: ``<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac``.

Each chapter folder holds ``<speaker>-<chapter>.trans.txt`` with lines
``<utterance-id> TRANSCRIPT``. `root` is either the ``LibriSpeech`` folder
(holding subsets such as ``train-clean-100``, ``dev-clean``, ``test-clean``) or
one subset folder. Splits are the subset names, plus ``train`` (every
``train-*`` subset present), ``dev`` (dev-clean) and ``test`` (test-clean).
"""

from __future__ import annotations

from pathlib import Path

from asr.corpora.base import Utterance
from asr.errors import UserError, file_error

ALIASES = {"dev": ("dev-clean",), "test": ("test-clean",)}


def is_librispeech(path: Path) -> bool:
    return path.is_dir() and next(path.glob("**/*.trans.txt"), None) is not None


def _subsets(root: Path) -> dict[str, Path]:
    """Subset name -> folder; a root that is itself a subset maps its own name."""
    if next(root.glob("*/*/*.trans.txt"), None) is not None:
        return {root.name: root}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and next(p.glob("*/*/*.trans.txt"), None)}


def _read_transcripts(trans: Path) -> list[Utterance]:
    utterances = []
    for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, text = line.partition(" ")
        audio = trans.parent / f"{utt_id}.flac"
        if not audio.exists():
            raise file_error(audio, f"is listed in {trans.name} line {number} but missing",
                             "Restore the file or remove its line")
        utterances.append(Utterance(id=utt_id, path=audio, text=text.strip(), speaker=utt_id.split("-")[0]))
    return utterances


def librispeech_splits(path: str | Path) -> list[str]:
    subsets = list(_subsets(Path(path)))
    aliases = [a for a, names in ALIASES.items() if any(n in subsets for n in names)]
    return subsets + aliases + (["train"] if any(s.startswith("train") for s in subsets) else [])


def read_librispeech(path: str | Path, split: str) -> list[Utterance]:
    """The utterances of one subset (or alias: train/dev/test), sorted by id."""
    subsets = _subsets(Path(path))
    if split == "train":
        names = [s for s in subsets if s.startswith("train")]
    else:
        names = [s for s in ALIASES.get(split, (split,)) if s in subsets]
    if not names:
        raise UserError(f"{path}: no LibriSpeech subset for split {split!r}; "
                        f"available: {', '.join(librispeech_splits(path)) or 'none'}")
    utterances = [u for name in names for trans in sorted(subsets[name].glob("*/*/*.trans.txt"))
                  for u in _read_transcripts(trans)]
    return sorted(utterances, key=lambda u: u.id)
