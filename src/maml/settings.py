"""Run settings: presets from `presets.yaml`, overrides, and early validation.

A run is one flat dict of settings; every module reads the keys it needs from it. All
checks happen here, before any data is read or any job starts.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources

import yaml

DEFAULTS = {
    "n_way": 5,
    "k_shot": 1,
    "k_query": 15,
    "meta_batch": 32,
    "inner_steps": 5,
    "inner_lr": 0.4,
    "first_order": False,
    "meta_lr": 0.001,
    "iterations": 10000,
    "test_inner_steps": 10,
    "test_k_query": 15,
    "rotate": True,
    "split": "finn",
    "val_inner_steps": 10,
    "val_every": 100,
    "val_tasks": 100,
    "checkpoint_every": 50,
    "seed": 0,
    "device": "cpu",
}
DRAWERS = 20
# Characters in each part of each split (see maml.data.make_split).
SPLIT_SIZES = {"finn": {"train": 1100, "val": 100, "test": 423},
               "lake": {"train": 864, "val": 100, "test": 659}}
POSITIVE = ("n_way", "k_shot", "k_query", "meta_batch", "inner_steps", "inner_lr", "meta_lr",
            "iterations", "test_inner_steps", "test_k_query", "val_inner_steps", "val_every", "val_tasks",
            "checkpoint_every")


# A cell's name, e.g. 20way5shot; the workflow constrains its wildcard with the same pattern.
CELL_PATTERN = r"[1-9][0-9]*way[1-9][0-9]*shot"
# A run's folder within its cell: seed3 for the config's grid, long-seed0 for the extra run "long".
RUN_PATTERN = r"(?:[a-z][a-z0-9_]*-)?seed[0-9]+"
# The table's label for the runs of the cells x seeds grid (an extra run has its own name).
GRID = "grid"
# Keys that only evaluation reads: changing them must not retrain a model.
EVALUATION_KEYS = ("test_inner_steps", "test_k_query")


class SettingsError(ValueError):
    """A setting is impossible; the message names the key."""


def presets() -> dict:
    return yaml.safe_load(resources.files("maml").joinpath("presets.yaml").read_text())


def preset_settings(name: str, n_way: int, k_shot: int) -> dict:
    """The flat settings a preset gives an n-way k-shot cell."""
    table = presets()
    if name not in table:
        raise SettingsError(f"preset: unknown preset {name!r}; choose one of {sorted(table)}")
    preset = dict(table[name])
    by_way, by_shot, by_cell = (preset.pop(key, {}) for key in ("by_way", "by_shot", "by_cell"))
    return {**preset, **by_way.get(n_way, {}), **by_shot.get(k_shot, {}),
            **by_cell.get(cell_name(n_way, k_shot), {})}


def resolve(n_way: int, k_shot: int, preset: str | None = None, **overrides) -> dict:
    """Defaults < preset < overrides, validated."""
    settings = dict(DEFAULTS)
    settings.update(n_way=n_way, k_shot=k_shot)
    if preset:
        settings.update(preset_settings(preset, n_way, k_shot))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["preset"] = preset
    validate(settings)
    return settings


def training_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in EVALUATION_KEYS}


def validate(settings: dict, num_classes: dict[str, int] | None = None) -> None:
    """Reject impossible settings early, naming the key. `num_classes` maps split part -> size."""
    unknown = set(settings) - set(DEFAULTS) - {"preset"}
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    for key in POSITIVE:
        if not settings[key] > 0:
            raise SettingsError(f"{key}: must be positive, got {settings[key]}")
    for query in ("k_query", "test_k_query"):
        if settings["k_shot"] + settings[query] > DRAWERS:
            raise SettingsError(f"k_shot + {query} = {settings['k_shot'] + settings[query]} "
                                f"exceeds the {DRAWERS} drawings of a character")
    if not str(settings["device"]).split(":")[0] in ("cpu", "gpu"):
        raise SettingsError(f"device: unknown device {settings['device']!r}; use cpu or gpu[:N]")
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


def cell_settings(config: dict, cell: str, seed: int) -> dict:
    """A pipeline config's settings for one cell and seed: preset < overrides < cell overrides."""
    n_way, k_shot = parse_cell(cell)
    overrides = {**config.get("overrides", {}), **config.get("cell_overrides", {}).get(cell, {})}
    fixed = {"seed": seed, "split": config["split"], "device": config["device"]}
    clash = set(overrides) & {*fixed, "n_way", "k_shot"}
    if clash:
        raise SettingsError(f"overrides: {', '.join(sorted(clash))} set by the config's own "
                            "keys, not overrides")
    settings = resolve(n_way, k_shot, config["preset"], **overrides, **fixed)
    validate(settings, SPLIT_SIZES[config["split"]])
    return settings


def run_name(seed: int, label: str | None = None) -> str:
    """A run's folder name: 'seed0' in the grid, 'long-seed0' for the extra run 'long'."""
    return f"{label}-seed{seed}" if label else f"seed{seed}"


def parse_run(run: str) -> tuple[str | None, int]:
    """'long-seed0' -> ('long', 0); 'seed2' -> (None, 2)."""
    if not re.fullmatch(RUN_PATTERN, run):
        raise SettingsError(f"{run!r} is not a run name like seed0 or long-seed0")
    label, _, seed = run.rpartition("seed")
    return label.removesuffix("-") or None, int(seed)


def extra_runs(config: dict) -> list[tuple[str, str]]:
    """(cell, run name) of each of the config's extra runs (`extra_runs`), outside the grid."""
    return [(extra["cell"], run_name(extra["seed"], label))
            for label, extra in config.get("extra_runs", {}).items()]


def run_settings(config: dict, cell: str, run: str) -> dict:
    """Settings of one run: a grid cell and seed, or an extra run with its own preset/overrides."""
    label, seed = parse_run(run)
    if label is None:
        return cell_settings(config, cell, seed)
    extra = config.get("extra_runs", {}).get(label)
    if extra is None or extra["cell"] != cell or extra["seed"] != seed:
        raise SettingsError(f"extra_runs: no run {label!r} of cell {cell} with seed {seed}")
    own = {**config, "preset": extra.get("preset", config["preset"]),
           "overrides": extra.get("overrides", {}), "cell_overrides": {}}
    return cell_settings(own, cell, seed)


def check_config(config: dict) -> None:
    """Validate every cell of a pipeline config (and every overridden one) before any job."""
    for cell in dict.fromkeys([*config["cells"], *config.get("cell_overrides", {})]):
        try:
            cell_settings(config, cell, config["seeds"][0])
        except SettingsError as error:
            raise SettingsError(f"config, cell {cell}: {error}") from None
    for label, extra in config.get("extra_runs", {}).items():
        try:
            if label == GRID:
                raise SettingsError(f"the name {GRID!r} is the table's label for the grid's runs")
            run_settings(config, extra["cell"], run_name(extra["seed"], label))
        except SettingsError as error:
            raise SettingsError(f"config, extra run {label}: {error}") from None


def fingerprint(settings: dict) -> str:
    """A short hash of the settings that shape a trained model (names its resume state)."""
    text = json.dumps(training_settings(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
