"""Wrong input refused early with a message that names it (issue: hardening, second round);
each test here failed on the code before its fix."""

import json
import math
import os
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
    document, section = re.search(r'(docs/[a-z]+\.md), section "([^"]+)"',
                                  str(error.value)).groups()
    text = (Path(__file__).resolve().parents[1] / document).read_text()
    assert f"## {section}\n" in text


def _tiny_model(prepared, folder):
    settings = resolve(5, 1, **{**TINY, "iterations": 2})
    train(settings, prepared["data_path"], prepared["splits"]["finn"], folder, progress=False)
    return folder / "model.npz"


@pytest.mark.parametrize("flags,message", [
    (["--n_way", "200"], "n_way: 200 exceeds the 100 classes of the 'val' part"),
    (["--seed", "-1"], "seed: must be 0 or more, got -1"),
])
def test_cli_train_refuses_impossible_settings_before_training(prepared, tmp_path, flags,
                                                               message):
    result = maml("train", *flags, "--data", prepared["data_path"], "--split-file",
                  prepared["splits"]["finn"], "--out-dir", tmp_path / "run")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_cli_train_refuses_an_out_dir_it_cannot_write_before_training(prepared, tmp_path):
    (tmp_path / "file").write_text("x")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    common = ["--epochs", 4, "--data", prepared["data_path"], "--split-file",
              prepared["splits"]["finn"], "--checkpoint_every", 2]
    cases = [(tmp_path / "file", "cannot be made a folder"),
             (tmp_path / "file" / "under", "cannot be made a folder")]
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        cases.append((readonly / "run", "cannot be made a folder"))
    for out, message in cases:
        result = maml("train", *common, "--out-dir", out)
        assert result.returncode == 2 and message in result.stderr, (out, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
    readonly.chmod(0o700)


@pytest.mark.parametrize("text,message", [
    ("- inner_lr: 0.1\n", "a YAML mapping of settings"),
    ("inner_lr: 1e-3\n", "inner_lr: must be a float, got '1e-3' (text that reads as a number"),
])
def test_cli_train_explains_a_config_file_that_is_not_settings(prepared, tmp_path, text,
                                                               message):
    (tmp_path / "c.yaml").write_text(text)
    result = maml("train", "--config", tmp_path / "c.yaml")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]


def test_evaluate_and_predict_explain_what_is_not_a_model(prepared, tmp_path):
    model = _tiny_model(prepared, tmp_path / "run")
    common = ["--data", prepared["data_path"], "--split-file", prepared["splits"]["finn"],
              "--num-tasks", 2]
    # a run folder with train.json but no model.npz (a model not kept)
    kept = tmp_path / "notkept"
    kept.mkdir()
    (kept / "train.json").write_text((tmp_path / "run" / "train.json").read_text())
    result = maml("evaluate", "--model", kept / "model.npz", *common)
    assert result.returncode == 2 and "no model file" in result.stderr
    # a checkpoint given as the model
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    assert checkpoint.exists()
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "train.json").write_text((tmp_path / "run" / "train.json").read_text())
    (tmp_path / "ck" / "model.npz").write_bytes(checkpoint.read_bytes())
    result = maml("evaluate", "--model", tmp_path / "ck" / "model.npz", *common)
    assert result.returncode == 2 and "not a model.npz of this project" in result.stderr
    # a train.json without settings
    (tmp_path / "nosettings").mkdir()
    (tmp_path / "nosettings" / "train.json").write_text(json.dumps({"iterations": 2}))
    (tmp_path / "nosettings" / "model.npz").write_bytes(model.read_bytes())
    result = maml("evaluate", "--model", tmp_path / "nosettings" / "model.npz", *common)
    assert result.returncode == 2 and 'no "settings"' in result.stderr
    # --out into a read-only folder
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    result = maml("evaluate", "--model", model, *common, "--out", readonly / "eval.json")
    readonly.chmod(0o700)
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        assert result.returncode == 2 and "eval.json: cannot be written" in result.stderr
    result = maml("evaluate", "--model", model, *common, "--out", model / "eval.json")
    assert result.returncode == 2 and "eval.json: cannot be written" in result.stderr
    for result in [maml("evaluate", "--model", kept / "model.npz", *common)]:
        assert "Traceback" not in result.stderr


def test_predict_explains_bad_images_and_folders(prepared, archives, tmp_path):
    import zipfile

    import cv2

    model = _tiny_model(prepared, tmp_path / "run")
    with zipfile.ZipFile(archives["images_evaluation"]) as archive:
        pngs = sorted(m for m in archive.namelist() if m.endswith(".png"))[:40:20]
        support = tmp_path / "support"
        for c, member in enumerate(pngs * 3):
            folder = support / f"class{c % 5}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{c}.png").write_bytes(archive.read(pngs[c % 2]))
        query = tmp_path / "q.png"
        query.write_bytes(archive.read(pngs[0]))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = maml("predict", "--model", model, "--support", support, "--query", empty)
    assert result.returncode == 2 and "empty.png: an empty file, not an image" in result.stderr
    locked = support / "class0"
    locked.chmod(0o000)
    result = maml("predict", "--model", model, "--support", support, "--query", query)
    locked.chmod(0o755)
    if os.geteuid() != 0:  # root reads it anyway
        assert result.returncode == 2 and "class0: cannot be read" in result.stderr
    # black strokes on a transparent background: read as a viewer shows it, on white
    gray = cv2.imdecode(np.frombuffer(query.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    rgba = np.zeros((*gray.shape, 4), np.uint8)
    rgba[..., 3] = 255 - gray  # opaque black strokes, transparent elsewhere
    transparent = tmp_path / "rgba.png"
    cv2.imwrite(str(transparent), rgba)
    result = maml("predict", "--model", model, "--support", support, "--query", transparent)
    assert result.returncode == 0, result.stderr[-2000:]
    from maml.data import decode_image
    np.testing.assert_allclose(decode_image(transparent.read_bytes()),
                               decode_image(query.read_bytes()), atol=1 / 255)
