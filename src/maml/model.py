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

from maml.settings import LAYER_KINDS, OUTER_KINDS

Params = "OrderedDict[str, paddle.Tensor]"
BN_EPS = 1e-5


def init_network(n_way: int, channels: int = 64, blocks: int = 4, in_channels: int = 1,
                seed: int = 0, dtype: str = "float32", bn_scale: bool = True,
                bn_steps: int | None = None, norm: str = "batch") -> Params:
    """Ordered, named parameters; conv and linear weights Glorot-uniform, as in cbfinn/maml.

    Drawn with numpy from `seed`, so the same seed gives the same network on any device. A
    conv weight is stored as the matrix the patches multiply: [9 * c_in, c_out], rows in
    (kernel row, kernel column, input channel) order. The convs have no bias: batch norm with
    the batch's own statistics subtracts each channel's mean right after, which cancels a bias
    exactly (its gradient is exactly zero; the original code's conv bias stays at its zero
    init), so it would only cost time.

    Batch norm has a bias (offset) and, with `bn_scale`, a weight (scale); cbfinn/maml's has
    no scale. With `bn_steps` (MAML++'s per-step batch norm) each is [bn_steps, C], one row
    per inner step. With `norm` "tasknorm-i", each block has TaskNorm's blend parameters
    `norm{b}.scale` and `norm{b}.offset` (one each, zero as in cambridge-mlg/cnaps: the blend
    starts at one half). None of these changes the random draws, so the convs start the same.
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
        if norm == "tasknorm-i":
            arrays[f"norm{b}.scale"] = np.zeros(1)
            arrays[f"norm{b}.offset"] = np.zeros(1)
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
    """Whether a parameter name is the network's (conv, batch norm, linear, TaskNorm's blend),
    not a rule's."""
    return layer_kind(name) in LAYER_KINDS + OUTER_KINDS


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
            stats_images: int | None = None, norm: str = "batch") -> paddle.Tensor:
    """Four blocks of conv(3x3, stride 2, pad 1, no bias) -> normalisation -> ReLU; mean over
    space; linear.

    params: per-task weights (see `per_task`; names it does not know are ignored); x:
    [T, N, 1, H, W] images (data: no gradient with respect to them) -> logits [T, N, n_way].
    `step` is the inner step, which picks the row of per-step batch-norm weights. The
    statistics (settings.NORMS): "batch" and "meta" take them from all N images of a task, or
    from its first `stats_images` (e.g. the support set, so that the images after them are
    classified independently); "tasknorm-i" blends those with each image's own moments;
    "instance" uses each image's own alone.
    """
    num_tasks, n, channels, height, width = x.shape
    pixels = x.reshape([num_tasks * n, channels, height * width]).transpose([0, 2, 1])
    by_batch = norm in ("batch", "meta")
    if by_batch:
        h, size = conv_batch_norm_of_images(pixels, (height, width), params["conv0.weight"],
                                            *bn_params(params, 0, step), stats_images)
    else:
        h, size = conv_moment_norm_of_images(pixels, (height, width), params["conv0.weight"],
                                             *bn_params(params, 0, step),
                                             blend(params, 0, n, stats_images), n, stats_images)
    h = F.relu(h)
    for b in range(1, num_blocks(params)):
        h = h.reshape([num_tasks * n, size[0] * size[1], -1])
        h, size = conv3x3_stride2(h, size, params[f"conv{b}.weight"])
        if by_batch:
            rows = None if stats_images is None else stats_images * size[0] * size[1]
            h = batch_norm(h, *bn_params(params, b, step), rows)
        else:
            h = moment_norm(h, n, *bn_params(params, b, step),
                            blend(params, b, n, stats_images), stats_images)
        h = F.relu(h)
    features = row_mean(h.reshape([num_tasks * n, size[0] * size[1], -1]))
    logits = paddle.matmul(features.reshape([num_tasks, n, -1]), params["fc.weight"])
    return logits + spread(params["fc.bias"].unsqueeze(1), n)


def blend(params: Params, block: int, images: int,
          context_images: int | None) -> paddle.Tensor | None:
    """TaskNorm's alpha for a block, [T, 1]: sigmoid(scale * |context| + offset), the context
    being the support set (a task's first `context_images`, or all its `images`); None for a
    network without TaskNorm's parameters (instance norm). Written as 1 / (1 + exp(-z)), from
    ops whose second derivatives Paddle computes."""
    scale = params.get(f"norm{block}.scale")
    if scale is None:
        return None
    size = images if context_images is None else context_images
    return 1.0 / (1.0 + paddle.exp(-(scale * size + params[f"norm{block}.offset"])))


