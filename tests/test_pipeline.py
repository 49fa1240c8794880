"""The Snakemake workflow end to end on a small offline config, partial reruns, config checks,
and resume after an interrupted run."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import MD5, REPO, SOURCE
from maml import cpu
from maml.progress import record_path, write_record
from maml.settings import INDEPENDENT, METHODS, SPLITS

# The small offline config (config/offline-small.yaml), its archives taken from the tests' source.
SMALL = {**yaml.safe_load((REPO / "config" / "offline-small.yaml").read_text()),
         "data": {"source": str(Path(SOURCE).resolve()), "md5": MD5,
                  "runs_source": str(Path(SOURCE).resolve())}}


def snakemake(workdir, *args, config=None, check=True, code=REPO, **kwargs):
    """Snakemake on `workdir` with the Snakefile of `code` (default: this repository)."""
    configfile = Path(workdir) / "test-config.yaml"
    if config is not None:
        configfile.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(Path(code) / "Snakefile"),
               "-d", str(workdir), "--configfile", str(configfile), *args]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout[-5000:])
    return result


def planned_jobs(workdir, *args, config=None, code=REPO) -> dict[str, int]:
    """The dry-run's job counts per rule ({} if nothing is to be done)."""
    out = snakemake(workdir, "--dry-run", *args, config=config, code=code).stdout
    counts, inside = {}, False
    for line in out.splitlines():
        if line.startswith("Job stats:"):
            inside, counts = True, {}
        elif inside and not line.strip():
            inside = False
        elif inside and line.split()[0] not in ("job", "total") and set(line[0]) != {"-"}:
            rule, count = line.split()
            counts[rule] = int(count)
    return counts


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir, "--cores", "2", config=SMALL)
    return workdir


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


def _code_copy(path):
    """This repository's workflow code, to change in a test."""
    path.mkdir()
    for part in ("Snakefile", "workflow", "src", "profiles", "envs"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, path / part)
    return path


def _fresh_clone(finished, path):
    """What a clone of the committed results has: results and config, no .snakemake/ (no
    Snakemake metadata), no logs, no data; every file with the checkout's time."""
    shutil.copytree(finished, path, symlinks=True,
                    ignore=shutil.ignore_patterns(".snakemake", "logs", "resources"))
    return path


