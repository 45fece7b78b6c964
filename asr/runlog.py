"""What a run shows of itself: one line per epoch, ``log.jsonl`` (one record per epoch) and ``curves.png``.

Both files are rewritten whole from the run's history at each epoch's end (the
history travels in last.pt), so a resumed run's log holds exactly its epochs,
never a duplicate from before an interruption.
"""

from __future__ import annotations

import json
from pathlib import Path

from asr.atomic import write_text
from asr.plots import plot_training_curves


def epoch_line(record: dict, metric: str, improved: bool) -> str:
    """One epoch's record as one human line."""
    dev = (f" | dev loss {record['dev_loss']:.2f} | dev {metric.upper()} {100 * record[f'dev_{metric}']:.1f}%"
           if record.get("dev_loss") is not None else "")
    return (f"epoch {record['epoch']:3d} | train loss {record['train_loss']:.2f}{dev} | "
            f"lr {record['lr']:.3g} | {record['seconds'] / 60:.1f} min | "
            f"{record['frames_per_second']:.0f} frames/s{' | best' if improved else ''}")


def write_run_log(out: Path, history: list[dict], metric: str) -> None:
    """Rewrite ``log.jsonl`` and ``curves.png`` in the run folder `out` from `history`."""
    write_text(out / "log.jsonl", "".join(json.dumps(record) + "\n" for record in history))
    plot_training_curves(history, metric, out / "curves.png")
