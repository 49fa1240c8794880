"""Where a Paddle meta-step's time goes: the Paddle profiler's operator table for one meta-step.

    python benchmarks/profile_meta_step.py --cell 5way1shot --preset reference --tasks 2

Eager mode, real tasks of the cell, the project's `maml.meta.meta_gradient` (one warm-up step,
then one profiled step). Rows named `...GradNode` are backward passes, `...DoubleGradNode` the
second-order ones. Below the table, the shares of the profiled time by kind of op: matrix
products (the convolutions' GEMMs and the reductions and broadcasts done as products with a
column of ones, forward, backward and double backward), the patch gather and its padding, and
everything else (element-wise ops, the loss, bookkeeping).
"""

from __future__ import annotations

import argparse
import os
import time

from maml.cpu import configure  # noqa: E402

configure(threads=int(os.environ.get("BENCH_THREADS", "1")))  # before Paddle is imported

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.profiler as profiler  # noqa: E402
from paddle.profiler.profiler_statistic import StatisticData  # noqa: E402

from maml.data import load_omniglot, load_split  # noqa: E402
from maml import inner  # noqa: E402
from maml.meta import as_tensors, init_meta_params, meta_gradient  # noqa: E402
from maml.settings import METHODS, parse_cell, resolve  # noqa: E402
from maml.tasks import TaskSampler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="resources/omniglot/omniglot28.npz")
    parser.add_argument("--split-file", default="resources/omniglot/splits/finn.json")
    parser.add_argument("--cell", default="5way1shot")
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--method", default="maml", choices=METHODS)
    parser.add_argument("--tasks", type=int, help="meta-batch size (default: the preset's)")
    args = parser.parse_args()

    paddle.set_device("cpu")
    n_way, k_shot = parse_cell(args.cell)
    settings = resolve(n_way, k_shot, args.preset, args.method)
    sampler = TaskSampler(load_omniglot(args.data).images,
                          load_split(args.split_file)["parts"]["train"], n_way, k_shot,
                          settings["k_query"])
    batch = as_tensors(sampler.sample(np.random.default_rng(0),
                                      args.tasks or settings["meta_batch"]))
    params, loop = init_meta_params(settings, seed=0), inner.for_settings(settings)
    steps, first_order = settings["inner_steps"], settings["first_order"]
    meta_gradient(params, loop, *batch, steps, first_order)  # warm-up
    # on_trace_ready: by default Paddle also writes a trace file to ./profiler_log/
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda _: None)
    prof.start()
    start = time.perf_counter()
    meta_gradient(params, loop, *batch, steps, first_order)
    elapsed = time.perf_counter() - start
    prof.stop()
    print(f"{args.method}:{args.preset} {args.cell}, {batch[0].shape[0]} tasks x {steps} steps: "
          f"{1e3 * elapsed:.0f} ms ({os.environ['OMP_NUM_THREADS']} threads, profiled)")
    prof.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, thread_sep=False,
                 time_unit="ms")
    print(shares(prof))


# words in the op names, lowercase without underscores ("index_select dygraph",
# "Global_IndexSelectGradNode")
KINDS = {"matrix products": ("matmul",), "patch gather and padding": ("indexselect", "pad3d")}


def shares(prof: profiler.Profiler) -> str:
    """The profiled time's split by kind of op, e.g. "matrix products 70.3%, ..."."""
    result = prof.profiler_result
    items = StatisticData(result.get_data(), result.get_extra_info()).event_summary.items
    totals = dict.fromkeys([*KINDS, "everything else"], 0.0)
    for name, item in items.items():
        kind = next((kind for kind, words in KINDS.items()
                     if any(word in name.lower().replace("_", "") for word in words)),
                    "everything else")
        totals[kind] += item.cpu_time
    whole = sum(totals.values())
    return "shares: " + ", ".join(f"{kind} {100 * t / whole:.1f}%" for kind, t in totals.items())


if __name__ == "__main__":
    main()