def test_a_small_config_means_only_what_it_says(tmp_path):
    """Beside config.yaml (16 extra runs), a config given on the command line replaces it:
    the small config plans its own 8 runs, none of config.yaml's."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    assert planned_jobs(tmp_path, config=SMALL)["train"] == 8
    # given twice, as run.sh passes --configfile a --configfile b: both files count
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"data": SMALL["data"]}))
    (tmp_path / "runs.yaml").write_text(yaml.safe_dump({k: v for k, v in SMALL.items()
                                                        if k != "data"}))
    result = subprocess.run(["bash", str(REPO / "run.sh"), "pipeline", "--dry-run",
                             "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                             "--configfile", str(tmp_path / "data.yaml"),
                             "--configfile", str(tmp_path / "runs.yaml")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^train\s+8$", result.stdout, re.M), result.stdout[-3000:]


def test_a_fresh_clone_redoes_nothing_and_a_changed_setting_retrains(finished, tmp_path):
    clone = _fresh_clone(finished, tmp_path / "clone")
    assert planned_jobs(clone, config=SMALL) == {}
    # without Snakemake's metadata, a setting changed in the config is still seen: its runs'
    # settings files are new, so they train and evaluate again, and nothing else
    changed = {**SMALL, "overrides": {**SMALL["overrides"], "inner_lr": 0.3}}
    assert planned_jobs(clone, config=changed) == {
        "settings_file": 16, "download": 2, "preprocess": 1, "split": 1, "train": 8,
        "evaluate": 8, "aggregate": 1, "all": 1}


def test_a_new_default_valued_setting_retrains_nothing(finished, tmp_path):
    """This code with one more setting in DEFAULTS (its default: today's behaviour), in a
    finished workdir and in a fresh clone: nothing to do."""
    code = _code_copy(tmp_path / "code")
    settings = code / "src" / "maml" / "settings.py"
    text = settings.read_text()
    assert '    "method": "maml",\n' in text
    settings.write_text(text.replace('    "method": "maml",\n',
                                     '    "method": "maml",\n    "new_switch": False,\n', 1))
    workdir = tmp_path / "workdir"
    shutil.copytree(finished, workdir, symlinks=True)
    assert planned_jobs(workdir, config=SMALL, code=code) == {}
    assert planned_jobs(_fresh_clone(finished, tmp_path / "clone"), config=SMALL,
                        code=code) == {}
    # and the setting is real: given another value, it retrains
    other = {**SMALL, "overrides": {**SMALL["overrides"], "new_switch": True}}
    assert planned_jobs(workdir, config=other, code=code)["train"] == 8


@pytest.mark.parametrize("change", [
    {"test_tasks": 7},
    {"test_seed": 1},
    {"overrides": {**SMALL["overrides"], "test_inner_steps": 3}},
])
def test_evaluation_setting_reruns_evaluate_and_aggregate_only(finished, change):
    jobs = planned_jobs(finished, config={**SMALL, **change})
    # each run's evaluate settings file is new; its train settings file stays
    assert jobs == {"settings_file": 8, "evaluate": 8, "aggregate": 1, "all": 1}


def test_training_setting_retrains(finished):
    jobs = planned_jobs(finished, config={**SMALL, "overrides": {**SMALL["overrides"],
                                                                 "meta_lr": 0.002}})
    assert jobs["train"] == 8 and jobs["evaluate"] == 8


def _trained_folders(workdir, config):
    out = snakemake(workdir, "--dry-run", config=config).stdout
    return [line.split("results/runs/")[1].rsplit("/", 1)[0] for line in out.splitlines()
            if line.strip().startswith("output:") and "curve.csv" in line]


def test_new_seed_trains_only_that_seed(finished):
    config = {**SMALL, "seeds": [0, 1, 2]}
    assert planned_jobs(finished, config=config) == {"settings_file": 8, "train": 4,
                                                     "evaluate": 4, "aggregate": 1, "all": 1}
    trained = _trained_folders(finished, config)
    assert len(trained) == 4 and all(folder.endswith("/seed2") for folder in trained)


def test_new_method_trains_only_that_method(finished):
    config = {**SMALL, "methods": [*SMALL["methods"], "fomaml"]}
    assert planned_jobs(finished, config=config) == {"settings_file": 8, "train": 4,
                                                     "evaluate": 4, "aggregate": 1, "all": 1}
    assert all(f.startswith("finn/fomaml/") for f in _trained_folders(finished, config))


def test_a_method_family_is_one_presets_entry(finished, tmp_path):
    """A throwaway family added to a copy of presets.yaml, nothing else edited: it trains,
    evaluates and has its rows in the table, beside the committed methods' unchanged rows."""
    code = _code_copy(tmp_path / "code")
    presets = code / "src" / "maml" / "presets.yaml"
    presets.write_text(presets.read_text() + "\nthrowaway:  # a test's family: the head adapts\n"
                       "  colour: C7\n  like: maml\n  common: {inner_adapts: [fc]}\n")
    workdir = tmp_path / "workdir"
    shutil.copytree(finished, workdir, symlinks=True)
    config = {**SMALL, "methods": [*SMALL["methods"], "throwaway"]}
    snakemake(workdir, "--cores", "2", config=config, code=code)
    table = pd.read_csv(workdir / "results" / "table.csv")
    rows = table[table.method == "throwaway"]
    assert sorted(rows.cell) == sorted(SMALL["cells"]) and set(rows.seeds) == {2}
    for seed in SMALL["seeds"]:
        summary = json.loads((workdir / f"results/runs/finn/throwaway/5way1shot/seed{seed}/"
                              "train.json").read_text())
        assert summary["settings"]["inner_adapts"] == ["fc"]
    grid = pd.read_csv(finished / "results" / "table.csv")
    pd.testing.assert_frame_equal(table[table.method != "throwaway"].reset_index(drop=True),
                                  grid)


@pytest.mark.parametrize("technique", ["lslr", "per_step_bn", "cosine_meta_lr"])
def test_switching_a_technique_off_retrains_only_the_runs_that_use_it(finished, technique):
    config = {**SMALL, "overrides": {**SMALL["overrides"], technique: False}}
    assert planned_jobs(finished, config=config) == {"settings_file": 8, "train": 4,
                                                     "evaluate": 4, "aggregate": 1, "all": 1}
    assert all(f.startswith("finn/maml++/") for f in _trained_folders(finished, config))


def test_forcerun_reruns_the_rule_and_everything_downstream(finished):
    assert planned_jobs(finished, "--forcerun", "train", config=SMALL) == {
        "train": 8, "evaluate": 8, "aggregate": 1, "all": 1}
    assert planned_jobs(finished, "--forcerun", "aggregate", config=SMALL) == {
        "aggregate": 1, "all": 1}
    # the data are identified by their content: data made again retrain nothing
    assert planned_jobs(finished, "--forcerun", "preprocess", config=SMALL) == {
        "preprocess": 1, "split": 1}


def test_a_fresh_clone_trains_only_the_runs_it_lacks(finished, tmp_path):
    """A clone has no data: making them retrains none of the committed runs."""
    clone = _fresh_clone(finished, tmp_path / "clone")
    for name in ("model.npz", "curve.csv", "train.json", "eval.json"):
        (clone / "results/runs/finn/maml/5way1shot/seed1" / name).unlink()
    assert planned_jobs(clone, config=SMALL) == {
        "download": 2, "preprocess": 1, "split": 1, "train": 1, "evaluate": 1, "aggregate": 1,
        "all": 1}
    trained = _trained_folders(clone, SMALL)
    assert trained == ["finn/maml/5way1shot/seed1"]


def test_data_made_again_keep_the_jobs_still_to_do(finished, tmp_path):
    """The split made again (here forced): a new seed still trains (Snakemake drops the jobs
    below a job that reruns when only ancient inputs join them to it)."""
    workdir = tmp_path / "workdir"
    shutil.copytree(finished, workdir, symlinks=True)
    config = {**SMALL, "seeds": [0, 1, 2]}
    assert planned_jobs(workdir, "--forcerun", "split", config=config) == {
        "split": 1, "settings_file": 8, "train": 4, "evaluate": 4, "aggregate": 1, "all": 1}


def test_rewritten_settings_files_retrain_nothing_and_keep_the_jobs_still_to_do(finished):
    """Settings files written again (here forced; in a workdir, after their rule changed):
    the runs they describe stay, and a new seed's jobs are still planned (Snakemake drops the
    jobs below a job that reruns when only ancient inputs join them to it)."""
    config = {**SMALL, "seeds": [0, 1, 2]}
    assert planned_jobs(finished, "--forcerun", "settings_file", config=config) == {
        "settings_file": 24, "train": 4, "evaluate": 4, "aggregate": 1, "all": 1}


def test_edited_rule_scripts_retrain_nothing(finished, tmp_path):
    """Runs are identified by their settings: a newer glue script reruns no job."""
    code = _code_copy(tmp_path / "code")
    for script in (code / "workflow" / "scripts").glob("*.py"):
        script.write_text(script.read_text() + "\n# edited\n")
    workdir = tmp_path / "workdir"
    shutil.copytree(finished, workdir, symlinks=True)
    assert planned_jobs(workdir, config=SMALL, code=code) == {}


def test_a_job_that_fails_leaves_the_committed_results_as_they_were(finished, tmp_path):
    """device: gpu on this CPU-only install: the runs' settings change, so they train again,
    and each train job fails at once; Snakemake puts each run's files back and the settings
    files that describe them stay. (Snakemake records the failed job's params for the files
    it put back, so the jobs that started train again on the next run.)"""
    workdir = tmp_path / "workflow"
    shutil.copytree(finished, workdir, symlinks=True)
    runs = workdir / "results" / "runs"
    before = {path: path.read_bytes() for path in runs.rglob("*") if path.is_file()}
    result = snakemake(workdir, "--cores", "2", config={**SMALL, "device": "gpu"}, check=False)
    assert result.returncode != 0, result.stdout[-3000:]
    assert any("no CUDA support" in log.read_text()
               for log in (workdir / "logs" / "train").rglob("*.log")), result.stdout[-3000:]
    after = {path: path.read_bytes() for path in runs.rglob("*") if path.is_file()
             if "-settings-" not in path.name or path in before}
    assert after == before


def test_a_committed_model_retrained_in_a_fresh_clone_is_told_which_data_to_make(finished,
                                                                                 tmp_path):
    """A clone has no data, and a committed run's jobs ask for none (they have their results):
    asked for the model again, the train job names the files to make; made as it says, the
    same command then retrains the model as it was."""
    clone = _fresh_clone(finished, tmp_path / "clone")
    run = "results/runs/finn/maml/5way1shot/seed1"
    committed = (clone / run / "model.npz").read_bytes()
    (clone / run / "model.npz").unlink()
    result = snakemake(clone, "--cores", "1", f"{run}/model.npz", config=SMALL, check=False)
    assert result.returncode != 0
    log = (clone / "logs/train/finn/maml/5way1shot/seed1.log").read_text()
    named = re.search(r"\./run\.sh pipeline (.+?) --configfile", log)
    assert named, log[-2000:]
    assert named.group(1).split() == ["resources/omniglot/omniglot28.npz",
                                      "resources/omniglot/splits/finn.json"]
    snakemake(clone, "--cores", "1", *named.group(1).split(), config=SMALL)
    snakemake(clone, "--cores", "1", f"{run}/model.npz", config=SMALL)
    assert (clone / run / "model.npz").read_bytes() == committed


def test_until_stops_at_the_rule(tmp_path):
    assert planned_jobs(tmp_path, "--until", "split", config=SMALL) == {
        "download": 2, "preprocess": 1, "split": 1}
    jobs = planned_jobs(tmp_path, "--until", "train", config=SMALL)
    assert jobs["train"] == 8 and "evaluate" not in jobs and "aggregate" not in jobs


@pytest.mark.parametrize("change,message", [
    ({"cells": ["5way10shot"], "overrides": {"k_query": 15, "iterations": 4}},
     "k_shot + k_query = 25"),
    ({"cells": ["5way10shot"], "overrides": {"k_query": 5, "test_k_query": 11, "iterations": 4}},
     "k_shot + test_k_query = 21"),
    ({"cells": ["101way1shot"]}, "n_way: 101 exceeds the 100 classes of the 'val' part"),
    ({"split": "lake", "cells": ["101way1shot"]}, "n_way: 101 exceeds"),
    ({"preset": "fast"}, "method maml, cell 5way1shot: preset: method maml has no preset 'fast'"),
    ({"split": "finnn"}, f"split: unknown split 'finnn'; choose one of {list(SPLITS)}"),
    ({"preset": "reference"}, "method maml++, cell 5way1shot: preset: method maml++ has no "
                              "preset 'reference'"),
    ({"methods": ["reptile"]}, f"method: unknown method 'reptile'; choose one of "
                               f"{list(METHODS)}"),
    ({"overrides": {"lslr": "no"}}, "lslr: must be a bool, got 'no'"),
    ({"overrides": {"iterations": "10"}}, "iterations: must be a int, got '10'"),
    ({"overrides": {"method": "fomaml"}}, "overrides: method set by the config's own keys"),
    ({"device": "tpu"}, "'tpu' does not match"),
    ({"overrides": {"inner_steps": 0}}, "inner_steps: must be positive"),
    ({"overrides": {"inner_lr": -0.1}}, "inner_lr: must be positive"),
    ({"cell_overrides": {"20way5shot": {"iterations": 0}}}, "iterations: must be positive"),
    ({"overrides": {"inner_stepz": 1}}, "unknown setting(s): inner_stepz"),
    ({"cells": ["5way"]}, "'5way' does not match"),
    ({"test_tasks": 0}, "0 is less than the minimum of 1"),
    ({"test_tasks": 10 ** 11}, "100000000000 is greater than the maximum of 100000"),
    ({"extra_runs": {"long": {"cell": "5way1shot", "seed": 0, "overrides": {"k_query": 30}}}},
     "extra run long: k_shot + k_query = 31"),
    ({"extra_runs": {"long": {"cell": "5way1shot"}}}, "is not valid under any of the given"),
    ({"extra_runs": {"long": {"cell": "101way1shot", "seed": 0, "split": "lake"}}},
     "extra run long: n_way: 101 exceeds the 100 classes of the 'val' part of split 'lake'"),
    ({"extra_runs": {"grid": {"cell": "5way1shot", "seed": 0}}}, "extra run grid: the name 'grid'"),
    ({"extra_runs": {"long": {"cell": "5way1shot", "seed": 0, "preset": "fast"}}},
     "extra run long: preset: method maml has no preset 'fast'"),
    ({"extra_runs": {"long": {"cell": "5way1shot", "seed": 0, "split": "lak"}}},
     "extra run long: split: unknown split 'lak'"),
    ({"cels": ["5way1shot"]}, "config: unknown key(s) 'cels'; the keys are data, split, cells"),
    ({"cells": ["10way5shot"], "overrides": {k: v for k, v in SMALL["overrides"].items()
                                             if k != "iterations"}},
     "cells: preset 'laptop' of maml sets its budget per cell "
                                "(5way1shot, 5way5shot, 20way1shot, 20way5shot), and 10way5shot "
                                "is not one of them"),
])
def test_impossible_config_rejected_before_any_job(tmp_path, change, message):
    result = snakemake(tmp_path, "--dry-run", config={**SMALL, **change}, check=False)
    assert result.returncode != 0
    assert message in result.stdout
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_an_unknown_config_key_is_one_short_message(tmp_path):
    result = snakemake(tmp_path, "--dry-run", config={**SMALL, "cels": []}, check=False)
    assert result.returncode != 0 and "unknown key(s) 'cels'" in result.stdout
    assert len(result.stdout.splitlines()) < 30, result.stdout  # not the schema and config


EXTRA = {**SMALL, "extra_runs": {"longer": {"cell": "5way1shot", "seed": 0, "preset": "laptop",
                                           "overrides": {**SMALL["overrides"], "iterations": 6}}}}


def test_extra_run_trains_only_itself_and_gets_its_own_row(finished, tmp_path):
    workdir = tmp_path / "workflow"
    shutil.copytree(finished, workdir, symlinks=True)
    assert planned_jobs(workdir, config=EXTRA) == {"settings_file": 2, "train": 1,
                                                   "evaluate": 1, "aggregate": 1, "all": 1}
    snakemake(workdir, "--cores", "1", config=EXTRA)
    table = pd.read_csv(workdir / "results" / "table.csv")
    assert list(zip(table.cell, table.method, table.run)) == [
        ("5way1shot", "maml", "grid"), ("5way1shot", "maml++", "grid"),
        ("5way1shot", "maml", "longer"), ("20way1shot", "maml", "grid"),
        ("20way1shot", "maml++", "grid")]
    result = json.loads((workdir / "results/runs/finn/maml/5way1shot/longer-seed0/eval.json")
                        .read_text())
    longer = table[table.run == "longer"].iloc[0]
    assert longer.accuracy == pytest.approx(100 * result["accuracy"], abs=1e-9)
    assert longer.seeds == 1 and longer.iterations == 6 and longer.preset == "laptop"
    grid = pd.read_csv(finished / "results" / "table.csv")
    pd.testing.assert_frame_equal(table[table.run == "grid"].reset_index(drop=True), grid)
    assert f"| 5way1shot | maml | longer (laptop) | 5way1shot | {longer.accuracy:.2f} " \
           "(1 seed) |" in (
        workdir / "results" / "table.md").read_text()
    provenance = json.loads((workdir / "results" / "provenance.json").read_text())
    assert {"cell": "5way1shot", "method": "maml", "run": "longer", "seed": 0} in [
        {key: job[key] for key in ("cell", "method", "run", "seed")}
        for job in provenance["jobs"]]


def _restored_later(folder, *names):
    """Give `names` in `folder` a later modification time, as Snakemake does when it copies an
    interrupted job's update() outputs back (9.27, persistence.restore_output)."""
    later = time.time() + 60
    for name in names:
        os.utime(folder / name, (later, later))


def _assert_an_interrupted_retrain_redoes_nothing(workdir, clone, config, run, rule):
    """In a fresh clone of `workdir` where Snakemake has since finished a job (the table: its
    files keep their own times from then on, see settle_times, and no checksum of the runs'
    inputs is recorded there), the finished `run` as after an interrupted retrain: a checkpoint
    record short of its end (named by the run's train key, as its settings file) and its
    outputs copied back newer. Neither it nor its `rule` job (ensemble, lake_runs) is redone;
    without the retrain in progress, the newer model is a new one and they are."""
    _fresh_clone(workdir, clone)
    snakemake(clone, "--cores", "1", "results/table.md", "--forcerun", "aggregate",
              config=config)
    folder = clone / run
    key = next(folder.glob("train-settings-*.json")).stem.removeprefix("train-settings-")
    state = clone / run.replace("results/runs", "results/state") / f"{key}.npz"
    write_record(state, iteration=5, iterations=10, segments=[])
    _restored_later(folder, "model.npz", "train.json", "curve.csv")
    assert not {"train", "evaluate", rule} & planned_jobs(clone, config=config).keys()
    record_path(state).unlink()
    assert {"evaluate", rule} <= planned_jobs(clone, config=config).keys()


ENSEMBLE = {**SMALL, "extra_runs": {"three": {
    "cell": "5way1shot", "seeds": [0, 1, 2], "method": "maml++", "ensemble": True,
    "overrides": SMALL["overrides"]}}}


def test_an_ensemble_gets_a_labelled_row_beside_its_members(finished, tmp_path):
    workdir = tmp_path / "workflow"
    shutil.copytree(finished, workdir, symlinks=True)
    assert planned_jobs(workdir, config=ENSEMBLE) == {
        "settings_file": 6, "train": 3, "evaluate": 3, "ensemble": 1, "aggregate": 1,
        "all": 1}
    snakemake(workdir, "--cores", "2", config=ENSEMBLE)
    table = pd.read_csv(workdir / "results" / "table.csv")
    members, ensemble = (table[table.run == name].iloc[0] for name in ("three", "three ensemble"))
    result = json.loads((workdir / "results/ensembles/finn/maml++/5way1shot/three.json")
                        .read_text())
    assert len(result["members"]) == 3 and len(result["task_accuracy"]) == SMALL["test_tasks"]
    assert ensemble.accuracy == pytest.approx(100 * result["accuracy"], abs=1e-9)
    assert ensemble.ensemble and not members.ensemble and ensemble.seeds == 3
    assert ensemble.iterations == members.iterations
    assert f"| 5way1shot | maml++ | three ensemble (laptop) | 5way1shot | " \
           f"{ensemble.accuracy:.2f} (ensemble of 3 seeds) |" in (
               workdir / "results" / "table.md").read_text()
    best = (workdir / "results" / "best_per_cell.md").read_text()
    assert "| 5way1shot | headline | maml++, three (laptop) | " in best
    assert f"| 5way1shot | ensemble of its seeds | maml++, three ensemble (laptop) | " \
           f"5way1shot | {ensemble.accuracy:.2f} (ensemble of 3 seeds) |" in best

    # a retrain of a member interrupted in a clone leaves the ensemble alone
    _assert_an_interrupted_retrain_redoes_nothing(
        workdir, tmp_path / "clone", ENSEMBLE, "results/runs/finn/maml++/5way1shot/three-seed1",
        "ensemble")

    # a member without its model (a finished run to retrain): the table of finished runs
    # leaves the ensemble out and names what it waits for, rather than training
    (workdir / "results/runs/finn/maml++/5way1shot/three-seed1/model.npz").unlink()
    (workdir / "results/ensembles/finn/maml++/5way1shot/three.json").unlink()
    finished_only = ("results/table.md", "--config", "table_runs=finished")
    assert planned_jobs(workdir, *finished_only, config=ENSEMBLE) == {"aggregate": 1}
    snakemake(workdir, "--cores", "1", *finished_only, config=ENSEMBLE)
    runs = pd.read_csv(workdir / "results" / "table.csv").run.tolist()
    assert "three" in runs and "three ensemble" not in runs
    assert "- ensemble finn/maml++/5way1shot/three waits for three-seed1 (finished without " \
           "its model: to retrain)\n" in (
        workdir / "results" / "in_progress.md").read_text()
    assert planned_jobs(workdir, config=ENSEMBLE) == {"train": 1, "evaluate": 1, "ensemble": 1,
                                                      "aggregate": 1, "all": 1}


LAKE = {**SMALL, "extra_runs": {"lake": {"cell": "20way1shot", "split": "lake", "seeds": [0, 1],
                                         "overrides": SMALL["overrides"]}}}


def test_lake_split_models_are_scored_on_lakes_runs(finished, tmp_path):
    workdir = tmp_path / "workflow"
    shutil.copytree(finished, workdir, symlinks=True)
    assert planned_jobs(workdir, config=LAKE) == {
        "download_one_shot_runs": 1, "split": 1, "settings_file": 4, "train": 2, "evaluate": 2,
        "lake_runs": 2, "aggregate": 1, "all": 1}
    snakemake(workdir, "--cores", "2", config=LAKE)
    errors = []
    for seed in (0, 1):
        folder = workdir / f"results/runs/lake/maml/20way1shot/lake-seed{seed}"
        assert json.loads((folder / "train.json").read_text())["settings"]["split"] == "lake"
        result = json.loads((folder / "lake_runs.json").read_text())
        assert result["runs"] == 20 and len(result["per_run_accuracy"]) == 20
        # adapted with the steps of the model's own evaluation (train.json has none)
        evaluation = json.loads((folder / "eval.json").read_text())
        assert result["inner_steps"] == evaluation["inner_steps"] == 2
        errors.append(result["error_percent"])
    table = pd.read_csv(workdir / "results" / "lake_runs.csv")
    assert table.model[0] == "this code: maml, lake (lake split, 2 seeds)"
    assert table.error_percent[0] == pytest.approx(np.mean(errors))
    # the published figures classify each query on its own, and stand in that column
    assert list(table.independent_error_percent[1:]) == [4.5, 3.3, 8.0, 13.5, 13.7, 38.8]
    assert table.error_percent[1:].isna().all()
    markdown = (workdir / "results" / "lake_runs.md").read_text()
    assert "| Bayesian Program Learning |  |  | 3.30 |" in markdown and "A test set" in markdown
    main = pd.read_csv(workdir / "results" / "table.csv")
    assert ("20way1shot", "maml", "lake") in set(zip(main.cell, main.method, main.run))

    # a retrain interrupted in a clone leaves the model's score on Lake's runs alone
    _assert_an_interrupted_retrain_redoes_nothing(
        workdir, tmp_path / "clone", LAKE, "results/runs/lake/maml/20way1shot/lake-seed0",
        "lake_runs")


def test_schema_fills_defaults(tmp_path):
    """A config with only the data source plans the paper's four cells and three seeds."""
    jobs = planned_jobs(tmp_path, config={"data": SMALL["data"]})
    assert jobs["train"] == 12 and jobs["evaluate"] == 12


RESUME = {**SMALL, "methods": ["maml"], "cells": ["5way1shot"], "seeds": [0],
          "overrides": {**SMALL["overrides"], "iterations": 150, "checkpoint_every": 5,
                        "val_every": 50}}


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a shell starts background commands (`... &`, e.g. a CI script
    run that way) with SIGINT ignored, which every child inherits, and the interrupt then never
    arrives."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_a_checkpoint(workdir, config=RESUME, targets=()) -> subprocess.Popen:
    """Start the pipeline on `config` (its `targets`, default: all) in its own session; return
    once seed 0's training checkpointed."""
    (workdir / "test-config.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
         "--configfile", str(workdir / "test-config.yaml"), "--cores", "1", *targets],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=_default_sigint)
    state = workdir / "results" / "state" / "finn" / "maml" / "5way1shot" / "seed0"
    deadline = time.time() + 300
    while not list(state.glob("*.npz")) and time.time() < deadline:
        time.sleep(0.2)
    return process


