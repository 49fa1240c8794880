"""Evaluation and training files -> one row per model and one per configuration (mean over
seeds with its t interval), beside the published numbers per cell. Knows nothing of Paddle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from maml.datasets import OMNIGLOT, dataset_of
from maml.files import FileFormatError, read_json
from maml.progress import train_cpu_seconds
from maml.settings import INDEPENDENT, SPLITS, cell_name, with_defaults
from maml.pipeline_config import GRID, parse_run


# The paper's published numbers per cell (Omniglot's, datasets.yaml): the cells' order in
# tables and figures, and the figures' reference lines.
PAPER = {cell: tuple(numbers["paper"]) for cell, numbers in OMNIGLOT.published.items()}


def published(split: str, cell: str, source: str) -> float:
    """A published accuracy (percent) of `source` (paper, paper_ci95, reference, maml++) for
    `cell` on `split`'s dataset (datasets.yaml), for comparison only; NaN where there is none
    (another dataset's cell is never set beside Omniglot's numbers)."""
    field = "paper" if source == "paper_ci95" else source
    value = dataset_of(split).published_number(cell, field) if split in SPLITS else None
    if value is None:
        return math.nan
    return value[source == "paper_ci95"] if field == "paper" else value


def cell_of(result: dict) -> str:
    return cell_name(result["n_way"], result["k_shot"])


def run_folder(path) -> Path:
    """The run folder of a result: its own folder, or for a result on another cell
    (maml.selection, <run>/on-<cell>/) the one above."""
    folder = Path(path).parent
    return folder.parent if folder.name.startswith("on-") else folder


def run_label(path) -> str:
    """'grid' for the config's methods x cells x seeds, else the extra run's name (from its
    folder)."""
    return parse_run(run_folder(path).name)[0] or GRID


def method_of(settings: dict) -> str:
    return with_defaults(settings)["method"]  # models trained before the methods axis: MAML


def t_interval(values) -> float:
    """Half-width of the 95% t interval of the mean of `values` (n - 1 degrees of freedom:
    4.30 s / sqrt(3) for three seeds); NaN for a single value."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def load_runs(evals, summaries, threads: int = 1) -> pd.DataFrame:
    """One row per trained model: its cell, method, run, seed, test accuracy and budget
    (training CPU-hours, see `maml.progress.train_cpu_seconds`)."""
    rows = []
    for eval_path, summary_path in zip(evals, summaries):
        result, summary = read_json(eval_path), read_json(summary_path)
        rows.append({
            "cell": cell_of(result), "method": method_of(summary["settings"]),
            "run": run_label(eval_path),
            # the cell the model was trained on (maml.cells: a model may serve another)
            "trained_on": result.get("trained_on", cell_of(result)),
            "model": str(run_folder(eval_path) / "model.npz"),
            "preset": summary["settings"].get("preset"),
            "split": summary["settings"].get("split"), "n_way": result["n_way"],
            "k_shot": result["k_shot"],
            "seed": summary["settings"]["seed"], "accuracy": 100 * result["accuracy"],
            "ci95": 100 * result["ci95"], "test_tasks": result["num_tasks"],
            # each query classified on its own (an evaluation before that existed: NaN)
            "independent": 100 * result.get("query_modes", {}).get(
                INDEPENDENT, {}).get("accuracy", float("nan")),
            "iterations": summary["iterations"], "train_minutes": summary["wall_time_s"] / 60,
            "train_cpu_hours": train_cpu_seconds(summary, threads) / 3600,
            "eval_minutes": result.get("wall_time_s", float("nan")) / 60,
            # where each part of the training ran (runs trained before segments were kept: [])
            "segments": summary.get("segments", []),
            # where the evaluation ran (evaluations before December 2026 did not say: None)
            "eval_machine": result.get("machine", {}).get("kind"),
        })
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell, method and run: mean over seeds with a 95% t interval across seeds.

    Within a cell, rows keep the config's order: the grid's methods, then the extra runs.
    """
    rows = []
    for (cell, method, run), group in runs.groupby(["cell", "method", "run"], sort=False):
        # (a run's label names its trained cell: one group is one trained and tested cell)
        acc = group["accuracy"].to_numpy()
        spread = t_interval(acc)
        split = group["split"].iloc[0]
        rows.append({
            "cell": cell, "method": method, "run": run, "preset": group["preset"].iloc[0],
            "trained_on": group["trained_on"].iloc[0],
            "model": group["model"].iloc[0],  # the first seed's
            "split": split, "seeds": len(acc), "ensemble": False,
            "accuracy": acc.mean(), "ci95_seeds": spread,
            "independent": group["independent"].mean(),  # over the seeds that have it
            "independent_seeds": int(group["independent"].notna().sum()),
            "independent_ci95_seeds": t_interval(group["independent"].dropna()),
            "per_seed": "; ".join(f"{a:.2f} ± {c:.2f}" for a, c in
                                  zip(group["accuracy"], group["ci95"])),
            "test_tasks": int(group["test_tasks"].iloc[0]),
            "iterations": int(group["iterations"].iloc[0]),
            "train_minutes": group["train_minutes"].mean(),
            "train_cpu_hours": group["train_cpu_hours"].mean(),
            # training CPU time per iteration (as `train_cpu_hours`, which jobs running beside
            # it inflate less than wall time)
            "ms_per_iteration": 3.6e6 * group["train_cpu_hours"].mean()
            / group["iterations"].iloc[0],
            "paper": published(split, cell, "paper"),
            "paper_ci95": published(split, cell, "paper_ci95"),
            "reference": published(split, cell, "reference"),
        })
    table = pd.DataFrame(rows)
    return in_cell_order(table)


def in_cell_order(table: pd.DataFrame) -> pd.DataFrame:
    order = {cell: i for i, cell in enumerate(PAPER)}
    return table.sort_values("cell", key=lambda c: c.map(lambda x: order.get(x, 99)),
                             kind="stable")


def ensemble_rows(ensemble_files, table: pd.DataFrame) -> pd.DataFrame:
    """One labelled row per ensemble (results/ensembles/<split>/<method>/<cell>/<run>.json, or
    .../<cell>/<run>/on-<tested cell>.json on another cell), beside its members' row of
    `table`: its accuracy, its members' iterations and cost."""
    rows = []
    for path in ensemble_files:
        result, path = read_json(path), Path(path)
        if path.stem.startswith("on-"):
            split, method, run = path.parts[-5], path.parts[-4], path.parts[-2]
        else:
            split, method, run = path.parts[-4], path.parts[-3], path.stem
        cell = cell_of(result)
        members = table[(table["cell"] == cell) & (table["method"] == method)
                        & (table["run"] == run) & (table["split"] == split)].iloc[0]
        rows.append({**members.to_dict(), "run": f"{run} ensemble", "ensemble": True,
                     "independent": float("nan"), "independent_seeds": 0,
                     "independent_ci95_seeds": float("nan"),
                     "seeds": len(result["members"]), "accuracy": 100 * result["accuracy"],
                     "ci95_seeds": float("nan"),
                     "per_seed": f"{100 * result['accuracy']:.2f} ± {100 * result['ci95']:.2f} "
                                 f"(one ensemble of {len(result['members'])} models)"})
    return pd.DataFrame(rows)


# The results tables the README shows, each between a pair of markers
# (<!-- results/NAME --> ... <!-- /results/NAME -->), so that it is never an older copy.
def check_evaluations(evals, config: dict) -> None:
    """Each run's evaluation was made on the config's test tasks: its task count and seed, and
    as a result file of this project (an evaluation run by hand with other settings, or a
    corrupt file, is named instead of entering the table)."""
    for path in evals:
        result = read_json(path)
        if not isinstance(result, dict) or "accuracy" not in result:
            raise FileFormatError(f"{path}: not an evaluation of this project")
        if not math.isfinite(result["accuracy"]):
            raise FileFormatError(f"{path}: a non-finite accuracy ({result['accuracy']})")
        for key, wanted in (("num_tasks", config.get("test_tasks", 600)),
                            ("test_seed", config.get("test_seed", 0))):
            if result.get(key) != wanted:
                raise FileFormatError(
                    f"{path}: made with {key} {result.get(key)}, the config's is {wanted}: not "
                    "the run's evaluation (rerun it with the pipeline, which writes it so)")
