# The model for each cell, chosen on validation (maml.selection, config.yaml `selection`):
# every candidate model on the validation tasks of every cell it serves, the matrix and the
# choice, then the chosen configurations that were trained on another cell on that cell's
# test tasks (and as one ensemble where their run has one).
rule evaluate_on_cell:
    input:
        model=training_result("model.npz"),
        summary=training_result("train.json"),
        data=data_input(DATA, on_cell_made),
        split=data_input(SPLIT, on_cell_made),
    output:
        update(ON_CELL_FILE),
    log:
        "logs/evaluate_on_cell/{split}/{method}/{cell}/{run}/on-{tested}/{name}.log",
    benchmark:
        "logs/benchmarks/evaluate_on_cell/{split}/{method}/{cell}/{run}/on-{tested}/{name}.tsv"
    wildcard_constraints:
        tested=CELL_PATTERN,
        name="|".join(ON_CELL_PARTS),
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=1 if ON_GPU else 0,
    params:
        settings=lambda wildcards: identity(settings_for(wildcards)),
        part=lambda wildcards: ON_CELL_PARTS[wildcards.name],
        num_tasks=lambda wildcards: (
            config["selection"]["tasks"]
            if wildcards.name == "val"
            else config["test_tasks"]
        ),
        test_seed=config["test_seed"],
        tested_on=lambda wildcards: tested_on(config, wildcards.tested),
    script:
        "../scripts/evaluate_on_cell.py"


checkpoint selection:
    input:
        evals=[
            result_path(split, method, cell, run, tested, "val.json")
            for _, split, method, cell, run, tested in validation_jobs(
                config, selection_runs()
            )
        ],
        summaries=[
            f"{run_folder(split, method, cell, run)}/train.json"
            for _, split, method, cell, run in candidates(config, selection_runs())
        ],
    output:
        markdown="results/selection.md",
        choices="results/selection.json",
    log:
        "logs/selection.log",
    localrule: True
    conda:
        ENV
    params:
        config=config,
        runs=selection_runs(),
    script:
        "../scripts/selection.py"


rule ensemble_on_cell:
    input:
        models=ensemble_members("model.npz"),
        summaries=ensemble_members("train.json"),
        data=data_input(DATA, ensemble_on_cell_made),
        split=data_input(SPLIT, ensemble_on_cell_made),
    output:
        update("results/ensembles/{split}/{method}/{cell}/{label}/on-{tested}.json"),
    log:
        "logs/ensemble/{split}/{method}/{cell}/{label}/on-{tested}.log",
    wildcard_constraints:
        tested=CELL_PATTERN,
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
        tested_on=lambda wildcards: tested_on(config, wildcards.tested),
    script:
        "../scripts/ensemble.py"
