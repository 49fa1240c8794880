"""The normalisations (settings.NORMS): a non-transductive model answers each query
independently of the other queries, through evaluation's path (`adapted_probabilities`, which
evaluate, ensembles and Lake's runs use) and through `predict`; batch norm with the queries
together does not (so the check can fail); and every committed run keeps its identity."""

import shutil

import numpy as np
import paddle
import pytest

from conftest import REPO
from maml import inner, meta
from maml.files import save_arrays, write_json
from maml.model import params_to_arrays
from maml.predict import predict
from maml.settings import NORMS, QUERY_MODES, TRANSDUCTIVE_NORMS, resolve
from maml.identity import identity

EXAMPLES = REPO / "examples"


def random_model(norm, method="maml++"):
    """A 5-way model of `norm`, its weights moved away from the initial ones (so the blend,
    per-step rows and learned rates all matter)."""
    settings = resolve(5, 1, preset="laptop", method=method, norm=norm)
    params = meta.init_meta_params(settings, seed=3)
    rng = np.random.default_rng(0)
    for p in params.values():
        p.set_value((p.numpy() + 0.05 * rng.standard_normal(p.shape)).astype(p.numpy().dtype))
    return settings, params


def probabilities(settings, params, support_x, support_y, query_x, mode):
    loop = inner.for_settings(settings)
    return meta.adapted_probabilities(params, loop, *(paddle.to_tensor(a) for a in (
        support_x, support_y)), paddle.to_tensor(query_x), 2, mode)[0]


def task(rng, queries=7):
    return (rng.random((1, 5, 1, 28, 28)).astype(np.float32), np.arange(5)[None],
            rng.random((1, queries, 1, 28, 28)).astype(np.float32))


@pytest.mark.parametrize("norm", [n for n in NORMS if n not in TRANSDUCTIVE_NORMS])
@pytest.mark.parametrize("method", ["maml", "maml++"])
def test_each_answer_is_independent_of_the_other_queries(norm, method):
    settings, params = random_model(norm, method)
    support_x, support_y, query_x = task(np.random.default_rng(1))
    for mode in QUERY_MODES:  # a non-transductive network ignores the mode
        full = probabilities(settings, params, support_x, support_y, query_x, mode)
        order = np.array([4, 0, 6, 2])  # some queries removed, the rest reordered
        fewer = probabilities(settings, params, support_x, support_y, query_x[:, order], mode)
        np.testing.assert_allclose(fewer, full[order], rtol=1e-5, atol=1e-7)
        more = np.concatenate([query_x, np.ones_like(query_x[:, :3])], axis=1)  # added
        np.testing.assert_allclose(
            probabilities(settings, params, support_x, support_y, more, mode)[:7], full,
            rtol=1e-5, atol=1e-7)
    assert full.std() > 1e-3  # the answers are not all alike


def test_batch_norm_with_the_queries_together_depends_on_them():
    settings, params = random_model("batch")
    support_x, support_y, query_x = task(np.random.default_rng(1))
    full = probabilities(settings, params, support_x, support_y, query_x, "together")
    fewer = probabilities(settings, params, support_x, support_y, query_x[:, :2], "together")
    assert np.abs(fewer - full[:2]).max() > 1e-4


@pytest.mark.parametrize("norm", [n for n in NORMS if n not in TRANSDUCTIVE_NORMS])
def test_predict_answers_each_query_independently(norm, tmp_path):
    settings, params = random_model(norm)
    save_arrays(tmp_path / "model.npz", params_to_arrays(params))
    write_json(tmp_path / "train.json", {"settings": settings})
    queries = sorted((EXAMPLES / "query").glob("*.png"))
    for mode in QUERY_MODES:
        _, _, full = predict(tmp_path / "model.npz", EXAMPLES / "support", queries, mode=mode)
        _, _, fewer = predict(tmp_path / "model.npz", EXAMPLES / "support",
                              [queries[3], queries[0]], mode=mode)
        np.testing.assert_allclose(fewer, full[[3, 0]], rtol=1e-5, atol=1e-7)
        extra = tmp_path / "extra"
        extra.mkdir(exist_ok=True)
        shutil.copy(queries[1], extra / "copy.png")
        _, _, more = predict(tmp_path / "model.npz", EXAMPLES / "support", [*queries, extra],
                             mode=mode)
        np.testing.assert_allclose(more[:len(queries)], full, rtol=1e-5, atol=1e-7)


def test_the_default_kind_keeps_identities_and_another_names_a_new_run():
    """`norm` at its default enters no run's identity (test_identity's
    test_committed_runs_keep_their_identity checks every committed run with it); another
    kind changes the identity, and so the run's name for its checkpoint and settings file."""
    base = resolve(5, 1, preset="laptop", method="maml++")
    assert base["norm"] == "batch" and "norm" not in identity(base)
    assert identity(base) == identity({**base, "norm": "batch"})
    for norm in NORMS:
        if norm != "batch":
            assert identity({**base, "norm": norm})["norm"] == norm
