"""The dataset registry: each dataset one entry of datasets.yaml, read into a `Dataset`. The
rest of the package asks here what a dataset is (archives, sizes, splits, published numbers)
instead of stating it again; a run's split names its dataset."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import yaml

SPLIT_KINDS = ("shuffled", "held_out_characters", "held_out_alphabets")
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Archive:
    name: str  # file stem: <name>.zip
    md5: str
    subset: str  # which characters it holds, e.g. background
    alphabets: int
    characters: int


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # folder or address of the archives
    archives: tuple[Archive, ...]
    raw_size: int | None  # the archives' image size (checked), or None: any size
    image_size: int  # what the network sees
    drawers: int  # drawings of each character
    splits: dict  # split name -> {kind, train, val, test, ...}
    published: dict  # cell -> {paper: [mean, ci95], reference, maml++}
    one_shot_runs: dict | None = None  # Lake's runs: {file, md5, source, splits}

    @property
    def data_file(self) -> str:
        """Where the preprocessed images are, relative to the working folder."""
        return f"resources/{self.name}/{self.name}{self.image_size}.npz"

    @property
    def split_files(self) -> str:
        return f"resources/{self.name}/splits/{{split}}.json"

    @property
    def runs_file(self) -> str | None:
        """Where Lake's one-shot runs archive is, for the dataset that has them."""
        if not self.one_shot_runs:
            return None
        return f"resources/{self.name}/{self.one_shot_runs['file']}.zip"

    def split_sizes(self, split: str) -> dict[str, int]:
        return {part: self.splits[split][part] for part in PARTS}

    def published_number(self, cell: str, source: str):
        """A published accuracy of `source` (paper, reference, maml++) for `cell`, or None."""
        return self.published.get(cell, {}).get(source)


def _dataset(name: str, entry: dict) -> Dataset:
    archives = tuple(Archive(stem, **fields) for stem, fields in entry["archives"].items())
    for split, spec in entry["splits"].items():
        if spec.get("kind") not in SPLIT_KINDS or not all(part in spec for part in PARTS):
            raise ValueError(f"datasets.yaml: {name}'s split {split}: a kind of {SPLIT_KINDS} "
                             f"and the sizes of {PARTS}")
    return Dataset(name=name, archives=archives, **{k: v for k, v in entry.items()
                                                     if k != "archives"})


@functools.lru_cache(maxsize=None)
def datasets() -> dict[str, Dataset]:
    return registry_from(
        yaml.safe_load(resources.files("maml").joinpath("datasets.yaml").read_text()))


def registry_from(entries: dict) -> dict[str, Dataset]:
    """datasets.yaml's entries as `Dataset`s, checked."""
    registry = {name: _dataset(name, entry) for name, entry in entries.items()}
    splits = [split for dataset in registry.values() for split in dataset.splits]
    if len(splits) != len(set(splits)):
        raise ValueError(f"datasets.yaml: a split name is used twice ({splits}); a run's "
                         "split must name its dataset")
    return registry


def dataset_of(split: str) -> Dataset:
    """The dataset a split belongs to (ValueError for an unknown split)."""
    for dataset in datasets().values():
        if split in dataset.splits:
            return dataset
    raise ValueError(f"unknown split {split!r}")


def one_shot_runs_dataset() -> Dataset:
    """The dataset whose entry has Lake's one-shot runs."""
    return next(dataset for dataset in datasets().values() if dataset.one_shot_runs)


def all_splits() -> dict[str, dict[str, int]]:
    """Every split of every dataset -> its part sizes."""
    return {split: dataset.split_sizes(split) for dataset in datasets().values()
            for split in dataset.splits}


OMNIGLOT = datasets()["omniglot"]
