"""Tuning shallow fusion on held-out data: the LM weight and the insertion bonus.

The beam search ranks prefixes by ``log P_ctc + lm_weight * log P_lm +
insertion_bonus * len`` (`asr.decoding`); neither weight has a closed form, so
`tune_fusion` searches a grid of both for the lowest error rate (the usual
practice since Hannun et al. 2014, arXiv:1408.2873, sec. 3).

What tuning finds is kept with the model: `save_decoding_settings` puts the LM
into the model folder (``lm.arpa`` or ``lm.arpa.gz``) and writes
``decoding.yaml`` beside it (the LM's file name, weight, insertion bonus and beam
size); `read_decoding_settings` reads it back, and `asr.transcribe` decodes with
it by default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml
from torch import Tensor
from tqdm import tqdm

from asr.atomic import write_bytes, write_text
from asr.decoding import prefix_beam_search
from asr.errors import UserError, file_error

SETTINGS_FILE = "decoding.yaml"
_SETTINGS_FIX = ("Rewrite it with decode.py --tune-lm --save-lm-settings, or delete it (and the LM) to "
                 "decode without a stored LM")


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


@dataclass(frozen=True)
class DecodingSettings:
    """How the model of a folder is decoded unless told otherwise (``decoding.yaml``).

    lm: the ARPA file's name, inside the model folder; lm_weight and insertion_bonus:
    the fusion weights `tune_fusion` found for it; beam_size: the beam they were tuned with.
    """

    lm: str
    lm_weight: float
    insertion_bonus: float
    beam_size: int = 16

    def check(self, source: str | os.PathLike) -> None:
        """A `UserError` naming `source` and the field for a value the decoder could not use."""
        if not isinstance(self.lm, str) or not self.lm or Path(self.lm).name != self.lm:
            raise file_error(source, f"lm: {self.lm!r} must be the name of an ARPA file in the model folder "
                                     f"(no folder part)", _SETTINGS_FIX)
        for name in ("lm_weight", "insertion_bonus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise file_error(source, f"{name}: {value!r} must be a finite number, e.g. 0.5", _SETTINGS_FIX)
        if self.lm_weight < 0:
            raise file_error(source, f"lm_weight: {self.lm_weight!r} must be 0 or more", _SETTINGS_FIX)
        if isinstance(self.beam_size, bool) or not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise file_error(source, f"beam_size: {self.beam_size!r} must be a whole number of at least 1",
                             _SETTINGS_FIX)


def read_decoding_settings(folder: str | os.PathLike) -> DecodingSettings | None:
    """The settings ``folder/decoding.yaml`` holds, checked; None if the folder has none.

    A file that is not such a mapping, has unknown or missing keys, bad values, or names
    an LM the folder lacks is a `UserError` naming it: a stored LM that silently went
    unused would decode worse than the user was told.
    """
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise file_error(path, f"cannot be read as YAML ({str(error).splitlines()[0]})", _SETTINGS_FIX) from None
    known = [f.name for f in fields(DecodingSettings)]
    if not isinstance(data, dict):
        raise file_error(path, f"must be a mapping of {', '.join(known)}", _SETTINGS_FIX)
    unknown = sorted(set(map(str, data)) - set(known))
    missing = [f.name for f in fields(DecodingSettings) if f.name not in data and f.name != "beam_size"]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"missing keys {missing}"
        raise file_error(path, f"{problem}; it holds {', '.join(known)}", _SETTINGS_FIX)
    settings = DecodingSettings(**data)
    settings.check(path)
    if not (Path(folder) / settings.lm).is_file():
        raise file_error(path, f"names the LM {settings.lm!r}, which is not in {folder}", _SETTINGS_FIX)
    return settings


def save_decoding_settings(folder: str | os.PathLike, lm_path: str | os.PathLike, lm_weight: float,
                           insertion_bonus: float, beam_size: int) -> Path:
    """Store the LM in the model folder (copied in as ``lm.arpa`` or ``lm.arpa.gz`` unless it is there
    already) and write ``decoding.yaml`` naming it, both atomically; returns the settings file.

    The LM is written before the settings that name it, so an interrupted save never leaves
    settings that point at a missing or half-written LM.
    """
    folder, lm_path = Path(folder), Path(lm_path)
    name = lm_path.name
    if lm_path.resolve().parent != folder.resolve():
        name = "lm.arpa.gz" if name.endswith(".gz") else "lm.arpa"
        write_bytes(folder / name, lm_path.read_bytes())
    settings = DecodingSettings(name, float(lm_weight), float(insertion_bonus), int(beam_size))
    settings.check(folder / SETTINGS_FILE)
    text = ("# Written by tuning (decode.py --tune-lm --save-lm-settings): the LM that decode.py and\n"
            "# Transcriber.from_checkpoint use by default for this model (turn it off with --no-lm).\n"
            + yaml.safe_dump(asdict(settings), sort_keys=False))
    write_text(folder / SETTINGS_FILE, text)
    return folder / SETTINGS_FILE
