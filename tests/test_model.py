"""The batched, GEMM-based network equals an independent one built from Paddle's own
`conv2d` and `batch_norm` kernels; the primitive loss equals numpy's; shapes are the paper's."""

import numpy as np
import paddle
import paddle.nn.functional as F

from maml.model import (BN_EPS, accuracy, arrays_to_params, conv_kernel, conv_matrix,
                        cross_entropy, forward, init_network, params_to_arrays, per_task)


def reference_forward(params, x):
    """One task's logits from Paddle's conv2d and batch_norm kernels, NCHW."""
    h = x
    for b in range(4):
        kernel = paddle.to_tensor(conv_kernel(params[f"conv{b}.weight"].numpy()))
        h = F.conv2d(h, kernel, stride=2, padding=1)
        channels = h.shape[1]
        h = F.batch_norm(h, paddle.zeros([channels], h.dtype), paddle.ones([channels], h.dtype),
                         params[f"bn{b}.weight"], params[f"bn{b}.bias"], training=True,
                         epsilon=BN_EPS)
        h = F.relu(h)
    return paddle.matmul(h.mean(axis=[2, 3]), params["fc.weight"]) + params["fc.bias"]


def random_params(n_way, seed):
    """Initial weights with random biases and batch-norm scales, so every term matters."""
    rng = np.random.default_rng(seed)
    params = init_network(n_way, seed=seed, dtype="float64")
    for name, p in params.items():
        if not name.endswith("weight") or name.startswith("bn"):
            p.set_value(rng.normal(1.0 if name.startswith("bn") else 0.0, 0.5, p.shape))
    return params


def test_forward_matches_conv2d_and_batch_norm_kernels():
    """Two tasks, each with its own weights, 28x28 images (28 -> 14 -> 7 -> 4 -> 2)."""
    tasks = [random_params(5, seed) for seed in (1, 2)]
    x = paddle.to_tensor(np.random.default_rng(0).random((2, 6, 1, 28, 28)))
    stacked = {name: paddle.stack([t[name] for t in tasks]) for name in tasks[0]}
    ours = forward(stacked, x)
    assert ours.shape == [2, 6, 5]
    for t, params in enumerate(tasks):
        np.testing.assert_allclose(ours[t].numpy(), reference_forward(params, x[t]).numpy(),
                                   rtol=1e-10, atol=1e-10)


def reference_forward_with_statistics_of(params, x, shots):
    """One task's logits, batch norm taking its statistics from the first `shots` images:
    Paddle's batch_norm in inference mode, given their mean and (biased) variance."""
    h = x
    for b in range(4):
        kernel = paddle.to_tensor(conv_kernel(params[f"conv{b}.weight"].numpy()))
        h = F.conv2d(h, kernel, stride=2, padding=1)
        mean = h[:shots].mean(axis=[0, 2, 3])
        variance = paddle.var(h[:shots], axis=[0, 2, 3], unbiased=False)
        h = F.relu(F.batch_norm(h, mean, variance, params[f"bn{b}.weight"],
                                params[f"bn{b}.bias"], training=False, epsilon=BN_EPS))
    return paddle.matmul(h.mean(axis=[2, 3]), params["fc.weight"]) + params["fc.bias"]


def test_batch_norm_with_the_first_images_statistics_matches_the_kernels():
    """`stats_images`: the statistics of each task's first images (the support set) normalise
    all of its images, so those after them are classified independently of each other."""
    tasks = [random_params(5, seed) for seed in (3, 4)]
    x = paddle.to_tensor(np.random.default_rng(1).random((2, 9, 1, 28, 28)))
    stacked = {name: paddle.stack([t[name] for t in tasks]) for name in tasks[0]}
    ours = forward(stacked, x, stats_images=5)
    for t, params in enumerate(tasks):
        np.testing.assert_allclose(ours[t].numpy(),
                                   reference_forward_with_statistics_of(params, x[t], 5).numpy(),
                                   rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours[:, :5].numpy(), forward(stacked, x[:, :5]).numpy(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(forward(stacked, x, stats_images=9).numpy(),
                                  forward(stacked, x).numpy())


def test_cross_entropy_matches_numpy():
    """Per task, against an independent log-sum-exp in numpy (large logits test stability)."""
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(2, 7, 5)) * 30, rng.integers(0, 5, size=(2, 7))
    top = logits.max(axis=2)
    picked = np.take_along_axis(logits, labels[..., None], axis=2)[..., 0]
    expected = np.mean(np.log(np.exp(logits - top[..., None]).sum(axis=2)) + top - picked, axis=1)
    ours = cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(labels))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_forward_shapes_and_parameter_layout():
    params = init_network(20)
    assert list(params)[:4] == ["conv0.weight", "bn0.weight", "bn0.bias", "conv1.weight"]
    assert params["conv0.weight"].shape == [9, 64]
    assert params["conv3.weight"].shape == [9 * 64, 64]
    assert params["fc.weight"].shape == [64, 20]
    logits = forward(per_task(params, 3), paddle.rand([3, 7, 1, 28, 28]))
    assert logits.shape == [3, 7, 20]
    acc = accuracy(logits, paddle.zeros([3, 7], "int64"))
    assert acc.shape == [3] and all(0.0 <= a <= 1.0 for a in acc.numpy())


