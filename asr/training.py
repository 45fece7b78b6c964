"""Training with the CTC criterion, following Graves, Mohamed & Hinton (2013).

The recipe of the paper (section 4): CTC loss (Graves et al. 2006), SGD with
momentum 0.9 and learning rate 1e-4, weights uniform in [-0.1, 0.1], early
stopping on the dev set, then a second phase restarted from the best point with
Gaussian weight noise (sigma 0.075) added once per sequence (here: per batch).
On top of it what users expect: Adam, gradient clipping, learning-rate
schedules, length-grouped batches, bf16 and torch.compile on a GPU,
DistributedDataParallel through torchrun, and on-the-fly augmentation of the
training split (the ``augment:`` section; asr/augment.py, applied per utterance and
epoch by asr/dataset.py, so that a resumed run is still exact).

Nothing is lost: the run's whole state (weights, optimiser, scheduler, RNG
states, position inside the epoch, history) is saved atomically to ``last.pt``
every `checkpoint_every` updates, at each epoch's end and when the run is
stopped (Ctrl-C, SIGTERM); `--resume` continues exactly where it stopped, to the
same parameters an uninterrupted run reaches. A run stopped by a signal exits
with the conventional status (143 SIGTERM, 130 Ctrl-C) after saving, so a job
scheduler sees the interruption. ``best.pt`` holds the model with the best dev
error; ``log.jsonl`` and ``curves.png`` show the run.

The parts the `Trainer` puts together, one job each: asr/optim.py (optimiser
and schedule), asr/early_stopping.py (when to stop, when to switch phases),
asr/runlog.py (log.jsonl, curves.png), asr/runfolder.py (one process per run
folder; no accidental overwrite) and asr/checkpoint.py (safe, checked files).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from asr import distributed as dist
from asr.checkpoint import check_fits, load_checkpoint, load_weights, model_payload, resolve, save_checkpoint
from asr.config import Config, save_config
from asr.corpora import open_corpus
from asr.corpora.batching import LengthBatchSampler
from asr.dataset import Batch, FeatureDataset, epoch_batches
from asr.early_stopping import NOISE_PHASE, decide, note_score
from asr.errors import UserError
from asr.evaluation import corpus_counts, decode_sorted, primary_metric
from asr.features import FeatureStats
from asr.frontend import frontend_for
from asr.model import CTCModel
from asr.optim import build_optimizer, clip_gradients, step_scheduler
from asr.runfolder import RunFolder
from asr.runlog import epoch_line, write_run_log
from asr.tokens import TokenSet, token_set

STOPPED = "stopped by request"
RESUMABLE = ("state", "optimizer", "scheduler", "rng", "data_path")  # what last.pt holds beyond a model


@dataclass
class RunState:
    """Where a run stands; saved in every checkpoint so a resume continues exactly."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch completed
    step: int = 0  # updates applied (skipped non-finite steps count too)
    phase: int = 1  # 1: as configured; 2: Graves' weight-noise phase
    best: float = math.inf  # best dev error rate (or loss) so far
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the last improvement
    bad_steps: int = 0  # consecutive non-finite steps
    skipped_steps: int = 0
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0  # running sums of the current epoch
    epoch_loss: float = 0.0
    epoch_utterances: int = 0
    epoch_frames: int = 0
    finished: str = ""  # why the run ended, once it has
    history: list = field(default_factory=list)


def resume_config(payload: dict, requested: Config | None, overrides: list[str], source: Path) -> Config:
    """The config a resumed run continues with: the checkpoint's, with `overrides`.

    A requested config whose model or features differ from the checkpoint's is
    refused: those weights cannot continue as another network.
    """
    saved = Config.from_dict(payload["config"], str(source))
    if requested is not None and (requested.model != saved.model or requested.features != saved.features):
        raise UserError(f"{source}: this run was trained with another model or feature config; "
                        "resume without --config, or start a new run in another --out folder")
    return saved.override(overrides)


class StopRequest:
    """Turns the first Ctrl-C / SIGTERM into a request honoured after the current update."""

    def __init__(self):
        self.requested = False
        self.signal = 0  # the signal that asked, for the conventional exit status 128 + signal

    @contextmanager
    def installed(self):
        def handle(signum, frame):
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested, self.signal = True, signum
            tqdm.write("stop requested: saving after this update (Ctrl-C again to abort at once)")

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


