"""Snakemake glue for `maml.evaluate.evaluate`."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.cpu import configure  # noqa: E402

configure(threads=snakemake.threads)  # before Paddle is imported

from maml.evaluate import evaluate  # noqa: E402
from maml.files import data_inputs, drop_older_settings, write_json  # noqa: E402
from maml.identity import expand  # noqa: E402

data, split = data_inputs(snakemake.input, "data", "split", wildcards=snakemake.wildcards)
result = evaluate(snakemake.input.model, data, split,
                  expand(snakemake.params.settings), snakemake.params.num_tasks,
                  snakemake.params.test_seed)
write_json(snakemake.output[0], result)
drop_older_settings(snakemake.input.settings)
