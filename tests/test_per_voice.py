"""Error rates per group of a test set (issue 10, item 6): per synthesized voice, else per TIMIT dialect
region, else per speaker; each group's counts are corpus-level within it and the groups add up to the totals."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr.corpora.base import Utterance
from asr.corpora.manifest import read_manifest
from asr.corpora.timit import read_timit
from asr.evaluation import MAX_GROUP_LINES, evaluate, format_summary, grouping
from asr.tokens import timit_phones
from asr.transcribe import Transcriber
from tests.conftest import make_noise_timit

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ("substitutions", "deletions", "insertions", "reference_length")


def voice_tree(root):
    """Four test speakers: two spoken by the voice kal, one by slt, one by rms held out as DEV."""
    make_noise_timit(root, train_speakers=1, test_speakers=4, per_speaker=2, seed=3)
    (root / "DOC").mkdir()
    (root / "DOC" / "SPKRINFO.TXT").write_text(
        "; synthesized speakers: ID  Sex  DR  Use  voice  duration-stretch  warp\n"
        "MZRA0  M  1  TRN  kal  1.0  1.0\nMZTA0  M  1  TST  kal  1.0  1.0\nMZTB0  M  1  TST  kal  0.9  1.1\n"
        "MZTC0  F  1  TST  slt  1.0  1.0\nMZTD0  M  1  DEV  rms  1.0  1.0\n")
    return root


@pytest.fixture(scope="module")
def transcriber(tiny_checkpoint):
    return Transcriber.from_checkpoint(tiny_checkpoint)


def strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_voice_groups_add_up_to_the_totals(transcriber, tmp_path):
    utterances = read_timit(voice_tree(tmp_path / "tree"), "test")
    summary = evaluate(transcriber, utterances, tmp_path / "out", log=lambda m: None)
    written = strict_json((tmp_path / "out" / "summary.json").read_text())
    assert written["by_group"] == summary["by_group"]
    by_group = written["by_group"]
    assert by_group["kind"] == "voice" and list(by_group["groups"]) == ["kal", "slt"]
    groups = by_group["groups"].values()
    assert [g["utterances"] for g in groups] == [4, 2]
    for metric in ("per", "per61"):
        assert all(g[metric]["reference_length"] > 0 for g in groups)
        for name in COUNTS:
            assert sum(g[metric][name] for g in groups) == written[metric][name], (metric, name)
        for g in groups:  # corpus-level within the group: edits over its reference length
            c = g[metric]
            assert c["rate"] == (c["substitutions"] + c["deletions"] + c["insertions"]) / c["reference_length"]
    records = [strict_json(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    voices = {u.id: u.voice for u in utterances}
    assert [r["group"] for r in records] == [voices[r["id"]] for r in records]
    for group, g in by_group["groups"].items():  # the group's counts are its utterances' counts summed
        mine = [r for r in records if r["group"] == group]
        assert {name: sum(r["per"][name] for r in mine) for name in COUNTS} == \
            {name: g["per"][name] for name in COUNTS}


def test_grouping_falls_back_from_voice_to_region_to_speaker(tmp_path):
    root = voice_tree(tmp_path / "tree")
    assert grouping(read_timit(root, "test")) == ("voice", ["kal"] * 4 + ["slt"] * 2)
    (root / "DOC" / "SPKRINFO.TXT").unlink()  # LDC TIMIT-like: no voices, speakers in region folders
    (root / "TEST" / "DR2").mkdir()
    (root / "TEST" / "DR1" / "MZTC0").rename(root / "TEST" / "DR2" / "MZTC0")
    # without the DEV mark dev is every third speaker (A, D): test is B in DR1 and C in DR2
    assert grouping(read_timit(root, "test")) == ("region", ["DR1"] * 2 + ["DR2"] * 2)
    audio = read_timit(root, "train")[0].path
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": str(audio), "text": "a", "speaker": "s1"}) + "\n"
                                      + json.dumps({"audio": str(audio), "id": "b", "text": "b"}) + "\n")
    assert grouping(read_manifest(tmp_path / "m.jsonl")) == ("speaker", ["s1", "unknown"])


def test_a_kind_is_used_only_where_every_utterance_has_it():
    """One utterance without a voice sends the whole set to regions, not to a leftover group."""
    def utterance(voice, region, speaker="S"):
        return Utterance(voice + region, Path("x.wav"), "", speaker=speaker, voice=voice, region=region)

    assert grouping([utterance("kal", "DR1"), utterance("", "DR2")]) == ("region", ["DR1", "DR2"])
    assert grouping([utterance("kal", "DR1"), utterance("slt", "")]) == ("voice", ["kal", "slt"])
    assert grouping([utterance("", "DR1", "A"), utterance("", "", "B")]) == ("speaker", ["A", "B"])
    assert grouping([]) == ("speaker", [])


def counts(errors, length):
    return {"rate": errors / length if length else float("inf"), "substitutions": errors, "deletions": 0,
            "insertions": 0, "reference_length": length}


def summary_with_groups(names):
    return {"per": counts(3, 30), "per61": counts(4, 30), "utterances": len(names), "failed": 0,
            "seconds_per_line": 0.01,
            "by_group": {"kind": "speaker", "groups": {n: {"utterances": 1, "per": counts(1, 10),
                                                           "per61": counts(2, 10)} for n in names}}}


def test_the_printed_summary_lists_groups_sorted_and_only_counts_many():
    tokens = timit_phones()
    lines = format_summary(summary_with_groups(["MZTB0", "FZTA0"]), tokens).splitlines()
    table = lines[lines.index("by speaker:") + 1:]
    assert [line.split()[0] for line in table] == ["FZTA0", "MZTB0"]
    assert table[0].split()[1:7] == ["PER", "10.00%", "of", "10", "PER61", "20.00%"]
    many = format_summary(summary_with_groups([f"S{n:03d}" for n in range(MAX_GROUP_LINES + 1)]), tokens)
    assert f"{MAX_GROUP_LINES + 1} groups by speaker" in many and "summary.json" in many
    assert "S000" not in many


def test_a_group_with_no_reference_is_null_in_json_and_printed(transcriber, tiny_timit, tmp_path):
    """An utterance with no reference labels but a decoded one: its group's rate is infinite, null in JSON."""
    path = read_timit(tiny_timit, "test")[0].path
    summary = evaluate(transcriber, [Utterance("unlabelled", path, "", speaker="X")], tmp_path, log=lambda m: None)
    written = strict_json((tmp_path / "summary.json").read_text())
    assert written["by_group"]["kind"] == "speaker" and written["by_group"]["groups"]["X"]["per"]["rate"] is None
    assert strict_json((tmp_path / "results.jsonl").read_text())["group"] == "X"
    assert "X" in format_summary(summary, transcriber.tokens)
    assert "n/a" in format_summary(written, transcriber.tokens)  # a summary read back from its file prints


def test_decode_prints_the_rates_per_voice(tiny_checkpoint, tmp_path):
    tree = voice_tree(tmp_path / "tree")
    result = subprocess.run([sys.executable, "decode.py", "--checkpoint", str(tiny_checkpoint), "--test-set",
                             str(tree), "--split", "test", "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index("by voice:") + 1:][:2]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for line, (voice, g) in zip(table, summary["by_group"]["groups"].items(), strict=True):
        assert line.split()[:5] == [voice, "PER", f"{100 * g['per']['rate']:.2f}%", "of",
                                    str(g["per"]["reference_length"])]
