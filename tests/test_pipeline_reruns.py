"""What reruns when: a fresh clone, a changed setting, a new seed, method or run, edited
scripts; config checks before any job; extra runs, ensembles and Lake-split models."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from maml.progress import record_path, write_record
from maml.settings import METHODS, SPLITS

from workflow_runs import (SMALL, code_copy, fresh_clone, planned_jobs, restored_later,
                           snakemake)


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
    clone = fresh_clone(finished, tmp_path / "clone")
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
    code = code_copy(tmp_path / "code")
    settings = code / "src" / "maml" / "settings.py"
    text = settings.read_text()
    assert '    "method": "maml",\n' in text
    settings.write_text(text.replace('    "method": "maml",\n',
                                     '    "method": "maml",\n    "new_switch": False,\n', 1))
    workdir = tmp_path / "workdir"
    shutil.copytree(finished, workdir, symlinks=True)
    assert planned_jobs(workdir, config=SMALL, code=code) == {}
    assert planned_jobs(fresh_clone(finished, tmp_path / "clone"), config=SMALL,
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
    code = code_copy(tmp_path / "code")
    presets = code / "src" / "maml" / "presets.yaml"
    # (its own laptop preset, MAML's by its anchor: `like: maml` would take MAML's paper
    # preset too, which adapts the body, and `common` is refused where a preset says otherwise)
    presets.write_text(presets.read_text() + "\nthrowaway:  # a test's family: the head adapts\n"
                       "  colour: C7\n  common: {inner_adapts: [fc]}\n"
                       "  laptop: {<<: *laptop}\n")
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
    clone = fresh_clone(finished, tmp_path / "clone")
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
    code = code_copy(tmp_path / "code")
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
    clone = fresh_clone(finished, tmp_path / "clone")
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


def _assert_an_interrupted_retrain_redoes_nothing(workdir, clone, config, run, rule):
    """In a fresh clone of `workdir` where Snakemake has since finished a job (the table: its
    files keep their own times from then on, see settle_times, and no checksum of the runs'
    inputs is recorded there), the finished `run` as after an interrupted retrain: a checkpoint
    record short of its end (named by the run's train key, as its settings file) and its
    outputs copied back newer. Neither it nor its `rule` job (ensemble, lake_runs) is redone;
    without the retrain in progress, the newer model is a new one and they are."""
    fresh_clone(workdir, clone)
    snakemake(clone, "--cores", "1", "results/table.md", "--forcerun", "aggregate",
              config=config)
    folder = clone / run
    key = next(folder.glob("train-settings-*.json")).stem.removeprefix("train-settings-")
    state = clone / run.replace("results/runs", "results/state") / f"{key}.npz"
    write_record(state, iteration=5, iterations=10, segments=[])
    restored_later(folder, "model.npz", "train.json", "curve.csv")
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
