"""Training and evaluation on the real data: learning, determinism, resume, evaluation output."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maml.evaluate import confidence_interval, evaluate, evaluate_ensemble
from maml.files import load_arrays
from maml.settings import SettingsError, resolve
from maml.pipeline_config import parse_run, run_name
from maml.train import meta_lr, train

TINY = dict(meta_batch=2, k_query=2, test_k_query=2, inner_steps=1, inner_lr=0.4,
            test_inner_steps=2, val_inner_steps=2, val_every=5, val_tasks=4, checkpoint_every=10)


def run(prepared, out, iterations, **kwargs):
    settings = resolve(5, 1, **{**TINY, "iterations": iterations, **kwargs.pop("s", {})})
    return train(settings, prepared["data_path"], prepared["splits"]["finn"], out,
                 progress=False, **kwargs)


def curve(out):
    lines = (out / "curve.csv").read_text().splitlines()
    return [line.split(",")[:4] for line in lines]  # without the wall clock


def test_short_run_learns_well_above_chance(prepared, tmp_path):
    settings = dict(meta_batch=4, k_query=5, test_k_query=5, val_every=40, val_tasks=40,
                    val_inner_steps=3)
    summary = run(prepared, tmp_path, 40, s=settings)
    assert summary["best_val_accuracy"] > 0.45  # chance is 0.2


def test_same_seed_same_losses(prepared, tmp_path):
    run(prepared, tmp_path / "a", 6)
    run(prepared, tmp_path / "b", 6)
    run(prepared, tmp_path / "c", 6, s={"seed": 1})
    assert curve(tmp_path / "a") == curve(tmp_path / "b")
    assert curve(tmp_path / "a") != curve(tmp_path / "c")


@pytest.mark.parametrize("method", ["maml", "maml++"])
def test_resume_equals_straight_run(prepared, tmp_path, method):
    """With MAML++, the learned rates and the multi-step loss's annealing resume too. (The
    cosine schedule is off here because the first leg is a 10-iteration run, whose schedule
    differs; the schedule is a function of the iteration alone, tested below.)"""
    s = {"method": method}
    if method == "maml++":
        s.update(inner_steps=2, msl_iterations=15, cosine_meta_lr=False)
    run(prepared, tmp_path / "straight", 20, s=s)
    state = tmp_path / "state" / "checkpoint.npz"
    run(prepared, tmp_path / "resumed", 10, state_path=state, s=s)
    # a new process state: resume from the checkpoint and finish the 20 steps
    run(prepared, tmp_path / "resumed", 20, state_path=state, resume=True, s=s)
    assert curve(tmp_path / "straight") == curve(tmp_path / "resumed")
    a = load_arrays(tmp_path / "straight" / "model.npz")
    b = load_arrays(tmp_path / "resumed" / "model.npz")
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    checkpoint = json.loads(str(load_arrays(state)["meta"]))
    assert checkpoint["iteration"] == 20


def test_compare_curve_tells_a_repeated_run_from_another(prepared, tmp_path):
    """The reviewer's check of a committed long run: a rerun stopped early (its checkpoint)
    against the finished run's curve.csv, through the command line."""
    run(prepared, tmp_path / "done", 20)
    state = tmp_path / "state" / "checkpoint.npz"
    run(prepared, tmp_path / "stopped", 10, state_path=state)
    run(prepared, tmp_path / "other", 10, state_path=tmp_path / "other.npz", s={"seed": 1})

    def compare(checkpoint, curve_csv):
        return subprocess.run([sys.executable, "-m", "maml", "compare-curve", "--state",
                               str(checkpoint), "--curve", str(curve_csv)],
                              capture_output=True, text=True)

    same = compare(state, tmp_path / "done" / "curve.csv")
    assert same.returncode == 0 and "identical: the checkpoint's 10 rows" in same.stdout
    other = compare(tmp_path / "other.npz", tmp_path / "done" / "curve.csv")
    assert other.returncode == 1 and "differ: iteration 1:" in other.stderr
    run(prepared, tmp_path / "stopped", 20, state_path=state, resume=True)
    (tmp_path / "short.csv").write_text("".join(
        (tmp_path / "done" / "curve.csv").read_text().splitlines(True)[:6]))
    short = compare(state, tmp_path / "short.csv")
    assert short.returncode == 1 and "ends after 5 rows, the checkpoint has 20" in short.stderr
    (tmp_path / "empty.csv").write_text("")
    empty = compare(state, tmp_path / "empty.csv")
    assert empty.returncode == 2 and "empty.csv: not a curve.csv of this project" in empty.stderr
    missing = compare(tmp_path / "nowhere.npz", tmp_path / "done" / "curve.csv")
    assert missing.returncode == 2 and "nowhere.npz: no such file" in missing.stderr
    model = compare(tmp_path / "done" / "model.npz", tmp_path / "done" / "curve.csv")
    assert model.returncode == 2 and "model.npz: not a training checkpoint" in model.stderr
    swapped = compare(tmp_path / "done" / "curve.csv", state)
    assert swapped.returncode == 2 and "the two arguments look swapped" in swapped.stderr
    assert "delete" not in swapped.stderr  # not advice to delete the user's curve
    # the machines are named: both runs here, on one CPU kind
    assert "both made on" in other.stderr and "the same CPU kind" in other.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "curve.csv").write_text((tmp_path / "done" / "curve.csv").read_text())
    summary = json.loads((tmp_path / "done" / "train.json").read_text())
    for segment in summary["segments"]:
        segment["machine"]["kind"] = "Intel Xeon (AVX-512, AMX)"
    (elsewhere / "train.json").write_text(json.dumps(summary))
    across = compare(tmp_path / "other.npz", elsewhere / "curve.csv")
    assert across.returncode == 1 and "the curve on Intel Xeon (AVX-512, AMX)" in across.stderr
    assert "other CPU kinds take other float32 paths" in across.stderr


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


