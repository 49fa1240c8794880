"""Lake, Salakhutdinov and Tenenbaum's 20 official one-shot runs (Science 2015), scored with
`predict`'s code path.

Each run of `all_runs.zip` is a 20-way within-alphabet one-shot task: `runNN/training/
classKK.png` are the support images (class KK), `runNN/test/itemKK.png` the queries, and
`runNN/class_labels.txt` the answer key (each line: a query's path, then its class's training
image path). The runs are a test set: nothing is chosen by looking at them.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maml import cpu
from maml.data import OFFICIAL_MD5, DataError, check_dark_on_light, decode_image, verify_archive
from maml.settings import LAKE_SPLITS, QUERY_MODES

if TYPE_CHECKING:  # the report reads PUBLISHED without importing Paddle
    from maml.predict import Model

RUNS = 20
WAYS = 20
# Published error rates (%) on these 20 runs, for comparison only.
PUBLISHED = (
    ("Humans", 4.5, "Lake et al. 2015, Science"),
    ("Bayesian Program Learning", 3.3, "Lake et al. 2015, Science"),
    ("Siamese network", 8.0, "Koch et al. 2015, as reported by Lake et al. 2015"),
    ("Deep convolutional network", 13.5, "Lake et al. 2015, Science"),
    ("Prototypical networks", 13.7, "Lake, Salakhutdinov and Tenenbaum 2019, Curr. Opin. "
     "Behav. Sci."),
    ("Modified Hausdorff distance (ships with the runs)", 38.8, "Lake et al. 2015, Science"),
)


@dataclass(frozen=True)
class OneShotRun:
    name: str  # run01 ... run20
    support: np.ndarray  # [20, 28, 28], class k at row k
    queries: np.ndarray  # [20, 28, 28], item01 ... item20
    answers: np.ndarray  # [20], the class of each query


def _class_index(path: str, run: str) -> int:
    match = re.fullmatch(rf"{run}/training/class(\d\d)\.png", path)
    if not match or not 1 <= int(match.group(1)) <= WAYS:
        raise DataError(f"{run}/class_labels.txt: unexpected training image {path!r}")
    return int(match.group(1)) - 1


def read_runs(path: str | os.PathLike, md5: str | None = None) -> list[OneShotRun]:
    """The 20 runs of all_runs.zip (checked against `md5`, the official file's by default),
    images through the training data's preprocessing."""
    verify_archive(path, md5 or OFFICIAL_MD5["all_runs"])
    try:
        return _runs_in(path)
    except DataError as error:  # a zip given with its own md5 that is not the runs
        raise DataError(f"{path}: {error}") from None


def _runs_in(path) -> list[OneShotRun]:
    runs = []
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())

        def member(name):
            if name not in names:
                raise DataError(f"{name} is missing; not Lake's all_runs.zip")
            return archive.read(name)

        def image(name):
            picture = decode_image(member(name), name)
            check_dark_on_light(picture, name)
            return picture

        for r in range(1, RUNS + 1):
            run = f"run{r:02d}"
            key = member(f"{run}/class_labels.txt").decode(errors="replace").split()
            if len(key) != 2 * WAYS:
                raise DataError(f"{run}/class_labels.txt: expected {WAYS} lines of two paths")
            queries, answers = key[0::2], [_class_index(p, run) for p in key[1::2]]
            expected = [f"{run}/test/item{i:02d}.png" for i in range(1, WAYS + 1)]
            if queries != expected:
                raise DataError(f"{run}/class_labels.txt: queries are not item01..item{WAYS}")
            runs.append(OneShotRun(
                run,
                np.stack([image(f"{run}/training/class{k:02d}.png") for k in range(1, WAYS + 1)]),
                np.stack([image(q) for q in queries]), np.array(answers)))
    return runs


def check_lake_protocol(model: "Model", name: str = "the model") -> None:
    """Refuse a model that cannot be scored fairly on the runs: one not 20-way, or one trained
    on a split whose training characters include the evaluation alphabets the runs are drawn
    from (every split but LAKE_SPLITS)."""
    split = model.settings["split"]
    if split not in LAKE_SPLITS:
        raise DataError(f"{name}: trained on the {split!r} split, whose training characters "
                        "include the evaluation alphabets Lake's runs are drawn from; score a "
                        f"model of Lake's protocol (split {' or '.join(LAKE_SPLITS)})")
    if model.n_way != WAYS:
        raise DataError(f"{name}: a {model.n_way}-way model; Lake's runs are {WAYS}-way tasks")


def score(runs: list[OneShotRun], predict_run) -> dict:
    """Per-run and mean accuracy of `predict_run(run) -> predicted class per query`."""
    per_run = {run.name: float(np.mean(np.asarray(predict_run(run)) == run.answers))
               for run in runs}
    accuracy = float(np.mean(list(per_run.values())))
    return {"runs": len(per_run), "accuracy": accuracy, "error_percent": 100 * (1 - accuracy),
            "per_run_accuracy": per_run}


def score_model(model: "Model", runs: list[OneShotRun], steps: int | None = None,
                query_modes=QUERY_MODES) -> dict:
    """A 20-way model on the runs: adapt to each run's 20 training images and predict its 20
    test images (as `predict` does) against the answer key, the queries classified in each of
    `query_modes` (settings.QUERY_MODES; the top-level numbers are "together", all 20 as one
    batch, the table's protocol)."""
    from maml.predict import adapt_and_predict

    support_y = np.arange(WAYS)
    modes = {}
    for mode in ("together", *(m for m in query_modes if m != "together")):
        modes[mode] = score(runs, lambda run: adapt_and_predict(
            model, run.support, support_y, run.queries, steps, queries=mode).argmax(1))
    result = {**modes["together"], "query_modes": modes}
    result["inner_steps"] = model.settings["test_inner_steps"] if steps is None else steps
    result["machine"] = cpu.machine()
    return result
