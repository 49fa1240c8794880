"""The paper's Omniglot network as a pure function of explicit, named, per-task parameters.

`forward(params, x)` is the one model definition used by training, evaluation and the tests.
It runs a whole batch of tasks at once, each with its own weights (a leading task axis on
every parameter), so a meta-batch is one graph rather than a Python loop over tasks.

It is written from ops whose second derivatives Paddle 3.3 computes correctly and fast on
CPU: each 3x3 stride-2 convolution as a gather of patches (`index_select`) and a batched
matrix product, in channels-last layout; batch norm, the spatial mean and the loss from
primitives, with reductions and per-channel broadcasts done as matrix products with a column
of ones; the first block's conv and batch norm are one matrix product, because its input, the
images, is constant. What that avoids, all measured (benchmarks/README.md): `conv2d`, whose eager
double-grad silently returns wrong second-order terms unless the input gradient is requested
too, and whose CPU kernel is slower than this gather and GEMM; grouped conv, which has no
second derivative on CPU; `F.cross_entropy`, `F.log_softmax` and an all-element `mean`, which
have none either; and Paddle's CPU broadcasting kernels (`x * scale[None, None, :]`, `sum`
over an axis), 10 to 30 times slower than the same work as a matrix product.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import paddle
import paddle.nn.functional as F

from maml.settings import LAYER_KINDS

Params = "OrderedDict[str, paddle.Tensor]"
BN_EPS = 1e-5


def init_params(n_way: int, channels: int = 64, blocks: int = 4, in_channels: int = 1,
                seed: int = 0, dtype: str = "float32", bn_scale: bool = True,
                bn_steps: int | None = None) -> Params:
    """Ordered, named parameters; conv and linear weights Glorot-uniform, as in cbfinn/maml.

    Drawn with numpy from `seed`, so the same seed gives the same network on any device. A
    conv weight is stored as the matrix the patches multiply: [9 * c_in, c_out], rows in
    (kernel row, kernel column, input channel) order. The convs have no bias: batch norm with
    the batch's own statistics subtracts each channel's mean right after, which cancels a bias
    exactly (its gradient is exactly zero; the original code's conv bias stays at its zero
    init), so it would only cost time.

    Batch norm has a bias (offset) and, with `bn_scale`, a weight (scale); cbfinn/maml's has
    no scale. With `bn_steps` (MAML++'s per-step batch norm) each is [bn_steps, C], one row
    per inner step. Neither changes the random draws, so the convs start the same either way.
    """
    rng = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)

    arrays = OrderedDict()
    cin = in_channels
    for b in range(blocks):
        kernel = glorot((channels, cin, 3, 3), cin * 9, channels * 9)
        arrays[f"conv{b}.weight"] = conv_matrix(kernel)
        rows = (bn_steps, channels) if bn_steps else (channels,)
        if bn_scale:
            arrays[f"bn{b}.weight"] = np.ones(rows)
        arrays[f"bn{b}.bias"] = np.zeros(rows)
        cin = channels
    arrays["fc.weight"] = glorot((channels, n_way), channels, n_way)
    arrays["fc.bias"] = np.zeros(n_way)
    return OrderedDict((name, to_tensor(value, dtype)) for name, value in arrays.items())


def conv_matrix(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel [c_out, c_in, 3, 3] as the matrix the patches multiply: [9 * c_in, c_out]."""
    return kernel.transpose(2, 3, 1, 0).reshape(-1, kernel.shape[0])


def conv_kernel(matrix: np.ndarray) -> np.ndarray:
    """`conv_matrix` undone: [9 * c_in, c_out] -> [c_out, c_in, 3, 3], e.g. for `conv2d`."""
    return matrix.reshape(3, 3, -1, matrix.shape[1]).transpose(3, 2, 0, 1)


def to_tensor(value, dtype: str = "float32", trainable: bool = True) -> paddle.Tensor:
    tensor = paddle.to_tensor(np.asarray(value), dtype=dtype)
    tensor.stop_gradient = not trainable
    return tensor


def layer_kind(name: str) -> str:
    """A parameter's layer kind: 'conv', 'bn', 'fc' for the network's (LAYER_KINDS)."""
    return name.split(".")[0].rstrip("0123456789")


def is_model_param(name: str) -> bool:
    """Whether a parameter name is the network's (conv, batch norm, linear), not a rule's."""
    return layer_kind(name) in LAYER_KINDS


def num_blocks(params: Params) -> int:
    return sum(name.endswith(".weight") and name.startswith("conv") for name in params)


def per_task(params: Params, num_tasks: int) -> Params:
    """The same weights for each of `num_tasks` tasks: a leading task axis, still differentiable."""
    return OrderedDict((name, p.unsqueeze(0).expand([num_tasks, *p.shape]))
                       for name, p in params.items())


def _ones(rows: int, cols: int, like: paddle.Tensor) -> paddle.Tensor:
    return _constant_ones(rows, cols, str(like.dtype), str(like.place))


@lru_cache(maxsize=None)
def _constant_ones(rows: int, cols: int, dtype: str, place: str) -> paddle.Tensor:
    return paddle.ones([rows, cols], dtype.split(".")[-1])


def row_mean(x: paddle.Tensor) -> paddle.Tensor:
    """[T, M, C] -> [T, 1, C], the mean over M, as a matrix product."""
    m = x.shape[1]
    return paddle.matmul(_ones(1, m, x), x) / m


def spread(row: paddle.Tensor, m: int) -> paddle.Tensor:
    """[T, 1, C] -> [T, m, C], the row repeated, as a matrix product."""
    return paddle.matmul(_ones(m, 1, row), row)


@lru_cache(maxsize=None)
def _patch_index(height: int, width: int, place: str) -> paddle.Tensor:
    """For each output pixel and kernel tap (row, col) of a 3x3 stride-2 pad-1 convolution, the
    flat input pixel it reads; `height * width` (one past the end) stands for the zero padding."""
    out_h, out_w = (height + 1) // 2, (width + 1) // 2
    rows = 2 * np.arange(out_h)[:, None, None, None] + np.arange(3)[None, None, :, None] - 1
    cols = 2 * np.arange(out_w)[None, :, None, None] + np.arange(3)[None, None, None, :] - 1
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    index = np.where(inside, rows * width + cols, height * width)  # [out_h, out_w, 3, 3]
    return paddle.to_tensor(index.reshape(-1).astype(np.int64))


def patches3x3_stride2(x: paddle.Tensor, size: tuple[int, int],
                       num_tasks: int) -> tuple[paddle.Tensor, tuple[int, int]]:
    """The 3x3 stride-2 pad-1 patches of x [T * N, H * W, C] (channels-last):
    [T, N * H' * W', 9C], columns in (kernel row, kernel column, channel) order."""
    height, width = size
    padded = F.pad(x, [0, 1], data_format="NLC")  # one zero pixel at the end
    index = _patch_index(height, width, str(x.place))
    patches = paddle.index_select(padded, index, axis=1)
    return patches.reshape([num_tasks, -1, 9 * x.shape[2]]), ((height + 1) // 2, (width + 1) // 2)


def conv3x3_stride2(x: paddle.Tensor, size: tuple[int, int],
                    weight: paddle.Tensor) -> tuple[paddle.Tensor, tuple[int, int]]:
    """x: [T * N, H * W, C] channels-last; weight [T, 9C, C_out]; -> [T, N * H' * W', C_out]."""
    patches, out_size = patches3x3_stride2(x, size, weight.shape[0])
    return paddle.matmul(patches, weight), out_size


def batch_norm(x: paddle.Tensor, weight: paddle.Tensor | None, bias: paddle.Tensor,
               stats_rows: int | None = None) -> paddle.Tensor:
    """Batch norm of each task's [M, C] with that batch's statistics, or with those of its
    first `stats_rows` rows; x [T, M, C], weight [T, C] (None: no scale)."""
    m = x.shape[1]
    centred = x - spread(row_mean(_first(x, stats_rows)), m)
    reference = _first(centred, stats_rows)
    scale = paddle.rsqrt(row_mean(reference * reference) + BN_EPS)
    if weight is not None:
        scale = weight.unsqueeze(1) * scale
    return centred * spread(scale, m) + spread(bias.unsqueeze(1), m)


def _first(x: paddle.Tensor, rows: int | None) -> paddle.Tensor:
    """x [T, M, C] -> its first `rows` rows (all for None)."""
    return x if rows is None else x[:, :rows]


def conv_batch_norm_of_images(pixels: paddle.Tensor, size: tuple[int, int], weight: paddle.Tensor,
                              bn_weight: paddle.Tensor | None, bn_bias: paddle.Tensor,
                              stats_images: int | None = None):
    """The first block's conv and batch norm as one matrix product, the same numbers as
    `batch_norm(conv3x3_stride2(...))` without the 64-channel intermediates.

    Its input is the images, which no gradient reaches, so their patches P, the patches' mean
    and covariance C are constants: the conv output P W has batch mean mean(P) W and variance
    diag(W^T C W), and its batch norm is (P - mean(P)) (W * scale) + bias. The first block
    holds three quarters of the network's activations, so this saves most element-wise work.
    With `stats_images`, the statistics are those of each task's first that many images.
    """
    patches, out_size = patches3x3_stride2(pixels, size, weight.shape[0])
    num_tasks, m, k = patches.shape
    rows = None if stats_images is None else stats_images * out_size[0] * out_size[1]
    centred = patches - spread(row_mean(_first(patches, rows)), m)
    reference = _first(centred, rows)
    covariance = paddle.matmul(reference, reference, transpose_x=True) / reference.shape[1]
    variance = paddle.matmul(_ones(1, k, weight), paddle.matmul(covariance, weight) * weight)
    scale = paddle.rsqrt(variance + BN_EPS)  # [T, 1, C_out]
    if bn_weight is not None:
        scale = bn_weight.unsqueeze(1) * scale
    folded = paddle.concat([weight * spread(scale, k), bn_bias.unsqueeze(1)], axis=1)
    with_ones = paddle.concat([centred, _ones(m, 1, weight).expand([num_tasks, m, 1])], axis=2)
    return paddle.matmul(with_ones, folded), out_size


def bn_params(params: Params, block: int, step: int):
    """(weight or None, bias) of a block's batch norm for inner step `step`: per-step batch
    norm's row `step` (its last row for steps beyond those it was trained with)."""
    def row(p):
        if p is None or p.ndim == 2:  # [T, C]
            return p
        return p[:, min(step, p.shape[1] - 1)]  # [T, steps, C] -> [T, C]
    return row(params.get(f"bn{block}.weight")), row(params[f"bn{block}.bias"])


def forward(params: Params, x: paddle.Tensor, step: int = 0,
            stats_images: int | None = None) -> paddle.Tensor:
    """Four blocks of conv(3x3, stride 2, pad 1, no bias) -> batch norm -> ReLU; mean over
    space; linear.

    params: per-task weights (see `per_task`; names it does not know are ignored); x:
    [T, N, 1, H, W] images (data: no gradient with respect to them) -> logits [T, N, n_way].
    `step` is the inner step, which picks the row of per-step batch-norm weights. Batch norm
    takes its statistics from all N images of a task, or from its first `stats_images` (e.g.
    the support set, so that the images after them are classified independently).
    """
    num_tasks, n, channels, height, width = x.shape
    pixels = x.reshape([num_tasks * n, channels, height * width]).transpose([0, 2, 1])
    h, size = conv_batch_norm_of_images(pixels, (height, width), params["conv0.weight"],
                                        *bn_params(params, 0, step), stats_images)
    h = F.relu(h)
    for b in range(1, num_blocks(params)):
        h = h.reshape([num_tasks * n, size[0] * size[1], -1])
        h, size = conv3x3_stride2(h, size, params[f"conv{b}.weight"])
        rows = None if stats_images is None else stats_images * size[0] * size[1]
        h = F.relu(batch_norm(h, *bn_params(params, b, step), rows))
    features = row_mean(h.reshape([num_tasks * n, size[0] * size[1], -1]))
    logits = paddle.matmul(features.reshape([num_tasks, n, -1]), params["fc.weight"])
    return logits + spread(params["fc.bias"].unsqueeze(1), n)


def cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    """Each task's mean softmax cross-entropy, [T, N, n] -> [T], from primitives (stable
    log-sum-exp), twice differentiable."""
    shifted = logits - logits.max(axis=2, keepdim=True).detach()
    log_norm = paddle.log(paddle.exp(shifted).sum(axis=2))
    picked = (shifted * F.one_hot(labels, logits.shape[2]).astype(logits.dtype)).sum(axis=2)
    return (log_norm - picked).sum(axis=1) / logits.shape[1]


def accuracy(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    """Each task's accuracy, [T, N, n] -> [T]."""
    return (logits.argmax(axis=2) == labels).astype("float32").sum(axis=1) / labels.shape[1]


def params_to_arrays(params: Params, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + name: p.numpy() for name, p in params.items()}


def arrays_to_params(arrays: dict[str, np.ndarray], prefix: str = "") -> Params:
    """The parameters stored under `prefix` in `arrays`, in their stored order."""
    return OrderedDict((key[len(prefix):], to_tensor(value, str(value.dtype)))
                       for key, value in arrays.items() if key.startswith(prefix))
