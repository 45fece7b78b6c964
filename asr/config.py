"""Experiment configuration: dataclasses, read from and written to YAML.

A config file has five sections, each a dataclass::

    features: {kind: fbank, n_mels: 40, energy: true, deltas: 2}   # or kind: mfcc | image
    model:    {hidden_size: 250, num_layers: 3, bidirectional: true}
    data:     {tokens: timit61}
    train:    {optimizer: sgd, lr: 1.0e-4, momentum: 0.9}
    augment:  {speed_prob: 1.0, noise_prob: 0.5, freq_masks: 2}    # asr/augment.py; off by default
              # images: {image_elastic_prob: 0.5, image_jpeg_prob: 0.2}  (asr/augment_image.py)

Every field has a default, so a file names only what differs. Command-line
overrides use dotted keys (``train.lr=1e-3``). Every checkpoint carries its
config as a plain dict (`Config.to_dict`), so a checkpoint alone rebuilds its model.

Every value is checked when a config is read (`Config.from_dict`, which config
files, overrides, checkpoints and ``train.py --dry-run`` all go through), before
any data is: choice fields are StrEnums, numbers carry their bounds in their
field's metadata (``min``, ``above``, ``max``, ``below``) and must be finite; a list
field's items are checked likewise. A bad value is one line naming the source, the
key, the value and the choices or bound.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from asr.atomic import write_text
from asr.errors import UserError, file_error
from asr.features import KINDS, NORMALIZATIONS, FeatureConfig

# Choice fields are StrEnums (as deepspeech.pytorch's configs are Enums): a
# misspelt value is refused when the file is read, before any data is, and the
# code that compares `t.optimizer == "sgd"` still sees strings.


class Optimizer(StrEnum):
    sgd = "sgd"
    adam = "adam"


class LrSchedule(StrEnum):
    constant = "constant"
    plateau = "plateau"
    exponential = "exponential"


class SelectOn(StrEnum):
    error = "error"  # dev PER/CER
    loss = "loss"  # dev CTC loss


class Precision(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"  # fp16 would need loss scaling, which training does not do


class Cell(StrEnum):
    """The recurrent cell (asr/lstm.py's docstring has each one's equations)."""

    peephole = "peephole"  # Gers et al. 2002; Graves et al. 2013
    vanilla = "vanilla"  # no peepholes: torch's fused LSTM
    cifg = "cifg"  # coupled input and forget gate, f = 1 - i
    nfg = "nfg"  # no forget gate (the 1997 cell)
    nog = "nog"  # no output gate, h = tanh(c)
    noaf = "noaf"  # no output activation, h = o c
    gru = "gru"  # torch's fused GRU
    rnn = "rnn"  # torch's fused tanh RNN


PEEPHOLE_CELLS = (Cell.peephole, Cell.cifg, Cell.nfg, Cell.nog, Cell.noaf)


Normalization = StrEnum("Normalization", {name: name for name in NORMALIZATIONS})


class Tokens(StrEnum):
    """The names `asr.tokens.token_set` knows; '' takes the corpus's default."""

    corpus_default = ""
    timit61 = "timit61"
    speech_chars = "speech-chars"
    chars = "chars"


class NoiseKind(StrEnum):
    white = "white"
    pink = "pink"
    brown = "brown"
    babble = "babble"  # needs `others`: the training set's other utterances


class ReverbKind(StrEnum):
    synthetic = "synthetic"  # exponentially decaying noise: fast, no dependency
    room = "room"  # pyroomacoustics image-source shoebox: slower, needs the `augment` extra


FEATURE_KINDS = (*KINDS, "image")  # the image kind picks ImageConfig
DEVICE = {"pattern": r"auto|cpu|cuda(:\d+)?", "form": "auto, cpu, cuda or cuda:N"}


def bounded(default: float, **bounds: float) -> Any:
    """A number field that `_check` keeps within `bounds`: min=, above=, max=, below=."""
    return field(default=default, metadata=bounds)


def listed(default: list, **bounds: float) -> Any:
    """A list field (YAML sequence); `_check` checks every item as `bounded` checks a number."""
    return field(default_factory=lambda: list(default), metadata=bounds)


@dataclass
class ModelConfig:
    """The network: normalisation, stacked (B)LSTM, linear output (Graves et al. 2013)."""

    hidden_size: int = bounded(250, min=1)
    num_layers: int = bounded(3, min=1)
    bidirectional: bool = True
    cell: Cell = Cell.peephole
    peepholes: bool = True  # the old spelling: false means cell: vanilla (configs before `cell`)
    init_range: float = bounded(0.1, above=0)  # uniform [-r, r] initialisation, as in the paper
    normalize: Normalization = Normalization("global")  # training-set statistics | utterance | none

    def __post_init__(self) -> None:
        if not self.peepholes:
            if self.cell in PEEPHOLE_CELLS[1:]:
                raise UserError(f"model.peepholes=false contradicts model.cell={self.cell}, a cell "
                                "with peepholes: drop peepholes (or set it to true)")
            if self.cell == Cell.peephole:
                self.cell = Cell.vanilla


