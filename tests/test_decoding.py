"""The CTC decoders against brute force, ctc_loss and each other.

Brute force: on tiny inputs every one of the V**T frame paths is enumerated,
collapsed to its labelling, and the path probabilities summed per labelling; an
exact search must find the same labellings with the same scores.
"""

import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

from asr.decoding import greedy, prefix_beam_search
from asr.lm import NGramTokenScorer, NGramWordScorer, train_ngram
from asr.tokens import TokenSet


def collapse(path, blank=0):
    labels, previous = [], None
    for token in path:
        if token != blank and token != previous:
            labels.append(token)
        previous = token
    return tuple(labels)


def brute_force(log_probs, blank=0, fused=lambda labels: 0.0):
    """Every labelling of ``log_probs`` (T, V): {labels: log P(labels) + fused(labels)}."""
    frames, vocab = log_probs.shape
    totals = {}
    for path in itertools.product(range(vocab), repeat=frames):
        log_p = sum(log_probs[t, c].item() for t, c in enumerate(path))
        labels = collapse(path, blank)
        totals.setdefault(labels, []).append(log_p)
    return {
        labels: torch.logsumexp(torch.tensor(scores, dtype=torch.float64), 0).item() + fused(labels)
        for labels, scores in totals.items()
    }


def random_log_probs(batch, frames, vocab, seed, sharpness=1.0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, vocab, generator=generator, dtype=dtype) * sharpness
    return logits.log_softmax(-1)


def assert_matches_brute_force(hypotheses, expected, top=None):
    ranked = sorted(expected.items(), key=lambda item: -item[1])[:top]
    assert len(hypotheses) >= len(ranked)
    found = {tuple(h.tokens): h.score for h in hypotheses}
    assert len(found) == len(hypotheses), "a labelling appears twice in the beam"
    for labels, score in ranked:
        assert found[labels] == pytest.approx(score, abs=1e-9)
    # Best first, and the best ones are the brute-force best ones.
    scores = [h.score for h in hypotheses]
    assert scores == sorted(scores, reverse=True)
    assert [h.score for h in hypotheses[: len(ranked)]] == pytest.approx([s for _, s in ranked], abs=1e-9)


def synthetic_alignment(labels, frames_per_label, vocab, sharp=8.0, noise=1.0, seed=0, blank=0):
    """Emissions for a known labelling: each label held a few frames, blanks between."""
    path = []
    for label in labels:
        path += [label] * frames_per_label + [blank]
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(path), vocab, generator=generator) * noise
    logits[torch.arange(len(path)), torch.tensor(path)] += sharp
    return logits.log_softmax(-1), path


# ---------------------------------------------------------------- greedy


def test_greedy_merges_repeats_drops_blanks_and_respects_lengths():
    log_probs = random_log_probs(3, 12, 5, seed=1, sharpness=3.0)
    lengths = torch.tensor([12, 7, 0])
    decoded = greedy(log_probs, lengths)
    for b, length in enumerate(lengths.tolist()):
        path = log_probs[b, :length].argmax(-1).tolist()
        assert decoded[b].tokens == list(collapse(path))
    assert decoded[2].tokens == [] and decoded[2].score == 0.0


def test_greedy_other_blank_index():
    log_probs = random_log_probs(2, 10, 4, seed=2, sharpness=3.0)
    decoded = greedy(log_probs, None, blank=3)
    for b in range(2):
        assert decoded[b].tokens == list(collapse(log_probs[b].argmax(-1).tolist(), blank=3))


