"""Training-time data augmentation, on the fly and seeded: waveform effects and SpecAugment.

Every effect is a small pure function of a tensor and its drawn parameters; the
`Augmenter` draws the parameters from a per-utterance generator and chains the
effects an `AugmentConfig` (``augment:`` in a config file) turns on. Off by
default, and meant for the training split only: dev and test are never augmented.

Waveform effects, in the order the chain applies them (a 1-D float waveform in
[-1, 1] at the config's sample rate):

- speed perturbation (Ko, Peddinti, Povey & Khudanpur 2015, "Audio augmentation
  for speech recognition", Interspeech): the signal is resampled as if it had
  been recorded at ``factor * rate``, so it plays ``factor`` times faster, is
  ``1 / factor`` times as long, and its pitch and formants move by ``factor``;
  the paper's factors are 0.9, 1.0, 1.1.
- vocal tract length perturbation (Jaitly & Hinton 2013, "Vocal tract length
  perturbation (VTLP) improves speech recognition", ICML WDLASL): frequencies
  are warped piecewise linearly by alpha in [0.9, 1.1],

      f' = alpha f                                        for f <= F_hi min(alpha, 1) / alpha
      f' = S/2 - (S/2 - F_hi min(alpha, 1)) / (S/2 - F_hi min(alpha, 1) / alpha) (S/2 - f)  above

  with F_hi = 4800 Hz and S/2 the Nyquist frequency (the warp keeps 0 and S/2
  fixed). The paper warps the filterbank's centre frequencies; here the warp is
  applied to the short-time spectrum by a phase vocoder and resynthesised, so that
  the front end stays untouched and the effect composes with the others.
- reverberation: convolution with a room impulse response of reverberation time
  RT60 (the time for the energy to fall by 60 dB). ``synthetic``: a direct path
  followed by Gaussian noise under the exponential envelope
  exp(-3 ln(10) t / RT60), the statistical model of a diffuse late reverberation
  (Polack 1988); ``room``: pyroomacoustics' image-source simulation of a random
  shoebox room whose wall absorption gives that RT60 by Sabine's formula
  (Allen & Berkley 1979; Scheibler et al. 2018, ICASSP), needing the ``augment``
  extra. A room takes 0.03-1 s to simulate (growing with RT60), so ``room_pool``
  rooms are simulated once, on first use, and drawn per utterance; room k of the
  pool depends on k alone, so every worker process and every resumed run builds the
  same pool. The output keeps the reverberant tail: it is ``len(rir) - 1`` samples
  longer than the input.
- additive noise at an SNR drawn uniformly in dB: white, pink (power ~ 1/f),
  brown (~ 1/f^2), or babble (a sum of other utterances).
- a telephone channel: down to 8 kHz, the 300-3400 Hz band of ITU-T G.712,
  8-bit mu-law (G.711), the band again, back up to the original rate.
- gain (uniform in dB), then clipping at a random fraction of the peak.

Feature effect: SpecAugment's frequency and time masks (Park et al. 2019,
"SpecAugment: a simple data augmentation method for automatic speech
recognition", Interspeech): each of m_F masks covers f ~ U{0..F} consecutive
channels from f0 ~ U{0..v - f}, each of m_T masks t ~ U{0..min(T, p tau)}
consecutive frames. Masked values are the utterance's own mean of each feature
(the paper's zero, after its per-utterance normalisation; our features are
normalised later, inside the model). With deltas or stacking a frequency mask
covers the same channels in every block of ``block`` values.

Seeding: `utterance_generator(seed, epoch, index)` gives each utterance of each
epoch its own generator, derived by numpy's SeedSequence (a hash designed for
this) from the three numbers alone, so the augmentation an utterance gets does not
depend on the batch order, on worker processes, or on what ran before: a resumed
run sees exactly what an uninterrupted one would have.

Wiring (training split only; `others` is a few other training waveforms, or a function
of the generator that loads one)::

    augmenter = Augmenter.for_features(config.augment, config.features)
    rng = utterance_generator(config.train.seed, epoch, index)
    waveform = augmenter.waveform(waveform, rng, others=others)   # returns it as is when off
    features = frontend_features(waveform)
    features = augmenter.features(features, rng)                   # likewise

With only SpecAugment on (``augmenter.waveform_enabled`` false) the features can stay
cached and be masked each epoch; waveform effects need the waveform every epoch.

Cost: ``benchmarks/augment.py`` measures the whole chain against feature extraction.

Text-line images have effects of their own, in the same ``augment:`` section
(``image_*`` keys) and through the same dataset path: asr/augment_image.py. Each
front end refuses the other kind's keys (`asr.frontend.Frontend.augmenter`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft
import scipy.signal
import torch
import torchaudio

from asr.config import AugmentConfig, NoiseKind, ReverbKind
from asr.errors import UserError

# Colour exponents: the noise's power spectral density goes as 1 / f^beta.
NOISE_SLOPE = {NoiseKind.white: 0.0, NoiseKind.pink: 1.0, NoiseKind.brown: 2.0}
TELEPHONE_RATE = 8000
TELEPHONE_BAND = (300.0, 3400.0)  # ITU-T G.712


def utterance_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of utterance `index` in `epoch` of a run seeded with `seed` (all >= 0).

    A function of the three numbers alone, so it does not matter in which order,
    in which process or after what the utterance is augmented.
    """
    return _generator(np.random.SeedSequence([seed, epoch, index]))


