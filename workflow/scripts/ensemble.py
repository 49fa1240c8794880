"""Snakemake glue for `maml.evaluate.evaluate_ensemble` (on the members' own cell, or with
`tested_on` on another)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.cpu import configure  # noqa: E402

configure(threads=snakemake.threads)  # before Paddle is imported

from maml.evaluate import evaluate_ensemble  # noqa: E402
from maml.files import data_inputs, write_json  # noqa: E402
from maml.identity import expand  # noqa: E402

data, split = data_inputs(snakemake.input, "data", "split", wildcards=snakemake.wildcards)
tested_on = snakemake.params.get("tested_on")
result = evaluate_ensemble(snakemake.input.models, data, split,
                           expand(snakemake.params.settings), snakemake.params.num_tasks,
                           snakemake.params.test_seed,
                           tested_on=tuple(tested_on) if tested_on else None)
write_json(snakemake.output[0], result)
