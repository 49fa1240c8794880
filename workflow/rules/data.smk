rule download:
    output:
        "resources/{dataset}/{archive}.zip",
    log:
        "logs/download/{dataset}/{archive}.log",
    benchmark:
        "logs/benchmarks/download/{dataset}/{archive}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    # an archive is identified by its md5 alone: where it came from (its source, which the
    # script takes from the config) is not part of it, so a new source reruns nothing
    params:
        md5=lambda wildcards: data_sources(config, wildcards.dataset, REPOSITORY)[
            "md5"
        ][wildcards.archive],
    script:
        "../scripts/download.py"


# A dataset's images at its size (resources/omniglot/omniglot28.npz), from its archives.
rule preprocess:
    input:
        unpack(archives_of),
    output:
        "resources/{dataset}/{dataset}{size}.npz",
    log:
        "logs/preprocess/{dataset}{size}.log",
    benchmark:
        "logs/benchmarks/preprocess/{dataset}{size}.tsv"
    wildcard_constraints:
        size="[0-9]+",
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
        lambda wildcards: DATA(wildcards),
    output:
        "resources/{dataset}/splits/{split}.json",
    log:
        "logs/split/{dataset}/{split}.log",
    benchmark:
        "logs/benchmarks/split/{dataset}/{split}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/split.py"
