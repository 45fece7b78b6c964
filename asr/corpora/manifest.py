"""JSONL manifests for users' own data: one JSON object per line.

Audio: ``{"audio": "path/to/file.wav", "text": "the transcript"}``; images (text
lines): ``{"image": "path/to/line.png", "text": "..."}``. Optional keys: ``id``
(default: the file name without suffix; ids must be unique), ``speaker`` (or
``writer`` for handwriting). Relative paths are relative to the manifest's folder. A manifest
file is one split (named by its stem: ``train.jsonl`` is ``train``); a folder of
manifests gives one split per ``*.jsonl`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

from asr.corpora.base import Utterance
from asr.errors import UserError, file_error

MEDIA_KEYS = ("audio", "image")


def manifest_files(path: Path) -> dict[str, Path]:
    """Split name -> manifest file, for a manifest file or a folder of them."""
    if path.is_file():
        return {path.stem: path}
    return {p.stem: p for p in sorted(path.glob("*.jsonl"))}


def _parse_line(manifest: Path, number: int, line: str) -> Utterance:
    where = f"{manifest} line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: not valid JSON ({error.msg}). Each line must be one JSON object") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: not a JSON object. Each line must be like {{\"audio\": PATH, \"text\": TEXT}}")
    media = [k for k in MEDIA_KEYS if k in record]
    if len(media) != 1 or "text" not in record:
        raise UserError(f"{where}: needs \"text\" and one of \"audio\" or \"image\"; it has {sorted(record)}")
    if not isinstance(record["text"], str):
        raise UserError(f"{where}: \"text\" is {json.dumps(record['text'])}, not a string. Give the transcript "
                        "as a JSON string (\"\" if there is none: training sets such lines aside)")
    path = manifest.parent / str(record[media[0]])
    if not path.exists():
        raise file_error(path, f"listed in {where} does not exist", "Fix the path (relative to the manifest's folder)")
    return Utterance(id=str(record.get("id", path.stem)), path=path, text=record["text"],
                     speaker=str(record.get("speaker", record.get("writer", ""))), source=where)


def read_manifest(path: str | Path, split: str | None = None) -> list[Utterance]:
    """The utterances of a manifest file, or of `split` in a folder of manifests."""
    files = manifest_files(Path(path))
    if split is None and len(files) == 1:
        split = next(iter(files))
    if split not in files:
        raise UserError(f"{path}: no manifest for split {split!r}; available: {', '.join(files) or 'none'}")
    manifest = files[split]
    lines = manifest.read_text(encoding="utf-8").splitlines()
    utterances, first_seen = [], {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        utterance = _parse_line(manifest, number, line)
        if utterance.id in first_seen:
            raise UserError(f"{manifest} line {number}: id {utterance.id!r} repeats line {first_seen[utterance.id]}. "
                            "Give each entry a unique \"id\"")
        first_seen[utterance.id] = number
        utterances.append(utterance)
    if not utterances:
        raise file_error(manifest, "holds no utterances", "Add one JSON object per line")
    return utterances


def manifest_media(path: str | Path) -> str:
    """'audio' or 'image': what the first record of the first manifest points at."""
    for manifest in manifest_files(Path(path)).values():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                return "image" if "image" in record else "audio"
    return "audio"
