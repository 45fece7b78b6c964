"""Interpolated Kneser-Ney estimation of token- or word-level n-grams: `train_ngram`.

Interpolated Kneser-Ney smoothing (Kneser & Ney 1995; Chen & Goodman 1999,
sec. 3.5, one discount per order ``D = n1 / (n1 + 2 n2)``). Lower orders use
continuation counts, except n-grams starting with ``<s>``, which keep their
counts (as KenLM does); the unigrams are interpolated with the uniform
distribution, so every word of the vocabulary has a probability.
Interpolated KN is a backoff model (Chen & Goodman 1999, eq. 12): a seen n-gram
stores its interpolated probability, a context stores the interpolation weight
``D * N1+(h .) / c(h)`` as its backoff weight, so the ARPA file is exact.

Training is plain Python counting: fine for transcripts (TIMIT, a few MB of text);
for large text corpora train with KenLM (``lmplz``) and `load_arpa` its output.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

from tqdm import tqdm

from asr.errors import UserError
from asr.lm.arpa import ARPA_SPACE, BOS, EOS, LOG10_ZERO, SPACE, UNK, NGramLM, NGramTable
from asr.lm.pruning import prune_by_count, prune_thresholds


def train_ngram(
    sequences: Iterable[Sequence[str]],
    order: int,
    vocabulary: Iterable[str] = (),
    unk: bool = True,
    prune: Sequence[int] = (),
) -> NGramLM:
    """An interpolated Kneser-Ney n-gram model of symbol sequences.

    sequences: training transcripts as symbol lists (phones; or characters, with " "
    between words; or words). vocabulary: symbols that get a probability even if
    unseen (e.g. a token set's symbols, blank excluded). unk: add ``<unk>`` too.
    prune: count thresholds per order, unigrams first (`asr.lm.pruning`): an n-gram
    seen at most that often is dropped after estimation and the backoff weights are
    recomputed, so the model stays normalised; empty keeps everything.
    """
    if order < 1:
        raise UserError(f"an n-gram order must be at least 1, got {order}")
    thresholds = prune_thresholds(prune, order)
    counts = _count(sequences, order)
    if not counts[0]:
        raise UserError("no training transcripts for the language model: give it some")
    words = {gram[0] for gram in counts[0]} | set(vocabulary) | {EOS} | ({UNK} if unk else set())
    words.discard(BOS)
    _check_symbols(words)
    adjusted = _adjusted_counts(counts)
    uniform = 1.0 / len(words)

    ngrams: NGramTable = []

    def lower(gram: tuple[str, ...]) -> float:  # below the unigrams: the uniform distribution
        return uniform

    for k in range(1, order + 1):
        probs, gammas = _kneser_ney_level(adjusted[k - 1], lower)
        if k == 1:  # every word of the vocabulary gets its share of the uniform distribution
            probs.update({(w,): gammas[()] * uniform for w in words if (w,) not in probs})
        else:  # a context's backoff weight is its interpolation weight
            for context, gamma in gammas.items():  # (<s>,) is a context only: probability 0
                log_p = ngrams[k - 2].get(context, (LOG10_ZERO, None))[0]
                ngrams[k - 2][context] = (log_p, math.log10(gamma))
        ngrams.append({gram: (math.log10(p), None) for gram, p in probs.items()})
        lower = _read_lower(probs)
    ngrams[0].setdefault((BOS,), (LOG10_ZERO, None))
    for level in ngrams[:-1]:  # lower orders always carry a backoff weight (KenLM does too)
        for gram, (log_p, backoff) in level.items():
            level[gram] = (log_p, 0.0 if backoff is None else backoff)
    if any(thresholds):
        ngrams = prune_by_count(ngrams, counts, thresholds)
    return NGramLM([dict(sorted(level.items())) for level in ngrams])


def _read_lower(probs: dict[tuple[str, ...], float]) -> Callable[[tuple[str, ...]], float]:
    """P_lower(w | h[1:]) of an n-gram ``h w``, for the order above the one of `probs`."""
    return lambda gram: probs[gram[1:]]


def _count(sequences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of the k-grams (k = 1..order) of ``<s> sequence </s>``."""
    counts = [Counter() for _ in range(order)]
    for sequence in tqdm(sequences, desc=f"counting {order}-grams", unit=" sentences", leave=False, disable=None):
        padded = (BOS, *sequence, EOS)
        for k in range(1, order + 1):
            counts[k - 1].update(padded[i : i + k] for i in range(len(padded) - k + 1))
    return counts


def _check_symbols(words: set[str]) -> None:
    for word in words:
        if not word or (word != SPACE and any(c.isspace() for c in word)) or word == ARPA_SPACE:
            raise UserError(f"the symbol {word!r} cannot be an n-gram word (empty, white space inside, "
                            f"or {ARPA_SPACE}): check the transcripts")


def _adjusted_counts(counts: list[Counter]) -> list[dict[tuple[str, ...], int]]:
    """Kneser-Ney counts: the highest order and n-grams starting with ``<s>`` keep
    their counts; the others count their distinct left neighbours, N1+(. g)."""
    adjusted = [dict(level) for level in counts]
    for k in range(1, len(counts)):
        left_neighbours = Counter(gram[1:] for gram in counts[k])
        adjusted[k - 1] = {
            gram: count if gram[0] == BOS else left_neighbours[gram]
            for gram, count in counts[k - 1].items()
        }
    adjusted[0].pop((BOS,), None)  # <s> is a context, never predicted
    return adjusted


def _kneser_ney_level(
    adjusted: dict[tuple[str, ...], int], lower: Callable[[tuple[str, ...]], float]
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """One order of interpolated KN: P(w | h) for the seen n-grams h w, and gamma(h).

    P(w | h) = (a(h w) - D) / a(h .) + gamma(h) P_lower(w | h[1:]),
    gamma(h) = D * N1+(h .) / a(h .)   (Chen & Goodman 1999, eq. 12/13).
    """
    discount = _discount(adjusted.values())
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    distinct: Counter = Counter()
    for gram, count in adjusted.items():
        totals[gram[:-1]] += count
        distinct[gram[:-1]] += 1
    gammas = {context: discount * distinct[context] / total for context, total in totals.items()}
    probs = {
        gram: (count - discount) / totals[gram[:-1]] + gammas[gram[:-1]] * lower(gram)
        for gram, count in adjusted.items()
    }
    return probs, gammas


def _discount(counts: Iterable[int]) -> float:
    """D = n1 / (n1 + 2 n2) (Ney et al. 1994); 0.5 when the counts of counts cannot say."""
    of_count = Counter(counts)
    n1, n2 = of_count[1], of_count[2]
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
