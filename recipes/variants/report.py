"""The cell study's report: a markdown table (mean ± std over seeds of the test error rate, epochs
and minutes per task and cell) and a bar chart with error bars, from the folders run.sh fills.

    python -m recipes.variants.report ROOT                 # ROOT/results.md, results.png, gradient-flow.png
    python -m recipes.variants.report ROOT --readme recipes/variants/README.md --plot recipes/variants/results.png

What it reads, per run folder ROOT/TASK/CELL/seedN: eval-test/summary.json (decode.py's score of
the test split: PER on 39 folded phones, or CER), eval-test/log.jsonl or else log.jsonl (train.py's
record per epoch: epochs run, training seconds), FAILED (run.sh's note of a run that failed); and
ROOT/TASK/sizes.json (the matched hidden sizes) and ROOT/grid.json (which grid: the small one is said so in the table).
Runs not yet scored are counted as pending and left out of the means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from pathlib import Path

from scipy import stats

from asr.atomic import write_text
from asr.lstm import CELLS
from asr.plots import plt, save_figure
from recipes.variants import gradient_flow

TASKS = {"synth": ("synthesized speech (phones)", "per", "PER"),
         "handwriting": ("handwriting lines (characters)", "cer", "CER")}
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"  # the block --readme replaces
FLOW_CELLS = ("rnn", "nfg", "peephole", "gru")  # the gradient-flow plot: no gates, no forgetting, two gated cells
BASELINE = "peephole"  # Greff et al.'s "vanilla" LSTM has peepholes: it is this repo's peephole cell


def read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def read_run(folder: Path, metric: str) -> dict:
    """One run: its status (scored, failed, pending) and what it measured."""
    summary = read_json(folder / "eval-test" / "summary.json")
    log = folder / "eval-test" / "log.jsonl"  # a finished run's record (what git keeps); else the log so far
    log = log if log.exists() else folder / "log.jsonl"
    epochs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    status = "scored" if summary else "failed" if (folder / "FAILED").exists() else "pending"
    return {"status": status, "error": summary[metric]["rate"] if summary and metric in summary else None,
            "epochs": len(epochs), "minutes": epochs[-1]["seconds"] / 60 if epochs else None}


def seed_number(folder: Path) -> int:
    return int(re.sub(r"\D", "", folder.name) or 0)


def collect(root: Path) -> dict[str, dict[str, list[dict]]]:
    """{task: {cell: [run, ...]}} for the tasks and cells with run folders, cells in asr.lstm.CELLS order."""
    found = {}
    for task, (_, metric, _) in TASKS.items():
        cells = {cell: [read_run(seed, metric) for seed in sorted((root / task / cell).glob("seed*"), key=seed_number)]
                 for cell in CELLS if (root / task / cell).is_dir()}
        if cells:
            found[task] = cells
    return found


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(runs: list[dict]) -> dict:
    """A cell's row: means (and the error's std) over its scored runs, and the counts."""
    scored = [run for run in runs if run["status"] == "scored"]
    errors = [run["error"] for run in scored if run["error"] is not None]
    error, std = mean_std(errors)
    return {"error": error, "std": std, "errors": errors, "epochs": mean_std([run["epochs"] for run in scored])[0],
            "minutes": mean_std([run["minutes"] for run in scored if run["minutes"] is not None])[0],
            "scored": len(scored), "failed": sum(run["status"] == "failed" for run in runs),
            "pending": sum(run["status"] == "pending" for run in runs)}


def welch_p(errors: list[float], base: list[float]) -> float | None:
    """Welch's two-sided t-test of a cell's errors against the baseline's, the test Greff et al.
    (2017) used to call a variant different; None where either side has fewer than two seeds
    or neither varies."""
    if len(errors) < 2 or len(base) < 2 or statistics.stdev(errors) + statistics.stdev(base) == 0:
        return None
    return float(stats.ttest_ind(errors, base, equal_var=False).pvalue)


def p_value(value: float | None) -> str:
    return "" if value is None else "< 0.001" if value < 0.001 else f"{value:.2g}"


def percent(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def by_seed(errors: list[float]) -> str:
    """Each seed's error: a mean and std hide a cell that trains on one seed and not on another."""
    return ", ".join(f"{100 * e:.1f}" for e in errors) if len(errors) > 1 else ""


def number(value: float | None, form: str) -> str:
    return "–" if value is None else format(value, form)


def minutes(value: float | None) -> str:
    return number(value, ".1f" if value is None or value >= 1 else ".2f")  # the small grid's runs take seconds


