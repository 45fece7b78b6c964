"""Hotwords and a closed vocabulary in the prefix beam search (`asr.decoding.WordBias`).

The bias is a function of the labelling alone, so an unbounded beam must find
exactly the brute-force ranking of ``log P_ctc + bias``; constructed emissions
check that a boost turns a narrow loss into a win, and random ones that a
vocabulary is never left.
"""

import math

import pytest
import torch

from asr.decoding import WordBias, prefix_beam_search
from tests.test_decoding import brute_force, random_log_probs

SYMBOLS = ("_", " ", "a", "b", "c", "k", "t", "o", "z")
IDS = {s: i for i, s in enumerate(SYMBOLS)}


def ids(text):
    return [IDS[c] for c in text]


def text(tokens):
    return "".join(SYMBOLS[t] for t in tokens)


def spelled(frames):
    """Log probs (1, T, V) putting most mass on the given per-frame {symbol: probability}."""
    probs = torch.full((len(frames), len(SYMBOLS)), 1e-4, dtype=torch.float64)
    for t, choices in enumerate(frames):
        for symbol, p in choices.items():
            probs[t, IDS[symbol]] = p
    return (probs / probs.sum(1, keepdim=True)).log()[None]


def test_bonus_is_kept_only_for_a_finished_hotword():
    bias = WordBias(SYMBOLS, hotwords={"kat": 1.5})
    assert bias.total(ids("kat")) == pytest.approx(4.5)
    assert bias.total(ids("kat kat ")) == pytest.approx(9.0)
    assert bias.total(ids("ka")) == 0.0  # ended before completing it
    assert bias.total(ids("kab")) == 0.0  # left the trie
    assert bias.total(ids("katt")) == 0.0  # a longer word is not the hotword
    assert bias.total(ids("ka cat")) == 0.0
    assert bias.total(ids("cat")) == 0.0


def test_overlapping_hotwords_each_keep_their_own_boost():
    bias = WordBias(SYMBOLS, hotwords={"ab": 1.0, "abc": 2.0})
    # Along a shared prefix the larger boost is earned; a finished "ab" gives back the excess.
    assert bias.total(ids("abc")) == pytest.approx(6.0)
    assert bias.total(ids("ab")) == pytest.approx(2.0)
    assert bias.total(ids("ab abc")) == pytest.approx(8.0)
    assert bias.total(ids("a")) == 0.0


def test_vocabulary_totals():
    bias = WordBias(SYMBOLS, vocabulary=["cat", "to"])
    assert bias.total(ids("cat to")) == 0.0
    assert bias.total(ids(" cat  to ")) == 0.0
    assert bias.total(ids("ca")) == -math.inf  # ends inside a word
    assert bias.total(ids("cab")) == -math.inf
    assert bias.total(ids("catt")) == -math.inf
    # Hotwords join the vocabulary.
    assert WordBias(SYMBOLS, hotwords={"kat": 1.0}, vocabulary=["cat"]).total(ids("kat")) == pytest.approx(3.0)


def test_a_hotword_the_model_cannot_spell_is_refused():
    with pytest.raises(ValueError, match="'kax'"):
        WordBias(SYMBOLS, hotwords={"kax": 1.0})


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("options", [
    {"hotwords": {"ab": 1.2, "b": 0.7}},
    {"vocabulary": ["a", "ab", "ba"]},
    {"hotwords": {"ba": 2.0}, "vocabulary": ["a", "b"]},
])
def test_unbounded_beam_is_exact_with_the_bias(options, seed):
    symbols = ("_", " ", "a", "b")
    bias = WordBias(symbols, **options)
    log_probs = random_log_probs(1, 5, len(symbols), seed)
    expected = brute_force(log_probs[0], fused=lambda labels: bias.total(list(labels)))
    expected = {labels: score for labels, score in expected.items() if score > -math.inf}
    (hypotheses,) = prefix_beam_search(log_probs, beam_size=4**5, bias=bias)
    assert {tuple(h.tokens) for h in hypotheses} == set(expected)
    for h in hypotheses:
        assert h.score == pytest.approx(expected[tuple(h.tokens)], abs=1e-9)
    assert [h.score for h in hypotheses] == sorted(h.score for h in hypotheses)[::-1]


