"""Evaluation: its output file, the interval, the command line's evaluate with a model's own
settings, task counts, ensembles."""

import json
import subprocess
import sys

import numpy as np
import pytest

from maml.evaluate import confidence_interval, evaluate, evaluate_ensemble
from maml.settings import resolve
from tiny_runs import TINY, run


def test_evaluation_output(prepared, tmp_path):
    run(prepared, tmp_path, 2)
    settings = resolve(5, 1, **{**TINY, "iterations": 2})
    result = evaluate(tmp_path / "model.npz", prepared["data_path"], prepared["splits"]["finn"],
                      settings, num_tasks=12, test_seed=3, progress=False)
    assert len(result["per_step_accuracy"]) == settings["test_inner_steps"] + 1
    assert len(result["per_step_ci95"]) == settings["test_inner_steps"] + 1
    tasks = np.array(result["task_accuracy"])
    assert tasks.shape == (12,) and ((0 <= tasks) & (tasks <= 1)).all()
    assert result["accuracy"] == pytest.approx(tasks.mean())
    assert result["ci95"] == pytest.approx(1.96 * tasks.std() / np.sqrt(12))
    again = evaluate(tmp_path / "model.npz", prepared["data_path"], prepared["splits"]["finn"],
                     settings, num_tasks=12, test_seed=3, progress=False)
    assert {**again, "wall_time_s": 0} == {**result, "wall_time_s": 0}


def test_confidence_interval_formula():
    values = np.array([[1.0, 0.5], [0.0, 0.5], [1.0, 0.5], [0.0, 0.5]])
    np.testing.assert_allclose(confidence_interval(values), [1.96 * 0.5 / 2, 0.0])


def test_cli_train_then_evaluate(prepared, tmp_path):
    """The reference reproduction's flags, then evaluate writes per-step accuracies."""
    out = tmp_path / "run"
    common = ["--data", str(prepared["data_path"]),
              "--split-file", str(prepared["splits"]["finn"])]
    subprocess.run([sys.executable, "-m", "maml", "train", "--n_way", "5", "--k_spt", "1",
                    "--k_query", "2", "--task_num", "2", "--glob_update_step", "1",
                    "--glob_update_step_test", "2", "--glob_meta_lr", "0.001",
                    "--glob_base_lr", "0.4", "--epochs", "3", "--val_every", "3",
                    "--val_tasks", "2", "--out-dir", str(out), *common], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "maml", "evaluate", "--model", str(out / "model.npz"),
                    "--num-tasks", "5", "--out", str(tmp_path / "eval.json"), *common],
                   check=True, capture_output=True)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["num_tasks"] == 5 and len(result["per_step_accuracy"]) == 3


def test_cli_evaluate_uses_the_models_settings_and_refuses_others(prepared, tmp_path):
    common = ["--data", str(prepared["data_path"]),
              "--split-file", str(prepared["splits"]["finn"])]
    subprocess.run([sys.executable, "-m", "maml", "train", "--n_way", "20", "--k_spt", "1",
                    "--k_query", "1", "--task_num", "2", "--glob_update_step", "1",
                    "--glob_base_lr", "0.1", "--epochs", "2", "--val_every", "2",
                    "--val_tasks", "2", "--out-dir", str(tmp_path), *common], check=True,
                   capture_output=True)
    evaluate_cmd = [sys.executable, "-m", "maml", "evaluate", "--model",
                    str(tmp_path / "model.npz"), "--num-tasks", "3", "--out",
                    str(tmp_path / "eval.json"), *common]
    wrong = subprocess.run([*evaluate_cmd, "--n_way", "5"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "--n_way 5 does not match the model" in wrong.stderr
    assert not (tmp_path / "eval.json").exists()
    subprocess.run([*evaluate_cmd, "--glob_update_step_test", "2"], check=True,
                   capture_output=True)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["n_way"] == 20 and result["inner_lr"] == 0.1 and result["inner_steps"] == 2


@pytest.mark.parametrize("num_tasks", ["0", "100000000000"])
def test_cli_evaluate_refuses_impossible_task_counts(prepared, tmp_path, num_tasks):
    run(prepared, tmp_path, 2)
    result = subprocess.run([sys.executable, "-m", "maml", "evaluate", "--model",
                             str(tmp_path / "model.npz"), "--num-tasks", num_tasks,
                             "--data", str(prepared["data_path"]),
                             "--split-file", str(prepared["splits"]["finn"])],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert f"num_tasks: a number of tasks from 1 to 100000, got {num_tasks}" in result.stderr
    assert not (tmp_path / "eval.json").exists()


def test_an_ensemble_of_one_model_scores_as_the_model_and_two_differ(prepared, tmp_path):
    """Averaging probabilities: one member gives the model's own answers; two members of
    different seeds give the same tasks their own (averaged) answers."""
    paths = []
    for seed in (0, 1):
        run(prepared, tmp_path / f"s{seed}", 10, s={"seed": seed})
        paths.append(tmp_path / f"s{seed}" / "model.npz")
    settings = resolve(5, 1, **{**TINY, "iterations": 10})
    alone = evaluate(paths[0], prepared["data_path"], prepared["splits"]["finn"], settings, 20,
                     progress=False)
    one = evaluate_ensemble(paths[:1], prepared["data_path"], prepared["splits"]["finn"],
                            settings, 20, progress=False)
    np.testing.assert_allclose(one["task_accuracy"], alone["task_accuracy"], atol=1e-6)
    two = evaluate_ensemble(paths, prepared["data_path"], prepared["splits"]["finn"], settings,
                            20, progress=False)
    assert two["members"] == [str(p) for p in paths] and len(two["task_accuracy"]) == 20
    assert two["task_accuracy"] != one["task_accuracy"]
