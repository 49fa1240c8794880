"""Snakemake glue for `maml.data.make_split`."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.data import load_characters, make_split, save_split  # noqa: E402

split = make_split(load_characters(snakemake.input[0]), snakemake.wildcards.split)
save_split(split, snakemake.output[0])
print(f"{snakemake.output[0]}: " + ", ".join(f"{part} {len(characters)} characters"
                                             for part, characters in split["parts"].items()))
