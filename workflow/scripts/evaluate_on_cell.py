"""Snakemake glue for `maml.evaluate.evaluate` of a model on another cell, or on validation
tasks for the selection (maml.selection)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.cpu import configure  # noqa: E402

configure(threads=snakemake.threads)  # before Paddle is imported

from maml.evaluate import evaluate  # noqa: E402
from maml.files import data_inputs, write_json  # noqa: E402
from maml.identity import expand  # noqa: E402

data, split = data_inputs(snakemake.input, "data", "split", wildcards=snakemake.wildcards)
result = evaluate(snakemake.input.model, data, split, expand(snakemake.params.settings),
                  snakemake.params.num_tasks, snakemake.params.test_seed,
                  part=snakemake.params.part, tested_on=tuple(snakemake.params.tested_on))
write_json(snakemake.output[0], result)
