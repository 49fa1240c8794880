"""Evaluation files -> the reproduction table, its figures and the provenance of the numbers.

Knows nothing of Paddle: it reads the JSON and CSV files that `train` and `evaluate` wrote.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from maml import cpu, lake  # noqa: E402
from maml.files import (FileFormatError, atomic_write, read_json, write_json,  # noqa: E402
                        write_text)
from maml.progress import progress_markdown, train_cpu_seconds  # noqa: E402
from maml.selection import MODES  # noqa: E402
from maml.settings import (GRID, INDEPENDENT, cell_name, method_settings,  # noqa: E402
                           parse_cell, parse_run, presets, with_defaults)
from maml.settings import ensembles as configured_ensembles  # noqa: E402

# Each method's colour in every figure, from its family in presets.yaml.
COLOURS = {method: family["colour"] for method, family in presets().items()}

# Published numbers, for comparison only (percent; Finn et al. 2017, Table 1).
PAPER = {"5way1shot": (98.7, 0.4), "5way5shot": (99.9, 0.1),
         "20way1shot": (95.8, 0.3), "20way5shot": (98.9, 0.2)}
# The PaddlePaddle reference reproduction's reported test accuracies (percent).
REFERENCE = {"5way1shot": 99.2, "5way5shot": 99.5, "20way1shot": 95.0, "20way5shot": 98.7}
# MAML++'s published Omniglot accuracies (Antoniou, Edwards and Storkey 2019, Table 1): per seed
# an ensemble of its 5 checkpoints best on validation, averaged over three seeds, where this
# table's runs are single models.
MAML_PLUS_PLUS = {"5way1shot": 99.47, "5way5shot": 99.93, "20way1shot": 97.65,
                  "20way5shot": 99.33}
PACKAGES = ("maml-omniglot", "paddlepaddle", "paddlepaddle-gpu", "numpy", "opencv-python-headless",
            "pandas", "tqdm", "pooch", "matplotlib", "snakemake", "pyyaml")


def _cell(result: dict) -> str:
    return cell_name(result["n_way"], result["k_shot"])


def _run_folder(path) -> Path:
    """The run folder of a result: its own folder, or for a result on another cell
    (maml.selection, <run>/on-<cell>/) the one above."""
    folder = Path(path).parent
    return folder.parent if folder.name.startswith("on-") else folder


def _run_label(path) -> str:
    """'grid' for the config's methods x cells x seeds, else the extra run's name (from its
    folder)."""
    return parse_run(_run_folder(path).name)[0] or GRID


def _method(settings: dict) -> str:
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
            "cell": _cell(result), "method": _method(summary["settings"]),
            "run": _run_label(eval_path),
            # the cell the model was trained on (maml.cells: a model may serve another)
            "trained_on": result.get("trained_on", _cell(result)),
            "model": str(_run_folder(eval_path) / "model.npz"),
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
        paper = PAPER.get(cell, (float("nan"), float("nan")))
        rows.append({
            "cell": cell, "method": method, "run": run, "preset": group["preset"].iloc[0],
            "trained_on": group["trained_on"].iloc[0],
            "model": group["model"].iloc[0],  # the first seed's
            "split": group["split"].iloc[0], "seeds": len(acc), "ensemble": False,
            "accuracy": acc.mean(), "ci95_seeds": spread,
            "independent": group["independent"].mean(),  # over the seeds that have it
            "independent_seeds": int(group["independent"].notna().sum()),
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
            "paper": paper[0], "paper_ci95": paper[1],
            "reference": REFERENCE.get(cell, float("nan")),
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
        cell = _cell(result)
        members = table[(table["cell"] == cell) & (table["method"] == method)
                        & (table["run"] == run) & (table["split"] == split)].iloc[0]
        rows.append({**members.to_dict(), "run": f"{run} ensemble", "ensemble": True,
                     "independent": float("nan"), "independent_seeds": 0,
                     "seeds": len(result["members"]), "accuracy": 100 * result["accuracy"],
                     "ci95_seeds": float("nan"),
                     "per_seed": f"{100 * result['accuracy']:.2f} ± {100 * result['ci95']:.2f} "
                                 f"(one ensemble of {len(result['members'])} models)"})
    return pd.DataFrame(rows)


def _independent(row) -> str:
    """The same models on the same tasks, each query classified on its own; a run without it
    was evaluated before that existed and its model was not kept."""
    if row.ensemble:
        return "-"
    if pd.isna(row.independent):
        return "model not kept"
    if row.independent_seeds < row.seeds:  # the others' models are not kept
        return f"{row.independent:.2f} (seed{'s' if row.independent_seeds > 1 else ''} with a " \
               f"model: {row.independent_seeds} of {row.seeds})"
    return f"{row.independent:.2f}"


def _accuracy_over_seeds(row) -> str:
    if row.ensemble:
        return f"{row.accuracy:.2f} (ensemble of {row.seeds} seeds)"
    if row.seeds > 1:
        return f"{row.accuracy:.2f} ± {row.ci95_seeds:.2f} ({row.seeds} seeds)"
    return f"{row.accuracy:.2f} (1 seed)"


# The markdown table's columns: header and how a row of `summarise` fills it (with the grid's
# split, which a run on another split names).
MARKDOWN_COLUMNS = (
    ("cell", lambda row, split: row.cell),
    ("method", lambda row, split: row.method),
    ("run (preset)", lambda row, split: f"{row.run} ({row.preset}"
     f"{'' if row.split == split else f'; {row.split} split'})"),
    ("trained on", lambda row, split: row.trained_on),
    ("this code (mean ± 95% t interval over seeds)",
     lambda row, split: _accuracy_over_seeds(row)),
    ("per seed (± 95% over test tasks)", lambda row, split: row.per_seed),
    ("each query on its own", lambda row, split: _independent(row)),
    ("iterations", lambda row, split: f"{row.iterations}"),
    ("train CPU-hours/seed", lambda row, split: f"{row.train_cpu_hours:.2f}"),
    ("CPU ms/iteration", lambda row, split: f"{row.ms_per_iteration:.0f}"),
    ("paper", lambda row, split: f"{row.paper:.1f} ± {row.paper_ci95:.1f}"),
    ("reference", lambda row, split: f"{row.reference:.1f}"),
)


def _markdown(columns, rows, *args) -> str:
    """A markdown table: `columns` are (header, cell) pairs, `cell(row, *args)` a row's text."""
    lines = ["| " + " | ".join(header for header, _ in columns) + " |",
             "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row, *args) for _, cell in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_table(table: pd.DataFrame, split: str) -> str:
    """The table in markdown; a run on another split than `split` (the grid's) says so."""
    return _markdown(MARKDOWN_COLUMNS, table.itertuples(), split)


def _published(numbers: dict, row) -> float:
    value = numbers.get(row.cell, float("nan"))
    return value[0] if isinstance(value, tuple) else value


def _budget(row) -> str:
    """Training CPU-hours per model; an ensemble's are its members' together."""
    if row.ensemble:
        return f"{row.seeds * row.train_cpu_hours:.2f} ({row.seeds} models)"
    return f"{row.train_cpu_hours:.2f}"


# best_per_cell's columns, filled from a row of `summarise` with its `role` in the cell.
BEST_COLUMNS = (
    ("cell", lambda row: row.cell),
    ("row", lambda row: row.role),
    ("method, run (preset)", lambda row: f"{row.method}, {row.run} ({row.preset})"),
    ("trained on", lambda row: row.trained_on),
    ("test accuracy (± 95% t interval over seeds)", _accuracy_over_seeds),
    ("each query on its own", lambda row: _independent(row)),
    ("iterations", lambda row: f"{row.iterations}"),
    ("train CPU-hours per model", _budget),
    ("paper (MAML)", lambda row: f"{_published(PAPER, row):.1f}"),
    ("gap to the paper", lambda row: f"{row.accuracy - _published(PAPER, row):+.2f}"),
    ("MAML++ published (top-5 ensemble)", lambda row: f"{_published(MAML_PLUS_PLUS, row):.2f}"),
    ("gap to MAML++", lambda row: f"{row.accuracy - _published(MAML_PLUS_PLUS, row):+.2f}"),
)
HEADLINE = "headline"
HIGHEST = "highest single model"


def _full_paper_protocol(row) -> bool:
    """Whether a row is the paper's preset trained for all of the preset's iterations."""
    if row.preset != "paper" or row.ensemble:
        return False
    return row.iterations == method_settings(row.method, "paper", *parse_cell(row.cell))[
        "iterations"]


def _cell_rows(group: pd.DataFrame, headlines, chosen: dict) -> list[tuple[str, pd.Series]]:
    """(role, row) pairs of one cell: see `best_per_cell`."""
    singles = group[~group["ensemble"].astype(bool)]
    own = singles[singles["trained_on"] == singles["cell"]]
    is_own_headline = [(row.method, row.cell, row.run) in headlines for row in own.itertuples()]
    if not any(is_own_headline):
        return [(HIGHEST, own.loc[own["accuracy"].idxmax()])]
    own_head = own[is_own_headline].iloc[0]

    def run_rows(label):
        return singles[singles["run"] == label]

    together, alone = (chosen.get(mode) for mode in MODES)
    head = run_rows(together).iloc[0] if together and len(run_rows(together)) else own_head
    rows = [(HEADLINE + (" (chosen on validation)" if together else ""), head)]
    rows += [("ensemble of its seeds", row) for _, row in
             group[group["run"] == f"{head.run} ensemble"].iterrows()]
    if head.run != own_head.run:
        rows += [("the cell's own model", own_head)]
        rows += [("ensemble of its seeds", row) for _, row in
                 group[group["run"] == f"{own_head.run} ensemble"].iterrows()]
    if alone and alone != head.run and len(run_rows(alone)):
        rows += [("chosen on validation for each query on its own", run_rows(alone).iloc[0])]
    same = own[(own["method"] == own_head.method) & (own["preset"] == own_head.preset)]
    return (rows + [("same configuration, longer", row) for _, row in
                    same[same["iterations"] > own_head.iterations].iterrows()]
            + [("the paper's protocol to its end", row) for _, row in own.iterrows()
               if _full_paper_protocol(row)])


# The front page's table: per cell, the headline row of best_per_cell.
HEADLINE_COLUMNS = (
    ("cell", lambda row: row.cell),
    ("model (method, trained on)", lambda row: f"{row.run} ({row.method}, {row.trained_on})"),
    ("queries together (paper's protocol)", _accuracy_over_seeds),
    ("each query on its own (what `predict` gives)", lambda row: _independent(row)),
    ("paper (MAML)", lambda row: f"{row.paper:.1f} ± {row.paper_ci95:.1f}"),
    ("MAML++ published (ensembles)", lambda row: f"{_published(MAML_PLUS_PLUS, row):.2f}"),
    ("model file (first seed)", lambda row: f"`{row.model}`"),
)


def cell_rows(table: pd.DataFrame, split: str, headlines=(), chosen=None) -> dict:
    """{cell: its rows of `best_per_cell`, each with its `role`}, the headline first."""
    return {cell: [pd.concat([row, pd.Series({"role": role})]) for role, row in
                   _cell_rows(group, set(headlines), (chosen or {}).get(cell, {}))]
            for cell, group in table[table["split"] == split].groupby("cell", sort=False)}


def headline_table(table: pd.DataFrame, split: str, headlines=(), chosen=None) -> str:
    """Per cell of `split`, its headline row (`best_per_cell`'s first): markdown."""
    return _markdown(HEADLINE_COLUMNS, [rows[0] for rows in
                                        cell_rows(table, split, headlines, chosen).values()])


def best_per_cell(table: pd.DataFrame, split: str, headlines=(), chosen=None) -> str:
    """Per cell of `split` (the grid's; another split has other test characters): its
    headline row, the configuration chosen on validation for the queries together (`chosen`:
    {cell: {mode: run label}}, results/selection.json; without it, or where it names none,
    the cell's own run that the config also tests as one ensemble of its seeds, `headlines`:
    (method, cell, run) triples, see settings.ensembles) with its ensemble; where the chosen
    model was trained on another cell, the cell's own headline run and its ensemble beside
    it; the configuration chosen for each query on its own where it differs; the same method
    and preset trained longer, and the paper's preset trained to its end. A cell without a
    headline run shows its highest single-model row (a report of what was reached, not a
    choice of setting). Each with its cost and the gaps left to the paper's MAML and to
    MAML++'s published numbers. Markdown."""
    return _markdown(BEST_COLUMNS, [row for rows in
                                    cell_rows(table, split, headlines, chosen).values()
                                    for row in rows])


# The HTML table of every run: the markdown table's columns, each seed's accuracy without
# its interval (the CSV and markdown have them), so that the page fits a laptop's screen.
HTML_COLUMNS = tuple(
    ("per seed", lambda row, split: "; ".join(re.findall(r"(\d+\.\d+) ±", row.per_seed))
     or row.per_seed) if header.startswith("per seed") else (header, cell)
    for header, cell in MARKDOWN_COLUMNS if header not in ("reference", "CPU ms/iteration"))
HTML_STYLE = ("body{font-family:sans-serif;margin:1em;max-width:1380px}"
              "table{border-collapse:collapse;font-size:13px;margin-bottom:2em}"
              "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
              "th{background:#eef;position:sticky;top:0}td{max-width:16em;overflow-wrap:anywhere}")


def _frame(columns, rows, *args) -> pd.DataFrame:
    """A table's rows as text under its human headers (markdown's code marks dropped)."""
    return pd.DataFrame([[cell(row, *args).replace("`", "") for _, cell in columns]
                         for row in rows], columns=[header.replace("`", "")
                                                    for header, _ in columns])


def lake_html_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Lake's table (`lake_table`'s frame) as text under human headers, no NaN."""
    def number(value, digits=2):  # Lake's errors are multiples of 0.25
        return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"

    return pd.DataFrame({
        "model": frame["model"],
        "error, queries together": [
            number(e) + (f" ± {number(c)}" if number(c) else "")
            for e, c in zip(frame["error_percent"], frame["ci95_seeds"])],
        "error, each query on its own": [
            number(e) + (f" ± {number(c)}" if number(c) else "")
            for e, c in zip(frame.get("independent_error_percent", []),
                            frame.get("independent_ci95_seeds", []))],
        "training budget": frame["budget"].fillna(""), "source": frame["source"]})


def html_page(title: str, sections) -> str:
    """A page of (heading, frame) tables, each through pandas' Styler, UTF-8."""
    body = "".join(f"<h2>{heading}</h2>\n" + frame.style.hide(axis="index").to_html()
                   for heading, frame in sections)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{HTML_STYLE}</style></head>\n<body><h1>{title}</h1>\n{body}</body></html>\n")