def test_greedy_hypothesis_scores_the_best_path_and_times_its_tokens():
    # Frames: blank, 2, 2, blank, 1, 1, 2 | padding. The best path is every frame's argmax.
    path = [0, 2, 2, 0, 1, 1, 2, 1]
    log_probs = torch.full((1, len(path), 3), math.log(0.2), dtype=torch.float64)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = math.log(0.6)
    (found,) = greedy(log_probs, torch.tensor([7]))
    assert found.tokens == [2, 1, 2]
    assert found.timesteps == [1, 4, 6]  # where each token's run starts
    assert found.score == found.am_score == pytest.approx(7 * math.log(0.6))
    assert found.lm_score == 0.0
    # The same type as the beam search's, which with beam 1 finds this labelling too.
    (beam,) = prefix_beam_search(log_probs, torch.tensor([7]), beam_size=1)
    assert type(beam[0]) is type(found) and beam[0].tokens == found.tokens


# ---------------------------------------------------------------- exactness of the prefix search


@pytest.mark.parametrize("vocab,frames,seed", [(3, 6, 0), (4, 5, 1), (4, 6, 2), (3, 1, 3)])
def test_unbounded_beam_is_exact(vocab, frames, seed):
    log_probs = random_log_probs(1, frames, vocab, seed)
    expected = brute_force(log_probs[0])
    found = prefix_beam_search(log_probs, torch.tensor([frames]), beam_size=len(expected) + 5)[0]
    assert len(found) == len(expected)
    assert_matches_brute_force(found, expected)


def test_exact_with_batch_of_different_lengths():
    log_probs = random_log_probs(3, 6, 3, seed=4)
    lengths = torch.tensor([6, 4, 2])
    # What lies past each length must not matter.
    log_probs[1, 4:] = random_log_probs(1, 2, 3, seed=99)[0]
    results = prefix_beam_search(log_probs, lengths, beam_size=200)
    for b, length in enumerate(lengths.tolist()):
        assert_matches_brute_force(results[b], brute_force(log_probs[b, :length]))


def add(*log_ps):
    """log(sum(exp(log_ps))) in float64."""
    return torch.logsumexp(torch.tensor(log_ps, dtype=torch.float64), 0).item()


def accumulate(grown, prefix, blank_part, label_part):
    """Add alignment mass ending in blank / in the last label to ``grown[prefix]``."""
    old_blank, old_label = grown.get(prefix, (-math.inf, -math.inf))
    grown[prefix] = (add(old_blank, blank_part), add(old_label, label_part))


def reference_beam_search(log_probs, beam_size, blank=0, top_k=None, token_threshold=None, beam_threshold=None):
    """Hannun et al. (2014) alg. 1 with dicts, one prefix at a time: the textbook form.

    Pruning: a prefix grows only by the frame's top_k likeliest tokens that are within
    token_threshold of the frame's best, or into a prefix already in the beam (whose
    mass is never dropped); prefixes scoring beam_threshold below the best are dropped.
    """
    beam = {(): (0.0, -math.inf)}  # prefix -> (log p_blank, log p_label)
    for frame in log_probs.tolist():
        grown = {}
        labels = sorted((c for c in range(len(frame)) if c != blank), key=lambda c: -frame[c])
        floor = max(frame) - (token_threshold if token_threshold is not None else math.inf)
        allowed = {c for c in labels[:top_k] if frame[c] >= floor}

        for prefix, (p_b, p_nb) in beam.items():
            accumulate(grown, prefix, add(p_b, p_nb) + frame[blank], -math.inf)
            if prefix:
                accumulate(grown, prefix, -math.inf, p_nb + frame[prefix[-1]])
            for c, log_p in enumerate(frame):
                if c != blank and (c in allowed or prefix + (c,) in beam):
                    before = p_b if prefix and prefix[-1] == c else add(p_b, p_nb)
                    accumulate(grown, prefix + (c,), -math.inf, before + log_p)
        ranked = sorted(grown.items(), key=lambda item: -add(*item[1]))[:beam_size]
        best = add(*ranked[0][1])
        threshold = beam_threshold if beam_threshold is not None else math.inf
        beam = {prefix: scores for prefix, scores in ranked if add(*scores) > best - threshold}
    return [(list(prefix), add(*scores)) for prefix, scores in beam.items()]


