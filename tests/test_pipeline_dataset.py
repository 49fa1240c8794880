"""A dataset is one registry entry (issue 46): a small synthetic character dataset in
Omniglot's folder layout, at another image size, added to a copy of src/maml/datasets.yaml and
nothing else, is fetched, preprocessed, split, trained, evaluated and gets its own table rows,
with no published numbers beside them."""

import json
import zipfile

import numpy as np
import pandas as pd

from maml.data import md5sum
from workflow_runs import SMALL, code_copy, snakemake

ALPHABETS, PER_ALPHABET, DRAWERS, RAW = 3, 8, 6, 40


def synthetic_archive(path):
    """glyphs_all.zip: glyphs_all/<alphabet>/<character>/<id>_<drawer>.png, each character a
    few dark strokes on white, each drawer's copy jittered."""
    import cv2

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for a in range(ALPHABETS):
            for c in range(PER_ALPHABET):
                char_id = a * PER_ALPHABET + c + 1
                strokes = rng.integers(4, RAW - 4, size=(3, 4))
                for drawer in range(1, DRAWERS + 1):
                    image = np.full((RAW, RAW), 255, np.uint8)
                    for x0, y0, x1, y1 in strokes + rng.integers(-2, 3, size=strokes.shape):
                        cv2.line(image, (int(x0), int(y0)), (int(x1), int(y1)), 0, 3)
                    encoded = cv2.imencode(".png", image)[1].tobytes()
                    archive.writestr(f"glyphs_all/alphabet{a}/character{c:02d}/"
                                     f"{char_id:04d}_{drawer:02d}.png", encoded)


def test_a_dataset_added_by_its_registry_entry_alone_gets_its_own_rows(tmp_path):
    source = tmp_path / "glyphs"
    source.mkdir()
    synthetic_archive(source / "glyphs_all.zip")
    code = code_copy(tmp_path / "code")
    registry = code / "src" / "maml" / "datasets.yaml"
    registry.write_text(registry.read_text() + f"""
glyphs:  # a test's synthetic dataset
  source: {source}
  archives:
    glyphs_all: {{md5: {md5sum(source / "glyphs_all.zip")}, subset: all,
                  alphabets: {ALPHABETS}, characters: {ALPHABETS * PER_ALPHABET}}}
  raw_size: {RAW}
  image_size: 32
  drawers: {DRAWERS}
  splits:
    glyphs_random: {{kind: shuffled, train: 14, val: 5, test: 5}}
  published: {{}}
""")
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    config = {**SMALL, "data": {}, "split": "glyphs_random", "methods": ["maml"],
              "cells": ["5way1shot"], "seeds": [0, 1]}
    snakemake(workdir, "--cores", "2", config=config, code=code)
    images = np.load(workdir / "resources" / "glyphs" / "glyphs32.npz")["images"]
    assert images.shape == (ALPHABETS * PER_ALPHABET, DRAWERS, 32, 32)
    split = json.loads((workdir / "resources/glyphs/splits/glyphs_random.json").read_text())
    assert [len(split["parts"][p]) for p in ("train", "val", "test")] == [14, 5, 5]
    run = workdir / "results/runs/glyphs_random/maml/5way1shot/seed0"
    assert json.loads((run / "train.json").read_text())["image_size"] == 32
    assert json.loads((run / "eval.json").read_text())["num_tasks"] == SMALL["test_tasks"]
    table = pd.read_csv(workdir / "results" / "table.csv")
    assert list(zip(table.split, table.cell, table.method, table.seeds)) == [
        ("glyphs_random", "5way1shot", "maml", 2)]
    assert table.paper.isna().all() and table.reference.isna().all()
    row = (workdir / "results" / "table.md").read_text().splitlines()[2]
    assert row.startswith("| 5way1shot | maml |") and row.endswith("| - | - |")
    assert "98.7" not in (workdir / "results" / "best_per_cell.md").read_text()