def _family_index(method: str) -> int:
    """A method's place among presets.yaml's families (others after)."""
    families = list(COLOURS)
    return families.index(method) if method in families else len(families)


def grid_comparison(runs: pd.DataFrame, split: str) -> str:
    """Per cell, the grid's methods at equal iterations (the README's per-cell paragraph): the
    leader; each other method's difference from it, the difference of the means over seeds
    with its 95% Welch t interval (scipy); and each one's training CPU time per iteration
    (`maml.progress.train_cpu_seconds`: process CPU time where recorded, which other jobs
    on the machine inflate less than wall time)."""
    grid = runs[(runs["run"] == GRID) & (runs["split"] == split)]
    lines = []
    for cell, group in in_cell_order(grid).groupby("cell", sort=False):
        by_method = dict(list(group.groupby("method", sort=False)))
        means = {method: rows["accuracy"].mean() for method, rows in by_method.items()}
        order = sorted(means, key=means.get, reverse=True)
        leader, others = order[0], order[1:]
        differences = []
        for method in others:
            a, b = by_method[leader]["accuracy"], by_method[method]["accuracy"]
            if min(len(a), len(b)) < 2:
                spread = f" (seeds {len(a)} and {len(b)}: no interval)"
            else:
                interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
                spread = f" ± {(interval.high - interval.low) / 2:.2f}"
            differences.append(f"{means[leader] - means[method]:.2f}{spread} points ahead of "
                               f"{method} ({means[method]:.2f})")
        costs = ", ".join(
            f"{method} {3.6e6 * rows['train_cpu_hours'].mean() / rows['iterations'].iloc[0]:.0f}"
            for method, rows in sorted(by_method.items(), key=lambda item: _family_index(item[0])))
        n_way, k_shot = parse_cell(cell)
        lines.append(f"- **{n_way}-way {k_shot}-shot**: {leader} is ahead "
                     f"({means[leader]:.2f}%), " + ", ".join(differences)
                     + f". CPU ms per iteration: {costs}.")
    return "\n".join(lines) + "\n"


