"""What the small offline config's pipeline makes: the table from the evaluation files, figures,
provenance, logs, models, the HTML report; lint and format."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from maml import cpu
from maml.settings import INDEPENDENT

from workflow_runs import SMALL, planned_jobs, snakemake


def test_table_holds_the_evaluation_files_numbers(finished):
    table = pd.read_csv(finished / "results" / "table.csv")
    assert list(zip(table.cell, table.method)) == [
        ("5way1shot", "maml"), ("5way1shot", "maml++"),
        ("20way1shot", "maml"), ("20way1shot", "maml++")]
    for row in table.itertuples():
        evals = [json.loads((finished / f"results/runs/finn/{row.method}/{row.cell}/seed{s}/"
                             "eval.json").read_text()) for s in (0, 1)]
        assert all(e["method"] == row.method for e in evals)
        accuracies = np.array([100 * e["accuracy"] for e in evals])
        assert row.accuracy == pytest.approx(accuracies.mean(), abs=1e-9)
        # the 95% t interval over two seeds: t(0.975, 1 degree of freedom) = 12.706
        assert row.ci95_seeds == pytest.approx(12.7062 * accuracies.std(ddof=1) / math.sqrt(2),
                                               rel=1e-5)
        assert row.per_seed == "; ".join(f"{100 * e['accuracy']:.2f} ± {100 * e['ci95']:.2f}"
                                         for e in evals)
        # each query on its own: the same tasks, the mode predict uses by default
        assert all(len(e["query_modes"][INDEPENDENT]["task_accuracy"]) == e["num_tasks"]
                   for e in evals)
        assert row.independent == pytest.approx(
            np.mean([100 * e["query_modes"][INDEPENDENT]["accuracy"] for e in evals]),
            abs=1e-9)
        assert row.test_tasks == 6 == evals[0]["num_tasks"] and row.iterations == 4
    markdown = (finished / "results" / "table.md").read_text()
    assert f"{table.accuracy[0]:.2f} ± {table.ci95_seeds[0]:.2f}" in markdown
    assert "98.7 ± 0.4" in markdown and "99.2" in markdown
    best = (finished / "results" / "best_per_cell.md").read_text().splitlines()[2:]
    assert [line.split(" | ")[0] for line in best] == ["| 5way1shot", "| 20way1shot"]
    for line, (cell, rows) in zip(best, table.groupby("cell", sort=False)):
        top = rows.loc[rows.accuracy.idxmax()]
        gap = top.accuracy - {"5way1shot": 98.7, "20way1shot": 95.8}[cell]
        assert f"| {top.method}, grid (laptop) | {cell} | {top.accuracy:.2f} ± " in line
        assert f"| {top.train_cpu_hours:.2f} |" in line and f"| {gap:+.2f} |" in line


def test_figures_provenance_logs_and_benchmarks(finished):
    for figure in ("validation_curves.png", "accuracy_vs_steps.png", "accuracy_vs_cpu_hours.png"):
        assert (finished / "results" / "figures" / figure).read_bytes()[:4] == b"\x89PNG"
    provenance = json.loads((finished / "results" / "provenance.json").read_text())
    assert len(provenance["commit"]) == 40
    assert provenance["config"]["cells"] == SMALL["cells"]
    assert "paddlepaddle" in provenance["packages"] and "snakemake" in provenance["packages"]
    assert len(provenance["jobs"]) == 8
    assert {job["method"] for job in provenance["jobs"]} == {"maml", "maml++"}
    assert "cpu_settings" in provenance["machine"]
    # where every job ran, for saying where a bit-for-bit claim holds
    kind = cpu.machine()["kind"]
    assert provenance["machine"]["cpu"]["kind"] == kind
    for job in provenance["jobs"]:
        assert job["eval_machine"] == kind
        assert {segment["machine"]["kind"] for segment in job["segments"]} == {kind}
    for rule in ("train", "evaluate"):
        assert (finished / f"logs/{rule}/finn/maml++/5way1shot/seed0.log").exists()
        assert (finished / f"logs/benchmarks/{rule}/finn/maml++/5way1shot/seed0.tsv").exists()


def test_models_have_their_methods_parameters(finished):
    from maml.files import load_arrays

    plain = load_arrays(finished / "results/runs/finn/maml/5way1shot/seed0/model.npz")
    plus = load_arrays(finished / "results/runs/finn/maml++/5way1shot/seed0/model.npz")
    assert not any(name.startswith("lslr.") for name in plain)
    assert plain["bn1.weight"].shape == (64,)
    assert plus["lslr.conv0.weight"].shape == (1,)  # one inner step
    assert plus["bn1.weight"].shape == (1, 64)  # per-step batch norm
    assert "lslr.bn1.weight" not in plus  # batch norm outside the inner loop


def test_html_report_shows_table_and_figures(finished):
    """The README's report command: run.sh report, in the pipeline's environment."""
    result = subprocess.run(["bash", str(REPO / "run.sh"), "report", "--directory",
                             str(finished), "--snakefile", str(REPO / "Snakefile"),
                             "--configfile", str(finished / "test-config.yaml")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = (finished / "report.html").read_text()
    for name in ("table.html", "validation_curves.png", "accuracy_vs_steps.png"):
        assert name in html


def test_lint_is_clean(finished):
    assert "Congratulations" in snakemake(finished, "--lint").stdout


def test_snakefmt_is_clean():
    files = [REPO / "Snakefile", REPO / "workflow" / "Snakefile",
             *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *map(str, files)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_everything_up_to_date_after_a_run(finished):
    assert planned_jobs(finished) == {}
