"""Snakemake glue for `maml.files.write_settings_file`."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from maml.files import write_settings_file  # noqa: E402

tasks = snakemake.params.tasks if snakemake.wildcards.job == "evaluate" else {}
write_settings_file(snakemake.output[0], {**snakemake.params.settings, **tasks})
