"""A model on another cell (maml.cells) and the choice of a model per cell on validation
(maml.selection): the cells recorded, more ways refused, fewer ways served by the first units
of the head, the selection's tasks drawn from validation characters only, the choice rule."""

import json
from pathlib import Path

import numpy as np
import pytest

from maml import selection
from maml.cells import head_for, serving_settings
from maml.evaluate import evaluate
from maml.files import load_arrays
from maml.model import arrays_to_params
from maml.settings import SettingsError, read_yaml
from maml.identity import expand
from maml.tasks import TaskSampler

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "results" / "runs" / "finn"
MODEL_20W1S = RUNS / "maml++" / "20way1shot" / "best_20w1s-seed0"
MODEL_5W1S = RUNS / "maml++" / "5way1shot" / "best_5w1s-seed0"


def settings_of(folder):
    return json.loads((folder / "train.json").read_text())["settings"]


def test_a_20way_1shot_model_on_20way_5shot_tasks(prepared):
    result = evaluate(MODEL_20W1S / "model.npz", prepared["data_path"],
                      prepared["splits"]["finn"], settings_of(MODEL_20W1S), num_tasks=3,
                      progress=False, tested_on=(20, 5, 5))
    assert (result["trained_on"], result["tested_on"]) == ("20way1shot", "20way5shot")
    assert (result["n_way"], result["k_shot"], result["k_query"]) == (20, 5, 5)
    assert result["accuracy"] > 0.9  # far above chance (5%): the model serves the cell
    own = evaluate(MODEL_20W1S / "model.npz", prepared["data_path"], prepared["splits"]["finn"],
                   settings_of(MODEL_20W1S), num_tasks=3, progress=False)
    assert (own["trained_on"], own["tested_on"]) == ("20way1shot", "20way1shot")


def test_more_ways_than_trained_are_refused(prepared):
    with pytest.raises(SettingsError, match="more ways than the model was trained with"):
        evaluate(MODEL_5W1S / "model.npz", prepared["data_path"], prepared["splits"]["finn"],
                 settings_of(MODEL_5W1S), num_tasks=2, progress=False, tested_on=(20, 1, 1))
    with pytest.raises(SettingsError, match="more ways"):
        serving_settings(expand(settings_of(MODEL_5W1S)), 6, 1, 1)


def test_fewer_ways_take_the_first_units_of_the_head_and_of_its_rates():
    params = arrays_to_params(load_arrays(MODEL_20W1S / "model.npz"))
    cut = head_for(params, 5)
    assert cut["fc.weight"].shape == [64, 5] and cut["fc.bias"].shape == [5]
    np.testing.assert_array_equal(cut["fc.weight"].numpy(), params["fc.weight"].numpy()[:, :5])
    assert cut["lslr.fc.weight"].shape == params["lslr.fc.weight"].shape  # per step, not unit
    for name in params:
        if not name.endswith(("fc.weight", "fc.bias")):
            np.testing.assert_array_equal(cut[name].numpy(), params[name].numpy())
    meta_sgd = {"fc.weight": params["fc.weight"], "metasgd.fc.weight": params["fc.weight"]}
    assert head_for(meta_sgd, 3)["metasgd.fc.weight"].shape == [64, 3]


def test_the_selection_builds_no_task_from_test_characters(prepared, monkeypatch):
    """Every selection job's tasks (a cross-cell and an own-cell one) are drawn from the
    split's validation characters."""
    split = json.loads(Path(prepared["splits"]["finn"]).read_text())
    val, test = set(split["parts"]["val"]), set(split["parts"]["test"])
    drawn = []
    build = TaskSampler.build

    def recording(self, tasks):
        drawn.extend(np.asarray(tasks.classes).ravel().tolist())  # character indices
        return build(self, tasks)

    monkeypatch.setattr(TaskSampler, "build", recording)
    config = read_yaml(REPO / "config.yaml")
    jobs = [job for job in selection.validation_jobs(config)  # with models (not training)
            if (RUNS / job[2] / job[3] / job[4] / "model.npz").exists()]
    for label, split_name, method, trained, run, tested in (jobs[0], jobs[-1]):
        folder = RUNS / method / trained / run
        evaluate(folder / "model.npz", prepared["data_path"], prepared["splits"]["finn"],
                 settings_of(folder), num_tasks=2, progress=False, part="val",
                 tested_on=selection.tested_on(config, tested))
    assert drawn and set(drawn) <= val and not set(drawn) & test


def test_every_candidate_serves_each_cell_with_as_many_ways_or_fewer():
    config = read_yaml(REPO / "config.yaml")
    jobs = selection.validation_jobs(config)
    by_model = {}
    for label, _, _, trained, run, tested in jobs:
        by_model.setdefault((trained, run), set()).add(tested)
    assert by_model[("20way1shot", "best_20w1s-seed0")] == set(config["cells"])
    assert by_model[("5way5shot", "best_5w5s-seed2")] == {"5way1shot", "5way5shot"}
    # every committed finn model of the candidate families is a candidate
    shipped = {(p.parent.parent.name, p.parent.name) for p in RUNS.rglob("model.npz")
               if p.parent.name.split("-")[0].startswith(("best", "paper", "long"))}
    assert shipped <= set(by_model)  # with the seeds still to train
    assert selection.tested_on(config, "20way5shot") == (20, 5, 5)


def fake_result(together, alone):
    return {"part": "val", "accuracy": together, "ci95": 0.01,
            "query_modes": {"support": {"accuracy": alone, "ci95": 0.02}}}


def test_the_choice_is_the_best_mean_over_seeds_per_cell_and_mode():
    config = {"split": "finn", "cells": ["5way1shot"],
              "selection": {"candidates": ["a", "b"], "tasks": 600},
              "extra_runs": {"a": {"cell": "5way1shot", "seeds": [0, 1]},
                             "b": {"cell": "20way1shot", "seed": 0}}}
    scores = {"a-seed0": (0.99, 0.90), "a-seed1": (0.986, 0.96), "b-seed0": (0.985, 0.94)}

    def read(path):
        return fake_result(*scores[Path(path).parent.parent.name])

    rows = selection.matrix(config, read=read, cpu_hours={"a": 1.0, "b": 2.0})
    chosen = selection.choose(rows, config["cells"])
    assert chosen == {"5way1shot": {"together": "a", "support": "b"}}  # 98.8 > 98.5; 93 < 94
    text = selection.markdown(rows, chosen, config["cells"])
    assert ("| 5way1shot | 20way1shot | b (maml) | 1 | 2.00 | 98.50 ± 1.00 | **94.00 ± 2.00** |"
            in text)
    with pytest.raises(SettingsError, match="not an evaluation on validation"):
        selection.matrix(config, read=lambda path: {**read(path), "part": "test"})
    # the table of finished runs: a candidate's seeds still training are left out
    finished = [("finn", "maml", "5way1shot", "a-seed1"), ("finn", "maml", "20way1shot", "b-seed0")]
    rows = selection.matrix(config, read=read, runs=finished)
    assert [row["runs"] for row in rows] == [["a-seed1"], ["b-seed0"]]
    assert selection.choose(rows, config["cells"]) == {
        "5way1shot": {"together": "a", "support": "a"}}  # 98.6 > 98.5; 96 > 94
