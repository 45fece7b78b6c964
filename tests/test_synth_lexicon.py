"""`--lexicon cmu`: espeak-ng's audio labelled with flite's (CMU lexicon) phones, word by word."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr.corpora.base import Segment
from data import synth_timit
from data.synth import espeak, flite, lexicon
from data.synth.labels import ARPABET_TO_TIMIT, phone_segments
from data.synth.synthesis import Synthesis
from data.synth.tree import check_tree
from tests.test_synth_voices import needs_espeak, needs_flite

AUDIO = np.zeros(1000, dtype=np.int16)


def spoken(phones, words, said=None) -> Synthesis:
    return Synthesis(AUDIO, 1000, phones, words, said)


# "the cat": the reference (flite) says dh ax | k ae t, slowly, with a pause inside the text
REFERENCE = spoken(
    [("pau", 0.1), ("dh", 0.2), ("ax", 0.4), ("pau", 0.5), ("k", 0.6), ("ae", 0.8), ("t", 1.0), ("pau", 1.2)],
    [(0, 0.1, 0.4), (1, 0.5, 1.0)],
)


def test_each_word_gets_the_reference_phones_spread_over_its_own_span():
    """Phones keep their share of the reference word's duration; word edges and pauses are the
    spoken ones; the reference's pauses inside the text do not carry over."""
    own = spoken([("pau", 0.2), ("d", 0.3), ("ah", 0.4), ("k", 0.5), ("aa", 0.6), ("t", 0.7), ("pau", 0.9)],
                 [(0, 0.2, 0.4), (1, 0.4, 0.7)])
    result = lexicon.relabel(own, REFERENCE)
    assert [label for label, _ in result.phones] == ["pau", "dh", "ax", "k", "ae", "t", "pau"]
    ends = [end for _, end in result.phones]
    assert ends == pytest.approx([0.2, 0.2 + 0.2 / 3, 0.4, 0.4 + 0.3 / 5, 0.4 + 0.9 / 5, 0.7, 0.9])
    assert result.words == own.words and result.audio is own.audio


def test_a_merged_word_gets_both_tokens_phones():
    """espeak-ng said "the cat" as one word: no word timings, but the phones of both tokens."""
    own = spoken([("pau", 0.1), ("d", 0.2), ("k", 0.3), ("ae", 0.5), ("t", 0.6), ("pau", 0.8)], None,
                 said=[(0, 0.1, 0.6)])
    result = lexicon.relabel(own, REFERENCE)
    assert [label for label, _ in result.phones] == ["pau", "dh", "ax", "k", "ae", "t", "pau"]
    assert result.phones[-2][1] == 0.6 and result.words is None


@pytest.mark.parametrize(
    "words",
    [
        [(0, 0.0, 0.4), (1, 0.4, 0.7)],  # no pause before the first word
        [(0, 0.2, 0.5), (1, 0.4, 0.7)],  # overlapping words
        [(0, 0.2, 0.4), (1, 0.4, 0.9)],  # the last word ends with the audio: no final pause
        [(1, 0.2, 0.7)],  # the first token unsaid
    ],
)
def test_words_that_do_not_line_up_keep_the_engines_labels(words):
    own = spoken([("pau", 0.2), ("d", 0.4), ("k", 0.7), ("pau", 0.9)], None, said=words)
    assert lexicon.relabel(own, REFERENCE) is None
    assert lexicon.relabel(spoken(own.phones, None), REFERENCE) is None  # no words at all


@needs_espeak
@needs_flite
def test_relabelled_espeak_says_what_flite_says():
    """For real sentences (merged words among them) the relabelled phones are flite's, in order,
    and they map onto TIMIT segments that cover the audio."""
    texts = ["A ball player thrown for a loss.", "They skimmed over the surface of the water."]
    said = espeak.synthesize_batch("en-GB-scotland+f4", [(t, 1.0, 0, 1.0) for t in texts])
    reference = flite.synthesize_batch(lexicon.REFERENCE_VOICE, [(t, 1.0, 0, 1.0) for t in texts])
    for own, flites, result in zip(said, reference, lexicon.cmu_labels(said, texts)):
        assert result is not None
        assert [p for p, _ in result.phones if p != "pau"] == [p for p, _ in flites.phones if p != "pau"]
        segments = phone_segments(result.phones, own.sample_rate, ARPABET_TO_TIMIT, "test")
        assert segments[0] == Segment(0, segments[0].end, "h#")
        assert segments[-1].end == round(own.phones[-1][1] * own.sample_rate)


@needs_espeak
@needs_flite
def test_generator_labels_espeak_voices_from_the_cmu_lexicon(tmp_path):
    """`--lexicon cmu` changes the labels of espeak-ng's utterances and of nothing else: the audio
    and flite's labels are the same bytes as without it. The setting is recorded only when it is
    not the default, so that older corpora keep their description."""
    options = ["--voices", "espeak:en-US+m1,flite:kal16", "--text", "wordnet", "--utterances", "8",
               "--speakers-per-voice", "2", "--test-voices", "", "--dev-voices", "", "--jobs", "1", "--no-sa"]
    default, cmu = tmp_path / "default", tmp_path / "cmu"
    assert synth_timit.main(["--out", str(default), *options]) == 0
    assert synth_timit.main(["--out", str(cmu), *options, "--lexicon", "cmu"]) == 0
    assert "lexicon" not in json.loads((default / "DOC/GENERATOR.json").read_text())
    assert json.loads((cmu / "DOC/GENERATOR.json").read_text())["lexicon"] == "cmu"
    check_tree(cmu)
    changed = set()
    for phn in sorted(default.glob("*/DR*/*/*.PHN")):
        twin = cmu / phn.relative_to(default)
        assert twin.with_suffix(".WAV").read_bytes() == phn.with_suffix(".WAV").read_bytes()
        if twin.read_text() != phn.read_text():
            changed.add(phn.parent.name)
    speakers = {line.split()[0]: line.split()[4] for line in (cmu / "DOC/SPKRINFO.TXT").read_text().splitlines()[1:]}
    assert {speakers[s] for s in changed} == {"espeak:en-US+m1"}
