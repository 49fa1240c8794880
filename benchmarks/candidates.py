"""Candidates for a faster meta-step that the pipeline does not use, each against the project's
meta-step in the same run: what was tried, reproducible (benchmarks/README.md has the numbers).

    python benchmarks/candidates.py     # every candidate, MAML's paper and laptop presets, 1 thread
    python benchmarks/candidates.py --candidates fused-batch-norm --specs maml:paper:20way1shot
    BENCH_THREADS=2 python benchmarks/candidates.py ...

Per candidate and method:preset:cell it prints the largest relative difference of the two
meta-gradients in float64 (two tasks), then both meta-steps' median time in float32 on one
meta-batch, alternating, and the speed-up.

`group-N`: the tasks of a meta-batch in graphs of about N images each instead of
`maml.meta.IMAGES_PER_GROUP` (1024).

`fused-batch-norm`: batch norm + ReLU of blocks 1-3 as one op with its first and second
derivatives written out. The model builds batch norm from primitives (`maml.model.batch_norm`),
so autograd records about a dozen ops per block forward, more in the inner backward, and
differentiates all of those again for the meta-gradient. Here the block's batch norm and ReLU
are one Paddle `PyLayer` whose backward is a second `PyLayer` (the standard batch-norm gradient
through the ReLU's mask), whose backward in turn is the hand-derived second derivative; nothing
between is left to autograd. Per block, task and channel, with x̂ the normalised input,
r = 1/sqrt(var + eps), w the scale, gz the output gradient through the mask, ggx, ggw, ggb the
upstream gradients of (gx, gw, gb), sums over the task's M images x pixels, Q = Σ ggx x̂,
S = Σ ggx, A = Σ ggx gz:

    gy'  = mask (ggb + ggw x̂ + w r (ggx - S/M - x̂ Q/M))
    w'   = r (A - S gb/M - Q gw/M)
    v    = (ggw - w r Q/M) gz - (w r gw/M) ggx
    x'   = r (v - Σv/M - x̂ Σ(x̂ v)/M) - (w r/M) w' x̂

Paddle's PyLayer must return None for an input whose gradient `paddle.grad` has pruned (it
raises otherwise), and the inner loop asks only for the adapted weights' gradients, so this
candidate's inner loop also asks for every other weight's (`EveryGradient`), through a fresh
alias per step so that the request stops at that step.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

from maml.cpu import configure

configure(threads=int(os.environ.get("BENCH_THREADS", "1")))  # before Paddle is imported

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from paddle.autograd import PyLayer  # noqa: E402

from maml import inner, meta, model  # noqa: E402
from maml.data import load_omniglot, load_split  # noqa: E402
from maml.model import BN_EPS, spread  # noqa: E402
from maml.settings import LAYER_KINDS, parse_cell, resolve  # noqa: E402
from maml.tasks import TaskSampler  # noqa: E402


def column_sum(x):
    """[T, M, C] -> [T, 1, C] as a matrix product, as in the model."""
    return paddle.matmul(model._ones(1, x.shape[1], x), x)


def _needed(inputs, grads):
    """One gradient per tensor input, None where the input takes none."""
    return tuple(None if i.stop_gradient else g for i, g in zip(inputs, grads) if i is not None)


class BatchNormReLUGrad(PyLayer):
    """(x, w, gy) -> (gx, gw, gb) of batch norm + ReLU; its backward is the second derivative."""

    @staticmethod
    def forward(ctx, x, weight, gy, saved):
        normalised, rsd, mask = saved
        m = x.shape[1]
        gz = gy * mask
        gb, gw = column_sum(gz), column_sum(gz * normalised)
        wr = rsd if weight is None else weight.unsqueeze(1) * rsd
        gx = spread(wr / m, m) * (m * gz - spread(gb, m) - normalised * spread(gw, m))
        ctx.saved = (normalised, rsd, mask, gz, gb, gw, wr, weight)
        ctx.inputs = (x, weight, gy)
        return gx, gw.squeeze(1), gb.squeeze(1)

    @staticmethod
    def backward(ctx, ggx, ggw, ggb):
        normalised, rsd, mask, gz, gb, gw, wr, weight = ctx.saved
        m = normalised.shape[1]
        ggx = paddle.zeros_like(gz) if ggx is None else ggx
        ggw = paddle.zeros_like(gb) if ggw is None else ggw.unsqueeze(1)
        ggb = paddle.zeros_like(gb) if ggb is None else ggb.unsqueeze(1)
        q, s, a = column_sum(ggx * normalised), column_sum(ggx), column_sum(ggx * gz)
        beta = ggw - wr * q / m
        ggy = mask * (spread(wr, m) * ggx + spread(ggb - wr * s / m, m)
                      + spread(beta, m) * normalised)
        grad_w = rsd * (a - s * gb / m - q * gw / m)
        v = spread(beta, m) * gz - spread(wr * gw / m, m) * ggx
        grad_x = (spread(rsd, m) * (v - spread(column_sum(v) / m, m))
                  - normalised * spread(rsd * column_sum(normalised * v) / m + wr / m * grad_w, m))
        return _needed(ctx.inputs, (grad_x, None if weight is None else grad_w.squeeze(1), ggy))


class BatchNormReLU(PyLayer):
    """relu(batch_norm(x)) with the batch's statistics; x [T, M, C], weight or None, bias [T, C]."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        m = x.shape[1]
        centred = x - spread(column_sum(x) / m, m)
        rsd = paddle.rsqrt(column_sum(centred * centred) / m + BN_EPS)
        normalised = centred * spread(rsd, m)
        scaled = normalised if weight is None else normalised * spread(weight.unsqueeze(1), m)
        y = F.relu(scaled + spread(bias.unsqueeze(1), m))
        ctx.saved = (x, weight, (normalised, rsd, (y > 0).astype(x.dtype)))
        ctx.inputs = (x, weight, bias)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight, saved = ctx.saved
        return _needed(ctx.inputs, BatchNormReLUGrad.apply(x, weight, gy, saved))


