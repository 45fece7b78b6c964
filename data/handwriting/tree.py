"""The corpus on disk in the IAM layout: the folder, the index files, and a contact sheet.

Index files follow IAM's formats, so `asr.corpora.iam.read_iam` reads them:
``ascii/lines.txt`` (one row per line: id, segmentation, Otsu grey level, ink
components, bounding box, words joined by '|'), ``ascii/forms.txt``, the split
lists ``trainset.txt`` / ``validationset1.txt`` / ``testset.txt``; besides
them, JSONL image manifests per split and ``writers.txt``. Every file is
written atomically (`asr.atomic`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from asr.atomic import atomic_path, write_text
from asr.corpora.iam import form_of, line_image_path
from asr.errors import UserError
from asr.image import otsu_threshold
from data.handwriting.plan import LineSpec
from data.handwriting.text import ROLES

SPLIT_FILES = {"train": "trainset.txt", "dev": "validationset1.txt", "test": "testset.txt"}
SETTINGS_FILE = "synth_handwriting.json"  # marks a folder as a corpus of ours, and with which settings
GENERATED = ("ascii", "lines", "writers.txt", SETTINGS_FILE, *SPLIT_FILES.values(), *(f"{r}.jsonl" for r in ROLES))

Stats = tuple[int, int, int, int]  # width, height, Otsu grey level, ink components


def prepare_folder(out: Path, settings: dict, overwrite: bool) -> None:
    """Make `out`; a corpus there made with other settings is an error unless `overwrite`."""
    record = out / SETTINGS_FILE
    if record.exists() and not overwrite:
        if json.loads(record.read_text()) != settings:
            raise UserError(
                f"{out}: holds a corpus made with other settings ({record}). "
                "Pass --overwrite to replace it, or choose another --out"
            )
    elif overwrite:
        _remove_generated(out)
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty and holds no synthetic corpus. Choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text(record, json.dumps(settings, indent=1) + "\n")


def _remove_generated(out: Path) -> None:
    """Remove what this generator writes in `out`, and nothing else."""
    for name in GENERATED:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def line_stats(grey: np.ndarray) -> Stats:
    """(width, height, Otsu grey level, connected ink components), as lines.txt records them."""
    level = int(round(otsu_threshold(torch.from_numpy(grey.astype(np.float32))))) if grey.min() < grey.max() else 0
    components = ndimage.label(grey < level)[1]
    return grey.shape[1], grey.shape[0], level, components


def write_png(path: str | os.PathLike, grey: np.ndarray) -> None:
    """`grey` (uint8) as a PNG at `path`, its folders made, atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as temporary:
        Image.fromarray(grey).save(temporary, format="PNG")


def write_index(out: Path, specs: list[LineSpec], stats: list[Stats], hands) -> None:
    """ascii/lines.txt, ascii/forms.txt, the split files, JSONL manifests and writers.txt."""
    (out / "ascii").mkdir(exist_ok=True)
    write_text(out / "ascii" / "lines.txt", _lines_txt(specs, stats))
    write_text(out / "ascii" / "forms.txt", _forms_txt(specs))
    for role, name in SPLIT_FILES.items():
        chosen = [s for s in specs if s.split == role]
        write_text(out / name, "".join(f"{s.id}\n" for s in chosen))
        write_text(out / f"{role}.jsonl", "".join(map(_manifest_row, chosen)))
    write_text(out / "writers.txt", "# writer split font-family debian-package font-files\n" + "".join(
        f"{number:03d} {hand.role} {hand.name} {hand.package} {','.join(Path(f).name for f in fonts)}\n"
        for number, hand, fonts in hands
    ))


def _lines_txt(specs: list[LineSpec], stats: list[Stats]) -> str:
    header = (
        "#--- lines.txt (synthetic, data/synth_handwriting.py) ---\n"
        "# format: s00-000-00 ok 154 19 0 0 1661 89 A|MOVE|to|stop\n"
        "#   id, segmentation (always ok), Otsu grey level, ink components, bounding box x y w h, words\n"
    )
    return header + "".join(
        f"{s.id} ok {level} {components} 0 0 {w} {h} {s.text.replace(' ', '|')}\n"
        for s, (w, h, level, components) in zip(specs, stats)
    )


def _forms_txt(specs: list[LineSpec]) -> str:
    forms: dict[str, list[LineSpec]] = {}
    for spec in specs:
        forms.setdefault(form_of(spec.id), []).append(spec)
    rows = []
    for form, lines in forms.items():
        words = sum(len(s.text.split()) for s in lines)
        rows.append(f"{form} {lines[0].writer} {len(lines)} prt {len(lines)} {len(lines)} {words} {words}\n")
    return "# form writer sentences segmentation lines lines-ok words words-ok\n" + "".join(rows)


def _manifest_row(spec: LineSpec) -> str:
    image = str(line_image_path(".", spec.id))
    return json.dumps({"image": image, "text": spec.text, "id": spec.id, "writer": spec.writer}) + "\n"


def contact_sheet(root: str | os.PathLike, path: str | os.PathLike, per_split: int = 3, height: int = 60) -> None:
    """A PNG of one line by each of the first `per_split` writers of each split, `height` rows each."""
    root = Path(root)
    images = []
    for name in SPLIT_FILES.values():
        first_by_writer = {}
        for line_id in (root / name).read_text().split():
            first_by_writer.setdefault(line_id.split("-")[0], line_id)
        for line_id in list(first_by_writer.values())[:per_split]:
            image = Image.open(line_image_path(root, line_id)).convert("L")
            images.append(image.resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS))
    sheet = Image.new("L", (max(i.width for i in images), len(images) * (height + 6)), 255)
    for k, image in enumerate(images):
        sheet.paste(image, (0, k * (height + 6)))
    with atomic_path(path) as temporary:
        sheet.save(temporary, format="PNG")
