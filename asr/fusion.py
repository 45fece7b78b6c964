"""Tuning shallow fusion on held-out data: the LM weight and the insertion bonus.

The beam search ranks prefixes by ``log P_ctc + lm_weight * log P_lm +
insertion_bonus * len`` (`asr.decoding`); neither weight has a closed form, so
`tune_fusion` searches a grid of both for the lowest error rate (the usual
practice since Hannun et al. 2014, arXiv:1408.2873, sec. 3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor
from tqdm import tqdm

from asr.decoding import prefix_beam_search
from asr.errors import UserError


def tune_fusion(
    log_probs_list: Sequence[Tensor],
    lengths: Sequence[Tensor],
    references: Sequence[Sequence[int]],
    lm,
    *,
    error_rate_fn: Callable[[list[list[int]], list[list[int]]], float],
    weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    bonuses: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    beam_size: int = 16,
    **search_options,
) -> tuple[float, float, list[tuple[float, float, float]]]:
    """Grid search of the LM weight and insertion bonus on held-out utterances.

    log_probs_list / lengths: batches ``(B_i, T_i, V)`` and their ``(B_i,)`` lengths;
    references: the reference token ids of every utterance, batches in order.
    error_rate_fn(hypotheses, references) -> error rate (lower is better), e.g. the
    PER/CER of asr.metrics. search_options go to `prefix_beam_search`.
    Returns (best weight, best bonus, rows of (weight, bonus, error rate)); ties go to
    the grid point met first.
    """
    utterances = sum(len(batch) for batch in log_probs_list)
    if utterances != len(references):
        raise UserError(f"tune_fusion: {utterances} utterances but {len(references)} references")
    table = []
    grid = [(w, b) for w in weights for b in bonuses]
    for weight, bonus in tqdm(grid, desc="tuning LM weight/bonus", leave=False):
        hypotheses = []
        for batch, batch_lengths in zip(log_probs_list, lengths):
            results = prefix_beam_search(
                batch, batch_lengths, beam_size=beam_size, lm=lm, lm_weight=weight,
                insertion_bonus=bonus, nbest=1, **search_options,
            )
            hypotheses += [found[0].tokens if found else [] for found in results]
        table.append((weight, bonus, error_rate_fn(hypotheses, [list(r) for r in references])))
    best = min(table, key=lambda row: row[2])
    return best[0], best[1], table
