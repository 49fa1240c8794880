"""Snakemake glue for `maml.data.fetch_archive`: verified copy or download of one archive.
Its source is read here, not given as a param: an archive is identified by its md5 alone, so a
new source reruns nothing."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.data import data_sources, fetch_archive  # noqa: E402
from maml.datasets import one_shot_runs_dataset  # noqa: E402

name = snakemake.wildcards.get("archive", "all_runs")
dataset = snakemake.wildcards.get("dataset") or one_shot_runs_dataset().name
sources = data_sources(snakemake.config, dataset, f"{snakemake.scriptdir}/../..")
source = sources["runs_source" if name == "all_runs" else "source"]
fetch_archive(name, source, snakemake.params.md5, snakemake.output[0])
print(f"{snakemake.output[0]}: {name}.zip from {source}, md5 {snakemake.params.md5} checked")
