"""Seeded n-way k-shot episodes from a split part, with per-class 90-degree rotations, their
classes from any of the part's alphabets or all from one (as in Lake's one-shot runs).

A task is drawn as indices (classes, drawers, rotations) and only then turned into
images, so fixed test tasks are cheap to store and identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maml.settings import SettingsError


@dataclass(frozen=True)
class TaskIndices:
    """What defines a batch of tasks: classes[T, n], drawers[T, n, k + q], rotations[T, n]."""

    classes: np.ndarray
    drawers: np.ndarray
    rotations: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, item) -> "TaskIndices":
        return TaskIndices(self.classes[item], self.drawers[item], self.rotations[item])


@dataclass(frozen=True)
class TaskBatch:
    """Images as [T, n*k, 1, size, size] float32, labels as [T, n*k] int64 (same for query)."""

    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray


class TaskSampler:
    """Episodes over the characters `classes` (indices into `images[character, drawer]`).

    With `alphabets` (each class's alphabet), every task's classes come from one alphabet,
    drawn uniformly among those with at least n_way characters here."""

    def __init__(self, images: np.ndarray, classes, n_way: int, k_shot: int, k_query: int,
                 rotate: bool = True, alphabets=None):
        classes = np.asarray(classes, dtype=np.int64)
        drawers = images.shape[1]
        if min(n_way, k_shot, k_query) < 1:
            raise ValueError(f"n_way, k_shot and k_query must be positive, got "
                             f"{n_way}, {k_shot}, {k_query}")
        if n_way > len(classes):
            raise ValueError(f"n_way={n_way} exceeds the {len(classes)} classes of this part")
        if k_shot + k_query > drawers:
            raise ValueError(f"k_shot + k_query = {k_shot + k_query} exceeds the {drawers} "
                             f"drawings per character")
        self.images = images
        self.classes = classes
        self.n_way, self.k_shot, self.k_query = n_way, k_shot, k_query
        self.rotate = rotate
        self.alphabets = None if alphabets is None else _alphabet_groups(alphabets, classes,
                                                                         n_way)

    def describe(self) -> str:
        """Where the tasks' classes come from, for a run's log."""
        if self.alphabets is None:
            return f"tasks across alphabets, from {len(self.classes)} characters"
        used = sum(len(group) for group in self.alphabets.groups)
        return (f"tasks within one alphabet: {len(self.alphabets.groups)} of "
                f"{self.alphabets.total} alphabets have at least {self.n_way} characters "
                f"({used} of {len(self.classes)} characters)")

    def draw(self, rng: np.random.Generator, num_tasks: int) -> TaskIndices:
        """Distinct classes per task, distinct drawers per class, one rotation per class."""
        n, per_class = self.n_way, self.k_shot + self.k_query
        if self.alphabets is None:
            picks = np.argsort(rng.random((num_tasks, len(self.classes))), axis=1)[:, :n]
        else:
            groups = self.alphabets.groups
            chosen = rng.integers(0, len(groups), size=num_tasks)
            picks = np.stack([groups[g][np.argsort(rng.random(len(groups[g])))[:n]]
                              for g in chosen]).reshape(num_tasks, n)
        drawers = np.argsort(rng.random((num_tasks, n, self.images.shape[1])), axis=2)
        rotations = rng.integers(0, 4, size=(num_tasks, n))
        if not self.rotate:
            rotations = np.zeros_like(rotations)
        return TaskIndices(self.classes[picks], drawers[:, :, :per_class], rotations)

    def build(self, tasks: TaskIndices) -> TaskBatch:
        """Gather and rotate the images of `tasks`; label i is the task's i-th class."""
        x = self.images[tasks.classes[:, :, None], tasks.drawers]  # [T, n, k+q, H, W]
        for quarter_turns in (1, 2, 3):
            chosen = tasks.rotations == quarter_turns
            if chosen.any():
                x[chosen] = np.rot90(x[chosen], quarter_turns, axes=(-2, -1))
        num_tasks, n, _, height, width = x.shape
        k, q = self.k_shot, self.k_query
        labels = np.arange(n, dtype=np.int64)
        support = x[:, :, :k].reshape(num_tasks, n * k, 1, height, width)
        query = x[:, :, k:].reshape(num_tasks, n * q, 1, height, width)
        return TaskBatch(
            support_x=np.ascontiguousarray(support, dtype=np.float32),
            support_y=np.tile(np.repeat(labels, k), (num_tasks, 1)),
            query_x=np.ascontiguousarray(query, dtype=np.float32),
            query_y=np.tile(np.repeat(labels, q), (num_tasks, 1)),
        )

    def sample(self, rng: np.random.Generator, num_tasks: int) -> TaskBatch:
        return self.build(self.draw(rng, num_tasks))

    def fixed_tasks(self, seed: int, num_tasks: int) -> TaskIndices:
        """The same `num_tasks` tasks for every model tested with this seed and cell."""
        return self.draw(np.random.default_rng(seed), num_tasks)


@dataclass(frozen=True)
class AlphabetGroups:
    """Positions (into a sampler's classes) of each alphabet with enough characters."""

    groups: tuple[np.ndarray, ...]
    total: int  # the part's alphabets, those with too few characters included


def _alphabet_groups(alphabets, classes: np.ndarray, n_way: int) -> AlphabetGroups:
    alphabets = np.asarray(alphabets)
    if len(alphabets) != len(classes):
        raise ValueError(f"{len(alphabets)} alphabet names for {len(classes)} classes")
    names, inverse, counts = np.unique(alphabets, return_inverse=True, return_counts=True)
    if counts.max() < n_way:
        raise ValueError(f"n_way={n_way} exceeds the characters of every alphabet of this part "
                         f"(at most {counts.max()}): no task within one alphabet exists")
    return AlphabetGroups(tuple(np.flatnonzero(inverse == i) for i in range(len(names))
                                if counts[i] >= n_way), len(names))


# The settings that draw each stage's tasks: query size, rotation, alphabets (settings.py).
STAGE_KEYS = {"train": ("k_query", "rotate", "task_alphabets"),
              "val": ("k_query", "val_rotate", "val_task_alphabets"),
              "test": ("test_k_query", "test_rotate", "test_task_alphabets")}


def stage_sampler(data, characters, settings: dict, stage: str) -> TaskSampler:
    """The sampler of a run's training, validation or test tasks over `characters` (indices
    into `data`, a maml.data.Omniglot), as its settings for that stage say."""
    keys = STAGE_KEYS[stage]
    k_query, rotate, alphabets = (settings[key] for key in keys)
    characters = np.asarray(characters, dtype=np.int64)
    try:
        return TaskSampler(data.images, characters, settings["n_way"], settings["k_shot"],
                           k_query, rotate,
                           data.alphabet[characters] if alphabets == "within" else None)
    except ValueError as error:  # e.g. no alphabet of the part has n_way characters
        raise SettingsError(f"{keys[2]}: {alphabets}, split {settings['split']}, {stage} "
                            f"tasks: {error}") from None
