"""Runs in progress: the record beside each checkpoint (iteration, iterations, the segments that
trained it), a small JSON file read without Paddle by the workflow and the report.

A run that needs more than one working session has its checkpoint committed under
`results/state/`; the same pipeline command resumes it anywhere. Each segment (one process's
share of the run) names the machine it ran on, since float32 results are bit-identical only
on one CPU kind: a segment on another kind continues the run, but not bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

from maml.files import read_json, write_json


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight; the message names the
    iteration. Nothing non-finite is written: the last checkpoint stays as it was."""


def record_path(state_path: str | os.PathLike) -> Path:
    """The progress record beside a checkpoint: <key>.npz -> <key>.json."""
    return Path(state_path).with_suffix(".json")


def write_record(state_path, iteration: int, iterations: int, segments: list[dict]) -> None:
    write_json(record_path(state_path),
               {"iteration": iteration, "iterations": iterations, "segments": segments})


def train_cpu_seconds(summary: dict, threads: int = 1) -> float:
    """A run's training CPU time (its train.json): its segments' process CPU time where it
    has them (which other processes on the machine inflate less than wall time), else wall
    time x threads."""
    segments = summary.get("segments")
    if segments:
        return sum(segment["cpu_s"] for segment in segments)
    return summary["wall_time_s"] * threads


def read_record(state_path) -> dict | None:
    """The record beside a checkpoint, or None if there is none."""
    path = record_path(state_path)
    return read_json(path) if path.exists() else None


def in_progress(state_path) -> bool:
    """Whether a run has a checkpoint short of its last iteration: started, not finished."""
    record = read_record(state_path)
    return record is not None and record["iteration"] < record["iterations"]


def progress_markdown(runs: list[tuple[str, str, bool]],
                      ensembles_waiting: list[tuple[str, list[str]]] = ()) -> str:
    """(run folder, state path, whether it retrains a finished run) of each run in progress ->
    a markdown list with iteration counts, CPU time so far and to go (for planning sessions)
    and the machines of its segments; then each ensemble still waiting for members' models,
    with those members."""
    lines = ["# Runs in progress", "",
             "Checkpoints committed under `results/state/`; the pipeline resumes them. A run "
             "appears in the table once it has finished.", ""]
    rows = [(folder, read_record(state), retrain) for folder, state, retrain in runs]
    rows = [row for row in rows  # some may have finished since
            if row[1] and row[1]["iteration"] < row[1]["iterations"]]
    waiting = waiting_markdown(ensembles_waiting)
    if not rows:
        return "\n".join(lines + ["None.", ""] + waiting)
    lines += ["| run | iterations done | of | CPU-hours so far | CPU-hours to go (at its pace "
              "so far) | machines |", "| --- | --- | --- | --- | --- | --- |"]
    for folder, record, retrain in rows:
        segments = record["segments"]
        cpu_hours = sum(s["cpu_s"] for s in segments) / 3600
        done, total = record["iteration"], record["iterations"]
        to_go = f"{cpu_hours / done * (total - done):.2f}" if done > 0 else "-"
        machines = "; ".join(dict.fromkeys(s["machine"]["kind"] for s in segments))
        name = f"{folder} (retrain)" if retrain else folder
        lines.append(f"| {name} | {done} | {total} | {cpu_hours:.2f} | {to_go} | {machines} |")
    if any(retrain for _, _, retrain in rows):
        lines += ["", "A retrain rebuilds the model of a finished run whose committed results "
                  "lack it (some November runs kept none): the table keeps that run's committed "
                  "row meanwhile, and the pipeline resumes it when the model is asked for (by an "
                  "ensemble, or as the target `results/runs/<run>/model.npz`)."]
    return "\n".join(lines + [""] + waiting)


def waiting_markdown(ensembles_waiting) -> list[str]:
    """Lines naming each ensemble not yet scored and the member runs it waits for (in progress,
    not started, or finished without a model kept); none if there are none."""
    if not ensembles_waiting:
        return []
    lines = ["Ensembles not yet scored (each joins the table once all its members have their "
             "models), and the runs they wait for:", ""]
    lines += [f"- ensemble {ensemble} waits for {', '.join(members)}"
              for ensemble, members in ensembles_waiting]
    return lines + [""]
