ON_GPU = config["device"].startswith("gpu")
# One environment file serves every rule: the GPU one when the config asks for a GPU.
ENV = "../../envs/maml-gpu.yaml" if ON_GPU else "../../envs/maml-cpu.yaml"


wildcard_constraints:
    archive="|".join(ARCHIVES),
    split="|".join(SPLITS),
    method="|".join(re.escape(method) for method in METHODS),
    cell=CELL_PATTERN,
    run=RUN_PATTERN,
    label=LABEL_PATTERN,


def settings_for(wildcards):
    return run_settings(
        config, wildcards.method, wildcards.cell, wildcards.run, wildcards.split
    )


def settings_path(job, split, method, cell, run):
    """A train or evaluate job's settings file (see rule settings_file), named by the hash of
    what shapes its result."""
    settings = run_settings(config, method, cell, run, split)
    if job == "train":
        key = fingerprint(settings)
    else:
        key = evaluation_fingerprint(
            settings, config["test_tasks"], config["test_seed"]
        )
    return f"results/runs/{split}/{method}/{cell}/{run}/{job}-settings-{key}.json"


def settings_file(job):
    """The input function giving a job its settings file."""
    return lambda wildcards: settings_path(
        job, wildcards.split, wildcards.method, wildcards.cell, wildcards.run
    )


def settings_files(finished=False):
    """Every run's train and evaluate settings files (with `finished`, as `all_runs`), which
    the targets ask for, so that a changed setting's new file is made and its job reruns.
    """
    return [
        settings_path(job, split, method, cell, run)
        for split, method, cell, run in grid_runs(config)
        if not finished or has_finished(split, method, cell, run)
        for job in ("train", "evaluate")
    ]


def state_path(split, method, cell, run):
    """A run's resume state: outside its outputs, which Snakemake deletes before a rerun, and
    named by its identity. Committed while the run is in progress (see maml.progress).
    """
    key = fingerprint(run_settings(config, method, cell, run, split))
    return f"results/state/{split}/{method}/{cell}/{run}/{key}.npz"


def has_finished(split, method, cell, run):
    """Whether a run has trained to its end: its train.json is there, and no checkpoint of
    its settings is short of the last iteration."""
    folder = f"results/runs/{split}/{method}/{cell}/{run}"
    return Path(f"{folder}/train.json").exists() and not in_progress(
        state_path(split, method, cell, run)
    )


def all_runs(filename, split=None, cell=None, finished=False):
    """`filename` of every run of the config (methods x cells x seeds, then extra runs), e.g.
    all eval.json files; with `split` and `cell`, only that split's runs of that cell; with
    `finished`, only runs that have trained to their end (`has_finished`).
    """
    return [
        f"results/runs/{run_split}/{method}/{run_cell}/{run}/{filename}"
        for run_split, method, run_cell, run in grid_runs(config)
        if split in (None, run_split)
        and cell in (None, run_cell)
        and (not finished or has_finished(run_split, method, run_cell, run))
    ]


def ensemble_files(finished=False):
    """Every ensemble's eval file; with `finished`, those whose members have all finished."""
    return [
        f"results/ensembles/{split}/{method}/{cell}/{label}.json"
        for split, method, cell, label, seeds in ensembles(config)
        if not finished
        or all(
            has_finished(split, method, cell, run_name(seed, label)) for seed in seeds
        )
    ]


def ensemble_members(wildcards, filename):
    """`filename` of each seed's run of the ensemble `wildcards.label`."""
    seeds = extra_seeds(config["extra_runs"][wildcards.label])
    return [
        f"results/runs/{wildcards.split}/{wildcards.method}/{wildcards.cell}/"
        f"{run_name(seed, wildcards.label)}/{filename}"
        for seed in seeds
    ]


def runs_in_progress():
    """(run folder, state path) of every run of the config with a checkpoint in progress."""
    runs = [
        (f"{split}/{method}/{cell}/{run}", state_path(split, method, cell, run))
        for split, method, cell, run in grid_runs(config)
    ]
    return [(folder, state) for folder, state in runs if in_progress(state)]
