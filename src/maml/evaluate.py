"""A trained model on its cell's fixed test tasks: accuracy after each inner step, 95% CI."""

from __future__ import annotations

import math
import time

import numpy as np
from tqdm import tqdm

from maml import cpu, inner
from maml.cells import head_for, serving_settings, trained_and_tested
from maml.data import load_characters, load_split
from maml.device import use_device
from maml.inner import InnerLoop
from maml.meta import adapted_probabilities, as_tensors, evaluation_accuracies, task_groups
from maml.model import Params
from maml.model_file import check_split, load_params
from maml.settings import INDEPENDENT, QUERY_MODES, SettingsError, check_num_tasks, with_defaults
from maml.tasks import TaskIndices, TaskSampler, stage_sampler


def confidence_interval(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Half-width of the 95% interval of the mean: 1.96 * std / sqrt(n), std with ddof=0."""
    return 1.96 * np.std(values, axis=axis) / math.sqrt(values.shape[axis])


def per_task_accuracies(params: Params, loop: InnerLoop, sampler: TaskSampler,
                        tasks: TaskIndices, steps: int, progress: bool = False) -> np.ndarray:
    """Query accuracy after 0..steps inner steps for each task: [num_tasks, steps + 1]."""
    return task_accuracies(params, loop, sampler, tasks, steps, progress)[0]


def task_accuracies(params: Params, loop: InnerLoop, sampler: TaskSampler, tasks: TaskIndices,
                    steps: int, progress: bool = False, modes=()) -> tuple[np.ndarray, dict]:
    """`per_task_accuracies`, and from the same adaptations each task's accuracy after the
    last step with the queries classified as each of `modes` says: {mode: [num_tasks]}."""
    images = sampler.n_way * (sampler.k_shot + sampler.k_query)
    rows, by_mode = [], {mode: [] for mode in modes}
    with tqdm(total=len(tasks), desc="evaluate", unit="task", disable=not progress) as bar:
        for group in task_groups(len(tasks), images):
            batch = as_tensors(sampler.build(tasks[group]))
            per_step, final = evaluation_accuracies(params, loop, *batch, steps, modes)
            rows.append(per_step)
            for mode in modes:
                by_mode[mode].append(final[mode])
            bar.update(group.stop - group.start)
    return np.concatenate(rows), {mode: np.concatenate(a) for mode, a in by_mode.items()}


def mode_accuracies(members: list[Params], loop: InnerLoop, sampler: TaskSampler,
                    tasks: TaskIndices, steps: int, queries: str, progress: bool = False,
                    desc: str | None = None) -> np.ndarray:
    """Each task's query accuracy after `steps` steps, the queries classified as `queries`
    says (settings.QUERY_MODES): [num_tasks]. Several `members` (e.g. seeds) adapt each on
    its own and answer as one ensemble, their class probabilities averaged per query."""
    images = sampler.n_way * (sampler.k_shot + sampler.k_query)
    rows = []
    with tqdm(total=len(tasks), desc=desc or f"queries {queries}", unit="task",
              disable=not progress) as bar:
        for group in task_groups(len(tasks), images):
            support_x, support_y, query_x, query_y = as_tensors(sampler.build(tasks[group]))
            mean = sum(adapted_probabilities(params, loop, support_x, support_y, query_x, steps,
                                             queries) for params in members) / len(members)
            rows.append((mean.argmax(axis=2) == query_y.numpy()).mean(axis=1))
            bar.update(group.stop - group.start)
    return np.concatenate(rows)


def _sampler(data_path, split_path, settings: dict, part: str = "test",
             models=()) -> TaskSampler:
    """Test tasks (the settings' test stage) over the split's `part`: on "val", to choose a
    setting by the test protocol without the test characters. The split must be the one
    each of `models` was trained on, where its train.json records it."""
    data = load_characters(data_path)
    split = load_split(split_path, settings["split"], data.num_characters)
    for model in models:
        check_split(model, split, split_path)
    return stage_sampler(data, split["parts"][part], settings, "test")


def evaluate(model_path, data_path, split_path, settings: dict, num_tasks: int = 600,
             test_seed: int = 0, progress: bool = True, part: str = "test",
             query_modes=(INDEPENDENT,), tested_on: tuple[int, int, int] | None = None) -> dict:
    """Adapt to each of `num_tasks` fixed tasks of the split's `part` for 0..test_inner_steps
    steps, the queries classified together (the paper's protocol); and after the last step
    with the queries classified as each of `query_modes` says. `tested_on` (n_way, k_shot,
    k_query): tasks of another cell than the model's own (maml.cells)."""
    check_num_tasks(num_tasks)
    for mode in query_modes:
        if mode not in QUERY_MODES:
            raise SettingsError(f"queries: one of {list(QUERY_MODES)}, got {mode!r}")
    trained = with_defaults(settings)
    settings = serving_settings(trained, *tested_on) if tested_on else trained
    use_device(settings["device"])
    params = head_for(load_params(model_path, trained), settings["n_way"])
    sampler = _sampler(data_path, split_path, settings, part, [model_path])
    steps, lr = settings["test_inner_steps"], settings["inner_lr"]
    clock = time.perf_counter()
    loop, tasks = inner.for_settings(settings), sampler.fixed_tasks(test_seed, num_tasks)
    per_task, by_mode = task_accuracies(params, loop, sampler, tasks, steps, progress,
                                        query_modes)
    means, intervals = per_task.mean(axis=0), confidence_interval(per_task)
    modes = {mode: {"accuracy": float(accuracies.mean()),
                    "ci95": float(confidence_interval(accuracies)),
                    "task_accuracy": [float(a) for a in accuracies]}
             for mode, accuracies in by_mode.items()}
    return {
        "part": part, "n_way": settings["n_way"], "k_shot": settings["k_shot"],
        "k_query": settings["test_k_query"], "num_tasks": num_tasks, "test_seed": test_seed,
        "method": settings["method"], "inner_steps": steps, "inner_lr": lr,
        "norm": settings["norm"], **trained_and_tested(trained, settings),
        "tasks": sampler.describe(),
        "accuracy": float(means[-1]), "ci95": float(intervals[-1]),
        "per_step_accuracy": [float(a) for a in means],
        "per_step_ci95": [float(c) for c in intervals],
        "task_accuracy": [float(a) for a in per_task[:, -1]],
        # the same tasks and steps, each query classified on its own (QUERY_MODES)
        "query_modes": modes,
        "wall_time_s": round(time.perf_counter() - clock, 3),
        "machine": cpu.machine(),  # float32 results are exact on one CPU kind only (README)
    }


def evaluate_ensemble(model_paths, data_path, split_path, settings: dict, num_tasks: int = 600,
                      test_seed: int = 0, progress: bool = True,
                      tested_on: tuple[int, int, int] | None = None,
                      queries: str = "together") -> dict:
    """Models of one configuration (e.g. its seeds) as one ensemble on the fixed test tasks:
    each adapts on its own, their query class probabilities are averaged, and the average's
    most probable class is the answer (MAML++'s published numbers are such ensembles). The
    members classify the queries as `queries` says (a network normalised otherwise than by
    batch norm classifies each on its own whatever it says); `tested_on` as `evaluate`'s."""
    check_num_tasks(num_tasks)
    trained = with_defaults(settings)
    settings = serving_settings(trained, *tested_on) if tested_on else trained
    use_device(settings["device"])
    members = [head_for(load_params(path, trained), settings["n_way"]) for path in model_paths]
    loop, steps = inner.for_settings(settings), settings["test_inner_steps"]
    sampler = _sampler(data_path, split_path, settings, models=model_paths)
    clock = time.perf_counter()
    per_task = mode_accuracies(members, loop, sampler, sampler.fixed_tasks(test_seed, num_tasks),
                               steps, queries, progress, desc="ensemble")
    return {
        "n_way": settings["n_way"], "k_shot": settings["k_shot"],
        "k_query": settings["test_k_query"], "num_tasks": num_tasks, "test_seed": test_seed,
        "method": settings["method"], "inner_steps": steps, "norm": settings["norm"],
        **trained_and_tested(trained, settings), "queries": queries,
        "members": [str(p) for p in model_paths],
        "accuracy": float(per_task.mean()), "ci95": float(confidence_interval(per_task)),
        "task_accuracy": [float(a) for a in per_task],
        "wall_time_s": round(time.perf_counter() - clock, 3),
        "machine": cpu.machine(),  # float32 results are exact on one CPU kind only (README)
    }
