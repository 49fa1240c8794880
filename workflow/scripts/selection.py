"""Snakemake glue for `maml.selection`: the validation matrix and the choice per cell."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.selection import write_selection  # noqa: E402

chosen = write_selection(snakemake.params.config, snakemake.input.summaries,
                         snakemake.output.markdown, snakemake.output.choices,
                         runs=snakemake.params.runs)
for cell, modes in chosen.items():
    print(f"{cell}: " + ", ".join(f"{mode} {label}" for mode, label in modes.items()))
