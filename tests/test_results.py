"""The committed results: every number of `results/table.csv` is recomputed here from the
`eval.json` files under `results/runs/` (and `results/ensembles/`), without the report code."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

RESULTS = Path(__file__).resolve().parents[1] / "results"
TABLE = pd.read_csv(RESULTS / "table.csv")


def committed_runs() -> dict:
    """(split, method, tested cell, run) -> the test eval.json contents of its seeds, in seed
    order: each run's own (<run>/eval.json) and those of models chosen for another cell
    (<run>/on-<cell>/eval.json)."""
    runs = {}
    paths = [*RESULTS.glob("runs/*/*/*/*/eval.json"), *RESULTS.glob("runs/*/*/*/*/on-*/eval.json")]
    for path in sorted(paths):
        on_cell = path.parent.name.startswith("on-")
        folder = path.parent.parent if on_cell else path.parent
        split, method, cell = folder.parts[-4:-1]
        tested = path.parent.name.removeprefix("on-") if on_cell else cell
        name, seed = re.fullmatch(r"(?:(.+)-)?seed(\d+)", folder.name).groups()
        result = json.loads(path.read_text())
        assert result.get("tested_on", tested) == tested and result.get(
            "trained_on", cell) == cell, path
        runs.setdefault((split, method, tested, name or "grid"), []).append(
            (int(seed), result))
    return {key: [result for _, result in sorted(seeds, key=lambda s: s[0])]
            for key, seeds in runs.items()}


RUNS = committed_runs()
SINGLES = TABLE[~TABLE["ensemble"]]


def test_every_committed_run_has_one_row_and_every_row_its_runs():
    keys = list(zip(SINGLES.split, SINGLES.method, SINGLES.cell, SINGLES.run))
    assert len(keys) == len(set(keys))
    assert set(keys) == set(RUNS)


def _t_half_width(values: np.ndarray) -> float:
    """The 95% t interval's half-width over seeds, n - 1 degrees of freedom."""
    return stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))


@pytest.mark.parametrize("row", list(SINGLES.itertuples()),
                         ids=lambda r: f"{r.cell}-{r.method}-{r.run}")
def test_a_rows_numbers_are_its_eval_files(row):
    evals = RUNS[(row.split, row.method, row.cell, row.run)]
    accuracies = np.array([100 * e["accuracy"] for e in evals])
    for result in evals:  # each file's accuracy is the mean over its test tasks (float32 sum)
        assert result["accuracy"] == pytest.approx(np.mean(result["task_accuracy"]), abs=1e-5)
        assert len(result["task_accuracy"]) == result["num_tasks"] == row.test_tasks
    assert row.seeds == len(evals)
    assert row.accuracy == pytest.approx(accuracies.mean(), abs=1e-9)
    if len(evals) > 1:  # the 95% t interval, n - 1 degrees of freedom
        assert row.ci95_seeds == pytest.approx(_t_half_width(accuracies), rel=1e-9)
    else:
        assert math.isnan(row.ci95_seeds)
    assert row.per_seed == "; ".join(f"{100 * e['accuracy']:.2f} ± {100 * e['ci95']:.2f}"
                                     for e in evals)
    # each query on its own: over the seeds whose evaluation has it
    alone = np.array([100 * e["query_modes"]["support"]["accuracy"] for e in evals
                      if "support" in e.get("query_modes", {})])
    assert row.independent_seeds == len(alone)
    if len(alone):
        assert row.independent == pytest.approx(alone.mean(), abs=1e-9)
    if len(alone) > 1:
        assert row.independent_ci95_seeds == pytest.approx(_t_half_width(alone), rel=1e-9)
    else:
        assert math.isnan(row.independent_ci95_seeds)


def test_every_ensemble_file_is_a_row_with_its_accuracy():
    rows = {(r.split, r.method, r.cell, r.run.removesuffix(" ensemble")): r
            for r in TABLE[TABLE["ensemble"]].itertuples()}
    files = {path.parts[-4:-1] + (path.stem,): json.loads(path.read_text())
             for path in RESULTS.glob("ensembles/*/*/*/*.json")}
    for path in RESULTS.glob("ensembles/*/*/*/*/on-*.json"):  # a model from another cell
        split, method, _, label = path.parts[-5:-1]
        files[(split, method, path.stem.removeprefix("on-"), label)] = json.loads(
            path.read_text())
    assert set(rows) == set(files)
    for key, result in files.items():
        assert rows[key].accuracy == pytest.approx(100 * result["accuracy"], abs=1e-9)
        assert rows[key].seeds == len(result["members"])


def test_the_markdown_table_shows_the_csvs_numbers():
    lines = [line for line in (RESULTS / "table.md").read_text().splitlines()
             if line.startswith("| ") and not line.startswith(("| cell ", "| --- "))]
    assert len(lines) == len(TABLE)
    for line, row in zip(lines, TABLE.itertuples()):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[:2] == [row.cell, row.method] and cells[3] == row.trained_on
        assert cells[4].startswith(f"{row.accuracy:.2f}")
        assert cells[5] == row.per_seed


def _table_rows(name: str) -> list[dict]:
    lines = (RESULTS / name).read_text().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
            for line in lines[2:]]


def _row(label: str, cell: str):
    """table.csv's row of a run label as the front page names it: "run (method, trained on)"."""
    run, method = re.fullmatch(r"(.+) \((\S+), \S+\)", label).groups()
    rows = SINGLES[(SINGLES.split == "finn") & (SINGLES.cell == cell)
                   & (SINGLES.run == run) & (SINGLES.method == method)]
    assert len(rows) == 1, label
    return rows.iloc[0]


def _shown(mean: float, spread: float) -> str:
    return f"{mean:.2f}" + ("" if math.isnan(spread) else f" ± {spread:.2f}")


def test_the_front_pages_numbers_are_the_tables():
    """headline.md (the README's table): each protocol's model and accuracy are its row of
    table.csv, so each equals its evaluation files (above); the chosen models are
    selection.json's."""
    chosen = json.loads((RESULTS / "selection.json").read_text())["chosen"]
    rows = _table_rows("headline.md")
    assert [row["cell"] for row in rows] == list(chosen)
    for shown in rows:
        cell = shown["cell"]
        together = _row(shown["queries together (paper's protocol): model"], cell)
        name = shown["each query on its own (what `predict` gives): model"]
        alone = together if name == "the same" else _row(name, cell)
        assert (together.run, alone.run) == (chosen[cell]["together"], chosen[cell]["support"])
        assert shown["accuracy, queries together"].startswith(
            _shown(together.accuracy, together.ci95_seeds))
        assert shown["accuracy, each query on its own"].startswith(
            _shown(alone.independent, alone.independent_ci95_seeds))
        assert shown["model for `predict` (first seed)"] == f"`{alone.model}`"
        assert (RESULTS.parent / alone.model).is_file()
