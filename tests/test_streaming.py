"""Streaming (Transcriber.stream, decode.py --stream) and word-confidence calibration."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch

from asr.corpora.timit import read_timit
from tests.conftest import train_tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def uni_checkpoint(tiny_timit, tmp_path_factory):
    """A small unidirectional peephole model, a few epochs on `tiny_timit` (streamable)."""
    return train_tiny(tiny_timit, tmp_path_factory.mktemp("uni-run"), deltas=2,
                      model={"hidden_size": 24, "num_layers": 2, "bidirectional": False}, max_epochs=6)


@pytest.fixture(scope="session")
def uni(uni_checkpoint):
    from asr.transcribe import Transcriber

    return Transcriber.from_checkpoint(uni_checkpoint)


@pytest.fixture(scope="session")
def waveform(tiny_timit, uni):
    return uni.frontend.waveform(read_timit(tiny_timit, "test")[0].path)


def pieces(waveform, size):
    return [waveform[i:i + size] for i in range(0, len(waveform), size)]


def streamed_posteriors(transcriber, chunks):
    """The log posteriors the stream computes, chunk by chunk (the model's forward_state, spied on)."""
    seen, forward = [], transcriber.model.forward_state

    def spy(features, state=None):
        log_probs, state = forward(features, state)
        seen.append(log_probs[0])
        return log_probs, state

    transcriber.model.forward_state = spy
    try:
        results = list(transcriber.stream(chunks))
    finally:
        del transcriber.model.forward_state
    return torch.cat(seen), results


@pytest.mark.parametrize("size", [1, 357, 1601, 10**6])
def test_streamed_posteriors_equal_whole_file_ones(uni, waveform, size):
    whole = torch.cat(list(uni.posterior_stream(waveform)[0]))
    chunks = pieces(waveform[:4000], 1) + pieces(waveform[4000:], 997) if size == 1 else pieces(waveform, size)
    streamed, results = streamed_posteriors(uni, chunks)
    assert streamed.shape == whole.shape
    assert torch.allclose(streamed, whole, atol=1e-4), (streamed - whole).abs().max()
    assert results[-1].transcript.text == uni.transcribe(waveform).text


@pytest.mark.parametrize("deltas,stack", [(0, 1), (1, 2), (2, 3)])
def test_streamed_features_equal_whole_file_features(deltas, stack):
    from asr.features import FeatureConfig, FeatureExtractor
    from asr.streaming import StreamingFeatures

    extractor = FeatureExtractor(FeatureConfig(n_mels=20, deltas=deltas, stack=stack))
    signal = torch.randn(9000) * 0.1
    whole = extractor.extract(signal)
    stream = StreamingFeatures(extractor)
    parts = [stream.push(chunk) for chunk in pieces(signal, 733)] + [stream.finish()]
    assert torch.allclose(torch.cat(parts), whole, atol=1e-4)


@pytest.mark.parametrize("cell", ["peephole", "vanilla", "gru", "rnn", "nog"])
def test_forward_state_carries_the_state_exactly(cell):
    from asr.lstm import PeepholeLSTM

    lstm = PeepholeLSTM(5, 7, num_layers=2, bidirectional=False, cell=cell).double()
    x = torch.randn(1, 23, 5, dtype=torch.double)
    state, outputs = None, []
    for start, end in ((0, 1), (1, 8), (8, 9), (9, 23)):
        y, state = lstm.forward_state(x[:, start:end], state)
        outputs.append(y)
    assert torch.allclose(torch.cat(outputs, 1), lstm(x, torch.tensor([23])), atol=1e-12)


def test_settled_text_only_grows_and_ends_as_the_whole_file_text(uni, waveform):
    results = list(uni.stream(pieces(waveform, 800)))
    finals = [r.final for r in results]
    assert all(later.startswith(earlier) for earlier, later in zip(finals, finals[1:]))
    assert results[-1].done and results[-1].tentative == ""
    whole = uni.transcribe(waveform)
    assert results[-1].text == results[-1].transcript.text == whole.text
    assert [(w.word, round(w.start, 4), round(w.end, 4)) for w in results[-1].words] == \
        [(w.word, round(w.start, 4), round(w.end, 4)) for w in whole.words]


def test_a_character_word_settles_when_its_space_arrives():
    from asr.streaming import GreedySettler

    symbols = ["_", " ", "a", "b"]
    settler = GreedySettler(symbols, lambda frame: frame / 100, separators={1})

    def frames(*labels):
        return torch.nn.functional.one_hot(torch.tensor(labels), 4).float().clamp(min=1e-6).log()

    assert settler.push(frames(2, 2, 0, 3)) == [] and settler.tentative() == "ab"
    (word,) = settler.push(frames(0, 1, 0, 2))
    assert word.word == "ab" and word.start == 0 and word.end == (4 + 5) / 2 / 100
    assert settler.tentative() == "a"
    (last,) = settler.finish()
    assert last.word == "a" and last.end == 8 / 100


@pytest.fixture(scope="session")
def bi_checkpoint(uni_checkpoint, tmp_path_factory):
    """`uni_checkpoint`'s model made bidirectional (untrained: only its refusal is tested)."""
    import dataclasses

    from asr.checkpoint import load_model, model_payload, save_checkpoint
    from asr.model import CTCModel

    model, config, tokens = load_model(uni_checkpoint)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, bidirectional=True))
    path = tmp_path_factory.mktemp("bi") / "bi.pt"
    save_checkpoint(model_payload(CTCModel(model.input_dim, model.num_tokens, config.model), config, tokens), path)
    return path