@dataclass
class DataConfig:
    """Which labels and splits a run uses."""

    tokens: Tokens = Tokens.corpus_default  # timit61 | speech-chars | chars; empty: the corpus's default
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str = "test"
    max_utterances: int = bounded(0, min=0)  # use only the first N training utterances (0: all)
    # processes for the features and, when augmenting the inputs, each epoch's batches (0: none)
    num_workers: int = bounded(0, min=0)


@dataclass
class TrainConfig:
    """Optimisation, early stopping and the machinery around it."""

    optimizer: Optimizer = Optimizer.sgd
    lr: float = bounded(1e-4, above=0)
    momentum: float = bounded(0.9, min=0, below=1)
    weight_decay: float = bounded(0.0, min=0)
    batch_size: int = bounded(1, min=1)  # utterances per batch (per process with several GPUs)
    max_frames: int = bounded(0, min=0)  # if > 0: batches of at most this many padded frames instead
    grad_clip: float = bounded(0.0, min=0)  # max gradient norm (0: off)
    lr_schedule: LrSchedule = LrSchedule.constant
    lr_decay: float = bounded(0.5, above=0, max=1)  # factor for plateau and exponential
    lr_patience: int = bounded(2, min=0)  # epochs without dev improvement before a plateau decay
    max_epochs: int = bounded(100, min=1)
    max_steps: int = bounded(0, min=0)  # stop after this many updates (0: no limit)
    max_minutes: float = bounded(0.0, min=0)  # stop after this much training time (0: no limit)
    patience: int = bounded(10, min=0)  # early stopping: epochs without dev improvement (0: off)
    select_on: SelectOn = SelectOn.error  # what early stopping and best.pt follow
    weight_noise: float = bounded(0.0, min=0)  # Gaussian weight noise sigma from the start
    noise_phase: bool = False  # Graves' second phase: restart from best with noise
    noise_std: float = bounded(0.075, min=0)  # sigma of the second phase
    precision: Precision = Precision.fp32  # bf16: autocast (GPUs, CPUs with native bf16)
    compile: bool = False  # torch.compile the model (GPU)
    device: str = field(default="auto", metadata=DEVICE)  # whether CUDA exists is checked by training
    seed: int = bounded(0, min=0)  # numpy refuses negative seeds
    # a new run starts from this checkpoint's weights (fine-tuning: same model and token set)
    init_from: str = ""
    checkpoint_every: int = bounded(200, min=0)  # also save last.pt every N updates (0: only per epoch)
    max_bad_steps: int = bounded(5, min=1)  # consecutive non-finite losses that stop the run


