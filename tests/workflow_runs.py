"""Running the workflow in tests: the small offline config, Snakemake on a folder, its dry-run's
job counts, copies of the code and of a finished run."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import MD5, REPO, SOURCE


# The small offline config (config/offline-small.yaml), its archives taken from the tests' source.
SMALL = {**yaml.safe_load((REPO / "config" / "offline-small.yaml").read_text()),
         "data": {"source": str(Path(SOURCE).resolve()), "md5": MD5,
                  "runs_source": str(Path(SOURCE).resolve())}}

# One run of one cell, long enough to interrupt between checkpoints.
RESUME = {**SMALL, "methods": ["maml"], "cells": ["5way1shot"], "seeds": [0],
          "overrides": {**SMALL["overrides"], "iterations": 150, "checkpoint_every": 5,
                        "val_every": 50}}


def snakemake(workdir, *args, config=None, check=True, code=REPO, **kwargs):
    """Snakemake on `workdir` with the Snakefile of `code` (default: this repository)."""
    configfile = Path(workdir) / "test-config.yaml"
    if config is not None:
        configfile.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(Path(code) / "Snakefile"),
               "-d", str(workdir), "--configfile", str(configfile), *args]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout[-5000:])
    return result


def planned_jobs(workdir, *args, config=None, code=REPO) -> dict[str, int]:
    """The dry-run's job counts per rule ({} if nothing is to be done)."""
    out = snakemake(workdir, "--dry-run", *args, config=config, code=code).stdout
    counts, inside = {}, False
    for line in out.splitlines():
        if line.startswith("Job stats:"):
            inside, counts = True, {}
        elif inside and not line.strip():
            inside = False
        elif inside and line.split()[0] not in ("job", "total") and set(line[0]) != {"-"}:
            rule, count = line.split()
            counts[rule] = int(count)
    return counts


def code_copy(path):
    """This repository's workflow code, to change in a test."""
    path.mkdir()
    for part in ("Snakefile", "workflow", "src", "profiles", "envs"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, path / part)
    return path


def fresh_clone(finished, path):
    """What a clone of the committed results has: results and config, no .snakemake/ (no
    Snakemake metadata), no logs, no data; every file with the checkout's time."""
    shutil.copytree(finished, path, symlinks=True,
                    ignore=shutil.ignore_patterns(".snakemake", "logs", "resources"))
    return path

def restored_later(folder, *names):
    """Give `names` in `folder` a later modification time, as Snakemake does when it copies an
    interrupted job's update() outputs back (9.27, persistence.restore_output)."""
    later = time.time() + 60
    for name in names:
        os.utime(folder / name, (later, later))
