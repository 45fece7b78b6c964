"""The cell study (recipes/variants): matched sizes, the grid's run script, the report, the gradient flow."""

import json
import math
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from asr.config import ModelConfig, load_config
from asr.lstm import CELLS
from asr.model import CTCModel
from recipes.variants import gradient_flow, report, sizes

ROOT = Path(__file__).resolve().parents[1]


def kept_in_git(root: Path) -> list[Path]:
    """The files of study folder `root` that git keeps, were it the repository's recipes/variants/study."""
    files = [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()]
    ignored = set(subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, capture_output=True,
                                 text=True, input="".join(f"recipes/variants/study/{name}\n" for name in files)
                                 ).stdout.split())
    return [Path(name) for name in files if f"recipes/variants/study/{name}" not in ignored]


def run_study(root, env, *overrides, timeout=600):
    return subprocess.run(["bash", "recipes/variants/run.sh", str(root), *overrides], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


# ---- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_weight_count_is_the_models_own(cell, bidirectional):
    model = ModelConfig(hidden_size=9, num_layers=2, bidirectional=bidirectional, cell=cell)
    assert sizes.count_weights(model, 13, 7) == CTCModel(13, 7, model).num_parameters()


@pytest.mark.parametrize("recipe, inputs, outputs", [("recipes/synth/small.yaml", 123, 62),
                                                     ("recipes/handwriting/lines.yaml", 64, 80)])
@pytest.mark.parametrize("hidden", [16, 128])
def test_every_cell_gets_the_recipes_weights_within_two_percent(recipe, inputs, outputs, hidden):
    model = load_config(recipe, [f"model.hidden_size={hidden}"]).model
    matched = sizes.matched_sizes(model, inputs, outputs)
    assert set(matched) == set(CELLS)
    budget = sizes.count_weights(model, inputs, outputs)
    assert matched["peephole"] == {"hidden_size": hidden, "weights": budget, "ratio": 1.0}
    for cell, size in matched.items():  # the nearest size: one unit more or less is further off
        misses = [abs(sizes.count_weights(model, inputs, outputs, cell, size["hidden_size"] + d) - budget)
                  for d in (-1, 0, 1)]
        assert misses[1] == min(misses), cell
    if hidden >= 100:  # the recipes' sizes; a tiny network's one unit is several per cent
        assert all(abs(size["ratio"] - 1) <= sizes.TOLERANCE for size in matched.values()), matched
    # Fewer gates, wider layers: the 1-gate rnn widest, the 3-gate cells between it and the 4-gate ones.
    assert matched["rnn"]["hidden_size"] > matched["gru"]["hidden_size"] > matched["vanilla"]["hidden_size"]
    assert matched["cifg"]["hidden_size"] == matched["nfg"]["hidden_size"] == matched["nog"]["hidden_size"]


def test_the_grid_writes_one_config_per_cell_and_seed(tiny_timit, tmp_path):
    config = load_config("recipes/synth/small.yaml", ["model.hidden_size=16"])
    sizes.write_grid(config, str(tiny_timit), tmp_path, ["peephole", "gru"], [1, 2])
    sizes.write_grid(config, str(tiny_timit), tmp_path, ["rnn"], [1])  # a second pass adds a cell
    record = json.loads((tmp_path / "sizes.json").read_text())
    assert set(record["cells"]) == {"peephole", "gru", "rnn"} and (record["inputs"], record["outputs"]) == (123, 62)
    study = load_config(tmp_path / "gru" / "seed2" / "study.yaml")
    gru = record["cells"]["gru"]["hidden_size"]
    assert (study.model.cell, study.model.hidden_size, study.train.seed) == ("gru", gru, 2) and gru > 16
    assert study.train == config.train.__class__(**{**config.train.__dict__, "seed": 2})  # nothing else moved
    assert sorted(p.parent.name + "/" + p.name for p in tmp_path.glob("*/seed*")) == [
        "gru/seed1", "gru/seed2", "peephole/seed1", "peephole/seed2", "rnn/seed1"]


# ---- report ------------------------------------------------------------------------------------


def fake_run(folder, rate, epochs=3, metric="per"):
    """What train.py and decode.py leave in a run folder, reduced to what the report reads."""
    (folder / "eval-test").mkdir(parents=True)
    (folder / "eval-test" / "summary.json").write_text(json.dumps({metric: {"rate": rate}}))
    (folder / "log.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "seconds": 60.0 * (e + 1)}) + "\n"
                                              for e in range(epochs)))


