"""Checkpoints: written atomically, read safely, checked, enough on their own to transcribe.

A checkpoint is a dict of plain values (tensors, numbers, strings, lists,
dicts), so it loads with ``torch.load(weights_only=True)``: a file from a
stranger cannot run code. It always holds the config, the token set and the
model weights (normalisation statistics included); a training checkpoint also
holds the optimiser, scheduler and RNG states and the position in the run.

Every checkpoint written since the checksum was added stores a SHA-256 over its
values (tensor bytes, dtypes and shapes included), so a flipped bit is found at
load instead of silently resuming from damaged weights. Older checkpoints have
no checksum and load as before. A model is rebuilt from the stored config on
PyTorch's ``meta`` device first: the config's shapes are compared with the
stored weights before any memory is allocated, so a damaged or hostile config
cannot ask for hundreds of gigabytes.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from asr.atomic import atomic_path
from asr.config import Config
from asr.errors import UserError, file_error
from asr.model import CTCModel
from asr.tokens import TokenSet

FORMAT = "asr-checkpoint-1"
REQUIRED = ("config", "tokens", "model")


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Write `payload` (plain values only) to `path` atomically, with its checksum."""
    payload = plain({"format": FORMAT, **payload})
    payload["checksum"] = checksum(payload)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def plain(value):
    """`value` with str/int/float subclasses (enum choices) as their base type: torch.load(weights_only=True)
    refuses any class it does not know, so an enum member saved as itself would make the file unreadable."""
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    for base in (str, int, float):
        if isinstance(value, base) and type(value) is not base and not isinstance(value, bool):
            return base(value) if base is not str else str.__str__(value)
    return value


def checksum(payload: dict) -> str:
    """SHA-256 over every value of `payload` except its 'checksum' (what load verifies)."""
    digest = hashlib.sha256()
    _update(digest, {k: v for k, v in payload.items() if k != "checksum"})
    return "sha256:" + digest.hexdigest()


def _update(digest, value) -> None:
    # Every value is tagged with its kind and length, so that no two payloads hash the same text.
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}:".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _update(digest, key)
            _update(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _update(digest, item)
    else:
        digest.update(_scalar_text(value).encode())


def _scalar_text(value) -> str:
    # Subclasses (an enum member that is a str) hash as their plain value: that is what loads back.
    if value is None or isinstance(value, bool):
        return f"B{value}"
    if isinstance(value, int):
        return f"I{int(value)}"
    if isinstance(value, float):
        return f"F{float(value).hex()}"
    if isinstance(value, str):
        text = str.__str__(value)
        return f"S{len(text)}:{text}"
    raise TypeError(f"a checkpoint holds plain values only, not {type(value).__name__}")


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
    """The checkpoint's dict, loaded with weights_only=True and checked; clear errors for bad files."""
    path = resolve(path)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise file_error(path, f"is not a checkpoint of this toolkit (expected format {FORMAT})")
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise file_error(path, f"is an incomplete checkpoint (no {', '.join(missing)})",
                         "Use another checkpoint (e.g. best.pt), or retrain")
    if "checksum" in payload and payload["checksum"] != _checksum_or_none(payload):
        raise file_error(path, "is corrupted: its contents do not match the checksum stored in it",
                         "Use another copy or checkpoint (e.g. best.pt), or retrain")
    return payload


def _read(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message for a refused file advises weights_only=False, which would run its code: never quote it.
        text = str(error)
        if "Weights only load failed" not in text:
            raise _unreadable(path, text) from None
        detail = text.partition("WeightsUnpickler error:")[2].strip()
        if "global" in detail.lower():
            raise file_error(path, "is not a checkpoint this toolkit wrote: it holds Python objects, which "
                                   "a checkpoint never does, and was not loaded (loading them could run code)",
                             "Use a checkpoint written by train.py") from None
        raise _unreadable(path, detail if "weights_only" not in detail else "") from None
    except Exception as error:  # truncated, empty, not a zip, not a pickle: torch raises many kinds
        raise _unreadable(path, str(error)) from None


def _unreadable(path: Path, message: str) -> UserError:
    lines = [line for line in message.splitlines() if line.strip()]
    reason = lines[0][:200] if lines else "unrecognised contents"
    return file_error(path, f"is not a readable checkpoint ({reason})",
                      "It may be truncated or not a checkpoint: use another one, or retrain")


def _checksum_or_none(payload: dict) -> str | None:
    try:
        return checksum(payload)
    except TypeError:
        return None


def model_payload(model: CTCModel, config: Config, tokens: TokenSet, **extra) -> dict:
    """What every checkpoint holds: config, token set, weights; plus `extra` values."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"config": config.to_dict(), "tokens": tokens.to_dict(), "model": state, **extra}


def build_model(payload: dict, source: str | Path = "checkpoint") -> tuple[CTCModel, Config, TokenSet]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    config = Config.from_dict(payload["config"], str(source))
    tokens = TokenSet.from_dict(payload["tokens"])
    check_fits(payload, config, tokens, source)
    model = CTCModel(config.features.dim, len(tokens), config.model)
    load_weights(model, payload["model"], source)
    return model.eval(), config, tokens


def check_fits(payload: dict, config: Config, tokens: TokenSet, source: str | Path = "checkpoint") -> None:
    """A clear error unless the payload's weights fit the model `config` describes; allocates nothing."""
    with torch.device("meta"):  # shapes only: a config asking for petabytes costs nothing here
        skeleton = CTCModel(config.features.dim, len(tokens), config.model)
    check_shapes(skeleton, payload["model"], source)


def check_shapes(model: CTCModel, state: dict, source: str | Path = "checkpoint") -> None:
    """A clear error if the state dict's names or shapes do not fit `model` (which may live on 'meta')."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in state.items()}
    if expected != found:
        differences = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise UserError(f"{source}: the checkpoint's weights do not fit the config's model "
                        f"(first differences: {differences}). Use the config the checkpoint was trained with")


def load_weights(model: CTCModel, state: dict, source: str | Path = "checkpoint") -> None:
    """Load a state dict, with a clear error if it does not fit the model."""
    check_shapes(model, state, source)
    model.load_state_dict(state)


def load_model(path: str | Path) -> tuple[CTCModel, Config, TokenSet]:
    """Model, config and token set from a checkpoint file or run folder."""
    path = resolve(path)
    return build_model(load_checkpoint(path), path)
