"""Snakemake glue for `maml.report.aggregate`."""

import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.report import aggregate  # noqa: E402

aggregate(snakemake.input.evals, snakemake.input.summaries, snakemake.input.curves,
          dict(snakemake.output.items()), snakemake.params.config,
          workflow_dir=Path(snakemake.scriptdir).resolve().parents[1], lake=snakemake.input.lake,
          ensembles=snakemake.input.ensembles,
          in_progress=snakemake.params.in_progress,
          ensembles_waiting=snakemake.params.ensembles_waiting,
          selection=snakemake.input.selection or None, chosen=snakemake.input.chosen)
print(f"{snakemake.output.markdown}: {len(snakemake.input.evals)} evaluations, "
      f"{len(snakemake.input.ensembles)} ensembles and {len(snakemake.input.chosen)} results "
      "chosen on validation; the other tables and figures beside it")
