rule download_one_shot_runs:
    output:
        RUNS_ARCHIVE,
    log:
        "logs/download/all_runs.log",
    benchmark:
        "logs/benchmarks/download/all_runs.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:  # the source, as for the archives, is not part of the file's identity
        md5=RUNS_MD5,
    script:
        "../scripts/download.py"


# A 20-way 1-shot model of Lake's protocol (a split of LAKE_SPLITS) on Lake's 20 runs.
rule lake_runs:
    input:
        model=training_result("model.npz", cell="20way1shot"),
        summary=training_result("train.json", cell="20way1shot"),
        runs=data_input(RUNS_ARCHIVE, lake_runs_made),
    output:
        update("results/runs/{split}/{method}/20way1shot/{run}/lake_runs.json"),
    log:
        "logs/lake_runs/{split}/{method}/{run}.log",
    benchmark:
        "logs/benchmarks/lake_runs/{split}/{method}/{run}.tsv"
    wildcard_constraints:
        split="|".join(LAKE_SPLITS),
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=1 if ON_GPU else 0,
    params:
        # the run's test-time steps, as its evaluation uses (train.json has none)
        steps=lambda wildcards: run_settings(
            config, wildcards.method, "20way1shot", wildcards.run, wildcards.split
        )["test_inner_steps"],
        md5=RUNS_MD5,
    script:
        "../scripts/lake_runs.py"
