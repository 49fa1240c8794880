# The table has the finished runs only; a run in progress (results/in_progress.md) joins it
# once it has finished, at the next run of the pipeline.
rule aggregate:
    input:
        evals=all_runs("eval.json", finished=True),
        summaries=all_runs("train.json", finished=True),
        curves=all_runs("curve.csv", finished=True),
        lake=all_runs("lake_runs.json", split="lake", cell="20way1shot", finished=True),
    output:
        markdown="results/table.md",
        csv="results/table.csv",
        best="results/best_per_cell.md",
        html=report(
            "results/table.html", category="Table", caption="../report/table.rst"
        ),
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
        cpu_hours=report(
            "results/figures/accuracy_vs_cpu_hours.png",
            category="Figures",
            caption="../report/accuracy_vs_cpu_hours.rst",
        ),
        lake_markdown="results/lake_runs.md",
        lake_csv="results/lake_runs.csv",
        provenance="results/provenance.json",
        in_progress="results/in_progress.md",
    log:
        "logs/aggregate.log",
    benchmark:
        "logs/benchmarks/aggregate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
        in_progress=runs_in_progress(),
    script:
        "../scripts/aggregate.py"
