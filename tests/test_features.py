"""Features against independent implementations (torchaudio's Kaldi port, librosa, scipy),
padding invariance, and normalisation statistics."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi

import asr.features
from asr.errors import UserError
from asr.features import (
    FeatureConfig,
    FeatureExtractor,
    FeatureStats,
    Normalizer,
    dct_matrix,
    deltas,
    mel_filterbank,
    stack_frames,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# Our float32 pipeline against torchaudio's Kaldi port: the same equations in a
# different order of float32 operations. Measured max |difference| over the ten
# librivox and cards recordings: 1.9e-4 (log mel and log energy, natural-log
# units, any window), 4.3e-4 (MFCC, values up to 85).
LOG_MEL_ATOL = 5e-4
MFCC_ATOL = 1e-3


def utterance(seconds: float = 3.0, seed: int = 0, rate: int = 16000) -> torch.Tensor:
    """A real recording when pocketsphinx-testdata is installed, else a synthetic vowel-like signal."""
    recordings = sorted(LIBRIVOX.glob("*.wav"))
    if recordings:
        from asr.audio import load_audio
        wave = load_audio(recordings[seed % len(recordings)], rate)
        if len(wave) >= seconds * rate:
            return wave[: int(seconds * rate)]
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    pitch = 120 + 40 * seed + 20 * torch.sin(2 * torch.pi * 0.5 * t)
    phase = 2 * torch.pi * torch.cumsum(pitch, 0) / rate
    wave = sum(torch.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    return 0.3 * wave / wave.abs().max() + 0.01 * torch.randn(len(t), generator=generator)


def kaldi_options(cfg: FeatureConfig) -> dict:
    return dict(num_mel_bins=cfg.n_mels, frame_length=cfg.win_ms, frame_shift=cfg.hop_ms,
                preemphasis_coefficient=cfg.preemphasis, remove_dc_offset=cfg.remove_dc_offset,
                window_type={"hann": "hanning"}.get(cfg.window, cfg.window), low_freq=cfg.low_freq,
                high_freq=cfg.high_freq, sample_frequency=cfg.sample_rate, dither=0.0,
                energy_floor=0.0, use_energy=cfg.energy, htk_compat=True, snip_edges=True)


def padded_batch(waves: list[torch.Tensor], fill: str = "noise") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad with loud noise, not zeros, so any leak of padding shows."""
    longest = max(len(w) for w in waves)
    batch = torch.randn(len(waves), longest) if fill == "noise" else torch.zeros(len(waves), longest)
    for row, wave in zip(batch, waves):
        row[: len(wave)] = wave
    return batch, torch.tensor([len(w) for w in waves])


# --- configuration -------------------------------------------------------------------------

def test_published_input_sizes():
    assert FeatureConfig.graves2013().dim == 123
    assert FeatureConfig.graves2006().dim == 26
    assert FeatureConfig(kind="mfcc", n_mfcc=12, energy=False, deltas=2).dim == 36
    assert FeatureConfig(stack=3).dim == 369
    assert FeatureConfig().n_fft == 512 and FeatureConfig().frame_length == 400


@pytest.mark.parametrize("settings,word", [
    ({"kind": "plp"}, "kind"), ({"window": "blackman"}, "window"), ({"deltas": 3}, "deltas"),
    ({"kind": "mfcc", "n_mfcc": 40}, "n_mfcc"), ({"hop_ms": 30.0}, "hop_ms"),
    ({"high_freq": 9000.0}, "high_freq"), ({"low_freq": 8000.0}, "low_freq"), ({"stack": 0}, "stack"),
])
def test_bad_settings_are_user_errors(settings, word):
    with pytest.raises(UserError, match=word):
        FeatureConfig(**settings)


def test_num_frames_matches_forward_for_every_length():
    for cfg in (FeatureConfig(), FeatureConfig(stack=3), FeatureConfig.graves2006()):
        extractor = FeatureExtractor(cfg)
        lengths = torch.tensor([0, 1, 399, 400, 401, 559, 560, 561, 4000, 48000])
        waves, lengths = padded_batch([torch.randn(int(n)) for n in lengths], fill="zeros")
        features, frames = extractor(waves, lengths)
        assert frames.tolist() == [extractor.num_frames(int(n)) for n in lengths]
        assert torch.equal(frames, extractor.num_frames(lengths))
        assert features.shape == (len(lengths), int(frames.max()), cfg.dim)
    assert FeatureConfig().num_frames(48000) == 298  # 3 s: 1 + (48000 - 400) // 160
    assert FeatureConfig(stack=3).num_frames(48000) == 100


