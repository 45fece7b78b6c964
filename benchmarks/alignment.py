"""Alignment accuracy: phone boundaries from CTC forced alignment against the corpus's own.

Each utterance's reference phones are force-aligned to its audio with a trained
phone model (`Transcriber.align`) and every inner boundary is compared with the
one in the .PHN file. The baseline, measured on the same boundaries, spreads the
same phones evenly over the utterance. Printed: the median and mean absolute
error and the share of boundaries within 10, 20 and 50 ms (20 ms is the usual
tolerance for phone alignment).

Run: python benchmarks/alignment.py [--checkpoint checkpoints/synth-small] \
        --data data/generated/synth-timit --split test [--limit 200]
"""

from __future__ import annotations

import argparse
import statistics

from tqdm import tqdm

from asr.corpora import open_corpus
from asr.evaluation import boundary_errors
from asr.pretrained import default_checkpoint
from asr.transcribe import Transcriber


def even_boundary_errors(utterance, rate: int) -> list[float]:
    """The baseline: the phones share the utterance's span equally."""
    phones = utterance.phones
    first, last, n = phones[0].start, phones[-1].end, len(phones)
    return [abs((first + k * (last - first) / n - phones[k].start) / rate) for k in range(1, n)]


def describe(name: str, errors: list[float]) -> str:
    within = "  ".join(f"{sum(e <= ms / 1000 for e in errors) / len(errors):6.1%} <= {ms} ms" for ms in (10, 20, 50))
    return (f"{name:<18} median {1000 * statistics.median(errors):5.1f} ms  "
            f"mean {1000 * statistics.mean(errors):5.1f} ms  {within}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="run folder or .pt file (default: the shipped synth-small, "
                        "or $ASR_CHECKPOINT)")
    parser.add_argument("--data", default="data/generated/synth-timit")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=0, help="the first N utterances only")
    args = parser.parse_args(argv)
    transcriber = Transcriber.from_checkpoint(args.checkpoint or default_checkpoint())
    rate = transcriber.config.features.sample_rate
    utterances = [u for u in open_corpus(args.data).read(args.split) if u.phones]
    utterances = utterances[: args.limit or None]
    ours, even = [], []
    for utterance in tqdm(utterances, desc="aligning", unit="utt"):
        ours += boundary_errors(transcriber, utterance)
        even += even_boundary_errors(utterance, rate)
    print(f"{len(ours)} boundaries in {len(utterances)} utterances of {args.data} ({args.split})")
    print(describe("forced alignment", ours))
    print(describe("even spread", even))
    print(f"mean error ratio (forced / even): {statistics.mean(ours) / statistics.mean(even):.2f}")


if __name__ == "__main__":
    main()