def test_a_bidirectional_model_is_refused_in_one_line(bi_checkpoint):
    from asr.errors import UserError
    from asr.transcribe import Transcriber

    with pytest.raises(UserError, match="unidirectional") as caught:
        next(Transcriber.from_checkpoint(bi_checkpoint).stream([torch.zeros(1600)]))
    assert "\n" not in str(caught.value)


def decode(capsys, *args, stdin=None, monkeypatch=None):
    """decode.py's main in this process (a subprocess would spend seconds importing torch); stdout."""
    from asr.commands import decode as command

    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    assert command.main([str(arg) for arg in args]) == 0
    return capsys.readouterr().out


def test_decode_stream_on_a_file_and_on_stdin(uni_checkpoint, uni, tiny_timit, capsys, monkeypatch, one_thread):
    path = read_timit(tiny_timit, "test")[0].path
    whole = uni.transcribe(path)
    out = decode(capsys, "--checkpoint", uni_checkpoint, "--stream", path, "--stream-chunk-ms", 70).splitlines()
    assert out[-1] == whole.text
    assert [line.split("\t")[2] for line in out[:-1]] == [w.word for w in whole.words]  # each word once
    pcm = (uni.frontend.waveform(path) * 32767).round().to(torch.int16).numpy()
    raw = decode(capsys, "--checkpoint", uni_checkpoint, "--stream", "-", "--raw-rate", 16000, stdin=pcm.tobytes(),
                 monkeypatch=monkeypatch)
    assert raw.splitlines()[-1] == whole.text
    wav = io.BytesIO()
    soundfile.write(wav, pcm, 16000, format="WAV", subtype="PCM_16")
    from_wav = decode(capsys, "--checkpoint", uni_checkpoint, "--stream", "-", stdin=wav.getvalue(),
                      monkeypatch=monkeypatch)
    assert from_wav.splitlines()[-1] == whole.text


def test_decode_stream_refuses_a_bidirectional_model_in_one_line(bi_checkpoint, tiny_timit):
    result = subprocess.run([sys.executable, "decode.py", "--checkpoint", str(bi_checkpoint), "--stream",
                             str(read_timit(tiny_timit, "test")[0].path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "unidirectional" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_decode_calibration_plot_is_written(uni_checkpoint, tiny_timit, tmp_path, capsys):
    out = decode(capsys, "--checkpoint", uni_checkpoint, "--test-set", tiny_timit, "--split", "test", "--limit", 3,
                 "--out", tmp_path / "out", "--calibration-plot", tmp_path / "reliability.png")
    assert "expected calibration error" in out
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    assert '"utterances": 3' in (tmp_path / "out" / "summary.json").read_text()
    assert '"ece"' in (tmp_path / "out" / "calibration.json").read_text()


def test_expected_calibration_error_of_calibrated_and_overconfident_sets(tmp_path):
    from asr.metrics import expected_calibration_error, reliability_bins
    from asr.plots import plot_reliability

    generator = torch.Generator().manual_seed(0)
    confidence = torch.rand(20000, generator=generator)
    calibrated = (torch.rand(20000, generator=generator) < confidence).tolist()
    assert expected_calibration_error(confidence.tolist(), calibrated) < 0.02
    overconfident = (torch.rand(20000, generator=generator) < confidence / 2).tolist()
    assert expected_calibration_error(confidence.tolist(), overconfident) > 0.2
    plot_reliability(reliability_bins(confidence.tolist(), calibrated), tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000



def test_realtime_file_chunks_come_at_the_pace_of_the_audio():
    from asr.streaming import file_chunks

    now, waits = [0.0], []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    chunks = list(file_chunks(torch.zeros(2500), 1000, 1000, realtime=True, clock=lambda: now[0], sleep=sleep))
    assert [len(c) for c in chunks] == [1000, 1000, 500] and waits == [1.0, 1.0, 0.5]
