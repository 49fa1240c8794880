"""Every command that loads a model checks it against its train.json first (issue 44, items 5
and 6): impossible rates (NaN, negative, infinite in float32), arrays of another method,
shapes and non-finite weights are refused with one line, by predict, lake-runs and evaluate
alike."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SOURCE
from maml.cli import main
from maml.data import DataError
from maml.evaluate import evaluate
from maml.files import load_arrays, save_arrays
from maml.model_file import load_params

REPO = Path(__file__).resolve().parents[1]
MAML = REPO / "results" / "runs" / "finn" / "maml" / "5way1shot" / "seed0"
MAML_PP = REPO / "results" / "runs" / "finn" / "maml++" / "5way1shot" / "seed0"
LAKE = REPO / "results" / "runs" / "lake_alphabets" / "maml++" / "20way1shot" / "best_lake-seed0"


def copy_run(source, folder, **settings):
    shutil.copytree(source, folder)
    record = json.loads((folder / "train.json").read_text())
    record["settings"].update(settings)
    (folder / "train.json").write_text(json.dumps(record))
    return folder


def predict(folder, capsys, *extra):
    code = main(["predict", "--model", str(folder / "model.npz"), "--support",
                 str(REPO / "examples" / "support"), "--query",
                 str(REPO / "examples" / "query"), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("inner_lr", [float("nan"), -0.4, 1e39])
def test_impossible_rates_in_a_train_json_are_refused_by_predict_and_lake_runs(
        tmp_path, capsys, inner_lr):
    folder = copy_run(MAML, tmp_path / "run", inner_lr=inner_lr)
    code, err = predict(folder, capsys)
    assert code == 2 and "train.json: inner_lr: must be positive and finite" in err
    lake = copy_run(LAKE, tmp_path / "lake", inner_lr=inner_lr)
    code = main(["lake-runs", "--model", str(lake / "model.npz"), "--runs",
                 str(Path(SOURCE) / "all_runs.zip"), "--out", str(tmp_path / "r.json")])
    assert code == 2 and "inner_lr: must be positive and finite" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_a_rate_infinite_in_float32_is_refused_as_a_flag(tmp_path, capsys):
    code, err = predict(MAML, capsys, "--inner-lr", "1e39")
    assert code == 2 and "inner-lr: must be positive and finite" in err


def test_a_model_of_another_method_than_its_train_json_is_refused(tmp_path, capsys,
                                                                   prepared):
    plus_plus_beside_maml = tmp_path / "a"
    shutil.copytree(MAML, plus_plus_beside_maml)
    shutil.copy(MAML_PP / "model.npz", plus_plus_beside_maml / "model.npz")
    code, err = predict(plus_plus_beside_maml, capsys)
    assert code == 2 and "not a maml model" in err and "unexpected lslr." in err
    maml_beside_plus_plus = tmp_path / "b"
    shutil.copytree(MAML_PP, maml_beside_plus_plus)
    shutil.copy(MAML / "model.npz", maml_beside_plus_plus / "model.npz")
    code, err = predict(maml_beside_plus_plus, capsys)
    assert code == 2 and "not a maml++ model" in err and "missing lslr." in err
    settings = json.loads((MAML / "train.json").read_text())["settings"]
    with pytest.raises(DataError, match="not a maml model"):
        evaluate(plus_plus_beside_maml / "model.npz", prepared["data_path"],
                 prepared["splits"]["finn"], settings, num_tasks=2, progress=False)


def test_wrong_shapes_and_non_finite_weights_are_refused(tmp_path):
    settings = json.loads((MAML / "train.json").read_text())["settings"]
    arrays = load_arrays(MAML / "model.npz")
    arrays["fc.bias"] = np.zeros(7, np.float32)
    save_arrays(tmp_path / "shape.npz", arrays)
    with pytest.raises(DataError, match=r"fc.bias has shape \[7\].* needs \[5\]"):
        load_params(tmp_path / "shape.npz", settings)
    arrays = load_arrays(MAML / "model.npz")
    arrays["conv1.weight"][0, 0] = np.nan
    save_arrays(tmp_path / "nan.npz", arrays)
    with pytest.raises(DataError, match="conv1.weight has non-finite values"):
        load_params(tmp_path / "nan.npz", settings)


def test_every_committed_model_fits_its_train_json():
    for path in (REPO / "results" / "runs").rglob("model.npz"):
        load_params(path, json.loads((path.parent / "train.json").read_text())["settings"])
