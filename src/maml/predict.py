"""Adapt a trained model to anyone's few-shot task: labelled support images in, class
probabilities for query images out.

The model adapts exactly as in evaluation (`meta.adaptation`, no meta-graph), with the inner
loop of its own method, rate and test step count from the `train.json` beside it; images go
through `data.decode_image`, the preprocessing of the training data. Batch norm uses each
batch's own statistics, as in training: the support set's while adapting. Each query is then
classified on its own by default (`settings.INDEPENDENT`), so its answer does not depend on
which other queries came with it; `queries="together"` classifies them as one batch, the
paper's protocol, where each answer depends on the others.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle

from maml import inner
from maml.cells import head_for
from maml.data import IMAGE_SIZE, DataError, check_dark_on_light, decode_image
from maml.meta import adapted_probabilities
from maml.model import Params
from maml.model_file import load_params, read_training_record
from maml.settings import INDEPENDENT, check_positive

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm")


@dataclass(frozen=True)
class Model:
    params: Params
    settings: dict  # the training run's settings (train.json), every key present
    image_size: int  # the images' size in training: a user's images are decoded to it

    @property
    def n_way(self) -> int:
        return int(self.params["fc.bias"].shape[0])


def load_model(path: str | os.PathLike) -> Model:
    """model.npz and the train.json beside it (its method and inner-loop settings)."""
    settings, image_size = read_training_record(path)
    return Model(load_params(path, settings), settings, image_size)


def read_images(paths: list[str | os.PathLike], size: int = IMAGE_SIZE) -> np.ndarray:
    """Image files -> [N, size, size] drawings, each checked to be dark strokes on light."""
    images = []
    for path in paths:
        try:
            encoded = Path(path).read_bytes()
        except OSError as error:
            raise DataError(f"{path}: cannot be read ({error.strerror})") from None
        image = decode_image(encoded, str(path), size)
        check_dark_on_light(image, str(path))
        images.append(image)
    return np.stack(images).astype(np.float32)


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as error:
        raise DataError(f"{folder}: cannot be read ({error.strerror})") from None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in _listing(folder) if p.suffix.lower() in IMAGE_SUFFIXES)


def support_set(source: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """(image paths, class names) from a folder of one sub-folder per class, or from a CSV of
    `path,label` rows (paths relative to the CSV's folder)."""
    source = Path(source)
    if source.is_dir():
        paths, labels = [], []
        if not any(p.is_dir() for p in _listing(source)):
            raise DataError(f"{source}: no class sub-folders; a support folder holds one "
                            "sub-folder of images per class")
        for folder in sorted(p for p in _listing(source) if p.is_dir()):
            files = _image_files(folder)
            if not files:
                raise DataError(f"{folder}: a class folder without images")
            paths += files
            labels += [folder.name] * len(files)
    elif source.is_file():
        try:
            with source.open(newline="", encoding="utf-8-sig") as handle:  # Excel's BOM too
                rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
        except UnicodeDecodeError:
            raise DataError(f"{source}: not a CSV of path,label rows (not text); --support "
                            "takes a folder of one sub-folder per class, or such a CSV") from None
        if rows and rows[0][:2] == ["path", "label"]:
            rows = rows[1:]
        if any(len(row) != 2 for row in rows):
            raise DataError(f"{source}: every row must be 'path,label'")
        paths = [source.parent / row[0] for row in rows]
        labels = [row[1].strip() for row in rows]
        if "" in labels:
            raise DataError(f"{source}: row {labels.index('') + 1} has an empty label")
    else:
        raise DataError(f"{source}: no such support folder or CSV file")
    if len(set(labels)) < 2:
        raise DataError(f"{source}: a support set needs at least two classes, found "
                        f"{len(set(labels))}")
    return paths, labels


def query_images(sources: list[str | os.PathLike]) -> list[Path]:
    """Query image paths: image files as given, and the image files of any folder given."""
    paths = []
    for source in map(Path, sources):
        if source.is_dir():
            paths += _image_files(source)
        else:
            paths.append(source)
    if not paths:
        raise DataError("no query images given")
    return paths


def adapt_and_predict(model: Model, support_x: np.ndarray, support_y: np.ndarray,
                      query_x: np.ndarray, steps: int | None = None,
                      inner_lr: float | None = None, queries: str = INDEPENDENT) -> np.ndarray:
    """Class probabilities [queries, classes] after adapting to (support_x [N, size, size]
    at the model's image size, support_y [N] in 0..classes-1), `classes` at most the model's
    n_way (fewer: the first units of its head, maml.cells). `steps` defaults to the model's
    test steps; `inner_lr` replaces a fixed inner rate (a method with learned rates keeps its
    own); `queries` is how the queries are classified (settings.QUERY_MODES)."""
    classes = len(np.unique(support_y))
    if classes > model.n_way or support_y.max() != classes - 1:
        raise DataError(
            f"the model was trained for {model.n_way}-way tasks (its output layer has "
            f"{model.n_way} units) but the support set has {classes} classes; MAML adapts a "
            f"fixed output layer, so use a model trained with n_way = {classes} or more "
            "(fewer classes take the first units of its head)")
    settings = dict(model.settings, n_way=classes)
    steps = settings["test_inner_steps"] if steps is None else steps
    if inner_lr is not None:
        check_positive("inner-lr", inner_lr)
        if inner.for_settings(settings).rule.learned:
            raise DataError(f"this {settings['method']} model learned its inner rates; "
                            "--inner-lr applies to models with a fixed rate only")
        settings["inner_lr"] = inner_lr
    if steps < 0:
        raise DataError(f"steps: must be 0 or more, got {steps}")

    def batch(x):
        return paddle.to_tensor(x[None, :, None].astype(np.float32))

    sy = paddle.to_tensor(support_y[None].astype(np.int64))
    return adapted_probabilities(head_for(model.params, classes), inner.for_settings(settings),
                                 batch(support_x), sy, batch(query_x), steps, queries)[0]


def predict(model_path, support, queries, steps: int | None = None,
            inner_lr: float | None = None,
            mode: str = INDEPENDENT) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, query paths, probabilities [queries, classes]) for a support folder or
    CSV and query images or folders, the queries classified as `mode` says."""
    if inner_lr is not None:  # before any image is read
        check_positive("inner-lr", inner_lr)
    model = load_model(model_path)
    paths, labels = support_set(support)
    classes = sorted(set(labels))
    support_y = np.array([classes.index(label) for label in labels])
    query_paths = query_images(queries)
    support_x = read_images(paths, model.image_size)
    warn_if_uninformative(support_x, support_y, classes)
    query_x = read_images(query_paths, model.image_size)
    probabilities = adapt_and_predict(model, support_x, support_y, query_x, steps, inner_lr, mode)
    return classes, query_paths, probabilities


def warn_if_uninformative(support_x: np.ndarray, support_y: np.ndarray, classes) -> None:
    """A warning on stderr where two classes' support images are all identical: nothing
    tells those classes apart, so their probabilities mean nothing."""
    firsts = {}
    for label in range(len(classes)):
        images = support_x[support_y == label]
        if (images == images[0]).all():
            firsts.setdefault(images[0].tobytes(), []).append(classes[label])
    alike = [names for names in firsts.values() if len(names) > 1]
    for names in alike:
        print(f"warning: the support images of {', '.join(map(repr, names))} are identical: "
              "nothing tells these classes apart, so their probabilities carry no "
              "information", file=sys.stderr)


def predictions_csv(classes: list[str], query_paths: list[Path],
                    probabilities: np.ndarray) -> str:
    """query, predicted class, then the probability of every class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["query", "predicted", *(f"p_{c}" for c in classes)])
    for path, row in zip(query_paths, probabilities):
        writer.writerow([str(path), classes[int(row.argmax())], *(f"{p:.6f}" for p in row)])
    return buffer.getvalue()
