"""Snakemake glue for `maml.data.preprocess`: a dataset's archives -> its images at its size
and their metadata."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.data import preprocess, save_characters  # noqa: E402
from maml.datasets import datasets  # noqa: E402

dataset = datasets()[snakemake.wildcards.dataset]
data = preprocess({archive.name: snakemake.input[archive.name] for archive in dataset.archives},
                  dataset=dataset)
save_characters(data, snakemake.output[0])
print(f"{snakemake.output[0]}: {data.num_characters} characters of {dataset.name}")