def test_maml_plus_plus_learns_its_rates_and_evaluates(prepared, tmp_path):
    settings = dict(method="maml++", meta_batch=4, k_query=5, test_k_query=5, val_every=20,
                    val_tasks=20, val_inner_steps=3)
    summary = run(prepared, tmp_path, 20, s=settings)
    assert summary["best_val_accuracy"] > 0.35  # chance is 0.2
    final = load_arrays(tmp_path / "model.npz")
    assert final["lslr.conv0.weight"].shape == (1,)
    assert not np.allclose(final["lslr.conv0.weight"], TINY["inner_lr"])  # learned
    result = evaluate(tmp_path / "model.npz", prepared["data_path"], prepared["splits"]["finn"],
                      summary["settings"], num_tasks=8, progress=False)
    assert result["method"] == "maml++" and len(result["per_step_accuracy"]) == 3


def test_cosine_meta_lr_and_first_order_until():
    settings = resolve(5, 1, method="maml++", preset="laptop", iterations=100, meta_lr=0.001,
                       meta_lr_min=0.0001)
    assert meta_lr(settings, 0) == pytest.approx(0.001)
    assert meta_lr(settings, 50) == pytest.approx(0.00055)
    assert meta_lr(settings, 100) == pytest.approx(0.0001)
    assert meta_lr({**settings, "cosine_meta_lr": False}, 50) == 0.001


def test_methods_resolve_to_their_families():
    fomaml = resolve(20, 1, method="fomaml", preset="laptop")
    maml = resolve(20, 1, method="maml", preset="laptop")
    assert fomaml["first_order"] and not maml["first_order"]
    assert {k: v for k, v in fomaml.items() if k not in ("first_order", "method")} == {
        k: v for k, v in maml.items() if k not in ("first_order", "method")}
    paper = resolve(5, 1, preset="paper")
    assert not paper["bn_scale"] and paper["inner_adapts"] == ["conv", "fc"]  # cbfinn/maml's
    plus = resolve(20, 1, method="maml++", preset="paper")
    assert plus["meta_batch"] == 8 and plus["inner_steps"] == 5 and plus["iterations"] == 50000
    assert plus["lslr"] and plus["per_step_bn"] and plus["multi_step_loss"]
    assert plus["inner_adapts"] == ["conv", "fc"] and plus["cosine_meta_lr"]
    with pytest.raises(SettingsError, match="method maml\\+\\+ has no preset 'reference'"):
        resolve(5, 1, method="maml++", preset="reference")


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


def test_cli_rejects_impossible_cell(prepared):
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--n_way", "5",
                             "--k_spt", "10", "--k_query", "15"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "k_shot + k_query = 25 exceeds" in result.stderr


