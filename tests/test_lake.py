"""Lake's one-shot runs from the command line: only a model of Lake's protocol is scored, only
the official all_runs.zip is read, every query mode is reported."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import SOURCE
from maml import lake
from maml.predict import adapt_and_predict, load_model
from maml.settings import QUERY_MODE_NAMES, QUERY_MODES, resolve
from maml.train import train

RUNS_ZIP = Path(SOURCE) / "all_runs.zip"


def _model(prepared, folder, split, n_way=20):
    settings = resolve(n_way, 1, preset="laptop", iterations=2, val_every=2, val_tasks=2,
                       checkpoint_every=2, split=split)
    train(settings, prepared["data_path"], prepared["splits"][split], folder, progress=False)
    return folder / "model.npz"


@pytest.fixture(scope="module")
def lake_model(prepared, tmp_path_factory):
    return _model(prepared, tmp_path_factory.mktemp("lake_alphabets"), "lake_alphabets")


def lake_runs(*args):
    return subprocess.run([sys.executable, "-m", "maml", "lake-runs", *map(str, args)],
                          capture_output=True, text=True)


def test_every_query_mode_is_scored_as_predict_classifies(lake_model):
    runs = lake.read_runs(RUNS_ZIP)[:2]
    model = load_model(lake_model)
    result = lake.score_model(model, runs)
    assert set(result["query_modes"]) == set(QUERY_MODES)
    assert result["accuracy"] == result["query_modes"]["together"]["accuracy"]
    for mode, scored in result["query_modes"].items():
        expected = [np.mean(adapt_and_predict(model, r.support, np.arange(20), r.queries,
                                              queries=mode).argmax(1) == r.answers)
                    for r in runs]
        assert list(scored["per_run_accuracy"].values()) == expected


def test_the_cli_scores_a_model_of_lakes_protocol(lake_model, tmp_path):
    result = lake_runs("--model", lake_model, "--runs", RUNS_ZIP, "--out", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        *(f"Lake's 20 one-shot runs, {QUERY_MODE_NAMES[mode]}" for mode in QUERY_MODES),
        "written to " + str(tmp_path / "r.json").split(":")[0]]
    assert (tmp_path / "r.json").is_file()


def test_the_cli_refuses_a_finn_split_model(prepared, tmp_path):
    """A finn model's training characters include the evaluation alphabets the runs come from."""
    model = _model(prepared, tmp_path / "finn", "finn")
    result = lake_runs("--model", model, "--runs", RUNS_ZIP, "--out", tmp_path / "r.json")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {model}: trained on the 'finn' split, whose "
                                    "training characters include the evaluation alphabets")
    assert not (tmp_path / "r.json").exists()


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def _truncated(path):
    path.write_bytes(RUNS_ZIP.read_bytes()[:100_000])


def _another_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("run01/class_labels.txt", "nothing")


def _one_byte_changed(path):
    data = bytearray(RUNS_ZIP.read_bytes())
    data[200_000] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("spoil", [_random_bytes, _truncated, _another_zip, _one_byte_changed])
def test_a_wrong_runs_zip_gets_one_line_naming_it(lake_model, tmp_path, spoil):
    runs = tmp_path / "all_runs.zip"
    spoil(runs)
    result = lake_runs("--model", lake_model, "--runs", runs, "--out", tmp_path / "r.json")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: all_runs.zip: checksum mismatch")
    assert not (tmp_path / "r.json").exists()


def test_a_zip_with_its_own_md5_but_not_the_runs_is_refused(lake_model, tmp_path):
    """--md5 names another copy's checksum; a zip that is not the runs still gets one line."""
    from maml.data import md5sum

    runs = tmp_path / "all_runs.zip"
    _another_zip(runs)
    result = lake_runs("--model", lake_model, "--runs", runs, "--md5", md5sum(runs))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {runs}: run01/class_labels.txt: expected 20 lines")


def test_a_copy_with_its_own_md5_is_read(lake_model, tmp_path):
    copy = tmp_path / "copy.zip"
    shutil.copyfile(RUNS_ZIP, copy)
    result = lake_runs("--model", lake_model, "--runs", copy, "--md5", "E8996DAECDF12AFEEB4A53A179F06B19",
                       "--out", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
