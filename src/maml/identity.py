"""A run's identity: what names it (its Snakemake params, its checkpoint key and its settings
files), stable under settings added since the identities were fixed."""

from __future__ import annotations

import hashlib
import json

from maml.settings import DEFAULTS, REPLACED, training_settings, upgrade

# The settings of every run when a run's identity was fixed (December 2026). A setting added
# since enters a run's identity only where its value differs from its default, so adding a
# default-valued setting retrains no run and orphans no checkpoint (a test checks); this list
# is frozen, never extended.
IDENTITY_KEYS = frozenset((
    "method", "n_way", "k_shot", "k_query", "meta_batch", "inner_steps", "inner_lr",
    "first_order", "first_order_until", "inner_bn", "bn_scale", "lslr", "per_step_bn",
    "multi_step_loss", "msl_iterations", "meta_lr", "cosine_meta_lr", "meta_lr_min",
    "iterations", "test_inner_steps", "test_k_query", "rotate", "split", "val_inner_steps",
    "val_every", "val_tasks", "checkpoint_every", "seed", "device", "preset"))


def identity(settings: dict) -> dict:
    """What names a run (its Snakemake params and checkpoint key): its settings, less those
    added after IDENTITY_KEYS that keep their default (and so today's behaviour), a replaced
    setting in its old form where its value has one (REPLACED)."""
    old_forms = {new: (old, values) for old, (new, values) in REPLACED.items()}
    named = {}
    for key, value in upgrade(settings).items():
        old, values = old_forms.get(key, (None, {}))
        old_value = next((o for o, v in values.items() if _same(v, value)), None)
        if old_value is not None:
            named[old] = old_value
        elif key in IDENTITY_KEYS or key not in DEFAULTS or value != DEFAULTS[key]:
            named[key] = value
    return named


def _same(a, b) -> bool:
    """Equal settings values; lists of layer kinds in any order."""
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b)) and len(set(map(str, b))) == len(b)
    return a == b


def expand(identity_settings: dict) -> dict:
    """A run's full settings from its identity (the inverse of `identity`)."""
    return {**DEFAULTS, **upgrade(identity_settings)}


def job_identity(job: str, settings: dict, num_tasks: int = 0, test_seed: int = 0) -> dict:
    """What shapes a pipeline job's result, the content of its settings file and the source
    of its key: a train job's training settings; an evaluate job's settings, test-time ones
    included, and its test tasks."""
    if job == "train":
        return identity(training_settings(settings))
    return {**identity(settings), "num_tasks": num_tasks, "test_seed": test_seed}


def fingerprint(settings: dict) -> str:
    """A short hash of the settings that shape a trained model (names its resume state)."""
    return _short_hash(job_identity("train", settings))


def evaluation_fingerprint(settings: dict, num_tasks: int, test_seed: int) -> str:
    """A short hash of what shapes an evaluation (`job_identity` of an evaluate job)."""
    return _short_hash(job_identity("evaluate", settings, num_tasks, test_seed))


def _short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