@pytest.mark.parametrize(
    "beam_size,blank,pruning,seed",
    [
        (1, 0, {}, 20),
        (3, 0, {}, 21),
        (8, 0, {}, 22),
        (6, 0, {"top_k": 2}, 23),
        (6, 3, {"top_k": 2}, 24),
        (8, 0, {"token_threshold": 1.0}, 25),
        (8, 1, {"beam_threshold": 2.0}, 26),
    ],
)
def test_bounded_beam_matches_the_textbook_algorithm(beam_size, blank, pruning, seed):
    log_probs = random_log_probs(2, 20, 5, seed, sharpness=1.5)
    lengths = torch.tensor([20, 13])
    results = prefix_beam_search(log_probs, lengths, beam_size=beam_size, blank=blank, **pruning)
    for b, length in enumerate(lengths.tolist()):
        expected = reference_beam_search(log_probs[b, :length], beam_size, blank=blank, **pruning)
        assert [h.tokens for h in results[b]] == [tokens for tokens, _ in expected]
        assert [h.score for h in results[b]] == pytest.approx([score for _, score in expected], abs=1e-9)


def test_blank_at_another_index():
    log_probs = random_log_probs(1, 5, 4, seed=6)
    expected = brute_force(log_probs[0], blank=2)
    found = prefix_beam_search(log_probs, torch.tensor([5]), beam_size=300, blank=2)[0]
    assert_matches_brute_force(found, expected)


def test_score_is_minus_ctc_loss():
    # 2**9 - 1 prefixes of at most 8 labels over 2 labels: the beam holds them all.
    log_probs = random_log_probs(2, 8, 3, seed=7, sharpness=2.0, dtype=torch.float32)
    lengths = torch.tensor([8, 6])
    results = prefix_beam_search(log_probs, lengths, beam_size=512)
    for b, length in enumerate(lengths.tolist()):
        for hypothesis in results[b]:
            loss = F.ctc_loss(
                log_probs[b, :length, None], torch.tensor([hypothesis.tokens]),
                torch.tensor([length]), torch.tensor([len(hypothesis.tokens)]), reduction="none",
            )
            assert hypothesis.score == pytest.approx(-loss.item(), abs=1e-3)
            assert hypothesis.am_score == hypothesis.score


def test_beam_one_is_greedy_on_peaked_emissions():
    labels = [3, 1, 1, 4, 2, 2, 5]
    log_probs, _ = synthetic_alignment(labels, 3, 6)
    batch = torch.stack([log_probs, random_log_probs(1, len(log_probs), 6, seed=8, sharpness=6.0)[0].float()])
    found = prefix_beam_search(batch, None, beam_size=1)
    assert [h[0].tokens for h in found] == [h.tokens for h in greedy(batch, None)]
    assert found[0][0].tokens == labels


def test_timesteps_are_the_first_frame_of_each_label():
    labels = [2, 2, 1, 3]
    log_probs, path = synthetic_alignment(labels, 2, 4)
    best = prefix_beam_search(log_probs[None], None, beam_size=4)[0][0]
    assert best.tokens == labels
    assert best.timesteps == [t for t in range(len(path)) if path[t] and (t == 0 or path[t - 1] != path[t])]


def test_token_pruning_keeps_the_best_hypothesis_on_peaked_emissions():
    log_probs = random_log_probs(4, 40, 30, seed=9, sharpness=5.0)
    lengths = torch.tensor([40, 33, 25, 40])
    full = prefix_beam_search(log_probs, lengths, beam_size=16)
    pruned = prefix_beam_search(log_probs, lengths, beam_size=16, top_k=5, token_threshold=20.0, beam_threshold=30.0)
    for a, b in zip(full, pruned):
        assert a[0].tokens == b[0].tokens
        assert a[0].score == pytest.approx(b[0].score, abs=1e-9)


def test_nbest_and_empty_input():
    log_probs = random_log_probs(2, 5, 3, seed=11)
    assert [len(h) for h in prefix_beam_search(log_probs, None, beam_size=10, nbest=3)] == [3, 3]
    empty = prefix_beam_search(log_probs, torch.tensor([0, 5]), beam_size=4)
    assert len(empty[0]) == 1 and empty[0][0].tokens == [] and empty[0][0].score == 0.0


