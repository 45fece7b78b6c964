import dataclasses
import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.checkpoint import load_checkpoint, load_model
from asr.config import Config
from asr.errors import UserError
from asr.training import Trainer

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**train) -> Config:
    config = Config.from_dict({
        "features": {"kind": "fbank", "n_mels": 20, "energy": True, "deltas": 1},
        "model": {"hidden_size": 12, "num_layers": 2},
        "data": {"tokens": "timit61"},
        "train": {"optimizer": "adam", "lr": 0.01, "batch_size": 4, "checkpoint_every": 0, "max_epochs": 3,
                  "patience": 0, **train},
    })
    return config


def quiet(*args):
    pass


def final_weights(out):
    return load_checkpoint(Path(out) / "last.pt")["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_a_run_writes_checkpoints_log_and_curves(tiny_timit, tmp_path):
    state = Trainer(tiny_config(), tiny_timit, tmp_path, log=quiet).fit()
    assert state.epoch == 3 and state.finished.startswith("reached train.max_epochs")
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert {"dev_loss", "dev_per", "dev_per61", "lr", "frames_per_second"} <= set(log[0])
    assert (tmp_path / "curves.png").stat().st_size > 1000
    model, config, tokens = load_model(tmp_path / "best.pt")
    assert config == tiny_config() and len(tokens) == 62
    # the normalisation statistics travel with the weights
    assert model.normalizer.std.abs().sum() > 0 and not torch.allclose(model.normalizer.mean, torch.zeros(42))


@pytest.mark.parametrize("stop_after", [3, 4])  # mid-epoch, and exactly at an epoch's end (4 batches per epoch)
def test_resume_is_exact(tiny_timit, tmp_path, stop_after):
    straight = tmp_path / "straight"
    Trainer(tiny_config(weight_noise=0.01, max_epochs=2), tiny_timit, straight, log=quiet).fit()
    stopped = tmp_path / "stopped"
    first = Trainer(tiny_config(weight_noise=0.01, max_epochs=2, max_steps=stop_after), tiny_timit, stopped,
                    log=quiet).fit()
    assert first.step == stop_after
    resumed = Trainer(None, None, stopped, resume=True, overrides=["train.max_steps=0"], log=quiet).fit()
    assert resumed.step == 8 and resumed.epoch == 2
    assert_same_weights(final_weights(straight), final_weights(stopped))


AUGMENTED = ["augment.speed_prob=1.0", "augment.reverb_prob=0.5", "augment.noise_prob=1.0",
             "augment.noise_kinds=[babble, white]", "augment.gain_prob=0.5", "augment.freq_masks=2",
             "augment.freq_mask_width=5", "augment.time_masks=1", "augment.time_mask_width=10"]


@pytest.mark.parametrize("augment", [AUGMENTED[-4:], AUGMENTED], ids=["specaugment", "waveform+specaugment"])
def test_resume_with_augmentation_is_exact(tiny_timit, tmp_path, augment, one_thread):
    """Stopped mid-epoch (3 of 4 batches) and resumed: the same augmented batches, bit-identical weights."""
    config = tiny_config(max_epochs=2).override(augment)
    straight = tmp_path / "straight"
    Trainer(config, tiny_timit, straight, log=quiet).fit()
    stopped = tmp_path / "stopped"
    assert Trainer(config.override(["train.max_steps=3"]), tiny_timit, stopped, log=quiet).fit().step == 3
    resumed = Trainer(None, None, stopped, resume=True, overrides=["train.max_steps=0"], log=quiet).fit()
    assert resumed.step == 8 and resumed.epoch == 2
    a, b = final_weights(straight), final_weights(stopped)
    assert all(torch.equal(a[key], b[key]) for key in a)
    # and augmentation did change the run: a clean run ends elsewhere
    Trainer(tiny_config(max_epochs=2), tiny_timit, tmp_path / "clean", log=quiet).fit()
    clean = final_weights(tmp_path / "clean")
    assert not all(torch.equal(a[key], clean[key]) for key in a)


def test_resuming_a_finished_run_does_nothing_unless_a_limit_is_raised(tiny_timit, tmp_path):
    Trainer(tiny_config(max_epochs=1), tiny_timit, tmp_path, log=quiet).fit()
    messages = []
    again = Trainer(None, None, tmp_path, resume=True, log=messages.append).fit()
    assert again.epoch == 1 and any("nothing to do" in m for m in messages)
    same = Trainer(None, None, tmp_path, resume=True, overrides=["train.lr=0.001"], log=messages.append).fit()
    assert same.epoch == 1 and len(same.history) == 1  # a limit not raised: still nothing to do
    longer = Trainer(None, None, tmp_path, resume=True, overrides=["train.max_epochs=2"], log=quiet).fit()
    assert longer.epoch == 2


def test_resume_refuses_another_model_and_missing_runs(tiny_timit, tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        Trainer(None, tiny_timit, tmp_path, resume=True, log=quiet)
    Trainer(tiny_config(max_steps=1), tiny_timit, tmp_path, log=quiet).fit()
    other = tiny_config().override(["model.hidden_size=20"])
    with pytest.raises(UserError, match="another model"):
        Trainer(other, tiny_timit, tmp_path, resume=True, log=quiet)
    with pytest.raises(UserError, match="last.pt: the checkpoint's weights do not fit"):  # not petabytes allocated
        Trainer(None, tiny_timit, tmp_path, resume=True, overrides=["model.hidden_size=10000000"], log=quiet)


def test_too_short_utterances_are_set_aside_with_a_warning(tiny_timit, tmp_path):
    messages = []
    # 8x frame stacking leaves ~7 frames for up to 8 labels: some utterances cannot be aligned
    config = tiny_config(max_steps=1).override(["features.stack=8"])
    trainer = Trainer(config, tiny_timit, tmp_path, log=messages.append)
    assert 0 < len(trainer.train_set.skipped) < 16
    assert any("set aside" in m and "too few" in m for m in messages)


def test_non_finite_steps_are_skipped_then_stop_the_run(tiny_timit, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(max_bad_steps=3), tiny_timit, tmp_path, log=quiet)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    monkeypatch.setattr(trainer, "ctc_loss_sum",
                        lambda batch, model: model(batch.features, batch.lengths).sum() * float("nan"))
    with pytest.raises(UserError, match="3 non-finite updates in a row"):
        trainer.fit()
    assert trainer.state.skipped_steps == 3
    assert_same_weights(before, trainer.model.state_dict())  # no NaN reached the weights


def gradients_of(*grads):
    parameters = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for parameter, g in zip(parameters, grads):
        parameter.grad = g.clone()
    return parameters


def test_gradient_clipping_is_torchs_where_the_norm_is_finite():
    from asr.optim import clip_gradients

    torch.manual_seed(0)
    grads = [torch.randn(5, 3) * 10, torch.randn(4)]
    for max_norm in (1.0, 1e6, float("inf")):
        ours, theirs = gradients_of(*grads), gradients_of(*grads)
        assert clip_gradients(ours, max_norm) == pytest.approx(float(torch.nn.utils.clip_grad_norm_(theirs, max_norm)))
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.grad, b.grad)


def test_a_finite_gradient_whose_norm_overflows_is_still_clipped():
    """The noaf cell's exploding gradients: every element finite, the sum of squares past
    float32's range. clip_grad_norm_ calls the norm inf (and zeroes the gradient); clipping
    keeps its direction at the largest norm allowed."""
    from asr.optim import clip_gradients

    grads = [torch.tensor([3e20, -4e20, 1.0]), torch.tensor([2e19])]
    exact = torch.cat([g.double() for g in grads])
    parameters = gradients_of(*grads)
    norm = clip_gradients(parameters, 5.0)
    assert norm == pytest.approx(float(exact.norm()), rel=1e-6)
    clipped = torch.cat([p.grad.double() for p in parameters])
    torch.testing.assert_close(clipped, exact * 5.0 / exact.norm(), rtol=1e-6, atol=1e-12)

    assert clip_gradients(gradients_of(*grads), float("inf")) == float("inf")  # no clipping: the step is skipped
    assert not math.isfinite(clip_gradients(gradients_of(torch.tensor([1.0, float("inf")])), 5.0))
    assert math.isnan(clip_gradients(gradients_of(torch.tensor([1.0, float("nan")])), 5.0))


def test_a_step_with_an_overflowing_gradient_norm_is_applied_clipped(tiny_timit, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(max_steps=1, grad_clip=1.0), tiny_timit, tmp_path, log=quiet)
    monkeypatch.setattr(trainer, "ctc_loss_sum",
                        lambda batch, model: model(batch.features, batch.lengths).sum() * 1e30)
    batch = trainer.train_set.batch(list(range(4)), 0)
    _, applied = trainer.train_step(batch, len(batch.lengths))
    assert applied and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_noise_phase_restarts_from_best(tiny_timit, tmp_path):
    messages = []
    state = Trainer(tiny_config(max_epochs=6, patience=1, noise_phase=True, noise_std=0.05, lr=0.5), tiny_timit,
                    tmp_path, log=messages.append).fit()
    phases = [h["phase"] for h in state.history]
    assert 2 in phases and phases == sorted(phases)
    assert any(m.startswith("phase 2") for m in messages)
    assert all(h["weight_noise"] == (0.05 if h["phase"] == 2 else 0.0) for h in state.history)


def test_bad_checkpoints_get_clear_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="junk.pt: is not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a checkpoint of this toolkit"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_train_cli_errors_are_one_line(tmp_path):
    result = run_cli("train.py", "--config", str(tmp_path / "nope.yaml"), "--data", str(tmp_path), "--out",
                     str(tmp_path / "run"))
    assert result.returncode == 2
    assert "nope.yaml: config file not found" in result.stderr and "Traceback" not in result.stderr


def test_dry_run_prints_the_parameter_count():
    result = run_cli("train.py", "--config", "recipes/timit/ctc-3l-250h.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "parameters: 3787562" in result.stdout


def write_tiny_config(path, **train):
    import yaml
    path.write_text(yaml.safe_dump(tiny_config(**train).to_dict()))
    return path


def test_ddp_two_processes_equal_one_process_on_the_same_global_batches(tiny_timit, tmp_path):
    config = write_tiny_config(tmp_path / "tiny.yaml", max_steps=3, batch_size=2)
    # --standalone: torchrun picks a free port, so parallel test runs never collide
    ddp = run_cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  "train.py", "--config", str(config), "--data", str(tiny_timit), "--out", str(tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    Trainer(tiny_config(max_steps=3, batch_size=4), tiny_timit, tmp_path / "single", log=quiet).fit()
    assert_same_weights(final_weights(tmp_path / "ddp"), final_weights(tmp_path / "single"))


def test_a_new_run_refuses_a_folder_holding_a_run_unless_told_to_overwrite(tiny_timit, tmp_path):
    Trainer(tiny_config(max_epochs=1), tiny_timit, tmp_path, log=quiet).fit()
    before = {name: (tmp_path / name).read_bytes() for name in ("last.pt", "best.pt", "config.yaml", "log.jsonl")}
    with pytest.raises(UserError, match="already holds a run .*--resume.*new --out.*--overwrite") as caught:
        Trainer(tiny_config(max_steps=2, lr=0.5), tiny_timit, tmp_path, log=quiet).fit()
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    assert before == {name: (tmp_path / name).read_bytes() for name in before}
    state = Trainer(tiny_config(max_steps=2), tiny_timit, tmp_path, overwrite=True, log=quiet).fit()
    assert state.step == 2 and load_checkpoint(tmp_path / "last.pt")["state"]["step"] == 2
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "log.jsonl").exists()  # none of the old run


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(tiny_timit, tmp_path):
    (tmp_path / "config.yaml").write_text("the config of a run that saved nothing\n")
    assert Trainer(tiny_config(max_steps=1), tiny_timit, tmp_path, log=quiet).fit().step == 1


@pytest.mark.parametrize("inside", ["", "runs/one"])
def test_a_run_folder_in_the_corpus_is_refused_before_anything_is_written(tiny_timit, tmp_path, inside):
    out = Path(tiny_timit) / inside
    before = sorted(Path(tiny_timit).rglob("*"))
    with pytest.raises(UserError, match="corpus.*pick an --out folder outside it"):
        Trainer(tiny_config(), tiny_timit, out, log=quiet)
    assert sorted(Path(tiny_timit).rglob("*")) == before


def test_a_run_initialised_from_a_checkpoint_starts_from_its_weights_and_refuses_another_model(tiny_timit, tmp_path):
    Trainer(tiny_config(max_epochs=1), tiny_timit, tmp_path / "first", log=quiet).fit()
    source = load_checkpoint(tmp_path / "first" / "best.pt")["model"]
    tuned = Trainer(tiny_config(max_steps=1, init_from=str(tmp_path / "first")), tiny_timit, tmp_path / "tuned",
                    log=quiet)
    assert_same_weights(source, tuned.model.state_dict())  # before any update, the normaliser included
    tuned.fit()
    assert not torch.equal(tuned.model.state_dict()["output.weight"].cpu(), source["output.weight"])
    wider = tiny_config(max_steps=1, init_from=str(tmp_path / "first")).override(["model.hidden_size=24"])
    with pytest.raises(UserError, match="train.init_from="):
        Trainer(wider, tiny_timit, tmp_path / "wider", log=quiet)


def test_the_cli_refuses_an_existing_run_folder_in_one_line(tiny_timit, tmp_path):
    config = write_tiny_config(tmp_path / "tiny.yaml", max_steps=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"an earlier run")
    result = run_cli("train.py", "--config", str(config), "--data", str(tiny_timit), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'run'}: already holds a run (last.pt). "
                                                  "Continue it with --resume, pick a new --out folder, "
                                                  "or pass --overwrite to start over"]
    assert (tmp_path / "run" / "last.pt").read_bytes() == b"an earlier run"


def test_a_second_process_on_the_same_run_folder_is_refused(tiny_timit, tmp_path):
    holder = subprocess.Popen(  # stands in for a training process that holds the folder's lock
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); sys.stdin.read()", str(tmp_path / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"{tmp_path}: another training process is using this run folder"):
            Trainer(tiny_config(max_steps=1), tiny_timit, tmp_path, log=quiet)
        assert sorted(os.listdir(tmp_path)) == [".lock"]  # nothing written
    finally:
        holder.communicate("")
    assert Trainer(tiny_config(max_steps=1), tiny_timit, tmp_path, log=quiet).fit().step == 1


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_temporaries_of_killed_writers_are_removed_when_a_run_resumes(tiny_timit, tmp_path):
    Trainer(tiny_config(max_steps=1), tiny_timit, tmp_path, log=quiet).fit()
    pid = dead_pid()
    stale = [tmp_path / f".last.pt.tmp{pid}", tmp_path / f".last.{pid}.k2j4x.tmp.pt", tmp_path / ".log.jsonl.tmp",
             tmp_path / ".curves.tmp.png"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    Trainer(None, None, tmp_path, resume=True, overrides=["train.max_steps=2"], log=quiet).fit()
    assert not any(path.exists() for path in stale)


def children() -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]


@pytest.mark.parametrize("signum, status, workers", [(signal.SIGTERM, 143, 0), (signal.SIGINT, 130, 0),
                                                     (signal.SIGTERM, 143, 1), (signal.SIGINT, 130, 1)])
def test_a_stopped_run_exits_with_the_signals_status_and_resumes(tiny_timit, tmp_path, monkeypatch, signum,
                                                                  status, workers):
    """Also with batch-building workers, which get the signal too (Ctrl-C and schedulers signal the whole
    process group): the run still saves and exits with the signal's status."""
    import yaml

    import train

    config = tmp_path / "tiny.yaml"
    overrides = ["augment.speed_prob=1.0", f"data.num_workers={workers}"]
    # batches of one: more batches than the workers build ahead, so the loader outlives the signal
    config.write_text(yaml.safe_dump(tiny_config(max_epochs=2, batch_size=1).override(overrides).to_dict()))
    step = Trainer.train_step

    def signalled_step(self, batch, global_size):
        if self.state.step == 2:
            for pid in [os.getpid(), *children()]:  # as a scheduler would; honoured after this update
                os.kill(pid, signum)
        return step(self, batch, global_size)

    monkeypatch.setattr(Trainer, "train_step", signalled_step)
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(tiny_timit), "--out", str(out)]) == status
    assert load_checkpoint(out / "last.pt")["state"]["step"] == 3
    monkeypatch.setattr(Trainer, "train_step", step)
    assert train.main(["--out", str(out), "--resume"]) == 0
    assert load_checkpoint(out / "last.pt")["state"]["epoch"] == 2


