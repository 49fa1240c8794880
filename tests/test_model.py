"""The primitive batch norm and loss agree with Paddle's own kernels; shapes are the paper's."""

import numpy as np
import paddle
import paddle.nn.functional as F

from maml.model import (BN_EPS, accuracy, batch_norm, cross_entropy, forward, init_params,
                        params_to_arrays, arrays_to_params)


def test_batch_norm_matches_paddle_training_mode():
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.normal(size=(6, 4, 5, 5)))
    w, b = paddle.to_tensor(rng.normal(size=4)), paddle.to_tensor(rng.normal(size=4))
    ours = batch_norm(x, w, b)
    theirs = F.batch_norm(x, paddle.zeros([4], "float64"), paddle.ones([4], "float64"), w, b,
                          training=True, epsilon=BN_EPS)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-10)


def test_cross_entropy_matches_numpy():
    """Against an independent log-sum-exp in numpy (large logits test stability)."""
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(7, 5)) * 30, rng.integers(0, 5, size=7)
    top = logits.max(axis=1)
    expected = np.mean(np.log(np.exp(logits - top[:, None]).sum(axis=1)) + top
                       - logits[np.arange(7), labels])
    ours = cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(labels))
    np.testing.assert_allclose(float(ours), expected, rtol=1e-12)


def test_forward_shapes_and_parameter_layout():
    params = init_params(20)
    assert list(params)[:4] == ["conv0.weight", "conv0.bias", "bn0.weight", "bn0.bias"]
    assert params["conv3.weight"].shape == [64, 64, 3, 3]
    assert params["fc.weight"].shape == [64, 20]
    logits = forward(params, paddle.rand([7, 1, 28, 28]))
    assert logits.shape == [7, 20]
    assert 0.0 <= float(accuracy(logits, paddle.zeros([7], "int64"))) <= 1.0


def test_init_is_seeded_and_round_trips():
    a, b, c = init_params(5, seed=3), init_params(5, seed=3), init_params(5, seed=4)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not np.array_equal(a["fc.weight"].numpy(), c["fc.weight"].numpy())
    back = arrays_to_params(params_to_arrays(a, "p/"), "p/")
    assert list(back) == list(a)
    assert all(np.array_equal(a[k].numpy(), back[k].numpy()) for k in a)