def _series_label(method: str, run: str) -> str:
    return method if run == GRID else f"{method}, {run}"


EXTRA_RUN_LOOKS = (("--", "s"), (":", "^"), ("-.", "x"), ((0, (5, 1, 1, 1, 1, 1)), "d"))


def _line_styles(series) -> dict:
    """{(method, run): label and style}: one colour per method in every panel and figure; the
    grid's runs solid with dots, each extra run of a method its own dashes and marker within
    its panel."""
    styles, extra_runs = {}, {}
    for method, run in series:
        color = COLOURS.get(method) or "gray"
        if run == GRID:
            dash, marker = "-", "o"
        else:
            extra_runs[method] = extra_runs.get(method, -1) + 1
            dash, marker = EXTRA_RUN_LOOKS[extra_runs[method] % len(EXTRA_RUN_LOOKS)]
        styles[method, run] = {"label": _series_label(method, run), "color": color,
                               "linestyle": dash, "marker": marker, "markersize": 3}
    return styles


def _panel(cell: str, split: str, main_split: str) -> str:
    """A figure panel's title: the cell, and the split where it is not the grid's (its runs
    are validated and tested on other characters, so they get their own panel)."""
    return cell if split == main_split else f"{cell}, {split} split"


def _validation_curves(curves, summaries, main_split: str, threads: int = 1) -> dict:
    """{panel: {(method, run): [(each seed's validation rows of curve.csv, by iteration, its
    train.json)]}}."""
    panels = {}
    for curve_path, summary_path in zip(curves, summaries):
        summary = read_json(summary_path)
        settings = with_defaults(summary["settings"])
        frame = pd.read_csv(curve_path)
        frame["cpu_s"] = cpu_seconds_by_row(frame, summary, threads)
        frame = frame.dropna(subset=["val_accuracy"]).set_index("iteration")
        key = (_method(settings), _run_label(curve_path))
        panels.setdefault(_panel(_cell(settings), settings["split"], main_split), {}
                          ).setdefault(key, []).append(frame)
    return _in_paper_order(panels)


