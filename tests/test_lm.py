"""The n-gram LM: ARPA reading/writing, Kneser-Ney training, the search's scorers, tuning."""

import ast
import gzip
import math
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

from asr.errors import UserError
from asr.fusion import tune_fusion
from asr.lm import (
    NGramTokenScorer,
    NGramWordScorer,
    load_arpa,
    train_ngram,
)
from asr.tokens import TokenSet, speech_characters, timit_phones

# Written the way KenLM / SRILM write: a preamble, tabs, blank lines, missing backoffs, <unk>.
HAND_ARPA = """This file was written by hand.

\\data\\
ngram 1=5
ngram 2=3
ngram 3=1

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-1.2\t<unk>
-0.5\ta\t-0.3
-0.7\tb\t-0.2

\\2-grams:
-0.2\t<s> a\t-0.1
-0.4\ta b

-0.3\tb a

\\3-grams:
-0.05 <s> a b
\\end\\
"""


@pytest.fixture
def hand_lm(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND_ARPA)
    return load_arpa(path)


def test_hand_written_arpa_probabilities(hand_lm):
    assert hand_lm.order == 3
    cases = {
        ("b", ("<s>", "a")): -0.05,  # the trigram
        ("a", ("<s>", "a")): -0.1 + -0.3 + -0.5,  # bow(<s> a) bow(a) P(a)
        ("</s>", ("a", "b")): 0.0 + -0.2 + -1.0,  # "a b" has no bow: 0; then bow(b) P(</s>)
        ("a", ("b",)): -0.3,
        ("b", ("a",)): -0.4,
        ("b", ("<s>",)): -0.5 + -0.7,
        ("never-seen", ("a",)): -0.3 + -1.2,  # <unk>
        ("a", ()): -0.5,
    }
    for (word, context), expected in cases.items():
        assert hand_lm.log10_prob(word, context) == pytest.approx(expected)
    assert hand_lm.log10_sentence(["a", "b"]) == pytest.approx(-0.2 + -0.05 + -1.2)


def test_scorers_agree_with_the_hand_computed_values(hand_lm):
    symbols = ("<blank>", "a", "b")
    for dense_limit in (None, 0):  # the dense table and the binary-search path
        scorer = NGramTokenScorer(hand_lm, symbols, dense_limit=dense_limit)
        state = torch.tensor([scorer.initial_state()])
        total = 0.0
        for token in (1, 2):
            log_p, state = scorer.score(state, torch.tensor([token]))
            total += log_p.item()
        total += scorer.final_score(state).item()
        assert total == pytest.approx((-0.2 + -0.05 + -1.2) * math.log(10))


def sentences(symbols, count, seed, max_length=8):
    rng = random.Random(seed)
    weights = [rng.random() ** 2 for _ in symbols]
    return [rng.choices(symbols, weights, k=rng.randint(1, max_length)) for _ in range(count)]


def kneser_ney_by_the_equation(corpus, order, vocabulary):
    """Interpolated KN straight from Chen & Goodman (1999) eq. 12-13, recursively, no backoff form."""
    counts = Counter()
    for sentence in corpus:
        padded = ("<s>", *sentence, "</s>")
        for k in range(1, order + 1):
            counts.update(padded[i : i + k] for i in range(len(padded) - k + 1))
    def adjusted(gram):
        if len(gram) == order or gram[0] == "<s>":
            return counts[gram]
        return sum(1 for other in counts if len(other) == len(gram) + 1 and other[1:] == gram)
    levels = {k: {g: adjusted(g) for g in counts if len(g) == k and g != ("<s>",)} for k in range(1, order + 1)}
    discounts = {}
    for k, level in levels.items():
        n = Counter(level.values())
        discounts[k] = n[1] / (n[1] + 2 * n[2]) if n[1] and n[2] else 0.5

    def prob(word, context):
        if len(context) + 1 > order:
            context = context[len(context) - order + 1 :]
        k = len(context) + 1
        lower = 1 / len(vocabulary) if k == 1 else prob(word, context[1:])
        followers = {g[-1]: a for g, a in levels[k].items() if g[:-1] == context}
        total = sum(followers.values())
        if not total:
            return lower
        d = discounts[k]
        return max(followers.get(word, 0) - d, 0) / total + d * len(followers) / total * lower
    return prob


