"""The model in git (checkpoints/synth-small) on freshly synthesized speech: it recognises it,
and forcing the reference phones through it finds the synthesizer's own phone boundaries."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from asr.errors import UserError
from asr.evaluation import boundary_errors, evaluate
from asr.transcribe import Transcriber
from benchmarks.alignment import even_boundary_errors

PHONE_MODEL = Path(__file__).resolve().parents[1] / "checkpoints" / "synth-small"


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber.from_checkpoint(PHONE_MODEL)


@pytest.fixture(scope="module")
def utterances(synthesized_speech):
    """Sentences the model was not trained on (another seed), all seven voices; skips without flite and festival."""
    return synthesized_speech


def test_the_shipped_model_recognises_synthesized_speech(transcriber, utterances, tmp_path):
    summary = evaluate(transcriber, utterances, tmp_path, log=lambda m: None)
    assert summary["failed"] == 0
    assert summary["per"]["rate"] < 0.3  # its test speakers: 11.8 %; chance is near 100 %


def test_forced_alignment_finds_the_phone_boundaries(transcriber, utterances):
    ours = [e for u in utterances for e in boundary_errors(transcriber, u)]
    even = [e for u in utterances for e in even_boundary_errors(u, 16000)]
    assert len(ours) == len(even) > 500
    assert statistics.median(ours) < 0.025  # seconds; 13.6 ms on its test speakers
    assert statistics.mean(ours) < 0.3 * statistics.mean(even)


def test_aligning_the_decoded_labels_gives_the_transcripts_timings(transcriber, utterances):
    for utterance in utterances[:5]:
        decoded = transcriber.transcribe(utterance.path)
        aligned = transcriber.align(utterance.path, decoded.text)
        assert aligned.labels == decoded.labels
        assert [(s.start, s.end) for s in aligned.segments] == [(s.start, s.end) for s in decoded.segments]
        # All alignments together are at least as probable as the best path's one.
        assert aligned.score >= decoded.score - 1e-3


def test_a_transcript_too_long_for_the_audio_is_refused(transcriber, utterances):
    path = utterances[0].path
    with pytest.raises(UserError, match=str(path)):
        transcriber.align(path, " ".join(["aa", "b"] * 1000))
    with pytest.raises(UserError, match="empty"):
        transcriber.align(path, "  ")
    with pytest.raises(UserError, match="not in the model.s token set"):
        transcriber.align(path, "h# hello h#")