def test_three_seconds_give_about_300_frames_of_123():
    features = FeatureExtractor(FeatureConfig.graves2013()).extract(utterance(3.0))
    assert features.shape == (298, 123)
    assert torch.isfinite(features).all()


# --- against independent implementations -----------------------------------------------------

@pytest.mark.parametrize("window", ["hamming", "povey", "hann"])
def test_fbank_matches_kaldi(window):
    cfg = FeatureConfig(kind="fbank", n_mels=40, energy=True, deltas=0, window=window)
    wave = utterance(3.0)
    ours = FeatureExtractor(cfg).extract(wave)
    reference = kaldi.fbank(wave[None], **kaldi_options(cfg))
    assert ours.shape == reference.shape == (298, 41)
    torch.testing.assert_close(ours, reference, atol=LOG_MEL_ATOL, rtol=0)


def test_fbank_matches_kaldi_other_settings():
    cfg = FeatureConfig(n_mels=23, energy=False, deltas=0, preemphasis=0.0, remove_dc_offset=False,
                        low_freq=64.0, high_freq=-400.0, sample_rate=8000)
    wave = utterance(2.0, rate=8000)
    torch.testing.assert_close(FeatureExtractor(cfg).extract(wave),
                               kaldi.fbank(wave[None], **kaldi_options(cfg)), atol=LOG_MEL_ATOL, rtol=0)


def test_mfcc_matches_kaldi_with_htk_lifter_and_energy():
    cfg = FeatureConfig(kind="mfcc", n_mels=26, n_mfcc=12, energy=True, deltas=0, lifter=22.0)
    wave = utterance(3.0, seed=1)
    ours = FeatureExtractor(cfg).extract(wave)
    # htk_compat=True: c1..c12 then the log energy in place of c0, as HTK orders them.
    reference = kaldi.mfcc(wave[None], num_ceps=13, cepstral_lifter=22.0, **kaldi_options(cfg))
    assert ours.shape == reference.shape == (298, 13)
    torch.testing.assert_close(ours, reference, atol=MFCC_ATOL, rtol=0)


def test_mfcc_is_the_orthonormal_dct_of_log_mel():
    """What librosa.feature.mfcc(S=log_mel, dct_type=2, norm="ortho") computes, via scipy
    directly (librosa's own call spends ~20 s compiling on first use). Unliftered:
    librosa's lifter counts from c0, HTK's from c1."""
    wave = utterance(1.0, seed=2)
    log_mel = FeatureExtractor(FeatureConfig(n_mels=40, energy=False, deltas=0)).extract(wave)
    ours = FeatureExtractor(FeatureConfig(kind="mfcc", n_mels=40, n_mfcc=13, energy=False,
                                          deltas=0, lifter=0.0)).extract(wave)
    reference = scipy.fft.dct(log_mel.double().numpy(), type=2, norm="ortho", axis=-1)[:, 1:14]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-4)
    np.testing.assert_allclose(dct_matrix(40, 13).double().numpy(),
                               scipy.fft.dct(np.eye(40), type=2, norm="ortho")[:, 1:14], atol=1e-7)


def test_mel_filterbank_matches_kaldi_and_librosa():
    ours = mel_filterbank(40, 512, 16000, 20.0, 8000.0)
    reference, _ = kaldi.get_mel_banks(40, 512, 16000.0, 20.0, 8000.0, 100.0, -500.0, 1.0)
    torch.testing.assert_close(ours[:, :256], reference, atol=1e-5, rtol=0)
    assert ours[:, 256].abs().max() == 0  # Kaldi leaves out the Nyquist bin, which no filter reaches
    # librosa builds HTK-mel-spaced triangles linear in Hz, HTK and Kaldi linear in mel:
    # the same corners, slightly different slopes (measured max difference 0.0076 of a peak of 1).
    lib = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20.0, fmax=8000.0, htk=True, norm=None)
    np.testing.assert_allclose(ours.numpy(), lib, atol=0.01)


