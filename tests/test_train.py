"""Training on the real data: learning, determinism, resume and what it refuses, checkpoints,
the meta-learning-rate schedule, the command line's output folder."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maml.evaluate import evaluate
from maml.files import load_arrays
from maml.settings import SettingsError, resolve
from maml.train import meta_lr
from tiny_runs import TINY, run


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


def test_resume_with_other_settings_is_refused(prepared, tmp_path):
    state = tmp_path / "checkpoint.npz"
    run(prepared, tmp_path / "a", 10, state_path=state)
    with pytest.raises(SettingsError, match="checkpoint.npz: written by a run with other"):
        run(prepared, tmp_path / "b", 20, state_path=state, resume=True, s={"inner_lr": 0.1})
    assert not (tmp_path / "b" / "train.json").exists()


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
