"""Which model serves each cell best, chosen on validation from every trained model that can
serve it (maml.cells): the candidates, the matrix of their validation accuracies, the choice.

The rule (config.yaml, `selection`): for each cell of the config and each query mode (the
queries together, the paper's protocol; each query on its own), every candidate run's seeds
are evaluated on `selection.tasks` fixed tasks drawn from the split's validation characters;
the configuration (an extra run: its seeds together) with the highest mean accuracy over its
seeds wins, a tie going to the fewer training CPU-hours per model. The test tasks choose
nothing: the chosen configuration is then evaluated on the cell's test tasks like every row.
Knows nothing of Paddle.
"""

from __future__ import annotations

import math
from pathlib import Path

from maml.files import read_json, write_json, write_text
from maml.progress import train_cpu_seconds
from maml.pipeline_config import (extra_method, extra_seeds, extra_split, run_name,
                                  run_settings)
from maml.settings import INDEPENDENT, SettingsError, parse_cell

# The query modes a choice is made for: the paper's protocol, and each query on its own.
MODES = ("together", INDEPENDENT)
MODE_NAMES = {"together": "queries together", INDEPENDENT: "each query on its own"}
# A cross-cell result's folder within its model's run folder, e.g. on-20way5shot.
ON_CELL = "on-{cell}"


def candidates(config: dict, runs=None) -> list[tuple[str, str, str, str, str]]:
    """(label, split, method, trained cell, run) of every seed of every candidate extra run
    (`selection.candidates`), each on the config's split; with `runs` (split, method, cell,
    run), only those (the pipeline's table of finished runs: the candidates' finished seeds)."""
    rows = []
    for label in config["selection"]["candidates"]:
        extra = config.get("extra_runs", {}).get(label)
        if extra is None:
            raise SettingsError(f"selection: candidate {label!r} is not an extra run of the "
                                "config")
        if extra_split(config, extra) != config["split"]:
            raise SettingsError(f"selection: candidate {label!r} is trained on split "
                                f"{extra_split(config, extra)!r}, not the config's "
                                f"{config['split']!r}, whose cells it would be chosen for")
        rows += [(label, config["split"], extra_method(extra), extra["cell"],
                  run_name(seed, label)) for seed in extra_seeds(extra)]
    if runs is not None:
        runs = {tuple(run) for run in runs}
        rows = [row for row in rows if row[1:] in runs]
    return rows


def served_cells(config: dict, trained_cell: str) -> list[str]:
    """The config's cells a model trained on `trained_cell` can serve: as many ways or fewer."""
    ways = parse_cell(trained_cell)[0]
    return [cell for cell in config["cells"] if parse_cell(cell)[0] <= ways]


def cell_queries(config: dict, cell: str) -> int:
    """Queries per class of `cell`'s test tasks: those of its grid runs, which every row of
    the cell shares (so that a model from another cell meets the same tasks)."""
    method = config.get("methods", ["maml"])[0]
    return run_settings(config, method, cell, run_name(config["seeds"][0]))["test_k_query"]


def tested_on(config: dict, cell: str) -> tuple[int, int, int]:
    """(n_way, k_shot, k_query) of `cell`'s tasks."""
    return (*parse_cell(cell), cell_queries(config, cell))


def validation_jobs(config: dict, runs=None) -> list[tuple[str, str, str, str, str, str]]:
    """(label, split, method, trained cell, run, tested cell) of every validation evaluation
    the selection needs (`runs`: as `candidates`)."""
    return [(*candidate, cell) for candidate in candidates(config, runs)
            for cell in served_cells(config, candidate[3])]


def result_path(split: str, method: str, trained: str, run: str, tested: str,
                name: str) -> str:
    """Where a model's result on a cell is: its own eval.json on its own test tasks, else
    `name` in its run folder's on-<cell>/ (val.json on validation, eval.json on test)."""
    folder = f"results/runs/{split}/{method}/{trained}/{run}"
    if tested == trained and name == "eval.json":
        return f"{folder}/eval.json"
    return f"{folder}/{ON_CELL.format(cell=tested)}/{name}"