def fused_forward(params, x, step=0):
    """`maml.model.forward` with blocks 1-3's batch norm and ReLU as `BatchNormReLU`."""
    num_tasks, n, channels, height, width = x.shape
    pixels = x.reshape([num_tasks * n, channels, height * width]).transpose([0, 2, 1])
    h, size = model.conv_batch_norm_of_images(pixels, (height, width), params["conv0.weight"],
                                              *model.bn_params(params, 0, step))
    h = F.relu(h)
    for b in range(1, model.num_blocks(params)):
        h = h.reshape([num_tasks * n, size[0] * size[1], -1])
        h, size = model.conv3x3_stride2(h, size, params[f"conv{b}.weight"])
        h = BatchNormReLU.apply(h, *model.bn_params(params, b, step))
    features = model.row_mean(h.reshape([num_tasks * n, size[0] * size[1], -1]))
    logits = paddle.matmul(features.reshape([num_tasks, n, -1]), params["fc.weight"])
    return logits + spread(params["fc.bias"].unsqueeze(1), n)


class EveryGradient:
    """A loop's rule, asking for every weight's gradient: the weights the loop does not adapt
    keep their value under a fresh alias per step."""

    def __init__(self, loop: inner.InnerLoop):
        self.loop = loop

    @staticmethod
    def of(loop: inner.InnerLoop) -> inner.InnerLoop:
        """`loop` adapting every layer kind, through this rule."""
        return dataclasses.replace(loop.with_rule(EveryGradient(loop)), adapts=LAYER_KINDS)

    def update(self, params, name, weight, grad, step):
        if model.layer_kind(name) in self.loop.adapts:
            return self.loop.rule.update(params, name, weight, grad, step)
        return weight.scale(1.0)


