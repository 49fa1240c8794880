"""The episode sampler on the real data: shapes, labels, rotations, determinism."""

import numpy as np
import pytest

from maml import data
from maml.tasks import TaskSampler


@pytest.fixture(scope="module")
def finn(prepared):
    return prepared["data"].images, data.load_split(prepared["splits"]["finn"])["parts"]


def test_shapes_and_labels(finn):
    images, parts = finn
    sampler = TaskSampler(images, parts["train"], n_way=5, k_shot=2, k_query=3)
    batch = sampler.sample(np.random.default_rng(0), 4)
    assert batch.support_x.shape == (4, 10, 1, 28, 28)
    assert batch.query_x.shape == (4, 15, 1, 28, 28)
    assert batch.support_x.dtype == np.float32 and batch.support_y.dtype == np.int64
    assert (batch.support_y == np.repeat(np.arange(5), 2)).all()
    assert (batch.query_y == np.repeat(np.arange(5), 3)).all()


def test_images_match_classes_drawers_and_rotations(finn):
    images, parts = finn
    sampler = TaskSampler(images, parts["train"], n_way=5, k_shot=1, k_query=2)
    tasks = sampler.draw(np.random.default_rng(3), 8)
    batch = sampler.build(tasks)
    assert set(np.unique(tasks.rotations)) == {0, 1, 2, 3}
    for t in range(8):
        for c in range(5):
            char, rot = tasks.classes[t, c], tasks.rotations[t, c]
            expect = np.rot90(images[char, tasks.drawers[t, c, 0]], rot)
            assert np.array_equal(batch.support_x[t, c, 0], expect)
            for j in range(2):
                expect = np.rot90(images[char, tasks.drawers[t, c, 1 + j]], rot)
                assert np.array_equal(batch.query_x[t, 2 * c + j, 0], expect)


def test_distinct_classes_and_drawers(finn):
    images, parts = finn
    sampler = TaskSampler(images, parts["val"], n_way=20, k_shot=5, k_query=15)
    tasks = sampler.draw(np.random.default_rng(1), 50)
    for t in range(50):
        assert len(set(tasks.classes[t])) == 20
        assert set(tasks.classes[t]) <= set(parts["val"])
        for c in range(20):
            assert len(set(tasks.drawers[t, c])) == 20


def test_no_rotation_switch(finn):
    images, parts = finn
    sampler = TaskSampler(images, parts["train"], 5, 1, 1, rotate=False)
    assert (sampler.draw(np.random.default_rng(0), 20).rotations == 0).all()


def test_deterministic_and_seed_dependent(finn):
    images, parts = finn
    sampler = TaskSampler(images, parts["test"], 5, 1, 15)
    a = sampler.build(sampler.fixed_tasks(7, 30))
    b = sampler.build(sampler.fixed_tasks(7, 30))
    c = sampler.build(sampler.fixed_tasks(8, 30))
    assert np.array_equal(a.query_x, b.query_x) and np.array_equal(a.support_x, b.support_x)
    assert not np.array_equal(a.support_x, c.support_x)
    # a fixed, machine-independent stream: the first task's classes for seed 7
    first = sampler.fixed_tasks(7, 1).classes[0]
    rng = np.random.default_rng(7)
    expected = np.asarray(parts["test"])[np.argsort(rng.random((1, 423)), axis=1)[0, :5]]
    assert np.array_equal(first, expected)


def test_parts_never_share_a_class(finn):
    images, parts = finn
    seen = {}
    for part in ("train", "val", "test"):
        sampler = TaskSampler(images, parts[part], 5, 1, 1)
        seen[part] = set(sampler.draw(np.random.default_rng(0), 500).classes.ravel())
    assert not seen["train"] & seen["val"]
    assert not seen["train"] & seen["test"]
    assert not seen["val"] & seen["test"]


@pytest.mark.parametrize("n_way,k_shot,k_query,match", [
    (101, 1, 1, "n_way=101 exceeds the 100 classes"),
    (5, 6, 15, "k_shot \\+ k_query = 21 exceeds"),
    (5, 0, 1, "must be positive"),
])
def test_impossible_tasks_rejected(finn, n_way, k_shot, k_query, match):
    images, parts = finn
    with pytest.raises(ValueError, match=match):
        TaskSampler(images, parts["val"], n_way, k_shot, k_query)
