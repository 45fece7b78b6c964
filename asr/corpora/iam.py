"""Handwritten text lines: the IAM offline database layout, and JSONL image manifests.

IAM (Marti & Bunke 2002, "The IAM-database: an English sentence database for
offline handwriting recognition", IJDAR 5) as distributed:

    <root>/ascii/lines.txt    one line per text line, '#' starts a comment:
        a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from
        (id, segmentation ok/err, grey level, components, bounding box x y w h,
        transcription with '|' between words)
    <root>/ascii/forms.txt    optional: form id then writer id, e.g. "a01-000u 000 ..."
    <root>/lines/a01/a01-000u/a01-000u-00.png

Writer-independent splits come from the files of the "Large Writer Independent
Text Line Recognition Task" (trainset.txt, validationset1.txt, validationset2.txt,
testset.txt: one line id per line), as used by Graves et al. (2009). By default
train = trainset, dev = validationset1, test = testset.

A JSONL image manifest is the layout-free alternative: one
``{"image": "lines/x.png", "text": "..."}`` object per line, paths relative to
the manifest's folder; optional ``"id"`` and ``"writer"``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from asr.corpora.base import Utterance
from asr.errors import UserError, file_error

DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("trainset.txt",),
    "dev": ("validationset1.txt",),
    "test": ("testset.txt",),
}
TASK_FOLDER = "largeWriterIndependentTextLineRecognitionTask"
LAYOUT_HINT = "Point at the IAM folder that holds ascii/lines.txt and lines/<a01>/<a01-000u>/<line>.png"


def form_of(line_id: str) -> str:
    """'a01-000u-00' -> 'a01-000u' (the form, i.e. the page the line was written on)."""
    return line_id.rsplit("-", 1)[0]


def line_image_path(root: str | os.PathLike, line_id: str) -> Path:
    """Where IAM keeps a line's image: lines/<a01>/<a01-000u>/<a01-000u-00>.png."""
    return Path(root) / "lines" / line_id.split("-", 1)[0] / form_of(line_id) / f"{line_id}.png"


def read_lines_txt(path: str | os.PathLike) -> dict[str, tuple[bool, str]]:
    """ascii/lines.txt -> {line id: (segmentation ok, transcription with spaces)}.

    The words stay as IAM tokenises them: punctuation and contractions are words
    of their own ("he 's", "Peers ."), so the text is that, with single spaces.
    """
    lines: dict[str, tuple[bool, str]] = {}
    with open(path, encoding="utf-8") as file:
        for number, raw in enumerate(file, 1):
            raw = raw.rstrip("\r\n")
            if not raw.strip() or raw.startswith("#"):
                continue
            fields = raw.split(" ", 8)
            if len(fields) < 9 or fields[1] not in ("ok", "err"):
                raise file_error(
                    f"{path}:{number}", f"not an IAM lines.txt entry: {raw[:80]!r}",
                    "Each line must read 'id ok|err graylevel components x y w h word|word|...'",
                )
            # Some copies carry the XML entity for the double quote; the text means '"'.
            text = fields[8].replace("&quot;", '"').replace("|", " ")
            lines[fields[0]] = (fields[1] == "ok", " ".join(text.split()))
    return lines


def read_writers(path: str | os.PathLike) -> dict[str, str]:
    """ascii/forms.txt -> {form id: writer id} (empty if the file is absent)."""
    if not os.path.exists(path):
        return {}
    writers = {}
    with open(path, encoding="utf-8") as file:
        for raw in file:
            fields = raw.split()
            if len(fields) >= 2 and not raw.startswith("#"):
                writers[fields[0]] = fields[1]
    return writers


def _split_dir(root: Path, split_dir: str | os.PathLike | None, first_file: str) -> Path:
    if split_dir is not None:
        return Path(split_dir)
    for candidate in (root, root / TASK_FOLDER):
        if (candidate / first_file).exists():
            return candidate
    return root


def read_split_ids(path: Path) -> list[str]:
    """A split file: one line (or form) id per line; blank and '#' lines are skipped."""
    if not path.is_file():
        raise file_error(
            path, "split file not found",
            "Put the IAM 'Large Writer Independent Text Line Recognition Task' files "
            "(trainset.txt, validationset1.txt, validationset2.txt, testset.txt) in that folder, "
            "or pass the folder that holds them (split_dir)",
        )
    with open(path, encoding="utf-8") as file:
        return [s.strip() for s in file if s.strip() and not s.startswith("#")]