def test_kneser_ney_matches_the_interpolation_equations():
    corpus = sentences(list("abcd"), 40, seed=1)
    lm = train_ngram(corpus, order=3, vocabulary="abcde")  # "e" is never seen
    vocabulary = ["a", "b", "c", "d", "e", "</s>", "<unk>"]
    reference = kneser_ney_by_the_equation(corpus, 3, vocabulary)
    contexts = [()] + [("<s>",)] + [(w,) for w in "abcde"]
    contexts += [(u, w) for u in ["<s>", *"abcde"] for w in "abcde"]
    for context in contexts:
        for word in vocabulary:
            assert 10 ** lm.log10_prob(word, context) == pytest.approx(reference(word, context), rel=1e-9)


def assert_every_context_sums_to_one(lm, tolerance):
    vocabulary = [w for w in lm.vocabulary if w != "<s>"]
    contexts = [gram for level in lm.ngrams[:-1] for gram in level if gram[-1] != "</s>"]
    contexts += [(), ("never-seen",), ("never-seen", vocabulary[0])]
    for context in contexts:
        total = sum(10 ** lm.log10_prob(word, context) for word in vocabulary)
        assert total == pytest.approx(1.0, abs=tolerance), context


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_distribution_sums_to_one(order, tmp_path):
    lm = train_ngram(sentences(list("abc "), 60, seed=order), order=order, vocabulary="abc z")
    assert_every_context_sums_to_one(lm, 1e-9)
    lm.write_arpa(tmp_path / "lm.arpa")
    assert_every_context_sums_to_one(load_arpa(tmp_path / "lm.arpa"), 1e-5)


def test_phone_bigram_on_timit_phones_sums_to_one():
    phones = timit_phones()
    lm = train_ngram(sentences(list(phones.symbols[1:20]), 50, seed=3), order=2, vocabulary=phones.symbols[1:])
    assert len(lm.vocabulary) == 61 + 3  # the phones, <s>, </s>, <unk>
    assert_every_context_sums_to_one(lm, 1e-9)


def test_arpa_round_trip_is_exact_and_writes_the_space_as_a_symbol(tmp_path):
    lm = train_ngram(sentences(list("ab c"), 30, seed=4), order=4)
    first, second = tmp_path / "a.arpa", tmp_path / "b.arpa"
    lm.write_arpa(first)
    text = first.read_text()
    assert "<space>" in text and "\t \t" not in text
    again = load_arpa(first)
    again.write_arpa(second)
    assert second.read_text() == text
    assert again.vocabulary == lm.vocabulary and " " in again.vocabulary
    for level, level_again in zip(lm.ngrams, again.ngrams):
        assert level.keys() == level_again.keys()
        for gram, (log_p, backoff) in level.items():
            assert level_again[gram][0] == pytest.approx(log_p, rel=1e-6, abs=1e-7)
            assert (level_again[gram][1] is None) == (backoff is None)
    assert sorted(os.listdir(tmp_path)) == ["a.arpa", "b.arpa"]  # no temporary file left


def test_writing_replaces_an_existing_file(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text("old")
    train_ngram([["a"]], order=2).write_arpa(path)
    assert load_arpa(path).order == 2
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="a-file/lm.arpa: cannot write"):
        train_ngram([["a"]], order=2).write_arpa(tmp_path / "a-file" / "lm.arpa")