def _interrupt_during_training(workdir, sig):
    """Start the pipeline, wait for a training checkpoint, then deliver `sig` to it all."""
    process = _start_and_wait_for_a_checkpoint(workdir)
    time.sleep(1.0)
    os.killpg(process.pid, sig)
    process.wait(timeout=60)
    assert not (workdir / "results/runs/finn/maml/5way1shot/seed0/train.json").exists(), \
        "training finished before it could be interrupted"


def test_killing_snakemake_alone_needs_only_the_same_command_again(tmp_path, uninterrupted):
    """kill -9 of the Snakemake process while its training job runs on and finishes: the
    outputs are marked incomplete, and the next run (after run.sh's unlock) reruns that job."""
    process = _start_and_wait_for_a_checkpoint(tmp_path)
    os.kill(process.pid, signal.SIGKILL)  # Snakemake alone; its job runs on
    process.wait(timeout=60)
    summary = tmp_path / "results/runs/finn/maml/5way1shot/seed0/train.json"
    deadline = time.time() + 300
    while not summary.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert summary.exists(), "the orphaned training job did not finish"
    time.sleep(2)
    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "--cores", "1")  # no --rerun-incomplete: the workflow profile says so
    pd.testing.assert_frame_equal(_curve(tmp_path), _curve(uninterrupted))
    assert (tmp_path / "results" / "table.md").exists()


