"""The paper's Omniglot network as a pure function of explicit, named parameters.

`forward(params, x)` is the one model definition used by training, evaluation and the
tests. Batch norm and the loss are written from primitive ops because Paddle's eager
mode has no second derivative for `F.cross_entropy`, `F.log_softmax` or an all-element
`mean`, and its batch-norm double-grad kernel dominates a CPU meta-step.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import paddle
import paddle.nn.functional as F

Params = "OrderedDict[str, paddle.Tensor]"
BN_EPS = 1e-5


def init_params(n_way: int, channels: int = 64, blocks: int = 4, in_channels: int = 1,
                seed: int = 0, dtype: str = "float32") -> Params:
    """Ordered, named parameters; conv and linear weights Glorot-uniform, as in cbfinn/maml.

    Drawn with numpy from `seed`, so the same seed gives the same network on any device.
    """
    rng = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)

    arrays = OrderedDict()
    cin = in_channels
    for b in range(blocks):
        arrays[f"conv{b}.weight"] = glorot((channels, cin, 3, 3), cin * 9, channels * 9)
        arrays[f"conv{b}.bias"] = np.zeros(channels)
        arrays[f"bn{b}.weight"] = np.ones(channels)
        arrays[f"bn{b}.bias"] = np.zeros(channels)
        cin = channels
    arrays["fc.weight"] = glorot((channels, n_way), channels, n_way)
    arrays["fc.bias"] = np.zeros(n_way)
    return OrderedDict((name, to_tensor(value, dtype)) for name, value in arrays.items())


def to_tensor(value, dtype: str = "float32", trainable: bool = True) -> paddle.Tensor:
    tensor = paddle.to_tensor(np.asarray(value), dtype=dtype)
    tensor.stop_gradient = not trainable
    return tensor


def num_blocks(params: Params) -> int:
    return sum(name.endswith(".weight") and name.startswith("conv") for name in params)


def batch_norm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """Batch norm over (N, H, W) with the current batch's statistics, from primitives."""
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.sum(axis=[0, 2, 3], keepdim=True) / count
    centred = x - mean
    var = (centred * centred).sum(axis=[0, 2, 3], keepdim=True) / count
    scale = weight.reshape([1, -1, 1, 1]) * paddle.rsqrt(var + BN_EPS)
    return centred * scale + bias.reshape([1, -1, 1, 1])


def forward(params: Params, x: paddle.Tensor) -> paddle.Tensor:
    """Four blocks of conv(3x3, stride 2, pad 1) -> batch norm -> ReLU; mean over space; linear."""
    h = x
    for b in range(num_blocks(params)):
        h = F.conv2d(h, params[f"conv{b}.weight"], params[f"conv{b}.bias"], stride=2, padding=1)
        h = F.relu(batch_norm(h, params[f"bn{b}.weight"], params[f"bn{b}.bias"]))
    features = h.sum(axis=[2, 3]) / (h.shape[2] * h.shape[3])
    return paddle.matmul(features, params["fc.weight"]) + params["fc.bias"]


def cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    """Mean softmax cross-entropy from primitives (stable log-sum-exp), twice differentiable."""
    shifted = logits - logits.max(axis=1, keepdim=True).detach()
    log_norm = paddle.log(paddle.exp(shifted).sum(axis=1))
    picked = (shifted * F.one_hot(labels, logits.shape[1]).astype(logits.dtype)).sum(axis=1)
    return (log_norm - picked).sum() / logits.shape[0]


def accuracy(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    return (logits.argmax(axis=1) == labels).astype("float32").sum() / labels.shape[0]


def params_to_arrays(params: Params, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + name: p.numpy() for name, p in params.items()}


def arrays_to_params(arrays: dict[str, np.ndarray], prefix: str = "") -> Params:
    """The parameters stored under `prefix` in `arrays`, in their stored order."""
    return OrderedDict((key[len(prefix):], to_tensor(value, str(value.dtype)))
                       for key, value in arrays.items() if key.startswith(prefix))
