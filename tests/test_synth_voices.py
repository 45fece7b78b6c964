"""The generator's further voices and texts: espeak-ng's engine (audio with labels that match it,
its mnemonic table), whole voices held out of training, and the text sources and their split."""

from __future__ import annotations

import ctypes
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.tokens import TIMIT_PHONES, normalize_speech_text
from data import synth_timit
from data.synth import espeak, labels, plan, text, voices
from data.synth.render import RenderSettings, render
from data.synth.tree import check_tree


def _loads(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


needs_espeak = pytest.mark.skipif(
    not _loads(espeak.LIBRARY), reason="needs libespeak-ng (apt-get install libespeak-ng1 espeak-ng-data)"
)
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt-get install flite)")

SENTENCES = (
    "She had your dark suit in greasy wash water all year.",
    "A ball player thrown for a loss.",
    "The thirtieth of June was cold, and the judge's voice rose through the church.",
    "Why should the boy enjoy the usual measure of leisure?",
    "Thy year of hurry and worry is here, near the fair mirror.",
)
WORDS = ("red green blue tan old big odd shy wet dry hot cold new far near low high soft hard kind "
         "calm bold dark pale warm cool loud mild neat rich").split()


def pool(n: int) -> list[str]:
    """`n` distinct sentences (distinct in their words: digits would not count)."""
    return [f"the {a} {b} {c} fox ran." for a in WORDS for b in WORDS for c in WORDS][:n]


VOWELS = {"iy", "ih", "ix", "eh", "ey", "ae", "aa", "aw", "ay", "ah", "ao", "oy", "ow", "uh", "uw", "er", "ax", "axr"}


# --- espeak-ng ----------------------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("ident", ["en-US+f3", "en-GB-x-rp+m2", "en-GB-scotland+klatt", "en-029+m7"])
def test_espeak_labels_match_the_audio(ident):
    """Phones end where the audio ends, in order; rendered utterances pass every TIMIT rule;
    words, where espeak gives them, are the text's words in order."""
    sentences = [(t, stretch, 7, warp) for t, stretch, warp in zip(SENTENCES, (0.9, 1.0, 1.12, 1.0, 1.0),
                                                                    (1.0, 0.92, 1.08, 1.0, 1.08))]
    with_words = 0
    for (sentence, _, _, warp), synthesis in zip(sentences, espeak.synthesize_batch(ident, sentences)):
        duration = len(synthesis.audio) / synthesis.sample_rate
        ends = [end for _, end in synthesis.phones]
        assert ends == sorted(ends) and ends[-1] == pytest.approx(duration)
        assert synthesis.phones[0][0] == synthesis.phones[-1][0] == labels.PAUSE
        assert 0.5 < duration < 8
        utterance = render(synthesis, sentence, warp, espeak.PHONE_MAP, RenderSettings(), 1, ident)
        assert utterance.phones[-1].end == len(utterance.audio)
        if synthesis.words is not None:
            with_words += 1
            assert [w.label for w in utterance.words] == normalize_speech_text(sentence).split()
    assert with_words >= 3  # "for a" may be one word to espeak; most sentences keep their words


@needs_espeak
def test_espeak_timings_are_real():
    """Pauses are quiet and vowels loud at espeak's own times; shifting the labels blurs that."""
    audio_labels = []
    for ident in ("en-US+m1", "en+f2"):
        for sentence, synthesis in zip(
            SENTENCES, espeak.synthesize_batch(ident, [(t, 1.0, 0, 1.0) for t in SENTENCES])
        ):
            utterance = render(synthesis, sentence, 1.0, espeak.PHONE_MAP, RenderSettings(noise_db=None), 0, ident)
            audio_labels.append((utterance.audio.astype(np.float64) / 32768, utterance.phones))

    def contrast(shift: int) -> float:
        quiet, loud = [], []
        for audio, phones in audio_labels:
            for seg in phones:
                a, b = max(0, seg.start + shift), min(len(audio), seg.end + shift)
                if b - a > 160 and seg.label in {"h#", "pau"} | VOWELS:
                    (quiet if seg.label in ("h#", "pau") else loud).append(np.mean(audio[a:b] ** 2) + 1e-10)
        return np.median(10 * np.log10(loud)) - np.median(10 * np.log10(quiet))

    assert contrast(0) > 30
    assert contrast(0) > contrast(1600) + 3 and contrast(0) > contrast(-1600) + 3


