"""Interrupted runs: Ctrl-C, SIGTERM and SIGKILL resume to the same curve; a committed checkpoint
resumes in a fresh clone; a retrain keeps its row until it ends."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO
from maml.train import Checkpoint

from workflow_runs import RESUME, planned_jobs, restored_later, snakemake



def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a shell starts background commands (`... &`, e.g. a CI script
    run that way) with SIGINT ignored, which every child inherits, and the interrupt then never
    arrives."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_a_checkpoint(workdir, config=RESUME, targets=()) -> subprocess.Popen:
    """Start the pipeline on `config` (its `targets`, default: all) in its own session; return
    once seed 0's training checkpointed (its record, written after the checkpoint, is there)."""
    (workdir / "test-config.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
         "--configfile", str(workdir / "test-config.yaml"), "--cores", "1", *targets],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=_default_sigint)
    state = workdir / "results" / "state" / "finn" / "maml" / "5way1shot" / "seed0"
    deadline = time.time() + 300
    while not list(state.glob("*.json")) and time.time() < deadline:
        time.sleep(0.2)
    return process


def _interrupt_during_training(workdir, sig):
    """Start the pipeline, wait for a training checkpoint, then deliver `sig` to it all."""
    process = _start_and_wait_for_a_checkpoint(workdir)
    time.sleep(1.0)
    os.killpg(process.pid, sig)
    process.wait(timeout=60)
    assert not (workdir / "results/runs/finn/maml/5way1shot/seed0/train.json").exists(), \
        "training finished before it could be interrupted"


def test_killing_snakemake_alone_needs_only_the_same_command_again(tmp_path, uninterrupted):
    """kill -9 of the Snakemake process while its training job runs on and finishes: the
    outputs are marked incomplete, and the next run (after run.sh's unlock) reruns that job."""
    process = _start_and_wait_for_a_checkpoint(tmp_path)
    os.kill(process.pid, signal.SIGKILL)  # Snakemake alone; its job runs on
    process.wait(timeout=60)
    summary = tmp_path / "results/runs/finn/maml/5way1shot/seed0/train.json"
    deadline = time.time() + 300
    while not summary.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert summary.exists(), "the orphaned training job did not finish"
    time.sleep(2)
    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "--cores", "1")  # no --rerun-incomplete: the workflow profile says so
    pd.testing.assert_frame_equal(_curve(tmp_path), _curve(uninterrupted))
    assert (tmp_path / "results" / "table.md").exists()


def _curve(workdir):
    frame = pd.read_csv(workdir / "results/runs/finn/maml/5way1shot/seed0/curve.csv")
    return frame.drop(columns="elapsed_s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, "--cores", "1", config=RESUME)
    return workdir


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupted_training_resumes_and_matches(tmp_path, uninterrupted, sig):
    _interrupt_during_training(tmp_path, sig)
    if sig == signal.SIGKILL:  # a killed Snakemake leaves its lock; run.sh clears it likewise
        snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "--cores", "1")
    summary = json.loads((tmp_path / "results/runs/finn/maml/5way1shot/seed0/train.json")
                         .read_text())
    assert 0 < summary["resumed_from"] < 150
    pd.testing.assert_frame_equal(_curve(tmp_path), _curve(uninterrupted))
    ours = json.loads((tmp_path / "results/runs/finn/maml/5way1shot/seed0/eval.json").read_text())
    theirs = json.loads((uninterrupted / "results/runs/finn/maml/5way1shot/seed0/eval.json")
                        .read_text())
    assert ours["task_accuracy"] == theirs["task_accuracy"]


