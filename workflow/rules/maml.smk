# What a train or evaluate job's result depends on, as a file named by its hash: Snakemake
# keeps params in .snakemake/, which a fresh clone lacks, so a committed result could not
# tell it was made with other settings. A changed setting names a new file, which the job
# then needs; an unchanged one (a new setting at its default included) finds the committed
# file. Older files of the job are removed.
rule settings_file:
    output:
        "results/runs/{split}/{method}/{cell}/{run}/{job}-settings-{key}.json",
    log:
        "logs/settings/{split}/{method}/{cell}/{run}/{job}-settings-{key}.log",
    wildcard_constraints:
        job="train|evaluate",
        key="[0-9a-f]{12}",
    localrule: True
    conda:
        ENV
    params:
        # exactly what its key hashes: a train job's file does not change with test settings
        settings=lambda wildcards: job_identity(
            wildcards.job,
            settings_for(wildcards),
            config["test_tasks"],
            config["test_seed"],
        ),
    script:
        "../scripts/settings_file.py"


# Data and settings-file inputs: see data_input and settings_file (data made again or settings
# files rewritten retrain nothing; a changed setting names a new settings file, which the job
# then needs). A run's results are `update`
# outputs: Snakemake keeps them while the job runs and puts them back if it fails, so a job
# that fails (e.g. device: gpu on a CPU-only install) leaves the committed results as they were.
rule train:
    input:
        data=data_input(DATA, train_made),
        split=data_input(SPLIT, train_made),
        settings=settings_file("train"),
    output:
        model=update("results/runs/{split}/{method}/{cell}/{run}/model.npz"),
        curve=update("results/runs/{split}/{method}/{cell}/{run}/curve.csv"),
        summary=update("results/runs/{split}/{method}/{cell}/{run}/train.json"),
    log:
        "logs/train/{split}/{method}/{cell}/{run}.log",
    benchmark:
        "logs/benchmarks/train/{split}/{method}/{cell}/{run}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=24 * 60,
        gpu=1 if ON_GPU else 0,
    params:
        # a run's identity: a new default-valued setting changes neither it nor the state's name
        settings=lambda wildcards: identity(training_settings(settings_for(wildcards))),
        state=lambda wildcards: state_path(
            wildcards.split, wildcards.method, wildcards.cell, wildcards.run
        ),
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        model=training_result("model.npz"),
        summary=training_result("train.json"),
        data=data_input(DATA, evaluate_made),
        split=data_input(SPLIT, evaluate_made),
        settings=settings_file("evaluate"),
    output:
        update("results/runs/{split}/{method}/{cell}/{run}/eval.json"),
    log:
        "logs/evaluate/{split}/{method}/{cell}/{run}.log",
    benchmark:
        "logs/benchmarks/evaluate/{split}/{method}/{cell}/{run}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=1 if ON_GPU else 0,
    params:
        settings=lambda wildcards: identity(settings_for(wildcards)),
        num_tasks=config["test_tasks"],
        test_seed=config["test_seed"],
    script:
        "../scripts/evaluate.py"


rule ensemble:
    input:
        models=ensemble_members("model.npz"),
        summaries=ensemble_members("train.json"),
        data=data_input(DATA, ensemble_made),
        split=data_input(SPLIT, ensemble_made),
    output:
        update("results/ensembles/{split}/{method}/{cell}/{label}.json"),
    log:
        "logs/ensemble/{split}/{method}/{cell}/{label}.log",
    benchmark:
        "logs/benchmarks/ensemble/{split}/{method}/{cell}/{label}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=360,
        gpu=1 if ON_GPU else 0,
    params:
        settings=ensemble_settings,
        num_tasks=config["test_tasks"],
        test_seed=config["test_seed"],
    script:
        "../scripts/ensemble.py"
