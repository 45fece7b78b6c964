"""Checkpoints: written atomically, read safely, enough on their own to transcribe.

A checkpoint is a dict of plain values (tensors, numbers, strings, lists,
dicts), so it loads with ``torch.load(weights_only=True)``: a file from a
stranger cannot run code. It always holds the config, the token set and the
model weights (normalisation statistics included); a training checkpoint also
holds the optimiser, scheduler and RNG states and the position in the run.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from asr.atomic import atomic_path
from asr.config import Config
from asr.errors import UserError, file_error
from asr.model import CTCModel
from asr.tokens import TokenSet

FORMAT = "asr-checkpoint-1"


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Write `payload` to `path` atomically: a reader sees the old file or the new, never half."""
    with atomic_path(path) as temporary:
        torch.save({"format": FORMAT, **payload}, temporary)


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its model.pt, best.pt or last.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in ("model.pt", "best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise file_error(path, "holds no checkpoint (model.pt, best.pt or last.pt)",
                         "Point at a checkpoint file or a training run's folder")
    if not path.is_file():
        raise file_error(path, "checkpoint not found", "Check the path, or train one with train.py")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, loaded with weights_only=True; clear errors for bad files."""
    path = resolve(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as error:
        reason = str(error).splitlines()[0][:200]
        raise file_error(path, f"is not a readable checkpoint ({reason})",
                         "It may be truncated or not a checkpoint: use another one, or retrain") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise file_error(path, f"is not a checkpoint of this toolkit (expected format {FORMAT})")
    return payload


def model_payload(model: CTCModel, config: Config, tokens: TokenSet, **extra) -> dict:
    """What every checkpoint holds: config, token set, weights; plus `extra` values."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"config": config.to_dict(), "tokens": tokens.to_dict(), "model": state, **extra}


def build_model(payload: dict, source: str | Path = "checkpoint") -> tuple[CTCModel, Config, TokenSet]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    config = Config.from_dict(payload["config"], str(source))
    tokens = TokenSet.from_dict(payload["tokens"])
    model = CTCModel(config.features.dim, len(tokens), config.model)
    load_weights(model, payload["model"], source)
    return model.eval(), config, tokens


def load_weights(model: CTCModel, state: dict, source: str | Path = "checkpoint") -> None:
    """Load a state dict, with a clear error if it does not fit the model."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        differences = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise UserError(f"{source}: the checkpoint's weights do not fit the config's model "
                        f"(first differences: {differences}). Use the config the checkpoint was trained with")
    model.load_state_dict(state)


def load_model(path: str | Path) -> tuple[CTCModel, Config, TokenSet]:
    """Model, config and token set from a checkpoint file or run folder."""
    path = resolve(path)
    return build_model(load_checkpoint(path), path)