def cpu_seconds_by_row(curve: pd.DataFrame, summary: dict, threads: int = 1) -> np.ndarray:
    """Each curve row's training CPU time so far: within each segment of the run (its
    train.json), the segment's process CPU time spread over its rows by their wall clock,
    its last row at the segment's end, so the curve's last row is the run's CPU time (`maml.progress.train_cpu_seconds`, the table's);
    a run without segments, wall time x threads, as the table."""
    elapsed = curve["elapsed_s"].to_numpy(dtype=float)
    iterations = curve["iteration"].to_numpy()
    segments = summary.get("segments") or []
    if not segments:
        return elapsed * threads
    cpu = np.zeros(len(curve))
    done = 0.0
    for segment in segments:
        inside = (iterations > segment["from_iteration"]) & (iterations <= segment["to_iteration"])
        before = elapsed[iterations == segment["from_iteration"]]
        start = before[0] if len(before) else 0.0
        span = (elapsed[inside].max() - start) if inside.any() else 0.0
        cpu[inside] = done + (elapsed[inside] - start) * (segment["cpu_s"] / span if span else 0)
        done += segment["cpu_s"]
    return cpu


def _in_paper_order(cells: dict) -> dict:
    """Panels in the paper's order of cells (others, and other splits, after)."""
    order = list(PAPER)
    return dict(sorted(cells.items(), key=lambda item: order.index(item[0])
                       if item[0] in order else len(order)))