@contextmanager
def weight_noise(model: torch.nn.Module, sigma: float, generator: torch.Generator):
    """Gaussian noise on every weight for one forward/backward; the update applies to the clean weights.

    Graves (2011) "Practical variational inference for neural networks": here once per batch, not per sequence.
    """
    if sigma <= 0:
        yield
        return
    noises = []
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator, device=parameter.device) * sigma
            parameter.add_(noise)
            noises.append(noise)
    try:
        yield
    finally:
        with torch.no_grad():
            for parameter, noise in zip(model.parameters(), noises):
                parameter.sub_(noise)


def fit_normalizer(model: CTCModel, dataset: FeatureDataset) -> None:
    # The clean features, even when training is augmented: the model is meant for clean input,
    # and statistics of one epoch's random augmentation would not be those of any other epoch.
    stats = FeatureStats(dataset.features[0].shape[1])
    for features in dataset.features:
        stats.update(features)
    model.normalizer.set_stats(stats)


def _check_apart(out: Path, data: str) -> None:
    """A run folder inside its corpus mixes the two: a manifest folder would read log.jsonl as
    a manifest, and copying the corpus copies the checkpoints."""
    run, corpus = out.resolve(), Path(data).resolve()
    if run == corpus or corpus in run.parents:
        where = "is the corpus folder" if run == corpus else "lies inside the corpus"
        raise UserError(f"--out {out} {where} --data {data}: a run's files would mix with the corpus's; "
                        "pick an --out folder outside it")