def test_the_report_tabulates_and_plots_fake_runs(tmp_path):
    root = tmp_path / "study"
    (root / "synth").mkdir(parents=True)
    (root / "grid.json").write_text(json.dumps({"small": "1", "tasks": "synth handwriting", "cells": "peephole nfg",
                                                "seeds": "1 2", "overrides": ["train.max_epochs=1"]}))
    (root / "synth" / "sizes.json").write_text(json.dumps({"cells": {"peephole": {"hidden_size": 16, "weights": 100},
                                                                     "nfg": {"hidden_size": 19, "weights": 101}}}))
    fake_run(root / "synth" / "peephole" / "seed1", 0.20, epochs=2)
    fake_run(root / "synth" / "peephole" / "seed2", 0.30, epochs=4)
    fake_run(root / "synth" / "nfg" / "seed1", 0.50)
    (root / "synth" / "nfg" / "seed2").mkdir()
    (root / "synth" / "nfg" / "seed2" / "FAILED").write_text("train.py exit status 1: diverged\n")
    (root / "handwriting" / "gru" / "seed1").mkdir(parents=True)  # started, not scored yet
    readme = tmp_path / "README.md"
    readme.write_text(f"# Study\n\n{report.BEGIN}\nplaceholder\n{report.END}\n\nafter\n")

    assert report.main([str(root), "--readme", str(readme)]) == 0
    table = (root / "results.md").read_text()
    assert "SMALL grid" in table
    assert "| peephole | 16 | 100 | 25.0 ± 7.1 | 20.0, 30.0 |  |  | 3.0 | 3.0 | 2 scored |" in table
    assert "| nfg | 19 | 101 | 50.0 |  | +25.0 |  | 3.0 | 3.0 | 1 scored, 1 failed |" in table  # one seed: no test
    assert "| gru | – | – | – |  |  |  | – | – | 0 scored, 1 pending |" in table
    text = readme.read_text()
    assert "placeholder" not in text and table in text and text.endswith("after\n")
    assert "](study/results.png)" in text  # the chart, by its path from the README
    assert (root / "results.png").stat().st_size > 1000


