"""Run settings: presets from `presets.yaml`, overrides, and early validation.

A run is one flat dict of settings; every module reads the keys it needs from it. All
checks happen here, before any data is read or any job starts.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from importlib import resources
from pathlib import Path

import yaml

from maml.datasets import OMNIGLOT, all_splits, dataset_of

DEFAULTS = {
    "method": "maml",
    "n_way": 5,
    "k_shot": 1,
    "k_query": 15,
    "meta_batch": 32,
    "inner_steps": 5,
    "inner_lr": 0.4,
    "first_order": False,
    "first_order_until": 0,  # first-order meta-gradients before this iteration
    "inner_adapts": ["conv", "bn", "fc"],  # the layer kinds the inner loop adapts (LAYER_KINDS);
    # the others the outer loop alone learns
    "inner_rule": "sgd",  # the inner update (INNER_RULES); MAML++'s `lslr` is its own switch
    "bn_scale": True,  # batch norm has a learned scale (cbfinn/maml's has an offset only)
    "norm": "batch",  # whose statistics normalise each image (NORMS)
    "lslr": False,  # MAML++: learned inner rate per parameter tensor and step
    "per_step_bn": False,  # MAML++: batch-norm weight and bias per inner step
    "multi_step_loss": False,  # MAML++: query loss after every step, annealed weights
    "msl_iterations": 5000,  # ... over this many iterations, then the last step's loss only
    "meta_lr": 0.001,
    "cosine_meta_lr": False,  # MAML++: outer rate annealed from meta_lr to meta_lr_min
    "meta_lr_min": 0.00001,
    "iterations": 10000,
    "test_inner_steps": 10,
    "test_k_query": 15,
    "rotate": True,  # each training task's classes turned by a random multiple of 90 degrees
    # (before the per-stage keys below existed, it switched validation and test tasks too)
    "task_alphabets": "across",  # a training task's classes: from any alphabets, or `within` one
    "val_rotate": True,  # the same two for the validation tasks ...
    "val_task_alphabets": "across",
    "test_rotate": True,  # ... and for the test tasks (Lake's runs: within, unrotated)
    "test_task_alphabets": "across",
    "split": "finn",
    "val_inner_steps": 10,
    "val_every": 100,
    "val_tasks": 100,
    "checkpoint_every": 50,
    "seed": 0,
    "device": "cpu",
}
# The network's layer kinds, the prefixes of its parameter names (maml.model).
LAYER_KINDS = ("conv", "bn", "fc")
# Parameters of the network that only the outer loop learns, whatever `inner_adapts` says:
# TaskNorm's blend of support and instance moments (maml.model).
OUTER_KINDS = ("norm",)
# How the network normalises an image's activations, in training and at test alike:
# "batch" with the statistics of the batch it is given (the paper's and cbfinn/maml's: the
# query set is normalised by its own statistics, so a query's answer depends on the others);
# "meta" MetaBN (Bronskill et al. 2020): a query with the support set's statistics at the same
# inner step; "tasknorm-i" TaskNorm-I (ibid., section 3): the support set's moments blended
# with the image's own, alpha = sigmoid(scale * |support| + offset) per layer, learned by the
# outer loop; "instance" each image's own moments alone. All but "batch" classify every query
# independently of the other queries.
NORMS = ("batch", "meta", "tasknorm-i", "instance")
TRANSDUCTIVE_NORMS = ("batch",)
# The inner update rules beyond MAML++'s `lslr`, by name (maml.inner.RULES, a test ties them).
INNER_RULES = ("sgd", "meta-sgd")
# Where a task's classes come from (TASK_ALPHABETS): any alphabets of the part, or one alphabet
# (all of a task's characters; alphabets with fewer than n_way characters are left out).
TASK_ALPHABETS = ("across", "within")
# Characters in each part of each split of every dataset (datasets.yaml, maml.data.make_split).
SPLIT_SIZES = all_splits()
SPLITS = tuple(SPLIT_SIZES)
# The splits of Lake's protocol: trained on background characters only, tested on the
# evaluation alphabets, from which Lake's one-shot runs are drawn (maml.lake).
LAKE_SPLITS = tuple(OMNIGLOT.one_shot_runs["splits"])
POSITIVE = ("n_way", "k_shot", "k_query", "meta_batch", "inner_steps", "inner_lr", "meta_lr",
            "iterations", "test_inner_steps", "test_k_query", "val_inner_steps", "val_every",
            "val_tasks", "checkpoint_every", "msl_iterations", "meta_lr_min")
# The largest float32: a rate above it is infinite in the network's arithmetic.
FLOAT32_MAX = 3.4028234663852886e38
# The most tasks one evaluation may draw (600 take minutes; this many, hours). The schema's
# test_tasks maximum is the same number (a test ties them).
MAX_TASKS = 100_000


# A cell's name, e.g. 20way5shot; the workflow constrains its wildcard with the same pattern.
CELL_PATTERN = r"[1-9][0-9]*way[1-9][0-9]*shot"
# Settings replaced since IDENTITY_KEYS was fixed: old key -> (new key, old value -> new
# value). A run keeps its identity in the old form wherever one exists, and an old form in a
# config, a preset or a recorded train.json reads as the new one.
REPLACED = {"inner_bn": ("inner_adapts", {True: ["conv", "bn", "fc"], False: ["conv", "fc"]})}
# Keys that only evaluation reads: changing them must not retrain a model.
EVALUATION_KEYS = ("test_inner_steps", "test_k_query", "test_rotate", "test_task_alphabets")
# Each one's training counterpart: validation adapts with the same steps and draws its tasks
# alike, training tasks have the same query size.
TEST_COUNTERPARTS = {"test_inner_steps": "val_inner_steps", "test_k_query": "k_query",
                     "test_rotate": "val_rotate", "test_task_alphabets": "val_task_alphabets"}


# How the queries of a task are classified, i.e. whose batch-norm statistics they see:
# "together" all of the task's queries (the paper's protocol and cbfinn/maml's: transductive,
# each answer depends on the other queries); "support" the support set's alone (MetaBN in
# Bronskill et al. 2020); "each" the support set with that one query. "support" and "each"
# classify every query independently of the others.
QUERY_MODES = ("together", "support", "each")
# What each mode is called in every message, table and the README.
QUERY_MODE_NAMES = {"together": "queries together",
                    "support": "each query on its own (the support set's statistics)",
                    "each": "each query on its own (beside the support set)"}
# How `predict` and the table's per-query column classify queries: each on its own, with
# the support set's batch-norm statistics. Measured on validation (600 tasks, MAML laptop
# models; results/measurements/query_modes_val_*.json): "support" 84.73 and "each" 84.93%
# on finn 5-way 1-shot, 73.67 and 73.70% on lake 20-way 1-shot, equal within their intervals
# (+-1.3, +-0.75); "each" runs the support set once per query (24 times the images of
# "support" on 20-way 5-shot), so "support".
INDEPENDENT = "support"


# Why a number can arrive as text: PyYAML reads 1e-3 (no dot) as a string, and Snakemake passes
# nested --config values (--config 'overrides={meta_batch: 2}') as strings.
_TEXT_HINT = (" (text that reads as a number: YAML takes 1e-3 without a dot for a string, write "
              "1.0e-3 or 0.001; Snakemake passes nested --config values as text, put them in a "
              "config file)")


def _reads_as_number(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return value.lower() in ("true", "false")
    return True


class SettingsError(ValueError):
    """A setting is impossible; the message names the key."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, overridable
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path):
    """A YAML file's contents (a .json file read as JSON: PyYAML reads JSON's 1e-05 as text);
    a syntax error names the file, line and column."""
    try:
        text = Path(path).read_text()
        if Path(path).suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except OSError as error:
        raise SettingsError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not a text file (not UTF-8); a settings file is YAML "
                            "or JSON text") from None
    except json.JSONDecodeError as error:
        raise SettingsError(f"{path}: line {error.lineno}, column {error.colno}: not valid JSON "
                            f"({error.msg})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"{path}:{where} not valid YAML ({problem})") from None


def presets() -> dict:
    """Each method's settings (`common`), named presets and figure colour, from presets.yaml,
    where a family may take another's presets (`like`). `common` holds for every preset of the
    family, the ones it takes included: a preset that says otherwise is an error, not an
    override."""
    return copy.deepcopy(_presets())


@functools.lru_cache(maxsize=None)
def _presets() -> dict:
    return resolve_families(
        yaml.safe_load(resources.files("maml").joinpath("presets.yaml").read_text()))


def resolve_families(families: dict) -> dict:
    """presets.yaml's families with `like` and `common` applied (see `presets`)."""
    resolved = {}
    for method, family in families.items():
        family = dict(family)
        common, like = family.pop("common", {}), family.pop("like", None)
        colour = family.pop("colour", None)
        named = {**(resolved[like]["presets"] if like else {}), **family}
        for name, preset in named.items():
            layers = [preset] + [values for key in ("by_way", "by_shot", "by_cell")
                                 for values in preset.get(key, {}).values()]
            clash = sorted({key for layer in layers for key in set(common) & set(layer)
                            if layer[key] != common[key]})
            if clash:
                raise SettingsError(f"presets.yaml: {method}'s preset {name} sets "
                                    f"{', '.join(clash)}, which its family's `common` fixes "
                                    "for every preset; drop the key from one of them")
        resolved[method] = {"common": common, "colour": colour,
                            "presets": {name: {**p, **common} for name, p in named.items()}}
    return resolved


# The methods: the families of presets.yaml.
METHODS = tuple(presets())


def method_settings(method: str, preset: str | None, n_way: int, k_shot: int) -> dict:
    """The flat settings a method's preset (or, with none, the method itself) gives an n-way
    k-shot cell."""
    families = presets()
    if method not in families:
        raise SettingsError(f"method: unknown method {method!r}; choose one of {list(families)}")
    family = families[method]
    if preset is None:
        return dict(family["common"])
    if preset not in family["presets"]:
        raise SettingsError(f"preset: method {method} has no preset {preset!r}; choose one of "
                            f"{sorted(family['presets'])}")
    settings = dict(family["presets"][preset])
    by_way, by_shot, by_cell = (settings.pop(key, {}) for key in ("by_way", "by_shot", "by_cell"))
    return {**settings, **by_way.get(n_way, {}), **by_shot.get(k_shot, {}),
            **by_cell.get(cell_name(n_way, k_shot), {})}


def resolve(n_way: int, k_shot: int, preset: str | None = None, method: str | None = None,
            **overrides) -> dict:
    """Defaults < the method's preset < overrides, validated."""
    method = method or DEFAULTS["method"]
    settings = dict(DEFAULTS)
    settings.update(n_way=n_way, k_shot=k_shot, method=method)
    settings.update(upgrade(method_settings(method, preset, n_way, k_shot)))
    settings.update(upgrade({k: v for k, v in overrides.items() if v is not None}))
    settings["preset"] = preset
    validate(settings)
    return settings


def check_budget(settings: dict, overrides: dict) -> None:
    """A preset that sets its budget per cell (`by_cell`) runs only those cells unless the
    iterations are given: another cell would silently get the default iterations."""
    preset, method = settings["preset"], settings["method"]
    if preset is None:
        return
    by_cell = presets()[method]["presets"][preset].get("by_cell", {})
    cell = cell_name(settings["n_way"], settings["k_shot"])
    if by_cell and cell not in by_cell and overrides.get("iterations") is None:
        raise SettingsError(
            f"cells: preset {preset!r} of {method} sets its budget per cell "
            f"({', '.join(by_cell)}), and {cell} is not one of them (it would get the default "
            f"{DEFAULTS['iterations']} iterations); give it its own, e.g. cell_overrides: "
            f"{{{cell}: {{iterations: N}}}} (or --epochs N)")


def with_defaults(settings: dict) -> dict:
    """A run's settings with every key: a model trained before a setting existed gets its
    default (what it was trained with). A test-time setting missing (a train.json holds the
    training settings only, so that changing one does not retrain) takes its training
    counterpart's value, which every preset sets equal (a test checks)."""
    full = {**DEFAULTS, **upgrade(settings)}
    for key, counterpart in TEST_COUNTERPARTS.items():
        if key not in settings:
            full[key] = full[counterpart]
    return full


def training_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in EVALUATION_KEYS}


