"""benchmarks/real_speech.py: the set readers, the text normalisation, the scoring, a small run.

The recordings come from Debian packages that install.sh installs; a test that needs one
is skipped, naming the package, only where it is absent.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import jiwer
import pytest

from asr.errors import UserError
from benchmarks import real_speech as rs
from benchmarks.real_speech import (
    asterisk_transcripts,
    is_word_transcript,
    main,
    normalize_words,
    score,
    tidigits_words,
)


def needs(path, package):
    return pytest.mark.skipif(not path.exists(), reason=f"Debian package {package} is not installed "
                              f"({path} is missing); install.sh installs it")


needs_sphinx_data = needs(rs.POCKETSPHINX_DATA, "pocketsphinx-testdata")
needs_alsa = needs(rs.ALSA_SOUNDS, "alsa-utils")
needs_asterisk = pytest.mark.skipif(
    not (rs.ASTERISK_SOUNDS.exists() and rs.ASTERISK_TEXT.exists()),
    reason="Debian packages asterisk-core-sounds-en-wav and asterisk-core-sounds-en are not installed; "
           "install.sh installs them")
has_pocketsphinx = importlib.util.find_spec("pocketsphinx") is not None


# ---- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, words", [
    ("Front_Center".replace("_", " "), "front center"),
    ("Agent Logged off.", "agent logged off"),
    ("Call-Forward on No Answer.", "call forward on no answer"),
    ("Press 1 to send a reply, or 0 for help.", "press one to send a reply or zero for help"),
    ("at [@]", "at"),
    ("Please leave your message after the tone. (simple tone sound plays)",
     "please leave your message after the tone"),
    ("<beep ascending> Welcome", "welcome"),
    ("If you know your party's extension...", "if you know your party's extension"),
    ("'quoted' words", "quoted words"),
    ("and Mr. John Dashwood", "and mister john dashwood"),
    ("<s> ten of clubs  </s>", "ten of clubs"),
    ("", ""),
])
def test_normalize_words(text, words):
    assert normalize_words(text) == words


def test_normalising_twice_changes_nothing():
    text = normalize_words("Press 7 to delete this message; Mrs. Jennings' folder [beep]")
    assert normalize_words(text) == text


@pytest.mark.parametrize("text, kept", [
    ("Activated.", True),
    ("press 3 for advanced options", True),  # lone digits are spelled
    ("at [@]", True),  # the annotation goes, a word stays
    ("IAX (note: does not say \"2\")", True),
    ("[ascending tones]", False),  # annotation only
    ("(10 seconds of silence)", False),
    ("dial 500 to attempt", False),  # a number: read as "five hundred" or "five oh oh"?
    ("a 28.8 kilobit modem", False),
    ("3D audio enabled", False),
    ("H.323", False),
    ("press * to toggle pause, press # to enter", False),  # symbols: "star"? "asterisk"?
])
def test_is_word_transcript(text, kept):
    assert is_word_transcript(text) is kept


def test_tidigits_words():
    assert tidigits_words("dhd.2934z") == "two nine three four zero"
    assert tidigits_words("man.ah.6o838a") == "six oh eight three eight"
    with pytest.raises(ValueError):
        tidigits_words("goforward")


@needs_sphinx_data
def test_tidigits_words_agree_with_the_corpus_transcripts():
    lines = (rs.POCKETSPHINX_DATA / "tidigits" / "tidigits.lsn").read_text().splitlines()
    pairs = [line.rsplit("(", 1) for line in lines if line.strip()]
    assert len(pairs) > 20
    for words, name in pairs:
        assert tidigits_words(name.strip(" )")) == words.strip()


def test_asterisk_transcripts_plain_and_gzipped(tmp_path):
    text = "; Core Asterisk Sounds in English\n\nbeep: [a beep]\ndigits/1: one\nvm-x: Press 1: then go.\n"
    (tmp_path / "plain.txt").write_text(text)
    with gzip.open(tmp_path / "packed.txt.gz", "wt") as out:
        out.write(text)
    expected = {"beep": "[a beep]", "digits/1": "one", "vm-x": "Press 1: then go."}
    assert asterisk_transcripts(tmp_path / "plain.txt") == expected
    assert asterisk_transcripts(tmp_path / "packed.txt.gz") == expected


# ---- the sets as the packages ship them ------------------------------------------------------


def assert_readable(recordings, count=None):
    assert recordings and (count is None or len(recordings) == count)
    for recording in recordings:
        assert recording.path.is_file(), recording.path
        assert recording.transcript and recording.transcript == normalize_words(recording.transcript)
    assert len({r.name for r in recordings}) == len(recordings)


@needs_sphinx_data
def test_pocketsphinx_testdata_sets():
    librivox, cards, raw = rs.read_set("librivox"), rs.read_set("cards"), rs.read_set("raw")
    assert_readable(librivox, 5)
    assert_readable(cards, 5)
    assert_readable(raw, 2)
    assert librivox[1].transcript == "he was not an ill disposed young man"
    assert librivox[0].transcript.startswith("and mister john dashwood")
    assert [c.transcript for c in cards][:2] == ["ten of clubs", "four queen of clubs"]
    assert {r.name: r.transcript for r in raw} == {"goforward": "go forward ten meters",
                                                   "tidigits/dhd.2934z": "two nine three four zero"}
    assert all(r.raw is not None and r.raw.sample_rate == 16000 for r in raw)


@needs_alsa
def test_alsa_set():
    alsa = rs.read_set("alsa")
    assert_readable(alsa, 8)
    assert {r.name: r.transcript for r in alsa}["Front_Center"] == "front center"
    assert "Noise" not in {r.name for r in alsa}
    assert all(r.transcript.count(" ") == 1 for r in alsa)


@needs_asterisk
def test_asterisk_set():
    asterisk = rs.read_set("asterisk")
    assert_readable(asterisk)
    transcripts = {r.name: r.transcript for r in asterisk}
    assert 500 < len(asterisk) < 568
    assert transcripts["digits/0"] == "zero"
    assert transcripts["letters/at"] == "at"
    assert transcripts["vm-delete"] == "press seven to delete this message"
    assert transcripts["call-fwd-no-ans"] == "call forward on no answer"
    for left_out in ("beep", "silence/1", "demo-instruct", "confbridge-binaural-on", "dictate/both_help"):
        assert left_out not in transcripts
    # every prompt on disk that has a word transcript is kept
    written = asterisk_transcripts()
    on_disk = {p.relative_to(rs.ASTERISK_SOUNDS).with_suffix("").as_posix() for p in rs.ASTERISK_SOUNDS.rglob("*.wav")}
    assert set(transcripts) == {n for n in on_disk if n in written and is_word_transcript(written[n])}


def test_a_missing_package_names_itself(monkeypatch, tmp_path):
    monkeypatch.setattr(rs, "ALSA_SOUNDS", tmp_path / "nothing")
    with pytest.raises(rs.SetMissing, match="alsa-utils"):
        rs.read_set("alsa")
    with pytest.raises(UserError, match="alsa-utils"):
        main(["--sets", "alsa", "--systems", "ours"])
    with pytest.raises(UserError, match="unknown set"):
        main(["--sets", "alsa,timit"])
    with pytest.raises(UserError, match="unknown system"):
        main(["--systems", "whisper"])


def test_by_default_a_missing_set_is_left_out_saying_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(rs, "ALSA_SOUNDS", tmp_path / "nothing")
    if not installed_sets():
        pytest.skip("none of the sets' Debian packages is installed; install.sh installs them")
    assert main(["--limit", "1", "--systems", "ours"]) == 0
    printed = capsys.readouterr().out
    assert "left out alsa" in printed and "apt-get install alsa-utils" in printed
    assert "\nalsa " not in printed  # no row for it


# ---- scoring ------------------------------------------------------------------------------------


def test_score_is_corpus_level_wer_as_jiwer_counts_it():
    references = ["the cat sat on the mat", "go forward ten meters", "front center", "press one"]
    hypotheses = ["the cat sat on a mat today", "go forward", "brent center", ""]
    counts = score(references, hypotheses)
    # the empty hypothesis is counted by hand (2 deletions): jiwer releases differ on empty strings
    truth = jiwer.process_words(references[:3], hypotheses[:3])
    assert counts.reference_length == 14
    assert counts.substitutions == truth.substitutions == 2
    assert counts.insertions == truth.insertions == 1
    assert counts.deletions == truth.deletions + 2 == 4
    assert counts.rate == pytest.approx(7 / 14)
    assert score(references[:3], hypotheses[:3]).rate == pytest.approx(jiwer.wer(references[:3], hypotheses[:3]))
    # corpus level: edits over all words, not the mean of the sentences' rates (0.33, 0.5, 0.5, 1)
    assert counts.rate != pytest.approx(sum([2 / 6, 2 / 4, 1 / 2, 1]) / 4)
    with pytest.raises(ValueError):
        score(references, hypotheses[:2])


# ---- the benchmark, end to end ----------------------------------------------------------------


def installed_sets():
    found = []
    for name in rs.SETS:
        try:
            rs.read_set(name)
        except rs.SetMissing:
            continue
        found.append(name)
    return found


def test_one_file_per_set_with_the_shipped_phone_model(tmp_path, capsys):
    sets = installed_sets()
    if not sets:
        pytest.skip("none of the sets' Debian packages is installed; install.sh installs them")
    out = tmp_path / "real.json"
    phone_model = str(Path(__file__).resolve().parents[1] / "checkpoints" / "synth-small")
    assert main(["--limit", "1", "--systems", "ours", "--checkpoint", phone_model, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["sets"]) == [*sets, "all"]
    for name in sets:
        row = report["sets"][name]
        assert row["files"] == 1 and row["audio_seconds"] > 0 and row["words"] > 0
        ours = row["systems"]["ours"]
        assert ours["wer"] is None  # a phone model writes no words
        assert ours["rtf"] > 0 and ours["cpu_seconds"] > 0
    assert report["sets"]["all"]["files"] == len(sets)
    assert [u["set"] for u in report["utterances"]] == sets
    printed = capsys.readouterr().out
    assert "n/a" in printed and "phones: no words" in printed


@pytest.mark.skipif(not has_pocketsphinx, reason="pocketsphinx is not installed (pip install '.[bench]')")
@needs_sphinx_data
def test_pocketsphinx_recognizes_go_forward(tmp_path):
    out = tmp_path / "real.json"
    assert main(["--sets", "raw", "--limit", "1", "--systems", "ours,pocketsphinx", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (utterance,) = report["utterances"]
    assert utterance["pocketsphinx"] == utterance["reference"] == "go forward ten meters"
    raw = report["sets"]["raw"]["systems"]
    assert raw["pocketsphinx"]["wer"] == 0 and raw["pocketsphinx"]["rtf"] > 0
    assert raw["ours"]["wer"] >= 0 and isinstance(utterance["ours"], str)  # the default English model writes words


def test_a_character_model_is_scored_in_words(tmp_path):
    """Any checkpoint goes through --checkpoint; one that writes characters gets a WER (an untrained one here)."""
    import torch

    from asr.checkpoint import model_payload, save_checkpoint
    from asr.config import Config
    from asr.model import CTCModel
    from asr.tokens import speech_characters

    sets = installed_sets()
    if not sets:
        pytest.skip("none of the sets' Debian packages is installed; install.sh installs them")
    torch.manual_seed(0)
    config = Config.from_dict({"features": {"kind": "fbank", "n_mels": 20, "energy": True, "deltas": 0},
                               "model": {"hidden_size": 8, "num_layers": 1}, "data": {"tokens": "speech-chars"}})
    tokens = speech_characters()
    save_checkpoint(model_payload(CTCModel(config.features.dim, len(tokens), config.model), config, tokens),
                    tmp_path / "chars.pt")
    out = tmp_path / "real.json"
    assert main(["--checkpoint", str(tmp_path / "chars.pt"), "--sets", sets[0], "--limit", "2",
                 "--systems", "ours", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    ours = report["sets"][sets[0]]["systems"]["ours"]
    said = [u["ours"] for u in report["utterances"]]
    assert ours["wer"] == pytest.approx(score([u["reference"] for u in report["utterances"]], said).rate)
    assert ours["reference_length"] == report["sets"][sets[0]]["words"]
    assert all(text == normalize_words(text) for text in said)
