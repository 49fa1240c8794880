"""The outer loop: Adam on the meta-loss, logging, validation, checkpoints and resume.

Everything random comes from one numpy generator seeded by `settings["seed"]` (weights
and tasks), and its state is checkpointed with the weights and Adam's moments, so a
resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maml.data import load_characters, load_split, split_hash
from maml.device import use_device
from maml.evaluate import per_task_accuracies
from maml.files import FileFormatError, load_arrays, save_arrays, write_json, write_text
from maml import cpu, inner
from maml.meta import as_tensors, init_meta_params, meta_gradient, multi_step_weights
from maml.model import Params, arrays_to_params, params_to_arrays
from maml.progress import DivergenceError, write_record
from maml.settings import SettingsError, validate, with_defaults
from maml.identity import fingerprint
from maml.tasks import stage_sampler

CURVE_COLUMNS = ("iteration", "loss", "accuracy", "val_accuracy", "elapsed_s")
VAL_SEED = 12345  # the same validation tasks for every run of a cell


class Adam:
    """Adam (Kingma & Ba) with TF's defaults, its state keyed by parameter name.

    Written out rather than taken from `paddle.optimizer.Adam`, whose state is keyed by
    auto-generated tensor names that differ between processes, which breaks exact resume.
    """

    def __init__(self, params: Params, lr: float, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.step_count = 0
        self.m = {name: np.zeros(p.shape, np.float64) for name, p in params.items()}
        self.v = {name: np.zeros(p.shape, np.float64) for name, p in params.items()}

    def step(self, params: Params, grads, lr: float | None = None) -> None:
        """One update; `lr` (e.g. from a schedule) replaces the initial rate for this step.
        A non-finite gradient or new weight raises DivergenceError before anything changes."""
        t = self.step_count + 1
        rate = ((self.lr if lr is None else lr) * np.sqrt(1 - self.beta2 ** t)
                / (1 - self.beta1 ** t))
        moments, weights = {}, {}
        for (name, param), grad in zip(params.items(), grads):
            g = grad.numpy().astype(np.float64)
            m = self.beta1 * self.m[name] + (1 - self.beta1) * g
            v = self.beta2 * self.v[name] + (1 - self.beta2) * g * g
            value = param.numpy()
            weights[name] = (value - rate * m / (np.sqrt(v) + self.eps)).astype(value.dtype)
            moments[name] = m, v
            for what, array in (("gradient", g), ("weight", weights[name])):
                if not np.isfinite(array).all():
                    raise DivergenceError(f"a non-finite {what} of {name} at update {t}")
        for name, param in params.items():
            self.m[name], self.v[name] = moments[name]
            param.set_value(weights[name])
        self.step_count = t


class Checkpoint:
    """Resume state kept outside the run's declared outputs (Snakemake deletes those)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def save(self, params, best, adam: Adam, rng, iteration, curve, best_val,
             settings_key: str | None = None, segments=(), iterations=None) -> None:
        """The state, and beside it the progress record (`maml.progress`)."""
        arrays = {**params_to_arrays(params, "param/"), **params_to_arrays(best, "best/")}
        arrays.update({f"adam_m/{k}": v for k, v in adam.m.items()})
        arrays.update({f"adam_v/{k}": v for k, v in adam.v.items()})
        meta = {"iteration": iteration, "adam_step": adam.step_count, "best_val": best_val,
                "rng": rng.bit_generator.state, "curve": curve,
                "settings_key": settings_key, "segments": list(segments)}
        arrays["meta"] = np.array(json.dumps(meta))
        save_arrays(self.path, arrays)
        write_record(self.path, iteration, iterations or iteration, list(segments))

    def read(self) -> tuple[dict, dict]:
        """The saved arrays and the record beside them (iteration, curve, ...)."""
        arrays = load_arrays(self.path)
        if "meta" not in arrays:  # e.g. a model.npz given where a checkpoint belongs
            raise FileFormatError(f"{self.path}: not a training checkpoint of this project "
                                  "(it has no training record)")
        return arrays, json.loads(str(arrays["meta"]))

    def check(self, meta: dict) -> None:
        """A checkpoint's record agrees with itself: its settings key is there, and its
        iteration, Adam's step count and its curve's rows are one count (an edited or mixed
        checkpoint would resume into a curve that goes back)."""
        iteration, curve = meta.get("iteration"), meta.get("curve", [])
        if meta.get("settings_key") is None:
            raise SettingsError(f"{self.path}: records no settings key, so nothing tells "
                                "which settings it was written with; delete it to start "
                                "again")
        steps = [row.get("iteration") for row in curve]
        if (meta.get("adam_step") != iteration or len(curve) != iteration
                or steps != list(range(1, len(curve) + 1))):
            raise SettingsError(f"{self.path}: inconsistent (iteration {iteration}, Adam "
                                f"step {meta.get('adam_step')}, {len(curve)} curve rows "
                                "numbered other than 1, 2, ...); delete it to start again")

    def curve(self) -> list[dict]:
        """The curve rows so far: the first rows of the run's curve.csv to come."""
        return self.read()[1]["curve"]

    def load(self, params, best, adam: Adam, rng, settings_key: str | None = None):
        """Restore the state; refuse a checkpoint written with other training settings."""
        arrays, meta = self.read()
        self.check(meta)
        if meta.get("settings_key") != settings_key:
            raise SettingsError(f"{self.path}: written by a run with other training settings; "
                                "resuming would mislabel the result. Delete it to start again, "
                                "or give this run its own --state / --out-dir")
        for name, p in arrays_to_params(arrays, "param/").items():
            params[name].set_value(p.numpy())
        best.update(arrays_to_params(arrays, "best/"))
        adam.m = {k[len("adam_m/"):]: v for k, v in arrays.items() if k.startswith("adam_m/")}
        adam.v = {k[len("adam_v/"):]: v for k, v in arrays.items() if k.startswith("adam_v/")}
        adam.step_count = meta["adam_step"]
        rng.bit_generator.state = meta["rng"]
        return meta["iteration"], meta["curve"], meta["best_val"], meta.get("segments", [])


