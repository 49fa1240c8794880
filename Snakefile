# MAML (Finn et al. 2017) on Omniglot, from the official archives to the reproduction table.
# Rules only wire files to functions of the `maml` package in src/maml.

import re
import sys
from functools import lru_cache
from pathlib import Path

from snakemake.utils import min_version, validate

# The workflow and its scripts use the `maml` package of this checkout's src/.
sys.path.insert(0, f"{workflow.basedir}/src")

from maml.data import ARCHIVES, data_config
from maml.files import DATA_FILES, read_json, settle_times
from maml.progress import in_progress
from maml.selection import (
    candidates,
    chosen_elsewhere,
    result_path,
    tested_on,
    validation_jobs,
)
from maml.settings import (
    CELL_PATTERN,
    LABEL_PATTERN,
    LAKE_SPLITS,
    METHODS,
    RUN_PATTERN,
    SPLITS,
    check_config,
    check_config_keys,
    ensembles,
    evaluation_fingerprint,
    extra_seeds,
    fingerprint,
    grid_runs,
    identity,
    job_identity,
    read_yaml,
    run_name,
    run_settings,
    training_settings,
)

min_version("9.0")

# In a workdir where Snakemake has finished no job yet (a fresh clone), the committed results
# get one modification time, so that checkout order makes none of them look out of date.
if not any(Path(".snakemake/metadata").glob("*")):
    settle_times("results")


configfile: "config.yaml"


check_config_keys(
    config, read_yaml(f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
)
validate(config, "workflow/schemas/config.schema.yaml", set_default=True)
config["data"] = data_config(config["data"], workflow.basedir)
check_config(config)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/maml.smk"
include: "workflow/rules/lake.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        # runs in progress too, which the table leaves out until they have finished
        all_runs("eval.json"),
        lake_runs_files(),
        ensemble_files(),
        settings_files(),
        rules.selection.output if SELECTING else [],