@needs_espeak
def test_espeak_mnemonic_table_covers_every_accent():
    """Every mnemonic the English accents emit for varied text maps onto TIMIT phones
    (an unmapped one raises CorpusError naming it)."""
    assert {p for phones in espeak.MNEMONICS.values() for p in phones} <= set(TIMIT_PHONES) | {labels.PAUSE}
    sample = list(SENTENCES) + [
        "The usual pleasure of a certain button is the rhythm of a bottle.",
        "Although the weather was worse, their cure for the poor was sure.",
        "We're aware that you'll enjoy the beautiful view of the loch at night.",
    ]
    for accent in espeak.ACCENTS:
        ident = accent.removeprefix("gmw/") + "+m1"
        results = espeak.synthesize_batch(ident, [(t, 1.0, 0, 1.0) for t in sample])
        mapped = {p for r in results for p, _ in r.phones}
        assert mapped <= set(TIMIT_PHONES) | {labels.PAUSE}
        assert len(mapped) > 30, accent


def test_espeak_timings_from_events():
    """Phones end where the next starts; r-coloured vowels split only in rhotic accents; a merged
    word ("for a" as one word) leaves the utterance without word timings."""
    rate = 1000
    phoneme, word = 7, 1
    events = [
        (word, 1, 3, 100, ""), (phoneme, 1, 0, 100, "k"), (phoneme, 1, 0, 200, "A@"),
        (word, 5, 2, 400, ""), (phoneme, 5, 0, 400, "I"), (phoneme, 5, 0, 500, "z"), (phoneme, 8, 0, 600, "_"),
    ]
    phones, words = espeak.timings(events, 700, rate, "car is.", rhotic=True)
    assert espeak.complete_words(words, "car is.") == words
    assert phones == [("pau", 0.1), ("k", 0.2), ("aa", 0.3), ("r", 0.4), ("ih", 0.5), ("z", 0.6), ("pau", 0.7)]
    assert words == [(0, 0.1, 0.4), (1, 0.4, 0.6)]
    phones, _ = espeak.timings(events, 700, rate, "car is.", rhotic=False)
    assert ("aa", 0.4) in phones and ("r", 0.4) not in phones
    merged = [e for e in events if e[:2] != (word, 5)]
    merged = [(k, 1 if p == 5 else p, n, s, m) for k, p, n, s, m in merged]
    said = espeak.timings(merged, 700, rate, "car is.", rhotic=True)[1]
    assert said == [(0, 0.1, 0.6)] and espeak.complete_words(said, "car is.") is None


@needs_espeak
def test_espeak_klatt_voices_repeat_exactly():
    """The klatt variants draw noise from rand(): seeded per sentence, a sentence sounds the same
    whatever came before it."""
    first = espeak.synthesize_batch("en-US+klatt", [(SENTENCES[0], 1.0, 3, 1.0)])[0]
    after = espeak.synthesize_batch("en-US+klatt", [(SENTENCES[1], 1.0, 9, 1.0), (SENTENCES[0], 1.0, 3, 1.0)])[1]
    assert np.array_equal(first.audio, after.audio) and first.phones == after.phones


@needs_espeak
def test_espeak_keeps_word_events_across_many_voices():
    """espeak stops sending word events after ~25 voice changes in one process (measured): the
    engine must load each voice in a fresh child, so the 40th voice still gives words."""
    sentence = "an imperceptible drop in temperature."
    idents = [v.ident for v in voices.VOICES if v.engine == "espeak"][:40]
    results = [espeak.synthesize_batch(ident, [(sentence, 1.0, 0, 1.0)])[0] for ident in idents]
    assert all(r.words is not None for r in results)


# --- held-out voices ----------------------------------------------------------------------


