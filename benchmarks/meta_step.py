"""One full MAML meta-step: this project's Paddle code against a plain PyTorch eager loop.

    pip install -e ".[bench]"         # PyTorch 2.13 CPU, for this benchmark only
    python benchmarks/meta_step.py    # all four cells: MAML's paper and reference presets, MAML++'s
                                      # paper preset, ANIL's and Meta-SGD's laptop presets
    python benchmarks/meta_step.py --check-only   # the float64 comparison alone, no timings

For each cell and method preset: first checks, in float64 on the same weights and tasks, that both
sides give the same meta-loss and meta-gradient (to 1e-6 relative); then times the meta-gradient
of one whole meta-batch in float32, alternating the two sides, and prints the medians, the
Paddle/PyTorch ratio, the first-order ratio, each side's peak resident memory during its steps,
the sampler's time as a share of the Paddle meta-step, and the meta-step's FLOPs (PyTorch's
FlopCounterMode on the same work: convolutions and matrix products), the rate Paddle achieves
on them and its fraction of a large GEMM's rate measured in the same run.

The PyTorch side is the per-task loop most MAML code uses: F.conv2d, F.batch_norm(training=True),
F.cross_entropy and torch.autograd.grad(..., create_graph=True), written independently of this
project's inner loop; for MAML++ it follows HowToTrainYourMAMLPytorch (a learned rate per tensor
and step, per-step batch-norm weights indexed by the step, batch norm outside the inner loop,
the multi-step loss at its first iteration's uniform weights); ANIL's and Meta-SGD's adapted
weights are the project's InnerLoop's, their update written again (`torch_rate`).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time

from maml.cpu import configure

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CPU_SETTINGS = configure(threads=THREADS)  # before Paddle and PyTorch are imported
# Paddle's Intel OpenMP threads otherwise spin for 200 ms after each parallel region, taking a
# core from the PyTorch side that runs next (its GEMM row measured 3.1-3.4 ms instead of 0.5).
os.environ.setdefault("KMP_BLOCKTIME", "0")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

from maml.data import load_omniglot, load_split  # noqa: E402
from maml import inner  # noqa: E402
from maml.meta import (as_tensors, init_meta_params, meta_gradient,  # noqa: E402
                       multi_step_weights)
from maml.model import (BN_EPS, conv3x3_stride2, conv_kernel, conv_matrix,  # noqa: E402
                        is_model_param, params_to_arrays)
from maml.settings import parse_cell, resolve  # noqa: E402
from maml.tasks import TaskSampler  # noqa: E402

CELLS = ("5way1shot", "5way5shot", "20way1shot", "20way5shot")


# ----------------------------------------------------------------------------- PyTorch side


def torch_forward(p: dict, x: torch.Tensor, step: int) -> torch.Tensor:
    for b in range(4):
        x = TF.conv2d(x, p[f"conv{b}.weight"], stride=2, padding=1)  # no bias, as in the model
        weight, bias = p.get(f"bn{b}.weight"), p[f"bn{b}.bias"]
        if bias.dim() == 2:  # per-step batch norm: the step's row
            row = min(step, bias.shape[0] - 1)
            weight, bias = (None if weight is None else weight[row]), bias[row]
        x = TF.batch_norm(x, None, None, weight, bias, training=True, eps=BN_EPS)
        x = TF.relu(x)
    return x.mean(dim=(2, 3)) @ p["fc.weight"] + p["fc.bias"]


def torch_rate(params: dict, settings: dict, name: str, step: int):
    """The inner rate of weight `name` at `step`, each rule written again for PyTorch: MAML++'s
    per tensor and step, Meta-SGD's per element, or the fixed one."""
    if settings["lslr"]:
        rates = params[f"lslr.{name}"]
        return rates[min(step, rates.shape[0] - 1)]
    if settings["inner_rule"] == "meta-sgd":
        return params[f"metasgd.{name}"]
    return settings["inner_lr"]


def torch_meta_gradient(params: dict, settings: dict, sx, sy, qx, qy, first_order: bool = False,
                        step_weights=None):
    steps = settings["inner_steps"]
    weights = step_weights or [0.0] * (steps - 1) + [1.0]
    model = {name: p for name, p in params.items() if is_model_param(name)}
    adapted = inner.for_settings(settings).adapted(model)  # the project's adapted set
    total = 0.0
    for t in range(sx.shape[0]):
        fast = dict(model)
        for step in range(steps):
            loss = TF.cross_entropy(torch_forward(fast, sx[t], step), sy[t])
            grads = torch.autograd.grad(loss, [fast[n] for n in adapted],
                                        create_graph=not first_order)
            for name, g in zip(adapted, grads):
                rate = torch_rate(params, settings, name, step)
                fast[name] = fast[name] - rate * g
            if weights[step]:
                query = TF.cross_entropy(torch_forward(fast, qx[t], step), qy[t])
                total = total + weights[step] * query
    loss = total / sx.shape[0]
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return loss, [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]