def _log_axis_if_spread(ax, lengths) -> None:
    """A log x axis where the lines' lengths differ much (an extra run beside the grid), so
    short and long lines both stay readable."""
    if max(lengths) > 4 * min(lengths):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _zoom(ax, lines) -> None:
    """A y axis from a little below the lowest line's final value to a little above the
    highest value: the differences between the runs' results, not the climb from chance,
    fill the panel. `lines`: {label: (x, y)}."""
    finals = [y[-1] for _, y in lines.values()]
    top = max(float(np.nanmax(y)) for _, y in lines.values())
    ax.set_ylim(max(0.0, min(finals) - 5.0), min(100.5, top + 2.0))


def _plot_panels(panels: dict, draw, path, xlabel: str, ylabel: str,
                 legend_title: str = "") -> dict:
    """Panels two by two, `draw(ax, panel, series)` drawing each one's lines and returning
    {label: (x, y)}; one legend for the figure, outside the data, one entry per line label.
    Returns {panel: {label: (x, y)}}, what was drawn."""
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.9 * rows), squeeze=False)
    drawn, handles = {}, {}
    for ax, (panel, series) in zip(axes.flat, panels.items()):
        drawn[panel] = draw(ax, panel, series)
        ax.set(title=panel, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.98),
               fontsize=8, title=legend_title or None, title_fontsize=8, frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110,
                                                  bbox_inches="tight"))
    plt.close(fig)
    return drawn


def plot_validation_curves(curves, summaries, path, main_split: str = "finn") -> dict:
    """One panel per cell (and split), one line per method and run: the mean over seeds of
    the validation accuracy, shaded from the lowest to the highest seed."""
    def draw(ax, panel, series):
        lengths, lines = [], {}
        for key, style in _line_styles(series).items():
            frames = series[key]
            values = 100 * pd.concat([f["val_accuracy"] for f in frames], axis=1)
            mean = values.mean(axis=1)
            label = f"{style['label']} ({len(frames)})"
            ax.plot(mean.index, mean, **{**style, "label": label})
            if len(frames) > 1:
                ax.fill_between(mean.index, values.min(axis=1), values.max(axis=1),
                                color=style["color"], alpha=0.15)
            lengths.append(mean.index.max())
            lines[label] = (mean.index.to_numpy(), mean.to_numpy())
        _log_axis_if_spread(ax, lengths)
        _zoom(ax, lines)
        return lines

    return _plot_panels(_validation_curves(curves, summaries, main_split), draw, path,
                        "meta-iteration", "validation accuracy (%)", "method, run (seeds)")