def _curve(workdir):
    frame = pd.read_csv(workdir / "results/runs/finn/maml/5way1shot/seed0/curve.csv")
    return frame.drop(columns="elapsed_s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, "--cores", "1", config=RESUME)
    return workdir


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupted_training_resumes_and_matches(tmp_path, uninterrupted, sig):
    _interrupt_during_training(tmp_path, sig)
    if sig == signal.SIGKILL:  # a killed Snakemake leaves its lock; run.sh clears it likewise
        snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "--cores", "1")
    summary = json.loads((tmp_path / "results/runs/finn/maml/5way1shot/seed0/train.json")
                         .read_text())
    assert 0 < summary["resumed_from"] < 150
    pd.testing.assert_frame_equal(_curve(tmp_path), _curve(uninterrupted))
    ours = json.loads((tmp_path / "results/runs/finn/maml/5way1shot/seed0/eval.json").read_text())
    theirs = json.loads((uninterrupted / "results/runs/finn/maml/5way1shot/seed0/eval.json")
                        .read_text())
    assert ours["task_accuracy"] == theirs["task_accuracy"]


TWO_SEEDS = {**RESUME, "seeds": [0, 1]}


def _git(workdir, *args):
    subprocess.run(["git", "-C", str(workdir), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


def _commit_first_checkpoint_and_clone(first, clone, message, **start):
    """Run the pipeline in `first` until seed 0's first checkpoint, kill it, commit its
    results with that checkpoint and clone the commit: a session ending mid-run. Returns the
    checkpoint's record and the clone."""
    process = _start_and_wait_for_a_checkpoint(first, **start)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    state = next((first / "results/state/finn/maml/5way1shot/seed0").glob("*.npz"))
    record = json.loads(state.with_suffix(".json").read_text())
    assert 0 < record["iteration"] < record["iterations"] == 150
    _git(first, "init", "-q")
    _git(first, "add", "results", "test-config.yaml")
    _git(first, "commit", "-q", "-m", message)
    subprocess.run(["git", "clone", "-q", str(first), str(clone)], check=True)
    return record, clone


def test_a_committed_checkpoint_resumes_in_a_fresh_clone(tmp_path, uninterrupted):
    """A run that outlives a session: stopped after its first checkpoint, results/ committed
    (the checkpoint with it), then a fresh clone's pipeline leaves it out of the table while in
    progress and resumes it to the uninterrupted run's curve; every segment is recorded."""
    first = tmp_path / "first"
    first.mkdir()
    snakemake(first, "--cores", "1", "results/runs/finn/maml/5way1shot/seed1/eval.json",
              config=TWO_SEEDS)
    (first / "test-config.yaml").write_text(yaml.safe_dump(TWO_SEEDS))
    record, clone = _commit_first_checkpoint_and_clone(
        first, tmp_path / "clone", "a run in progress", config=TWO_SEEDS)
    # in progress: a table of the finished seed only, and nothing finished is redone
    finished_only = ("results/table.md", "--config", "table_runs=finished")
    assert planned_jobs(clone, *finished_only) == {"aggregate": 1}
    snakemake(clone, "--cores", "1", *finished_only)
    table = pd.read_csv(clone / "results/table.csv")
    assert table["per_seed"].str.count(";").tolist() == [0]  # one seed
    assert "finn/maml/5way1shot/seed0 | " in (clone / "results/in_progress.md").read_text()
    snakemake(clone, "--cores", "1")
    summary = json.loads((clone / "results/runs/finn/maml/5way1shot/seed0/train.json").read_text())
    assert summary["resumed_from"] == record["iteration"] > 0
    pd.testing.assert_frame_equal(_curve(clone), _curve(uninterrupted))
    segments = summary["segments"]
    assert [(s["from_iteration"], s["to_iteration"]) for s in segments] == [
        (0, record["iteration"]), (record["iteration"], 150)]
    assert all(s["machine"]["kind"] and s["cpu_s"] > 0 for s in segments)
    assert json.loads((clone / "results/provenance.json").read_text())["jobs"][0]["segments"]
    assert "None." in (clone / "results/in_progress.md").read_text()
    assert pd.read_csv(clone / "results/table.csv")["per_seed"].str.count(";").tolist() == [1]


def test_a_retrain_of_a_finished_run_keeps_its_row_until_it_ends(tmp_path, uninterrupted):
    """A committed run without its model (as some November runs) is retrained over more than
    one session: with the retrain's checkpoint committed, a fresh clone's table keeps the run's
    row (also after the retrain was interrupted there), in_progress.md names it a retrain,
    asking for the model resumes it to the curve the run had, and the new model is then
    evaluated."""
    first = tmp_path / "first"
    shutil.copytree(uninterrupted, first, symlinks=True,
                    ignore=shutil.ignore_patterns(".snakemake", "logs"))
    run = "results/runs/finn/maml/5way1shot/seed0"
    (first / run / "model.npz").unlink()
    shutil.rmtree(first / "results/state")  # the November runs committed no checkpoint
    (first / "results/table.md").unlink()  # for the clone to make it
    record, clone = _commit_first_checkpoint_and_clone(
        first, tmp_path / "clone", "a retrain in progress", targets=[f"{run}/model.npz"])
    assert (clone / run / "train.json").exists()  # Snakemake keeps update() outputs
    finished_only = ("results/table.md", "--config", "table_runs=finished")
    assert planned_jobs(clone, *finished_only) == {"aggregate": 1}
    snakemake(clone, "--cores", "1", *finished_only)
    assert len(pd.read_csv(clone / "results/table.csv")) == 1  # the run keeps its row
    assert "finn/maml/5way1shot/seed0 (retrain) | " in (
        clone / "results/in_progress.md").read_text()
    # the retrain interrupted here: its update() outputs copied back newer must not make the
    # run's evaluation look outdated
    _restored_later(clone / run, "train.json", "curve.csv")
    assert not {"train", "evaluate"} & planned_jobs(clone, *finished_only).keys()
    snakemake(clone, "--cores", "1", "resources/omniglot/omniglot28.npz",
              "resources/omniglot/splits/finn.json")
    snakemake(clone, "--cores", "1", f"{run}/model.npz")
    summary = json.loads((clone / run / "train.json").read_text())
    assert summary["resumed_from"] == record["iteration"] > 0
    pd.testing.assert_frame_equal(_curve(clone), _curve(uninterrupted))
    assert planned_jobs(clone, f"{run}/eval.json") == {"evaluate": 1}  # the new model
