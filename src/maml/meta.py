"""MAML's inner adaptation and meta-loss, second or first order (Finn et al. 2017, Alg. 2),
with MAML++'s multi-step loss (Antoniou et al. 2019); the update rule is `maml.inner`'s.

All tasks of a meta-batch (or of one group of it) adapt together: each has its own copy of
the weights along a leading task axis, and the gradient of the summed support losses with
respect to those copies is each task's own inner gradient, since tasks share nothing.
`tests/test_meta_gradient.py` checks the meta-gradient against finite differences.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Iterator

import numpy as np
import paddle

from maml import inner
from maml.inner import InnerLoop
from maml.model import (Params, accuracy, cross_entropy, forward, init_network, is_model_param,
                        per_task)
from maml.settings import QUERY_MODES
from maml.tasks import TaskBatch

# Images per group of tasks that share one graph: larger groups mean fewer, larger ops, but
# past about this size the tensors leave the cache and a meta-step gets slower again
# (benchmarks/README.md).
IMAGES_PER_GROUP = 1024


def as_tensors(batch: TaskBatch) -> tuple[paddle.Tensor, ...]:
    """(support_x, support_y, query_x, query_y) as Paddle tensors on the current device."""
    return tuple(paddle.to_tensor(a) for a in
                 (batch.support_x, batch.support_y, batch.query_x, batch.query_y))


def init_meta_params(settings: dict, seed: int, **network) -> Params:
    """Every meta-parameter of a run: the network (batch-norm scale and per-step rows as the
    settings say) and its inner rule's own, e.g. learned rates. `network`: `init_network`'s
    size arguments (the tests use a small network)."""
    model = init_network(settings["n_way"], seed=seed, bn_scale=settings["bn_scale"],
                        bn_steps=settings["inner_steps"] if settings["per_step_bn"] else None,
                        norm=settings["norm"], **network)
    return inner.for_settings(settings).with_own_params(model)


def adaptation(params: Params, loop: InnerLoop, x: paddle.Tensor, y: paddle.Tensor, steps: int,
               graph: str | None = "second") -> Iterator[Params]:
    """Each task's weights after 0, 1, ..., `steps` inner steps on its support set (x, y).

    The one inner loop of training and evaluation. `graph`: "second" keeps every step's
    graph, so the meta-gradient is exact (second order); "first" treats the inner gradients
    as constants (first order; the update itself, e.g. a learned rate, stays in the graph);
    None builds no graph into the meta-parameters (evaluation). Step `i` runs the support set
    with batch-norm row `i` (per-step batch norm) and updates with the rule's step-`i` rate.
    """
    fast = per_task(OrderedDict((n, p) for n, p in params.items() if is_model_param(n)),
                    x.shape[0])
    if graph is None:
        fast = _leaves(fast)
    yield fast
    adapted = loop.adapted(fast)
    for step in range(steps):
        inputs = fast if graph == "second" else _leaves(fast)
        loss = cross_entropy(forward(inputs, x, step, norm=loop.norm), y).sum()
        grads = paddle.grad(loss, [inputs[n] for n in adapted], create_graph=graph == "second")
        with paddle.set_grad_enabled(graph is not None):
            fast = OrderedDict(fast)
            for name, grad in zip(adapted, grads):
                fast[name] = loop.rule.update(params, name, fast[name], grad, step)
        if graph is None:
            fast = _leaves(fast)
        yield fast


def multi_step_weights(steps: int, iteration: int, anneal_iterations: int) -> list[float]:
    """MAML++'s per-step query-loss importance at `iteration`: uniform at first, shifting
    linearly to the last step over `anneal_iterations`, the other steps floored at 0.03/steps
    (`get_per_step_loss_importance_vector` in HowToTrainYourMAMLPytorch, per iteration instead
    of per epoch); after `anneal_iterations`, the last step's loss alone."""
    if iteration >= anneal_iterations:
        return [0.0] * (steps - 1) + [1.0]
    decay, floor = 1.0 / steps / anneal_iterations, 0.03 / steps
    weights = [max(1.0 / steps - iteration * decay, floor) for _ in range(steps - 1)]
    return weights + [min(1.0 / steps + iteration * (steps - 1) * decay,
                          1.0 - (steps - 1) * floor)]