def test_init_is_seeded_and_round_trips():
    a, b, c = init_network(5, seed=3), init_network(5, seed=3), init_network(5, seed=4)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not np.array_equal(a["fc.weight"].numpy(), c["fc.weight"].numpy())
    back = arrays_to_params(params_to_arrays(a, "p/"), "p/")
    assert list(back) == list(a)
    assert all(np.array_equal(a[k].numpy(), back[k].numpy()) for k in a)


def test_conv_matrix_layout_round_trips():
    kernel = np.random.default_rng(2).normal(size=(8, 3, 3, 3))  # [out, in, row, col]
    matrix = conv_matrix(kernel)
    assert matrix.shape == (27, 8)
    assert matrix[(1 * 3 + 2) * 3 + 0, 5] == kernel[5, 0, 1, 2]  # row (kernel row, col, c_in)
    np.testing.assert_array_equal(conv_kernel(matrix), kernel)


def reference_forward_tasknorm(params, x, context, kind):
    """One task's logits with TaskNorm-I (or instance norm) written out in numpy after each of
    Paddle's conv2d kernels, NCHW, as cambridge-mlg/cnaps's TaskNormI (biased variances):
    the first `context` images are the context, whose moments every image blends with its
    own, alpha = sigmoid(scale * context + offset)."""
    h = x
    for b in range(4):
        kernel = paddle.to_tensor(conv_kernel(params[f"conv{b}.weight"].numpy()))
        a = F.conv2d(h, kernel, stride=2, padding=1).numpy()
        own_mean = a.mean(axis=(2, 3), keepdims=True)
        own_var = a.var(axis=(2, 3), keepdims=True)
        if kind == "instance":
            mean, var = own_mean, own_var
        else:
            z = params[f"norm{b}.scale"].numpy()[0] * context + params[f"norm{b}.offset"].numpy()[0]
            alpha = 1 / (1 + np.exp(-z))
            ctx_mean = a[:context].mean(axis=(0, 2, 3), keepdims=True)
            ctx_var = a[:context].var(axis=(0, 2, 3), keepdims=True)
            mean = alpha * ctx_mean + (1 - alpha) * own_mean
            var = (alpha * (ctx_var + (ctx_mean - mean) ** 2)
                   + (1 - alpha) * (own_var + (own_mean - mean) ** 2))
        w = params[f"bn{b}.weight"].numpy()[None, :, None, None]
        bias = params[f"bn{b}.bias"].numpy()[None, :, None, None]
        h = paddle.to_tensor(np.maximum(w * (a - mean) / np.sqrt(var + BN_EPS) + bias, 0))
    return paddle.matmul(h.mean(axis=[2, 3]), params["fc.weight"]) + params["fc.bias"]


def test_tasknorm_and_instance_norm_match_a_numpy_reference():
    """TaskNorm-I with the support set (the first 4 images) as context, and instance norm,
    against `reference_forward_tasknorm`; the images after the context do not change each
    other's logits."""
    rng = np.random.default_rng(5)
    x = paddle.to_tensor(rng.random((2, 7, 1, 28, 28)))
    for kind in ("tasknorm-i", "instance"):
        tasks = []
        for seed in (1, 2):
            params = random_params(5, seed)
            if kind == "tasknorm-i":
                for b in range(4):
                    params[f"norm{b}.scale"] = paddle.to_tensor(rng.normal(0, 0.5, 1))
                    params[f"norm{b}.offset"] = paddle.to_tensor(rng.normal(0, 0.5, 1))
            tasks.append(params)
        stacked = {name: paddle.stack([t[name] for t in tasks]) for name in tasks[0]}
        ours = forward(stacked, x, stats_images=4, norm=kind)
        for t, params in enumerate(tasks):
            np.testing.assert_allclose(
                ours[t].numpy(), reference_forward_tasknorm(params, x[t], 4, kind).numpy(),
                rtol=1e-9, atol=1e-9, err_msg=kind)
        fewer = forward(stacked, x[:, :5], stats_images=4, norm=kind)
        np.testing.assert_allclose(fewer.numpy(), ours[:, :5].numpy(), rtol=1e-10, atol=1e-12)
    assert "norm0.scale" in init_network(5, norm="tasknorm-i")
    assert "norm0.scale" not in init_network(5, norm="instance")
