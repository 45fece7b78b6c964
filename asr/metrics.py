"""Error rates: PER (61 phones, or folded to 39), CER and WER, with S/D/I counts.

Rates are corpus-level, as NIST's sclite and Graves et al. report them: total
edits (substitutions + deletions + insertions, minimal Levenshtein alignment)
over the total reference length, not a mean of per-utterance rates. The
alignment is jiwer's (RapidFuzz underneath). TIMIT phone scoring folds the 61
phones to 39 classes first (Lee & Hon 1989; `asr.tokens.fold_phones`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from asr.tokens import fold_phones, normalize_speech_text


@dataclass(frozen=True)
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Edits per reference token (can exceed 1 with many insertions)."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_length

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                           self.insertions + other.insertions, self.reference_length + other.reference_length)

    def to_dict(self) -> dict:
        return {"rate": self.rate, "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "reference_length": self.reference_length}


def token_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> ErrorCounts:
    """S/D/I of the minimal alignment of two label sequences (labels hold no spaces)."""
    if not reference:
        return ErrorCounts(insertions=len(hypothesis))
    if not hypothesis:
        return ErrorCounts(deletions=len(reference), reference_length=len(reference))
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(reference))


def corpus_errors(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> ErrorCounts:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return sum((token_errors(r, h) for r, h in zip(references, hypotheses)), ErrorCounts())


def phone_errors(reference: Sequence[str], hypothesis: Sequence[str], fold: bool = True) -> ErrorCounts:
    """PER counts of one utterance; `fold` scores on the 39 classes."""
    if fold:
        reference, hypothesis = fold_phones(reference), fold_phones(hypothesis)
    return token_errors(reference, hypothesis)


def word_errors(reference: str, hypothesis: str, normalize: bool = True) -> ErrorCounts:
    """WER counts of one utterance; `normalize` lower-cases and strips punctuation first."""
    if normalize:
        reference, hypothesis = normalize_speech_text(reference), normalize_speech_text(hypothesis)
    return token_errors(reference.split(), hypothesis.split())


def char_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """CER counts of one utterance, spaces counted as characters (runs of spaces squeezed)."""
    reference, hypothesis = " ".join(reference.split()), " ".join(hypothesis.split())
    return token_errors([c if c != " " else "|" for c in reference], [c if c != " " else "|" for c in hypothesis])


def correct_words(reference: Sequence[str], hypothesis: Sequence[str]) -> list[bool]:
    """For each hypothesis word, whether the minimal alignment to `reference` matches it exactly."""
    if not hypothesis:
        return []
    if not reference:
        return [False] * len(hypothesis)
    correct = [False] * len(hypothesis)
    for chunk in jiwer.process_words(" ".join(reference), " ".join(hypothesis)).alignments[0]:
        if chunk.type == "equal":
            correct[chunk.hyp_start_idx: chunk.hyp_end_idx] = [True] * (chunk.hyp_end_idx - chunk.hyp_start_idx)
    return correct


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[dict]:
    """Equal-width confidence bins over [0, 1]: each bin's count, mean confidence and accuracy (empty bins too)."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} correctness flags")
    table = [{"low": b / bins, "high": (b + 1) / bins, "count": 0, "confidence": 0.0, "accuracy": 0.0}
             for b in range(bins)]
    for confidence, right in zip(confidences, correct):
        row = table[min(int(confidence * bins), bins - 1)]
        row["count"] += 1
        row["confidence"] += confidence
        row["accuracy"] += float(right)
    for row in table:
        if row["count"]:
            row["confidence"] /= row["count"]
            row["accuracy"] /= row["count"]
    return table


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE (Naeini et al. 2015; Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3): the
    count-weighted mean over equal-width bins of |accuracy - mean confidence|. 0 is perfectly calibrated."""
    table = reliability_bins(confidences, correct, bins)
    total = sum(row["count"] for row in table)
    return sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in table) / total if total else 0.0
