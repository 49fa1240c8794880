"""Evaluation files -> the reproduction's tables, figures and provenance, all made in a
staging folder and put in place together (the pipeline's aggregate step).

Knows nothing of Paddle: it reads the JSON and CSV files that `train` and `evaluate` wrote.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from maml.figures import (plot_accuracy_vs_cpu_hours, plot_accuracy_vs_steps,
                          plot_validation_curves)
from maml.files import read_json, write_json, write_text
from maml.progress import progress_markdown
from maml.provenance import provenance
from maml.results_rows import (check_evaluations, ensemble_rows, in_cell_order, load_runs,
                               run_folder, summarise)
from maml.pipeline_config import ensembles as configured_ensembles
from maml.tables import (BEST_COLUMNS, HEADLINE_COLUMNS, HTML_COLUMNS, cell_rows,
                         grid_comparison, headline_pairs, html_page, lake_html_frame, lake_table,
                         markdown, markdown_table, text_frame)


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
        elsewhere, [run_folder(path) / "train.json" for path in elsewhere], threads)],
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
    headline_rows = headline_pairs(best_rows, choice)
    best_rows = [row for rows in best_rows.values() for row in rows]
    write_text(outputs["best"], markdown(BEST_COLUMNS, best_rows))
    write_text(outputs["headline"], markdown(HEADLINE_COLUMNS, headline_rows))
    write_text(outputs["comparison"], grid_comparison(runs, split))
    plot_validation_curves(curves, summaries, outputs["curves"], split)
    plot_accuracy_vs_steps(evals, summaries, outputs["steps"], split)
    plot_accuracy_vs_cpu_hours(curves, summaries, outputs["cpu_hours"], split, threads)
    lake_frame, lake_markdown = lake_table(
        lake, {str(Path(path).parent): path for path in summaries}, threads)
    write_text(outputs["lake_csv"], lake_frame.to_csv(index=False))
    write_text(outputs["lake_markdown"], lake_markdown)
    write_text(outputs["html"], html_page("MAML on Omniglot: test accuracy (%)", [
        ("Per cell: the headline", text_frame(HEADLINE_COLUMNS, headline_rows)),
        ("Per cell: the headline and what is left to the published numbers",
         text_frame(BEST_COLUMNS, best_rows)),
        ("Lake's 20 one-shot runs: error (%)", lake_html_frame(lake_frame)),
        ("Every run", text_frame(HTML_COLUMNS, table.itertuples(), split))]))
    write_json(outputs["provenance"], provenance(config, runs, workflow_dir))
    write_text(outputs["in_progress"],
               progress_markdown(list(in_progress), list(ensembles_waiting)))