def meta_loss(params: Params, loop: InnerLoop, support_x, support_y, query_x, query_y,
              steps: int, first_order: bool = False,
              step_weights: list[float] | None = None) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Mean post-adaptation query loss and accuracy over a batch of tasks, as one graph.

    The loss is the query loss after the last step, or with `step_weights` (MAML++'s
    multi-step loss) the query losses after each step so weighted. Inputs are stacked per
    task: support_x[T, n*k, 1, H, W], support_y[T, n*k], and the same for the query set.
    """
    weights = step_weights or [0.0] * (steps - 1) + [1.0]
    loss = 0.0
    for done, fast in enumerate(adaptation(params, loop, support_x, support_y, steps,
                                           "first" if first_order else "second")):
        if done and weights[done - 1]:
            logits = query_logits(fast, loop.norm, support_x, query_x, done - 1)
            loss = loss + weights[done - 1] * cross_entropy(logits, query_y).mean()
    return loss, accuracy(logits, query_y).mean()


def task_groups(num_tasks: int, images_per_task: int) -> list[slice]:
    """Near-equal consecutive groups of at most about IMAGES_PER_GROUP images each."""
    count = min(num_tasks, max(1, math.ceil(num_tasks * images_per_task / IMAGES_PER_GROUP)))
    bounds = np.linspace(0, num_tasks, count + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def meta_gradient(params: Params, loop: InnerLoop, support_x, support_y, query_x, query_y,
                  steps: int, first_order: bool = False, step_weights: list[float] | None = None):
    """(meta-loss, query accuracy, gradient of the meta-loss for each parameter).

    Computed group by group of tasks (each group's graph freed after its backward pass) and
    summed, weighted by group size: the same meta-gradient as one graph over all tasks. A
    parameter the loss does not reach (first order: per-step batch-norm rows used only by
    the support set) gets a zero gradient.
    """
    num_tasks = support_x.shape[0]
    images = support_x.shape[1] + query_x.shape[1]
    loss, acc, grads = 0.0, 0.0, None
    for group in task_groups(num_tasks, images):
        weight = (group.stop - group.start) / num_tasks
        group_loss, group_acc = meta_loss(params, loop, support_x[group], support_y[group],
                                          query_x[group], query_y[group], steps, first_order,
                                          step_weights)
        group_grads = paddle.grad(group_loss * weight, list(params.values()), allow_unused=True)
        group_grads = [paddle.zeros_like(p) if g is None else g
                       for p, g in zip(params.values(), group_grads)]
        grads = group_grads if grads is None else [a + b for a, b in zip(grads, group_grads)]
        loss, acc = loss + float(group_loss) * weight, acc + float(group_acc) * weight
    return loss, acc, grads


def adaptation_accuracies(params: Params, loop: InnerLoop, support_x, support_y, query_x,
                          query_y, steps: int) -> np.ndarray:
    """Query accuracy of each task after 0, 1, ..., `steps` inner steps: [T, steps + 1]
    (no meta-graph)."""
    return evaluation_accuracies(params, loop, support_x, support_y, query_x, query_y,
                                 steps)[0]


def evaluation_accuracies(params: Params, loop: InnerLoop, support_x, support_y, query_x,
                          query_y, steps: int, modes=()) -> tuple[np.ndarray, dict]:
    """`adaptation_accuracies`, and from the same adaptation each task's accuracy after the
    last step with the queries classified as each of `modes` says (QUERY_MODES): {mode: [T]}
    (float64, as `adapted_probabilities`' answers would score)."""
    accs, final = [], {}
    labels = query_y.numpy()
    for done, fast in enumerate(adaptation(params, loop, support_x, support_y, steps, None)):
        with paddle.no_grad():
            step = max(done - 1, 0)
            logits = query_logits(fast, loop.norm, support_x, query_x, step)
            accs.append(accuracy(logits, query_y).numpy())
            if done == steps:
                for mode in modes:
                    answers = query_logits(fast, loop.norm, support_x, query_x, step,
                                           mode).numpy().argmax(axis=2)
                    final[mode] = (answers == labels).mean(axis=1)
    return np.stack(accs, axis=1), final


def adapted_probabilities(params: Params, loop: InnerLoop, support_x, support_y, query_x,
                          steps: int, queries: str = "together") -> np.ndarray:
    """Each task's query class probabilities after `steps` inner steps, [T, Q, n] float64,
    the queries classified as `queries` says (QUERY_MODES)."""
    if queries not in QUERY_MODES:
        raise ValueError(f"queries: one of {QUERY_MODES}, got {queries!r}")
    *_, fast = adaptation(params, loop, support_x, support_y, steps, None)
    with paddle.no_grad():
        logits = query_logits(fast, loop.norm, support_x, query_x, max(steps - 1, 0), queries)
        logits = logits.numpy().astype(np.float64)
    logits -= logits.max(axis=2, keepdims=True)
    probabilities = np.exp(logits)
    return probabilities / probabilities.sum(axis=2, keepdims=True)


def query_logits(fast: Params, norm: str, support_x, query_x, step: int,
                 queries: str = "together") -> paddle.Tensor:
    """Logits [T, Q, n] of each task's queries after adaptation, normalised as the network
    was trained (`norm`, settings.NORMS). A batch-norm network classifies them as `queries`
    says (QUERY_MODES); every other kind classifies each query on its own by construction,
    with the support set's statistics (and, for TaskNorm, its own moments), whatever
    `queries` says."""
    if norm == "batch" and queries == "together":
        return forward(fast, query_x, step)
    if norm == "batch" and queries == "each":
        return _each_query_logits(fast, support_x, query_x, step)
    if norm == "instance":
        return forward(fast, query_x, step, norm=norm)
    shots = support_x.shape[1]
    both = paddle.concat([support_x, query_x], axis=1)
    return forward(fast, both, step, stats_images=shots, norm=norm)[:, shots:]


def _each_query_logits(fast: Params, support_x, query_x, step: int) -> paddle.Tensor:
    """Logits [T, Q, n] of each query run with its task's support set (batch-norm statistics
    over the support images and that query), a few queries at a time."""
    num_tasks, shots = support_x.shape[:2]
    queries = query_x.shape[1]
    chunk = max(1, IMAGES_PER_GROUP // ((shots + 1) * num_tasks))
    parts = []
    for start in range(0, queries, chunk):
        q = min(chunk, queries - start)
        support = support_x.unsqueeze(1).expand([num_tasks, q, *support_x.shape[1:]])
        one = query_x[:, start:start + q].unsqueeze(2)
        x = paddle.concat([support, one], axis=2).reshape([num_tasks * q, shots + 1,
                                                           *support_x.shape[2:]])
        weights = OrderedDict((name, paddle.repeat_interleave(p, q, axis=0))
                              for name, p in fast.items())
        parts.append(forward(weights, x, step)[:, -1].reshape([num_tasks, q, -1]))
    return paddle.concat(parts, axis=1)


def _leaves(params: Params) -> Params:
    """Graph-free copies that gradients can still be taken with respect to."""
    leaves = OrderedDict()
    for name, tensor in params.items():
        leaves[name] = tensor.detach()
        leaves[name].stop_gradient = False
    return leaves