@pytest.mark.parametrize("seed,label,name", [(0, None, "seed0"), (12, None, "seed12"),
                                             (3, "long", "long-seed3"),
                                             (0, "seed_study", "seed_study-seed0")])
def test_run_names_round_trip(seed, label, name):
    assert run_name(seed, label) == name
    assert parse_run(name) == (label, seed)


@pytest.mark.parametrize("name", ["seed", "Long-seed0", "long_seed0", "-seed0", "seed0x"])
def test_bad_run_name_rejected(name):
    with pytest.raises(SettingsError, match="not a run name"):
        parse_run(name)


def test_resume_with_other_settings_is_refused(prepared, tmp_path):
    state = tmp_path / "checkpoint.npz"
    run(prepared, tmp_path / "a", 10, state_path=state)
    with pytest.raises(SettingsError, match="checkpoint.npz: written by a run with other"):
        run(prepared, tmp_path / "b", 20, state_path=state, resume=True, s={"inner_lr": 0.1})
    assert not (tmp_path / "b" / "train.json").exists()


def test_cli_rejects_zero_way_and_zero_shot(prepared):
    for flag in ("--n_way", "--k_spt"):
        result = subprocess.run([sys.executable, "-m", "maml", "train", flag, "0"],
                                capture_output=True, text=True)
        assert result.returncode == 2, flag
        assert "must be positive and finite, got 0" in result.stderr


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


