"""MAML's inner adaptation and meta-loss, second or first order (Finn et al. 2017, Alg. 2).

All tasks of a meta-batch (or of one group of it) adapt together: each has its own copy of
the weights along a leading task axis, and the gradient of the summed support losses with
respect to those copies is each task's own inner gradient, since tasks share nothing.
`tests/test_meta_gradient.py` checks the meta-gradient against finite differences.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import paddle

from maml.model import Params, accuracy, cross_entropy, forward, per_task
from maml.tasks import TaskBatch

# Images per group of tasks that share one graph: larger groups mean fewer, larger ops, but
# past about this size the tensors leave the cache and a meta-step gets slower again
# (benchmarks/README.md).
IMAGES_PER_GROUP = 1024


def as_tensors(batch: TaskBatch) -> tuple[paddle.Tensor, ...]:
    """(support_x, support_y, query_x, query_y) as Paddle tensors on the current device."""
    return tuple(paddle.to_tensor(a) for a in
                 (batch.support_x, batch.support_y, batch.query_x, batch.query_y))


def inner_gradients(fast: Params, x: paddle.Tensor, y: paddle.Tensor,
                    create_graph: bool) -> list[paddle.Tensor]:
    """Each task's gradient of its support loss with respect to its own weights."""
    loss = cross_entropy(forward(fast, x), y).sum()
    return paddle.grad(loss, list(fast.values()), create_graph=create_graph)


def adapt(fast: Params, x: paddle.Tensor, y: paddle.Tensor, steps: int, lr: float,
          first_order: bool = False) -> Params:
    """`steps` plain gradient steps of size `lr` on each task's support set, from `fast`
    (per-task weights).

    Second order keeps each step's graph so the meta-gradient flows through it; first
    order treats the inner gradients as constants.
    """
    for _ in range(steps):
        grads = inner_gradients(fast, x, y, create_graph=not first_order)
        fast = OrderedDict((name, w - lr * g) for (name, w), g in zip(fast.items(), grads))
    return fast


def meta_loss(params: Params, support_x, support_y, query_x, query_y, steps: int,
              lr: float, first_order: bool = False) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Mean post-adaptation query loss and accuracy over a batch of tasks, as one graph.

    Inputs are stacked per task: support_x[T, n*k, 1, H, W], support_y[T, n*k], and the
    same for the query set.
    """
    fast = adapt(per_task(params, support_x.shape[0]), support_x, support_y, steps, lr,
                 first_order)
    logits = forward(fast, query_x)
    return cross_entropy(logits, query_y).mean(), accuracy(logits, query_y).mean()


def task_groups(num_tasks: int, images_per_task: int) -> list[slice]:
    """Near-equal consecutive groups of at most about IMAGES_PER_GROUP images each."""
    count = min(num_tasks, max(1, math.ceil(num_tasks * images_per_task / IMAGES_PER_GROUP)))
    bounds = np.linspace(0, num_tasks, count + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def meta_gradient(params: Params, support_x, support_y, query_x, query_y, steps: int,
                  lr: float, first_order: bool = False):
    """(meta-loss, query accuracy, gradient of the meta-loss for each parameter).

    Computed group by group of tasks (each group's graph freed after its backward pass) and
    summed, weighted by group size: the same meta-gradient as one graph over all tasks.
    """
    num_tasks = support_x.shape[0]
    images = support_x.shape[1] + query_x.shape[1]
    loss, acc, grads = 0.0, 0.0, None
    for group in task_groups(num_tasks, images):
        weight = (group.stop - group.start) / num_tasks
        group_loss, group_acc = meta_loss(params, support_x[group], support_y[group],
                                          query_x[group], query_y[group], steps, lr,
                                          first_order)
        group_grads = paddle.grad(group_loss * weight, list(params.values()))
        grads = group_grads if grads is None else [a + b for a, b in zip(grads, group_grads)]
        loss, acc = loss + float(group_loss) * weight, acc + float(group_acc) * weight
    return loss, acc, grads


def adaptation_accuracies(params: Params, support_x, support_y, query_x, query_y,
                          steps: int, lr: float) -> np.ndarray:
    """Query accuracy of each task after 0, 1, ..., `steps` inner steps: [T, steps + 1]
    (no meta-graph: each step starts from detached weights)."""
    fast = OrderedDict((name, _leaf(w)) for name, w in per_task(params, support_x.shape[0]).items())
    accs = []
    for step in range(steps + 1):
        if step:
            grads = inner_gradients(fast, support_x, support_y, create_graph=False)
            fast = OrderedDict((n, _leaf(w - lr * g)) for (n, w), g in zip(fast.items(), grads))
        with paddle.no_grad():
            accs.append(accuracy(forward(fast, query_x), query_y).numpy())
    return np.stack(accs, axis=1)


def _leaf(tensor: paddle.Tensor) -> paddle.Tensor:
    """A graph-free copy that gradients can still be taken with respect to."""
    leaf = tensor.detach()
    leaf.stop_gradient = False
    return leaf
