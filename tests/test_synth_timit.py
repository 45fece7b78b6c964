"""The synthesized TIMIT-layout corpus: layout, labels, TIMIT's split rules, determinism,
clear errors, and phone timings that match the audio."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.corpora.base import Segment
from asr.corpora.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS, STANDARD_SPEAKERS
from asr.tokens import TIMIT_PHONES, normalize_speech_text
from data import synth_timit
from data.synth import flite, labels, plan, text, voices
from data.synth.labels import CorpusError
from data.synth.tree import check_tree

# One voice of each kind: flite clustergen (random excitation) and diphone, festival diphone and HTS (32 kHz).
VOICES = "flite:slt,flite:kal16,festival:kal_diphone,festival:cmu_us_slt_arctic_hts"
UTTERANCE = re.compile(r"(SA[12]|SI\d+|SX\d+)")
VOWELS = {"iy", "ih", "eh", "ey", "ae", "aa", "aw", "ay", "ah", "ao", "oy", "ow", "uh", "uw", "er", "ax"}
SIBILANTS = {"s", "sh", "z", "zh"}
SILENCES = {"h#", "pau"}

pytestmark = pytest.mark.skipif(
    shutil.which("festival") is None or shutil.which("flite") is None,
    reason="needs the Debian packages flite and festival (with festvox-kallpc16k, festvox-us-slt-hts)",
)


def generate(out: Path, *options: str) -> int:
    return synth_timit.main(["--out", str(out), "--voices", VOICES, *options])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "synth-timit"
    assert generate(out, "--utterances", "24", "--speakers-per-voice", "2", "--jobs", "2") == 0
    return out


def stems(root: Path) -> list[Path]:
    return sorted(p.with_suffix("") for p in root.glob("*/DR*/*/*.WAV"))


def read_segments(path: Path) -> list[Segment]:
    return [Segment(int(a), int(b), c) for a, b, c in (line.split() for line in path.read_text().splitlines())]


def read_text(stem: Path) -> tuple[int, int, str]:
    start, end, words = stem.with_suffix(".TXT").read_text().rstrip("\n").split(" ", 2)
    return int(start), int(end), words


# --- layout -------------------------------------------------------------------------------


def test_layout_is_timit(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == ["DOC", "TEST", "TRAIN"]
    speakers = {}
    for split in ("TRAIN", "TEST"):
        for folder in (corpus / split).iterdir():
            assert re.fullmatch(r"DR[1-8]", folder.name)
            for speaker in folder.iterdir():
                speakers[speaker.name] = speaker
                assert re.fullmatch(r"[MF][A-Z]{3}[0-9]", speaker.name)
                names = sorted(p.name for p in speaker.iterdir())
                utts = sorted({n.rsplit(".", 1)[0] for n in names})
                assert names == sorted(u + ext for u in utts for ext in (".PHN", ".TXT", ".WAV", ".WRD"))
                assert all(UTTERANCE.fullmatch(u) for u in utts)
                assert {"SA1", "SA2"} <= set(utts)
    assert len(speakers) == 8  # 4 voices x 2
    info = {line.split()[0]: line.split() for line in (corpus / "DOC/SPKRINFO.TXT").read_text().splitlines()[1:]}
    for speaker_id, fields in info.items():
        assert speaker_id[0] == fields[1]  # first letter is the voice's sex
    assert set(info) == set(speakers)


def test_wav_is_nist_sphere_16k_pcm16(corpus):
    for stem in stems(corpus):
        info = soundfile.info(stem.with_suffix(".WAV"))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("NIST", "PCM_16", 16000, 1)
        assert stem.with_suffix(".WAV").read_bytes()[:8] == b"NIST_1A\n"
        assert info.frames == read_text(stem)[1]


# --- labels -------------------------------------------------------------------------------


def test_phones_cover_the_audio_exactly_in_timit_phones(corpus):
    for stem in stems(corpus):
        n = soundfile.info(stem.with_suffix(".WAV")).frames
        phones = read_segments(stem.with_suffix(".PHN"))
        assert phones[0].start == 0 and phones[-1].end == n
        assert all(a.end == b.start for a, b in zip(phones, phones[1:]))
        assert all(s.end > s.start for s in phones)
        assert {s.label for s in phones} <= set(TIMIT_PHONES)
        assert phones[0].label == phones[-1].label == "h#"
        assert "h#" not in {s.label for s in phones[1:-1]}


def test_words_match_text_and_lie_on_phone_boundaries(corpus):
    for stem in stems(corpus):
        start, n, sentence = read_text(stem)
        assert start == 0
        words = read_segments(stem.with_suffix(".WRD"))
        assert [w.label for w in words] == normalize_speech_text(sentence).split()
        boundaries = {s.start for s in read_segments(stem.with_suffix(".PHN"))} | {n}
        previous = 0
        for w in words:
            assert previous <= w.start < w.end <= n
            assert w.start in boundaries and w.end in boundaries
            previous = w.end


def test_stops_are_closure_then_release(corpus):
    releases = {"bcl": {"b"}, "dcl": {"d", "jh"}, "gcl": {"g"}, "pcl": {"p"}, "tcl": {"t", "ch"}, "kcl": {"k"}}
    seen = 0
    for stem in stems(corpus):
        phones = [s.label for s in read_segments(stem.with_suffix(".PHN"))]
        for before, label in zip(phones, phones[1:]):
            if label in ("b", "d", "g", "p", "t", "k", "jh", "ch"):
                assert releases[before] >= {label}
            if before in releases:
                assert label in releases[before]
                seen += 1
    assert seen > 50


def test_generator_check_accepts_the_tree_and_rejects_a_broken_one(corpus, tmp_path):
    summary = check_tree(corpus)
    assert sum(summary.utterances.values()) == len(stems(corpus))
    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    phn = stems(broken)[3].with_suffix(".PHN")
    lines = phn.read_text().splitlines()
    start, end, _ = lines[1].split()
    lines[1] = f"{start} {end} xx"
    phn.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match="xx"):
        check_tree(broken)


# --- TIMIT's rules ------------------------------------------------------------------------


def test_test_speakers_and_sentences_stay_out_of_training(corpus):
    speakers = {split: {p.name for p in (corpus / split).glob("DR*/*")} for split in ("TRAIN", "TEST")}
    assert speakers["TRAIN"] and speakers["TEST"]
    assert not speakers["TRAIN"] & speakers["TEST"]
    assert not (speakers["TRAIN"] | speakers["TEST"]) & STANDARD_SPEAKERS
    sentences = defaultdict(set)
    readers = defaultdict(set)
    for stem in stems(corpus):
        split = stem.parts[-4]
        sentence = normalize_speech_text(read_text(stem)[2])
        if stem.name.startswith("SA"):
            assert sentence == normalize_speech_text(text.SA_SENTENCES[int(stem.name[2]) - 1])
        else:
            sentences[split].add(sentence)
            readers[stem.name].add(stem.parent.name)
    assert sentences["TRAIN"] and sentences["TEST"]
    assert not sentences["TRAIN"] & sentences["TEST"]
    assert any(len(r) > 1 for name, r in readers.items() if name.startswith("SX"))  # SX is shared


def test_same_seed_same_bytes_whatever_the_jobs(tmp_path):
    # flite:slt draws noise from rand(): the generator must reseed it per utterance
    options = ["--voices", "flite:slt,festival:kal_diphone", "--utterances", "6", "--speakers-per-voice", "2"]
    trees = {}
    for name, extra in (("one", ["--jobs", "1"]), ("two", ["--jobs", "2"]), ("seed", ["--seed", "1"])):
        trees[name] = tmp_path / name
        assert synth_timit.main(["--out", str(trees[name]), *options, *extra]) == 0

    def contents(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert contents(trees["one"]) == contents(trees["two"])
    assert contents(trees["one"]) != contents(trees["seed"])


def test_interrupted_run_leaves_no_tree_and_resumes(tmp_path, monkeypatch):
    from data.synth import generate as generate_module

    options = ["--voices", "flite:kal16", "--utterances", "8", "--speakers-per-voice", "2", "--jobs", "1"]
    clean = tmp_path / "clean"
    assert synth_timit.main(["--out", str(clean), *options]) == 0

    real_write = generate_module.write_utterance
    calls = []

    def write_then_stop(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real_write(*args)

    monkeypatch.setattr(generate_module, "write_utterance", write_then_stop)
    out = tmp_path / "out"
    assert synth_timit.main(["--out", str(out), *options]) == 130
    assert not out.exists()
    assert len(list((tmp_path / "out.partial").rglob("*.TXT"))) == 4
    monkeypatch.setattr(generate_module, "write_utterance", real_write)
    assert synth_timit.main(["--out", str(out), *options]) == 0
    assert not (tmp_path / "out.partial").exists()
    for stem in stems(clean):
        for ext in (".WAV", ".PHN", ".WRD", ".TXT"):
            twin = out / stem.relative_to(clean).with_suffix(ext)
            assert twin.read_bytes() == stem.with_suffix(ext).read_bytes()


def test_existing_output_needs_force(corpus, tmp_path, capsys):
    assert generate(corpus, "--utterances", "24") == 2
    assert "--force" in capsys.readouterr().err
    stranger = tmp_path / "mine"
    (stranger / "notes").mkdir(parents=True)
    assert generate(stranger, "--force") == 2
    assert "not a corpus this generator wrote" in capsys.readouterr().err


# --- clear errors -------------------------------------------------------------------------


def test_missing_festival_names_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert synth_timit.main(["--out", str(tmp_path / "x"), "--voices", "festival:kal_diphone"]) == 2
    assert "apt-get install festival festvox-kallpc16k" in capsys.readouterr().err


def test_missing_flite_names_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(flite, "LIBRARY", "libflite-not-installed.so.1")
    assert synth_timit.main(["--out", str(tmp_path / "x"), "--voices", "flite"]) == 2
    assert "apt-get install flite" in capsys.readouterr().err


def test_unknown_voice_and_too_many_utterances(tmp_path, capsys):
    assert synth_timit.main(["--out", str(tmp_path / "x"), "--voices", "flite:nobody"]) == 2
    assert "unknown voice 'flite:nobody'" in capsys.readouterr().err
    with pytest.raises(Exception, match="ran out of distinct sentences"):
        plan.make_plan(voices.select_voices(["flite:kal16"]), ["a b c d."] * 3, 10, 0.3, 2, 0)


# --- the timings are real -----------------------------------------------------------------


def segment_features(corpus: Path) -> dict[str, list[tuple[float, float]]]:
    """Per phone label: (log energy in dB, share of energy above 4 kHz) of each segment."""
    features = defaultdict(list)
    for stem in stems(corpus):
        audio, rate = soundfile.read(stem.with_suffix(".WAV"))
        for seg in read_segments(stem.with_suffix(".PHN")):
            x = audio[seg.start : seg.end]
            if len(x) < 256:
                continue
            spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
            freqs = np.fft.rfftfreq(len(x), 1 / rate)
            features[seg.label].append(
                (10 * np.log10(np.mean(x**2) + 1e-12), spectrum[freqs > 4000].sum() / spectrum.sum())
            )
    return features


def group(features, labels_, index):
    return np.array([f[index] for label in labels_ for f in features.get(label, [])])


def test_silences_are_quiet_and_sibilants_hiss(corpus):
    features = segment_features(corpus)
    silence, vowel, sibilant = (group(features, g, 0) for g in (SILENCES, VOWELS, SIBILANTS))
    assert np.median(silence) < np.median(vowel) - 30
    assert np.percentile(silence, 90) < np.percentile(vowel, 10)
    assert np.median(group(features, SIBILANTS, 1)) > 0.5 > 0.05 > np.median(group(features, VOWELS, 1))
    assert len(sibilant) > 20


def test_true_timings_beat_shifted_ones(corpus):
    """Energy contrast between silence and vowel segments is sharpest at the labels' own times."""

    def contrast(shift: int) -> float:
        quiet, loud = [], []
        for stem in stems(corpus):
            audio = soundfile.read(stem.with_suffix(".WAV"))[0]
            for seg in read_segments(stem.with_suffix(".PHN")):
                a, b = max(0, seg.start + shift), min(len(audio), seg.end + shift)
                if b - a > 160 and seg.label in SILENCES | VOWELS:
                    (quiet if seg.label in SILENCES else loud).append(np.mean(audio[a:b] ** 2))
        return np.median(10 * np.log10(loud)) - np.median(10 * np.log10(quiet))

    assert contrast(0) > contrast(800) + 3 and contrast(0) > contrast(-800) + 3


