"""MAML's inner adaptation and meta-loss, second or first order (Finn et al. 2017, Alg. 2).

The Paddle 3.3 trap: in eager mode, `paddle.grad(..., create_graph=True)` through
`conv2d` silently returns wrong second-order terms unless the gradient with respect to
the convolution's input is requested in the same call. Each inner step therefore feeds
the network a fresh leaf copy of the support images with `stop_gradient=False` and asks
for its gradient too (then drops it). A fresh leaf per step keeps that extra target from
pulling the backward pass into earlier steps' graphs. `tests/test_meta_gradient.py`
checks the result against finite differences.
"""

from __future__ import annotations

from collections import OrderedDict

import paddle

from maml.model import Params, accuracy, cross_entropy, forward
from maml.tasks import TaskBatch


def as_tensors(batch: TaskBatch) -> tuple[paddle.Tensor, ...]:
    """(support_x, support_y, query_x, query_y) as Paddle tensors on the current device."""
    return tuple(paddle.to_tensor(a) for a in
                 (batch.support_x, batch.support_y, batch.query_x, batch.query_y))


def _leaf(tensor: paddle.Tensor) -> paddle.Tensor:
    """A graph-free copy that gradients can still be taken with respect to."""
    leaf = tensor.detach()
    leaf.stop_gradient = False
    return leaf


def inner_gradients(params: Params, x: paddle.Tensor, y: paddle.Tensor,
                    create_graph: bool) -> list[paddle.Tensor]:
    """Gradients of the support loss with respect to `params`, safe through conv2d."""
    leaf = _leaf(x)  # the workaround: request d(loss)/d(input) as well
    loss = cross_entropy(forward(params, leaf), y)
    grads = paddle.grad(loss, [*params.values(), leaf], create_graph=create_graph)
    return grads[:-1]


def adapt(params: Params, x: paddle.Tensor, y: paddle.Tensor, steps: int, lr: float,
          first_order: bool = False) -> Params:
    """`steps` plain gradient steps of size `lr` on the support set, from `params`.

    Second order keeps each step's graph so the meta-gradient flows through it; first
    order treats the inner gradients as constants.
    """
    fast = params
    for _ in range(steps):
        grads = inner_gradients(fast, x, y, create_graph=not first_order)
        fast = OrderedDict((name, w - lr * g) for (name, w), g in zip(fast.items(), grads))
    return fast


def meta_loss(params: Params, support_x, support_y, query_x, query_y, steps: int,
              lr: float, first_order: bool = False) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Mean post-adaptation query loss and accuracy over a meta-batch of tasks.

    Inputs are stacked per task: support_x[T, n*k, 1, H, W], support_y[T, n*k], and the
    same for the query set.
    """
    num_tasks = support_x.shape[0]
    total_loss, total_acc = 0.0, 0.0
    for t in range(num_tasks):
        fast = adapt(params, support_x[t], support_y[t], steps, lr, first_order)
        logits = forward(fast, query_x[t])
        total_loss = total_loss + cross_entropy(logits, query_y[t])
        total_acc = total_acc + accuracy(logits, query_y[t])
    return total_loss / num_tasks, total_acc / num_tasks


def meta_gradient(params: Params, support_x, support_y, query_x, query_y, steps: int,
                  lr: float, first_order: bool = False):
    """(meta-loss, query accuracy, gradient of the meta-loss for each parameter)."""
    loss, acc = meta_loss(params, support_x, support_y, query_x, query_y, steps, lr,
                          first_order)
    grads = paddle.grad(loss, list(params.values()))
    return loss, acc, grads


def adaptation_accuracies(params: Params, support_x, support_y, query_x, query_y,
                          steps: int, lr: float) -> list[float]:
    """Query accuracy of one task after 0, 1, ..., `steps` inner steps (no meta-graph)."""
    fast = OrderedDict((name, _leaf(w)) for name, w in params.items())
    accs = []
    for step in range(steps + 1):
        if step:
            grads = inner_gradients(fast, support_x, support_y, create_graph=False)
            fast = OrderedDict((n, _leaf(w - lr * g)) for (n, w), g in zip(fast.items(), grads))
        with paddle.no_grad():
            accs.append(float(accuracy(forward(fast, query_x), query_y)))
    return accs
