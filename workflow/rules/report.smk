rule aggregate:
    input:
        evals=all_runs("eval.json"),
        summaries=all_runs("train.json"),
        curves=all_runs("curve.csv"),
    output:
        markdown="results/table.md",
        csv="results/table.csv",
        html=report("results/table.html", category="Table", caption="../report/table.rst"),
        curves=report(
            "results/figures/validation_curves.png",
            category="Figures",
            caption="../report/validation_curves.rst",
        ),
        steps=report(
            "results/figures/accuracy_vs_steps.png",
            category="Figures",
            caption="../report/accuracy_vs_steps.rst",
        ),
        provenance="results/provenance.json",
    params:
        config=config,
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/aggregate.py"
