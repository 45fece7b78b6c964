"""The recipes end to end, shrunk: the same commands the README gives, on tiny data."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command, env=None, timeout=900):
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_timit_recipe_on_a_tree_in_timit_layout(tiny_timit, tmp_path):
    result = run(["bash", "recipes/timit/run.sh", "--timit", str(tiny_timit), "--config", "ctc-1l-250h",
                  "--out", str(tmp_path / "run"), "model.hidden_size=16", "train.max_epochs=1", "train.batch_size=8"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("PER (39 folded phones)") == 2  # best path and beam 100
    assert (tmp_path / "run" / "eval-core-beam100" / "summary.json").exists()


def test_timit_recipe_needs_a_corpus():
    result = run(["bash", "recipes/timit/run.sh"])
    assert result.returncode == 2 and "--timit" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("flite") or not shutil.which("festival"), reason="needs flite and festival")
def test_synth_recipe_from_nothing_to_per(tmp_path):
    env = {"CORPUS": str(tmp_path / "corpus"), "RUN": str(tmp_path / "run"), "UTTERANCES": "60"}
    result = run(["bash", "recipes/synth/run.sh", "train.max_epochs=2", "model.hidden_size=32"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PER (39 folded phones)" in result.stdout
    again = run(["bash", "recipes/synth/run.sh"], env=env)  # everything there: nothing redone
    assert again.returncode == 0 and "already there" in again.stdout and "nothing to do" in again.stdout
