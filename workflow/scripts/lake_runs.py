"""Snakemake glue for `maml.lake.score_model`: one model on Lake's 20 one-shot runs."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.cpu import configure  # noqa: E402

configure(threads=snakemake.threads)  # before Paddle is imported

from maml.files import data_inputs, write_json  # noqa: E402
from maml.lake import check_lake_protocol, read_runs, score_model  # noqa: E402
from maml.predict import load_model  # noqa: E402

(runs,) = data_inputs(snakemake.input, "runs", wildcards=snakemake.wildcards)
model = load_model(snakemake.input.model)
check_lake_protocol(model, snakemake.input.model)
result = score_model(model, read_runs(runs, snakemake.params.md5), snakemake.params.steps)
for mode, scored in result["query_modes"].items():
    print(f"error on Lake's runs, queries {mode}: {scored['error_percent']:.2f}%")
write_json(snakemake.output[0], result)
