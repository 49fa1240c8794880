rule download:
    output:
        "resources/omniglot/{archive}.zip",
    log:
        "logs/download/{archive}.log",
    benchmark:
        "logs/benchmarks/download/{archive}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    # an archive is identified by its md5 alone: where it came from (data.source, which the
    # script reads from the config) is not part of it, so a new source reruns nothing
    params:
        md5=lambda wildcards: config["data"]["md5"][wildcards.archive],
    script:
        "../scripts/download.py"


rule preprocess:
    input:
        background="resources/omniglot/images_background.zip",
        evaluation="resources/omniglot/images_evaluation.zip",
    output:
        DATA,
    log:
        "logs/preprocess.log",
    benchmark:
        "logs/benchmarks/preprocess.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/preprocess.py"


rule split:
    input:
        DATA,
    output:
        SPLIT,
    log:
        "logs/split/{split}.log",
    benchmark:
        "logs/benchmarks/split/{split}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/split.py"
