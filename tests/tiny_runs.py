"""A tiny training run on the real data, for tests of training and of evaluation."""

from maml.settings import resolve
from maml.train import train


TINY = dict(meta_batch=2, k_query=2, test_k_query=2, inner_steps=1, inner_lr=0.4,
            test_inner_steps=2, val_inner_steps=2, val_every=5, val_tasks=4, checkpoint_every=10)


def run(prepared, out, iterations, **kwargs):
    settings = resolve(5, 1, **{**TINY, "iterations": iterations, **kwargs.pop("s", {})})
    return train(settings, prepared["data_path"], prepared["splits"]["finn"], out,
                 progress=False, **kwargs)