@pytest.mark.parametrize(
    "text,line,problem",
    [
        ("\\1-grams:\n-1 a\n\\end\\\n", 3, "no \\data\\"),
        ("\\data\\\nngram 1=x\n", 2, "bad count"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 a\nnan? b\n\\end\\\n", 6, "not a number"),
        ("\\data\\\nngram 1=3\n\\1-grams:\n-1 a\n-1 b\n\\end\\\n", 2, "the header says 3"),
        ("\\data\\\nngram 1=1\n\\1-grams:\n-1 a\n", 4, "expected \\end\\"),
        ("\\data\\\nngram 1=1\n\\1-grams:\n-1 a -1 -1\n\\end\\\n", 4, "needs a log10 probability"),
        ("\\data\\\nngram 1=1\n\\1-grams:\n0.5 a\n\\end\\\n", 4, "not a log10 probability"),
        ("\\data\\\nngram 1=1\nngram 2=1\n\\1-grams:\n-1 a\n\\2-grams:\n-1 b a\n\\end\\\n", 7, "which the file lacks"),
        ("\\data\\\nngram 1=1\nngram 2=0\n\\1-grams:\n-1 a\n\\3-grams:\n\\end\\\n", 6, "expected the \\2-grams:"),
    ],
)
def test_malformed_arpa_names_the_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        load_arpa(path)
    assert f"bad.arpa:{line}:" in str(error.value)
    assert problem in str(error.value)


def test_missing_arpa_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such ARPA file"):
        load_arpa(tmp_path / "nope.arpa")


@pytest.mark.parametrize("scorer", [NGramTokenScorer, NGramWordScorer])
def test_an_arpa_model_without_end_of_sentence_is_refused_naming_its_file(tmp_path, scorer):
    path = tmp_path / "no-end.arpa"
    path.write_text("\\data\\\nngram 1=3\n\\1-grams:\n-99 <s>\n-0.3 a\n-0.3 b\n\\end\\\n")
    with pytest.raises(UserError, match=r"no-end\.arpa: has no </s> unigram.*Add a </s> 1-gram"):
        scorer(load_arpa(path), ("<blank>", "a", "b", " "))


def test_devices_and_folders_are_refused_unread(tmp_path):
    # /dev/null is a character device like /dev/zero, which a reader would read without end.
    for path in ("/dev/null", tmp_path):
        with pytest.raises(UserError, match="not a regular file.*Give the path of an ARPA file"):
            load_arpa(path)


def test_a_pipe_is_refused_unread(tmp_path):
    fifo = tmp_path / "lm.arpa"
    os.mkfifo(fifo)
    # A writer, so that a reader that opens the pipe gets an end instead of waiting for ever.
    writer = threading.Thread(target=fifo.write_text, args=("\\data\\\n",), daemon=True)
    writer.start()
    try:
        with pytest.raises(UserError, match="lm.arpa: not a regular file"):
            load_arpa(fifo)
    finally:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer finish if nobody read
        writer.join()
        os.close(reader)


@pytest.mark.parametrize("head", [b"", b"\\data\\\n", b"\\data\\\nngram 1=1\n\\1-grams:\n"])
def test_an_endless_line_is_refused_before_it_is_read(tmp_path, head):
    path = tmp_path / "zeros.arpa"
    path.write_bytes(head + b"\0" * (1 << 17) + b"\xff")  # \xff: reading to the end fails otherwise
    line = len(head.splitlines()) + 1
    with pytest.raises(UserError, match=f"zeros.arpa:{line}: a line longer than"):
        load_arpa(path)


def test_reading_stops_at_the_first_line_that_is_not_arpa(tmp_path):
    path = tmp_path / "bad.arpa"
    # What follows the bad line is not even UTF-8: a reader that went on would fail there instead.
    path.write_bytes(b"\\data\\\nngram 1=1\n\\1-grams:\nhello world\n" + b"-1 a\n" * 40000 + b"\xff\n")
    with pytest.raises(UserError, match="bad.arpa:4: 'hello' is not a number"):
        load_arpa(path)


def test_a_long_preamble_is_not_an_arpa_file(tmp_path, monkeypatch):
    monkeypatch.setattr("asr.lm.arpa._LONGEST_PREAMBLE", 100)
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"some text of a corpus\n" * 1000 + b"\xff\n")  # \xff: as in the test above
    with pytest.raises(UserError, match=r"corpus.txt:5: no \\data\\ header in the first 100 characters"):
        load_arpa(path)


def test_a_truncated_gzip_file_is_a_user_error(tmp_path):
    path = tmp_path / "lm.arpa.gz"
    path.write_bytes(gzip.compress(HAND_ARPA.encode())[:-20])
    with pytest.raises(UserError, match="lm.arpa.gz: cannot read it as an ARPA file"):
        load_arpa(path)


def test_training_rejects_what_it_cannot_use():
    with pytest.raises(UserError):
        train_ngram([], order=2)
    with pytest.raises(UserError):
        train_ngram([["a"]], order=0)
    with pytest.raises(UserError, match="cannot be an n-gram word"):
        train_ngram([["a b"]], order=2)