def plot_accuracy_vs_cpu_hours(curves, summaries, path, main_split: str = "finn",
                               threads: int = 1) -> dict:
    """One panel per cell (and split): validation accuracy against training CPU-hours, the
    process CPU time the table's CPU-hours column counts (`cpu_seconds_by_row`), one line per
    method and run (mean over seeds), the paper's number as a line."""
    def draw(ax, panel, series):
        lengths, lines = [], {}
        for key, style in _line_styles(series).items():
            frames = series[key]
            hours = pd.concat([f["cpu_s"] for f in frames], axis=1).mean(axis=1) / 3600
            accuracy = 100 * pd.concat([f["val_accuracy"] for f in frames], axis=1).mean(axis=1)
            ax.plot(hours, accuracy, **style)
            lengths.append(hours.max())
            lines[style["label"]] = (hours.to_numpy(), accuracy.to_numpy())
        _log_axis_if_spread(ax, lengths)
        _zoom(ax, lines)
        if panel in PAPER:
            ax.axhline(PAPER[panel][0], color="black", linestyle="--", linewidth=1,
                       label="paper (test accuracy)")
        return lines

    return _plot_panels(_validation_curves(curves, summaries, main_split, threads), draw, path,
                        "training CPU-hours (process CPU time)", "validation accuracy (%)",
                        "method, run")


def plot_accuracy_vs_steps(evals, summaries, path, main_split: str = "finn") -> dict:
    """One panel per cell (and split): test accuracy after each inner step at test, mean
    over seeds, one line per method and run, shaded by the mean 95% interval over test
    tasks; the y axis from a little below the lowest line's last step."""
    panels = {}
    for eval_path, summary_path in zip(evals, summaries):
        result = read_json(eval_path)
        settings = with_defaults(read_json(summary_path)["settings"])
        key = (_method(settings), _run_label(eval_path))
        panels.setdefault(_panel(_cell(result), settings["split"], main_split), {}
                          ).setdefault(key, []).append(result)

    def draw(ax, panel, series):
        lines = {}
        for key, style in _line_styles(series).items():
            results = series[key]
            acc = 100 * np.mean([r["per_step_accuracy"] for r in results], axis=0)
            ci = 100 * np.mean([r["per_step_ci95"] for r in results], axis=0)
            steps = np.arange(len(acc))
            ax.plot(steps, acc, **style)
            ax.fill_between(steps, acc - ci, acc + ci, color=style["color"], alpha=0.15)
            lines[style["label"]] = (steps, acc)
        _zoom(ax, lines)
        return lines

    return _plot_panels(_in_paper_order(panels), draw, path, "inner gradient steps at test",
                        "test accuracy (%)", "method, run")


