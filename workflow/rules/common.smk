ON_GPU = config["device"].startswith("gpu")
# One environment file serves every rule: the GPU one when the config asks for a GPU.
ENV = "../../envs/maml-gpu.yaml" if ON_GPU else "../../envs/maml-cpu.yaml"
# The dataset of Lake's one-shot runs (the splits whose models they score), and their archive.
RUNS_DATASET = one_shot_runs_dataset().name
RUNS_ARCHIVE = one_shot_runs_dataset().runs_file
# Their archive's md5 sum, which the download and the scoring rules both check.
RUNS_MD5 = data_sources(config, RUNS_DATASET, REPOSITORY)["md5"]["all_runs"]
# Whether the config chooses a model per cell on validation (workflow/rules/selection.smk).
SELECTING = bool(config["selection"]["candidates"])
# A run's folder: its results and settings files.
RUN_FOLDER = "results/runs/{split}/{method}/{cell}/{run}"


wildcard_constraints:
    dataset="|".join(datasets()),
    archive="|".join(a.name for d in datasets().values() for a in d.archives),
    split="|".join(SPLITS),
    method="|".join(re.escape(method) for method in METHODS),
    cell=CELL_PATTERN,
    run=RUN_PATTERN,
    label=LABEL_PATTERN,


def settings_for(wildcards):
    return run_settings(
        config, wildcards.method, wildcards.cell, wildcards.run, wildcards.split
    )


def run_folder(split, method, cell, run):
    return RUN_FOLDER.format(split=split, method=method, cell=cell, run=run)


@lru_cache(maxsize=None)
def run_keys(split, method, cell, run):
    """A run's train and evaluate keys (hashes of its settings), computed once per Snakemake
    invocation: the input functions ask for them several times per job as the DAG is built.
    """
    settings = run_settings(config, method, cell, run, split)
    return {
        "train": fingerprint(settings),
        "evaluate": evaluation_fingerprint(
            settings, config["test_tasks"], config["test_seed"]
        ),
    }


def settings_path(job, split, method, cell, run):
    """A train or evaluate job's settings file (see rule settings_file), named by the hash of
    what shapes its result."""
    key = run_keys(split, method, cell, run)[job]
    return f"{run_folder(split, method, cell, run)}/{job}-settings-{key}.json"


def settings_file(job):
    """The input function giving a train or evaluate job its settings file: ancient for a job
    with its results (the file's name is its content's hash, so a rewritten one changes
    nothing), plain for a job still to do (see data_input: Snakemake would drop it below a
    settings file that is rewritten)."""
    made = train_made if job == "train" else evaluate_made

    def given(wildcards):
        run = (wildcards.split, wildcards.method, wildcards.cell, wildcards.run)
        path = settings_path(job, *run)
        return ancient(path) if made(*run) else path

    return given


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
    """A run's resume state: outside its outputs (which a finished job replaces), and named by
    its identity. Committed while the run is in progress (see maml.progress).
    """
    key = run_keys(split, method, cell, run)["train"]
    return f"results/state/{split}/{method}/{cell}/{run}/{key}.npz"


def has_finished(split, method, cell, run):
    """Whether a run has trained to its end with its settings: its train.json records them.
    A checkpoint in progress beside it is a retrain rebuilding a model the committed results
    lack (some November runs kept none): the run keeps its row while the retrain goes on.
    """
    summary = f"{run_folder(split, method, cell, run)}/train.json"
    return trained_key(summary) == run_keys(split, method, cell, run)["train"]


@lru_cache(maxsize=None)
def trained_key(summary):
    """The train key of the settings a train.json records, or None if there is none yet."""
    return (
        fingerprint(read_json(summary)["settings"]) if Path(summary).exists() else None
    )


def all_runs(filename, split=None, cell=None, finished=False):
    """`filename` of every run of the config (methods x cells x seeds, then extra runs), e.g.
    all eval.json files; with `split` and `cell`, only that split's runs of that cell; with
    `finished`, only runs that have trained to their end (`has_finished`).
    """
    return [
        f"{run_folder(run_split, method, run_cell, run)}/{filename}"
        for run_split, method, run_cell, run in grid_runs(config)
        if split in (None, run_split)
        and cell in (None, run_cell)
        and (not finished or has_finished(run_split, method, run_cell, run))
    ]


def ensemble_files(finished=False):
    """Every ensemble's eval file; with `finished`, those whose members have all finished
    with their models (an ensemble waiting for a retrain is not finished)."""
    return [
        f"results/ensembles/{split}/{method}/{cell}/{label}.json"
        for split, method, cell, label, seeds in ensembles(config)
        if not finished or not ensemble_waits_for(split, method, cell, label, seeds)
    ]