def welch_by_hand(a, b):
    """Welch's t and the Welch-Satterthwaite degrees of freedom, from their textbook equations."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    return t, (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))


def test_the_welch_p_value_follows_the_equations():
    a, b = [0.108, 0.109, 0.111], [0.126, 0.117, 0.108]
    t, df = welch_by_hand(a, b)
    assert report.welch_p(a, b) == pytest.approx(2 * scipy.stats.t.sf(abs(t), df), rel=1e-9)
    far = report.welch_p([0.90, 0.92, 0.91], b)
    assert far < 0.001 and report.p_value(far) == "< 0.001"
    assert report.welch_p(b, b) == pytest.approx(1.0)  # the same seeds: no evidence of a difference
    assert report.welch_p([0.5], b) is None and report.welch_p([0.1, 0.1], [0.1, 0.1]) is None
    assert report.p_value(0.0341) == "0.034" and report.p_value(None) == ""


def test_the_recipes_readme_has_a_block_for_the_report():
    text = (ROOT / "recipes" / "variants" / "README.md").read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1


# ---- gradient flow -----------------------------------------------------------------------------


def untrained(cell, **model):
    torch.manual_seed(0)
    return CTCModel(8, 5, ModelConfig(hidden_size=16, num_layers=1, cell=cell, normalize="none", **model))


def scale_recurrence(model, norm):
    """Recurrent matrices of spectral norm `norm`: a tanh RNN's gradient then shrinks by at least
    that factor per frame back (tanh' <= 1), so with 0.5 it must vanish within tens of frames."""
    with torch.no_grad():
        for name, weight in model.lstm.named_parameters():
            if name.startswith("weight_hh"):
                weight.mul_(norm / max(torch.linalg.matrix_norm(weight, 2), 1e-12))
    return model


def test_the_lag_is_counted_back_from_the_last_frame():
    features = [torch.randn(30, 8), torch.randn(20, 8)]
    curve = gradient_flow.gradient_by_lag(scale_recurrence(untrained("rnn"), 0.0), features, 40)
    # Without recurrence only the last frame's own input matters; lags past every utterance are NaN.
    assert curve[0] > 0 and np.all(curve[1:30] == 0) and np.all(np.isnan(curve[30:]))


def test_the_carousel_holds_where_a_plain_rnn_forgets():
    torch.manual_seed(1)
    features = [torch.randn(150, 8) for _ in range(2)]
    rnn = gradient_flow.gradient_by_lag(scale_recurrence(untrained("rnn"), 0.5), features, 120)
    nfg = gradient_flow.gradient_by_lag(untrained("nfg"), features, 120)
    assert rnn[20] < 1e-5 * rnn[0]  # at most 0.5 ** 20 = 1e-6 of the first step's
    assert nfg[120] > 0.1 * nfg[1]  # c_t = c_{t-1} + i g: nothing decays the cell's error
    assert np.all(nfg[5:] > rnn[5:])


def test_gradient_flow_plots_checkpoints(tiny_timit, tmp_path):
    folders = []
    for cell in ("rnn", "nfg"):
        config = load_config("recipes/synth/small.yaml", [f"model.cell={cell}", "model.hidden_size=8"])
        model = CTCModel(config.features.dim, 62, config.model)
        from asr.checkpoint import model_payload, save_checkpoint
        from asr.tokens import token_set

        save_checkpoint(model_payload(model, config, token_set("timit61")), tmp_path / cell / "best.pt")
        folders += ["--checkpoint", str(tmp_path / cell)]
    out = tmp_path / "flow.png"
    assert gradient_flow.main([*folders, "--data", str(tiny_timit), "--utterances", "3", "--max-lag", "30",
                               "--out", str(out)]) == 0
    curves = json.loads(out.with_suffix(".json").read_text())
    assert len(curves) == 2 and all(len(curve) == 31 for curve in curves.values())
    assert out.stat().st_size > 1000

    # Stored curves are drawn again without the models; a curve alone is written as JSON only.
    single = tmp_path / "rnn" / "gradient-flow.json"
    assert gradient_flow.main([*folders[:2], "--data", str(tiny_timit), "--utterances", "3", "--max-lag", "30",
                               "--out", str(single)]) == 0
    assert not single.with_suffix(".png").exists() and len(json.loads(single.read_text())) == 1
    redrawn = tmp_path / "again.png"
    assert gradient_flow.main(["--curves", str(out.with_suffix(".json")), "--out", str(redrawn)]) == 0
    assert json.loads(redrawn.with_suffix(".json").read_text()) == curves and redrawn.stat().st_size > 1000


# ---- the small grid, end to end ----------------------------------------------------------------


def test_the_small_grid_runs_and_resumes_where_it_stopped(tiny_timit, tmp_path):
    root, corpus = tmp_path / "study", tmp_path / "corpus"
    shutil.copytree(tiny_timit, corpus)
    (corpus / "DOC").mkdir(exist_ok=True)
    (corpus / "DOC" / "GENERATOR.json").write_text('{"seed": 0}\n')  # as data.synth_timit describes its corpora
    env = {"SMALL": "1", "TASKS": "synth", "CELLS": "peephole rnn", "SYNTH_DATA": str(corpus)}
    result = run_study(root, env, "train.batch_size=8")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for cell in ("peephole", "rnn"):
        run = root / "synth" / cell / "seed1"
        assert (run / "eval-test" / "summary.json").exists() and len((run / "log.jsonl").read_text().splitlines()) == 1
        assert load_config(run / "config.yaml").model.cell == cell
        assert len(json.loads((run / "gradient-flow.json").read_text())) == 1  # its curve, stored
    assert "SMALL grid" in (root / "results.md").read_text() and (root / "results.png").exists()
    assert (root / "gradient-flow.png").exists()  # drawn from the stored curves
    again = run_study(root, env, "train.batch_size=8")  # everything scored: nothing trains again
    assert again.returncode == 0 and again.stdout.count(": done") == 2 and "training" not in again.stdout

    # What git keeps of a study (the .gitignore's records) is enough: on a fresh machine nothing trains again.
    records = tmp_path / "records"
    for name in kept_in_git(root):
        (records / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, records / name)
    assert not list(records.rglob("*.pt")) and not list(records.rglob("corpora"))
    assert (records / "synth" / "rnn" / "seed1" / "eval-test" / "log.jsonl").exists()
    fresh = run_study(records, env, "train.batch_size=8")
    assert fresh.returncode == 0 and fresh.stdout.count(": done") == 2 and "training" not in fresh.stdout
    assert (records / "results.md").read_text() == (root / "results.md").read_text()

    # The records hold for one corpus: a study on another one is refused, by name.
    pinned = root / "synth" / "corpus.json"
    pinned.write_text(pinned.read_text().replace('"seed"', '"seed_of_another_corpus"'))
    other = run_study(root, env, "train.batch_size=8")
    assert other.returncode == 1 and "another corpus" in other.stderr and str(pinned) in other.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="makes a run fail by asking for a GPU the machine lacks")
