"""Inner-loop update rules: how one adaptation step turns a gradient into new weights.

A rule is the one place a method's inner update lives (as HowToTrainYourMAMLPytorch's
`inner_loop_optimizers.py`). Its own learnable parameters, if any, are named tensors that
join the model's in one parameter dict, so the outer optimizer, the checkpoint and the
saved model treat them like any other weight; the model ignores names it does not know.
"""

from __future__ import annotations

from collections import OrderedDict

import paddle

from maml.model import Params, is_model_param, to_tensor


class SGD:
    """MAML's rule: w - lr * g, one fixed rate for every tensor and step."""

    def __init__(self, lr: float):
        self.lr = lr

    def init_params(self, adapted: list[str], dtype: str = "float32") -> Params:
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

    def __init__(self, lr: float, steps: int):
        self.lr, self.steps = lr, steps

    def init_params(self, adapted: list[str], dtype: str = "float32") -> Params:
        return OrderedDict((self.PREFIX + name, to_tensor([self.lr] * self.steps, dtype))
                           for name in adapted)

    def update(self, params: Params, name: str, weight: paddle.Tensor, grad: paddle.Tensor,
               step: int) -> paddle.Tensor:
        rates = params[self.PREFIX + name]
        return weight - rates[min(step, rates.shape[0] - 1)] * grad


class InnerLoop:
    """What a method's inner loop does: its rule, and which model parameters it adapts (all of
    them, or all but batch norm's, which the outer loop alone then learns, as in cbfinn/maml
    and MAML++)."""

    def __init__(self, rule, adapt_bn: bool = True):
        self.rule, self.adapt_bn = rule, adapt_bn

    def adapted(self, names) -> list[str]:
        return [name for name in names if is_model_param(name)
                and (self.adapt_bn or not name.startswith("bn"))]

    def init_params(self, model: Params) -> Params:
        """The model's parameters followed by the rule's own."""
        dtype = str(next(iter(model.values())).dtype).split(".")[-1]
        return OrderedDict([*model.items(),
                            *self.rule.init_params(self.adapted(model), dtype).items()])


def for_settings(settings: dict) -> InnerLoop:
    """The inner loop a run's settings ask for (`lslr`, `inner_bn`, `inner_lr`, `inner_steps`)."""
    rule = (LearnedRates(settings["inner_lr"], settings["inner_steps"]) if settings["lslr"]
            else SGD(settings["inner_lr"]))
    return InnerLoop(rule, settings["inner_bn"])
