"""No command writes to a path it reads, and none replaces a result beside a model unless the
user names it (issue 44, items 1 and 2): each command that writes a file is given an output
equal to one of its inputs and must stop with one line naming both, the input untouched."""

import shutil
from pathlib import Path

import pytest

from conftest import MD5, SOURCE
from maml.cli import main

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "results" / "runs" / "finn" / "maml" / "5way1shot" / "seed0"
LAKE_RUN = (REPO / "results" / "runs" / "lake_alphabets" / "maml++" / "20way1shot"
            / "best_lake-seed0")
MESSAGE = "is also what this command reads as"


def refused(capsys, argv, path):
    """Run the command; it must exit 2 with the message, `path` as it was."""
    before = Path(path).read_bytes()
    assert main([str(a) for a in argv]) == 2
    assert MESSAGE in capsys.readouterr().err
    assert Path(path).read_bytes() == before


@pytest.fixture
def run_copy(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN, folder)
    return folder


def test_fetch_and_prepare_refuse_their_source(tmp_path, capsys):
    folder = tmp_path / "source"
    folder.mkdir()
    for name in MD5:
        shutil.copy(Path(SOURCE) / f"{name}.zip", folder)
    archive = folder / "images_background.zip"
    refused(capsys, ["fetch", "images_background", "--source", folder, "--md5",
                     MD5["images_background"], "--out", archive], archive)
    refused(capsys, ["prepare", "--source", folder, "--md5", *MD5.values(),
                     "--out-dir", folder], archive)


def test_preprocess_and_split_refuse_their_inputs(prepared, tmp_path, capsys):
    background = tmp_path / "b.zip"
    shutil.copy(Path(SOURCE) / "images_background.zip", background)
    refused(capsys, ["preprocess", "--background", background, "--evaluation",
                     Path(SOURCE) / "images_evaluation.zip", "--out", background], background)
    data = tmp_path / "data.npz"
    shutil.copy(prepared["data_path"], data)
    refused(capsys, ["split", "--data", data, "--name", "finn", "--out", data], data)


def test_train_refuses_to_write_its_data_or_split(prepared, tmp_path, capsys):
    data = tmp_path / "data.npz"
    shutil.copy(prepared["data_path"], data)
    refused(capsys, ["train", "--epochs", "2", "--data", data, "--split-file",
                     prepared["splits"]["finn"], "--out-dir", tmp_path / "out", "--state", data],
            data)
    split = tmp_path / "out" / "train.json"
    split.parent.mkdir()
    shutil.copy(prepared["splits"]["finn"], split)
    refused(capsys, ["train", "--epochs", "2", "--data", data, "--split-file", split,
                     "--out-dir", split.parent], split)


def test_evaluate_predict_and_lake_runs_refuse_their_inputs(run_copy, tmp_path, capsys):
    model = run_copy / "model.npz"
    refused(capsys, ["evaluate", "--model", model, "--out", model, "--num-tasks", "2"], model)
    refused(capsys, ["evaluate", "--model", model, "--out", run_copy / "train.json"],
            run_copy / "train.json")
    query = next((REPO / "examples" / "query").glob("*.png"))
    queries = tmp_path / "query"
    shutil.copytree(query.parent, queries)
    target = queries / query.name
    refused(capsys, ["predict", "--model", model, "--support", REPO / "examples" / "support",
                     "--query", queries, "--out", target], target)
    lake = tmp_path / "lake"
    shutil.copytree(LAKE_RUN, lake)
    refused(capsys, ["lake-runs", "--model", lake / "model.npz", "--runs",
                     Path(SOURCE) / "all_runs.zip", "--out", lake / "model.npz"],
            lake / "model.npz")


def test_evaluate_and_lake_runs_without_out_leave_the_models_folder_alone(
        prepared, run_copy, tmp_path, monkeypatch, capsys):
    """The committed eval.json (or lake_runs.json) beside a model stays as it was; the result
    goes to output/evaluations/<the model's folder>/."""
    monkeypatch.chdir(tmp_path)
    before = (run_copy / "eval.json").read_bytes()
    assert main(["evaluate", "--model", str(run_copy / "model.npz"), "--num-tasks", "2",
                 "--data", str(prepared["data_path"]), "--split-file",
                 str(prepared["splits"]["finn"])]) == 0
    assert (run_copy / "eval.json").read_bytes() == before
    written = tmp_path / "output" / "evaluations" / "run" / "eval.json"
    assert written.is_file() and f"written to {Path('output/evaluations/run/eval.json')}" in \
        capsys.readouterr().out
    lake = tmp_path / "lake"
    shutil.copytree(LAKE_RUN, lake)
    before = (lake / "lake_runs.json").read_bytes()
    assert main(["lake-runs", "--model", str(lake / "model.npz"), "--runs",
                 str(Path(SOURCE) / "all_runs.zip"), "--steps", "1"]) == 0
    assert (lake / "lake_runs.json").read_bytes() == before
    assert (tmp_path / "output" / "evaluations" / "lake" / "lake_runs.json").is_file()


def test_prepare_twice_does_nothing_the_second_time(tmp_path, capsys):
    args = ["prepare", "--source", SOURCE, "--md5", *MD5.values(), "--out-dir", str(tmp_path)]
    assert main(args) == 0
    assert "prepared 1623 characters" in capsys.readouterr().out
    made = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert main(args) == 0
    assert "already prepared (1623 characters" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == made


def test_status_lists_the_runs_in_progress(tmp_path, capsys):
    import json

    record = tmp_path / "state" / "finn" / "maml" / "5way1shot" / "long-seed0" / "abc.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"iteration": 10, "iterations": 100, "segments": [
        {"cpu_s": 36, "machine": {"kind": "AMD EPYC (AVX-512)"}}]}))
    assert main(["status", "--results", str(tmp_path)]) == 0
    # 36 CPU-seconds for 10 iterations: 90 more take 324 s, 0.09 hours
    assert "| finn/maml/5way1shot/long-seed0 | 10 | 100 | 0.01 | 0.09 | AMD EPYC (AVX-512) |" in \
        capsys.readouterr().out
