"""Snakemake glue for `maml.data.make_split`."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.data import load_omniglot, make_split, save_split  # noqa: E402

save_split(make_split(load_omniglot(snakemake.input[0]), snakemake.wildcards.split),
           snakemake.output[0])
