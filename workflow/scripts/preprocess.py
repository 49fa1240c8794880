"""Snakemake glue for `maml.data.preprocess`: archives -> 28x28 images and metadata."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.data import preprocess, save_omniglot  # noqa: E402

data = preprocess({"images_background": snakemake.input.background,
                   "images_evaluation": snakemake.input.evaluation})
save_omniglot(data, snakemake.output[0])
