"""The second-order meta-gradient equals central finite differences of the meta-loss.

In float64 on a small version of the paper's network (same `forward`), over a meta-batch
of two tasks with two inner steps each. Also shows the Paddle 3.3 conv2d trap is real:
the naive inner gradient (without the input in the grad call) gives a wrong meta-gradient.
"""

from collections import OrderedDict

import numpy as np
import paddle
import pytest

from maml import meta
from maml.model import cross_entropy, forward, init_params

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


def naive_adapt(params, x, y, steps, lr, first_order=False):
    """Inner loop WITHOUT the conv2d workaround: grads w.r.t. the weights only."""
    fast = params
    for _ in range(steps):
        loss = cross_entropy(forward(fast, x), y)
        grads = paddle.grad(loss, list(fast.values()), create_graph=not first_order)
        fast = OrderedDict((n, w - lr * g) for (n, w), g in zip(fast.items(), grads))
    return fast


def test_the_conv2d_trap_is_real(problem, reference_gradient, monkeypatch):
    """Without the workaround this Paddle returns a wrong meta-gradient, silently."""
    params, batch = problem
    monkeypatch.setattr(meta, "adapt", naive_adapt)
    _, _, grads = meta.meta_gradient(params, *batch, STEPS, LR)
    assert relative_error(grads, reference_gradient) > 1e-2


def test_meta_loss_is_the_post_adaptation_query_loss(problem):
    params, (sx, sy, qx, qy) = problem
    loss, _ = meta.meta_loss(params, sx, sy, qx, qy, STEPS, LR)
    by_hand = 0.0
    for t in range(2):
        fast = OrderedDict(params)
        for _ in range(STEPS):
            g = paddle.grad(cross_entropy(forward(fast, sx[t]), sy[t]), list(fast.values()))
            fast = OrderedDict((n, (w - LR * gi)) for (n, w), gi in zip(fast.items(), g))
        by_hand += float(cross_entropy(forward(fast, qx[t]), qy[t])) / 2
    assert abs(float(loss) - by_hand) < 1e-12
