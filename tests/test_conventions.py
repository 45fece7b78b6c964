"""data.synth.conventions: how differently two engines label the same sentences."""

import random
import shutil

import pytest

from asr.metrics import corpus_errors
from data.synth.conventions import disagreement, main


def test_disagreement_counts_and_names_each_confusion():
    references = [["dh", "ah", "k", "ae", "t"], ["ah", "v"]]
    others = [["dh", "ih", "k", "ae", "t", "s"], ["aa", "v"]]
    counts, confusions = disagreement(references, others)
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.reference_length) == (2, 0, 1, 7)
    assert confusions == {("ah", "ih"): 1, ("ah", "aa"): 1, ("-", "s"): 1}
    counts, confusions = disagreement([["r", "aa"]], [["aa"]])
    assert counts.deletions == 1 and confusions == {("r", "-"): 1}
    counts, confusions = disagreement([["ah"], []], [[], ["s"]])  # one side silent: nothing to align
    assert (counts.deletions, counts.insertions) == (1, 1) and confusions == {("ah", "-"): 1, ("-", "s"): 1}


@pytest.mark.skipif(not shutil.which("flite") or not shutil.which("espeak-ng"), reason="needs flite and espeak-ng")
def test_flite_and_espeak_label_most_phones_alike(capsys):
    assert main(["--sentences", "4", "--reference", "flite:kal16", "--other", "espeak:en-US", "--top", "3"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    rate = float(first.split(": ")[1].split(" %")[0])
    assert "espeak:en-US against flite:kal16, 4 sentences" in first and 0 < rate < 30


def test_disagreement_counts_are_the_corpus_per_counts():
    rng = random.Random(0)
    phones = ["aa", "ah", "b", "d", "s"]
    references = [[rng.choice(phones) for _ in range(rng.randrange(0, 9))] for _ in range(200)]
    others = [[rng.choice(phones) for _ in range(rng.randrange(0, 9))] for _ in range(200)]
    assert disagreement(references, others)[0] == corpus_errors(references, others)