def test_a_full_disk_mid_save_is_one_clear_error_and_keeps_the_earlier_checkpoint(tiny_timit, tmp_path, monkeypatch):
    save, saves = torch.save, []

    def save_until_the_disk_fills(payload, path):
        saves.append(Path(path).name)
        if len([name for name in saves if name.startswith(".last.")]) == 2:  # the second last.pt
            Path(path).write_bytes(b"x" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        save(payload, path)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    with pytest.raises(UserError) as caught:
        Trainer(tiny_config(max_epochs=3), tiny_timit, tmp_path, log=quiet).fit()
    assert str(caught.value).splitlines() == [f"{tmp_path / 'last.pt'}: could not be written: the disk is full. "
                                              "Free some space (the earlier file, if any, is intact), then run the "
                                              "command again (training: add --resume)"]
    assert load_checkpoint(tmp_path / "last.pt")["state"]["epoch"] == 1  # the earlier one, intact
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]
    monkeypatch.setattr(torch, "save", save)  # space freed
    assert Trainer(None, None, tmp_path, resume=True, log=quiet).fit().epoch == 3



KILL_DURING_SAVE = """
import os, signal, sys, torch
from pathlib import Path
from asr.config import Config
from asr.training import Trainer
save, count = torch.save, [0]
def save_then_die(payload, path):
    if Path(path).name.startswith(".last."):
        count[0] += 1
        if count[0] == int(sys.argv[3]):  # half of this checkpoint reaches the disk, then kill -9
            save(payload, path)
            Path(path).write_bytes(Path(path).read_bytes()[:5000])
            os.kill(os.getpid(), signal.SIGKILL)
    save(payload, path)
torch.save = save_then_die
torch.set_num_threads(1)  # as in the test's own process, so both halves compute alike
config = Config.from_dict(__import__("yaml").safe_load(open(sys.argv[4])))
Trainer(config, sys.argv[1], sys.argv[2], log=lambda *a: None).fit()
"""