def ensemble_waits_for(split, method, cell, label, seeds):
    """The members of an ensemble that cannot be scored yet, each with why: not trained to
    its end, or trained without a model kept (to be retrained)."""
    waits = []
    for seed in seeds:
        run = run_name(seed, label)
        if not has_finished(split, method, cell, run):
            waits.append(f"{run} (not finished)")
        elif not Path(f"{run_folder(split, method, cell, run)}/model.npz").exists():
            waits.append(f"{run} (finished without its model: to retrain)")
    return waits


def ensembles_waiting():
    """(ensemble, the members it waits for) of every configured ensemble not ready to score."""
    waiting = []
    for split, method, cell, label, seeds in ensembles(config):
        members = ensemble_waits_for(split, method, cell, label, seeds)
        if members:
            waiting.append((f"{split}/{method}/{cell}/{label}", members))
    return waiting


def ensemble_settings(wildcards):
    """An ensemble's settings: its members differ in their seed only, so the first one's
    serve them all."""
    seed = extra_seeds(config["extra_runs"][wildcards.label])[0]
    return identity(
        run_settings(
            config,
            wildcards.method,
            wildcards.cell,
            run_name(seed, wildcards.label),
            wildcards.split,
        )
    )


def ensemble_members(filename):
    """The input function for `filename` (see training_file) of each seed's run of the
    ensemble `wildcards.label`."""

    def given(wildcards):
        return [
            training_file(
                (
                    wildcards.split,
                    wildcards.method,
                    wildcards.cell,
                    run_name(seed, wildcards.label),
                ),
                filename,
            )
            for seed in extra_seeds(config["extra_runs"][wildcards.label])
        ]

    return given


# The data files the jobs read (see data_input): a run's split names its dataset
# (src/maml/datasets.yaml), whose files these are.
def DATA(fields):
    return dataset_of(fields["split"]).data_file


def SPLIT(fields):
    return dataset_of(fields["split"]).split_files.format(split=fields["split"])


def data_input(pattern, made):
    """The input function for a data file (`pattern`, formatted with the job's wildcards) of a
    job whose results are there when `made(**wildcards)`.

    Data are identified by their content (md5-checked archives, deterministic preprocessing
    and split), so a job with its results never reruns for data made again: the file is
    `ancient`. Snakemake (9.27, dag.py) honours that only for data that exist when it plans,
    and it drops the jobs still to do below a data job that reruns (for changed params or
    code) unless a plain input joins them. So a job with its results asks for data it finds
    as ancient, for data not yet made not at all (a fresh clone retrains nothing), and a job
    with results still to make asks for its data as a plain input.
    """

    def given(wildcards):
        fields = dict(wildcards.items())
        path = pattern(fields) if callable(pattern) else pattern.format(**fields)
        if not made(**fields):
            return path
        return ancient(path) if Path(path).exists() else []

    return given


def training_file(run, filename):
    """A run's training result `filename` (model.npz, train.json) as an input of a job that
    uses it: `ancient` while a retrain of the finished run is in progress.

    Snakemake (9.27, persistence.restore_output) copies an `update` output back after a failed
    job with a new modification time. Where no checksum it recorded tells the copy from a new
    file (a clone; a model over --max-checksum-file-size), an interrupted retrain would then make
    what the run's model made (its evaluation, its ensembles, its score on Lake's runs) look
    outdated: the table of finished runs would redo them first (retraining a run without its
    model). A retrain that runs to its end still redoes them: its job updates the file.
    """
    path = f"{run_folder(*run)}/{filename}"
    retraining = has_finished(*run) and in_progress(state_path(*run))
    return ancient(path) if retraining else path


def training_result(filename, cell=None):
    """The input function for the training result `filename` (see training_file) of the job's
    run; `cell` for a rule whose path fixes it."""

    def given(wildcards):
        run_cell = cell or wildcards.cell
        return training_file(
            (wildcards.split, wildcards.method, run_cell, wildcards.run), filename
        )

    return given


def train_made(split, method, cell, run):
    """Whether a run's training has its results: trained to its end with its settings (its
    train.json and curve.csv; some November runs kept no model.npz)."""
    folder = run_folder(split, method, cell, run)
    return (
        has_finished(split, method, cell, run)
        and Path(f"{folder}/curve.csv").exists()
        and Path(settings_path("train", split, method, cell, run)).exists()
    )


