"""Second-order MAML (Finn et al. 2017) on Omniglot, in PaddlePaddle."""

from maml import cpu  # noqa: F401  (CPU settings, before Paddle's first matrix product)

__version__ = "0.1.0"