def test_closures_split_at_the_burst(corpus):
    """Release vs closure high-frequency energy is larger at the detected burst than at a fixed split."""

    def high_db(x):
        return 10 * np.log10(np.mean(np.diff(x) ** 2) + 1e-12)

    detected, fixed = [], []
    for stem in stems(corpus):
        audio = soundfile.read(stem.with_suffix(".WAV"))[0]
        phones = read_segments(stem.with_suffix(".PHN"))
        for closure, release in zip(phones, phones[1:]):
            if closure.label in ("bcl", "dcl", "gcl", "pcl", "tcl", "kcl") and release.end - closure.start >= 200:
                start, burst, end = closure.start, closure.end, release.end
                middle = start + int(0.6 * (end - start))
                detected.append(high_db(audio[burst:end]) - high_db(audio[start:burst]))
                fixed.append(high_db(audio[middle:end]) - high_db(audio[start:middle]))
    assert len(detected) > 50
    assert np.median(detected) > np.median(fixed) + 1.0


# --- pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("the old man's well-known story", "the old man's well known story."),
        ("Don't ask me to carry it!", "Don't ask me to carry it!"),
        ("And the LORD said unto Moses", None),  # capitals: an acronym (the Bible reader fixes LORD)
        ("he left; she stayed and waited", "he left; she stayed and waited."),
        ("he paid $5 for it", None),
        ("Mr. Smith went to Washington", None),
        ("the USA is a big country", None),
        ("hmm that was a good one", None),
        ("too short", None),
        ("he said `hello' to them all", None),
        ("take a letter b from the box", None),
    ],
)
def test_clean_sentence(raw, cleaned):
    assert text.clean_sentence(raw) == cleaned