# ---------------------------------------------------------------- shallow fusion


def phone_tokens():
    return TokenSet(("<blank>", "aa", "b", "k"), "phones")


def test_token_lm_fusion_is_exact_with_an_unbounded_beam():
    tokens = phone_tokens()
    random.seed(0)
    corpus = [random.choices(tokens.symbols[1:], weights=[5, 2, 1], k=random.randint(1, 6)) for _ in range(60)]
    lm = train_ngram(corpus, order=2, vocabulary=tokens.symbols[1:])
    scorer = NGramTokenScorer(lm, tokens.symbols)
    weight, bonus = 0.7, 0.4

    def fused(labels):
        return weight * lm.log10_sentence(tokens.decode(labels)) * math.log(10) + bonus * len(labels)

    log_probs = random_log_probs(2, 5, 4, seed=12)
    results = prefix_beam_search(log_probs, torch.tensor([5, 4]), beam_size=400, lm=scorer,
                                 lm_weight=weight, insertion_bonus=bonus)
    for b, length in enumerate([5, 4]):
        assert_matches_brute_force(results[b], brute_force(log_probs[b, :length], fused=fused))
        for h in results[b]:
            assert h.lm_score == pytest.approx(lm.log10_sentence(tokens.decode(h.tokens)) * math.log(10))
            assert h.score == pytest.approx(h.am_score + weight * h.lm_score + bonus * len(h.tokens))


def test_word_lm_fusion_is_exact_with_an_unbounded_beam():
    tokens = TokenSet(("<blank>", " ", "a", "b"), "chars")
    words = train_ngram([["ab", "a"], ["a", "ab", "ab"], ["b"], ["ab"]], order=2)
    scorer = NGramWordScorer(words, tokens.symbols)
    weight = 1.3

    def fused(labels):
        return weight * words.log10_sentence(tokens.to_text(labels).split()) * math.log(10)

    log_probs = random_log_probs(1, 6, 4, seed=13)
    results = prefix_beam_search(log_probs, None, beam_size=500, lm=scorer, lm_weight=weight)
    assert_matches_brute_force(results[0], brute_force(log_probs[0], fused=fused))


def test_lm_changes_the_best_hypothesis_when_emissions_are_ambiguous():
    tokens = phone_tokens()
    lm = train_ngram([["aa", "b"]] * 20 + [["aa", "k"]], order=2, vocabulary=tokens.symbols[1:])
    scorer = NGramTokenScorer(lm, tokens.symbols)
    # aa, then b or k almost equally likely, k slightly ahead.
    probs = torch.tensor([[0.05, 0.9, 0.025, 0.025], [0.1, 0.0, 0.44, 0.46], [0.9, 0.0, 0.05, 0.05]])
    log_probs = probs.clamp(min=1e-6).log()[None]
    assert prefix_beam_search(log_probs, None, beam_size=4)[0][0].tokens == [1, 3]
    assert prefix_beam_search(log_probs, None, beam_size=4, lm=scorer, lm_weight=0.5)[0][0].tokens == [1, 2]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_gives_the_cpu_results():
    tokens = phone_tokens()
    lm = train_ngram([["aa", "b", "k"], ["k", "aa"]], order=3, vocabulary=tokens.symbols[1:])
    scorer = NGramTokenScorer(lm, tokens.symbols)
    log_probs = random_log_probs(3, 20, 4, seed=14, sharpness=2.0)
    lengths = torch.tensor([20, 15, 9])
    options = dict(beam_size=8, lm=scorer, lm_weight=0.5, insertion_bonus=0.2, top_k=3)
    cpu = prefix_beam_search(log_probs, lengths, **options)
    gpu = prefix_beam_search(log_probs.cuda(), lengths.cuda(), **options)
    for a, b in zip(cpu, gpu):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-9)