# ----------------------------------------------------------------------------- helpers


def step_weights(settings: dict):
    """The multi-step loss's weights at the first iteration (uniform), if the method uses it."""
    if not settings["multi_step_loss"]:
        return None
    return multi_step_weights(settings["inner_steps"], 0, settings["msl_iterations"])


def paddle_inputs(settings: dict, batch, dtype: str, perturb: bool = False):
    """Initial weights (perturbed, for the check: per-step rows and rates then differ) and the
    batch as Paddle tensors."""
    params = init_meta_params(settings, seed=0, dtype=dtype)
    if perturb:
        rng = np.random.default_rng(1)
        for p in params.values():
            p.set_value(p.numpy() + 0.1 * rng.standard_normal(p.shape).astype(p.numpy().dtype))
    tensors = [t.astype(dtype) if t.dtype == paddle.float32 else t for t in as_tensors(batch)]
    return params, tensors


def torch_layout(name: str, value: np.ndarray) -> np.ndarray:
    """A conv weight (or a rule's tensor shaped like one: Meta-SGD's rates) from this project's
    [9 * c_in, c_out] (rows: kernel row, column, c_in) to PyTorch's [c_out, c_in, 3, 3];
    anything else unchanged."""
    conv_shaped = re.search(r"(^|\.)conv[0-9]+\.weight$", name) and value.ndim == 2
    return conv_kernel(value) if conv_shaped else value


def torch_inputs(params, batch, dtype):
    torch_dtype = getattr(torch, dtype)
    weights = {name: torch.tensor(torch_layout(name, value), dtype=torch_dtype,
                                  requires_grad=True)
               for name, value in params_to_arrays(params).items()}
    tensors = [torch.tensor(batch.support_x, dtype=torch_dtype), torch.tensor(batch.support_y),
               torch.tensor(batch.query_x, dtype=torch_dtype), torch.tensor(batch.query_y)]
    return weights, tensors


def check_equal(settings: dict, batch) -> float:
    """Largest relative difference of meta-loss and meta-gradients, float64, same inputs.

    Each parameter's difference is relative to its largest gradient entry, floored at 1e-3
    of the largest entry overall, so that a parameter whose gradient is nearly zero is not
    judged on rounding noise alone.
    """
    params, tensors = paddle_inputs(settings, batch, "float64", perturb=True)
    loop, weights = inner.for_settings(settings), step_weights(settings)
    p_loss, _, p_grads = meta_gradient(params, loop, *tensors, settings["inner_steps"],
                                       settings["first_order"], weights)
    t_params, t_tensors = torch_inputs(params, batch, "float64")
    t_loss, t_grads = torch_meta_gradient(t_params, settings, *t_tensors, settings["first_order"],
                                          weights)
    worst = abs(float(p_loss) - t_loss.item()) / abs(t_loss.item())
    t_grads = [t.detach().numpy() for t in t_grads]
    floor = 1e-3 * max(np.abs(t).max() for t in t_grads)
    for name, p, t in zip(params, p_grads, t_grads):
        p = torch_layout(name, p.numpy())
        worst = max(worst, float(np.abs(p - t).max() / max(np.abs(t).max(), floor)))
    return worst


def meta_step_flops(settings: dict, batch) -> float:
    """FLOPs of one second-order meta-step: the convolutions and matrix products PyTorch's
    FlopCounterMode counts on its side's run of the same work (element-wise ops not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    params, _ = paddle_inputs(settings, batch, "float32")
    t_params, t_tensors = torch_inputs(params, batch, "float32")
    with FlopCounterMode(display=False) as counter:
        torch_meta_gradient(t_params, settings, *t_tensors, False, step_weights(settings))
    return float(counter.get_total_flops())


def matmul_rate(a_shape, b_shape, repeats: int = 5) -> float:
    """GFLOP/s of a float32 (batched) matrix product in Paddle on this run's threads."""
    rng = np.random.default_rng(0)
    a, b = (paddle.to_tensor(rng.random(shape, np.float32)) for shape in (a_shape, b_shape))
    paddle.matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        paddle.matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * np.prod(a_shape) * b_shape[-1] / statistics.median(times) / 1e9