def task_table(task: str, cells: dict[str, list[dict]], sizes: dict) -> list[str]:
    title, _, name = TASKS[task]
    rows = {cell: summarize(runs) for cell, runs in cells.items()}
    baseline = rows.get(BASELINE, {})
    base, base_errors = baseline.get("error"), baseline.get("errors", [])
    lines = [f"**{title}**: test {name} (%), best path, mean ± std over seeds; p: Welch's t-test against "
             f"{BASELINE}", "",
             f"| cell | hidden | weights | test {name} % | by seed | vs {BASELINE} | p | epochs | minutes | runs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for cell, row in rows.items():
        size = sizes.get(cell, {})
        delta = (f"{100 * (row['error'] - base):+.1f}" if base is not None and row["error"] is not None
                 and cell != BASELINE else "")
        p = welch_p(row["errors"], base_errors) if cell != BASELINE else None
        runs = f"{row['scored']} scored" + "".join(f", {row[k]} {k}" for k in ("failed", "pending") if row[k])
        lines.append(f"| {cell} | {size.get('hidden_size', '–')} | {number(size.get('weights'), ',d')} | "
                     f"{percent(row['error'], row['std'])} | {by_seed(row['errors'])} | {delta} | {p_value(p)} | "
                     f"{number(row['epochs'], '.1f')} | {minutes(row['minutes'])} | {runs} |")
    return lines


def grid_line(grid: dict | None) -> str:
    if not grid:
        return "Grid: unknown (no grid.json)."
    what = (f"cells {grid.get('cells')}; seeds {grid.get('seeds')}; overrides "
            f"{' '.join(grid.get('overrides', [])) or 'none'}")
    if str(grid.get("small")) == "1":
        return (f"**These are the SMALL grid's numbers** (a tiny corpus, 1 epoch, a tiny network: a check "
                f"that the study runs, not a result): {what}.")
    return f"The full grid: {what}."


def markdown(root: Path, found: dict) -> str:
    lines = [grid_line(read_json(root / "grid.json")), ""]
    if not found:
        lines.append("No runs yet.")
    for task, cells in found.items():
        sizes = (read_json(root / task / "sizes.json") or {}).get("cells", {})
        lines += [*task_table(task, cells, sizes), ""]
    return "\n".join(lines).rstrip() + "\n"


def plot(found: dict, path: Path, small: bool) -> None:
    """One panel per task: the mean test error per cell, the std over seeds as error bars, each seed a dot."""
    figure, axes = plt.subplots(1, max(len(found), 1), figsize=(5.5 * max(len(found), 1), 3.8), squeeze=False)
    for axis, (task, cells) in zip(axes[0], found.items()):
        rows = {cell: summarize(runs) for cell, runs in cells.items()}
        names = [cell for cell, row in rows.items() if row["error"] is not None]
        means, stds = [100 * rows[c]["error"] for c in names], [100 * (rows[c]["std"] or 0) for c in names]
        axis.bar(names, means, yerr=[[min(m, d) for m, d in zip(means, stds)], stds],  # no error below 0 %
                 capsize=4, color=["tab:gray" if c == BASELINE else "tab:blue" for c in names])
        for x, cell in enumerate(names):  # each seed, so that a run that never learned stands out
            axis.plot([x] * len(rows[cell]["errors"]), [100 * e for e in rows[cell]["errors"]], "k.", markersize=5)
        title, _, name = TASKS[task]
        axis.set(title=title, ylabel=f"test {name} (%)")
        axis.tick_params(axis="x", rotation=45)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("LSTM variants at equal weights" + (" (SMALL grid: not a result)" if small else ""))
    save_figure(figure, path)


def plot_gradient_flow(root: Path, path: Path) -> None:
    """The stored gradient-flow curves of the phone task's first seed, FLOW_CELLS, as one plot (none: no plot)."""
    stored = [root / "synth" / cell / "seed1" / "gradient-flow.json" for cell in FLOW_CELLS]
    curves = gradient_flow.read_curves([p for p in stored if p.exists()])
    if curves:
        gradient_flow.plot_curves(curves, path, gradient_flow.title())


def fill_readme(readme: Path, block: str) -> None:
    """Replace what lies between the README's BEGIN and END markers with `block`."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    write_text(readme, f"{head}{BEGIN}\n{block}{END}{rest.split(END, 1)[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the study's folder (run.sh's ROOT)")
    parser.add_argument("--readme", type=Path, help="also put the table between the results markers of this file")
    parser.add_argument("--plot", type=Path, help="the chart's path (default ROOT/results.png)")
    args = parser.parse_args(argv)
    found = collect(args.root)
    block = markdown(args.root, found)
    write_text(args.root / "results.md", block)
    small = str((read_json(args.root / "grid.json") or {}).get("small")) == "1"
    chart = args.plot or args.root / "results.png"
    plot(found, chart, small)
    plot_gradient_flow(args.root, chart.with_name("gradient-flow.png"))
    if args.readme:  # the chart goes in too, by its path from the README
        fill_readme(args.readme, f"{block}\n![test error per cell and task: mean, std over seeds, each seed a dot]"
                                 f"({os.path.relpath(chart, args.readme.parent)})\n")
    print(block, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
