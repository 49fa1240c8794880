"""The results tables a person reads: markdown for the repository, HTML for the browser, from
the rows of `results_rows`: every run, the headline and what is left to the published numbers
per cell, the grid's methods compared, Lake's runs. Knows nothing of Paddle."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from maml import lake
from maml.files import read_json
from maml.progress import train_cpu_seconds
from maml.results_rows import (method_of, published, run_label, in_cell_order,
                               t_interval)
from maml.selection import MODES
from maml.settings import INDEPENDENT, method_settings, parse_cell, presets, with_defaults
from maml.pipeline_config import GRID


def _independent(row) -> str:
    """The same models on the same tasks, each query classified on its own; a run without it
    was evaluated before that existed and its model was not kept."""
    if row.ensemble:
        return "-"
    if pd.isna(row.independent):
        return "model not kept"
    spread = ("" if math.isnan(row.independent_ci95_seeds)
              else f" ± {row.independent_ci95_seeds:.2f}")
    if row.independent_seeds < row.seeds:  # the others' models are not kept
        return f"{row.independent:.2f}{spread} (seed{'s' if row.independent_seeds > 1 else ''} " \
               f"with a model: {row.independent_seeds} of {row.seeds})"
    return f"{row.independent:.2f}{spread}"


def _independent_over_seeds(row) -> str:
    """`_independent` with its seed count, as `_accuracy_over_seeds` (a partial count says so)."""
    shown = _independent(row)
    if row.ensemble or pd.isna(row.independent) or row.independent_seeds < row.seeds:
        return shown
    return f"{shown} ({row.seeds} seed{'s' if row.seeds > 1 else ''})"


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
    ("paper", lambda row, split: _paper(row)),
    ("reference", lambda row, split: _shown(row.reference, ".1f")),
)


def markdown(columns, rows, *args) -> str:
    """A markdown table: `columns` are (header, cell) pairs, `cell(row, *args)` a row's text."""
    lines = ["| " + " | ".join(header for header, _ in columns) + " |",
             "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row, *args) for _, cell in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_table(table: pd.DataFrame, split: str) -> str:
    """The table in markdown; a run on another split than `split` (the grid's) says so."""
    return markdown(MARKDOWN_COLUMNS, table.itertuples(), split)


def _published(source: str, row) -> float:
    return published(row.split, row.cell, source)


def _shown(value: float, spec: str) -> str:
    """A published number or a gap to it; "-" where the dataset has none for the cell."""
    return "-" if math.isnan(value) else format(value, spec)


def _paper(row) -> str:
    return "-" if math.isnan(row.paper) else f"{row.paper:.1f} ± {row.paper_ci95:.1f}"


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
    ("paper (MAML)", lambda row: _shown(_published("paper", row), ".1f")),
    ("gap to the paper", lambda row: _shown(row.accuracy - _published("paper", row), "+.2f")),
    ("MAML++ published (top-5 ensemble)", lambda row: _shown(_published("maml++", row), ".2f")),
    ("gap to MAML++", lambda row: _shown(row.accuracy - _published("maml++", row), "+.2f")),
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
    role = HEADLINE + (" (chosen on validation)" if together else "")
    if head.trained_on != head.cell:
        role = f"{HEADLINE} (chosen on validation: a model trained on {head.trained_on})"
    rows = [(role, head)]
    rows += [("ensemble of its seeds", row) for _, row in
             group[group["run"] == f"{head.run} ensemble"].iterrows()]
    if head.run != own_head.run:
        rows += [("the cell's own model" if head.trained_on != head.cell
                  else "the configuration tested as an ensemble of its seeds", own_head)]
        rows += [("ensemble of its seeds", row) for _, row in
                 group[group["run"] == f"{own_head.run} ensemble"].iterrows()]
    if alone and alone != head.run and len(run_rows(alone)):
        lone = run_rows(alone).iloc[0]
        rows += [("chosen on validation for each query on its own"
                  + ("" if lone.trained_on == lone.cell
                     else f" (a model trained on {lone.trained_on})"), lone)]
    same = own[(own["method"] == own_head.method) & (own["preset"] == own_head.preset)]
    rows += ([("same configuration, longer", row) for _, row in
              same[same["iterations"] > own_head.iterations].iterrows()]
             + [("the paper's protocol to its end", row) for _, row in own.iterrows()
                if _full_paper_protocol(row)])
    shown = set()  # a row already shown in one role is not repeated in another
    return [(role, row) for role, row in rows
            if not (row.run in shown or shown.add(row.run))]


# The front page's table: per cell, the model chosen on validation for each protocol, each with
# its accuracy in that protocol; filled from a (headline row, its row for each query on its own)
# pair of best_per_cell's rows.
HEADLINE_COLUMNS = (
    ("cell", lambda pair: pair[0].cell),
    ("queries together (paper's protocol): model", lambda pair: _model_name(pair[0])),
    ("accuracy, queries together", lambda pair: _accuracy_over_seeds(pair[0])),
    ("each query on its own (what `predict` gives): model",
     lambda pair: "the same" if pair[1].run == pair[0].run else _model_name(pair[1])),
    ("accuracy, each query on its own", lambda pair: _independent_over_seeds(pair[1])),
    ("paper (MAML)", lambda pair: _paper(pair[0])),
    ("MAML++ published (ensembles)", lambda pair: _shown(_published("maml++", pair[0]), ".2f")),
    ("model for `predict` (first seed)", lambda pair: f"`{pair[1].model}`"),
)


def _model_name(row) -> str:
    return f"{row.run} ({row.method}, {row.trained_on})"


def cell_rows(table: pd.DataFrame, split: str, headlines=(), chosen=None) -> dict:
    """{cell: its rows of `best_per_cell`, each with its `role`}, the headline first."""
    return {cell: [pd.concat([row, pd.Series({"role": role})]) for role, row in
                   _cell_rows(group, set(headlines), (chosen or {}).get(cell, {}))]
            for cell, group in table[table["split"] == split].groupby("cell", sort=False)}


def headline_pairs(rows_by_cell: dict, chosen=None) -> list[tuple[pd.Series, pd.Series]]:
    """Per cell of `cell_rows`: its headline row and the row of the model chosen for each query
    on its own (`chosen`, as `best_per_cell`'s; the headline row where it names none)."""
    pairs = []
    for cell, rows in rows_by_cell.items():
        alone = (chosen or {}).get(cell, {}).get(INDEPENDENT)
        pairs.append((rows[0], next((row for row in rows if row.run == alone), rows[0])))
    return pairs


def headline_table(table: pd.DataFrame, split: str, headlines=(), chosen=None) -> str:
    """Per cell of `split`, the model chosen for each protocol: markdown."""
    return markdown(HEADLINE_COLUMNS,
                    headline_pairs(cell_rows(table, split, headlines, chosen), chosen))


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
    return markdown(BEST_COLUMNS, [row for rows in
                                    cell_rows(table, split, headlines, chosen).values()
                                    for row in rows])


def _family_index(method: str) -> int:
    """A method's place among presets.yaml's families (others after)."""
    families = list(presets())
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


def _error_cell(mean: float, interval, missing: str = "not scored") -> str:
    """A mean error (Lake's are multiples of 0.25: two decimals), with its 95% t interval over
    seeds where there is one; NaN or None: `missing` (a seed was not scored this way)."""
    if mean is None or pd.isna(mean):
        return missing
    return f"{mean:.2f}" + ("" if interval is None or pd.isna(interval) else f" ± {interval:.2f}")


def _lake_models(lake_files, summaries_by_folder: dict, threads: int) -> pd.DataFrame:
    """One row per model scored on Lake's runs: its split, method, run, seed, both errors and
    its training budget."""
    rows = []
    for path in lake_files:
        result = read_json(path)
        summary = read_json(summaries_by_folder[str(Path(path).parent)])
        settings = with_defaults(summary["settings"])
        independent = result.get("query_modes", {}).get(INDEPENDENT, {})
        rows.append({"split": settings["split"], "method": method_of(settings),
                     "run": run_label(path), "seed": settings["seed"],
                     "error_percent": result["error_percent"],
                     "independent_error_percent": independent.get("error_percent", np.nan),
                     "iterations": summary["iterations"],
                     "train_cpu_hours": train_cpu_seconds(summary, threads) / 3600})
    return pd.DataFrame(rows, columns=["split", "method", "run", "seed", "error_percent",
                                       "independent_error_percent", "iterations",
                                       "train_cpu_hours"])


def lake_table(lake_files, summaries_by_folder: dict, threads: int = 1
               ) -> tuple[pd.DataFrame, str]:
    """Error on Lake's 20 one-shot runs: each split, method and run's models (mean over seeds,
    with the 95% t interval over them), all 20 queries of a run classified together (the
    table's protocol) and each on its own (settings.INDEPENDENT), with their training budget;
    then the published figures. (csv frame, markdown)"""
    models = _lake_models(lake_files, summaries_by_folder, threads)
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
    for name, error, source in lake.PUBLISHED:  # each query classified on its own
        table.append({"model": name, "error_percent": None, "ci95_seeds": None,
                      "independent_error_percent": error, "independent_ci95_seeds": None,
                      "per_seed": "", "independent_per_seed": "", "budget": "",
                      "source": source})
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
        published = not row.budget  # one way of classifying: each query on its own
        together = "" if published else _error_cell(row.error_percent, row.ci95_seeds)
        independent = _error_cell(row.independent_error_percent, row.independent_ci95_seeds) + (
            f" ({row.independent_per_seed})" if row.independent_per_seed else "")
        lines.append(f"| {row.model} | {together} | {row.per_seed} | {independent} | "
                     f"{row.budget} | {row.source} |")
    return frame, "\n".join(lines) + "\n"


# The HTML table of every run: the markdown table's columns, each seed's accuracy without
# its interval (the CSV and markdown have them), so that the page fits a laptop's screen.
HTML_COLUMNS = tuple(
    ("per seed", lambda row, split: "; ".join(re.findall(r"(\d+\.\d+) ±", row.per_seed))
     or row.per_seed) if header.startswith("per seed") else (header, cell)
    for header, cell in MARKDOWN_COLUMNS if header not in ("reference", "CPU ms/iteration"))
HTML_STYLE = ("body{font-family:sans-serif;margin:1em;max-width:1380px}"
              "table{border-collapse:collapse;font-size:13px;margin-bottom:2em}"
              "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
              "th{background:#eef;position:sticky;top:0}td{max-width:16em;overflow-wrap:break-word}")


def text_frame(columns, rows, *args) -> pd.DataFrame:
    """A table's rows as text under its human headers (markdown's code marks dropped)."""
    return pd.DataFrame([[cell(row, *args).replace("`", "") for _, cell in columns]
                         for row in rows], columns=[header.replace("`", "")
                                                    for header, _ in columns])


def lake_html_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Lake's table (`lake_table`'s frame) as text under human headers, no NaN (a column no
    row has, e.g. with no model of this code scored, is empty)."""
    frame = frame.reindex(columns=["model", "error_percent", "ci95_seeds",
                                   "independent_error_percent", "independent_ci95_seeds",
                                   "budget", "source"])

    return pd.DataFrame({
        "model": frame["model"],
        "error, queries together": [_error_cell(e, c, "") for e, c in
                                    zip(frame["error_percent"], frame["ci95_seeds"])],
        "error, each query on its own": [
            _error_cell(e, c, "") for e, c in zip(frame["independent_error_percent"],
                                                  frame["independent_ci95_seeds"])],
        "training budget": frame["budget"].fillna(""), "source": frame["source"].fillna("")})


def html_page(title: str, sections) -> str:
    """A page of (heading, frame) tables, each through pandas' Styler, UTF-8."""
    body = "".join(f"<h2>{heading}</h2>\n"  # fixed ids: the same tables, the same bytes
                   + frame.style.set_uuid(f"table{number}").hide(axis="index").to_html()
                   for number, (heading, frame) in enumerate(sections))
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{HTML_STYLE}</style></head>\n<body><h1>{title}</h1>\n{body}</body></html>\n")
