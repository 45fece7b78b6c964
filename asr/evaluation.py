"""Scoring decoded label ids against references, the way each token kind is reported.

Phone models: PER after folding to 39 classes (the number Graves et al. 2013
report) and the unfolded 61-phone PER. Character models: CER and WER.
"""

from __future__ import annotations

from typing import Sequence

from asr.metrics import ErrorCounts, char_errors, phone_errors, word_errors
from asr.tokens import TokenSet


def primary_metric(tokens: TokenSet) -> str:
    """The error rate early stopping and summaries use: ``per`` or ``cer``."""
    return "per" if tokens.kind == "phones" else "cer"


def utterance_counts(tokens: TokenSet, reference: Sequence[int], hypothesis: Sequence[int]) -> dict[str, ErrorCounts]:
    """The error counts of one utterance, by metric name."""
    if tokens.kind == "phones":
        ref, hyp = tokens.decode(reference), tokens.decode(hypothesis)
        return {"per": phone_errors(ref, hyp, fold=True), "per61": phone_errors(ref, hyp, fold=False)}
    ref, hyp = tokens.to_text(reference), tokens.to_text(hypothesis)
    return {"cer": char_errors(ref, hyp), "wer": word_errors(ref, hyp, normalize=False)}


def corpus_counts(tokens: TokenSet, references: Sequence[Sequence[int]],
                  hypotheses: Sequence[Sequence[int]]) -> dict[str, ErrorCounts]:
    """Corpus-level error counts by metric name (edits summed over utterances)."""
    totals: dict[str, ErrorCounts] = {}
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        for name, counts in utterance_counts(tokens, reference, hypothesis).items():
            totals[name] = totals.get(name, ErrorCounts()) + counts
    return totals
