"""Wrong input refused early with a message that names it (issue: hardening, second round);
each test here failed on the code before its fix."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from maml.files import load_arrays
from maml.progress import DivergenceError
from maml.settings import SettingsError, resolve
from maml.train import train

TINY = dict(meta_batch=2, k_query=2, test_k_query=2, inner_steps=1, inner_lr=0.4,
            test_inner_steps=2, val_inner_steps=2, val_every=2, val_tasks=4, checkpoint_every=2)


def maml(*args):
    return subprocess.run([sys.executable, "-m", "maml", *map(str, args)], capture_output=True,
                          text=True)


@pytest.mark.parametrize("key", ["meta_lr", "inner_lr", "meta_lr_min"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_a_non_finite_or_negative_rate_is_refused(key, value):
    with pytest.raises(SettingsError, match=f"{key}: must be positive and finite"):
        resolve(5, 1, **{key: value})


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(prepared, tmp_path):
    """A rate so large that the loss overflows after the first updates: an error naming the
    iteration, no model file, and the checkpoints written before it finite."""
    settings = resolve(5, 1, **{**TINY, "iterations": 6, "meta_lr": 1e30,
                                "checkpoint_every": 1})
    state = tmp_path / "state.npz"
    with pytest.raises(DivergenceError, match=r"training diverged at iteration [2-6]: a non-"):
        train(settings, prepared["data_path"], prepared["splits"]["finn"], tmp_path,
              state_path=state, progress=False)
    assert not (tmp_path / "model.npz").exists() and not (tmp_path / "train.json").exists()
    arrays = load_arrays(state)
    assert all(np.isfinite(a).all() for k, a in arrays.items() if k != "meta")
    assert 1 <= json.loads(str(arrays["meta"]))["iteration"] < 6


def test_cli_divergence_is_one_line_and_a_failure(prepared, tmp_path):
    result = maml("train", "--epochs", 4, "--task_num", 2, "--val_every", 2, "--val_tasks", 4,
                  "--checkpoint_every", 2, "--glob_update_step", 1, "--glob_update_step_test", 1,
                  "--glob_meta_lr", "1e30", "--data", prepared["data_path"],
                  "--split-file", prepared["splits"]["finn"], "--out-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "error: training diverged at iteration" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "model.npz").exists()


@pytest.mark.parametrize("rate", ["nan", "-1", "inf"])
def test_predict_refuses_a_non_finite_or_negative_inner_rate(prepared, tmp_path, rate):
    settings = resolve(5, 1, **{**TINY, "iterations": 2})
    train(settings, prepared["data_path"], prepared["splits"]["finn"], tmp_path, progress=False)
    result = maml("predict", "--model", tmp_path / "model.npz", "--support", tmp_path,
                  "--query", tmp_path, "--inner-lr", rate)
    assert result.returncode == 2
    assert "inner-lr: must be positive and finite" in result.stderr


def test_a_split_file_of_another_split_is_refused(prepared, tmp_path):
    settings = resolve(5, 1, **{**TINY, "iterations": 2, "split": "finn"})
    with pytest.raises(Exception, match="lake.json: the 'lake' split, but the settings say "
                                        "split 'finn'"):
        train(settings, prepared["data_path"], prepared["splits"]["lake"], tmp_path,
              progress=False)
    assert not (tmp_path / "train.json").exists()


@pytest.mark.parametrize("flags,message", [
    (["--glob_update_step_test", "-1"], "test_inner_steps: must be positive"),
    (["--test_k_query", "20"], "k_shot + test_k_query = 21 exceeds"),
    (["--test_k_query", "0"], "test_k_query: must be positive"),
])
def test_cli_evaluate_refuses_impossible_test_settings(prepared, tmp_path, flags, message):
    settings = resolve(5, 1, **{**TINY, "iterations": 2})
    train(settings, prepared["data_path"], prepared["splits"]["finn"], tmp_path, progress=False)
    result = maml("evaluate", "--model", tmp_path / "model.npz", "--data",
                  prepared["data_path"], "--split-file", prepared["splits"]["finn"],
                  "--num-tasks", 2, *flags)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "eval.json").exists()
    assert "ccache" not in result.stderr  # Paddle's import warning, not ours to show


def test_the_no_cuda_message_names_a_readme_section_that_exists():
    import re
    from pathlib import Path

    import paddle

    from maml.device import DeviceError, use_device
    if paddle.is_compiled_with_cuda():
        pytest.skip("this Paddle has CUDA: the message is for builds without it")
    with pytest.raises(DeviceError) as error:
        use_device("gpu")
    section = re.search(r'README, section "([^"]+)"', str(error.value)).group(1)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"## {section}\n" in readme
