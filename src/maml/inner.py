"""Inner-loop update rules: how one adaptation step turns a gradient into new weights.

A rule is the one place a method's inner update lives (as HowToTrainYourMAMLPytorch's
`inner_loop_optimizers.py`). Its own learnable parameters, if any, are named tensors that
join the model's in one parameter dict, so the outer optimizer, the checkpoint and the
saved model treat them like any other weight; the model ignores names it does not know.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
import paddle

from maml.model import Params, is_model_param, layer_kind, to_tensor
from maml.settings import LAYER_KINDS


class SGD:
    """MAML's rule: w - lr * g, one fixed rate for every tensor and step."""

    learned = False

    def __init__(self, lr: float):
        self.lr = lr

    def own_params(self, adapted: Params) -> Params:
        return OrderedDict()

    def update(self, params: Params, name: str, weight: paddle.Tensor, grad: paddle.Tensor,
               step: int) -> paddle.Tensor:
        return weight - self.lr * grad


class LearnedRates:
    """MAML++'s LSLR: w - lr[name][step] * g, a rate per parameter tensor (each conv, batch-norm
    or linear weight and bias has its own) and per inner step, initialised to `lr` and learned
    by the outer loop. Steps beyond those trained (more steps at test) use the last step's rate.
    """

    PREFIX = "lslr."
    learned = True

    def __init__(self, lr: float, steps: int):
        self.lr, self.steps = lr, steps

    def own_params(self, adapted: Params) -> Params:
        return OrderedDict((self.PREFIX + name, to_tensor([self.lr] * self.steps, _dtype(p)))
                           for name, p in adapted.items())

    def update(self, params: Params, name: str, weight: paddle.Tensor, grad: paddle.Tensor,
               step: int) -> paddle.Tensor:
        rates = params[self.PREFIX + name]
        return weight - rates[min(step, rates.shape[0] - 1)] * grad


class ElementRates:
    """Meta-SGD's rule (Li, Zhou, Chen and Li 2017): w - alpha[name] * g, a learned rate for
    every element of every adapted tensor (its direction too: a rate may turn negative), the
    same at every step, initialised to `lr` (as learn2learn's MetaSGD) and learned by the outer
    loop."""

    PREFIX = "metasgd."
    learned = True

    def __init__(self, lr: float):
        self.lr = lr

    def own_params(self, adapted: Params) -> Params:
        return OrderedDict((self.PREFIX + name, to_tensor(np.full(p.shape, self.lr), _dtype(p)))
                           for name, p in adapted.items())

    def update(self, params: Params, name: str, weight: paddle.Tensor, grad: paddle.Tensor,
               step: int) -> paddle.Tensor:
        return weight - params[self.PREFIX + name] * grad


# The rules a run's `inner_rule` names (settings.INNER_RULES, a test ties them), each built
# from the run's settings; `lslr: true` picks MAML++'s LearnedRates instead.
RULES = {
    "sgd": lambda settings: SGD(settings["inner_lr"]),
    "meta-sgd": lambda settings: ElementRates(settings["inner_lr"]),
}


@dataclasses.dataclass(frozen=True)
class InnerLoop:
    """What a method's inner loop does: its rule, which layer kinds it adapts (all, as in
    MAML; all but batch norm's, which the outer loop alone then learns, as in cbfinn/maml and
    MAML++; the output layer alone, as in ANIL), and how the network it adapts normalises
    (settings.NORMS), which decides how queries are classified after it."""

    rule: object
    adapts: tuple[str, ...] = LAYER_KINDS
    norm: str = "batch"

    def adapted(self, names) -> list[str]:
        return [name for name in names if is_model_param(name)
                and layer_kind(name) in self.adapts]

    def with_rule(self, rule) -> InnerLoop:
        """The same loop with another rule (every other field kept)."""
        return dataclasses.replace(self, rule=rule)

    def with_own_params(self, model: Params) -> Params:
        """The model's parameters followed by the rule's own."""
        adapted = OrderedDict((name, model[name]) for name in self.adapted(model))
        return OrderedDict([*model.items(), *self.rule.own_params(adapted).items()])


def for_settings(settings: dict) -> InnerLoop:
    """The inner loop a run's settings ask for (`inner_rule` or `lslr`, `inner_adapts`,
    `inner_lr`, `inner_steps`, `norm`)."""
    rule = (LearnedRates(settings["inner_lr"], settings["inner_steps"]) if settings["lslr"]
            else RULES[settings["inner_rule"]](settings))
    return InnerLoop(rule, tuple(settings["inner_adapts"]), settings.get("norm", "batch"))


def _dtype(tensor: paddle.Tensor) -> str:
    return str(tensor.dtype).split(".")[-1]