def provenance(config: dict, runs: pd.DataFrame, workflow_dir) -> dict:
    """What produced these numbers: commit, config, package versions, machine, wall times."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", str(workflow_dir), *args], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "commit": git("rev-parse", "HEAD"),
        # code or config edited since the commit (results/ is what this run is rewriting)
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no", "--",
                                        ".", ":(exclude)results")),
        "config": config,
        "python": sys.version.split()[0],
        "packages": versions,
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu": cpu.machine(), "cpus": os.cpu_count(),
                    "cpu_settings": cpu.configure()},
        "jobs": runs[["cell", "method", "run", "seed", "iterations", "train_minutes",
                      "train_cpu_hours", "eval_minutes", "segments", "eval_machine"]]
        .to_dict(orient="records"),
    }


def _error_cell(mean: float, interval) -> str:
    """A mean error, with its 95% t interval over seeds where there is one; NaN: a seed was
    not scored this way."""
    if pd.isna(mean):
        return "not scored"
    return f"{mean:.2f}" + ("" if interval is None or pd.isna(interval) else f" ± {interval:.2f}")


def lake_table(lake_files, summaries_by_folder: dict, threads: int = 1
               ) -> tuple[pd.DataFrame, str]:
    """Error on Lake's 20 one-shot runs: each split, method and run's models (mean over seeds,
    with the 95% t interval over them), all 20 queries of a run classified together (the
    table's protocol) and each on its own (settings.INDEPENDENT), with their training budget;
    then the published figures. (csv frame, markdown)"""
    rows = []
    for path in lake_files:
        result = read_json(path)
        summary = read_json(summaries_by_folder[str(Path(path).parent)])
        settings = with_defaults(summary["settings"])
        independent = result.get("query_modes", {}).get(INDEPENDENT, {})
        rows.append({"split": settings["split"], "method": _method(settings),
                     "run": _run_label(path), "seed": settings["seed"],
                     "error_percent": result["error_percent"],
                     "independent_error_percent": independent.get("error_percent", np.nan),
                     "iterations": summary["iterations"],
                     "train_cpu_hours": train_cpu_seconds(summary, threads) / 3600})
    models = pd.DataFrame(rows, columns=["split", "method", "run", "seed", "error_percent",
                                         "independent_error_percent", "iterations",
                                         "train_cpu_hours"])
    table = []
    for (split, method, run), group in models.groupby(["split", "method", "run"], sort=False):
        errors = group["error_percent"].to_numpy()
        independent = group["independent_error_percent"].to_numpy()
        table.append({
            "model": f"this code: {method}, {run} ({split} split, {len(errors)} "
                     f"seed{'s' if len(errors) > 1 else ''})",
            "error_percent": errors.mean(),
            "ci95_seeds": t_interval(errors) if len(errors) > 1 else None,
            "independent_error_percent": independent.mean(),
            "independent_ci95_seeds": t_interval(independent) if len(errors) > 1 else None,
            "per_seed": "; ".join(f"{e:.2f}" for e in errors),
            # per seed where there are several and each was scored this way
            "independent_per_seed": "; ".join(f"{e:.2f}" for e in independent)
            if len(errors) > 1 and not np.isnan(independent).any() else "",
            "budget": (f"{group['iterations'].iloc[0]} iterations, "
                       f"{group['train_cpu_hours'].mean():.2f} CPU-hours/seed"),
            "source": f"results/runs/{split}/"})
    for name, error, source in lake.PUBLISHED:
        table.append({"model": name, "error_percent": error, "ci95_seeds": None,
                      "per_seed": "", "budget": "", "source": source})
    frame = pd.DataFrame(table)
    lines = ["Error rate (%) on Lake, Salakhutdinov and Tenenbaum's 20 within-alphabet 20-way "
             "one-shot runs (all_runs.zip). A test set: no setting here was chosen by looking "
             "at it. This code's models are scored two ways: all 20 queries of a run "
             "classified together (batch-norm statistics over them, the protocol of the "
             "few-shot table), and each query on its own (batch-norm statistics of the support "
             "set; its answer does not depend on the other queries). The published figures "
             "classify each query on its own.", "",
             "| model | error %, queries together (± 95% t interval over seeds) | per seed "
             "| error %, each query on its own (± 95% t interval; per seed) | training budget "
             "| source |",
             "| --- | --- | --- | --- | --- | --- |"]
    if models.empty:
        lines.insert(1, "\nThis config has no 20-way 1-shot model of Lake's protocol to score.")
    for row in frame.itertuples():
        # the published figures have one way of classifying, given as theirs
        independent = "" if not row.budget else _error_cell(
            row.independent_error_percent, row.independent_ci95_seeds) + (
            f" ({row.independent_per_seed})" if row.independent_per_seed else "")
        lines.append(f"| {row.model} | {_error_cell(row.error_percent, row.ci95_seeds)} | "
                     f"{row.per_seed} | {independent} | {row.budget} | {row.source} |")
    return frame, "\n".join(lines) + "\n"


def aggregate(evals, summaries, curves, outputs: dict, config: dict, workflow_dir=".",
              lake=(), in_progress=(), ensembles=(), ensembles_waiting=(), selection=None,
              chosen=()) -> None:
    """Write the table (md, csv, html), the figures, the table of Lake's one-shot runs,
    provenance.json and the list of runs in progress ((run folder, state path, retrain)) with
    the ensembles still waiting for members' models ((ensemble, [runs])). `selection`: the
    choice per cell (results/selection.json), whose models from other cells have their test
    results in `chosen` (evaluations and ensembles, maml.selection). Every output is made in
    a staging folder first and moved into place only when all are made, so a failure (a
    corrupt or mismatched evaluation file) leaves the committed tables as they were."""
    with tempfile.TemporaryDirectory(prefix=".aggregate-", dir=Path(outputs["markdown"]).parent
                                     ) as staging:
        staged = {key: Path(staging) / f"{key}{Path(path).suffix}"
                  for key, path in outputs.items()}
        _aggregate(evals, summaries, curves, staged, config, workflow_dir, lake, in_progress,
                   ensembles, ensembles_waiting, selection, chosen)
        for key, path in outputs.items():  # all or nothing: a failure above replaced none
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staged[key], path)


def _aggregate(evals, summaries, curves, outputs: dict, config: dict, workflow_dir, lake,
               in_progress, ensembles, ensembles_waiting, selection, chosen) -> None:
    threads = config.get("threads", 1)
    check_evaluations(evals, config)
    runs = load_runs(evals, summaries, threads)
    elsewhere = [path for path in chosen if Path(path).name == "eval.json"]
    ensembles = [*ensembles, *(path for path in chosen if path not in elsewhere)]
    table = summarise(pd.concat([runs, load_runs(
        elsewhere, [_run_folder(path) / "train.json" for path in elsewhere], threads)],
        ignore_index=True))
    if ensembles:
        table = in_cell_order(pd.concat([table, ensemble_rows(ensembles, table)],
                                        ignore_index=True))
    write_text(outputs["csv"], table.to_csv(index=False))
    split = config.get("split", "finn")
    write_text(outputs["markdown"], markdown_table(table, split))
    headlines = {(method, cell, label) for ensemble_split, method, cell, label, _ in
                 configured_ensembles(config) if ensemble_split == split}
    choice = read_json(selection)["chosen"] if selection else None
    best_rows = cell_rows(table, split, headlines, choice)
    headline_rows = [rows[0] for rows in best_rows.values()]
    best_rows = [row for rows in best_rows.values() for row in rows]
    write_text(outputs["best"], _markdown(BEST_COLUMNS, best_rows))
    write_text(outputs["headline"], _markdown(HEADLINE_COLUMNS, headline_rows))
    write_text(outputs["comparison"], grid_comparison(runs, split))
    plot_validation_curves(curves, summaries, outputs["curves"], split)
    plot_accuracy_vs_steps(evals, summaries, outputs["steps"], split)
    plot_accuracy_vs_cpu_hours(curves, summaries, outputs["cpu_hours"], split, threads)
    lake_frame, lake_markdown = lake_table(
        lake, {str(Path(path).parent): path for path in summaries}, threads)
    write_text(outputs["lake_csv"], lake_frame.to_csv(index=False))
    write_text(outputs["lake_markdown"], lake_markdown)
    write_text(outputs["html"], html_page("MAML on Omniglot: test accuracy (%)", [
        ("Per cell: the headline", _frame(HEADLINE_COLUMNS, headline_rows)),
        ("Per cell: the headline and what is left to the published numbers",
         _frame(BEST_COLUMNS, best_rows)),
        ("Lake's 20 one-shot runs: error (%)", lake_html_frame(lake_frame)),
        ("Every run", _frame(HTML_COLUMNS, table.itertuples(), split))]))
    write_json(outputs["provenance"], provenance(config, runs, workflow_dir))
    write_text(outputs["in_progress"],
               progress_markdown(list(in_progress), list(ensembles_waiting)))


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


# The documents that show results tables, and which (the README its headline table alone).
DOCUMENT_TABLES = {"README.md": ("headline.md",),
                   "docs/results.md": ("table.md", "best_per_cell.md", "selection.md",
                                       "in_progress.md", "lake_runs.md")}
README_TABLES = tuple(name for names in DOCUMENT_TABLES.values() for name in names)
NO_ROWS = "(none)"


def table_rows(markdown: str) -> str:
    """A Markdown file's table lines and then its list items (a blank line between), or
    NO_ROWS."""
    lines = markdown.splitlines()
    rows = [line for line in lines if line.startswith("|")]
    items = [line for line in lines if line.startswith("- ")]
    blocks = ["\n".join(block) for block in (rows, items) if block]
    return "\n\n".join(blocks) if blocks else NO_ROWS


def _readme_block(readme: str, name: str) -> tuple[int, int]:
    """Start and end of the text between the README's markers for results/NAME."""
    begin, end = f"<!-- results/{name} -->\n", f"\n<!-- /results/{name} -->"
    start = readme.find(begin)
    stop = readme.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise FileFormatError(f"the README has no {begin.strip()} ... {end.strip()} block")
    return start + len(begin), stop


def readme_table(readme: str, name: str) -> str:
    """The block between the README's markers for results/NAME."""
    start, stop = _readme_block(readme, name)
    return readme[start:stop]


def readme_with_results(readme: str, results_dir, names=README_TABLES) -> str:
    """A document (the README, a docs page) with the block of each of `names` replaced by
    its results file's rows."""
    for name in names:
        path = Path(results_dir) / name
        if not path.is_file():
            raise FileFormatError(f"{path}: no such file (run the aggregate first)")
        start, stop = _readme_block(readme, name)
        readme = readme[:start] + table_rows(path.read_text()) + readme[stop:]
    return readme