def _git(workdir, *args):
    subprocess.run(["git", "-C", str(workdir), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


TWO_SEEDS = {**RESUME, "seeds": [0, 1]}


def _commit_first_checkpoint_and_clone(first, clone, message, **start):
    """Run the pipeline in `first` until seed 0's first checkpoint, kill it, commit its
    results with that checkpoint and clone the commit: a session ending mid-run. Returns the
    checkpoint's record and the clone."""
    process = _start_and_wait_for_a_checkpoint(first, **start)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    state = next((first / "results/state/finn/maml/5way1shot/seed0").glob("*.npz"))
    record = json.loads(state.with_suffix(".json").read_text())
    # a kill between the checkpoint's write and its record's leaves the record one behind;
    # resuming follows the checkpoint itself
    record["iteration"] = Checkpoint(state).read()[1]["iteration"]
    assert 0 < record["iteration"] < record["iterations"] == 150
    _git(first, "init", "-q")
    _git(first, "add", "results", "test-config.yaml")
    _git(first, "commit", "-q", "-m", message)
    subprocess.run(["git", "clone", "-q", str(first), str(clone)], check=True)
    return record, clone


def test_a_committed_checkpoint_resumes_in_a_fresh_clone(tmp_path, uninterrupted):
    """A run that outlives a session: stopped after its first checkpoint, results/ committed
    (the checkpoint with it), then a fresh clone's pipeline leaves it out of the table while in
    progress and resumes it to the uninterrupted run's curve; every segment is recorded."""
    first = tmp_path / "first"
    first.mkdir()
    snakemake(first, "--cores", "1", "results/runs/finn/maml/5way1shot/seed1/eval.json",
              config=TWO_SEEDS)
    (first / "test-config.yaml").write_text(yaml.safe_dump(TWO_SEEDS))
    record, clone = _commit_first_checkpoint_and_clone(
        first, tmp_path / "clone", "a run in progress", config=TWO_SEEDS)
    # in progress: a table of the finished seed only, and nothing finished is redone
    finished_only = ("results/table.md", "--config", "table_runs=finished")
    assert planned_jobs(clone, *finished_only) == {"aggregate": 1}
    snakemake(clone, "--cores", "1", *finished_only)
    table = pd.read_csv(clone / "results/table.csv")
    assert table["per_seed"].str.count(";").tolist() == [0]  # one seed
    assert "finn/maml/5way1shot/seed0 | " in (clone / "results/in_progress.md").read_text()
    snakemake(clone, "--cores", "1")
    summary = json.loads((clone / "results/runs/finn/maml/5way1shot/seed0/train.json").read_text())
    assert summary["resumed_from"] == record["iteration"] > 0
    pd.testing.assert_frame_equal(_curve(clone), _curve(uninterrupted))
    segments = summary["segments"]
    assert [(s["from_iteration"], s["to_iteration"]) for s in segments] == [
        (0, record["iteration"]), (record["iteration"], 150)]
    assert all(s["machine"]["kind"] and s["cpu_s"] > 0 for s in segments)
    assert json.loads((clone / "results/provenance.json").read_text())["jobs"][0]["segments"]
    assert "None." in (clone / "results/in_progress.md").read_text()
    assert pd.read_csv(clone / "results/table.csv")["per_seed"].str.count(";").tolist() == [1]


def test_a_retrain_of_a_finished_run_keeps_its_row_until_it_ends(tmp_path, uninterrupted):
    """A committed run without its model (as some November runs) is retrained over more than
    one session: with the retrain's checkpoint committed, a fresh clone's table keeps the run's
    row (also after the retrain was interrupted there), in_progress.md names it a retrain,
    asking for the model resumes it to the curve the run had, and the new model is then
    evaluated."""
    first = tmp_path / "first"
    shutil.copytree(uninterrupted, first, symlinks=True,
                    ignore=shutil.ignore_patterns(".snakemake", "logs"))
    run = "results/runs/finn/maml/5way1shot/seed0"
    (first / run / "model.npz").unlink()
    shutil.rmtree(first / "results/state")  # the November runs committed no checkpoint
    (first / "results/table.md").unlink()  # for the clone to make it
    record, clone = _commit_first_checkpoint_and_clone(
        first, tmp_path / "clone", "a retrain in progress", targets=[f"{run}/model.npz"])
    assert (clone / run / "train.json").exists()  # Snakemake keeps update() outputs
    finished_only = ("results/table.md", "--config", "table_runs=finished")
    assert planned_jobs(clone, *finished_only) == {"aggregate": 1}
    snakemake(clone, "--cores", "1", *finished_only)
    assert len(pd.read_csv(clone / "results/table.csv")) == 1  # the run keeps its row
    assert "finn/maml/5way1shot/seed0 (retrain) | " in (
        clone / "results/in_progress.md").read_text()
    # the retrain interrupted here: its update() outputs copied back newer must not make the
    # run's evaluation look outdated
    restored_later(clone / run, "train.json", "curve.csv")
    assert not {"train", "evaluate"} & planned_jobs(clone, *finished_only).keys()
    snakemake(clone, "--cores", "1", "resources/omniglot/omniglot28.npz",
              "resources/omniglot/splits/finn.json")
    snakemake(clone, "--cores", "1", f"{run}/model.npz")
    summary = json.loads((clone / run / "train.json").read_text())
    assert summary["resumed_from"] == record["iteration"] > 0
    pd.testing.assert_frame_equal(_curve(clone), _curve(uninterrupted))
    assert planned_jobs(clone, f"{run}/eval.json") == {"evaluate": 1}  # the new model


def test_run_sh_clears_a_killed_runs_lock_in_the_folder_the_run_names(tmp_path):
    """Issue 44, weak list: a kill -9 of a `--directory` run leaves its lock there; run.sh
    clears it there (not only in the repository) when no Snakemake process runs in it."""
    workdir = tmp_path / "scratch"
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("resources/omniglot/omniglot28.npz\n")
    result = subprocess.run(["bash", str(REPO / "run.sh"), "pipeline", "--directory",
                             str(workdir), "--dry-run", "--configfile",
                             str(REPO / "config" / "offline-small.yaml"),
                             str(REPO / "config" / "offline-data.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"removing the lock of a killed run in {workdir.resolve()}" in result.stdout
    assert not any(locks.iterdir())
