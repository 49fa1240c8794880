"""Where the numbers came from: commit, config, package versions, machines and time of every
job (results/provenance.json)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

import pandas as pd

from maml import cpu


PACKAGES = ("maml-omniglot", "paddlepaddle", "paddlepaddle-gpu", "numpy", "opencv-python-headless",
            "pandas", "tqdm", "pooch", "matplotlib", "snakemake", "pyyaml")


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