@dataclass
class AugmentConfig:
    """Which augmentations training applies, each with the probability of applying it to an
    utterance and the range its parameter is drawn from. Every probability defaults to 0:
    a config without an ``augment:`` section trains exactly as before this existed."""

    # what each effect does, and the papers: asr/augment.py
    speed_prob: float = bounded(0.0, min=0, max=1)
    speed_factors: list[float] = listed([0.9, 1.0, 1.1], above=0, max=4)  # Ko et al. 2015
    vtlp_prob: float = bounded(0.0, min=0, max=1)
    vtlp_min: float = bounded(0.9, above=0)  # Jaitly & Hinton 2013: alpha in [0.9, 1.1]
    vtlp_max: float = bounded(1.1, above=0)
    vtlp_boundary_hz: float = bounded(4800.0, above=0)  # F_hi, below the Nyquist frequency
    reverb_prob: float = bounded(0.0, min=0, max=1)
    reverb_kind: ReverbKind = ReverbKind.synthetic
    rt60_min: float = bounded(0.2, above=0, max=2)  # seconds
    rt60_max: float = bounded(0.6, above=0, max=2)
    room_pool: int = bounded(64, min=0)  # reverb_kind room: rooms simulated once and reused (0: always new)
    noise_prob: float = bounded(0.0, min=0, max=1)
    noise_kinds: list[NoiseKind] = listed([NoiseKind.white, NoiseKind.pink, NoiseKind.brown])
    noise_snr_min: float = bounded(5.0)  # dB
    noise_snr_max: float = bounded(30.0)
    babble_talkers: int = bounded(3, min=1)  # other utterances summed into one babble
    telephone_prob: float = bounded(0.0, min=0, max=1)
    telephone_mulaw: bool = True  # 8-bit mu-law coding (G.711) after the band limit
    gain_prob: float = bounded(0.0, min=0, max=1)
    gain_min_db: float = bounded(-6.0)
    gain_max_db: float = bounded(6.0)
    clip_prob: float = bounded(0.0, min=0, max=1)
    clip_min: float = bounded(0.3, above=0, max=1)  # clipping level, as a fraction of the peak
    clip_max: float = bounded(0.9, above=0, max=1)
    # SpecAugment (Park et al. 2019; their LibriSpeech "LD" policy is 2, 27, 2, 100, 1.0)
    freq_masks: int = bounded(0, min=0)  # m_F
    freq_mask_width: int = bounded(15, min=0)  # F: widths drawn from 0..F channels
    time_masks: int = bounded(0, min=0)  # m_T
    time_mask_width: int = bounded(70, min=0)  # T: widths drawn from 0..T frames
    time_mask_ratio: float = bounded(0.2, above=0, max=1)  # p: no mask longer than p x the utterance
    # Image effects (text-line images only; asr/augment_image.py). Lengths in fractions of the
    # line's ink height, so that they mean the same at any scan resolution; stroke width in pixels.
    image_crop_prob: float = bounded(0.0, min=0, max=1)
    image_crop_max: float = bounded(0.08, min=0, max=0.3)  # cut at most this into the ink at each edge
    image_shear_prob: float = bounded(0.0, min=0, max=1)
    image_shear_max: float = bounded(10.0, min=0, max=45)  # degrees either way
    image_elastic_prob: float = bounded(0.0, min=0, max=1)
    image_elastic_alpha: float = bounded(0.04, min=0, max=0.5)  # peak displacement (Simard et al. 2003)
    image_elastic_sigma: float = bounded(0.25, above=0, max=5)  # smoothness of the displacement field
    image_stroke_prob: float = bounded(0.0, min=0, max=1)
    image_stroke_max: int = bounded(1, min=1, max=4)  # pixels of dilation (thicker) or erosion (thinner)
    image_blur_prob: float = bounded(0.0, min=0, max=1)
    image_blur_max: float = bounded(1.2, above=0, max=10)  # Gaussian sigma, pixels
    image_texture_prob: float = bounded(0.0, min=0, max=1)
    image_texture_max: float = bounded(0.25, above=0, max=1)  # uneven ink and stained, grainy paper
    image_jpeg_prob: float = bounded(0.0, min=0, max=1)
    image_jpeg_quality_min: int = bounded(15, min=1, max=95)
    image_jpeg_quality_max: int = bounded(75, min=1, max=95)

    def __post_init__(self) -> None:
        for low, high in (("vtlp_min", "vtlp_max"), ("rt60_min", "rt60_max"),
                          ("noise_snr_min", "noise_snr_max"), ("gain_min_db", "gain_max_db"),
                          ("clip_min", "clip_max"), ("image_jpeg_quality_min", "image_jpeg_quality_max")):
            if getattr(self, low) > getattr(self, high):
                raise UserError(f"augment.{low}={getattr(self, low)!r} must be at most "
                                f"augment.{high}={getattr(self, high)!r}")
        for name in ("speed_factors", "noise_kinds"):
            if not getattr(self, name):
                raise UserError(f"augment.{name}=[] must list at least one value")

    @property
    def waveform_enabled(self) -> bool:
        return any(p > 0 for p in (self.speed_prob, self.vtlp_prob, self.reverb_prob, self.noise_prob,
                                   self.telephone_prob, self.gain_prob, self.clip_prob))

    @property
    def features_enabled(self) -> bool:
        return (self.freq_masks > 0 and self.freq_mask_width > 0) or (self.time_masks > 0
                                                                      and self.time_mask_width > 0)

    @property
    def image_enabled(self) -> bool:
        return any(p > 0 for p in self.image_probabilities().values())

    def image_probabilities(self) -> dict[str, float]:
        """Each image effect's probability by its key (image_crop_prob, ...)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.startswith("image_") and f.name.endswith("_prob")}

    @property
    def audio_enabled(self) -> bool:
        """Whether a waveform effect or SpecAugment is on (audio models only)."""
        return self.waveform_enabled or self.features_enabled

    @property
    def enabled(self) -> bool:
        """Whether any effect is on: waveform effects, SpecAugment or image effects."""
        return self.audio_enabled or self.image_enabled

    def keys_on(self, image: bool) -> list[str]:
        """The keys that turn on an image effect (`image`) or an audio one (otherwise), as set."""
        names = [f.name for f in dataclasses.fields(self) if f.name.startswith("image_") == image]
        on = [n for n in names if (n.endswith("_prob") or n in ("freq_masks", "time_masks")) and getattr(self, n) > 0]
        return [f"{n}={getattr(self, n)!r}" for n in on]


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "augment": AugmentConfig}


def feature_config_class(kind: str) -> type:
    if kind == "image":
        from asr.image import ImageConfig  # noqa: PLC0415 (handwriting only)
        return ImageConfig
    return FeatureConfig


def choices_of(cls: type, name: str) -> list[str]:
    """The values a choice field of dataclass `cls` accepts, in their declared order."""
    return [member.value for member in get_type_hints(cls)[name]]


@dataclass
class Config:
    features: Any = field(default_factory=FeatureConfig.graves2013)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        """Plain dicts of plain values: checkpoints are read with torch.load(weights_only=True)
        and YAML with safe_load, and neither may meet our enum classes.

        A config that augments nothing writes no augment section, one whose cell is
        what `peepholes` alone says (peephole, or vanilla with peepholes: false) writes no
        model.cell, and one that starts from scratch no train.init_from: it is written
        exactly as every config was before augmentation, cells and fine-tuning existed,
        and those compare equal to their reloads.
        """
        data = dataclasses.asdict(self, dict_factory=lambda items: {k: _plain(v) for k, v in items})
        if self.augment == AugmentConfig():
            del data["augment"]
        model = data["model"]
        if model["cell"] == (Cell.peephole if model["peepholes"] else Cell.vanilla):
            del model["cell"]  # the same for configs from before `cell`, written as they were
        if not data["train"]["init_from"]:
            del data["train"]["init_from"]  # likewise for a run that starts from scratch
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "Config":
        """The config `data` describes, every value checked; `source` names it in errors."""
        data = _mapping(data, source, "")
        unknown = set(data) - {"features", *SECTIONS}
        if unknown:
            raise UserError(f"{source}: unknown section(s) {sorted(map(str, unknown))}; "
                            f"sections are features, {', '.join(SECTIONS)}")
        features = _mapping(data.get("features"), source, "features")
        kind = features.get("kind", "fbank")
        if kind not in FEATURE_KINDS:
            raise UserError(f"{source}: features.kind={kind!r} is not one of: {', '.join(FEATURE_KINDS)}")
        sections = {name: _build(section, _mapping(data.get(name), source, name), source, name)
                    for name, section in SECTIONS.items()}
        return cls(features=_build(feature_config_class(kind), features, source, "features"), **sections)

    def override(self, assignments: list[str]) -> "Config":
        """A copy with ``section.key=value`` assignments applied (values parsed as YAML)."""
        data = self.to_dict()
        data.setdefault("augment", {})
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            section, dot, name = key.partition(".")
            if not sep or not dot or section not in data:
                raise UserError(f"override {assignment!r}: write section.key=value, "
                                f"e.g. train.lr=1e-3 (sections: features, {', '.join(SECTIONS)})")
            data[section][name] = yaml.safe_load(text)
        return Config.from_dict(data, "overrides")


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.value if isinstance(value, Enum) else value


def _mapping(value: Any, source: str, section: str) -> dict:
    """A section's key: value pairs; an empty section (None) means every default."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        what = f"{section} must be a mapping of key: value" if section else "must be a mapping of sections"
        raise UserError(f"{source}: {what}, not {value!r}")
    return value