def gemm_rate(size: int = 2048) -> float:
    """GFLOP/s of a size^3 float32 GEMM: the machine's matrix rate, against which each
    meta-step's rate is given as a fraction."""
    return matmul_rate((size, size), (size, size))


def conv_gemm_rates(peak: float) -> None:
    """The rate of the network's own products, as a fraction of the large GEMM's: the second
    block's convolution (the largest; 576 = 9 x 64 patch columns, 64 channels), 16 tasks of
    M patch rows each, forward (patches x weight), weight gradient and input gradient."""
    print("| second block's conv (conv1), 16 tasks | M = 245 | M = 980 | M = 4900 |")
    print("| --- | --- | --- | --- |")
    for name, shapes in (("forward [M, 576] x [576, 64]", lambda m: ((16, m, 576), (16, 576, 64))),
                         ("weight gradient [576, M] x [M, 64]",
                          lambda m: ((16, 576, m), (16, m, 64))),
                         ("input gradient [M, 64] x [64, 576]",
                          lambda m: ((16, m, 64), (16, 64, 576)))):
        rates = [matmul_rate(*shapes(m)) for m in (245, 980, 4900)]
        print(f"| {name} | " + " | ".join(f"{r:.1f} GFLOP/s ({r / peak:.2f})" for r in rates)
              + " |")
    print()


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def race(settings: dict, batch, repeats: int, first_order: bool):
    """Median seconds per meta-step and peak RSS (MB) of each side, Paddle and PyTorch."""
    params, tensors = paddle_inputs(settings, batch, "float32")
    loop, weights = inner.for_settings(settings), step_weights(settings)
    t_params, t_tensors = torch_inputs(params, batch, "float32")

    def run_paddle():
        loss, _, grads = meta_gradient(params, loop, *tensors, settings["inner_steps"],
                                       first_order, weights)
        float(loss), [g.numpy() for g in grads]

    def run_torch():
        loss, grads = torch_meta_gradient(t_params, settings, *t_tensors, first_order, weights)
        loss.item(), [g.numpy() for g in grads]

    sides = {"paddle": run_paddle, "torch": run_torch}
    times = {name: [] for name in sides}
    peaks = {name: 0.0 for name in sides}
    for run in sides.values():  # warm-up
        run()
    for _ in range(repeats):
        for name, run in sides.items():
            reset_peak_rss()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], peak_rss_mb())
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, peaks


