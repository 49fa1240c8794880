"""Bad input gets one line naming the file or flag and what is wrong: degenerate tasks, a preset
asked for a cell it has no budget for, repeated YAML keys, a CSV with a byte-order mark or an
empty label, uninformative support sets, a data file of other arrays, an unknown device, a
negative seed, a meta-batch beyond memory, a binary settings file, an output naming a folder, an
image given as the support CSV; Ctrl-C during training."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maml.data import DataError, md5sum
from maml.predict import predict, support_set, warn_if_uninformative
from maml.settings import SettingsError, read_yaml, resolve
from maml.pipeline_config import check_config

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "results" / "runs" / "finn" / "maml" / "5way1shot" / "seed0" / "model.npz"


def maml(*args):
    return subprocess.run([sys.executable, "-m", "maml", *map(str, args)], capture_output=True,
                          text=True)


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_one_way_is_not_a_classification_task(tmp_path):
    with pytest.raises(SettingsError, match="n_way: a classification task needs at least 2"):
        resolve(1, 1)
    config = read_yaml(REPO / "config" / "offline-small.yaml")
    config["cells"] = ["1way1shot"]
    with pytest.raises(SettingsError, match="cell 1way1shot: n_way: a classification task"):
        check_config(config)
    one_line_error(maml("train", "--n_way", "1", "--out-dir", tmp_path), "n_way")


def test_a_preset_with_budgets_per_cell_refuses_another_cell_on_the_command_line(tmp_path):
    one_line_error(maml("train", "--preset", "laptop", "--n_way", "10", "--k_spt", "5",
                        "--out-dir", tmp_path),
                   "preset 'laptop' of maml sets its budget per cell", "10way5shot")
    assert resolve(10, 5, preset="laptop", iterations=5)["iterations"] == 5


def test_a_repeated_yaml_key_is_named_with_its_line(tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("n_way: 5\nmeta_lr: 0.001\nn_way: 20\n")
    with pytest.raises(SettingsError, match=r"settings.yaml: line 3, column 1: .*'n_way' "
                                            "appears twice"):
        read_yaml(config)
    one_line_error(maml("train", "--config", config, "--out-dir", tmp_path / "out"),
                   "appears twice")


def test_a_support_csv_from_excel_and_an_empty_label(tmp_path):
    support = REPO / "examples" / "support"
    rows = [f"{png},{png.parent.name}" for png in sorted(support.rglob("*.png"))]
    csv = tmp_path / "support.csv"
    csv.write_bytes(("\ufeffpath,label\r\n" + "\r\n".join(rows) + "\r\n").encode())
    paths, labels = support_set(csv)
    assert len(paths) == 5 and "path" not in labels and labels[0] == sorted(
        p.name for p in support.iterdir())[0]
    csv.write_text("path,label\n" + rows[0] + "\n" + rows[1].split(",")[0] + ", \n")
    with pytest.raises(DataError, match="support.csv: row 2 has an empty label"):
        support_set(csv)


def test_identical_support_images_are_warned_of(tmp_path, capsys):
    support = tmp_path / "support"
    shutil.copytree(REPO / "examples" / "support", support)
    first, second = sorted(support.iterdir())[:2]
    for png in second.iterdir():
        png.unlink()
    shutil.copy(next(first.iterdir()), second / "same.png")
    predict(MODEL, support, [REPO / "examples" / "query"])
    err = capsys.readouterr().err
    assert f"'{first.name}', '{second.name}' are identical" in err
    warn_if_uninformative(np.arange(8.0).reshape(2, 2, 2), np.array([0, 1]), ["a", "b"])
    assert capsys.readouterr().err == ""


TINY = dict(meta_batch=2, k_query=2, test_k_query=2, inner_steps=1, inner_lr=0.4,
            test_inner_steps=1, val_inner_steps=1, val_every=2, val_tasks=4, checkpoint_every=2)


def test_a_checkpoint_must_agree_with_itself(prepared, tmp_path):
    """Item 7: an edited iteration count, a missing settings key, fewer iterations than
    already done: each refused in one line, the checkpoint kept for the user to look at."""
    import json

    from maml.files import load_arrays, save_arrays
    from maml.train import train

    settings = resolve(5, 1, iterations=4, **TINY)
    state = tmp_path / "state.npz"
    train(settings, prepared["data_path"], prepared["splits"]["finn"], tmp_path / "run",
          state_path=state, progress=False)

    def edited(change):
        arrays = load_arrays(state)
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
        path = tmp_path / "edited.npz"
        save_arrays(path, arrays)
        return path

    for change, message in ((lambda m: m.update(iteration=2), "inconsistent"),
                            (lambda m: m.pop("settings_key"), "records no settings key")):
        path = edited(change)
        with pytest.raises(SettingsError, match=message):
            train({**settings, "iterations": 8}, prepared["data_path"],
                  prepared["splits"]["finn"], tmp_path / "again", state_path=path,
                  resume=True, progress=False)
        assert path.exists()
    with pytest.raises(SettingsError, match="at iteration 4, beyond the 2 iterations asked"):
        train({**settings, "iterations": 2}, prepared["data_path"], prepared["splits"]["finn"],
              tmp_path / "fewer", state_path=state, resume=True, progress=False)


def test_a_split_is_known_by_its_content(prepared, tmp_path):
    """Item 8: a model trained on another 'finn' split (another seed) is not evaluated with
    the default one, whose test part holds its training characters; hand-made splits with an
    index out of range or a character in two parts are refused."""
    import json

    from maml.data import load_split, make_split, save_split
    from maml.evaluate import evaluate
    from maml.train import train

    other = tmp_path / "finn7.json"
    save_split(make_split(prepared["data"], "finn", seed=7), other)
    settings = resolve(5, 1, iterations=2, **TINY)
    train(settings, prepared["data_path"], other, tmp_path / "run", progress=False)
    with pytest.raises(DataError, match="not the split .* was trained on"):
        evaluate(tmp_path / "run" / "model.npz", prepared["data_path"],
                 prepared["splits"]["finn"], settings, num_tasks=2, progress=False)
    assert evaluate(tmp_path / "run" / "model.npz", prepared["data_path"], other, settings,
                    num_tasks=2, progress=False)["num_tasks"] == 2
    split = json.loads(Path(prepared["splits"]["finn"]).read_text())
    for change, message in ((lambda s: s["parts"]["test"].append(5000), "character 5000"),
                            (lambda s: s["parts"]["test"].append(s["parts"]["train"][0]),
                             "is in part 'train' and in part 'test'")):
        broken = json.loads(json.dumps(split))
        change(broken)
        (tmp_path / "broken.json").write_text(json.dumps(broken))
        with pytest.raises(DataError, match=message):
            load_split(tmp_path / "broken.json", "finn", prepared["data"].num_characters)


def _evaluate(prepared, *flags, model=MODEL):
    return maml("evaluate", "--model", model, "--data", prepared["data_path"], "--split-file",
                prepared["splits"]["finn"], "--num-tasks", 2, *flags)


def test_a_data_file_of_other_arrays_is_named(prepared, tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    result = maml("evaluate", "--model", MODEL, "--data", other, "--split-file",
                  prepared["splits"]["finn"], "--num-tasks", 2, "--out", tmp_path / "e.json")
    one_line_error(result, "other.npz: not a preprocessed character dataset", "no images")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("flags,message", [
    (["--device", "cpu:5"], "unknown device 'cpu:5'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_an_impossible_device_is_named(prepared, tmp_path, flags, message):
    one_line_error(_evaluate(prepared, *flags, "--out", tmp_path / "e.json"), message)


def test_a_negative_seed_is_refused_by_the_parser(prepared, tmp_path):
    result = _evaluate(prepared, "--test-seed", "-1", "--out", tmp_path / "e.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--test-seed: a seed is 0 or more, got -1" in result.stderr
    result = maml("split", "--data", prepared["data_path"], "--name", "finn", "--seed", "-3",
                  "--out", tmp_path / "s.json")
    assert "--seed: a seed is 0 or more, got -3" in result.stderr and result.returncode == 2


def test_a_meta_batch_beyond_any_memory_is_refused(tmp_path):
    result = maml("train", "--task_num", 10**12, "--epochs", 2, "--out-dir", tmp_path / "t")
    one_line_error(result, "meta_batch: at most 100000 tasks, got 1000000000000")


def test_a_binary_settings_file_is_named(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(128, 256)) * 3)
    with pytest.raises(SettingsError, match="bin.yaml: not a text file"):
        read_yaml(binary)
    one_line_error(maml("train", "--config", binary, "--epochs", 2, "--out-dir", tmp_path / "t"),
                   "bin.yaml: not a text file")


def test_an_output_naming_a_folder_is_refused_and_the_folder_kept(prepared, tmp_path):
    folder = tmp_path / "results"
    (folder / "inside").mkdir(parents=True)
    one_line_error(_evaluate(prepared, "--out", folder), "--out",
                   "results: is a folder; name a file")
    assert (folder / "inside").is_dir() and list(tmp_path.iterdir()) == [folder]


def test_an_image_given_as_the_support_set_is_named(tmp_path):
    image = next((REPO / "examples" / "support").rglob("*.png"))
    result = maml("predict", "--model", MODEL, "--support", image, "--query",
                  REPO / "examples" / "query")
    one_line_error(result, f"{image.name}: not a CSV of path,label rows")


def test_ctrl_c_during_training_keeps_the_checkpoint_and_says_how_to_continue(prepared,
                                                                              tmp_path):
    """SIGINT after the first checkpoints: no traceback, exit 130, a readable checkpoint, no
    temporary file; --resume then continues from it."""
    import signal
    import time
    out = tmp_path / "run"
    command = [sys.executable, "-m", "maml", "train", "--data", prepared["data_path"],
               "--split-file", prepared["splits"]["finn"], "--epochs", 100000,
               "--task_num", 1, "--k_query", 1, "--val_every", 100000, "--val_tasks", 2,
               "--checkpoint_every", 1, "--out-dir", out]
    # Ctrl-C as in a terminal, also when the suite runs in the background (a shell starts
    # background commands with SIGINT ignored, which children inherit)
    process = subprocess.Popen(list(map(str, command)), stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (out / "checkpoint.json").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr and "--resume" in stderr
    assert sorted(path.name for path in out.iterdir()) == ["checkpoint.json", "checkpoint.npz"]
    from maml.train import Checkpoint
    assert Checkpoint(out / "checkpoint.npz").read()[1]["iteration"] >= 1


def test_a_failed_prepare_leaves_no_archive_for_the_pipeline_to_use(archives, tmp_path):
    """The evaluation archive given as the background one, with its own md5: the md5 passes,
    preprocessing refuses it in one line, and neither archive reaches the folder (the
    pipeline would take an archive there as fetched)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("images_background", "images_evaluation"):
        shutil.copy(archives["images_evaluation"], source / f"{name}.zip")
    md5 = md5sum(source / "images_evaluation.zip")
    result = maml("prepare", "--source", source, "--md5", md5, md5, "--out-dir", tmp_path / "out")
    one_line_error(result, "images_background.zip: unexpected layout")
    assert list((tmp_path / "out").iterdir()) == []