@pytest.mark.parametrize("killed_at_save", [3, 5])  # mid-epoch, and the save at the first epoch's end
def test_kill_9_during_a_checkpoint_write_resumes_to_identical_weights(tiny_timit, tmp_path, killed_at_save,
                                                                     one_thread):
    straight = tmp_path / "straight"
    Trainer(tiny_config(weight_noise=0.01, max_epochs=2, checkpoint_every=1), tiny_timit, straight, log=quiet).fit()
    config = write_tiny_config(tmp_path / "tiny.yaml", weight_noise=0.01, max_epochs=2, checkpoint_every=1)
    killed = tmp_path / "killed"
    result = run_cli("-c", KILL_DURING_SAVE, str(tiny_timit), str(killed), str(killed_at_save), str(config))
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert [name for name in os.listdir(killed) if ".tmp" in name]  # the half-written temporary is there
    resumed = Trainer(None, None, killed, resume=True, log=quiet).fit()
    assert resumed.step == 8 and not [name for name in os.listdir(killed) if ".tmp" in name]
    assert_same_weights(final_weights(straight), final_weights(killed))


def test_a_model_checkpoint_in_place_of_last_pt_is_refused_clearly(tiny_timit, tmp_path):
    Trainer(tiny_config(max_epochs=1), tiny_timit, tmp_path, log=quiet).fit()
    (tmp_path / "last.pt").write_bytes((tmp_path / "best.pt").read_bytes())
    with pytest.raises(UserError, match="last.pt: holds a model but not the run's state"):
        Trainer(None, None, tmp_path, resume=True, log=quiet)