def test_default_hold_out_keeps_test_and_dev_voices_and_their_people_out_of_training():
    chosen = voices.select_voices(voices.DEFAULT_VOICES)
    held = voices.held_out(chosen, voices.TEST_VOICES, voices.DEV_VOICES)
    assert {"TEST", "DEV"} == set(held.values())
    sentences = pool(3000)
    p = plan.make_plan(chosen, sentences, 600, 0.3, 3, seed=1, held_out=held)
    train_voices = {s.voice.name for s in p.speakers["TRAIN"]}
    test_voices = {s.voice.name for s in p.speakers["TEST"]}
    assert train_voices and test_voices and not train_voices & test_voices
    assert test_voices == set(held)
    people = defaultdict(set)
    for split, speakers in p.speakers.items():
        for s in speakers:
            people[s.voice.who].add(split)
    assert all(len(splits) == 1 for splits in people.values())
    assert {s.voice.name for s in p.speakers["TEST"] if s.id in p.dev} == {n for n, u in held.items() if u == "DEV"}
    assert all(job.split == "TEST" for job in p.jobs if job.speaker.voice.name in held)


def test_one_person_behind_two_voices_is_held_out_whole():
    chosen = voices.select_voices(["flite:slt", "festival:cmu_us_slt_arctic_hts", "flite:rms", "espeak:en-US"])
    held = voices.held_out(chosen, ["flite:slt"], ["espeak:en-US+f1"])
    assert held == {"flite:slt": "TEST", "festival:cmu_us_slt_arctic_hts": "TEST", "espeak:en-US+f1": "DEV"}
    assert voices.held_out(chosen, ["espeak:en-US"], [])  == {
        v.name: "TEST" for v in chosen if v.engine == "espeak"
    }
    with pytest.raises(Exception, match="every chosen voice is held out"):
        plan.make_plan(chosen[:2], pool(99), 10, 0.3, 2, 0,
                       held_out=voices.held_out(chosen[:2], ["flite:slt"], []))


def test_voices_and_ids():
    ids = [s.id for v in voices.VOICES for s in voices.speakers_of(v)]
    assert len(ids) == len(set(ids))
    assert len([v for v in voices.VOICES if v.engine == "espeak"]) == len(voices.ESPEAK_ACCENTS) * len(
        voices.ESPEAK_VARIANTS
    )
    assert len(voices.select_voices(["espeak:en"])) == len(voices.ESPEAK_VARIANTS)  # not en-US's too


@needs_espeak
@needs_flite
def test_generated_corpus_holds_out_whole_voices(tmp_path):
    out = tmp_path / "c"
    assert synth_timit.main([
        "--out", str(out), "--voices", "espeak:en-US+m1,espeak:en-GB-scotland+f4,espeak:en-029+f3,flite:kal16",
        "--text", "wordnet", "--utterances", "20", "--speakers-per-voice", "1", "--jobs", "1",
    ]) == 0
    info = [line.split() for line in (out / "DOC/SPKRINFO.TXT").read_text().splitlines()[1:]]
    use = {fields[4]: fields[3] for fields in info}
    assert use == {"espeak:en-US+m1": "TRN", "flite:kal16": "TRN", "espeak:en-GB-scotland+f4": "TST",
                   "espeak:en-029+f3": "DEV"}
    folders = {fields[0]: (out / ("TRAIN" if fields[3] == "TRN" else "TEST") / f"DR{fields[2]}" / fields[0])
               for fields in info}
    assert all(folder.is_dir() for folder in folders.values())
    summary = check_tree(out)
    assert sum(summary.utterances.values()) == 20 + 2 * 4
    stems = sorted(p.with_suffix("") for p in out.glob("*/DR*/*/*.WAV"))
    for stem in stems:
        assert stem.with_suffix(".PHN").is_file() and stem.with_suffix(".TXT").is_file()
        n = soundfile.info(stem.with_suffix(".WAV")).frames
        assert int(stem.with_suffix(".PHN").read_text().split()[-2]) == n


# --- text ---------------------------------------------------------------------------------


SOURCE_FILES = {
    "wordnet": text.WORDNET_DIR / "data.noun", "gcide": text.GCIDE_FILE, "devil": text.DEVIL_FILE,
}


@pytest.mark.parametrize("source, at_least", [("wordnet", 25000), ("gcide", 30000), ("devil", 1000)])
def test_text_source_loads_clean_sentences(source, at_least):
    if not SOURCE_FILES[source].exists():
        pytest.skip(f"{SOURCE_FILES[source]} missing: install.sh installs its Debian package")
    sentences = text.load_sentences([source])
    assert len(sentences) >= at_least
    assert all(text.clean_sentence(s) == s for s in sentences[:2000])
    keys = [text.sentence_key(s) for s in sentences]
    assert len(keys) == len(set(keys))