def test_deltas_match_torchaudio_compute_deltas():
    static = FeatureExtractor(FeatureConfig(deltas=0)).extract(utterance(1.0))
    full = FeatureExtractor(FeatureConfig(deltas=2)).extract(utterance(1.0))
    d1 = torchaudio.functional.compute_deltas(static.T, win_length=5, mode="replicate").T
    d2 = torchaudio.functional.compute_deltas(d1.T, win_length=5, mode="replicate").T
    torch.testing.assert_close(full, torch.cat([static, d1, d2], dim=1), atol=1e-5, rtol=1e-5)


def test_deltas_follow_the_htk_regression_formula():
    features = torch.randn(2, 9, 3)
    lengths = torch.tensor([9, 6])
    window = 3
    result = deltas(features, lengths, window)
    for b, length in enumerate(lengths.tolist()):
        x = features[b, :length]
        for t in range(length):
            def at(i, x=x, length=length):
                return x[min(max(i, 0), length - 1)]
            expected = sum(n * (at(t + n) - at(t - n)) for n in range(1, window + 1)) / (2 * (1 + 4 + 9))
            torch.testing.assert_close(result[b, t], expected)


# --- batching -----------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [FeatureConfig.graves2013(), FeatureConfig.graves2006(),
                                 FeatureConfig(stack=3)], ids=["graves2013", "graves2006", "stack3"])
def test_padding_invariance(cfg):
    extractor = FeatureExtractor(cfg)
    waves = [utterance(2.0, seed=0), utterance(0.7, seed=1)[:11111], utterance(1.3, seed=2)]
    features, frames = extractor(*padded_batch(waves))
    for b, wave in enumerate(waves):
        alone = extractor.extract(wave)
        assert frames[b] == len(alone)
        torch.testing.assert_close(features[b, : len(alone)], alone, atol=1e-5, rtol=1e-5)
        assert features[b, len(alone):].abs().sum() == 0


def test_stacking_concatenates_consecutive_frames():
    features = torch.arange(2 * 7 * 2, dtype=torch.float32).reshape(2, 7, 2)
    stacked, lengths = stack_frames(features, torch.tensor([7, 4]), 3)
    assert lengths.tolist() == [3, 2] and stacked.shape == (2, 3, 6)
    torch.testing.assert_close(stacked[0, 1], features[0, 3:6].reshape(-1))
    torch.testing.assert_close(stacked[0, 2], features[0, [6, 6, 6]].reshape(-1))  # last frame repeated
    torch.testing.assert_close(stacked[1, 1], features[1, [3, 3, 3]].reshape(-1))