class Trainer:
    """One training run: data, model, optimiser and state; `fit()` runs it to the end."""

    def __init__(self, config: Config, data: str | Path | None, out: str | Path, resume: bool = False,
                 overrides: list[str] = (), log=print, overwrite: bool = False):
        self.out, self.log, self.overrides = Path(out), log, list(overrides)
        payload = self._resume_payload() if resume else None
        if payload is not None:
            config = resume_config(payload, config, list(overrides), self.out / "last.pt")
            # Before the data is read and the model allocated: an override may have changed the model.
            check_fits(payload, config, TokenSet.from_dict(payload["tokens"]), self.out / "last.pt")
            data = data or payload["data_path"]
        if data is None:
            raise UserError("no corpus given: pass --data CORPUS (a TIMIT tree, LibriSpeech folder, manifest...)")
        self.config, self.data_path = config, str(data)
        _check_apart(self.out, self.data_path)
        torch.manual_seed(config.train.seed)
        device = dist.choose_device(config.train.device, f"train.device={config.train.device}", "train.device=cpu")
        self.device = dist.setup(device)
        self.world, self.rank = dist.world_size(), dist.rank()
        # Locked before the data is read, so a refused folder costs nothing; only the main rank writes.
        self.folder = RunFolder(self.out, resume, overwrite) if dist.is_main() else None
        try:
            self._build(payload)
        except BaseException:
            self._release()
            raise

    def _build(self, payload: dict | None) -> None:
        config = self.config
        self._load_data(payload)
        self.model = CTCModel(self.train_set.features[0].shape[1], len(self.tokens), config.model).to(self.device)
        self.state = RunState()
        self.noise = torch.Generator(device=self.device).manual_seed(config.train.seed + 1)
        self.optimizer, self.scheduler = build_optimizer(self.model.parameters(), self.config.train)
        if payload is not None:
            self._restore(payload)
        elif config.train.init_from:
            self._initialise_from(Path(config.train.init_from))
        else:
            fit_normalizer(self.model, self.train_set)
        self.parallel_model = self._wrap(self.model)
        self.stop = StopRequest()

    # ---- set-up -------------------------------------------------------------------------

    def _initialise_from(self, path: Path) -> None:
        """Fine-tuning: every weight, the input normaliser's statistics included (the weights were
        trained on inputs normalised by them), from the checkpoint at `path`."""
        source = f"train.init_from={path}"
        payload = load_checkpoint(resolve(path))
        if TokenSet.from_dict(payload["tokens"]).to_dict() != self.tokens.to_dict():
            raise UserError(f"{source}: its token set is not this run's; fine-tune with the data.tokens "
                            "it was trained with")
        load_weights(self.model, payload["model"], source)

    def _resume_payload(self) -> dict:
        path = self.out / "last.pt"
        if not path.exists():
            raise UserError(f"{path}: nothing to resume (no last.pt). Start the run without --resume")
        payload = load_checkpoint(path)
        missing = [key for key in RESUMABLE if key not in payload]
        if missing:
            raise UserError(f"{path}: holds a model but not the run's state (no {', '.join(missing)}), so it "
                            "cannot be resumed; start a new run in another --out folder")
        return payload

    def _load_data(self, payload: dict | None) -> None:
        config = self.config
        frontend = frontend_for(config.features)
        augmenter = frontend.augmenter(config.augment)  # refused here, before any data is read, if it cannot be
        corpus = open_corpus(self.data_path)
        frontend.check_corpus(corpus.modality, self.data_path)
        train = corpus.read(config.data.train_split)
        if config.data.max_utterances:
            train = train[: config.data.max_utterances]
        if payload is not None:
            self.tokens = TokenSet.from_dict(payload["tokens"])
        else:
            self.tokens = token_set(config.data.tokens or corpus.default_tokens, (u.text for u in train))
        workers = config.data.num_workers
        self.train_set = FeatureDataset(train, frontend, self.tokens, workers, desc="train features")
        self._report_skipped("train", self.train_set)
        if augmenter is not None:  # the training split only: dev (and test) are never augmented
            self.train_set.augment_with(augmenter, config.train.seed)
        self.dev_set = None
        if config.data.dev_split in corpus.splits:
            self.dev_set = FeatureDataset(corpus.read(config.data.dev_split), frontend, self.tokens, workers,
                                          desc="dev features")
            self._report_skipped("dev", self.dev_set)
        elif dist.is_main():
            self.log(f"warning: {self.data_path} has no {config.data.dev_split!r} split; "
                     "early stopping is off and best.pt follows the training loss")
        self.sampler = LengthBatchSampler(self.train_set.lengths, config.train.batch_size * self.world,
                                          config.train.max_frames * self.world, seed=config.train.seed,
                                          min_size=self.world)

    def _report_skipped(self, name: str, dataset: FeatureDataset) -> None:
        if dataset.skipped and dist.is_main():
            self.log(f"warning: {name} utterances: {dataset.summary()}")

    def _wrap(self, model: CTCModel):
        wrapped = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.config.train.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    def _restore(self, payload: dict) -> None:
        load_weights(self.model, payload["model"], self.out / "last.pt")
        self.state = RunState(**payload["state"])
        if self.state.phase == 2:  # the optimiser was rebuilt when phase 2 began; same shape
            self.optimizer, self.scheduler = build_optimizer(self.model.parameters(), self.config.train)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"]["torch"])
        self.noise.set_state(payload["rng"]["noise"])
        if self.state.finished == STOPPED or self.overrides:
            self.state.finished = ""  # interrupted, or limits changed: go on

    # ---- checkpoints --------------------------------------------------------------------

    def save_last(self) -> None:
        if not dist.is_main():
            return
        save_checkpoint(model_payload(
            self.model, self.config, self.tokens,
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            state=dataclasses.asdict(self.state), data_path=self.data_path,
            rng={"torch": torch.get_rng_state(), "noise": self.noise.get_state().cpu()},
        ), self.out / "last.pt")

    def save_best(self, metrics: dict) -> None:
        if dist.is_main():
            save_checkpoint(model_payload(self.model, self.config, self.tokens, metrics=metrics,
                                          epoch=self.state.epoch), self.out / "best.pt")

    # ---- one update ---------------------------------------------------------------------

    @property
    def noise_std(self) -> float:
        return self.config.train.noise_std if self.state.phase == 2 else self.config.train.weight_noise

    def autocast(self):
        if self.config.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def ctc_loss_sum(self, batch: Batch, model) -> torch.Tensor:
        with self.autocast():
            log_probs = model(batch.features, batch.lengths)
        return F.ctc_loss(log_probs.float().transpose(0, 1), batch.targets, batch.lengths, batch.target_lengths,
                          blank=0, reduction="sum")

    def train_step(self, batch: Batch, global_size: int) -> tuple[float, bool]:
        """One update on this rank's share of a global batch: (global loss sum, applied?)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with weight_noise(self.model, self.noise_std, self.noise):
            loss_sum = self.ctc_loss_sum(batch, self.parallel_model)
            # Scaled so DDP's gradient mean equals the single-process mean over the global batch.
            (loss_sum * self.world / global_size).backward()
        norm = clip_gradients(self.model.parameters(), self.config.train.grad_clip or math.inf)
        totals = torch.tensor([loss_sum.item(), float(batch.lengths.sum())], device=self.device)
        if self.world > 1:
            torch.distributed.all_reduce(totals)
        finite = math.isfinite(norm) and math.isfinite(totals[0].item())
        if finite:
            self.optimizer.step()
        return totals[0].item(), finite

    def note_bad_step(self, finite: bool) -> None:
        state = self.state
        state.bad_steps = 0 if finite else state.bad_steps + 1
        state.skipped_steps += 0 if finite else 1
        if not finite:
            tqdm.write(f"step {state.step}: non-finite loss or gradient, update skipped "
                       f"({state.bad_steps} in a row)")
        if state.bad_steps >= self.config.train.max_bad_steps:
            self.save_last()
            raise UserError(f"{state.bad_steps} non-finite updates in a row at step {state.step}: the run "
                            "diverged. Lower train.lr, set train.grad_clip (e.g. 100), and resume with --resume")

    # ---- epochs -------------------------------------------------------------------------

    def train_epoch(self) -> str:
        """Run the rest of the current epoch; '' when it completes, else why it stopped."""
        state, t = self.state, self.config.train
        self.sampler.set_epoch(state.epoch, start=state.batch)
        bar = tqdm(total=len(self.sampler.batches), initial=state.batch, desc=f"epoch {state.epoch + 1}",
                   unit="batch", disable=not dist.is_main(), leave=False, mininterval=1.0, dynamic_ncols=True)
        global_batches = list(self.sampler)
        batches = epoch_batches(self.train_set, [b[self.rank::self.world] for b in global_batches], state.epoch,
                                self.config.data.num_workers)
        started = time.perf_counter()
        for global_batch, batch in zip(global_batches, batches):
            batch = batch.to(self.device)
            loss_sum, finite = self.train_step(batch, len(global_batch))
            state.batch, state.step = state.batch + 1, state.step + 1
            elapsed = time.perf_counter() - started
            state.train_seconds, state.epoch_seconds = state.train_seconds + elapsed, state.epoch_seconds + elapsed
            if finite:
                state.epoch_loss += loss_sum
                state.epoch_utterances += len(global_batch)
                state.epoch_frames += int(sum(self.train_set.lengths[i] for i in global_batch))
            self.note_bad_step(finite)
            bar.update()
            bar.set_postfix(loss=f"{state.epoch_loss / max(state.epoch_utterances, 1):.2f}",
                            fps=f"{state.epoch_frames / max(state.epoch_seconds, 1e-9):.0f}")
            reason = self.interruption()
            if reason or (t.checkpoint_every and state.step % t.checkpoint_every == 0):
                self.save_last()
            if reason:
                bar.close()
                return reason
            started = time.perf_counter()  # waiting for the next batch counts as training; saving does not
        bar.close()
        return ""

    def interruption(self) -> str:
        t, state = self.config.train, self.state
        if dist.any_rank(self.stop.requested, self.device):
            return STOPPED
        if t.max_steps and state.step >= t.max_steps:
            return f"reached train.max_steps={t.max_steps}"
        if t.max_minutes and state.train_seconds >= 60 * t.max_minutes:
            return f"reached train.max_minutes={t.max_minutes:g}"
        return ""

    @torch.no_grad()
    def evaluate(self, dataset: FeatureDataset, batch_size: int = 32) -> dict:
        """Dev loss per utterance and best-path error rates."""
        self.model.eval()
        loss = 0.0

        def forward(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal loss
            batch = dataset.batch(indices).to(self.device)
            with self.autocast():
                log_probs = self.model(batch.features, batch.lengths).float()
            loss += F.ctc_loss(log_probs.transpose(0, 1), batch.targets, batch.lengths, batch.target_lengths,
                               blank=0, reduction="sum", zero_infinity=True).item()
            return log_probs.cpu(), batch.lengths

        hypotheses = decode_sorted(dataset.lengths, batch_size, forward)
        references = [self.tokens.to_text(t.tolist()) for t in dataset.targets]
        counts = corpus_counts(self.tokens, references, hypotheses)
        return {"loss": loss / len(dataset), **{name: c.rate for name, c in counts.items()}}

    def end_epoch(self) -> str:
        """Evaluate, log, keep the best, decide whether to go on; '' to continue, else why it ended."""
        state, t = self.state, self.config.train
        metric = primary_metric(self.tokens)
        dev = self.evaluate(self.dev_set) if self.dev_set is not None and dist.is_main() else {}
        dev = dist.from_main(dev)  # every rank takes the same decisions below
        record = self._epoch_record(dev, metric)
        train_loss = record["train_loss"]
        state.history.append(record)
        state.epoch, state.batch = state.epoch + 1, 0
        state.epoch_loss, state.epoch_utterances, state.epoch_frames, state.epoch_seconds = 0.0, 0, 0, 0.0
        score = (dev[metric] if t.select_on == "error" else dev["loss"]) if dev else train_loss
        improved = note_score(state, score, dev.get("loss", train_loss))
        if improved:
            self.save_best({k: v for k, v in record.items() if v is not None})
        step_scheduler(self.scheduler, dev.get("loss", train_loss))
        if dist.is_main():
            self.log(epoch_line(record, metric, improved))
            write_run_log(self.out, state.history, metric)
        reason = decide(state, t, self.dev_set is not None)
        if reason == NOISE_PHASE:
            self.start_noise_phase()
            reason = ""
        self.save_last()
        return reason

    def _epoch_record(self, dev: dict, metric: str) -> dict:
        """The finished epoch as log.jsonl records it (dev values None without a dev set)."""
        state = self.state
        return {"epoch": state.epoch + 1, "phase": state.phase, "step": state.step,
                "train_loss": state.epoch_loss / max(state.epoch_utterances, 1),
                "dev_loss": dev.get("loss"), f"dev_{metric}": dev.get(metric),
                **{f"dev_{k}": v for k, v in dev.items() if k not in ("loss", metric)},
                "lr": self.optimizer.param_groups[0]["lr"], "weight_noise": self.noise_std,
                "seconds": state.train_seconds,
                "frames_per_second": state.epoch_frames / max(state.epoch_seconds, 1e-9)}

    def start_noise_phase(self) -> None:
        """Graves' second phase: back to the best weights, fresh optimiser, weight noise on."""
        dist.barrier()
        load_weights(self.model, load_checkpoint(self.out / "best.pt")["model"], self.out / "best.pt")
        self.state.phase, self.state.bad_epochs = 2, 0
        self.optimizer, self.scheduler = build_optimizer(self.model.parameters(), self.config.train)
        if dist.is_main():
            self.log(f"phase 2: restarting from the best epoch ({self.state.best_epoch}) "
                     f"with weight noise sigma={self.config.train.noise_std}")

    # ---- the run ------------------------------------------------------------------------

    def describe(self) -> str:
        t = self.config.train
        batches = f"{t.batch_size} utterances" if not t.max_frames else f"<= {t.max_frames} frames"
        return (f"data: {self.data_path}: {len(self.train_set)} train utterances "
                f"({self.train_set.num_frames():,} frames), "
                f"{len(self.dev_set) if self.dev_set else 0} dev; tokens: {self.tokens.describe()}\n"
                f"{self.model.summary()}\n"
                f"training: {t.optimizer} lr {t.lr:g}, batches of {batches} x {self.world} process(es), "
                f"device {self.device}, {t.precision}{self._describe_augmentation()}")

    def _describe_augmentation(self) -> str:
        data = self.train_set
        if data.augmenter is None:
            return ""
        effects = data.augmenter.description
        if not data.augmenter.input_enabled:
            return f"\naugmentation: {effects}"
        where = "kept in memory" if data.sources is not None else "re-read from disk every epoch (over the budget)"
        return f"\naugmentation: {effects}; train inputs ({data.source_bytes() / 1e6:.0f} MB) {where}"

    def fit(self) -> RunState:
        """Train until early stopping, a limit, or a stop request; the final state. Unlocks the folder."""
        try:
            return self._fit()
        finally:
            self._release()

    def _release(self) -> None:
        if self.folder is not None:
            self.folder.release()

    @property
    def exit_status(self) -> int:
        """0, or 128 + the signal that stopped the run (130 Ctrl-C, 143 SIGTERM): schedulers see the stop."""
        if self.state.finished != STOPPED:
            return 0
        return 128 + (self.stop.signal or signal.SIGTERM)  # a rank told by another rank stops as if by SIGTERM

    def _nothing_left(self) -> str:
        """Why a resumed run is already at one of its (perhaps overridden) limits; '' if it has work left.

        Without this check a finished run resumed with an override that raises no limit trained one epoch more.
        """
        reason = self.interruption() or decide(self.state, self.config.train, self.dev_set is not None)
        return "" if reason == NOISE_PHASE else reason

    def _fit(self) -> RunState:
        self.out.mkdir(parents=True, exist_ok=True)
        if dist.is_main():
            save_config(self.config, self.out / "config.yaml")
            self.log(self.describe())
        self.state.finished = self.state.finished or self._nothing_left()
        if self.state.finished:
            if dist.is_main():
                self.log(f"this run has finished ({self.state.finished}); nothing to do. To train on, "
                         "resume with a higher limit, e.g. train.max_epochs=N or train.patience=N")
            return self.state
        with self.stop.installed():
            reason = ""
            while not reason:
                reason = self.train_epoch() or self.end_epoch()
        self.state.finished = reason
        self.save_last()
        if dist.is_main():
            resume = " (continue with --resume)" if reason == STOPPED else ""
            self.log(f"finished: {reason}{resume}; best epoch {self.state.best_epoch} -> {self.out / 'best.pt'}")
        return self.state