def train(settings: dict, data_path, split_path, out_dir, state_path=None,
          resume: bool = False, progress: bool = True) -> dict:
    """Meta-train one cell and seed; write model.npz (best on validation), curve.csv, train.json.

    With `resume`, continue from the checkpoint at `state_path` if there is one.
    """
    use_device(settings["device"])
    out_dir = Path(out_dir)
    checkpoint = Checkpoint(state_path or out_dir / "checkpoint.npz")
    for folder in (out_dir, checkpoint.path.parent):  # before any work, not at the first save
        writable_folder(folder)
    split, train_tasks, val_sampler, val_tasks = _stages(settings, data_path, split_path,
                                                         progress)
    rng = np.random.default_rng(settings["seed"])
    params = init_meta_params(settings, seed=int(rng.integers(2 ** 31)))
    loop = inner.for_settings(settings)
    best = OrderedDict((name, p.detach().clone()) for name, p in params.items())
    adam = Adam(params, settings["meta_lr"])
    start, curve, best_val, segments = _restore(checkpoint, resume, settings, params, best,
                                                adam, rng)
    elapsed0 = curve[-1]["elapsed_s"] if curve else 0.0
    clock, cpu_clock = time.perf_counter(), time.process_time()
    # this process's share of the run, and where it ran (a resumed run has several)
    segment = {"machine": cpu.machine(), "from_iteration": start, "to_iteration": start,
               "cpu_s": 0.0, "wall_s": 0.0}
    bar = tqdm(range(start, settings["iterations"]), initial=start, total=settings["iterations"],
               desc=f"train {settings['n_way']}-way {settings['k_shot']}-shot seed "
               f"{settings['seed']}", disable=not progress)
    for iteration in bar:
        batch = as_tensors(train_tasks.sample(rng, settings["meta_batch"]))
        loss, acc = _step(params, loop, adam, batch, settings, iteration, checkpoint)
        row = {"iteration": iteration + 1, "loss": float(loss), "accuracy": float(acc),
               "val_accuracy": None,
               "elapsed_s": round(elapsed0 + time.perf_counter() - clock, 3)}
        done = iteration + 1 == settings["iterations"]
        if (iteration + 1) % settings["val_every"] == 0 or done:
            val = per_task_accuracies(params, loop, val_sampler, val_tasks,
                                      settings["val_inner_steps"])[:, -1].mean()
            row["val_accuracy"] = float(val)
            if val > best_val:
                best_val = float(val)
                best = OrderedDict((name, p.detach().clone()) for name, p in params.items())
        curve.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}",
                        val=f"{best_val:.3f}")
        segment.update(to_iteration=iteration + 1,
                       cpu_s=round(time.process_time() - cpu_clock, 3),
                       wall_s=round(time.perf_counter() - clock, 3))
        if (iteration + 1) % settings["checkpoint_every"] == 0 or done:
            checkpoint.save(params, best, adam, rng, iteration + 1, curve, best_val,
                            resume_key(settings), [*segments, segment], settings["iterations"])
    if segment["to_iteration"] > segment["from_iteration"]:
        segments = [*segments, segment]
    return _write_results(out_dir, settings, split, start, best, best_val, curve, segments,
                          image_size=int(train_tasks.images.shape[-1]))