def test_a_run_that_fails_to_start_leaves_its_folder_unlocked(tiny_timit, tmp_path):
    with pytest.raises(UserError) as failed:
        Trainer(tiny_config(max_steps=1), tmp_path / "no-such-corpus", tmp_path / "run", log=quiet)
    assert failed.traceback  # the failed Trainer's frames are still referenced here
    assert Trainer(tiny_config(max_steps=1), tiny_timit, tmp_path / "run", log=quiet).fit().step == 1


def test_early_stopping_waits_patience_epochs_then_switches_phase_then_stops():
    from asr.early_stopping import NOISE_PHASE, decide, note_score
    from asr.training import RunState

    t = tiny_config(patience=2, noise_phase=True, max_epochs=10).train
    state = RunState()
    decisions = []
    for epoch, score in enumerate([0.5, 0.4, 0.4, 0.45, 0.3, 0.35, 0.31], start=1):
        state.epoch = epoch
        improved = note_score(state, score, loss=1.0)
        decision = decide(state, t, has_dev=True)
        if decision == NOISE_PHASE:
            state.phase, state.bad_epochs = 2, 0
        decisions.append((improved, decision))
    assert decisions == [(True, ""), (True, ""), (False, ""), (False, NOISE_PHASE), (True, ""), (False, ""),
                         (False, "early stopping: no dev improvement in 2 epochs")]
    assert (state.best, state.best_epoch) == (0.3, 5)
    assert decide(state, t, has_dev=False) == ""  # without a dev set only the limits stop a run


def test_the_optimizer_factory_refuses_unknown_choices():
    from asr.optim import build_optimizer

    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = build_optimizer(model.parameters(), tiny_config(lr_schedule="plateau").train)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.01
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    with pytest.raises(UserError, match="lbfgs"):  # refused here, or earlier where the config is checked
        build_optimizer(model.parameters(), dataclasses.replace(tiny_config().train, optimizer="lbfgs"))


@pytest.mark.parametrize("returned, status", [(None, 0), (0, 0), (143, 143)])
def test_the_cli_exits_with_the_status_main_returns(returned, status):
    from asr.cli import run

    with pytest.raises(SystemExit) as exited:
        run(lambda: returned)
    assert exited.value.code == status