def reference_token_logs(lm, symbols, tokens):
    """Natural-log P of each token and of </s>, by NGramLM.log10_prob."""
    history, logs = ["<s>"], []
    for word in [*(symbols[t] for t in tokens), "</s>"]:
        logs.append(lm.log10_prob(word, history) * math.log(10))
        history.append(word)
    return logs


@pytest.mark.parametrize(
    "order,dense_limit,cache_limit",
    [(1, None, None), (2, None, None), (4, None, None), (4, 0, None), (5, 0, None), (5, 0, 50)],
)
def test_token_scorer_matches_the_backoff_rule(order, dense_limit, cache_limit, monkeypatch):
    # dense_limit 0: rows are looked up as states come; cache_limit 50: the cache starts again often.
    if cache_limit is not None:
        monkeypatch.setattr("asr.lm.tables._RowCache.LIMIT", cache_limit)
    tokens = speech_characters()
    corpus = [list(" ".join(words)) for words in sentences(["the", "cat", "sat", "a", "mat"], 60, seed=5, max_length=5)]
    lm = train_ngram(corpus, order=order, vocabulary=tokens.symbols[1:])
    scorer = NGramTokenScorer(lm, tokens.symbols, dense_limit=dense_limit)
    rng = random.Random(6)
    batch = [rng.choices(range(1, len(tokens)), k=9) for _ in range(5)]
    batch += [tokens.encode_text("the cat sat"), tokens.encode_text("a mat the mat")[:9]]
    batch = [sequence[:9] for sequence in batch]
    ids = torch.tensor(batch)
    states = torch.full((len(batch),), scorer.initial_state())
    columns = []
    for t in range(ids.shape[1]):
        log_p, states = scorer.score(states, ids[:, t])
        columns.append(log_p)
    columns.append(scorer.final_score(states))
    found = torch.stack(columns, 1)
    for row, sequence in zip(found.tolist(), batch):
        assert row == pytest.approx(reference_token_logs(lm, tokens.symbols, sequence), abs=1e-9)


def reference_word_logs(lm, text):
    return lm.log10_sentence(text.split()) * math.log(10)


@pytest.mark.parametrize("dense", [True, False])
def test_word_scorer_scores_words_at_spaces_and_the_end(dense, monkeypatch):
    if not dense:  # the binary-search paths of the n-gram and of the trie
        monkeypatch.setattr(NGramWordScorer, "DENSE_TRIE_LIMIT", 0)
    tokens = speech_characters()
    words = train_ngram([s.split() for s in ["the cat sat", "the mat", "a cat", "the cat sat on a mat"]], order=3)
    rng = random.Random(7)
    texts = ["the cat sat", " the  cat ", "thecat sat", "dog", "", "the ca", "a mat on the cat sat "]
    texts += [" ".join(rng.choice(["the", "cat", "sat", "on", "a", "mat", "xyz"]) for _ in range(5)) for _ in range(5)]
    for dense_limit in ((None,) if dense else (0,)):
        scorer = NGramWordScorer(words, tokens.symbols, dense_limit=dense_limit)
        for text in texts:
            state = torch.tensor([scorer.initial_state()])
            total = 0.0
            for token in tokens.encode(list(text)):
                log_p, state = scorer.score(state, torch.tensor([token]))
                total += log_p.item()
                if token != tokens.symbols.index(" "):
                    assert log_p.item() == 0.0  # letters are free; words are scored when they end
            total += scorer.final_score(state).item()
            assert total == pytest.approx(reference_word_logs(words, text), abs=1e-9), text


def test_word_scorer_penalises_unknown_words_without_unk(tmp_path):
    path = tmp_path / "words.arpa"
    path.write_text("\\data\\\nngram 1=3\n\\1-grams:\n-1 </s>\n-99 <s>\n-0.5 hi\n\\end\\\n")
    scorer = NGramWordScorer(load_arpa(path), speech_characters().symbols, oov_log10prob=-7.0)
    tokens = speech_characters()
    state = torch.tensor([scorer.initial_state()])
    total = 0.0
    for token in tokens.encode(list("ho hi")):
        log_p, state = scorer.score(state, torch.tensor([token]))
        total += log_p.item()
    total += scorer.final_score(state).item()
    assert total == pytest.approx((-7.0 - 0.5 - 1.0) * math.log(10))


