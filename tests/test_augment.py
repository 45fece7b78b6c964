"""Augmentation: each effect does what it says, measured on the signal it returns; the chain is
seeded by (seed, epoch, utterance); an empty config changes nothing; bad settings are refused."""

from __future__ import annotations

import math

import pytest
import torch

from asr import augment as A
from asr.config import AugmentConfig, Config
from asr.errors import UserError
from asr.features import FeatureConfig, FeatureExtractor
from tests.conftest import assert_round_trips_as_plain_data

RATE = 16000


def tone(hz: float, seconds: float = 1.0, rate: int = RATE) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * hz * torch.arange(round(seconds * rate)) / rate)


def noise(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(round(seconds * RATE), generator=torch.Generator().manual_seed(seed))


def peak_hz(x: torch.Tensor, rate: int = RATE) -> float:
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x))).abs()
    return torch.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()].item()


def band_energy(x: torch.Tensor, low: float, high: float, rate: int = RATE) -> float:
    """The share of `x`'s energy between `low` and `high` Hz."""
    power = torch.fft.rfft(x).abs().pow(2)
    freqs = torch.fft.rfftfreq(len(x), 1 / rate)
    return (power[(freqs >= low) & (freqs < high)].sum() / power.sum()).item()


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    return 10 * math.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# speed (Ko et al. 2015)

@pytest.mark.parametrize("factor", [0.9, 1.1, 0.95, 1.05])
def test_speed_changes_the_length_and_the_frequencies_by_the_factor(factor):
    x = tone(1000)
    y = A.speed(x, factor, RATE)
    assert abs(len(y) - len(x) / factor) <= 1
    assert peak_hz(y) == pytest.approx(1000 * factor, abs=2)


def test_speed_one_is_the_identity():
    x = noise()
    assert A.speed(x, 1.0, RATE) is x


# VTLP (Jaitly & Hinton 2013)

def test_the_vtlp_warp_is_alpha_f_below_the_knee_and_keeps_the_nyquist_frequency():
    freqs = torch.tensor([0.0, 1000.0, 3000.0, 8000.0], dtype=torch.float64)
    for alpha in (0.9, 1.1):
        warped = A.vtlp_warp(freqs, alpha, 4800, 8000)
        assert warped[:3].tolist() == pytest.approx([0, 1000 * alpha, 3000 * alpha])
        assert warped[3].item() == pytest.approx(8000)
    # continuous at the knee, monotonic everywhere
    grid = torch.linspace(0, 8000, 8001, dtype=torch.float64)
    assert (A.vtlp_warp(grid, 1.1, 4800, 8000).diff() > 0).all()
    assert (A.vtlp_warp(grid, 0.9, 4800, 8000).diff() > 0).all()


@pytest.mark.parametrize("alpha", [0.9, 1.1])
@pytest.mark.parametrize("hz", [500, 1000, 2000])
def test_vtlp_moves_a_tone_to_its_warped_frequency(alpha, hz):
    x = tone(hz, 2.0)
    y = A.vtlp(x, alpha, RATE)
    assert len(y) == len(x)
    assert peak_hz(y) == pytest.approx(hz * alpha, abs=1)
    assert band_energy(y, hz * alpha - 30, hz * alpha + 30) > 0.95  # one clean tone, not smeared
    assert y.pow(2).mean().item() == pytest.approx(x.pow(2).mean().item(), rel=1e-4)


def test_vtlp_above_the_knee_follows_the_upper_segment():
    x = tone(6000, 2.0)
    expected = A.vtlp_warp(torch.tensor(6000.0, dtype=torch.float64), 1.1, 4800, 8000).item()
    assert peak_hz(A.vtlp(x, 1.1, RATE)) == pytest.approx(expected, abs=1)


# reverberation

def schroeder_rt60(rir: torch.Tensor, rate: int = RATE) -> float:
    """RT60 from the slope of the Schroeder energy decay curve between -5 and -25 dB (T20 x 3)."""
    energy = rir.double().pow(2).flip(0).cumsum(0).flip(0)
    edc = 10 * torch.log10(energy / energy[0])
    t = torch.arange(len(rir), dtype=torch.float64) / rate
    fit = (edc <= -5) & (edc >= -25)
    slope = torch.linalg.lstsq(torch.stack([t[fit], torch.ones_like(t[fit])], 1), edc[fit].unsqueeze(1)).solution[0]
    return -60 / slope.item()