def test_names_and_limits_are_stated_once():
    """Methods are presets.yaml's families, splits the split sizes' keys; the schema names
    neither (the config checks use these) and states the task limit as settings does."""
    import yaml

    from maml.settings import MAX_TASKS, METHODS, SPLITS

    families = yaml.safe_load((Path(__file__).parents[1] / "src/maml/presets.yaml").read_text())
    assert METHODS == tuple(families) and SPLITS == ("finn", "lake", "lake_alphabets")
    text = (Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    schema = yaml.safe_load(text)
    enums = [value for entry in schema["properties"].values() for value in entry.get("enum", [])]
    assert enums and not set(enums) & {*METHODS, *SPLITS} and "68d2efa1" not in text
    assert schema["properties"]["test_tasks"]["maximum"] == MAX_TASKS


def test_cli_train_writes_outside_the_committed_results_keyed_by_its_settings(prepared,
                                                                               tmp_path):
    """Without --out-dir, output/runs/<split>/<method>/<cell>/seed<N>-<settings hash>/: a run
    with other settings (here another inner rate) gets another folder, never replacing the
    first (issue 44, item 4)."""
    common = ["train", "--epochs", "2", "--task_num", "2", "--k_query", "1", "--val_every",
              "2", "--val_tasks", "2", "--glob_update_step_test", "1", "--data",
              str(prepared["data_path"]), "--split-file", str(prepared["splits"]["finn"])]
    for extra in ([], ["--glob_base_lr", "0.1"]):
        subprocess.run([sys.executable, "-m", "maml", *common, *extra], cwd=tmp_path,
                       check=True, capture_output=True)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    folders = sorted({str(Path(p).parent) for p in written})
    assert len(folders) == 2 and all(
        re.fullmatch(r"output/runs/finn/maml/5way1shot/seed0-[0-9a-f]{12}", f) for f in folders)
    assert written == [f"{folder}/{name}" for folder in folders for name in
                       ("checkpoint.json", "checkpoint.npz", "curve.csv", "model.npz",
                        "train.json")]
    ignored = subprocess.run(["git", "check-ignore", "-q", "output/runs/x/checkpoint.npz"],
                             cwd=Path(__file__).resolve().parents[1])
    assert ignored.returncode == 0


def test_cli_train_state_is_an_npz_whose_record_beside_it_is_its_own(prepared, tmp_path):
    """--state names an .npz checkpoint; its progress record <name>.json never replaces a
    user's file (issue 44, item 3)."""
    common = [sys.executable, "-m", "maml", "train", "--epochs", "2", "--task_num", "2",
              "--data", str(prepared["data_path"]), "--split-file",
              str(prepared["splits"]["finn"]), "--out-dir", str(tmp_path / "out")]
    result = subprocess.run([*common, "--state", str(tmp_path / "st.json")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "a checkpoint is an .npz file" in result.stderr
    (tmp_path / "mine.json").write_text('{"my": "notes"}')
    result = subprocess.run([*common, "--state", str(tmp_path / "mine.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "mine.json, where its progress record goes" in result.stderr
    assert (tmp_path / "mine.json").read_text() == '{"my": "notes"}'
    assert not (tmp_path / "out").exists()


def test_an_unreadable_checkpoint_is_moved_aside_and_the_run_starts_again(prepared, tmp_path):
    run(prepared, tmp_path / "straight", 10)
    state = tmp_path / "state" / "checkpoint.npz"
    state.parent.mkdir()
    state.write_bytes(b"not a zip file")
    summary = run(prepared, tmp_path / "again", 10, state_path=state, resume=True)
    assert summary["resumed_from"] == 0
    assert curve(tmp_path / "again") == curve(tmp_path / "straight")
    assert (state.parent / "checkpoint.npz.unreadable").read_bytes() == b"not a zip file"


def test_a_cosine_schedule_is_not_resumed_with_another_length(prepared, tmp_path):
    state = tmp_path / "checkpoint.npz"
    cosine = {"cosine_meta_lr": True, "meta_lr_min": 1e-5}
    run(prepared, tmp_path / "a", 10, state_path=state, s=cosine)
    with pytest.raises(SettingsError, match="written by a run with other"):
        run(prepared, tmp_path / "b", 20, state_path=state, resume=True, s=cosine)


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("n_way: 5\nk_shot: [1\nmeta_batch: 4\n")
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--config", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}: line 3, column 11: not valid YAML" in result.stderr


def test_a_settings_file_of_a_run_is_a_config(prepared, tmp_path):
    """A committed train-settings JSON (meta_lr_min: 1e-05, which YAML 1.1 reads as text)
    retrains its run from the command line; bad JSON names the file and line."""
    repo = Path(__file__).resolve().parents[1]
    (committed,) = (repo / "results/runs/finn/maml/5way1shot/seed0").glob("train-settings-*.json")
    settings = json.loads(committed.read_text())
    short = tmp_path / "settings.json"
    short.write_text(json.dumps({**settings, "iterations": 2, "val_every": 2,
                                 "checkpoint_every": 2, "val_tasks": 2}))
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--config", str(short),
                             "--data", str(prepared["data_path"]), "--split-file",
                             str(prepared["splits"]["finn"]), "--out-dir", str(tmp_path / "run")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    recorded = json.loads((tmp_path / "run" / "train.json").read_text())["settings"]
    assert recorded["meta_lr_min"] == 1e-05 and recorded["inner_adapts"] == ["conv", "bn", "fc"]
    short.write_text('{"n_way": 5,\n "k_shot": }')
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--config", str(short)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{short}: line 2, column 12: not valid JSON" in result.stderr


def test_run_sh_checks_config_files_before_snakemake(tmp_path):
    """Snakemake says only 'Config file is not valid JSON or YAML'."""
    bad = tmp_path / "extra.yaml"
    bad.write_text("seeds: [0\n")
    repo = Path(__file__).resolve().parents[1]
    for args in (["--configfile", "config/offline-data.yaml", str(bad)],
                 [f"--configfile={bad}"]):
        result = subprocess.run([str(repo / "run.sh"), "pipeline", *args, "-n"],
                                capture_output=True, text=True)
        assert result.returncode == 2, args
        assert f"error: {bad}: line 2" in result.stderr, result.stderr


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


def test_test_time_settings_equal_their_training_counterparts_in_every_preset():
    """What lets a pipeline model's train.json (training settings only) give evaluate,
    predict and lake-runs its test-time settings (settings.with_defaults)."""
    from maml.settings import TEST_COUNTERPARTS, presets, with_defaults

    checked = 0
    for method, family in presets().items():
        for preset in family["presets"]:
            for n_way in (5, 20):
                for k_shot in (1, 5):
                    settings = resolve(n_way, k_shot, preset, method)
                    for key, counterpart in TEST_COUNTERPARTS.items():
                        assert settings[key] == settings[counterpart], (method, preset, key)
                    training_only = {k: v for k, v in settings.items()
                                     if k not in TEST_COUNTERPARTS}
                    assert with_defaults(training_only) == {**settings, "preset": preset}
                    checked += 1
    assert checked == 4 * sum(len(family["presets"]) for family in presets().values())


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