def _write_results(out_dir: Path, settings: dict, split: dict, start: int, best, best_val,
                   curve: list[dict], segments: list[dict], image_size: int) -> dict:
    """model.npz (the best on validation), curve.csv and train.json, the run's summary (with
    the image size the model was trained at, which `predict` decodes a user's images to)."""
    summary = {"settings": settings, "split_hash": split_hash(split), "image_size": image_size,
               "iterations": settings["iterations"], "resumed_from": start,
               "best_val_accuracy": best_val,
               "wall_time_s": curve[-1]["elapsed_s"] if curve else 0.0,
               "segments": segments}
    save_arrays(out_dir / "model.npz", params_to_arrays(best))
    write_text(out_dir / "curve.csv", curve_csv(curve))
    write_json(out_dir / "train.json", summary)
    return summary


def _stages(settings: dict, data_path, split_path, progress: bool):
    """(split, training task sampler, validation sampler, the fixed validation tasks), the
    settings checked against the split's parts first."""
    data = load_characters(data_path)
    split = load_split(split_path, settings["split"], data.num_characters)
    # (the pipeline passes training settings only: test-time ones take their counterparts)
    validate(with_defaults(settings),
             {part: len(chars) for part, chars in split["parts"].items()})
    train_tasks = stage_sampler(data, split["parts"]["train"], settings, "train")
    val_sampler = stage_sampler(data, split["parts"]["val"], settings, "val")
    if progress:
        print(f"training: {train_tasks.describe()}; validation: {val_sampler.describe()}",
              file=sys.stderr)
    return split, train_tasks, val_sampler, val_sampler.fixed_tasks(VAL_SEED,
                                                                    settings["val_tasks"])


def _restore(checkpoint: Checkpoint, resume: bool, settings: dict, params, best, adam, rng):
    """(first iteration, curve so far, best validation accuracy, segments): from the
    checkpoint when resuming from one, else from the start. An unreadable checkpoint (e.g. a
    disk filled mid-write) is moved aside and the run starts again."""
    start, curve, best_val, segments = 0, [], -1.0, []
    if resume and checkpoint.path.exists():
        try:
            start, curve, best_val, segments = checkpoint.load(params, best, adam, rng,
                                                                  resume_key(settings))
        except FileFormatError as error:
            aside = checkpoint.path.with_name(checkpoint.path.name + ".unreadable")
            os.replace(checkpoint.path, aside)
            print(f"warning: {error}\nmoved it to {aside}; training starts from the beginning "
                  "(the same seed gives the same run)", file=sys.stderr)
    if start > settings["iterations"]:
        raise SettingsError(f"{checkpoint.path}: at iteration {start}, beyond the "
                            f"{settings['iterations']} iterations asked; ask for at least "
                            f"{start}, or give this run its own --state / --out-dir")
    return start, curve, best_val, segments