def matrix(config: dict, read=read_json, cpu_hours=None, runs=None) -> list[dict]:
    """One row per candidate configuration and cell it serves: its validation accuracy (mean
    over seeds, each seed's 95% interval over tasks averaged) in each mode. `cpu_hours`:
    label -> training CPU-hours per model; `runs`: as `candidates`."""
    rows = {}
    for label, split, method, trained, run, tested in validation_jobs(config, runs):
        path = result_path(split, method, trained, run, tested, "val.json")
        result = read(path)
        if result.get("part") != "val":
            raise SettingsError(f"selection: {path} is not an evaluation on validation tasks")
        row = rows.setdefault((label, tested), {
            "label": label, "method": method, "trained_on": trained, "tested_on": tested,
            "runs": [], "cpu_hours": (cpu_hours or {}).get(label, math.nan),
            **{mode: [] for mode in MODES}, **{f"{mode}_ci95": [] for mode in MODES}})
        row["runs"].append(run)
        for mode in MODES:
            numbers = result if mode == "together" else result["query_modes"][mode]
            row[mode].append(100 * numbers["accuracy"])
            row[f"{mode}_ci95"].append(100 * numbers["ci95"])
    return list(rows.values())


def choose(rows: list[dict], cells) -> dict:
    """{cell: {mode: label}}: the highest mean validation accuracy, ties to fewer CPU-hours."""
    chosen = {}
    for cell in cells:
        serving = [row for row in rows if row["tested_on"] == cell]
        if not serving:
            continue
        chosen[cell] = {mode: max(serving, key=lambda row: (_mean(row[mode]),
                                                               -row["cpu_hours"]))["label"]
                        for mode in MODES}
    return chosen


def _mean(values) -> float:
    return sum(values) / len(values)


def markdown(rows: list[dict], chosen: dict, cells) -> str:
    """The matrix per tested cell, the chosen configuration of each mode in bold."""
    lines = ["| tested on | trained on | configuration (method) | seeds | train CPU-hours per "
             "model | validation: queries together | validation: each query on its own |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for cell in cells:
        for row in sorted((r for r in rows if r["tested_on"] == cell),
                          key=lambda r: -_mean(r["together"])):
            numbers = []
            for mode in MODES:
                text = f"{_mean(row[mode]):.2f} ± {_mean(row[f'{mode}_ci95']):.2f}"
                numbers.append(f"**{text}**" if chosen[cell][mode] == row["label"] else text)
            lines.append(f"| {cell} | {row['trained_on']} | {row['label']} ({row['method']}) | "
                         f"{len(row['runs'])} | {row['cpu_hours']:.2f} | " + " | ".join(numbers)
                         + " |")
    return "\n".join(lines) + "\n"


def write_selection(config: dict, summaries, markdown_path, choices_path, runs=None) -> dict:
    """results/selection.md (the matrix) and selection.json (the choice per cell and mode,
    with where each chosen configuration's test results are); `summaries`: the candidates'
    train.json, for their CPU-hours; `runs`: as `candidates`."""
    hours = {}
    for label, *_, run in candidates(config, runs):
        path = next(p for p in summaries if Path(p).parent.name == run
                    and Path(p).parent.parent.name == _trained_cell(config, label))
        hours.setdefault(label, []).append(train_cpu_seconds(read_json(path)) / 3600)
    rows = matrix(config, cpu_hours={label: _mean(h) for label, h in hours.items()}, runs=runs)
    chosen = choose(rows, config["cells"])
    text = (f"# Which model serves each cell, on validation\n\n{RULE}\n\n"
            + markdown(rows, chosen, config["cells"]))
    write_text(markdown_path, text)
    write_json(choices_path, {"tasks": config["selection"]["tasks"], "part": "val",
                              "chosen": chosen})
    return chosen


def _trained_cell(config: dict, label: str) -> str:
    return config["extra_runs"][label]["cell"]


def chosen_elsewhere(config: dict, chosen: dict,
                     runs=None) -> list[tuple[str, str, str, str, str, str]]:
    """(label, split, method, trained cell, run, tested cell) of each seed of every chosen
    configuration trained on another cell than the one it was chosen for: the test
    evaluations the choice adds (`runs`: as `candidates`)."""
    wanted = {(label, cell) for cell, modes in chosen.items() for label in modes.values()}
    return [job for job in validation_jobs(config, runs)
            if (job[0], job[5]) in wanted and job[3] != job[5]]


RULE = ("Every candidate model (config.yaml, `selection.candidates`) adapted on 600 fixed "
        "tasks of each cell it can serve (its own number of ways or fewer), drawn from the "
        "split's **validation** characters, scored with the queries together (the paper's "
        "protocol) and with each query on its own (the support set's statistics). Per cell and "
        "mode, the configuration with the highest mean over its seeds is chosen (in bold; a tie "
        "goes to fewer training CPU-hours per model); each number is that mean, ± the mean of "
        "its seeds' 95% intervals over tasks. The test tasks choose nothing.")
