"""The dataset registry (maml.datasets, datasets.yaml): Omniglot's entry gives the splits every
committed run trained on; a split's sizes are checked against its entry; split names name their
dataset; a model's image size is recorded in train.json and `predict` decodes a user's images
to it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from maml import data, datasets
from maml.predict import load_model, read_images
from tiny_runs import run

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "results" / "runs" / "finn" / "maml" / "5way1shot" / "seed0" / "model.npz"
# The content hashes of the splits the committed runs trained on (made by make_split before the
# registry existed): the registry's descriptions must make exactly these.
COMMITTED_SPLITS = {"finn": "ab32d6ffb9c5a760", "lake": "1e9424aa13b5ef0b",
                    "lake_alphabets": "c125e600fd97ee8f"}


def test_the_registry_makes_the_committed_splits(prepared):
    assert set(datasets.OMNIGLOT.splits) == set(COMMITTED_SPLITS)
    for name, expected in COMMITTED_SPLITS.items():
        split = data.make_split(prepared["data"], name)
        assert data.split_hash(split) == expected
        assert {part: len(chars) for part, chars in split["parts"].items()} == (
            datasets.OMNIGLOT.split_sizes(name))


def test_a_split_whose_sizes_differ_from_its_entry_is_refused(prepared, monkeypatch):
    finn = {**datasets.OMNIGLOT.splits["finn"], "train": 1000, "val": 200}  # test: 423
    monkeypatch.setitem(datasets.OMNIGLOT.splits, "finn", {**finn, "test": 400})
    with pytest.raises(data.DataError, match="split finn: parts of .*'test': 423.* registry "
                       "entry .*'test': 400"):
        data.make_split(prepared["data"], "finn")


def test_a_split_name_names_one_dataset():
    entry = {"source": "", "archives": {}, "raw_size": None, "image_size": 8, "drawers": 4,
             "published": {}, "splits": {"s": {"kind": "shuffled", "train": 1, "val": 1,
                                               "test": 1}}}
    with pytest.raises(ValueError, match="a split name is used twice"):
        datasets.registry_from({"a": entry, "b": entry})
    with pytest.raises(ValueError, match="b's split s: a kind of"):
        datasets.registry_from({"b": {**entry, "splits": {"s": {"kind": "random"}}}})
    assert datasets.dataset_of("lake").name == "omniglot"


def test_train_json_records_the_image_size_and_predict_decodes_to_it(prepared, tmp_path):
    summary = run(prepared, tmp_path / "run", 2)
    assert summary["image_size"] == 28
    assert json.loads((tmp_path / "run" / "train.json").read_text())["image_size"] == 28
    # a committed model from before the record: its split's dataset's size
    assert load_model(MODEL).image_size == datasets.OMNIGLOT.image_size == 28
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(MODEL, other / "model.npz")
    record = json.loads((MODEL.parent / "train.json").read_text())
    (other / "train.json").write_text(json.dumps({**record, "image_size": 32}))
    model = load_model(other / "model.npz")
    assert model.image_size == 32
    images = read_images(sorted((REPO / "examples" / "query").glob("*.png")), model.image_size)
    assert images.shape[1:] == (32, 32) and np.isfinite(images).all()
    (other / "train.json").write_text(json.dumps({**record, "image_size": "big"}))
    with pytest.raises(data.DataError, match="image_size: a number of pixels, got 'big'"):
        load_model(other / "model.npz")