def test_word_scorer_needs_a_space_token():
    with pytest.raises(UserError, match="space"):
        NGramWordScorer(train_ngram([["a"]], 2), timit_phones().symbols)


def token_error_rate(hypotheses, references):
    def distance(a, b):
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            previous, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
        return row[-1]
    return sum(distance(h, r) for h, r in zip(hypotheses, references)) / sum(len(r) for r in references)


def test_tune_fusion_picks_a_positive_weight_when_the_lm_disambiguates():
    tokens = TokenSet(("<blank>", "aa", "b", "k"), "phones")
    # The LM knows "aa" is followed by "b"; the acoustics can hardly tell b from k.
    lm = train_ngram([["aa", "b"] * 3] * 30 + [["k"]], order=2, vocabulary=tokens.symbols[1:])
    scorer = NGramTokenScorer(lm, tokens.symbols)
    rng = random.Random(8)
    batches, lengths, references = [], [], []
    for _ in range(2):
        batch = []
        for _ in range(3):
            frames = []
            for _ in range(3):  # aa b aa b aa b, each b heard as k half the time (just)
                frames += [[0.02, 0.96, 0.01, 0.01], [0.9, 0.04, 0.03, 0.03]]
                b_first = rng.random() < 0.5
                frames += [[0.04, 0.0, 0.49, 0.47] if b_first else [0.04, 0.0, 0.47, 0.49], [0.9, 0.04, 0.03, 0.03]]
            batch.append(frames)
            references.append([1, 2] * 3)
        batches.append(torch.tensor(batch).clamp(min=1e-6).log())
        lengths.append(torch.full((3,), len(batch[0])))
    weight, bonus, table = tune_fusion(
        batches, lengths, references, scorer, error_rate_fn=token_error_rate,
        weights=(0.0, 0.5, 1.0), bonuses=(0.0, 1.0), beam_size=4,
    )
    errors = {(w, b): e for w, b, e in table}
    assert len(table) == 6
    assert weight > 0
    assert errors[(weight, bonus)] == 0.0 < errors[(0.0, 0.0)]


def test_tune_fusion_checks_the_reference_count():
    with pytest.raises(UserError, match="references"):
        tune_fusion([torch.zeros(2, 3, 4)], [torch.tensor([3, 3])], [[1]], None, error_rate_fn=token_error_rate)


def test_token_scorer_refuses_a_word_level_lm():
    words = train_ngram([["the", "cat"]], order=2)
    with pytest.raises(UserError, match="NGramWordScorer"):
        NGramTokenScorer(words, speech_characters().symbols)


@pytest.mark.parametrize("kind", ["token", "word"])
def test_scorers_broadcast_states_against_tokens(kind):
    tokens = speech_characters()
    texts = ["the cat sat", "a mat", "the mat sat"]
    if kind == "token":
        scorer = NGramTokenScorer(train_ngram([list(t) for t in texts], 3), tokens.symbols)
    else:
        scorer = NGramWordScorer(train_ngram([t.split() for t in texts], 2), tokens.symbols)
    # States after a few prefixes (mid-word and after a space), against every token.
    states = []
    for prefix in ["th", "the ", "a m", "x"]:
        state = torch.tensor([scorer.initial_state()])
        for token in tokens.encode(list(prefix)):
            state = scorer.score(state, torch.tensor([token]))[1]
        states.append(state)
    states = torch.cat(states)
    ids = torch.arange(1, len(tokens))
    log_p, after = scorer.score(states[:, None], ids[None, :])
    assert log_p.shape == after.shape == (len(states), len(ids))
    for i, state in enumerate(states):
        one_log_p, one_after = scorer.score(state.expand(len(ids)), ids)
        assert torch.equal(log_p[i], one_log_p) and torch.equal(after[i], one_after)


