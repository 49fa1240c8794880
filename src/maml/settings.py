"""Run settings: presets from `presets.yaml`, overrides, and early validation.

A run is one flat dict of settings; every module reads the keys it needs from it. All
checks happen here, before any data is read or any job starts.
"""

from __future__ import annotations

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
    "val_every": 100,
    "val_tasks": 100,
    "checkpoint_every": 50,
    "seed": 0,
    "device": "cpu",
}
DRAWERS = 20
POSITIVE = ("n_way", "k_shot", "k_query", "meta_batch", "inner_steps", "inner_lr", "meta_lr",
            "iterations", "test_inner_steps", "test_k_query", "val_every", "val_tasks",
            "checkpoint_every")


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
    by_way, by_shot = preset.pop("by_way", {}), preset.pop("by_shot", {})
    return {**preset, **by_way.get(n_way, {}), **by_shot.get(k_shot, {})}


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