@pytest.mark.parametrize("rt60", [0.2, 0.4, 0.8])
def test_a_synthetic_rir_decays_60_db_in_rt60(rt60):
    rir = A.synthetic_rir(rt60, RATE, rng(1))
    assert len(rir) == round(rt60 * RATE)
    assert rir.norm().item() == pytest.approx(1, rel=1e-5)
    assert rir.abs().argmax() == 0  # the direct path comes first and is the strongest
    assert schroeder_rt60(rir) == pytest.approx(rt60, rel=0.1)


def test_reverberation_keeps_the_tail_and_the_level():
    x = noise()
    rir = A.synthetic_rir(0.5, RATE, rng(2))
    y = A.reverberate(x, rir)
    assert len(y) == len(x) + len(rir) - 1
    assert y.pow(2).mean().item() == pytest.approx(x.pow(2).mean().item(), rel=1e-4)
    # an impulse comes back as the response itself
    impulse = torch.zeros(1000)
    impulse[0] = 1.0
    echoed = A.reverberate(impulse, rir)
    assert len(echoed) == 1000 + len(rir) - 1
    assert torch.allclose(echoed[:len(rir)] / echoed[0], rir / rir[0], atol=1e-4)
    assert echoed[len(rir):].abs().max() < 1e-5


def test_a_room_rir_from_pyroomacoustics_has_about_its_rt60():
    pytest.importorskip("pyroomacoustics")
    rir = A.room_rir(0.4, RATE, rng(3))
    assert rir.norm().item() == pytest.approx(1, rel=1e-5)
    assert torch.equal(rir, A.room_rir(0.4, RATE, rng(3)))  # the room is drawn from the generator
    # Sabine's formula is an approximation of the simulated room: within a factor 1.6
    assert 0.4 / 1.6 < schroeder_rt60(rir) < 0.4 * 1.6


def test_a_reverberation_time_too_short_for_any_room_is_refused_naming_the_key():
    pytest.importorskip("pyroomacoustics")
    with pytest.raises(UserError, match=r"augment.rt60_min: no room of 1 m or more has rt60=0.010 s"):
        A.room_rir(0.01, RATE, rng())


def test_reverb_kind_room_without_pyroomacoustics_says_how_to_install_it(monkeypatch):
    import builtins  # noqa: PLC0415
    real_import = builtins.__import__

    def no_pyroomacoustics(name, *args, **kwargs):
        if name == "pyroomacoustics":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyroomacoustics)
    with pytest.raises(UserError, match=r"augment.reverb_kind=room needs pyroomacoustics: pip install"):
        A.room_rir(0.4, RATE, rng())


# additive noise

@pytest.mark.parametrize("kind,slope", [("white", 0.0), ("pink", 1.0), ("brown", 2.0)])
def test_coloured_noise_has_the_spectral_slope_of_its_colour(kind, slope):
    n = A.coloured_noise(4 * RATE, A.NOISE_SLOPE[A.NoiseKind(kind)], rng(4))
    assert n.pow(2).mean().sqrt().item() == pytest.approx(1, rel=1e-4)
    power = torch.fft.rfft(n).abs().pow(2)
    freqs = torch.fft.rfftfreq(len(n), 1 / RATE)
    fit = (freqs >= 50) & (freqs <= 5000)
    design = torch.stack([freqs[fit].log10(), torch.ones(int(fit.sum()))], 1).double()
    measured = torch.linalg.lstsq(design, power[fit].log10().double().unsqueeze(1)).solution[0].item()
    assert measured == pytest.approx(-slope, abs=0.05)


@pytest.mark.parametrize("snr", [0.0, 5.0, 17.5, 30.0])
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_noise_is_added_at_the_snr_asked(kind, snr):
    x = tone(440) + noise(seed=5)
    n = A.coloured_noise(len(x), A.NOISE_SLOPE[A.NoiseKind(kind)], rng(6))
    assert snr_db(x, A.add_noise(x, n, snr)) == pytest.approx(snr, abs=0.01)


def test_babble_is_a_sum_of_the_other_utterances_at_the_snr_asked():
    others = [tone(300 + 100 * i, 0.3) for i in range(4)]
    mix = A.babble(RATE, others, talkers=3, rng=rng(7))
    assert len(mix) == RATE
    # it holds the talkers' tones and nothing else
    assert sum(band_energy(mix, 300 + 100 * i - 5, 300 + 100 * i + 5) for i in range(4)) > 0.9
    x = tone(2000)
    assert snr_db(x, A.add_noise(x, mix, 10.0)) == pytest.approx(10.0, abs=0.01)
    # a function that draws an utterance serves as well as a pool
    drawn = A.babble(RATE, lambda g: others[int(torch.randint(4, (), generator=g))], 3, rng(7))
    assert len(drawn) == RATE and drawn.abs().max() > 0


# telephone channel