def test_the_lm_does_not_import_the_decoder():
    # The decoder may use an LM; the LM must not need the decoder (tuning the fusion is asr.fusion).
    # The import statements are read too, so a lazy import inside a function counts.
    package = Path(__file__).resolve().parents[1] / "asr" / "lm"
    paths = sorted(package.glob("*.py"))
    assert paths
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            assert not any(name.startswith("asr.decoding") or name == "asr.fusion" for name in names), path.name
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, asr.lm; print(sorted(m for m in sys.modules if m.startswith('asr.')))"],
        capture_output=True, text=True, check=True, cwd=package.parents[1],
    ).stdout
    assert "asr.lm.scorers" in loaded and "asr.decoding" not in loaded and "asr.fusion" not in loaded


# ---------------------------------------------------------------- pruning, gzip, word-level CLI


def test_pruned_model_is_smaller_and_still_a_distribution_in_every_context(tmp_path):
    corpus = sentences(["the", "cat", "sat", "on", "a", "mat", "dog", "ran"], 300, seed=9)
    full = train_ngram(corpus, order=3)
    pruned = train_ngram(corpus, order=3, prune=[0, 1, 2])
    assert len(pruned.ngrams[0]) == len(full.ngrams[0])  # every word keeps a probability
    assert len(pruned.ngrams[1]) < len(full.ngrams[1]) and len(pruned.ngrams[2]) < len(full.ngrams[2])
    trigrams = Counter(tuple(p[i : i + 3]) for s in corpus for p in [("<s>", *s, "</s>")] for i in range(len(p) - 2))
    assert set(pruned.ngrams[2]) == {gram for gram, count in trigrams.items() if count > 2}
    # Contexts of the full model too: a pruned-away context backs off and must still sum to one.
    assert_every_context_sums_to_one(pruned, 1e-9)
    for context in [gram for level in full.ngrams[:-1] for gram in level if gram[-1] != "</s>"]:
        total = sum(10 ** pruned.log10_prob(word, context) for word in pruned.vocabulary if word != "<s>")
        assert total == pytest.approx(1.0, abs=1e-9), context
    kept = [gram for level in pruned.ngrams[1:] for gram in level]
    assert all(10 ** pruned.log10_prob(g[-1], g[:-1]) == pytest.approx(10 ** full.log10_prob(g[-1], g[:-1]))
               for g in kept)  # what stays keeps its probability: only backoff weights change
    assert any(pruned.ngrams[1][g][1] != pytest.approx(full.ngrams[1][g][1]) for g in pruned.ngrams[1])
    pruned.write_arpa(tmp_path / "lm.arpa")
    assert_every_context_sums_to_one(load_arpa(tmp_path / "lm.arpa"), 1e-5)


def test_pruning_keeps_the_prefix_and_suffix_of_every_kept_ngram():
    corpus = sentences(list("abcdef"), 200, seed=10)
    pruned = train_ngram(corpus, order=4, prune=[0, 3, 1, 0])
    for k in range(2, 5):
        for gram in pruned.ngrams[k - 1]:
            assert gram[:-1] in pruned.ngrams[k - 2] and gram[1:] in pruned.ngrams[k - 2]


def test_recomputing_the_backoff_weights_of_an_unpruned_model_changes_nothing():
    from asr.lm.pruning import recompute_backoffs
    lm = train_ngram(sentences(list("abcd "), 80, seed=11), order=4)
    again = [dict(level) for level in lm.ngrams]
    recompute_backoffs(again)
    for level, level_again in zip(lm.ngrams, again):
        for gram, (log_p, backoff) in level.items():
            assert level_again[gram][0] == log_p
            assert (backoff is None) == (level_again[gram][1] is None)
            if backoff is not None:
                assert level_again[gram][1] == pytest.approx(backoff, abs=1e-9)


@pytest.mark.parametrize("prune,problem", [([1], "unigrams cannot be pruned"), ([0, -1], "0 or more"),
                                           ([0, 1, 1, 1], "at most 3")])
def test_bad_prune_thresholds_are_user_errors(prune, problem):
    with pytest.raises(UserError, match=problem):
        train_ngram([["a", "b"]], order=3, prune=prune)