def project(params, loop, batch, settings, weights):
    """The meta-step the pipeline trains with."""
    return meta.meta_gradient(params, loop, *batch, settings["inner_steps"],
                              settings["first_order"], weights)


def fused_batch_norm(params, loop, batch, settings, weights):
    meta.forward = fused_forward
    try:
        return project(params, EveryGradient.of(loop), batch, settings, weights)
    finally:
        meta.forward = model.forward


def images_per_group(size: int):
    """The project's meta-step with another number of images per task group's graph."""
    def step(params, loop, batch, settings, weights):
        default, meta.IMAGES_PER_GROUP = meta.IMAGES_PER_GROUP, size
        try:
            return project(params, loop, batch, settings, weights)
        finally:
            meta.IMAGES_PER_GROUP = default
    return step


CANDIDATES = {"fused-batch-norm": fused_batch_norm,
              **{f"group-{size}": images_per_group(size) for size in (256, 512, 2048, 4096)}}


def float64_difference(candidate, settings, batch, loop, weights) -> float:
    """Largest relative difference of the two meta-gradients, float64, on two of the tasks and
    weights away from their initial values (per-step rows and rates then differ)."""
    gradients = []
    for step in (project, candidate):
        params = meta.init_meta_params(settings, seed=0, dtype="float64")
        rng = np.random.default_rng(1)
        for p in params.values():
            p.set_value(p.numpy() + 0.1 * rng.standard_normal(p.shape))
        tensors = [(t.astype("float64") if t.dtype == paddle.float32 else t)[:2]
                   for t in meta.as_tensors(batch)]
        gradients.append([g.numpy() for g in step(params, loop, tensors, settings, weights)[2]])
    return max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
               for a, b in zip(*gradients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="resources/omniglot/omniglot28.npz")
    parser.add_argument("--split-file", default="resources/omniglot/splits/finn.json")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--specs", nargs="+", default=[
        f"maml:{preset}:{cell}" for preset in ("paper", "laptop")
        for cell in ("5way1shot", "5way5shot", "20way1shot", "20way5shot")],
        help="method:preset:cell")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--check-only", action="store_true", help="the float64 check alone")
    args = parser.parse_args()
    paddle.set_device("cpu")
    images = load_omniglot(args.data).images
    train = load_split(args.split_file)["parts"]["train"]
    print(f"# {os.environ['OMP_NUM_THREADS']} thread(s), Paddle {paddle.__version__}\n")
    print("| candidate | method:preset:cell | float64 max rel diff | project ms | candidate ms "
          "| speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spec in args.specs:
        method, preset, cell = spec.split(":")
        n_way, k_shot = parse_cell(cell)
        settings = resolve(n_way, k_shot, preset, method)
        sampler = TaskSampler(images, train, n_way, k_shot, settings["k_query"])
        batch = sampler.sample(np.random.default_rng(0), settings["meta_batch"])
        loop = inner.for_settings(settings)
        weights = (meta.multi_step_weights(settings["inner_steps"], 0, settings["msl_iterations"])
                   if settings["multi_step_loss"] else None)
        for name in args.candidates:
            candidate = CANDIDATES[name]
            diff = float64_difference(candidate, settings, batch, loop, weights)
            row = f"| {name} | {spec} | {diff:.1e} |"
            if args.check_only:
                print(row + " | | |", flush=True)
                continue
            params, tensors = meta.init_meta_params(settings, seed=0), meta.as_tensors(batch)
            times = {project: [], candidate: []}
            for repeat in range(args.repeats + 1):  # the first is a warm-up
                for step in times:  # alternating, so both see the same machine state
                    start = time.perf_counter()
                    step(params, loop, tensors, settings, weights)
                    if repeat:
                        times[step].append(time.perf_counter() - start)
            old, new = (1e3 * statistics.median(t) for t in times.values())
            print(f"{row} {old:.0f} | {new:.0f} | {old / new:.2f} |", flush=True)


if __name__ == "__main__":
    main()
