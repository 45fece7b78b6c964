"""Image augmentation cost: each effect of asr/augment_image.py, the chain and a recipe, against
the front end's frame extraction.

16 line images (the first of a corpus's train.jsonl with --data, else lines drawn with PIL's
default font) go one at a time, as a training data loader would send them, through

    load       load_line_image: reading the PNG (the front end's input when augmenting)
    features   line_frames with recipes/handwriting/lines.yaml's image config: the baseline,
               which an augmented line needs again every epoch
    crop, shear, elastic, stroke, blur, texture, jpeg:
               one effect at probability 1, with the config's default ranges
    chain      every effect at probability 1: the most a config can ask
    recipe     recipes/handwriting/augmented.yaml's augment section

interleaved, several repeats, medians. Line i's generator is utterance_generator(0, 0, i)
in every repeat, so each repeat does the same work. Printed per contender: milliseconds
per line, and the ratio to frame extraction of the same lines.

    python benchmarks/augment_image.py [--data data/generated/synth-iam] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from asr.augment import utterance_generator
from asr.augment_image import ImageAugmenter
from asr.config import AugmentConfig, load_config
from asr.image import line_frames, load_line_image

ROOT = Path(__file__).resolve().parents[1]
EFFECTS = ("crop", "shear", "elastic", "stroke", "blur", "texture", "jpeg")


def lines(data: Path | None, count: int) -> list[torch.Tensor]:
    """`count` ink images (ink 1, paper 0): a corpus's first training lines, or drawn ones."""
    if data is not None:
        rows = (data / "train.jsonl").read_text().splitlines()[:count]
        return [load_line_image(data / json.loads(row)["image"]) for row in rows]
    font = ImageFont.load_default(size=40)
    images = []
    for k in range(count):
        text = f"Line {k}: the quick brown fox jumps over the lazy dog"[: 30 + k]
        image = Image.new("L", (int(font.getlength(text)) + 40, 70), 235)
        ImageDraw.Draw(image).text((20, 12), text, font=font, fill=25)
        images.append(torch.from_numpy(1 - np.asarray(image, dtype=np.float32) / 255))
    return images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a corpus folder with train.jsonl (data.synth_handwriting)")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a loader worker has one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images = lines(args.data, args.count)
    recipe = load_config(ROOT / "recipes/handwriting/augmented.yaml")
    configs = {name: AugmentConfig(**{f"image_{name}_prob": 1.0}) for name in EFFECTS}
    configs["chain"] = AugmentConfig(**{f"image_{name}_prob": 1.0 for name in EFFECTS})
    configs["recipe"] = recipe.augment
    augmenters = {name: ImageAugmenter(config) for name, config in configs.items()}

    def augment(augmenter: ImageAugmenter) -> None:
        for index, image in enumerate(images):
            augmenter.input(image, utterance_generator(0, 0, index))

    contenders = {"features": lambda: [line_frames(image, recipe.features) for image in images]}
    if args.data is not None:
        paths = [args.data / json.loads(row)["image"]
                 for row in (args.data / "train.jsonl").read_text().splitlines()[: args.count]]
        contenders["load"] = lambda: [load_line_image(path) for path in paths]
    contenders |= {name: (lambda a=augmenter: augment(a)) for name, augmenter in augmenters.items()}
    times = {name: [] for name in contenders}
    for run in contenders.values():  # warm up
        run()
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    baseline = statistics.median(times["features"])
    size = statistics.median(image.numel() for image in images)
    print(f"torch threads {torch.get_num_threads()}, {len(images)} lines (median {size / 1e3:.0f} k pixels) one "
          f"at a time, {args.repeats} interleaved repeats, medians")
    print(f"{'':10} {'ms / line':>10} {'x features':>11}")
    for name, samples in times.items():
        seconds = statistics.median(samples)
        print(f"{name:10} {seconds / len(images) * 1e3:>10.2f} {seconds / baseline:>11.2f}")


if __name__ == "__main__":
    main()
