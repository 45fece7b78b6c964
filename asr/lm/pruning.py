"""Pruning a backoff n-gram so that it ships small: count cut-offs, then backoff weights recomputed.

An n-gram of order 2 or more seen at most ``threshold[k]`` times in the training
text is dropped (the thresholds of KenLM's ``lmplz --prune``, on raw counts).
What stays keeps its probability; the mass of what was dropped goes back to the
lower order through the context's backoff weight, recomputed so that every
context's distribution sums to one again, as SRILM's ``ngram -prune`` does after
pruning (Stolcke 1998, "Entropy-based pruning of backoff language models"):

    bow(h) = (1 - sum_{w: h w kept} P(w | h)) / (1 - sum_{w: h w kept} P(w | h[1:]))

An n-gram that is the context (prefix) or the suffix of a kept higher-order
n-gram is kept too, so that every backoff chain the ARPA format needs stays whole.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from asr.errors import UserError
from asr.lm.arpa import LOG10_ZERO, NGramLM, NGramTable


def prune_thresholds(thresholds: Sequence[int], order: int) -> list[int]:
    """One threshold per order from ``thresholds`` (unigrams first; the last one repeats, as in KenLM)."""
    thresholds = list(thresholds)
    if not thresholds:
        return [0] * order
    if any(t < 0 for t in thresholds):
        raise UserError(f"--prune {' '.join(map(str, thresholds))}: thresholds are counts, give 0 or more")
    if thresholds[0] != 0:
        raise UserError(f"--prune {' '.join(map(str, thresholds))}: unigrams cannot be pruned (every word needs "
                        f"a probability); start with 0, e.g. --prune 0 1 1")
    if len(thresholds) > order:
        raise UserError(f"--prune {' '.join(map(str, thresholds))}: {len(thresholds)} thresholds for an "
                        f"{order}-gram model; give at most {order}")
    return thresholds + [thresholds[-1]] * (order - len(thresholds))


def prune_by_count(ngrams: NGramTable, counts: Sequence[Mapping[tuple[str, ...], int]],
                   thresholds: Sequence[int]) -> NGramTable:
    """The n-grams of order k >= 2 seen more than ``thresholds[k - 1]`` times (`prune_thresholds`),
    and those other kept n-grams need; backoff weights recomputed (`recompute_backoffs`)."""
    kept = [dict(level) for level in ngrams]
    needed: set[tuple[str, ...]] = set()
    for k in range(len(ngrams), 1, -1):  # top down: a kept n-gram's prefix and suffix stay
        kept[k - 1] = {gram: entry for gram, entry in ngrams[k - 1].items()
                       if counts[k - 1].get(gram, 0) > thresholds[k - 1] or gram in needed}
        needed = {gram[:-1] for gram in kept[k - 1]} | {gram[1:] for gram in kept[k - 1]}
    recompute_backoffs(kept)
    return kept


def recompute_backoffs(ngrams: NGramTable) -> None:
    """Set every context's backoff weight so that P(. | h) sums to one (the module's equation), in place.

    Orders go up from bigrams, so the lower distribution each weight divides by is already final.
    """
    lm = NGramLM(ngrams)
    for k in range(2, len(ngrams) + 1):
        followers: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for gram in ngrams[k - 1]:
            followers[gram[:-1]].append(gram[-1])
        for context, (log_p, _) in ngrams[k - 2].items():
            words = followers.get(context, [])
            kept = math.fsum(10 ** ngrams[k - 1][context + (w,)][0] for w in words)
            lower = math.fsum(10 ** lm.log10_prob(w, context[1:]) for w in words)
            ngrams[k - 2][context] = (log_p, _log10_ratio(1.0 - kept, 1.0 - lower))


def _log10_ratio(left: float, lower: float) -> float:
    """log10(left / lower), where rounding may leave either side a hair below zero."""
    if lower <= 1e-12:  # the context is followed by every word: nothing is left to back off to
        return 0.0
    return math.log10(left / lower) if left > 0 else LOG10_ZERO
