"""How differently two synthesizers label the same sentences, scored as a PER.

The corpus generator takes each engine's own phone labels (flite and festival: the CMU
lexicon; espeak-ng: its own rules), so one word can get other labels from another
engine ("of": flite `ah v`, espeak-ng's British accents `aa v`). A model trained mostly on
one engine's voices learns that engine's conventions; this tool measures how far those
conventions alone can move a PER: the second engine's labels scored against the first's
(39 folded phones, pauses, closures and the glottal stop left out), with the most frequent
confusions.

    python -m data.synth.conventions --sentences 150 --reference flite:kal16 --other espeak:en-US
"""

from __future__ import annotations

import argparse
import collections
import random
from collections.abc import Sequence

import jiwer

from asr.metrics import ErrorCounts
from asr.tokens import fold_phones
from data.synth import espeak, festival, flite
from data.synth.labels import phone_segments
from data.synth.text import load_sentences

ENGINES = {"flite": flite, "festival": festival, "espeak": espeak}


def spoken_phones(engine: str, voice: str, sentences: Sequence[str]) -> list[list[str]]:
    """Each sentence's phones as `engine`'s `voice` labels it, folded to 39, silences left out."""
    module = ENGINES[engine]
    spoken = module.synthesize_batch(voice, [(text, 1.0, 0, 1.0) for text in sentences])
    labels = [[segment.label for segment in phone_segments(s.phones, s.sample_rate, module.PHONE_MAP, voice)]
              for s in spoken]
    return [[p for p in fold_phones(phones) if p != "sil"] for phones in labels]  # pauses and closures


def disagreement(references: Sequence[Sequence[str]], others: Sequence[Sequence[str]]
                 ) -> tuple[ErrorCounts, collections.Counter]:
    """The PER counts of `others` against `references`, and each (reference, other) confusion's
    count ("-" for a phone one side lacks). The counts are the confusions summed: a pair of two
    phones is a substitution, ("x", "-") a deletion, ("-", "x") an insertion."""
    confusions = collections.Counter()
    for reference, other in zip(references, others, strict=True):
        confusions.update(_confusions(reference, other))
    deleted = sum(n for (_, other), n in confusions.items() if other == "-")
    inserted = sum(n for (reference, _), n in confusions.items() if reference == "-")
    substituted = confusions.total() - deleted - inserted
    return ErrorCounts(substituted, deleted, inserted, sum(map(len, references))), confusions


def _confusions(reference: Sequence[str], other: Sequence[str]) -> list[tuple[str, str]]:
    """The (reference, other) pairs the minimal alignment gets wrong."""
    if not reference or not other:  # nothing to align: all deleted, or all inserted
        return [(p, "-") for p in reference] + [("-", p) for p in other]
    pairs = []
    for chunk in jiwer.process_words(" ".join(reference), " ".join(other)).alignments[0]:
        left = reference[chunk.ref_start_idx:chunk.ref_end_idx]
        right = other[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "substitute":
            pairs += zip(left, right)
        elif chunk.type == "delete":
            pairs += [(p, "-") for p in left]
        elif chunk.type == "insert":
            pairs += [("-", p) for p in right]
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=150, help="how many WordNet and KJV sentences")
    parser.add_argument("--seed", type=int, default=0, help="which sentences")
    parser.add_argument("--reference", default="flite:kal16", help="ENGINE:VOICE whose labels are the reference")
    parser.add_argument("--other", default="espeak:en-US", help="ENGINE:VOICE scored against them")
    parser.add_argument("--top", type=int, default=15, help="how many confusions to list")
    args = parser.parse_args(argv)
    sentences = random.Random(args.seed).sample(load_sentences(["wordnet", "bible"]), args.sentences)
    sides = [spoken_phones(*spec.split(":", 1), sentences) for spec in (args.reference, args.other)]
    counts, confusions = disagreement(*sides)
    print(f"{args.other} against {args.reference}, {args.sentences} sentences: {100 * counts.rate:.1f} % "
          f"(S {counts.substitutions}, D {counts.deletions}, I {counts.insertions} of {counts.reference_length})")
    for (reference, other), n in confusions.most_common(args.top):
        print(f"  {reference:>4} -> {other:<4} {n:5d}  {100 * n / counts.reference_length:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