def moment_norm(x: paddle.Tensor, images: int, weight: paddle.Tensor | None,
                bias: paddle.Tensor, alpha: paddle.Tensor | None,
                context_images: int | None = None) -> paddle.Tensor:
    """Each image's activations normalised with its own moments over space (instance norm),
    or, with alpha [T, 1], with TaskNorm-I's blend of those and the context's (the first
    `context_images` of each task, or all; `_blend`). x [T, N * P, C] (N images of P
    positions)."""
    num_tasks, m, channels = x.shape
    positions = m // images
    per_image = x.reshape([num_tasks * images, positions, channels])
    mean, variance = _moments(per_image)  # [T * N, 1, C]
    if alpha is not None:
        rows = None if context_images is None else context_images * positions
        mean, variance = _blend(mean, variance, *_moments(_first(x, rows)), alpha, images)
    scale, shift = _scale_shift(mean, variance, weight, bias, images)
    out = per_image * spread(scale, positions) + spread(shift, positions)
    return out.reshape([num_tasks, m, channels])


def conv_moment_norm_of_images(pixels: paddle.Tensor, size: tuple[int, int],
                               weight: paddle.Tensor, bn_weight: paddle.Tensor | None,
                               bn_bias: paddle.Tensor, alpha: paddle.Tensor | None,
                               images: int, context_images: int | None = None):
    """The first block's conv and `moment_norm` as one matrix product per image, as
    `conv_batch_norm_of_images` does for batch norm: the conv output's moments come from the
    constant patches' mean and covariance (its mean mean(P) W, its variance diag(W^T C W)),
    and each image's normalised output is P (W * scale) + shift."""
    patches, out_size = patches3x3_stride2(pixels, size, weight.shape[0])
    num_tasks, m, k = patches.shape
    positions = m // images
    per_image = patches.reshape([num_tasks * images, positions, k])
    weights = weight.unsqueeze(1).expand([num_tasks, images, k, weight.shape[2]]).reshape(
        [num_tasks * images, k, weight.shape[2]])
    mean, variance = _conv_moments(per_image, weights)
    if alpha is not None:
        rows = None if context_images is None else context_images * positions
        mean, variance = _blend(mean, variance, *_conv_moments(_first(patches, rows), weight),
                                alpha, images)
    scale, shift = _scale_shift(mean, variance, bn_weight, bn_bias, images)
    folded = paddle.concat([weights * spread(scale, k), shift], axis=1)
    with_ones = paddle.concat(
        [per_image, _ones(positions, 1, weight).expand([num_tasks * images, positions, 1])],
        axis=2)
    return paddle.matmul(with_ones, folded).reshape([num_tasks, m, -1]), out_size


def _blend(mean, variance, context_mean, context_variance, alpha, images):
    """TaskNorm-I's moments (Bronskill et al. 2020, eq. 5; cambridge-mlg/cnaps `TaskNormI`,
    with biased variances as this network's batch norm): mu = a mu_context + (1 - a) mu_image,
    var = a (var_context + (mu_context - mu)^2) + (1 - a) (var_image + (mu_image - mu)^2).
    mean, variance: each image's, [T * N, 1, C]; the context's [T, 1, C]; alpha [T, 1]."""
    num_tasks, _, channels = context_mean.shape
    context_mean, context_variance = spread(context_mean, images), spread(context_variance, images)
    own_mean = mean.reshape([num_tasks, images, channels])
    own_variance = variance.reshape([num_tasks, images, channels])
    a = paddle.matmul(paddle.matmul(_ones(images, 1, mean), alpha.unsqueeze(2)),
                      _ones(1, channels, mean))  # [T, N, C]
    pooled = a * context_mean + (1 - a) * own_mean
    context_gap, own_gap = context_mean - pooled, own_mean - pooled
    pooled_variance = (a * (context_variance + context_gap * context_gap)
                       + (1 - a) * (own_variance + own_gap * own_gap))
    return (pooled.reshape([num_tasks * images, 1, channels]),
            pooled_variance.reshape([num_tasks * images, 1, channels]))


def _scale_shift(mean, variance, weight, bias, images):
    """Each image's normalisation as x * scale + shift: [T * N, 1, C] each."""
    scale = paddle.rsqrt(variance + BN_EPS)
    if weight is not None:
        scale = scale * _per_image(weight, images)
    return scale, _per_image(bias, images) - mean * scale


def _moments(x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Mean and biased variance over M of x [B, M, C]: two [B, 1, C]."""
    mean = row_mean(x)
    centred = x - spread(mean, x.shape[1])
    return mean, row_mean(centred * centred)


def _conv_moments(patches: paddle.Tensor, weight: paddle.Tensor):
    """`_moments` of patches [B, M, k] @ weight [B, k, C], from the patches' mean and
    covariance."""
    mean = row_mean(patches)
    centred = patches - spread(mean, patches.shape[1])
    covariance = paddle.matmul(centred, centred, transpose_x=True) / patches.shape[1]
    variance = paddle.matmul(_ones(1, patches.shape[2], weight),
                             paddle.matmul(covariance, weight) * weight)
    return paddle.matmul(mean, weight), variance


def _per_image(row: paddle.Tensor, images: int) -> paddle.Tensor:
    """A task's [T, C] row for each of its images: [T * images, 1, C]."""
    return spread(row.unsqueeze(1), images).reshape([-1, 1, row.shape[-1]])


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
