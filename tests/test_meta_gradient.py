"""The meta-gradient equals central finite differences of the meta-loss, for every method.

In float64 on a small version of the paper's network (same `forward`), over a meta-batch of
two tasks with two inner steps each, for MAML, cbfinn/maml's batch norm (offset only, outside
the inner loop), MAML++'s parameter kinds (learned per-step rates, per-step batch norm,
adapted or not) with the multi-step loss, ANIL (the head alone adapts) and Meta-SGD (a
learned rate per weight element). Second order against differences of the meta-loss;
first order against differences of the first-order surrogate, the query loss with every
inner gradient frozen at its value. Also: grouped computation equals one graph, and the
batched inner loop equals adapting one task at a time.
"""

from collections import OrderedDict

import numpy as np
import paddle
import pytest

from maml import meta
from maml import inner
from maml.inner import ElementRates, InnerLoop, LearnedRates, SGD, for_settings
from maml.model import accuracy, cross_entropy, forward, is_model_param, per_task
from maml.settings import INNER_RULES, LAYER_KINDS, resolve

STEPS, LR, N_WAY = 2, 0.5, 3
VARIANTS = {
    "maml": dict(method="maml"),
    "paper-bn": dict(method="maml", bn_scale=False, inner_adapts=["conv", "fc"]),
    "maml++": dict(method="maml++"),  # lslr, per-step bn outside the inner loop, msl
    "maml++, bn adapted": dict(method="maml++", inner_adapts=["conv", "bn", "fc"]),
    "anil": dict(method="maml", inner_adapts=["fc"]),  # the head alone adapts
    "meta-sgd": dict(method="maml", inner_rule="meta-sgd"),  # a learned rate per element
    # the normalisations (settings.NORMS) beyond batch norm, with each kind of batch norm
    "maml, meta": dict(method="maml", norm="meta"),  # queries with the support's statistics
    "maml++, meta": dict(method="maml++", norm="meta"),
    "maml, tasknorm-i": dict(method="maml", norm="tasknorm-i"),  # blend learned outside
    "maml++, tasknorm-i": dict(method="maml++", norm="tasknorm-i"),
    "paper-bn, tasknorm-i": dict(method="maml", bn_scale=False, inner_adapts=["conv", "fc"],
                                 norm="tasknorm-i"),
    "meta-sgd, instance": dict(method="maml", inner_rule="meta-sgd", norm="instance"),
}
MSL_WEIGHTS = [0.3, 0.7]


def make_problem(variant):
    paddle.set_device("cpu")
    rng = np.random.default_rng(0)
    settings = resolve(N_WAY, 2, preset=None, inner_steps=STEPS, inner_lr=LR,
                       **VARIANTS[variant])
    params = meta.init_meta_params(settings, seed=1, channels=4, blocks=2, dtype="float64")
    for name, p in params.items():  # away from the symmetric init: rows and rates differ
        p.set_value(p.numpy() + 0.1 * rng.standard_normal(p.shape))
    tasks = 2
    batch = (
        rng.random((tasks, N_WAY * 2, 1, 8, 8)),
        np.tile(np.repeat(np.arange(N_WAY), 2), (tasks, 1)),
        rng.random((tasks, N_WAY * 3, 1, 8, 8)),
        np.tile(np.repeat(np.arange(N_WAY), 3), (tasks, 1)),
    )
    weights = MSL_WEIGHTS if settings["multi_step_loss"] else None
    return params, for_settings(settings), [paddle.to_tensor(a) for a in batch], weights


@pytest.fixture(scope="module", params=list(VARIANTS))
def problem(request):
    return make_problem(request.param)