def evaluate_made(split, method, cell, run):
    """Whether a run's evaluation has its results: its model's and its own."""
    folder = run_folder(split, method, cell, run)
    return (
        train_made(split, method, cell, run)
        and Path(f"{folder}/eval.json").exists()
        and Path(settings_path("evaluate", split, method, cell, run)).exists()
    )


def lake_runs_files(finished=False):
    """Every score on Lake's runs: one per 20-way 1-shot run of a split of Lake's protocol
    (settings.LAKE_SPLITS); with `finished`, as `all_runs`."""
    return [
        path
        for split in LAKE_SPLITS
        for path in all_runs("lake_runs.json", split, "20way1shot", finished)
    ]


def lake_runs_made(split, method, run):
    """Whether a run of Lake's protocol has been scored on Lake's runs (and its model made)."""
    folder = run_folder(split, method, "20way1shot", run)
    return (
        train_made(split, method, "20way1shot", run)
        and Path(f"{folder}/lake_runs.json").exists()
    )


def ensemble_made(split, method, cell, label):
    """Whether an ensemble has its result and each member its model."""
    seeds = extra_seeds(config["extra_runs"][label])
    return (
        all(train_made(split, method, cell, run_name(seed, label)) for seed in seeds)
        and Path(f"results/ensembles/{split}/{method}/{cell}/{label}.json").exists()
    )


def runs_in_progress():
    """(run folder, state path, whether it is a retrain of a finished run) of every run of the
    config with a checkpoint in progress."""
    return [
        (
            f"{split}/{method}/{cell}/{run}",
            state_path(split, method, cell, run),
            has_finished(split, method, cell, run),
        )
        for split, method, cell, run in grid_runs(config)
        if in_progress(state_path(split, method, cell, run))
    ]


# The selection of a model per cell (workflow/rules/selection.smk).
ON_CELL_FILE = "results/runs/{split}/{method}/{cell}/{run}/on-{tested}/{name}.json"
# val.json: the selection's validation tasks; eval.json: the tested cell's test tasks.
ON_CELL_PARTS = {"val": "val", "eval": "test"}


def on_cell_made(split, method, cell, run, tested, name):
    """Whether a model's result on another cell is there (with its model)."""
    return (
        train_made(split, method, cell, run)
        and Path(
            ON_CELL_FILE.format(
                split=split, method=method, cell=cell, run=run, tested=tested, name=name
            )
        ).exists()
    )


def selection_runs():
    """The candidates' runs the selection uses: all (None), or with `table_runs: finished`
    those that have finished, so that the table of finished runs trains nothing."""
    if config["table_runs"] != "finished":
        return None
    return [run[1:] for run in candidates(config) if has_finished(*run[1:])]


def chosen_results(wildcards=None):
    """The test results the selection's choice adds: each chosen configuration trained on
    another cell, on that cell's test tasks, per seed and as one ensemble where its run
    has one (read from the checkpoint's choice); for the table of finished runs, only an
    ensemble whose members have all finished."""
    chosen = read_json(checkpoints.selection.get().output.choices)["chosen"]
    files = []
    for label, split, method, cell, run, tested in chosen_elsewhere(
        config, chosen, selection_runs()
    ):
        files.append(result_path(split, method, cell, run, tested, "eval.json"))
        extra = config["extra_runs"][label]
        if extra.get("ensemble") and not (
            config["table_runs"] == "finished"
            and ensemble_waits_for(split, method, cell, label, extra_seeds(extra))
        ):
            files.append(ensemble_on_cell_path(split, method, cell, label, tested))
    return list(dict.fromkeys(files))


def ensemble_on_cell_path(split, method, cell, label, tested):
    return f"results/ensembles/{split}/{method}/{cell}/{label}/on-{tested}.json"


def ensemble_on_cell_made(split, method, cell, label, tested):
    """Whether an ensemble's result on another cell is there (with its members' models)."""
    return (
        ensemble_made(split, method, cell, label)
        and Path(ensemble_on_cell_path(split, method, cell, label, tested)).exists()
    )


def archives_of(wildcards):
    """The archives a dataset's preprocessing reads, by name (its registry entry's)."""
    dataset = datasets()[wildcards.dataset]
    if int(wildcards.size) != dataset.image_size:
        raise ValueError(
            f"{dataset.name}'s images are {dataset.image_size} pixels wide "
            "(src/maml/datasets.yaml)"
        )
    return {a.name: f"resources/{dataset.name}/{a.name}.zip" for a in dataset.archives}
