"""A trained model on another cell than its own: the same number of ways with other shots or
queries, or fewer ways.

MAML adapts a fixed n-unit output layer, whose units are interchangeable slots that the inner
loop fills with the support set's classes (every task draws its classes afresh, in random
order). A model trained on n-way tasks serves an m-way task, m < n, with the first m units of
its head (and of anything its inner rule keeps per head element); that this is sound is
measured on validation (results/selection.md), not assumed. More ways than trained would need
units the model does not have, and is refused.
"""

from __future__ import annotations

from collections import OrderedDict

from maml.model import Params
from maml.settings import SettingsError, cell_name, validate

HEAD = ("fc.weight", "fc.bias")


def serving_settings(settings: dict, n_way: int, k_shot: int, k_query: int) -> dict:
    """A model's settings (its training run's) for testing on n-way k-shot tasks with
    `k_query` queries per class; its inner loop and test steps stay its own."""
    trained = settings["n_way"]
    if n_way > trained:
        raise SettingsError(
            f"cell: {cell_name(n_way, k_shot)} has more ways than the model was trained with "
            f"({cell_name(trained, settings['k_shot'])}: its output layer has {trained} units); "
            f"a model serves {trained}-way tasks or fewer ways")
    tested = {**settings, "n_way": n_way, "k_shot": k_shot, "test_k_query": k_query}
    validate(tested)
    return tested


def head_for(params: Params, n_way: int) -> Params:
    """The parameters with the output layer cut to its first `n_way` units (and any rule
    parameter shaped as a head tensor, e.g. Meta-SGD's per-element rates)."""
    shapes = {name: p.shape for name, p in params.items() if name in HEAD}
    cut = OrderedDict()
    for name, p in params.items():
        base = next((h for h in HEAD if name == h or name.endswith("." + h)), None)
        cut[name] = p[..., :n_way] if base and p.shape == shapes[base] else p
    return cut


def trained_and_tested(settings: dict, tested: dict) -> dict:
    """The cells a result records: the one the model was trained on and the one it was
    tested on."""
    return {"trained_on": cell_name(settings["n_way"], settings["k_shot"]),
            "tested_on": cell_name(tested["n_way"], tested["k_shot"])}
