rule train:
    input:
        data="resources/omniglot/omniglot28.npz",
        split="resources/omniglot/splits/{split}.json",
    output:
        model="results/runs/{split}/{method}/{cell}/{run}/model.npz",
        curve="results/runs/{split}/{method}/{cell}/{run}/curve.csv",
        summary="results/runs/{split}/{method}/{cell}/{run}/train.json",
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
        settings=lambda wildcards: training_settings(settings_for(wildcards)),
        # resume state lives outside the outputs, which Snakemake deletes before a rerun
        state=lambda wildcards: f"results/state/{wildcards.split}/{wildcards.method}/"
        f"{wildcards.cell}/{wildcards.run}/{fingerprint(settings_for(wildcards))}.npz",
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        model="results/runs/{split}/{method}/{cell}/{run}/model.npz",
        summary="results/runs/{split}/{method}/{cell}/{run}/train.json",
        data="resources/omniglot/omniglot28.npz",
        split="resources/omniglot/splits/{split}.json",
    output:
        "results/runs/{split}/{method}/{cell}/{run}/eval.json",
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
        settings=settings_for,
        num_tasks=config["test_tasks"],
        test_seed=config["test_seed"],
    script:
        "../scripts/evaluate.py"
