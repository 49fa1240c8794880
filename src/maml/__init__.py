"""Second-order MAML (Finn et al. 2017) on Omniglot, in PaddlePaddle."""

__version__ = "0.1.0"