def kernels(repeats: int = 50) -> None:
    """Where the time goes: one 3x3 stride-2 conv (fwd, fwd+bwd), as Paddle's conv2d and as this
    project's patch gather + GEMM, against PyTorch's conv2d; and one GEMM."""
    import paddle.nn.functional as PF

    def clock(fn):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return 1e3 * (time.perf_counter() - start) / repeats

    rng = np.random.default_rng(0)
    x, w = rng.random((25, 64, 14, 14), np.float32), rng.random((64, 64, 3, 3), np.float32)
    a, b = rng.random((64, 576), np.float32), rng.random((576, 1225), np.float32)
    px, pw = paddle.to_tensor(x, stop_gradient=False), paddle.to_tensor(w, stop_gradient=False)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    pa, pb, ta, tb = paddle.to_tensor(a), paddle.to_tensor(b), torch.tensor(a), torch.tensor(b)
    # the same conv in this project's layout: channels-last pixels, one task's weight matrix
    gx = paddle.to_tensor(x.transpose(0, 2, 3, 1).reshape(25, 196, 64), stop_gradient=False)
    gw = paddle.to_tensor(conv_matrix(w)[None], stop_gradient=False)

    def gemm_conv():
        return conv3x3_stride2(gx, (14, 14), gw)[0]

    rows = {
        "Paddle conv2d 25x64x14x14 -> 64, forward": (
            lambda: PF.conv2d(px, pw, stride=2, padding=1),
            lambda: TF.conv2d(tx, tw, stride=2, padding=1)),
        "Paddle conv2d forward + backward": (
            lambda: paddle.grad(PF.conv2d(px, pw, stride=2, padding=1).sum(), [pw, px]),
            lambda: torch.autograd.grad(TF.conv2d(tx, tw, stride=2, padding=1).sum(), [tw, tx])),
        "same conv as gather + GEMM (this project), forward": (
            gemm_conv,
            lambda: TF.conv2d(tx, tw, stride=2, padding=1)),
        "gather + GEMM forward + backward": (
            lambda: paddle.grad(gemm_conv().sum(), [gw, gx]),
            lambda: torch.autograd.grad(TF.conv2d(tx, tw, stride=2, padding=1).sum(), [tw, tx])),
        "GEMM 64x576 @ 576x1225": (
            lambda: paddle.matmul(pa, pb),
            lambda: ta @ tb),
    }
    print("| kernel | Paddle ms | PyTorch ms | ratio |\n| --- | --- | --- | --- |")
    for name, (paddle_fn, torch_fn) in rows.items():
        p, t = clock(paddle_fn), clock(torch_fn)
        print(f"| {name} | {p:.2f} | {t:.2f} | {p / t:.2f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="resources/omniglot/omniglot28.npz")
    parser.add_argument("--split-file", default="resources/omniglot/splits/finn.json")
    parser.add_argument("--cells", nargs="+", default=list(CELLS))
    parser.add_argument("--presets", nargs="+", default=["maml:paper", "maml:reference",
                                                         "maml++:paper", "anil:laptop",
                                                         "meta-sgd:laptop"],
                        help="method:preset pairs")
    parser.add_argument("--check-only", action="store_true",
                        help="only the float64 comparison with PyTorch, no timings")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (>= 5)")
    parser.add_argument("--first-order-repeats", type=int, default=3)
    parser.add_argument("--no-kernels", action="store_true", help="skip the kernel timings")
    args = parser.parse_args()

    paddle.set_device("cpu")
    torch.set_num_threads(THREADS)
    from maml.data import DataError

    try:
        images = load_omniglot(args.data).images
    except DataError as error:
        parser.error(str(error))
    train_part = load_split(args.split_file)["parts"]["train"]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{THREADS} threads; Python {sys.version.split()[0]}, Paddle {paddle.__version__}, "
          f"PyTorch {torch.__version__}; maml.cpu settings: {CPU_SETTINGS or 'none'}\n")
    if not (args.no_kernels or args.check_only):
        kernels()
    peak = None if args.check_only else gemm_rate()
    if peak:
        print(f"GEMM 2048^3 float32, Paddle: {peak:.1f} GFLOP/s (the rate the last column is a "
              "fraction of)\n")
        conv_gemm_rates(peak)
    print("| method:preset | cell | tasks x steps | check (max rel diff) | Paddle ms | PyTorch ms | ratio "
          "| first-order ratio | peak MB Paddle / PyTorch | sampler share "
          "| GFLOP/step | Paddle GFLOP/s | of GEMM rate |")
    print("| --- " * 13 + "|")
    for method_preset in args.presets:
        method, preset = method_preset.split(":")
        for cell in args.cells:
            n_way, k_shot = parse_cell(cell)
            settings = resolve(n_way, k_shot, preset, method)
            sampler = TaskSampler(images, train_part, n_way, k_shot, settings["k_query"])
            rng = np.random.default_rng(0)
            batch = sampler.sample(rng, settings["meta_batch"])
            check_batch = sampler.sample(rng, 2)
            check = check_equal(settings, check_batch)
            if args.check_only:
                print(f"| {method_preset} | {cell} | 2 x {settings['inner_steps']} "
                      f"| {check:.1e} {'ok' if check < 1e-6 else 'MISMATCH'} |" + " |" * 9,
                      flush=True)
                continue
            times, peaks = race(settings, batch, args.repeats, False)
            paddle_s, torch_s = times["paddle"], times["torch"]
            first_order, _ = race(settings, batch, args.first_order_repeats, True)
            start = time.perf_counter()
            for _ in range(10):
                as_tensors(sampler.sample(rng, settings["meta_batch"]))
            sampling = (time.perf_counter() - start) / 10
            gflop = meta_step_flops(settings, batch) / 1e9
            print(f"| {method_preset} | {cell} | {settings['meta_batch']} x {settings['inner_steps']} "
                  f"| {check:.1e} {'ok' if check < 1e-6 else 'MISMATCH'} "
                  f"| {1e3 * paddle_s:.0f} | {1e3 * torch_s:.0f} | {paddle_s / torch_s:.2f} "
                  f"| {first_order['paddle'] / first_order['torch']:.2f} "
                  f"| {peaks['paddle']:.0f} / {peaks['torch']:.0f} "
                  f"| {100 * sampling / paddle_s:.2f}% | {gflop:.1f} | {gflop / paddle_s:.1f} "
                  f"| {gflop / paddle_s / peak:.2f} |", flush=True)


if __name__ == "__main__":
    main()
