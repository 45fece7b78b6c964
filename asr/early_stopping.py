"""Early stopping on the dev set and the switch to Graves' weight-noise phase.

Graves, Mohamed & Hinton (2013), section 4: train until the dev error stops
improving, then (optionally) restart from the best point with Gaussian weight
noise and stop again when that phase stops improving. The counters live in the
run's state (saved in last.pt), so a resumed run stops where the uninterrupted
one would; the functions here only read and update them.
"""

from __future__ import annotations

from asr.config import TrainConfig

NOISE_PHASE = "start the weight-noise phase"


def note_score(state, score: float, loss: float) -> bool:
    """Record an epoch's dev score (ties broken by loss) in `state`; whether it is the best so far."""
    if (score, loss) < (state.best, state.best_loss):
        state.best, state.best_loss, state.best_epoch, state.bad_epochs = score, loss, state.epoch, 0
        return True
    state.bad_epochs += 1
    return False


def decide(state, t: TrainConfig, has_dev: bool) -> str:
    """After an epoch: '' to go on, `NOISE_PHASE` to switch phases, else why the run ends."""
    if t.patience and has_dev and state.bad_epochs >= t.patience:
        if t.noise_phase and state.phase == 1:
            return NOISE_PHASE
        return f"early stopping: no dev improvement in {t.patience} epochs"
    if state.epoch >= t.max_epochs:
        return f"reached train.max_epochs={t.max_epochs}"
    return ""