def test_long_audio_is_processed_in_chunks_with_the_same_result(monkeypatch):
    extractor = FeatureExtractor(FeatureConfig.graves2013())
    waves, lengths = padded_batch([utterance(2.0), utterance(1.5, seed=1)])
    whole = extractor(waves, lengths)
    monkeypatch.setitem(asr.features.CHUNK_FRAMES, "cpu", 50)  # 25 frames per step for a batch of 2
    chunked = extractor(waves, lengths)
    # Not bit-exact: BLAS picks its kernel by matrix size, so a 25-frame block rounds differently from
    # the whole (AVX2: 0.9 % of values off, by at most 9.5e-7; AVX-512 happens to agree exactly). A
    # frame lost, repeated or shifted at a chunk edge is off by far more than 1e-5.
    torch.testing.assert_close(chunked[0], whole[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(chunked[1], whole[1])


def test_dither_only_in_training_mode():
    extractor = FeatureExtractor(FeatureConfig(dither=1 / 32768))  # Kaldi's dither 1.0 on 16-bit audio
    wave = utterance(0.5)
    extractor.eval()
    assert torch.equal(extractor.extract(wave), extractor.extract(wave))
    extractor.train()
    first, second = extractor.extract(wave), extractor.extract(wave)
    assert not torch.equal(first, second) and (first - second).abs().median() < 0.1


def test_no_trainable_parameters_and_nothing_in_state_dict():
    extractor = FeatureExtractor(FeatureConfig.graves2006())
    assert list(extractor.parameters()) == [] and extractor.state_dict() == {}


def test_shorter_than_a_frame_gives_no_frames():
    extractor = FeatureExtractor(FeatureConfig())
    assert extractor.extract(torch.randn(399)).shape == (0, 123)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    extractor = FeatureExtractor(FeatureConfig.graves2013())
    waves, lengths = padded_batch([utterance(2.0), utterance(1.0, seed=1)])
    cpu = extractor(waves, lengths)
    gpu = extractor.to("cuda")(waves.cuda(), lengths.cuda())
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-3, rtol=1e-4)
    assert torch.equal(gpu[1].cpu(), cpu[1])


# --- normalisation ------------------------------------------------------------------------

def batch_of_features(seed: int = 0):
    extractor = FeatureExtractor(FeatureConfig.graves2013())
    waves = [utterance(s, seed=seed + i) for i, s in enumerate((1.5, 0.8, 1.1))]
    return extractor(*padded_batch(waves))


def test_stats_equal_numpy_moments_of_the_valid_frames():
    features, lengths = batch_of_features()
    stats = FeatureStats(123)
    stats.update(features[:2], lengths[:2])
    stats.update(features[2, : lengths[2]])  # a single (T, D) utterance
    frames = torch.cat([features[b, :n] for b, n in enumerate(lengths)]).double().numpy()
    assert stats.count == len(frames)
    np.testing.assert_allclose(stats.mean.numpy(), frames.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.var.numpy(), frames.var(axis=0), rtol=1e-5, atol=1e-7)


def test_stats_merge_and_stability_far_from_zero():
    rng = np.random.default_rng(0)
    data = 1e6 + rng.standard_normal((5000, 4))  # sum of squares in float32 would lose it all
    parts = [FeatureStats(4) for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(data, 3)):
        for piece in np.array_split(chunk, 7):
            part.update(torch.from_numpy(piece).float())
    total = parts[0]
    total.merge(parts[1])
    total.merge(parts[2])
    reference = data.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(total.var.numpy(), reference.var(axis=0), rtol=1e-6)
    assert total.count == 5000


def test_stats_round_trip_through_plain_values():
    features, lengths = batch_of_features()
    stats = FeatureStats(123, std_floor=0.01)
    stats.update(features, lengths)
    data = json.loads(json.dumps(stats.to_dict()))
    restored = FeatureStats.from_dict(data)
    assert restored.count == stats.count and restored.std_floor == 0.01
    torch.testing.assert_close(restored.mean, stats.mean)
    torch.testing.assert_close(restored.std, stats.std)


def test_std_is_floored_for_constant_features():
    stats = FeatureStats(2, std_floor=1e-3)
    stats.update(torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
    assert stats.std.tolist() == pytest.approx([1.0, 1e-3])


def test_global_normalisation_gives_zero_mean_unit_std_and_survives_state_dict():
    features, lengths = batch_of_features()
    stats = FeatureStats(123)
    stats.update(features, lengths)
    normalizer = Normalizer(123, "global")
    normalizer.set_stats(stats)
    normalized = normalizer(features, lengths)
    frames = torch.cat([normalized[b, :n] for b, n in enumerate(lengths)]).double()
    assert frames.mean(0).abs().max() < 1e-4
    assert (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3
    assert all(normalized[b, n:].abs().sum() == 0 for b, n in enumerate(lengths))
    restored = Normalizer(123, "global")
    restored.load_state_dict(normalizer.state_dict())
    assert torch.equal(restored(features, lengths), normalized)


def test_utterance_normalisation_uses_each_utterances_own_frames():
    features, lengths = batch_of_features()
    normalizer = Normalizer(123, "utterance")
    normalized = normalizer(features, lengths)
    for b, n in enumerate(lengths.tolist()):
        own = normalized[b, :n].double()
        assert own.mean(0).abs().max() < 1e-4
        assert (own.std(0, unbiased=False) - 1).abs().max() < 1e-3
        alone = normalizer(features[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(alone[0], normalized[b, :n], atol=1e-5, rtol=1e-5)
        assert normalized[b, n:].abs().sum() == 0


def test_no_normalisation_and_bad_mode():
    features, lengths = batch_of_features()
    assert torch.equal(Normalizer(123, "none")(features, lengths), features)  # padding already zero
    with pytest.raises(UserError, match="utterance"):
        Normalizer(123, "cepstral")