def test_the_telephone_channel_keeps_only_300_to_3400_hz():
    x = noise(2.0, seed=8)
    y = A.telephone(x, RATE)
    assert len(y) == len(x)
    assert band_energy(y, 3450, 8001) < 1e-6
    assert band_energy(y, 0, 250) < 1e-6
    assert band_energy(y, 300, 3400) > 0.99
    assert band_energy(x, 4000, 8001) > 0.4  # there was energy up there to remove
    # a length after speed perturbation (43637 = 11 x 3967) is filtered at a fast FFT size,
    # zero-padded: cutting the padding off leaves a trace out of band, -50 dB
    odd = A.telephone(noise(3.0, seed=8)[:43637], RATE)
    assert len(odd) == 43637
    assert band_energy(odd, 3450, 8001) < 1e-4 and band_energy(odd, 0, 250) < 1e-4


def test_mu_law_quantises_to_256_levels_with_an_error_that_grows_with_the_level():
    x = torch.linspace(-1, 1, 100001)
    y = A.mu_law(x)
    assert len(torch.unique(y)) <= 256
    assert ((y - x).abs() <= 0.025 * x.abs() + 1e-4).all()
    assert (y - x).abs().max() > 0.01  # it does quantise
    # the telephone's coding is mu-law at 8 kHz: without it the output differs
    speech_like = tone(1000) + noise(seed=9)
    assert not torch.allclose(A.telephone(speech_like, RATE, mulaw=True), A.telephone(speech_like, RATE, mulaw=False))


def test_at_8_khz_the_telephone_channel_only_band_limits_and_codes():
    x = 0.3 * torch.randn(8000, generator=rng(17))
    y = A.telephone(x, 8000)
    assert len(y) == len(x)
    assert band_energy(y, 0, 250, rate=8000) < 1e-6 and band_energy(y, 3450, 4001, rate=8000) < 1e-6
    assert snr_db(A.band_limit(x, 8000, 300, 3400), y) > 25  # the coding is mu-law's 8 bits


# gain and clipping

@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
def test_clipping_bounds_the_peak_and_leaves_the_rest(fraction):
    x = tone(440) + noise(seed=10)
    y = A.clip(x, fraction)
    level = fraction * x.abs().max()
    assert y.abs().max().item() == pytest.approx(level.item())
    inside = x.abs() <= level
    assert torch.equal(y[inside], x[inside])
    assert (y[~inside].abs() == level).all()


def test_gain_scales_the_level_by_the_decibels_drawn():
    config = AugmentConfig(gain_prob=1.0, gain_min_db=-6, gain_max_db=-6)
    x = noise()
    y = A.Augmenter(config, RATE).waveform(x, rng())
    assert 20 * math.log10(y.abs().max() / x.abs().max()) == pytest.approx(-6, abs=1e-4)


# SpecAugment (Park et al. 2019)