def finite_differences(params, loop, batch, weights, eps=1e-6):
    """Central differences of the (second-order) meta-loss, one coordinate at a time."""
    grads = []
    for p in params.values():
        base = p.numpy().copy()
        grad = np.zeros_like(base)
        for j in range(base.size):
            for sign in (1, -1):
                shifted = base.copy()
                shifted.flat[j] += sign * eps
                p.set_value(shifted)
                loss, _ = meta.meta_loss(params, loop, *batch, STEPS, step_weights=weights)
                grad.flat[j] += sign * float(loss) / (2 * eps)
        p.set_value(base)
        grads.append(grad)
    return grads


class FrozenGradients:
    """A rule that records each step's inner gradient once, then always uses the recorded one:
    the meta-loss through it is the first-order surrogate."""

    def __init__(self, rule):
        self.rule, self.recorded = rule, {}

    def update(self, params, name, weight, grad, step):
        fixed = self.recorded.setdefault((name, step), paddle.to_tensor(grad.numpy()))
        return self.rule.update(params, name, weight, fixed, step)


def relative_error(grads, reference):
    """Largest error over all parameters, relative to the largest gradient entry."""
    scale = max(np.abs(r).max() for r in reference)
    return max(np.abs(g.numpy() - r).max() for g, r in zip(grads, reference)) / scale


def test_the_variants_have_the_parameter_kinds_they_claim():
    names = {v: list(make_problem(v)[0]) for v in VARIANTS}
    shapes = {n: p.shape for n, p in make_problem("maml++")[0].items()}
    assert "bn0.weight" not in names["paper-bn"] and "bn0.bias" in names["paper-bn"]
    assert shapes["bn0.weight"] == [STEPS, 4] and shapes["bn1.bias"] == [STEPS, 4]
    assert shapes["lslr.conv0.weight"] == [STEPS]
    assert "lslr.bn0.weight" not in names["maml++"]  # batch norm outside the inner loop
    assert "lslr.bn0.weight" in names["maml++, bn adapted"]
    params, loop, *_ = make_problem("anil")
    assert loop.adapted(params) == ["fc.weight", "fc.bias"]
    params, loop, *_ = make_problem("meta-sgd")
    rates = {n: p.shape for n, p in params.items() if n.startswith("metasgd.")}
    assert rates == {f"metasgd.{n}": p.shape for n, p in params.items() if is_model_param(n)}
    assert isinstance(loop.rule, ElementRates) and loop.adapts == LAYER_KINDS
    assert not any(n.startswith("lslr") for n in names["maml"])
    assert isinstance(for_settings(resolve(5, 1, method="maml++", preset="laptop")).rule,
                      LearnedRates)


def test_second_order_meta_gradient_matches_finite_differences(problem):
    params, loop, batch, weights = problem
    reference = finite_differences(params, loop, batch, weights)
    _, _, grads = meta.meta_gradient(params, loop, *batch, STEPS, step_weights=weights)
    scale = max(np.abs(r).max() for r in reference)
    for name, g, r in zip(params, grads, reference):
        assert np.abs(r).max() > 1e-4 * scale, f"{name}: no meta-gradient to check"
        assert np.abs(g.numpy() - r).max() < 1e-6 * scale, name
    # and it is not the first-order gradient
    _, _, first = meta.meta_gradient(params, loop, *batch, STEPS, first_order=True,
                                     step_weights=weights)
    assert relative_error(first, reference) > 1e-2


def test_first_order_meta_gradient_matches_finite_differences_of_the_surrogate(problem):
    params, loop, batch, weights = problem
    frozen = loop.with_rule(FrozenGradients(loop.rule))
    meta.meta_loss(params, frozen, *batch, STEPS, step_weights=weights)  # records the gradients
    reference = finite_differences(params, frozen, batch, weights)
    _, _, grads = meta.meta_gradient(params, loop, *batch, STEPS, first_order=True,
                                     step_weights=weights)
    assert relative_error(grads, reference) < 1e-6


