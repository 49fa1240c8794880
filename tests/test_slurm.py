"""The pipeline through a real single-node Slurm (tests/slurm/start.sh and stop.sh): every rule
a Slurm job, the same table as a local run, and a training job cancelled by Slurm resumed.

Needs Linux and either Slurm and munge installed or root (to install them from Debian's
packages); elsewhere the tests are skipped with the reason printed."""

import collections
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO
from workflow_runs import RESUME, SMALL, snakemake

# The local executor's table of a config against Slurm's: everything but the wall times.
TIMING = ["train_minutes", "train_cpu_hours", "ms_per_iteration"]


def _why_not() -> str | None:
    if platform.system() != "Linux":
        return "Slurm test needs Linux"
    if not (shutil.which("slurmctld") and shutil.which("munged")) and os.geteuid() != 0:
        return "Slurm test needs slurm-wlm and munge installed, or root to install them"
    if not (shutil.which("apt-get") or shutil.which("slurmctld")):
        return "Slurm test needs Debian's packages (apt-get) to install Slurm"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(REPO / "tests/slurm/start.sh"), str(state)],
                             capture_output=True, text=True)
    try:
        if started.returncode == 3:
            pytest.skip(started.stderr.strip())
        assert started.returncode == 0, started.stdout + started.stderr
        yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    finally:  # no daemon is left behind, whatever happened
        stopped = subprocess.run([str(REPO / "tests/slurm/stop.sh"), str(state)],
                                 capture_output=True, text=True)
        assert stopped.returncode == 0, stopped.stderr
        daemons = f"^(slurmctld|slurmd|slurmstepd|munged) .*{state}"
        assert not subprocess.run(["pgrep", "-f", daemons], capture_output=True).stdout


def through_slurm(workdir, env, *args, config=None, check=True, **kwargs):
    """The repository's CPU profile, with a fast first status check for the test."""
    return snakemake(workdir, "--profile", str(REPO / "profiles/slurm"), "--jobs", "2",
                     "--slurm-no-account", "--slurm-status-command", "squeue",
                     "--slurm-init-seconds-before-status-checks", "1", *args,
                     config=config, check=check, env=env, **kwargs)


def jobs_by_rule(env) -> collections.Counter:
    """Every job slurmctld knows (all states), counted by the rule in its comment."""
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%k"], capture_output=True,
                         text=True, env=env, check=True).stdout
    return collections.Counter(line.split("_wildcards_")[0].removeprefix("rule_")
                               for line in out.split())


def test_small_pipeline_through_slurm_equals_a_local_run(slurm, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    snakemake(local, "--cores", "2", config=SMALL)
    before = jobs_by_rule(slurm)
    through_slurm(remote, slurm, config=SMALL)
    submitted = jobs_by_rule(slurm) - before
    planned = {"download": 2, "preprocess": 1, "split": 1, "train": 8, "evaluate": 8,
               "aggregate": 1}
    assert submitted == planned, submitted  # one Slurm job per rule job ("all" is local)
    ours = pd.read_csv(remote / "results/table.csv").drop(columns=TIMING)
    theirs = pd.read_csv(local / "results/table.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(ours, theirs)


def test_a_training_job_cancelled_by_slurm_resumes(slurm, tmp_path):
    config = {**RESUME, "overrides": {**RESUME["overrides"], "iterations": 300}}
    (tmp_path / "test-config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(tmp_path / "test-config.yaml"), "--profile",
         str(REPO / "profiles/slurm"), "--jobs", "1", "--slurm-no-account",
         "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=slurm)
    state = tmp_path / "results/state/finn/maml/5way1shot/seed0"
    deadline = time.time() + 600
    while not list(state.glob("*.npz")) and time.time() < deadline:
        time.sleep(0.5)
    running = subprocess.run(["squeue", "-h", "-t", "running", "-o", "%i %k"], env=slurm,
                             capture_output=True, text=True).stdout.split("\n")
    train_jobs = [line.split()[0] for line in running if "rule_train" in line]
    assert len(train_jobs) == 1, running
    subprocess.run(["scancel", train_jobs[0]], env=slurm, check=True)
    output, _ = run.communicate(timeout=900)
    assert run.returncode == 0, output[-3000:]  # the profile's retry ran the job again
    summary = json.loads((tmp_path / "results/runs/finn/maml/5way1shot/seed0/train.json")
                         .read_text())
    assert 0 < summary["resumed_from"] < 300
    local = tmp_path / "local"
    local.mkdir()
    snakemake(local, "--cores", "1", config=config)
    ours = pd.read_csv(tmp_path / "results/runs/finn/maml/5way1shot/seed0/curve.csv")
    theirs = pd.read_csv(local / "results/runs/finn/maml/5way1shot/seed0/curve.csv")
    pd.testing.assert_frame_equal(ours.drop(columns="elapsed_s"),
                                  theirs.drop(columns="elapsed_s"))