def read_iam(
    root: str | os.PathLike,
    split_dir: str | os.PathLike | None = None,
    *,
    splits: Mapping[str, Sequence[str]] = DEFAULT_SPLITS,
    skip_err: bool = False,
    missing: str = "error",
) -> dict[str, list[Utterance]]:
    """The IAM text lines of each split, as `Utterance`s (path = the line's PNG).

    root: the IAM folder (ascii/lines.txt, lines/...).
    split_dir: the folder with the split files; by default `root`, else
        `root/largeWriterIndependentTextLineRecognitionTask`.
    splits: split name -> the split files whose ids it takes (e.g. add
        ``validationset2.txt`` to train). An id may name a line or a whole form.
    skip_err: drop lines whose segmentation lines.txt marks 'err'.
    missing: ``error`` (default) or ``skip`` (with a warning) for listed lines
        that lines.txt lacks or whose image is absent.

    The text is the transcription with spaces for '|'; the speaker is the writer
    from ascii/forms.txt when present, else the form id.
    """
    if missing not in ("error", "skip"):
        raise UserError(f"missing must be 'error' or 'skip', not {missing!r}")
    root = Path(root)
    lines_txt = root / "ascii" / "lines.txt"
    if not lines_txt.is_file():
        raise file_error(lines_txt, "not found: this is not an IAM folder", LAYOUT_HINT)
    lines = read_lines_txt(lines_txt)
    writers = read_writers(root / "ascii" / "forms.txt")
    forms: dict[str, list[str]] = {}
    for line_id in lines:
        forms.setdefault(form_of(line_id), []).append(line_id)
    first_file = next((name for files in splits.values() for name in files), "trainset.txt")
    folder = _split_dir(root, split_dir, first_file)

    corpus: dict[str, list[Utterance]] = {}
    owner: dict[str, str] = {}
    absent: list[str] = []
    for split, files in splits.items():
        corpus[split] = []
        for name in files:
            for entry in read_split_ids(folder / name):
                for line_id in forms.get(entry, [entry]):
                    if owner.setdefault(line_id, split) != split:
                        raise file_error(
                            folder / name, f"line {line_id} is also in the {owner[line_id]} split",
                            "Writer-independent splits must not share lines: check the split files",
                        )
                    ok, text = lines.get(line_id, (True, None))
                    path = line_image_path(root, line_id)
                    if text is None or not path.is_file():
                        absent.append(f"{line_id} ({'not in lines.txt' if text is None else f'no image {path}'})")
                    elif ok or not skip_err:
                        speaker = writers.get(form_of(line_id), form_of(line_id))
                        corpus[split].append(Utterance(line_id, path, text, speaker))
    if absent:
        _report_absent(root, absent, missing)
    return corpus


def _report_absent(root: Path, absent: list[str], missing: str) -> None:
    shown = "; ".join(absent[:5]) + ("; ..." if len(absent) > 5 else "")
    message = f"{len(absent)} line(s) listed in the split files are missing: {shown}"
    if missing == "skip":
        warnings.warn(f"{root}: {message}. They are left out", stacklevel=3)
        return
    raise file_error(root, message, "Extract lines.tgz into lines/ (and ascii.tgz into ascii/), or pass missing='skip'")


def iam_splits(root: str | os.PathLike) -> list[str]:
    """The splits `read_iam_split` offers: those of `DEFAULT_SPLITS` whose files exist."""
    folder = _split_dir(Path(root), None, "trainset.txt")
    return [split for split, files in DEFAULT_SPLITS.items() if all((folder / f).is_file() for f in files)]


def read_iam_split(root: str | os.PathLike, split: str) -> list[Utterance]:
    """One split of an IAM tree (the reader `open_corpus` uses)."""
    if split not in DEFAULT_SPLITS:
        raise UserError(f"unknown IAM split {split!r}: choose one of {', '.join(DEFAULT_SPLITS)}")
    return read_iam(root, splits={split: DEFAULT_SPLITS[split]})[split]
