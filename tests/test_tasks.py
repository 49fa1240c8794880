"""The episode sampler on the real data: shapes, labels, rotations, alphabets, determinism."""

import numpy as np
import pytest

from maml import data
from maml.settings import SettingsError, resolve
from maml.tasks import TaskSampler, stage_sampler


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


def _within(prepared, split, part, n_way, **settings):
    omniglot = prepared["data"]
    characters = data.load_split(prepared["splits"][split])["parts"][part]
    settings = {**resolve(n_way, 1, split=split), "test_task_alphabets": "within", "test_rotate": False,
                **settings}
    return omniglot, stage_sampler(omniglot, characters, settings, "test")


def test_within_alphabet_tasks_share_one_alphabet(prepared):
    """Lake's runs' kind of task: all 20 classes from one evaluation alphabet, unrotated."""
    omniglot, sampler = _within(prepared, "lake", "test", 20)
    tasks = sampler.draw(np.random.default_rng(0), 300)
    alphabets = omniglot.alphabet[tasks.classes]
    assert (alphabets == alphabets[:, :1]).all()
    assert all(len(set(row)) == 20 for row in tasks.classes)
    assert (tasks.rotations == 0).all()
    # every evaluation alphabet has 20 or more characters, and each is drawn
    assert len(set(alphabets[:, 0])) == 20
    assert sampler.describe() == ("tasks within one alphabet: 20 of 20 alphabets have at least "
                                  "20 characters (659 of 659 characters)")


def test_within_alphabet_tasks_are_seeded(prepared):
    _, sampler = _within(prepared, "lake", "test", 20)
    a, b = sampler.fixed_tasks(3, 40), sampler.fixed_tasks(3, 40)
    assert np.array_equal(a.classes, b.classes) and np.array_equal(a.drawers, b.drawers)
    assert not np.array_equal(a.classes, sampler.fixed_tasks(4, 40).classes)


def test_within_alphabet_leaves_out_small_alphabets(prepared):
    """The lake split's training part has background alphabets of 14 to 55 characters: the
    four with fewer than 20 are left out of 20-way tasks, and never drawn."""
    omniglot, sampler = _within(prepared, "lake_alphabets", "train", 20)
    tasks = sampler.draw(np.random.default_rng(0), 500)
    names, counts = np.unique(omniglot.alphabet[sampler.classes], return_counts=True)
    small = set(names[counts < 20])
    assert small and not small & set(omniglot.alphabet[tasks.classes].ravel())
    assert sampler.describe().startswith(f"tasks within one alphabet: {len(names) - len(small)} "
                                         f"of {len(names)} alphabets")


def test_within_alphabet_needs_an_alphabet_large_enough(prepared):
    with pytest.raises(SettingsError, match="test_task_alphabets: within, split lake_alphabets, "
                       "test tasks: n_way=49 exceeds .* no task within one alphabet exists"):
        _within(prepared, "lake_alphabets", "val", 49)


def test_across_alphabets_stays_the_default(prepared):
    """Today's tasks (and so every committed number) are unchanged by the new settings."""
    omniglot = prepared["data"]
    characters = data.load_split(prepared["splits"]["finn"])["parts"]["test"]
    old = TaskSampler(omniglot.images, characters, 5, 1, 15).fixed_tasks(0, 50)
    new = stage_sampler(omniglot, characters, resolve(5, 1), "test").fixed_tasks(0, 50)
    for field in ("classes", "drawers", "rotations"):
        assert np.array_equal(getattr(old, field), getattr(new, field))