def test_a_failed_run_is_marked_and_the_study_goes_on(tiny_timit, tmp_path):
    env = {"SMALL": "1", "TASKS": "synth", "CELLS": "rnn", "SYNTH_DATA": str(tiny_timit)}
    result = run_study(tmp_path / "study", env, "train.device=cuda")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no usable CUDA GPU" in (tmp_path / "study" / "synth" / "rnn" / "seed1" / "FAILED").read_text()
    assert "0 scored, 1 failed" in (tmp_path / "study" / "results.md").read_text()


def test_workers_share_the_runs_and_pass_by_one_held_elsewhere(tiny_timit, tmp_path):
    import fcntl

    root = tmp_path / "study"
    env = {"SMALL": "1", "TASKS": "synth", "CELLS": "peephole rnn nfg", "SYNTH_DATA": str(tiny_timit),
           "JOBS": "2"}
    held_run = root / "synth" / "nfg" / "seed1"
    held_run.mkdir(parents=True)
    with open(held_run / ".worker.lock", "a") as held:  # as a worker training it holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("OMP_NUM_THREADS", raising=False)  # unset, so that run.sh shares the cores out
            result = run_study(root, env, "train.batch_size=8")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    cores = len(os.sched_getaffinity(0))  # what run.sh's nproc counts; nproc here would read OMP_NUM_THREADS
    assert f"2 workers, {max(1, cores // 2)} thread(s) each" in result.stdout
    assert f"{held_run}: another worker is training it; passed by" in result.stdout
    assert not (held_run / "eval-test").exists()
    assert len(re.findall(r"^test PER [0-9.]+ %$", result.stdout, re.M)) == 2  # each run's score, from its summary
    for cell in ("peephole", "rnn"):  # each trained by one worker, once
        assert result.stdout.count(f"{root}/synth/{cell}/seed1: training") == 1
        assert (root / "synth" / cell / "seed1" / "eval-test" / "summary.json").exists()
    assert (root / "results.md").read_text().count("1 scored") == 2


def test_a_second_study_in_the_same_folder_is_refused(tmp_path):
    import fcntl

    (tmp_path / "study").mkdir()
    with open(tmp_path / "study" / ".lock", "a") as held:  # as the first run.sh holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_study(tmp_path / "study", {"SMALL": "1"})
    assert result.returncode == 1 and "another run.sh" in result.stderr
    assert not (tmp_path / "study" / "grid.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("flite") or not shutil.which("festival"), reason="needs flite and festival")
def test_the_small_grid_from_nothing(tmp_path):
    """SMALL=1 exactly as documented: both corpora generated, four cells, both tasks."""
    result = run_study(tmp_path / "study", {"SMALL": "1"}, timeout=3600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    table = (tmp_path / "study" / "results.md").read_text()
    assert table.count("1 scored") == 8
