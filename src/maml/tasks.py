"""Seeded n-way k-shot episodes from a split part, with per-class 90-degree rotations.

A task is drawn as indices (classes, drawers, rotations) and only then turned into
images, so fixed test tasks are cheap to store and identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """Images as [T, n*k, 1, 28, 28] float32, labels as [T, n*k] int64 (same for query)."""

    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray


class TaskSampler:
    """Episodes over the characters `classes` (indices into `images[character, drawer]`)."""

    def __init__(self, images: np.ndarray, classes, n_way: int, k_shot: int, k_query: int,
                 rotate: bool = True):
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

    def draw(self, rng: np.random.Generator, num_tasks: int) -> TaskIndices:
        """Distinct classes per task, distinct drawers per class, one rotation per class."""
        n, per_class = self.n_way, self.k_shot + self.k_query
        picks = np.argsort(rng.random((num_tasks, len(self.classes))), axis=1)[:, :n]
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
