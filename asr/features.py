"""Speech features: log mel filterbank or MFCC with deltas, and their normalisation.

The recipe is the one HTK and Kaldi share (HTK book, ch. 5 "Speech Input/Output";
Kaldi ``feature-window.cc``, ``mel-computations.cc``). Every 10 ms a 25 ms frame
lying wholly inside the signal (Kaldi's ``snip_edges``: T = 1 + (N - 400) // 160
frames at 16 kHz, 298 for 3 s) goes through

    [dither] -> remove the frame's DC offset -> log energy (raw, before the next
    steps) -> pre-emphasis 0.97 -> Hamming window -> |FFT|^2 on 512 points ->
    40 triangular filters, linear on the mel scale m = 1127 ln(1 + f / 700)
    -> natural log, floored at float32 epsilon.

MFCC is the orthonormal DCT-II of the log mel energies, keeping c1..cK (c0 is
dropped; the log energy stands in for it) and liftering them with HTK's
``CEPLIFTER = 22``: c_k * (1 + 11 sin(pi k / 22)). The log energy, when asked
for, comes last (HTK's order). With ``deltas`` the HTK regression (HTK book
eq. 5.16) is appended once or twice:

    d_t = sum_{n=1..N} n (c_{t+n} - c_{t-n}) / (2 sum_{n=1..N} n^2),   N = 2,

with each utterance's own first and last frames replicated at its edges.

The two published input layers this reproduces:

- Graves, Mohamed & Hinton (2013), "Speech recognition with deep recurrent
  neural networks", ICASSP: 40 mel filterbank coefficients plus energy, with
  first and second derivatives: 123 inputs, normalised to zero mean and unit
  variance over the training set (`FeatureConfig.graves2013`).
- Graves, Fernandez, Gomez & Schmidhuber (2006), "Connectionist temporal
  classification", ICML: 12 MFCCs from 26 filterbank channels plus log energy,
  with first derivatives: 26 inputs, from 10 ms frames every 5 ms
  (`FeatureConfig.graves2006`).

`FeatureExtractor` works on padded batches, on any device: an utterance alone
and inside a padded batch gets the same features on its own frames, and the
frames past its length are zero. `FeatureStats` gathers training-set moments;
`Normalizer` applies them (or per-utterance moments) and keeps them in the
model's state_dict so that decoding normalises as training did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import nn

from asr.errors import UserError

KINDS = ("fbank", "mfcc")
WINDOWS = ("hamming", "povey", "hann")
# Enum-typed, so that a config file's misspelling is refused when it is read (asr/config.py).
FeatureKind = StrEnum("FeatureKind", {name: name for name in KINDS})
Window = StrEnum("Window", {name: name for name in WINDOWS})
NORMALIZATIONS = ("global", "utterance", "none")
# Frames per step of the spectral pipeline, by device type. On a CPU, steps
# whose intermediates fit in the L2 cache run ~2x faster than one big step
# (measured: benchmarks/features.py); on a GPU, big steps keep it busy. Either
# way the memory of a batch of long recordings stays bounded.
CHUNK_FRAMES = {"cpu": 512}
CHUNK_FRAMES_DEFAULT = 65536


@dataclass
class FeatureConfig:
    """Everything that decides the features; plain fields, so it round-trips through YAML.

    The defaults are Graves et al. (2013): 40 log mel filterbank channels plus
    log energy, deltas and delta-deltas = 123 values per 10 ms frame.
    ``high_freq <= 0`` means the Nyquist frequency plus ``high_freq`` (Kaldi's
    convention). ``lifter = 0`` turns MFCC liftering off. ``dither`` adds that
    much Gaussian noise to every sample, in training mode only; samples are in
    [-1, 1], so Kaldi's ``--dither=1.0`` on 16-bit audio is 1 / 32768 here.
    ``stack = k`` concatenates k consecutive frames and keeps every k-th: k
    times fewer, k times wider frames (e.g. to halve LSTM time with k = 2).
    """

    # metadata: the bounds asr/config.py checks a config file's values against
    kind: FeatureKind = FeatureKind.fbank
    sample_rate: int = field(default=16000, metadata={"min": 1})
    n_mels: int = field(default=40, metadata={"min": 1})
    n_mfcc: int = field(default=12, metadata={"min": 1})
    energy: bool = True
    deltas: int = field(default=2, metadata={"min": 0, "max": 2})
    delta_window: int = field(default=2, metadata={"min": 1})
    win_ms: float = field(default=25.0, metadata={"above": 0})
    hop_ms: float = field(default=10.0, metadata={"above": 0})
    preemphasis: float = field(default=0.97, metadata={"min": 0, "max": 1})
    window: Window = Window.hamming
    remove_dc_offset: bool = True
    low_freq: float = field(default=20.0, metadata={"min": 0})
    high_freq: float = 0.0
    lifter: float = field(default=22.0, metadata={"min": 0})
    dither: float = field(default=0.0, metadata={"min": 0})
    stack: int = field(default=1, metadata={"min": 1})

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> UserError:
            return UserError(f"feature setting {name}={getattr(self, name)!r} {why}")

        if self.kind not in KINDS:
            raise bad("kind", f"is not one of {', '.join(KINDS)}")
        if self.window not in WINDOWS:
            raise bad("window", f"is not one of {', '.join(WINDOWS)}")
        if self.deltas not in (0, 1, 2):
            raise bad("deltas", "must be 0 (none), 1 (deltas) or 2 (deltas and delta-deltas)")
        for name in ("sample_rate", "n_mels", "delta_window", "stack"):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        if self.kind == "mfcc" and not 1 <= self.n_mfcc < self.n_mels:
            raise bad("n_mfcc", f"must lie in 1..{self.n_mels - 1} (n_mels - 1: c0 is not kept)")
        if not 0 < self.hop_ms <= self.win_ms or self.frame_shift < 1:
            raise bad("hop_ms", f"must be positive, at least one sample and at most win_ms={self.win_ms}")
        nyquist = self.sample_rate / 2
        if not 0 <= self.low_freq < self.upper_freq <= nyquist:
            raise UserError(f"feature settings low_freq={self.low_freq}, high_freq={self.high_freq} "
                            f"must satisfy 0 <= low < high <= {nyquist:g} Hz (high <= 0 counts "
                            "down from the Nyquist frequency)")

    @classmethod
    def graves2013(cls) -> FeatureConfig:
        """Graves et al. (2013): 40 fbank + energy, deltas and delta-deltas: 123 per frame."""
        return cls(kind="fbank", n_mels=40, energy=True, deltas=2)

    @classmethod
    def graves2006(cls) -> FeatureConfig:
        """Graves et al. (2006): 12 MFCC (26 filters) + log energy, deltas: 26 per frame.

        The paper's frames are 10 ms long every 5 ms.
        """
        return cls(kind="mfcc", n_mels=26, n_mfcc=12, energy=True, deltas=1, win_ms=10.0, hop_ms=5.0)

    @property
    def frame_length(self) -> int:
        """Samples per analysis frame (400 for 25 ms at 16 kHz)."""
        return round(self.win_ms * self.sample_rate / 1000)

    @property
    def frame_shift(self) -> int:
        """Samples between frame starts (160 for 10 ms at 16 kHz)."""
        return round(self.hop_ms * self.sample_rate / 1000)

    @property
    def n_fft(self) -> int:
        """FFT size: the frame length rounded up to a power of two (512 for 400)."""
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def upper_freq(self) -> float:
        """The top edge of the filterbank in Hz."""
        return self.high_freq if self.high_freq > 0 else self.sample_rate / 2 + self.high_freq

    @property
    def static_dim(self) -> int:
        """Values per frame before deltas and stacking (41 for graves2013)."""
        return (self.n_mels if self.kind == "fbank" else self.n_mfcc) + int(self.energy)

    @property
    def dim(self) -> int:
        """Values per output frame (123 for graves2013, 26 for graves2006)."""
        return self.static_dim * (1 + self.deltas) * self.stack

    def num_frames(self, num_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Output frames for `num_samples` samples (int or tensor of lengths).

        Only whole frames inside the signal count (Kaldi's snip_edges); stacking
        keeps a last, partly replicated stack: ceil(frames / stack).
        """
        return (self.analysis_frames(num_samples) + self.stack - 1) // self.stack

    def analysis_frames(self, num_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Whole frames inside `num_samples` samples, before stacking."""
        frames = (num_samples - self.frame_length) // self.frame_shift + 1
        return frames.clamp(min=0) if torch.is_tensor(frames) else max(frames, 0)


class FeatureExtractor(nn.Module):
    """Waveforms to features, batched: ``(B, N) samples -> (B, T, D)``.

    No trainable parameters; the window, mel filterbank and DCT are buffers
    (not saved in a state_dict: the config rebuilds them), so ``.to(device)``
    moves everything. Dither, if configured, applies in training mode only.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", frame_window(config.window, config.frame_length),
                             persistent=False)
        banks = mel_filterbank(config.n_mels, config.n_fft, config.sample_rate,
                               config.low_freq, config.upper_freq)
        self.register_buffer("mel_banks", banks.T.contiguous(), persistent=False)
        if config.kind == "mfcc":
            cepstra = dct_matrix(config.n_mels, config.n_mfcc) * cepstral_lifter(config.n_mfcc, config.lifter)
            self.register_buffer("dct", cepstra, persistent=False)

    @property
    def dim(self) -> int:
        return self.config.dim

    def num_frames(self, num_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Frames `forward` returns for `num_samples` samples."""
        return self.config.num_frames(num_samples)

    def forward(self, waveforms: torch.Tensor,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of a padded batch.

        Args:
            waveforms: (B, N) float samples, padded past each utterance's length.
            lengths: (B,) valid samples per utterance; None means all N.
        Returns:
            features (B, T, D), zero past each utterance's frames, and
            frame_lengths (B,) = `num_frames(lengths)` (0 for audio shorter
            than one frame).
        """
        cfg = self.config
        waveforms = waveforms.to(self.mel_banks.dtype)
        batch, samples = waveforms.shape
        if lengths is None:
            lengths = torch.full((batch,), samples, dtype=torch.long)
        lengths = lengths.to(device=waveforms.device, dtype=torch.long)
        frame_counts = cfg.analysis_frames(lengths)
        if samples < cfg.frame_length:
            return waveforms.new_zeros(batch, 0, cfg.dim), cfg.num_frames(lengths)
        frames = waveforms.unfold(1, cfg.frame_length, cfg.frame_shift)  # a view: no copy
        width = cfg.static_dim
        features = waveforms.new_empty(batch, frames.shape[1], width * (1 + cfg.deltas))
        step = max(1, CHUNK_FRAMES.get(waveforms.device.type, CHUNK_FRAMES_DEFAULT) // batch)
        for start in range(0, frames.shape[1], step):
            features[:, start:start + step, :width] = self._frame_features(frames[:, start:start + step])
        for order in range(1, cfg.deltas + 1):
            previous = features[..., (order - 1) * width:order * width]
            features[..., order * width:(order + 1) * width] = deltas(previous, frame_counts, cfg.delta_window)
        features, frame_counts = stack_frames(features, frame_counts, cfg.stack)
        mask = valid_mask(frame_counts, features.shape[1])
        return features.masked_fill_(~mask[..., None], 0.0), frame_counts

    def extract(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features (T, D) of one 1-D waveform."""
        features, frame_counts = self(waveform[None], torch.tensor([len(waveform)]))
        return features[0, :int(frame_counts[0])]

    def _frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, frame_length) samples -> (B, T, static dim) log mel/MFCC (+ energy)."""
        cfg = self.config
        eps = torch.finfo(frames.dtype).eps
        if cfg.dither > 0 and self.training:
            frames = frames + cfg.dither * torch.randn_like(frames)
        if cfg.remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        # Pre-emphasis within the frame, its first sample against itself (HTK,
        # Kaldi), written straight into the zero-padded FFT input.
        padded = frames.new_empty(frames.shape[:-1] + (cfg.n_fft,))
        padded[..., cfg.frame_length:] = 0
        emphasized = padded[..., :cfg.frame_length]
        torch.sub(frames[..., 1:], frames[..., :-1], alpha=cfg.preemphasis, out=emphasized[..., 1:])
        torch.mul(frames[..., :1], 1 - cfg.preemphasis, out=emphasized[..., :1])
        emphasized.mul_(self.window)
        spectrum = torch.fft.rfft(padded)
        power = spectrum.real.square() + spectrum.imag.square()
        features = (power @ self.mel_banks).clamp(min=eps).log()
        if cfg.kind == "mfcc":
            features = features @ self.dct
        if cfg.energy:
            log_energy = frames.square().sum(dim=-1, keepdim=True).clamp(min=eps).log()
            features = torch.cat([features, log_energy], dim=-1)
        return features


def frame_window(kind: str, length: int) -> torch.Tensor:
    """Kaldi's symmetric analysis windows: hamming, hann, and povey (hann ** 0.85)."""
    if kind == "hamming":
        return torch.hamming_window(length, periodic=False, alpha=0.54, beta=0.46)
    hann = torch.hann_window(length, periodic=False)
    return hann.pow(0.85) if kind == "povey" else hann


def hz_to_mel(hz: torch.Tensor | float) -> torch.Tensor:
    """HTK's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, low_freq: float,
                   high_freq: float) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced and linear in mel (HTK, Kaldi).

    Filter m rises from edge m to a peak of 1 at edge m+1 and falls to 0 at
    edge m+2, the n_mels + 2 edges equally spaced in mel from low to high_freq.
    """
    edges = torch.linspace(float(hz_to_mel(low_freq)), float(hz_to_mel(high_freq)), n_mels + 2,
                           dtype=torch.float64)[:, None]
    bins = hz_to_mel(torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft)
    rising = (bins - edges[:-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[2:] - bins) / (edges[2:] - edges[1:-1])
    return torch.minimum(rising, falling).clamp(min=0).float()


def dct_matrix(n_mels: int, n_mfcc: int) -> torch.Tensor:
    """(n_mels, n_mfcc) orthonormal DCT-II rows c1..c_{n_mfcc}: ``log_mel @ dct`` gives cepstra."""
    k = torch.arange(1, n_mfcc + 1, dtype=torch.float64)
    m = torch.arange(n_mels, dtype=torch.float64)[:, None]
    return (math.sqrt(2.0 / n_mels) * torch.cos(math.pi / n_mels * (m + 0.5) * k)).float()


def cepstral_lifter(n_mfcc: int, lifter: float) -> torch.Tensor:
    """HTK's sinusoidal lifter for c1..c_{n_mfcc}: 1 + (L / 2) sin(pi k / L); ones if L = 0."""
    if lifter == 0:
        return torch.ones(n_mfcc)
    k = torch.arange(1, n_mfcc + 1, dtype=torch.float64)
    return (1 + lifter / 2 * torch.sin(math.pi * k / lifter)).float()


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool: True on each row's first `lengths[b]` positions."""
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def deltas(features: torch.Tensor, lengths: torch.Tensor, window: int = 2) -> torch.Tensor:
    """HTK regression deltas (HTK book eq. 5.16) of padded (B, T, D) features.

    Each utterance's first and last valid frames are replicated past its
    edges, so padding never reaches its deltas.
    """
    frames = features.shape[1]
    padded = _gather_frames(features, torch.arange(-window, frames + window, device=features.device), lengths)

    def shifted(n: int) -> torch.Tensor:  # frame t + n for every t
        return padded[:, window + n:window + n + frames]

    result = shifted(1) - shifted(-1)
    for n in range(2, window + 1):
        result.add_(shifted(n), alpha=n).sub_(shifted(-n), alpha=n)
    return result.div_(2 * sum(n * n for n in range(1, window + 1)))


def stack_frames(features: torch.Tensor, lengths: torch.Tensor,
                 stack: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate `stack` consecutive frames, keeping every stack-th: (B, T, D) -> (B, ceil(T/k), k D).

    An utterance's last stack repeats its last valid frame to fill up.
    """
    if stack == 1:
        return features, lengths
    batch, frames, dim = features.shape
    stacked = -(-frames // stack)
    picked = _gather_frames(features, torch.arange(stacked * stack, device=features.device), lengths)
    return picked.reshape(batch, stacked, stack * dim), (lengths + stack - 1) // stack


def _gather_frames(features: torch.Tensor, steps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """features[b, clamp(steps, 0, lengths[b] - 1)] for every b: (B, len(steps), D)."""
    batch, frames, dim = features.shape
    if frames == 0:
        return features.new_zeros(batch, len(steps), dim)
    last = (lengths - 1).clamp(min=0)[:, None]
    index = torch.minimum(steps.clamp(min=0)[None, :], last)
    index = index + frames * torch.arange(batch, device=features.device)[:, None]
    # Rows of the flattened (B * T, D) view: ~10x faster than gather along time on a CPU.
    return features.reshape(batch * frames, dim).index_select(0, index.flatten()).view(batch, -1, dim)


class FeatureStats:
    """Per-feature mean and variance over a training set, accumulated in float64.

    Batches merge with Chan et al.'s pairwise update (count, mean, sum of
    squared deviations), which stays exact where sum-of-squares loses digits.
    `std` is floored at `std_floor` so that constant features do not divide
    by zero.
    """

    def __init__(self, dim: int, std_floor: float = 1e-3) -> None:
        self.dim = dim
        self.std_floor = std_floor
        self.count = 0
        self._mean = torch.zeros(dim, dtype=torch.float64)
        self._m2 = torch.zeros(dim, dtype=torch.float64)

    def update(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        """Add (T, D) features, or a padded (B, T, D) batch with its (B,) frame lengths."""
        if features.shape[-1] != self.dim:
            raise ValueError(f"features have {features.shape[-1]} values per frame, stats expect {self.dim}")
        if features.dim() == 3:
            if lengths is None:
                raise ValueError("a padded (B, T, D) batch needs its frame lengths")
            features = features[valid_mask(lengths.to(features.device), features.shape[1])]
        frames = features.detach().to(device="cpu", dtype=torch.float64)
        if len(frames):
            mean = frames.mean(dim=0)
            self._merge(len(frames), mean, (frames - mean).square().sum(dim=0))

    def merge(self, other: FeatureStats) -> None:
        """Add another accumulator's frames (e.g. from a parallel worker)."""
        if other.count:
            self._merge(other.count, other._mean, other._m2)

    def _merge(self, count: int, mean: torch.Tensor, m2: torch.Tensor) -> None:
        total = self.count + count
        shift = mean - self._mean
        self._mean += shift * (count / total)
        self._m2 += m2 + shift.square() * (self.count * count / total)
        self.count = total

    @property
    def mean(self) -> torch.Tensor:
        return self._mean.float()

    @property
    def var(self) -> torch.Tensor:
        """Population variance (divides by the frame count)."""
        return (self._m2 / max(self.count, 1)).float()

    @property
    def std(self) -> torch.Tensor:
        return (self._m2 / max(self.count, 1)).sqrt().clamp(min=self.std_floor).float()

    def to_dict(self) -> dict:
        """Plain Python values, for checkpoints and YAML."""
        return {"count": self.count, "mean": self._mean.tolist(),
                "var": (self._m2 / max(self.count, 1)).tolist(), "std_floor": self.std_floor}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureStats:
        stats = cls(len(data["mean"]), data.get("std_floor", 1e-3))
        stats.count = int(data["count"])
        stats._mean = torch.tensor(data["mean"], dtype=torch.float64)
        stats._m2 = torch.tensor(data["var"], dtype=torch.float64) * stats.count
        return stats


class Normalizer(nn.Module):
    """Feature normalisation as a model layer: (B, T, D) -> (B, T, D), padding kept at zero.

    ``global``: (x - mean) / std with training-set moments (Graves 2013), held
    in buffers so they travel in the model's state_dict to decoding; set them
    with `set_stats`. ``utterance``: each utterance by its own valid frames'
    mean and std. ``none``: unchanged.
    """

    def __init__(self, dim: int, mode: str = "global", std_floor: float = 1e-3) -> None:
        super().__init__()
        if mode not in NORMALIZATIONS:
            raise UserError(f"normalisation mode {mode!r} is not one of {', '.join(NORMALIZATIONS)}")
        self.mode = mode
        self.std_floor = std_floor
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, stats: FeatureStats) -> None:
        if stats.dim != self.mean.numel():
            raise ValueError(f"stats are for {stats.dim} features, the normaliser for {self.mean.numel()}")
        self.mean.copy_(stats.mean)
        self.std.copy_(stats.std)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = valid_mask(lengths.to(features.device), features.shape[1])[..., None]
        if self.mode == "global":
            features = (features - self.mean) / self.std
        elif self.mode == "utterance":
            count = lengths.to(features.device).clamp(min=1)[:, None, None]
            mean = features.masked_fill(~mask, 0).sum(dim=1, keepdim=True) / count
            var = (features - mean).masked_fill(~mask, 0).square().sum(dim=1, keepdim=True) / count
            features = (features - mean) / var.sqrt().clamp(min=self.std_floor)
        return features.masked_fill(~mask, 0.0)

    def extra_repr(self) -> str:
        return f"dim={self.mean.numel()}, mode={self.mode!r}"
