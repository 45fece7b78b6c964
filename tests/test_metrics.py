import random

import jiwer
import pytest
import torchaudio

from asr.evaluation import corpus_counts
from asr.metrics import ErrorCounts, char_errors, corpus_errors, phone_errors, token_errors, word_errors
from asr.tokens import timit_phones


def test_counts_of_a_worked_example():
    # ref a b c d, hyp a x c d e: one substitution (b->x), one insertion (e)
    counts = token_errors("a b c d".split(), "a x c d e".split())
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.reference_length) == (1, 0, 1, 4)
    assert counts.rate == pytest.approx(0.5)


def test_empty_sides():
    assert token_errors([], ["a"]).insertions == 1
    assert token_errors(["a", "b"], []).deletions == 2
    assert ErrorCounts().rate == 0.0


def test_edit_distance_agrees_with_torchaudio_on_random_sequences():
    rng = random.Random(0)
    refs, hyps, total = [], [], 0
    for _ in range(200):
        ref = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice("abcdef") for _ in range(rng.randint(0, 12))]
        refs.append(ref), hyps.append(hyp)
        assert token_errors(ref, hyp).errors == torchaudio.functional.edit_distance(ref, hyp)
        total += torchaudio.functional.edit_distance(ref, hyp)
    corpus = corpus_errors(refs, hyps)
    assert corpus.errors == total
    assert corpus.reference_length == sum(map(len, refs))


def test_wer_and_cer_agree_with_jiwer():
    refs = ["the cat sat on the mat", "hello world", "a b c"]
    hyps = ["the cat sat on mat", "hello there world", "a c c d"]
    wer = sum((word_errors(r, h) for r, h in zip(refs, hyps)), ErrorCounts())
    cer = sum((char_errors(r, h) for r, h in zip(refs, hyps)), ErrorCounts())
    assert wer.rate == pytest.approx(jiwer.wer(refs, hyps))
    assert cer.rate == pytest.approx(jiwer.cer(refs, hyps))


def test_phone_error_rate_folds_before_scoring():
    # ix vs ih and pcl vs h# differ in 61 phones but not in 39; q is deleted
    ref, hyp = "h# q ix pcl p".split(), "h# ih h# p".split()
    assert phone_errors(ref, hyp, fold=True).errors == 0
    assert phone_errors(ref, hyp, fold=False).errors == 3


def test_corpus_counts_by_token_kind():
    tokens = timit_phones()
    counts = corpus_counts(tokens, ["h# ix n h#"], [tokens.encode_text("h# ih n")])
    assert counts["per"].errors == 1 and counts["per61"].errors == 2  # deletion; + substitution