def test_kjv_clauses_lose_small_capitals_and_end_with_a_period():
    assert text._kjv_clause("And the LORD said unto Moses;") == "And the Lord said unto Moses."
    assert text.clean_sentence(text._kjv_clause("And the LORD said unto Moses;")) == "And the Lord said unto Moses."


def test_phone_segments_map_merge_and_mark_edges():
    phones = [("pau", 0.1), ("pau", 0.2), ("hh", 0.25), ("ax", 0.25), ("brth", 0.3), ("pau", 0.4), ("iy", 0.5),
              ("pau", 0.6)]
    segments = labels.phone_segments(phones, 1000.0, labels.ARPABET_TO_TIMIT, "test")
    assert segments == [
        Segment(0, 200, "h#"), Segment(200, 250, "hh"), Segment(250, 400, "pau"),
        Segment(400, 500, "iy"), Segment(500, 600, "h#"),
    ]
    with pytest.raises(CorpusError, match="'zz'"):
        labels.phone_segments([("pau", 0.1), ("zz", 0.2), ("pau", 0.3)], 1000.0, labels.ARPABET_TO_TIMIT, "test")


def test_fit_to_audio_extends_or_pads_the_final_silence():
    segments = [Segment(0, 100, "h#"), Segment(100, 200, "aa"), Segment(200, 300, "h#")]
    assert labels.fit_to_audio(segments, 350, "t") == (segments[:2] + [Segment(200, 350, "h#")], 0)
    assert labels.fit_to_audio(segments, 250, "t") == (segments, 50)
    with pytest.raises(CorpusError):
        labels.fit_to_audio(segments, 150, "t")


