"""Snakemake glue for `maml.files.write_settings_file`."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from maml.files import write_settings_file  # noqa: E402

write_settings_file(snakemake.output[0], snakemake.params.settings)
print(f"{snakemake.output[0]}: the settings that shape this job's result")
