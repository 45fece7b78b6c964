"""Experiment configuration: dataclasses, read from and written to YAML.

A config file has four sections, each a dataclass::

    features: {kind: fbank, n_mels: 40, energy: true, deltas: 2}   # or kind: mfcc | image
    model:    {hidden_size: 250, num_layers: 3, bidirectional: true}
    data:     {tokens: timit61}
    train:    {optimizer: sgd, lr: 1.0e-4, momentum: 0.9}

Every field has a default, so a file names only what differs. Command-line
overrides use dotted keys (``train.lr=1e-3``). Every checkpoint carries its
config as a plain dict (`Config.to_dict`), so a checkpoint alone rebuilds its model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from asr.atomic import write_text
from asr.errors import UserError, file_error
from asr.features import FeatureConfig


@dataclass
class ModelConfig:
    """The network: normalisation, stacked (B)LSTM, linear output (Graves et al. 2013)."""

    hidden_size: int = 250
    num_layers: int = 3
    bidirectional: bool = True
    peepholes: bool = True
    init_range: float = 0.1  # uniform [-r, r] initialisation, as in the paper
    normalize: str = "global"  # global (training-set statistics) | utterance | none


@dataclass
class DataConfig:
    """Which labels and splits a run uses."""

    tokens: str = ""  # timit61 | speech-chars | chars; empty: the corpus's default
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str = "test"
    max_utterances: int = 0  # use only the first N training utterances (0: all)
    num_workers: int = 0  # feature-extraction processes (0: in the main process)


@dataclass
class TrainConfig:
    """Optimisation, early stopping and the machinery around it."""

    optimizer: str = "sgd"  # sgd | adam
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 1  # utterances per batch (per process with several GPUs)
    max_frames: int = 0  # if > 0: batches of at most this many padded frames instead
    grad_clip: float = 0.0  # max gradient norm (0: off)
    lr_schedule: str = "constant"  # constant | plateau | exponential
    lr_decay: float = 0.5  # factor for plateau and exponential
    lr_patience: int = 2  # epochs without dev improvement before a plateau decay
    max_epochs: int = 100
    max_steps: int = 0  # stop after this many updates (0: no limit)
    max_minutes: float = 0.0  # stop after this much training time (0: no limit)
    patience: int = 10  # early stopping: epochs without dev improvement (0: off)
    select_on: str = "error"  # what early stopping and best.pt follow: error (dev PER/CER) | loss (dev CTC loss)
    weight_noise: float = 0.0  # Gaussian weight noise sigma from the start
    noise_phase: bool = False  # Graves' second phase: restart from best with noise
    noise_std: float = 0.075  # sigma of the second phase
    precision: str = "fp32"  # fp32 | bf16 (autocast; GPU)
    compile: bool = False  # torch.compile the model (GPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    checkpoint_every: int = 200  # also save last.pt every N updates (0: only per epoch)
    max_bad_steps: int = 5  # consecutive non-finite losses that stop the run


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def feature_config_class(kind: str) -> type:
    if kind == "image":
        from asr.image import ImageConfig  # noqa: PLC0415 (handwriting only)
        return ImageConfig
    return FeatureConfig


@dataclass
class Config:
    features: Any = field(default_factory=FeatureConfig.graves2013)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "Config":
        unknown = set(data) - {"features", *SECTIONS}
        if unknown:
            raise UserError(f"{source}: unknown section(s) {sorted(unknown)}; "
                            f"sections are features, {', '.join(SECTIONS)}")
        features = data.get("features") or {}
        feature_class = feature_config_class(features.get("kind", "fbank"))
        sections = {name: _build(section, data.get(name) or {}, f"{source}: {name}")
                    for name, section in SECTIONS.items()}
        return cls(features=_build(feature_class, features, f"{source}: features"), **sections)

    def override(self, assignments: list[str]) -> "Config":
        """A copy with ``section.key=value`` assignments applied (values parsed as YAML)."""
        data = self.to_dict()
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            section, dot, name = key.partition(".")
            if not sep or not dot or section not in data:
                raise UserError(f"override {assignment!r}: write section.key=value, "
                                f"e.g. train.lr=1e-3 (sections: features, {', '.join(SECTIONS)})")
            data[section][name] = yaml.safe_load(text)
        return Config.from_dict(data, "overrides")


def _coerce(value: Any, kind: type, where: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads '1e-4' as a string
        except ValueError:
            pass
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _build(cls: type, values: dict, where: str):
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()})


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "config file not found", "Give a YAML file, e.g. recipes/timit/ctc-3l-250h.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise file_error(path, f"is not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise file_error(path, "must be a YAML mapping of sections (features, model, data, train)")
    return Config.from_dict(data, str(path)).override(list(overrides))


def save_config(config: Config, path: str | Path) -> None:
    """Write `config` as YAML, atomically."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
