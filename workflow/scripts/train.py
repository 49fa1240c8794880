"""Snakemake glue for `maml.train.train`."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.cpu import configure  # noqa: E402

configure(threads=snakemake.threads)  # before Paddle is imported

from pathlib import Path  # noqa: E402

from maml.files import data_inputs, drop_older_settings  # noqa: E402
from maml.settings import training_settings  # noqa: E402
from maml.identity import expand  # noqa: E402
from maml.train import train  # noqa: E402

settings = training_settings(expand(snakemake.params.settings))
data, split = data_inputs(snakemake.input, "data", "split", wildcards=snakemake.wildcards)
train(settings, data, split,
      Path(snakemake.output.model).parent, state_path=snakemake.params.state, resume=True)
drop_older_settings(snakemake.input.settings)
