# With `table_runs: finished`, the table leaves out runs in progress and ensembles whose
# members have not all got their models (both listed in results/in_progress.md).
FINISHED = config["table_runs"] == "finished"


rule aggregate:
    input:
        evals=all_runs("eval.json", finished=FINISHED),
        summaries=all_runs("train.json", finished=FINISHED),
        curves=all_runs("curve.csv", finished=FINISHED),
        lake=lake_runs_files(finished=FINISHED),
        ensembles=ensemble_files(finished=FINISHED),
        settings=settings_files(finished=FINISHED),
        selection=rules.selection.output.choices if SELECTING else [],
        chosen=chosen_results if SELECTING else [],
    output:
        markdown="results/table.md",
        csv="results/table.csv",
        best="results/best_per_cell.md",
        headline="results/headline.md",
        comparison="results/grid_comparison.md",
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
        ensembles_waiting=ensembles_waiting(),
    script:
        "../scripts/aggregate.py"