def room_generator(k: int) -> torch.Generator:
    """The generator of room `k` of the room pool: the same in every run, and apart from every
    utterance generator (a SeedSequence spawn key, which those never have)."""
    return _generator(np.random.SeedSequence(0, spawn_key=(k,)))


def _generator(sequence: np.random.SeedSequence) -> torch.Generator:
    state = sequence.generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# Drawing helpers: one place that turns the generator into numbers.

def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=rng).item()


def _integer(rng: torch.Generator, high: int) -> int:
    """Uniform in 0..high, both ends included."""
    return int(torch.randint(high + 1, (), generator=rng))


def _happens(rng: torch.Generator, probability: float) -> bool:
    return torch.rand((), generator=rng).item() < probability


# The effects: pure functions of the signal and their parameters.

class _Resamplers:
    """torchaudio Resample modules by (from, to) rate, built once: building the kernel costs
    more than applying it to a short utterance."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], torchaudio.transforms.Resample] = {}

    def __call__(self, x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
        g = math.gcd(orig, new)
        key = (orig // g, new // g)
        if key not in self._cache:
            self._cache[key] = torchaudio.transforms.Resample(*key)
        return self._cache[key](x)


_RESAMPLE = _Resamplers()


def speed(x: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """`x` played `factor` times faster (Ko et al. 2015): about len(x) / factor samples."""
    if factor == 1:
        return x
    return _RESAMPLE(x, round(factor * sample_rate), sample_rate)


def vtlp_warp(freqs: torch.Tensor, alpha: float, boundary_hz: float, nyquist: float) -> torch.Tensor:
    """Jaitly & Hinton's piecewise linear warp f -> f' (module docstring)."""
    return torch.from_numpy(_warp(freqs.numpy(), alpha, boundary_hz, nyquist))


def _warp(freqs: np.ndarray, alpha: float, boundary_hz: float, nyquist: float) -> np.ndarray:
    knee = boundary_hz * min(alpha, 1.0) / alpha
    slope = (nyquist - boundary_hz * min(alpha, 1.0)) / (nyquist - knee)
    return np.where(freqs <= knee, alpha * freqs, nyquist - slope * (nyquist - freqs)).astype(freqs.dtype)


def vtlp(x: torch.Tensor, alpha: float, sample_rate: int, boundary_hz: float = 4800.0,
         n_fft: int = 512) -> torch.Tensor:
    """`x` with its spectrum warped by `vtlp_warp`: a component at f moves to f'. Same length and RMS.

    A phase vocoder: each output bin takes the interpolated magnitude at its source
    frequency and the warped instantaneous frequency of the nearest source bin, whose
    phase it accumulates from frame to frame. Keeping the source phases instead would
    leave each component on its source bin's frequency grid (a 1 kHz tone warped by 1.1
    came out at 1125 Hz, the nearest bin, instead of 1100).
    """
    if alpha == 1:
        return x
    nyquist = sample_rate / 2
    window = torch.hann_window(n_fft, dtype=x.dtype)
    hop = n_fft // 4
    # the phase arithmetic in numpy, float32: torch's polar and angle were 60 % of the time
    spectrum = torch.stft(x, n_fft, hop, window=window, return_complex=True).numpy()  # (bins, frames)
    n_bins = spectrum.shape[0]
    bins = np.linspace(0, nyquist, n_bins)
    # the warp is monotonic, so its inverse at each output bin is found by interpolation
    source = np.interp(bins, _warp(bins, alpha, boundary_hz, nyquist), bins) / nyquist * (n_bins - 1)
    below = np.minimum(np.floor(source).astype(np.int64), n_bins - 2)
    weight = (source - below).astype(np.float32)[:, None]
    magnitude = np.abs(spectrum)
    warped = magnitude[below] * (1 - weight) + magnitude[below + 1] * weight
    # instantaneous frequency: the bin's centre plus the wrapped deviation of its phase advance
    nearest = np.rint(source).astype(np.int64)
    angle = np.angle(spectrum[nearest])
    centre = (np.float32(2 * np.pi * hop / n_fft) * nearest.astype(np.float32))[:, None]
    advance = centre + np.remainder(np.diff(angle, axis=1) - centre + np.float32(np.pi),
                                    np.float32(2 * np.pi)) - np.float32(np.pi)
    hz = _warp(advance * np.float32(sample_rate / (2 * np.pi * hop)), alpha, boundary_hz, nyquist)
    steps = np.cumsum(hz * np.float32(2 * np.pi * hop / sample_rate), axis=1)
    phase = np.concatenate([angle[:, :1], angle[:, :1] + steps], axis=1)
    out = np.empty(warped.shape, np.complex64)  # float32 cos and sin: np.exp(1j * phase) is complex128
    out.real, out.imag = warped * np.cos(phase), warped * np.sin(phase)
    out = torch.from_numpy(out)
    y = torch.istft(out, n_fft, hop, window=window, length=x.shape[-1])
    return y * (_rms(x) / _rms(y).clamp(min=1e-12))


def synthetic_rir(rt60: float, sample_rate: int, rng: torch.Generator) -> torch.Tensor:
    """A diffuse-field impulse response: a unit direct path, then Gaussian noise whose energy
    falls 60 dB in `rt60` seconds; rt60 x rate samples long, unit energy."""
    n = max(2, round(rt60 * sample_rate))
    t = torch.arange(n, dtype=torch.float32) / sample_rate
    tail = torch.randn(n, generator=rng) * torch.exp(-3 * math.log(10) * t / rt60)
    tail[0] = 0.0
    tail = tail / tail.norm()  # the tail carries as much energy as the direct path
    tail[0] = 1.0
    return tail / tail.norm()


def room_rir(rt60: float, sample_rate: int, rng: torch.Generator) -> torch.Tensor:
    """The image-source impulse response of a random shoebox room with reverberation time
    `rt60` (pyroomacoustics), between a random source and microphone; unit energy."""
    try:
        import pyroomacoustics as pra  # noqa: PLC0415 (only for reverb_kind: room)
    except ImportError:
        raise UserError("augment.reverb_kind=room needs pyroomacoustics: pip install 'asr[augment]' "
                        "(or use reverb_kind: synthetic)") from None
    # a room between 3 x 3 x 2.5 m and 10 x 8 x 4 m; Sabine's absorption for rt60, which a large
    # room cannot reach with a short rt60 (absorption > 1): shrink it until it can
    dims = np.array([_uniform(rng, 3, 10), _uniform(rng, 3, 8), _uniform(rng, 2.5, 4)])
    fractions = np.array([[_uniform(rng, 0.1, 0.9) for _ in range(3)] for _ in range(2)])
    while True:
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims.tolist())
            break
        except ValueError:
            dims = dims * 0.8
            if dims.min() < 1.0:  # a cupboard, not a room: below about 0.08 s in a 3 x 3 x 2.5 m room
                raise UserError(f"augment.rt60_min: no room of 1 m or more has rt60={rt60:.3f} s; "
                                "raise rt60_min or use reverb_kind: synthetic") from None
    room = pra.ShoeBox(dims.tolist(), fs=sample_rate, materials=pra.Material(absorption), max_order=max_order)
    margin = 0.3
    source, mic = (margin + f * (dims - 2 * margin) for f in fractions)
    room.add_source(source.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    rir = torch.as_tensor(np.asarray(room.rir[0][0]), dtype=torch.float32)
    return rir / rir.norm()


def reverberate(x: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """`x` convolved with `rir` (full: len(x) + len(rir) - 1 samples), at the RMS of `x`."""
    # scipy's, on the tensors' memory: torchaudio's transforms at the exact output length, which
    # is often a slow size for an FFT (12x slower here for 3 s and a 0.6 s response)
    y = torch.from_numpy(scipy.signal.fftconvolve(x.numpy(), rir.to(x.dtype).numpy()))
    return y * (_rms(x) / _rms(y).clamp(min=1e-12))


def coloured_noise(length: int, slope: float, rng: torch.Generator) -> torch.Tensor:
    """Gaussian noise of `length` samples whose power spectral density goes as 1 / f^slope
    (0: white, 1: pink, 2: brown), zero mean, unit RMS.

    Coloured noise is drawn as its spectrum, complex Gaussian bins weighted by f^(-slope / 2)
    with no DC, and one inverse FFT of a fast size, cut to `length`.
    """
    if not slope:
        noise = torch.randn(length, generator=rng)
        noise = noise - noise.mean()
    else:
        size = scipy.fft.next_fast_len(length, real=True)
        bins = size // 2 + 1
        spectrum = torch.randn(2, bins, generator=rng).numpy()
        f = np.arange(bins, dtype=np.float32)
        f[0] = np.inf  # no DC
        spectrum = (spectrum[0] + 1j * spectrum[1]) * f ** np.float32(-slope / 2)
        noise = torch.from_numpy(scipy.fft.irfft(spectrum, n=size)[:length].astype(np.float32))
    return noise / _rms(noise).clamp(min=1e-12)


def babble(length: int, others: Sequence[torch.Tensor] | Callable[[torch.Generator], torch.Tensor],
           talkers: int, rng: torch.Generator) -> torch.Tensor:
    """The sum of `talkers` other utterances, each at unit RMS, each from a random offset and
    repeated to `length` samples. `others` is a pool of waveforms or a function that draws one."""
    total = torch.zeros(length)
    for _ in range(talkers):
        other = others(rng) if callable(others) else others[_integer(rng, len(others) - 1)]
        other = other.flatten().float()
        if other.numel() == 0:
            continue
        start = _integer(rng, other.numel() - 1)
        repeats = math.ceil((length + start) / other.numel())
        total += other.repeat(repeats)[start:start + length] / _rms(other).clamp(min=1e-12)
    return total


def add_noise(x: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """`x` plus `noise` scaled so that the signal-to-noise power ratio is `snr_db` dB."""
    return torchaudio.functional.add_noise(x, noise.to(x.dtype), torch.tensor(snr_db, dtype=x.dtype))


def band_limit(x: torch.Tensor, sample_rate: int, low_hz: float, high_hz: float) -> torch.Tensor:
    """`x` with every frequency outside [low_hz, high_hz] removed (an ideal filter on the FFT)."""
    # scipy's FFT (3x torch's for one long 1-D signal on a CPU) of a fast size: lengths after
    # speed perturbation are arbitrary, and a length with a large prime factor took 10x longer
    n = x.shape[-1]
    size = scipy.fft.next_fast_len(n, real=True)
    spectrum = scipy.fft.rfft(x.numpy(), n=size)
    freqs = scipy.fft.rfftfreq(size, 1 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return torch.from_numpy(scipy.fft.irfft(spectrum, n=size)[:n].astype(np.float32))


def mu_law(x: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """`x` through `channels`-level mu-law coding and back (G.711's companding for 256)."""
    codes = torchaudio.functional.mu_law_encoding(x.clamp(-1, 1), channels)
    return torchaudio.functional.mu_law_decoding(codes, channels).to(x.dtype)


def telephone(x: torch.Tensor, sample_rate: int, mulaw: bool = True) -> torch.Tensor:
    """`x` as a narrowband telephone line passes it, back at `sample_rate`. Same length.

    Down to 8 kHz, the 300-3400 Hz send filter, mu-law coding, and the receive filter
    (G.712 puts one on each side of the codec): the receive filter also removes the
    coding noise outside the band, and what the 8 -> 16 kHz resampler's finite stop band
    let through above 4 kHz (-35 dB of the signal without it).
    """
    rate = min(sample_rate, TELEPHONE_RATE)
    y = _RESAMPLE(x, sample_rate, rate) if rate != sample_rate else x
    y = band_limit(y, rate, *TELEPHONE_BAND)
    if mulaw:
        y = mu_law(y)
    if rate != sample_rate:
        y = _fit(_RESAMPLE(y, rate, sample_rate), x.shape[-1])
    return band_limit(y, sample_rate, *TELEPHONE_BAND)


def clip(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """`x` clipped at `fraction` of its peak."""
    level = fraction * x.abs().max()
    return x.clamp(-level, level)


def spec_masks(features: torch.Tensor, rng: torch.Generator, freq_masks: int, freq_width: int,
               time_masks: int, time_width: int, time_ratio: float, block: int | None = None,
               channels: int | None = None) -> torch.Tensor:
    """SpecAugment masks (Park et al. 2019) on one utterance's ``(T, D)`` features; a new tensor.

    Frequency masks cover channels of ``0..channels - 1`` in every block of `block` values
    (default: one block of D, all channels); masked entries get the utterance's mean of that entry.
    """
    frames, dim = features.shape
    block = block or dim
    channels = min(channels or block, block)
    mask = torch.zeros(frames, dim, dtype=torch.bool)
    per_block = torch.zeros(block, dtype=torch.bool)
    for _ in range(freq_masks):
        width = min(_integer(rng, freq_width), channels)
        start = _integer(rng, channels - width)
        per_block[start:start + width] = True
    mask |= per_block.repeat(dim // block)
    longest = min(time_width, int(time_ratio * frames))
    for _ in range(time_masks):
        width = _integer(rng, longest)
        start = _integer(rng, frames - width)
        mask[start:start + width] = True
    if not mask.any():
        return features
    mean = features.mean(dim=0, keepdim=True).expand_as(features)
    return torch.where(mask, mean, features)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean().sqrt()


def _fit(x: torch.Tensor, length: int) -> torch.Tensor:
    """`x` cut or zero-padded to `length` samples (resampling there and back can be off by one)."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return torch.nn.functional.pad(x, (0, length - x.shape[-1]))


class Augmenter:
    """An `AugmentConfig` applied to utterances at `sample_rate`, with the parameters drawn
    from each utterance's generator (`utterance_generator`).

    `block` and `channels` place SpecAugment's frequency masks (see `spec_masks`);
    `for_features` sets them from a feature config.
    """

    def __init__(self, config: AugmentConfig, sample_rate: int, block: int | None = None,
                 channels: int | None = None) -> None:
        self.config, self.sample_rate, self.block, self.channels = config, sample_rate, block, channels
        self._rooms: dict[int, torch.Tensor] = {}  # the room pool, filled as rooms are drawn
        if config.vtlp_prob > 0 and not config.vtlp_boundary_hz < sample_rate / 2:
            raise UserError(f"augment.vtlp_boundary_hz={config.vtlp_boundary_hz!r} must be below the "
                            f"Nyquist frequency, {sample_rate / 2:g} Hz")

    @classmethod
    def for_features(cls, config: AugmentConfig, features) -> Augmenter:
        """The augmenter for audio features of `features` (an asr.features.FeatureConfig): frequency
        masks cover the mel channels (the cepstra for MFCC, never the energy) of the static
        values and of their deltas alike."""
        channels = features.n_mels if features.kind == "fbank" else features.n_mfcc
        return cls(config, features.sample_rate, block=features.static_dim, channels=channels)

    @property
    def waveform_enabled(self) -> bool:
        return self.config.waveform_enabled

    @property
    def features_enabled(self) -> bool:
        return self.config.features_enabled

    # asr.dataset's names, which asr.augment_image.ImageAugmenter shares: the input is the waveform
    @property
    def input_enabled(self) -> bool:
        return self.waveform_enabled

    def input(self, x: torch.Tensor, rng: torch.Generator, others=None) -> torch.Tensor:
        return self.waveform(x, rng, others)

    @property
    def description(self) -> str:
        return " + ".join(name for name, on in (("waveform effects", self.waveform_enabled),
                                                ("SpecAugment", self.features_enabled)) if on)

    def waveform(self, x: torch.Tensor, rng: torch.Generator,
                 others: Sequence[torch.Tensor] | Callable[[torch.Generator], torch.Tensor] | None = None
                 ) -> torch.Tensor:
        """One utterance's 1-D waveform through the effects the config turns on, with the
        parameters drawn from `rng`. `others` (a pool of other waveforms, or a function of
        the generator that returns one) feeds babble noise. Speed and reverberation change
        the length; the rest keep it."""
        c, rate = self.config, self.sample_rate
        if not c.waveform_enabled:
            return x
        if _happens(rng, c.speed_prob):
            x = speed(x, c.speed_factors[_integer(rng, len(c.speed_factors) - 1)], rate)
        if _happens(rng, c.vtlp_prob):
            x = vtlp(x, _uniform(rng, c.vtlp_min, c.vtlp_max), rate, c.vtlp_boundary_hz)
        if _happens(rng, c.reverb_prob):
            x = reverberate(x, self._rir(rng))
        if _happens(rng, c.noise_prob):
            kinds = [k for k in c.noise_kinds if k != NoiseKind.babble or others is not None]
            if not kinds:
                raise ValueError("augment.noise_kinds is [babble] but no others were given to draw it from")
            kind = kinds[_integer(rng, len(kinds) - 1)]
            snr = _uniform(rng, c.noise_snr_min, c.noise_snr_max)
            if kind == NoiseKind.babble:
                noise = babble(x.shape[-1], others, c.babble_talkers, rng)
            else:
                noise = coloured_noise(x.shape[-1], NOISE_SLOPE[kind], rng)
            x = add_noise(x, noise, snr)
        if _happens(rng, c.telephone_prob):
            x = telephone(x, rate, c.telephone_mulaw)
        if _happens(rng, c.gain_prob):
            x = x * 10 ** (_uniform(rng, c.gain_min_db, c.gain_max_db) / 20)
        if _happens(rng, c.clip_prob):
            x = clip(x, _uniform(rng, c.clip_min, c.clip_max))
        return x

    def features(self, features: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """One utterance's ``(T, D)`` features with the config's SpecAugment masks."""
        c = self.config
        if not c.features_enabled:
            return features
        return spec_masks(features, rng, c.freq_masks, c.freq_mask_width, c.time_masks, c.time_mask_width,
                          c.time_mask_ratio, self.block, self.channels)

    def _rir(self, rng: torch.Generator) -> torch.Tensor:
        c, rate = self.config, self.sample_rate
        if c.reverb_kind == ReverbKind.synthetic or not c.room_pool:
            make = room_rir if c.reverb_kind == ReverbKind.room else synthetic_rir
            return make(_uniform(rng, c.rt60_min, c.rt60_max), rate, rng)
        k = _integer(rng, c.room_pool - 1)
        if k not in self._rooms:
            room = room_generator(k)
            self._rooms[k] = room_rir(_uniform(room, c.rt60_min, c.rt60_max), rate, room)
        return self._rooms[k]