def test_a_gzipped_arpa_file_reads_back_and_is_the_same_bytes_every_time(tmp_path):
    lm = train_ngram(sentences(list("ab c"), 30, seed=12), order=3)
    lm.write_arpa(tmp_path / "a.arpa.gz")
    first = (tmp_path / "a.arpa.gz").read_bytes()
    lm.write_arpa(tmp_path / "a.arpa.gz")
    assert (tmp_path / "a.arpa.gz").read_bytes() == first  # no time stamp: git sees no change
    lm.write_arpa(tmp_path / "a.arpa")
    assert gzip.decompress(first).decode() == (tmp_path / "a.arpa").read_text()
    assert load_arpa(tmp_path / "a.arpa.gz") == load_arpa(tmp_path / "a.arpa")


def write_manifest_corpus(folder, splits):
    """A JSONL-manifest corpus whose 'audio' files are never read: only the transcripts matter here."""
    import json
    folder.mkdir(parents=True, exist_ok=True)
    for split, texts in splits.items():
        lines = [json.dumps({"audio": f"{split}{i}.wav", "text": text}) for i, text in enumerate(texts)]
        for i in range(len(texts)):
            (folder / f"{split}{i}.wav").write_bytes(b"")
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("tokens,expected", [("chars", ["The", "cat,", "sat."]),
                                             ("speech-chars", ["the", "cat", "sat"])])
def test_the_cli_builds_a_word_model_from_the_training_split_only(tmp_path, tokens, expected):
    from asr.lm import main
    corpus = write_manifest_corpus(tmp_path / "corpus", {
        "train": ["The cat, sat.", "The  cat, sat."], "dev": ["secretdev words"], "test": ["secrettest words"]})
    main(["--data", str(corpus), "--tokens", tokens, "--words", "--order", "2", "--out", str(tmp_path / "w.arpa")])
    lm = load_arpa(tmp_path / "w.arpa")
    assert set(lm.vocabulary) == {"<s>", "</s>", "<unk>", *expected}
    assert lm.log10_prob(expected[1], [expected[0]]) > lm.log10_prob(expected[0], [expected[1]])


def test_the_cli_refuses_words_for_a_phone_model(tmp_path):
    from asr.lm import main
    corpus = write_manifest_corpus(tmp_path / "corpus", {"train": ["a b"]})
    with pytest.raises(UserError, match="--words needs a character token set"):
        main(["--data", str(corpus), "--tokens", "timit61", "--words", "--out", str(tmp_path / "w.arpa")])


def test_the_cli_defaults_to_the_corpus_symbols_and_names_a_missing_split(tmp_path):
    from asr.lm import main
    corpus = write_manifest_corpus(tmp_path / "corpus", {"train": ["Hi, you."]})
    main(["--data", str(corpus), "--order", "1", "--out", str(tmp_path / "c.arpa")])
    assert set(load_arpa(tmp_path / "c.arpa").vocabulary) == {"<s>", "</s>", "<unk>", "h", "i", " ", "y", "o", "u"}
    with pytest.raises(UserError, match="no split 'dev'; it has train"):
        main(["--data", str(corpus), "--split", "dev", "--out", str(tmp_path / "d.arpa")])


def test_the_cli_builds_a_word_model_from_a_text_file_and_the_same_as_from_a_corpus(tmp_path):
    from asr.lm import main
    sentences = ["The cat, sat.", "", "The  cat, sat.", "a dog sat"]
    (tmp_path / "text.txt").write_text("\n".join(sentences) + "\n")
    corpus = write_manifest_corpus(tmp_path / "corpus", {"train": [s for s in sentences if s]})
    main(["--text", str(tmp_path / "text.txt"), "--tokens", "words", "--order", "2", "--out", str(tmp_path / "t.arpa")])
    main(["--data", str(corpus), "--tokens", "words", "--order", "2", "--out", str(tmp_path / "c.arpa")])
    assert (tmp_path / "t.arpa").read_text() == (tmp_path / "c.arpa").read_text()
    assert "dog" in load_arpa(tmp_path / "t.arpa").vocabulary


@pytest.mark.parametrize("content,tokens,message", [
    (None, "words", "cannot read it"), ("\n\n", "words", "no sentences in it"),
    ("a b\n", None, "holds no phone labels"), ("a b\n", "timit61", "holds no phone labels")])
def test_the_cli_names_a_bad_text_file(tmp_path, content, tokens, message):
    from asr.lm import main
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        main(["--text", str(path), *(["--tokens", tokens] if tokens else []), "--out", str(tmp_path / "t.arpa")])