def masked_runs(row: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, length = [], 0
    for value in row.tolist() + [False]:
        if value:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


def test_a_frequency_mask_covers_up_to_f_channels_the_same_in_every_block_and_never_the_energy():
    features = torch.randn(200, 123, generator=rng(11)) + 5  # 41 static (40 mel + energy), deltas, delta-deltas
    widths = []
    for seed in range(300):
        out = A.spec_masks(features, rng(seed), freq_masks=1, freq_width=10, time_masks=0, time_width=0,
                           time_ratio=1.0, block=41, channels=40)
        changed = (out != features).any(dim=0)
        blocks = changed.view(3, 41)
        assert torch.equal(blocks[0], blocks[1]) and torch.equal(blocks[0], blocks[2])
        assert not blocks[:, 40].any()  # energy
        runs = masked_runs(blocks[0])
        assert len(runs) <= 1
        widths.append(runs[0] if runs else 0)
        # the masked entries hold the utterance's mean of that entry, in every frame
        assert torch.allclose(out[:, changed], features[:, changed].mean(0).expand(200, -1))
    assert max(widths) == 10 and min(widths) == 0
    # uniform over 0..F: each width drawn about 300 / 11 = 27 times
    counts = torch.bincount(torch.tensor(widths), minlength=11)
    assert counts.min() >= 10 and counts.max() <= 50


def test_time_masks_cover_at_most_t_frames_and_at_most_p_of_the_utterance():
    features = torch.randn(300, 40, generator=rng(12)) + 5
    widest = 0
    for seed in range(600):
        out = A.spec_masks(features, rng(seed), freq_masks=0, freq_width=0, time_masks=1, time_width=100,
                           time_ratio=0.2, block=None)
        frames = (out != features).any(dim=1)
        assert ((out != features).all(dim=1) == frames).all()  # a masked frame is masked whole
        runs = masked_runs(frames)
        assert len(runs) <= 1
        widest = max(widest, *runs, 0)
    assert widest == 60  # min(T = 100, p x 300 = 60)


def test_two_masks_of_each_kind_mask_two_bands():
    features = torch.randn(300, 40, generator=rng(13)) + 5
    out = A.spec_masks(features, rng(14), freq_masks=2, freq_width=8, time_masks=2, time_width=30,
                       time_ratio=1.0)
    masked_channels = (out != features).all(dim=0).sum().item()
    masked_frames = (out != features).all(dim=1).sum().item()
    assert 0 < masked_channels <= 16 and 0 < masked_frames <= 60


# the chain: seeding, identity when off

EVERYTHING = AugmentConfig(speed_prob=1.0, vtlp_prob=1.0, reverb_prob=1.0, noise_prob=1.0, telephone_prob=1.0,
                           gain_prob=1.0, clip_prob=1.0, freq_masks=2, time_masks=2,
                           noise_kinds=["white", "pink", "brown", "babble"])


def run_chain(config: AugmentConfig, seed: int, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    augmenter = A.Augmenter.for_features(config, FeatureConfig.graves2013())
    generator = A.utterance_generator(seed, epoch, index)
    others = [noise(0.5, seed=20 + i) for i in range(3)]
    waveform = augmenter.waveform(tone(300, 0.6) + noise(0.6, seed=index), generator, others=others)
    features = FeatureExtractor(FeatureConfig.graves2013()).extract(waveform)
    return waveform, augmenter.features(features, generator)


def test_the_same_seed_epoch_and_utterance_give_the_same_augmentation_whatever_ran_before():
    first = run_chain(EVERYTHING, 3, 2, 7)
    run_chain(EVERYTHING, 3, 2, 8)  # another utterance in between: no shared state
    again = run_chain(EVERYTHING, 3, 2, 7)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


@pytest.mark.parametrize("other", [(3, 3, 7), (3, 2, 8), (4, 2, 7)], ids=["epoch", "utterance", "seed"])
def test_another_epoch_utterance_or_seed_gives_another_augmentation(other):
    first, changed = run_chain(EVERYTHING, 3, 2, 7), run_chain(EVERYTHING, *other)
    assert not (first[0].shape == changed[0].shape and torch.equal(first[0], changed[0]))


def test_utterance_generators_are_distinct_and_reproducible():
    draws = {(s, e, i): torch.rand(4, generator=A.utterance_generator(s, e, i)).tolist()
             for s in range(3) for e in range(3) for i in range(3)}
    assert len({tuple(v) for v in draws.values()}) == 27
    assert torch.rand(4, generator=A.utterance_generator(1, 2, 0)).tolist() == draws[1, 2, 0]


def test_every_effect_turned_on_changes_the_waveform_and_the_features():
    x = tone(300, 0.6) + noise(0.6)
    for name in ("speed_prob", "vtlp_prob", "reverb_prob", "noise_prob", "telephone_prob", "gain_prob", "clip_prob"):
        config = AugmentConfig(**{name: 1.0}, speed_factors=[1.1])
        y = A.Augmenter(config, RATE).waveform(x, rng(15))
        assert y.shape != x.shape or not torch.allclose(y, x, atol=1e-6), name
    features = torch.randn(100, 123) + 5
    for config in (AugmentConfig(freq_masks=1, freq_mask_width=5), AugmentConfig(time_masks=1, time_mask_width=5)):
        out = A.Augmenter(config, RATE, block=41).features(features, rng(16))
        assert not torch.equal(out, features)  # seed 16 draws a non-empty mask in both


def test_the_default_config_changes_nothing():
    augmenter = A.Augmenter(AugmentConfig(), RATE)
    assert not augmenter.waveform_enabled and not augmenter.features_enabled
    x, features = noise(), torch.randn(100, 123)
    assert augmenter.waveform(x, rng()) is x
    assert augmenter.features(features, rng()) is features
    # a probability of 0 is off even with every range set
    off = AugmentConfig(speed_factors=[0.5], rt60_min=1.0, rt60_max=1.5, freq_masks=0, time_masks=0)
    assert A.Augmenter(off, RATE).waveform(x, rng()) is x


def test_babble_without_others_is_a_programming_error_and_is_otherwise_skipped():
    only_babble = A.Augmenter(AugmentConfig(noise_prob=1.0, noise_kinds=["babble"]), RATE)
    with pytest.raises(ValueError, match="no others"):
        only_babble.waveform(noise(), rng())
    mixed = A.Augmenter(AugmentConfig(noise_prob=1.0, noise_kinds=["white", "babble"]), RATE)
    x = noise()
    assert snr_db(x, mixed.waveform(x, rng())) > 5  # white noise, drawn from 5..30 dB


def test_a_vtlp_boundary_above_nyquist_is_refused_naming_the_key():
    with pytest.raises(UserError, match=r"augment.vtlp_boundary_hz=4800.0 must be below the Nyquist frequency, 4000"):
        A.Augmenter(AugmentConfig(vtlp_prob=0.5), 8000)
    A.Augmenter(AugmentConfig(vtlp_prob=0.0), 8000)  # off: no matter


# the augment section of a config file

def refused(values: dict) -> str:
    with pytest.raises(UserError) as caught:
        Config.from_dict({"augment": values}, "test.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("test.yaml: "), message
    return message


@pytest.mark.parametrize("values,words", [
    ({"reverb_kind": "cathedral"}, ["augment.reverb_kind='cathedral'", "synthetic, room"]),
    ({"noise_kinds": ["white", "grey"]}, ["augment.noise_kinds[1]='grey'", "white, pink, brown, babble"]),
    ({"noise_kinds": "white"}, ["augment.noise_kinds: expected a list, got 'white'"]),
    ({"noise_kinds": []}, ["augment.noise_kinds=[] must list at least one value"]),
    ({"speed_prob": 1.5}, ["augment.speed_prob=1.5 must be at most 1"]),
    ({"noise_prob": -0.1}, ["augment.noise_prob=-0.1 must be at least 0"]),
    ({"speed_factors": [0.9, 0]}, ["augment.speed_factors[1]=0.0 must be above 0"]),
    ({"speed_factors": [0.9, "fast"]}, ["augment.speed_factors[1]: expected float, got 'fast'"]),
    ({"freq_masks": -1}, ["augment.freq_masks=-1 must be at least 0"]),
    ({"time_mask_width": 2.5}, ["augment.time_mask_width: expected int, got 2.5"]),
    ({"time_mask_ratio": 0}, ["augment.time_mask_ratio=0.0 must be above 0"]),
    ({"rt60_min": 0.8, "rt60_max": 0.6}, ["augment.rt60_min=0.8 must be at most augment.rt60_max=0.6"]),
    ({"noise_snr_min": 40}, ["augment.noise_snr_min=40.0 must be at most augment.noise_snr_max=30.0"]),
    ({"clip_max": 1.5}, ["augment.clip_max=1.5 must be at most 1"]),
    ({"noise_snr_max": math.inf}, ["augment.noise_snr_max=inf must be a finite number"]),
    ({"speed": 0.5}, ["augment: unknown key(s) ['speed']"]),
])
def test_a_bad_augment_setting_is_one_line_naming_the_key(values, words):
    message = refused(values)
    assert all(word in message for word in words), message


def test_an_override_turns_augmentation_on():
    config = Config().override(["augment.speed_prob=1", "augment.speed_factors=[0.8, 1.2]"])
    assert config.augment.speed_prob == 1.0 and config.augment.speed_factors == [0.8, 1.2]


def test_a_config_that_augments_round_trips_through_yaml_and_torch_as_plain_data():
    config = Config.from_dict({"augment": {"noise_prob": 0.5, "noise_kinds": ["pink", "babble"],
                                           "reverb_kind": "room", "freq_masks": 2}}, "test.yaml")
    data = config.to_dict()
    assert data["augment"]["noise_kinds"] == ["pink", "babble"]
    assert all(type(kind) is str for kind in data["augment"]["noise_kinds"])
    assert_round_trips_as_plain_data(config)


def test_a_config_that_augments_nothing_is_written_without_an_augment_section():
    # what the shipped checkpoints carry: they must load and compare equal as before
    assert "augment" not in Config().to_dict()
    assert Config.from_dict(Config().to_dict(), "old checkpoint").augment == AugmentConfig()


def test_the_room_pool_builds_each_room_once_and_the_same_whoever_asks_first():
    pytest.importorskip("pyroomacoustics")
    config = AugmentConfig(reverb_prob=1.0, reverb_kind="room", rt60_min=0.2, rt60_max=0.25, room_pool=2)
    x = noise(0.2)
    forward, backward = A.Augmenter(config, RATE), A.Augmenter(config, RATE)
    ahead = [forward.waveform(x, A.utterance_generator(0, 0, i)) for i in range(6)]
    behind = [backward.waveform(x, A.utterance_generator(0, 0, i)) for i in reversed(range(6))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(ahead, behind))
    assert len(forward._rooms) == 2 and len({len(y) for y in ahead}) == 2  # two rooms, six utterances
