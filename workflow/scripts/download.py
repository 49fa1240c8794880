"""Snakemake glue for `maml.data.fetch_archive`: verified copy or download of one archive."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.data import fetch_archive  # noqa: E402

name = snakemake.wildcards.get("archive", "all_runs")
source = snakemake.config["data"]["runs_source" if name == "all_runs" else "source"]
fetch_archive(name, source, snakemake.params.md5, snakemake.output[0])
print(f"{snakemake.output[0]}: {name}.zip from {source}, md5 {snakemake.params.md5} checked")