def _step(params, loop, adam: Adam, batch, settings: dict, iteration: int,
          checkpoint: Checkpoint):
    """One meta-iteration: the meta-gradient, then Adam's update; (meta-loss, accuracy).
    A non-finite loss, gradient or weight stops the run with nothing of it saved."""
    steps = settings["inner_steps"]
    first_order = settings["first_order"] or iteration < settings["first_order_until"]
    weights = (multi_step_weights(steps, iteration, settings["msl_iterations"])
               if settings["multi_step_loss"] else None)
    loss, acc, grads = meta_gradient(params, loop, *batch, steps, first_order, weights)
    try:
        if not math.isfinite(loss):
            raise DivergenceError(f"a non-finite meta-loss ({loss})")
        adam.step(params, grads, meta_lr(settings, iteration))
    except DivergenceError as error:
        raise DivergenceError(
            f"training diverged at iteration {iteration + 1}: {error}. Nothing of it is "
            f"saved; the last checkpoint ({checkpoint.path}, if any) stays as it was. Lower "
            "meta_lr or inner_lr") from None
    return loss, acc


def writable_folder(folder: Path) -> None:
    """Make `folder` (and its parents) or say why it cannot be written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{folder}: cannot be made a folder to write into "
                            f"({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(f"{folder}: not writable")


def resume_key(settings: dict) -> str:
    """What a checkpoint must match to be resumed: the training settings, except the number of
    iterations (a run may be resumed to train longer), unless the outer rate's schedule
    depends on it."""
    if settings.get("cosine_meta_lr"):
        return fingerprint(settings)
    return fingerprint({**settings, "iterations": None})


def meta_lr(settings: dict, iteration: int) -> float:
    """The outer learning rate at `iteration` (0-based): constant, or with `cosine_meta_lr`
    annealed from meta_lr to meta_lr_min over the run (MAML++'s CosineAnnealingLR, per
    iteration instead of per epoch)."""
    if not settings["cosine_meta_lr"]:
        return settings["meta_lr"]
    low, high = settings["meta_lr_min"], settings["meta_lr"]
    return low + (high - low) * (1 + math.cos(math.pi * iteration / settings["iterations"])) / 2


def first_curve_difference(rows: list[dict], curve_path: Path) -> str | None:
    """Where `rows` (e.g. a rerun's checkpoint) part from the first rows of a curve.csv,
    wall clock aside; None if they agree to the last bit (floats are written with repr).
    FileFormatError if the file is not a curve.csv at all."""
    def without_clock(lines):
        return [line.rsplit(",", 1)[0] for line in lines]

    ours = without_clock(curve_csv(rows).splitlines())
    theirs = without_clock(Path(curve_path).read_text().splitlines())
    if not theirs or ours[0] != theirs[0]:
        raise FileFormatError(f"{curve_path}: not a curve.csv of this project (its columns: "
                              f"{ours[0]},elapsed_s)")
    for line, other in zip(ours[1:], theirs[1:]):
        if line != other:
            return f"iteration {line.split(',')[0]}: {line} against {other}"
    if len(ours) > len(theirs):
        return f"the curve.csv ends after {len(theirs) - 1} rows, the checkpoint has {len(rows)}"
    return None


def curve_csv(curve: list[dict]) -> str:
    lines = [",".join(CURVE_COLUMNS)]
    for row in curve:
        lines.append(",".join("" if row[c] is None else repr(row[c]) for c in CURVE_COLUMNS))
    return "\n".join(lines) + "\n"