def test_gcide_and_devil_parsers(tmp_path):
    import gzip

    gcide = tmp_path / "gcide.dict.dz"
    with gzip.open(gcide, "wt") as f:
        f.write(
            'Abundant \\A*bun"dant\\, a.\n   Fully sufficient; plentiful. "Abundant in goodness and\n'
            '   truth." --Exod. xxxiv. 6.\n   [1913 Webster]\n\n'
            "         It is lamentable to remember what abundance of noble\n"
            "         blood hath been shed with small benefit.      --Raleigh.\n   [1913 Webster]\n\n"
        )
    assert text.gcide_sentences(gcide) == [
        "Abundant in goodness and truth.", "It is lamentable to remember what abundance of noble "
        "blood hath been shed with small benefit.",
    ]
    devil = tmp_path / "devil.dict.dz"
    with gzip.open(devil, "wt") as f:
        f.write("ABSURDITY, n.  A statement or belief manifestly inconsistent with\none's own opinion.\n\n"
                "    Said a man to a crapulent youth:  I thought\n        You a total abstainer.\n")
    assert text.devil_sentences(devil) == ["A statement or belief manifestly inconsistent with one's own opinion."]


def test_sentence_split_is_a_fixed_hash_and_training_text_holds_no_test_sentence(tmp_path, monkeypatch):
    sentences = pool(2000)
    splits = [text.sentence_split(s) for s in sentences]
    assert splits == [text.sentence_split(s) for s in sentences]  # no seed, no state
    assert text.sentence_split(sentences[7].upper().replace(" fox", ", fox")) == splits[7]
    share = splits.count("TEST") / len(splits)
    assert abs(share - text.TEST_SENTENCE_PERCENT / 100) < 0.04
    monkeypatch.setitem(text.SOURCES, "pool", lambda: [f"the {w} quick brown foxes jumped." for w in
                                                        ("red", "tan", "old", "big", "odd", "shy", "wet", "dry")])
    text._clean_sentences.cache_clear()
    train = text.training_text(["pool"])
    assert train and all(text.sentence_split(s) == "TRAIN" for s in train)
    out = tmp_path / "lm.txt"
    assert synth_timit.main(["--lm-text", str(out), "--text", "pool"]) == 0
    assert out.read_text().splitlines() == train
    # a plan deals TEST speakers only TEST sentences, TRAIN speakers only TRAIN ones
    sentences = pool(600)
    p = plan.make_plan(voices.select_voices(["flite:kal16"]), sentences, 100, 0.3, 4, seed=0)
    for job in p.jobs:
        if not job.name.startswith("SA"):
            assert text.sentence_split(job.text) == job.split
    text._clean_sentences.cache_clear()


def test_no_source_reads_the_fortunes():
    """The fortunes* packages' text is kept for evaluation: no source may read it."""
    import inspect

    source = inspect.getsource(text)
    assert "/usr/share/games/fortunes" not in source and "fortune-mod" not in source
    assert set(text.SOURCES) == {"wordnet", "bible", "gcide", "devil"}


def test_plan_ids_stay_timit_like():
    assert all(len(s.id) == 5 and s.id[0] in "MF" for v in voices.VOICES for s in voices.speakers_of(v))
    assert Path(synth_timit.__file__).name == "synth_timit.py"


@needs_espeak
@needs_flite
def test_espeak_corpus_is_the_same_whatever_the_jobs(tmp_path):
    """espeak carries state between sentences; the engine hides it, so --jobs cannot change a byte."""
    options = ["--voices", "espeak:en-US+klatt,espeak:en+f1,flite:kal16", "--test-voices", "espeak:en+f1",
               "--dev-voices", "", "--text", "devil", "--utterances", "12", "--speakers-per-voice", "2", "--no-sa"]
    trees = {}
    for jobs in ("1", "2"):
        trees[jobs] = tmp_path / jobs
        assert synth_timit.main(["--out", str(trees[jobs]), *options, "--jobs", jobs]) == 0

    def contents(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert contents(trees["1"]) == contents(trees["2"])
    assert any(p.parts[-3] == "DR8" for p in map(Path, contents(trees["1"])) if len(p.parts) > 3)