def test_a_boost_turns_a_narrow_loss_into_a_win():
    # "cat" and "kat" are heard alike; "cat" is a little likelier.
    log_probs = spelled([{"c": 0.52, "k": 0.46}, {"_": 0.9}, {"a": 0.9}, {"t": 0.9}, {"_": 0.9}])
    (plain,), = prefix_beam_search(log_probs, beam_size=8, nbest=1)
    assert text(plain.tokens) == "cat"
    (boosted,), = prefix_beam_search(log_probs, beam_size=8, nbest=1, bias=WordBias(SYMBOLS, hotwords={"kat": 0.1}))
    assert text(boosted.tokens) == "kat"
    assert boosted.am_score == pytest.approx(plain.am_score + math.log(0.46 / 0.52), abs=1e-3)
    # Too small a boost does not overturn it.
    (weak,), = prefix_beam_search(log_probs, beam_size=8, nbest=1, bias=WordBias(SYMBOLS, hotwords={"kat": 0.01}))
    assert text(weak.tokens) == "cat"


def test_a_started_but_unfinished_hotword_keeps_no_bonus():
    # "ka" then the end (no "t" heard): the boost for "kat" must not make "ka" beat "ca".
    log_probs = spelled([{"c": 0.52, "k": 0.46}, {"a": 0.9}, {"_": 0.9}])
    bias = WordBias(SYMBOLS, hotwords={"kat": 0.5})
    (best,), = prefix_beam_search(log_probs, beam_size=8, nbest=1, bias=bias)
    assert text(best.tokens) == "ca"
    # Nor before a space: "ka " gives the bonus back too.
    log_probs = spelled([{"c": 0.52, "k": 0.46}, {"a": 0.9}, {" ": 0.9}, {"_": 0.9}])
    (best,), = prefix_beam_search(log_probs, beam_size=8, nbest=1, bias=bias)
    assert text(best.tokens) == "ca "


@pytest.mark.parametrize("seed", range(3))
def test_the_boost_leaves_a_decoding_without_hotword_prefixes_unchanged(seed):
    log_probs = random_log_probs(3, 25, len(SYMBOLS), seed)
    log_probs[:, :, IDS["z"]] = -1e4  # no hypothesis worth keeping starts a hotword
    bias = WordBias(SYMBOLS, hotwords={"zoo": 3.0, "z": 1.0})
    plain = prefix_beam_search(log_probs, beam_size=8)
    boosted = prefix_beam_search(log_probs, beam_size=8, bias=bias)
    assert [[h.tokens for h in u] for u in boosted] == [[h.tokens for h in u] for u in plain]
    assert [[h.score for h in u] for u in boosted] == [[h.score for h in u] for u in plain]


@pytest.mark.parametrize("seed", range(4))
def test_no_emitted_word_is_outside_the_vocabulary(seed):
    vocabulary = {"cat", "to", "a", "boat", "tab"}
    log_probs = random_log_probs(4, 40, len(SYMBOLS), seed, sharpness=2.0)
    found = prefix_beam_search(log_probs, torch.tensor([40, 31, 17, 9]), beam_size=8,
                               bias=WordBias(SYMBOLS, vocabulary=vocabulary))
    emitted = [word for utterance in found for h in utterance for word in text(h.tokens).split()]
    assert emitted, "the search found nothing at all"
    assert set(emitted) <= vocabulary


def test_the_best_hypothesis_inside_the_vocabulary_is_found():
    # The best path says "cot", which is no word; "cat" is the likeliest word.
    log_probs = spelled([{"c": 0.9}, {"o": 0.6, "a": 0.3, "b": 0.05}, {"t": 0.9}, {"_": 0.9}])
    (free,), = prefix_beam_search(log_probs, beam_size=8, nbest=1)
    assert text(free.tokens) == "cot"
    (closed,), = prefix_beam_search(log_probs, beam_size=8, nbest=1,
                                    bias=WordBias(SYMBOLS, vocabulary=["cat", "cab", "bat"]))
    assert text(closed.tokens) == "cat"
    assert closed.score == closed.am_score  # a vocabulary only prunes


def test_nothing_found_when_no_vocabulary_word_fits():
    log_probs = spelled([{"c": 0.9}, {"_": 0.9}])
    (found,) = prefix_beam_search(log_probs, beam_size=4, bias=WordBias(SYMBOLS, vocabulary=["zoo"]))
    # Only labellings without words are left ("" and " ").
    assert found and all(not text(h.tokens).split() for h in found)