def test_burst_onset_finds_a_burst_after_silence():
    rng = np.random.default_rng(0)
    for burst in (600, 900, 1300):
        audio = np.concatenate([rng.normal(0, 0.001, burst), rng.normal(0, 0.3, 1600 - burst)])
        assert abs(labels.burst_onset(audio, 0, 1600) - burst) <= 32


def test_plan_deals_sentences_as_timit_does():
    words = "red green blue tan old big odd shy wet dry hot cold new far near low high soft hard kind".split()
    sentences = [f"the {a} {b} fox ran." for a in words for b in words]
    chosen = voices.select_voices(["flite", "festival"])
    p = plan.make_plan(chosen, sentences, 300, 0.3, 9, seed=5)
    assert p == plan.make_plan(chosen, sentences, 300, 0.3, 9, seed=5)
    assert len(p.speakers["TEST"]) == 7 * 3 and len(p.speakers["TRAIN"]) == 7 * 6
    assert sum(1 for j in p.jobs if not j.name.startswith("SA")) == 300
    by_sentence = defaultdict(set)
    for job in p.jobs:
        if job.name.startswith("SX"):
            by_sentence[job.name].add((job.split, job.speaker.id))
    for readers in by_sentence.values():
        assert 1 <= len(readers) <= plan.SX_READERS
        assert len({split for split, _ in readers}) == 1
    assert max(len(r) for r in by_sentence.values()) == plan.SX_READERS
    counts = defaultdict(int)
    for job in p.jobs:
        counts[job.speaker.id] += not job.name.startswith("SA")
    assert max(counts.values()) - min(counts.values()) <= 1


def test_speaker_ids_never_collide_with_timit():
    ids = [s.id for v in voices.VOICES for s in voices.speakers_of(v)]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & STANDARD_SPEAKERS
    assert len(CORE_TEST_SPEAKERS) == 24 and len(DEV_SPEAKERS) == 50 and len(STANDARD_SPEAKERS) == 74
