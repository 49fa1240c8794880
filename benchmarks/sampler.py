"""Tasks per second of the episode sampler (draw + build), on one core.

    python benchmarks/sampler.py [--data resources/omniglot/omniglot28.npz]

Prints 5-way 1-shot 15-query tasks per second (target: at least 2000), drawn one
meta-batch of 32 at a time as training does, and one task at a time as evaluation does.
"""

import argparse
import time

from maml.cpu import configure

configure(threads=1)

import numpy as np  # noqa: E402

from maml.data import load_omniglot, load_split  # noqa: E402
from maml.tasks import TaskSampler  # noqa: E402


def tasks_per_second(sampler: TaskSampler, batch: int, seconds: float = 3.0) -> float:
    rng = np.random.default_rng(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample(rng, batch)
        count += batch
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="resources/omniglot/omniglot28.npz")
    parser.add_argument("--split-file", default="resources/omniglot/splits/finn.json")
    args = parser.parse_args()
    images = load_omniglot(args.data).images
    train = load_split(args.split_file)["parts"]["train"]
    for n, k, q in ((5, 1, 15), (5, 5, 15), (20, 1, 15), (20, 5, 15)):
        sampler = TaskSampler(images, train, n, k, q)
        print(f"{n:2d}-way {k}-shot {q}-query: "
              f"{tasks_per_second(sampler, 32):8.0f} tasks/s in batches of 32, "
              f"{tasks_per_second(sampler, 1):8.0f} tasks/s one at a time")


if __name__ == "__main__":
    main()
