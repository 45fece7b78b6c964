"""`open_corpus`: look at a path, pick the reader for its layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asr.corpora.base import Utterance
from asr.corpora.librispeech import is_librispeech, librispeech_splits, read_librispeech
from asr.corpora.manifest import manifest_files, manifest_media, read_manifest
from asr.corpora.timit import SPLITS as TIMIT_SPLITS
from asr.corpora.timit import find_timit_root, read_timit
from asr.errors import file_error

LAYOUTS_HELP = ("a TIMIT tree (TRAIN/ and TEST/), a LibriSpeech folder (*.trans.txt), "
                "a JSONL manifest or a folder of them, or an IAM tree (ascii/lines.txt)")


@dataclass(frozen=True)
class Corpus:
    """A corpus on disk: its layout, what it holds, and a reader per split.

    ``modality`` is ``audio`` or ``image``; ``default_tokens`` names the token
    set a model for it is trained on (see `asr.tokens.token_set`).
    """

    path: Path
    layout: str
    modality: str
    default_tokens: str
    splits: tuple[str, ...]
    reader: Callable[[Path, str], list[Utterance]]

    def read(self, split: str) -> list[Utterance]:
        return self.reader(self.path, split)


def open_corpus(path: str | Path) -> Corpus:
    """The corpus at `path`, whatever its layout; a `UserError` if none fits."""
    path = Path(path)
    if not path.exists():
        raise file_error(path, "does not exist", f"Give {LAYOUTS_HELP}")
    if path.is_dir() and (path / "ascii" / "lines.txt").exists():
        from asr.corpora.iam import iam_splits, read_iam_split  # noqa: PLC0415 (handwriting only)
        return Corpus(path, "iam", "image", "chars", tuple(iam_splits(path)), read_iam_split)
    if path.suffix == ".jsonl" or (path.is_dir() and manifest_files(path)):
        media = manifest_media(path)
        return Corpus(path, "manifest", media, "speech-chars" if media == "audio" else "chars",
                      tuple(manifest_files(path)), read_manifest)
    if path.is_dir() and find_timit_root(path) is not None:
        return Corpus(path, "timit", "audio", "timit61", TIMIT_SPLITS, read_timit)
    if is_librispeech(path):
        return Corpus(path, "librispeech", "audio", "speech-chars", tuple(librispeech_splits(path)),
                      read_librispeech)
    raise file_error(path, "is not a corpus this toolkit reads", f"Give {LAYOUTS_HELP}")
