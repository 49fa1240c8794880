"""The second-order meta-gradient equals central finite differences of the meta-loss.

In float64 on a small version of the paper's network (same `forward`), over a meta-batch
of two tasks with two inner steps each. Also: the grouped computation equals one graph, and
the batched inner loop equals adapting one task at a time.
"""

from collections import OrderedDict

import numpy as np
import paddle
import pytest

from maml import meta
from maml.model import accuracy, cross_entropy, forward, init_params, per_task

STEPS, LR, N_WAY = 2, 0.5, 3


@pytest.fixture(scope="module")
def problem():
    paddle.set_device("cpu")
    rng = np.random.default_rng(0)
    params = init_params(N_WAY, channels=4, blocks=2, seed=1, dtype="float64")
    tasks = 2
    batch = (
        rng.random((tasks, N_WAY * 2, 1, 8, 8)),
        np.tile(np.repeat(np.arange(N_WAY), 2), (tasks, 1)),
        rng.random((tasks, N_WAY * 3, 1, 8, 8)),
        np.tile(np.repeat(np.arange(N_WAY), 3), (tasks, 1)),
    )
    return params, [paddle.to_tensor(a) for a in batch]


def finite_differences(params, batch, eps=1e-6):
    """Central differences of the second-order meta-loss, one coordinate at a time."""
    grads = []
    for p in params.values():
        base = p.numpy().copy()
        grad = np.zeros_like(base)
        for j in range(base.size):
            for sign in (1, -1):
                shifted = base.copy()
                shifted.flat[j] += sign * eps
                p.set_value(shifted)
                loss, _ = meta.meta_loss(params, *batch, STEPS, LR)
                grad.flat[j] += sign * float(loss) / (2 * eps)
        p.set_value(base)
        grads.append(grad)
    return grads


@pytest.fixture(scope="module")
def reference_gradient(problem):
    return finite_differences(*problem)


def relative_error(grads, reference):
    """Largest error over all parameters, relative to the largest gradient entry."""
    scale = max(np.abs(r).max() for r in reference)
    return max(np.abs(g.numpy() - r).max() for g, r in zip(grads, reference)) / scale


def test_second_order_meta_gradient_matches_finite_differences(problem, reference_gradient):
    params, batch = problem
    _, _, grads = meta.meta_gradient(params, *batch, STEPS, LR)
    names = list(params)
    for name, g, r in zip(names, grads, reference_gradient):
        scale = max(np.abs(r).max() for r in reference_gradient)
        assert np.abs(g.numpy() - r).max() < 1e-6 * scale, name
    assert relative_error(grads, reference_gradient) < 1e-6


def test_first_order_meta_gradient_differs(problem, reference_gradient):
    params, batch = problem
    _, _, grads = meta.meta_gradient(params, *batch, STEPS, LR, first_order=True)
    assert relative_error(grads, reference_gradient) > 1e-2


def test_groups_of_tasks_give_the_one_graph_meta_gradient(problem, monkeypatch):
    params, batch = problem
    loss, _ = meta.meta_loss(params, *batch, STEPS, LR)
    one_graph = paddle.grad(loss, list(params.values()))
    monkeypatch.setattr(meta, "IMAGES_PER_GROUP", 1)  # one task per group
    assert len(meta.task_groups(2, 15)) == 2
    grouped_loss, _, grouped = meta.meta_gradient(params, *batch, STEPS, LR)
    assert abs(grouped_loss - float(loss)) < 1e-12
    for a, b in zip(one_graph, grouped):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-14)


def one_task(tensors, t):
    return [x[t:t + 1] for x in tensors]


def test_meta_loss_is_the_post_adaptation_query_loss(problem):
    """Against each task adapted on its own, by hand, in its own graph."""
    params, batch = problem
    loss, acc = meta.meta_loss(params, *batch, STEPS, LR)
    by_hand, hand_acc = 0.0, 0.0
    for t in range(2):
        sx, sy, qx, qy = one_task(batch, t)
        fast = per_task(params, 1)
        for _ in range(STEPS):
            g = paddle.grad(cross_entropy(forward(fast, sx), sy).sum(), list(fast.values()))
            fast = OrderedDict((n, (w - LR * gi)) for (n, w), gi in zip(fast.items(), g))
        by_hand += float(cross_entropy(forward(fast, qx), qy)[0]) / 2
        hand_acc += float(accuracy(forward(fast, qx), qy)[0]) / 2
    assert abs(float(loss) - by_hand) < 1e-12
    assert abs(float(acc) - hand_acc) < 1e-6  # accuracies are float32


def test_adaptation_accuracies_per_task(problem):
    params, batch = problem
    together = meta.adaptation_accuracies(params, *batch, STEPS, LR)
    assert together.shape == (2, STEPS + 1)
    for t in range(2):
        alone = meta.adaptation_accuracies(params, *one_task(batch, t), STEPS, LR)
        np.testing.assert_array_equal(alone[0], together[t])
