"""Snakemake glue for `maml.train.train`; threads are set before Paddle is imported."""

import os
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
os.environ["OMP_NUM_THREADS"] = str(snakemake.threads)
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path  # noqa: E402

from maml.train import train  # noqa: E402

train(snakemake.params.settings, snakemake.input.data, snakemake.input.split,
      Path(snakemake.output.model).parent, state_path=snakemake.params.state, resume=True)
