"""A model.npz read with its settings: the arrays its method needs, with their shapes and
finite values, checked before any command uses it (evaluate, ensembles, predict, Lake's runs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maml.data import DataError, split_hash
from maml.datasets import dataset_of
from maml.files import load_arrays, read_json
from maml.meta import init_meta_params
from maml.model import Params, arrays_to_params
from maml.settings import SettingsError, validate, with_defaults


def load_params(path: str | os.PathLike, settings: dict) -> Params:
    """The parameters of the model at `path`, trained with `settings` (its train.json's):
    every array its method and settings give a network (the inner rule's learned rates, per-step
    rows, TaskNorm's blend), no other, each of its shape and finite."""
    settings = with_defaults(settings)
    validate(settings)
    arrays = load_arrays(path)
    if "meta" in arrays or not any(key.startswith("conv0") for key in arrays):
        raise DataError(f"{path}: not a model.npz of this project (a training checkpoint? the "
                        "model is the model.npz that training writes beside train.json)")
    expected = {name: list(p.shape) for name, p in
                init_meta_params(settings, seed=0).items()}
    what = (f"a {settings['method']} model ({settings['n_way']}-way, norm {settings['norm']}) as "
            "its train.json says")
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or extra:
        raise DataError(f"{path}: not {what}: " + "; ".join(
            part for part in (f"missing {', '.join(missing[:4])}" if missing else "",
                              f"unexpected {', '.join(extra[:4])}" if extra else "") if part)
            + " (a model beside another run's train.json?)")
    for name, shape in expected.items():
        if list(arrays[name].shape) != shape:
            raise DataError(f"{path}: {name} has shape {list(arrays[name].shape)}, {what} "
                            f"needs {shape}")
        if not np.isfinite(arrays[name]).all():
            raise DataError(f"{path}: {name} has non-finite values")
    return arrays_to_params({name: arrays[name] for name in expected})


def read_training_record(model_path: str | os.PathLike) -> tuple[dict, int]:
    """The settings (every key present) and image size of the run that wrote `model_path`,
    from the train.json beside it: a model is adapted with its own run's inner loop."""
    path = Path(model_path)
    summary = path.parent / "train.json"
    if not summary.is_file():
        raise DataError(f"{summary}: not found; a model is adapted with the inner-loop settings "
                        "its training run wrote beside it")
    if not path.is_file():
        raise DataError(f"{path}: no model file (its run has a train.json but no model.npz: "
                        "a run whose model was not kept, or one still training)")
    record = read_json(summary)
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise DataError(f"{summary}: not a training record of this project (no \"settings\")")
    try:
        settings = with_defaults(record["settings"])
        # a train.json from before the record: its split's dataset's size, what it trained at
        size = record.get("image_size", dataset_of(settings["split"]).image_size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SettingsError(f"image_size: a number of pixels, got {size!r}")
        validate(settings)
    except SettingsError as error:
        raise DataError(f"{summary}: {error}") from None
    return settings, size


def check_split(model_path: str | os.PathLike, split: dict, split_path) -> None:
    """The split a model is evaluated with is the one it was trained on, by content, where
    its train.json records that (runs trained before it did are known by name only)."""
    summary = Path(model_path).parent / "train.json"
    recorded = read_json(summary).get("split_hash") if summary.is_file() else None
    if recorded is not None and recorded != split_hash(split):
        raise DataError(f"{split_path}: not the split {model_path} was trained on (its "
                        f"train.json records split {recorded}, this file is "
                        f"{split_hash(split)}): its test part could hold training characters")
