"""One full MAML meta-step: this project's Paddle code against a plain PyTorch eager loop.

    pip install -e ".[bench]"         # PyTorch 2.13 CPU, for this benchmark only
    python benchmarks/meta_step.py    # all four cells at the paper and reference presets

For each cell and preset: first checks, in float64 on the same weights and tasks, that both
sides give the same meta-loss and meta-gradient (to 1e-6 relative); then times the meta-gradient
of one whole meta-batch in float32, alternating the two sides, and prints the medians, the
Paddle/PyTorch ratio, the first-order ratio, each side's peak resident memory during its steps,
and the sampler's time as a share of the Paddle meta-step. With --static it also times (and
checks) the same meta-step compiled per task with paddle.jit.to_static(full_graph=True) and prim.

The PyTorch side is the per-task loop most MAML code uses: F.conv2d, F.batch_norm(training=True),
F.cross_entropy and torch.autograd.grad(..., create_graph=True).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
os.environ["OMP_NUM_THREADS"] = str(THREADS)  # before Paddle and PyTorch are imported

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

from maml.data import load_omniglot, load_split  # noqa: E402
from maml.meta import adapt, as_tensors, meta_gradient  # noqa: E402
from maml.model import BN_EPS, cross_entropy, forward, init_params, params_to_arrays  # noqa: E402
from maml.settings import parse_cell, resolve  # noqa: E402
from maml.tasks import TaskSampler  # noqa: E402

CELLS = ("5way1shot", "5way5shot", "20way1shot", "20way5shot")


# ----------------------------------------------------------------------------- PyTorch side


def torch_forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    for b in range(4):
        x = TF.conv2d(x, p[f"conv{b}.weight"], p[f"conv{b}.bias"], stride=2, padding=1)
        x = TF.batch_norm(x, None, None, p[f"bn{b}.weight"], p[f"bn{b}.bias"], training=True,
                          eps=BN_EPS)
        x = TF.relu(x)
    return x.mean(dim=(2, 3)) @ p["fc.weight"] + p["fc.bias"]


def torch_meta_gradient(params: dict, sx, sy, qx, qy, steps: int, lr: float,
                        first_order: bool = False):
    total = 0.0
    for t in range(sx.shape[0]):
        fast = params
        for _ in range(steps):
            loss = TF.cross_entropy(torch_forward(fast, sx[t]), sy[t])
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
            fast = {name: w - lr * g for (name, w), g in zip(fast.items(), grads)}
        total = total + TF.cross_entropy(torch_forward(fast, qx[t]), qy[t])
    loss = total / sx.shape[0]
    return loss, torch.autograd.grad(loss, list(params.values()))


# ------------------------------------------------------- Paddle, compiled per task (--static)


@contextlib.contextmanager
def prim_enabled():
    """Prim (decomposition into primitive ops) for the compiled side only."""
    paddle.framework.core._set_prim_all_enabled(True)
    try:
        yield
    finally:
        paddle.framework.core._set_prim_all_enabled(False)


def static_meta_gradient_fn(names, steps: int, lr: float, first_order: bool = False):
    """The project's meta-gradient with each task's inner loop, query loss and gradient compiled
    by to_static(full_graph=True) with prim; the loop over tasks stays in Python, so the
    compiled program is one task's, whatever the meta-batch size.

    The weights go in as they are: a `detach()` inside the compiled function, then
    `stop_gradient = False`, lets Paddle 3.3's in-place passes overwrite the caller's tensors.
    The outputs leave detached: otherwise to_static also builds their backward, a third order.
    """
    def task(weights, sx, sy, qx, qy):
        fast = adapt(dict(zip(names, weights)), sx, sy, steps, lr, first_order)
        loss = cross_entropy(forward(fast, qx), qy)
        return [out.detach() for out in (loss, *paddle.grad(loss, weights))]

    compiled = paddle.jit.to_static(task, full_graph=True)

    def static_meta_gradient(params, sx, sy, qx, qy):
        weights, total = list(params.values()), None
        with prim_enabled():
            for t in range(sx.shape[0]):
                out = compiled(weights, sx[t], sy[t], qx[t], qy[t])
                total = out if total is None else [a + b for a, b in zip(total, out)]
        return total[0] / sx.shape[0], [g / sx.shape[0] for g in total[1:]]

    return static_meta_gradient


# ----------------------------------------------------------------------------- helpers


def paddle_inputs(settings: dict, batch, dtype: str):
    params = init_params(settings["n_way"], seed=0, dtype=dtype)
    tensors = [t.astype(dtype) if t.dtype == paddle.float32 else t for t in as_tensors(batch)]
    return params, tensors


def torch_inputs(params, batch, dtype):
    torch_dtype = getattr(torch, dtype)
    weights = {name: torch.tensor(value, dtype=torch_dtype, requires_grad=True)
               for name, value in params_to_arrays(params).items()}
    tensors = [torch.tensor(batch.support_x, dtype=torch_dtype), torch.tensor(batch.support_y),
               torch.tensor(batch.query_x, dtype=torch_dtype), torch.tensor(batch.query_y)]
    return weights, tensors


def check_equal(settings: dict, batch, static: bool = False) -> float:
    """Largest relative difference of meta-loss and meta-gradients, float64, same inputs.

    Each parameter's difference is relative to its largest gradient entry, floored at 1e-3
    of the largest entry overall: the conv biases before batch norm have an exactly zero true
    gradient, where both sides return rounding noise. `static`: check the compiled side.
    """
    steps, lr = settings["inner_steps"], settings["inner_lr"]
    params, tensors = paddle_inputs(settings, batch, "float64")
    if static:
        p_loss, p_grads = static_meta_gradient_fn(list(params), steps, lr)(params, *tensors)
    else:
        p_loss, _, p_grads = meta_gradient(params, *tensors, steps, lr)
    weights, t_tensors = torch_inputs(params, batch, "float64")
    t_loss, t_grads = torch_meta_gradient(weights, *t_tensors, steps, lr)
    worst = abs(float(p_loss) - t_loss.item()) / abs(t_loss.item())
    t_grads = [t.detach().numpy() for t in t_grads]
    floor = 1e-3 * max(np.abs(t).max() for t in t_grads)
    for p, t in zip(p_grads, t_grads):
        worst = max(worst, float(np.abs(p.numpy() - t).max() / max(np.abs(t).max(), floor)))
    return worst


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


def race(settings: dict, batch, repeats: int, first_order: bool, static: bool = False):
    """Median seconds per meta-step and peak RSS (MB) of each side: Paddle, PyTorch and, with
    `static`, Paddle compiled per task (its first call, the compile, is timed separately)."""
    steps, lr = settings["inner_steps"], settings["inner_lr"]
    params, tensors = paddle_inputs(settings, batch, "float32")
    weights, t_tensors = torch_inputs(params, batch, "float32")

    def run_paddle():
        loss, _, grads = meta_gradient(params, *tensors, steps, lr, first_order)
        float(loss), [g.numpy() for g in grads]

    def run_torch():
        loss, grads = torch_meta_gradient(weights, *t_tensors, steps, lr, first_order)
        loss.item(), [g.numpy() for g in grads]

    sides = {"paddle": run_paddle, "torch": run_torch}
    if static:
        compiled = static_meta_gradient_fn(list(params), steps, lr, first_order)

        def run_static():
            loss, grads = compiled(params, *tensors)
            float(loss), [g.numpy() for g in grads]

        sides["static"] = run_static
    times = {name: [] for name in sides}
    peaks = {name: 0.0 for name in sides}
    warm_up = {}
    for name, run in sides.items():
        start = time.perf_counter()
        run()
        warm_up[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, run in sides.items():
            reset_peak_rss()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], peak_rss_mb())
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, peaks, warm_up


def kernels(repeats: int = 50) -> None:
    """Where the time goes: one 3x3 stride-2 conv (fwd, fwd+bwd) and one GEMM, both frameworks."""
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
    rows = {
        "conv 25x64x14x14 -> 64, forward": (
            lambda: PF.conv2d(px, pw, stride=2, padding=1),
            lambda: TF.conv2d(tx, tw, stride=2, padding=1)),
        "conv forward + backward": (
            lambda: paddle.grad(PF.conv2d(px, pw, stride=2, padding=1).sum(), [pw, px]),
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
    parser.add_argument("--presets", nargs="+", default=["paper", "reference"])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (>= 5)")
    parser.add_argument("--first-order-repeats", type=int, default=3)
    parser.add_argument("--no-kernels", action="store_true", help="skip the kernel timings")
    parser.add_argument("--static", action="store_true",
                        help="also time the meta-step compiled per task (to_static + prim)")
    args = parser.parse_args()

    paddle.set_device("cpu")
    torch.set_num_threads(THREADS)
    images = load_omniglot(args.data).images
    train_part = load_split(args.split_file)["parts"]["train"]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{THREADS} threads; Python {sys.version.split()[0]}, Paddle {paddle.__version__}, "
          f"PyTorch {torch.__version__}\n")
    if not args.no_kernels:
        kernels()
    static_columns = (" | static check | static ms | static / eager | static compile s"
                      if args.static else "")
    print("| preset | cell | tasks x steps | check (max rel diff) | Paddle ms | PyTorch ms | ratio "
          f"| first-order ratio | peak MB Paddle / PyTorch | sampler share{static_columns} |")
    print("| --- " * (10 + 4 * args.static) + "|")
    for preset in args.presets:
        for cell in args.cells:
            n_way, k_shot = parse_cell(cell)
            settings = resolve(n_way, k_shot, preset)
            sampler = TaskSampler(images, train_part, n_way, k_shot, settings["k_query"])
            rng = np.random.default_rng(0)
            batch = sampler.sample(rng, settings["meta_batch"])
            check_batch = sampler.sample(rng, 2)
            check = check_equal(settings, check_batch)
            times, peaks, warm_up = race(settings, batch, args.repeats, False, args.static)
            paddle_s, torch_s = times["paddle"], times["torch"]
            first_order, _, _ = race(settings, batch, args.first_order_repeats, True)
            static = ""
            if args.static:
                static_check = check_equal(settings, check_batch, static=True)
                static = (f" | {static_check:.1e} | {1e3 * times['static']:.0f} "
                          f"| {times['static'] / paddle_s:.2f} | {warm_up['static']:.1f}")
            start = time.perf_counter()
            for _ in range(10):
                as_tensors(sampler.sample(rng, settings["meta_batch"]))
            sampling = (time.perf_counter() - start) / 10
            print(f"| {preset} | {cell} | {settings['meta_batch']} x {settings['inner_steps']} "
                  f"| {check:.1e} {'ok' if check < 1e-6 else 'MISMATCH'} "
                  f"| {1e3 * paddle_s:.0f} | {1e3 * torch_s:.0f} | {paddle_s / torch_s:.2f} "
                  f"| {first_order['paddle'] / first_order['torch']:.2f} "
                  f"| {peaks['paddle']:.0f} / {peaks['torch']:.0f} "
                  f"| {100 * sampling / paddle_s:.2f}%{static} |", flush=True)


if __name__ == "__main__":
    main()
