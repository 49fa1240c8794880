"""Snakemake glue for `maml.lake.score_model`: one model on Lake's 20 one-shot runs."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.cpu import configure  # noqa: E402

configure(threads=snakemake.threads)  # before Paddle is imported

from maml.files import data_inputs, write_json  # noqa: E402
from maml.lake import read_runs, score_model  # noqa: E402
from maml.predict import load_model  # noqa: E402

(runs,) = data_inputs(snakemake.input, "runs")
result = score_model(load_model(snakemake.input.model), read_runs(runs), snakemake.params.steps)
print(f"error on Lake's runs: {result['error_percent']:.2f}%")
write_json(snakemake.output[0], result)
