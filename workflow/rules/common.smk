ON_GPU = config["device"].startswith("gpu")
# One environment file serves every rule: the GPU one when the config asks for a GPU.
ENV = "../../envs/maml-gpu.yaml" if ON_GPU else "../../envs/maml-cpu.yaml"


wildcard_constraints:
    archive="|".join(ARCHIVES),
    split="|".join(SPLITS),
    method="|".join(re.escape(method) for method in METHODS),
    cell=CELL_PATTERN,
    run=RUN_PATTERN,


def settings_for(wildcards):
    return run_settings(
        config, wildcards.method, wildcards.cell, wildcards.run, wildcards.split
    )


def all_runs(filename, split=None, cell=None):
    """`filename` of every run of the config (methods x cells x seeds, then extra runs), e.g.
    all eval.json files; with `split` and `cell`, only that split's runs of that cell.
    """
    return [
        f"results/runs/{run_split}/{method}/{run_cell}/{run}/{filename}"
        for run_split, method, run_cell, run in grid_runs(config)
        if split in (None, run_split) and cell in (None, run_cell)
    ]