def test_groups_of_tasks_give_the_one_graph_meta_gradient(problem, monkeypatch):
    params, loop, batch, weights = problem
    loss, _ = meta.meta_loss(params, loop, *batch, STEPS, step_weights=weights)
    one_graph = paddle.grad(loss, list(params.values()))
    monkeypatch.setattr(meta, "IMAGES_PER_GROUP", 1)  # one task per group
    assert len(meta.task_groups(2, 15)) == 2
    grouped_loss, _, grouped = meta.meta_gradient(params, loop, *batch, STEPS,
                                                  step_weights=weights)
    assert abs(grouped_loss - float(loss)) < 1e-12
    for a, b in zip(one_graph, grouped):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-14)


def one_task(tensors, t):
    return [x[t:t + 1] for x in tensors]


def test_a_swapped_rule_keeps_the_loops_other_fields():
    loop = InnerLoop(SGD(0.1), ("fc",))
    swapped = loop.with_rule(LearnedRates(0.1, 2))
    assert isinstance(swapped.rule, LearnedRates) and swapped.adapts == ("fc",)


def test_every_inner_rule_name_has_its_rule():
    assert set(inner.RULES) == set(INNER_RULES)
    for name in INNER_RULES:
        settings = resolve(5, 1, inner_rule=name)
        assert for_settings(settings).rule.learned == (name != "sgd")


def test_meta_loss_is_the_post_adaptation_query_loss():
    """Plain MAML against each task adapted on its own, by hand, in its own graph."""
    params, loop, batch, _ = make_problem("maml")
    assert isinstance(loop.rule, SGD)
    loss, acc = meta.meta_loss(params, loop, *batch, STEPS)
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


def test_maml_plus_plus_loss_by_hand():
    """Learned rates, per-step batch norm outside the inner loop and the multi-step loss,
    written out for one task at a time."""
    params, loop, batch, weights = make_problem("maml++")
    loss, _ = meta.meta_loss(params, loop, *batch, STEPS, step_weights=weights)
    by_hand = 0.0
    for t in range(2):
        sx, sy, qx, qy = one_task(batch, t)
        fast = per_task(OrderedDict((n, p) for n, p in params.items()
                                    if not n.startswith("lslr")), 1)
        for step in range(STEPS):
            step_bn = OrderedDict((n, w[:, step] if n.startswith("bn") else w)
                                  for n, w in fast.items())
            names = [n for n in fast if not n.startswith("bn")]
            g = paddle.grad(cross_entropy(forward(step_bn, sx), sy).sum(),
                            [fast[n] for n in names], create_graph=True)
            for n, gi in zip(names, g):
                fast[n] = fast[n] - params[f"lslr.{n}"][step] * gi
            step_bn = OrderedDict((n, w[:, step] if n.startswith("bn") else w)
                                  for n, w in fast.items())
            by_hand += weights[step] * float(cross_entropy(forward(step_bn, qx), qy)[0]) / 2
    assert abs(float(loss) - by_hand) < 1e-12


def test_adaptation_accuracies_per_task(problem):
    params, loop, batch, _ = problem
    together = meta.adaptation_accuracies(params, loop, *batch, STEPS)
    assert together.shape == (2, STEPS + 1)
    for t in range(2):
        alone = meta.adaptation_accuracies(params, loop, *one_task(batch, t), STEPS)
        np.testing.assert_array_equal(alone[0], together[t])


def test_multi_step_weights_anneal_toward_the_last_step():
    steps, anneal = 5, 100
    assert meta.multi_step_weights(steps, 0, anneal) == pytest.approx([0.2] * 5)
    middle = meta.multi_step_weights(steps, 50, anneal)
    assert sum(middle) == pytest.approx(1.0)
    assert middle[0] == pytest.approx(0.2 - 50 / (5 * anneal)) and middle[0] == middle[3]
    late = meta.multi_step_weights(steps, 99, anneal)
    assert late[:4] == pytest.approx([0.03 / 5] * 4) and sum(late) == pytest.approx(1.0)
    assert meta.multi_step_weights(steps, anneal, anneal) == [0, 0, 0, 0, 1]
    assert meta.multi_step_weights(1, 0, anneal) == [1.0]