def _coerce(value: Any, kind: type, where: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads '1e-4' as a string
        except ValueError:
            pass
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(member.value or "''" for member in kind)
            raise UserError(f"{where}={value!r} is not one of: {choices}") from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


BOUNDS = {"min": (operator.ge, "at least"), "above": (operator.gt, "above"),
          "max": (operator.le, "at most"), "below": (operator.lt, "below")}


def _check(value: Any, kind: type, metadata: dict, where: str) -> Any:
    """`value` as a `kind`, refused with a message naming `where` if it is out of its field's bounds."""
    if get_origin(kind) is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        item = get_args(kind)[0]
        return [_check(v, item, metadata, f"{where}[{i}]") for i, v in enumerate(value)]
    value = _coerce(value, kind, where)
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}={value!r} must be a finite number")
    for bound, (within, words) in BOUNDS.items():
        if bound in metadata and not within(value, metadata[bound]):
            raise UserError(f"{where}={value!r} must be {words} {metadata[bound]}")
    if "pattern" in metadata and not re.fullmatch(metadata["pattern"], value):
        raise UserError(f"{where}={value!r} must be {metadata['form']}")
    return value


def _build(cls: type, values: dict, source: str, section: str):
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise UserError(f"{source}: {section}: unknown key(s) {sorted(map(str, unknown))}; "
                        f"known: {', '.join(sorted(fields))}")
    checked = {k: _check(v, hints[k], fields[k].metadata, f"{source}: {section}.{k}") for k, v in values.items()}
    try:
        return cls(**checked)
    except UserError as error:  # the settings' joint checks (e.g. hop <= window) know no file
        raise UserError(f"{source}: {error}") from None


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