def upgrade(settings: dict) -> dict:
    """Settings with each replaced key (REPLACED) in its new form."""
    settings = dict(settings)
    for old, (new, values) in REPLACED.items():
        if old not in settings:
            continue
        value = settings.pop(old)
        if not isinstance(value, bool):
            raise SettingsError(f"{old}: must be a bool, got {value!r} (or give {new})")
        if new in settings and settings[new] != values[value]:
            raise SettingsError(f"{old}: {value} and {new}: {settings[new]} disagree; give "
                                f"{new} alone ({old} is its old form)")
        settings[new] = values[value]
    return settings


def check_positive(name: str, value: float) -> None:
    """A count or rate the network uses in float32: positive and finite there."""
    if not (value > 0 and math.isfinite(value) and value < FLOAT32_MAX):
        raise SettingsError(f"{name}: must be positive and finite, got {value}"
                            + (" (infinite in float32)" if value >= FLOAT32_MAX else ""))


def validate(settings: dict, num_classes: dict[str, int] | None = None) -> None:
    """Reject impossible settings early, naming the key. `num_classes` maps split part -> size."""
    unknown = set(settings) - set(DEFAULTS) - {"preset"}
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    for key, default in DEFAULTS.items():
        value, kind = settings[key], type(default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SettingsError(f"{key}: must be a {kind.__name__}, got {value!r}"
                                + (_TEXT_HINT if _reads_as_number(value) else ""))
    if settings["method"] not in METHODS:
        raise SettingsError(f"method: unknown method {settings['method']!r}; "
                            f"choose one of {list(METHODS)}")
    for key in POSITIVE:
        check_positive(key, settings[key])
    if settings["n_way"] < 2:
        raise SettingsError(f"n_way: a classification task needs at least 2 ways, got "
                            f"{settings['n_way']}")
    for key in ("seed", "first_order_until"):
        if settings[key] < 0:
            raise SettingsError(f"{key}: must be 0 or more, got {settings[key]}")
    adapts = settings["inner_adapts"]
    if (not adapts or len(set(adapts)) != len(adapts)
            or not set(adapts) <= set(LAYER_KINDS)):
        raise SettingsError(f"inner_adapts: one or more of {list(LAYER_KINDS)}, each once, "
                            f"got {adapts!r}")
    if settings["norm"] not in NORMS:
        raise SettingsError(f"norm: unknown normalisation {settings['norm']!r}; choose one of "
                            f"{list(NORMS)}")
    if settings["inner_rule"] not in INNER_RULES:
        raise SettingsError(f"inner_rule: unknown rule {settings['inner_rule']!r}; choose one "
                            f"of {list(INNER_RULES)}")
    if settings["lslr"] and settings["inner_rule"] != "sgd":
        raise SettingsError(f"lslr: learned rates per tensor and step replace the inner rule; "
                            f"it cannot be combined with inner_rule {settings['inner_rule']!r}")
    if not str(settings["device"]).split(":")[0] in ("cpu", "gpu"):
        raise SettingsError(f"device: unknown device {settings['device']!r}; use cpu or gpu[:N]")
    _validate_tasks(settings, num_classes)


def _validate_tasks(settings: dict, num_classes: dict[str, int] | None) -> None:
    """The tasks the settings ask for exist: their split, alphabets, drawings per character
    (the split's dataset's) and classes per part, and no more tasks than memory holds."""
    for key in ("task_alphabets", "val_task_alphabets", "test_task_alphabets"):
        if settings[key] not in TASK_ALPHABETS:
            raise SettingsError(f"{key}: one of {list(TASK_ALPHABETS)}, got {settings[key]!r}")
    if settings["split"] not in SPLITS:
        raise SettingsError(f"split: unknown split {settings['split']!r}; choose one of "
                            f"{list(SPLITS)}")
    for key in ("val_tasks", "meta_batch"):
        if settings[key] > MAX_TASKS:
            raise SettingsError(f"{key}: at most {MAX_TASKS} tasks, got {settings[key]}")
    drawers = dataset_of(settings["split"]).drawers
    for query in ("k_query", "test_k_query"):
        if settings["k_shot"] + settings[query] > drawers:
            raise SettingsError(f"k_shot + {query} = {settings['k_shot'] + settings[query]} "
                                f"exceeds the {drawers} drawings of a character")
    for part, count in (num_classes or {}).items():
        if settings["n_way"] > count:
            raise SettingsError(f"n_way: {settings['n_way']} exceeds the {count} classes of "
                                f"the {part!r} part of split {settings['split']!r}")


def cell_name(n_way: int, k_shot: int) -> str:
    return f"{n_way}way{k_shot}shot"


def parse_cell(cell: str) -> tuple[int, int]:
    """'20way5shot' -> (20, 5)."""
    if not re.fullmatch(CELL_PATTERN, cell):
        raise SettingsError(f"cells: {cell!r} is not of the form <n>way<k>shot")
    n_way, k_shot = cell.removesuffix("shot").split("way")
    return int(n_way), int(k_shot)


def check_num_tasks(num_tasks) -> None:
    """An evaluation's task count (the pipeline's test_tasks the schema bounds alike)."""
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or not (
            1 <= num_tasks <= MAX_TASKS):
        raise SettingsError(f"num_tasks: a number of tasks from 1 to {MAX_TASKS}, "
                            f"got {num_tasks!r}")
