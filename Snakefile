# The workflow is defined in workflow/Snakefile (the snakemake-workflow-template's layout, which
# the workflow catalog and snakedeploy read); this file lets `snakemake` and `./run.sh pipeline`
# run it from the repository's top level, with config.yaml. (The `include:` directive would
# drop its default target, rule all.)
workflow.include(
    f"{workflow.basedir}/workflow/Snakefile", overwrite_default_target=True
)
