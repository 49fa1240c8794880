"""The pipeline's config: its grid of methods x cells x seeds and its extra runs, each run's
settings from it, and its checks before any job starts."""

from __future__ import annotations

import re

from maml.settings import (DEFAULTS, SPLIT_SIZES, SettingsError, check_budget, parse_cell,
                           resolve, validate)

# A run's folder within its cell: seed3 for the config's grid, long-seed0 for the extra run "long".
LABEL_PATTERN = r"[a-z][a-z0-9_]*"  # an extra run's name
RUN_PATTERN = rf"(?:{LABEL_PATTERN}-)?seed[0-9]+"
# The table's label for the runs of the cells x seeds grid (an extra run has its own name).
GRID = "grid"


def cell_settings(config: dict, method: str, cell: str, seed: int,
                  split: str | None = None) -> dict:
    """A pipeline config's settings for one method, cell and seed: the method's preset <
    overrides < cell overrides."""
    n_way, k_shot = parse_cell(cell)
    overrides = {**config.get("overrides", {}), **config.get("cell_overrides", {}).get(cell, {})}
    split = split or config["split"]
    fixed = {"seed": seed, "split": split, "device": config["device"]}
    clash = set(overrides) & {*fixed, "n_way", "k_shot", "method"}
    if clash:
        raise SettingsError(f"overrides: {', '.join(sorted(clash))} set by the config's own "
                            "keys, not overrides")
    settings = resolve(n_way, k_shot, config["preset"], method, **overrides, **fixed)
    validate(settings, SPLIT_SIZES[split])
    check_budget(settings, overrides)
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


def extra_method(extra: dict) -> str:
    return extra.get("method", DEFAULTS["method"])


def extra_split(config: dict, extra: dict) -> str:
    return extra.get("split", config["split"])


def extra_seeds(extra: dict) -> list[int]:
    """An extra run's seeds: `seeds`, or its one `seed`."""
    return list(extra["seeds"]) if "seeds" in extra else [extra["seed"]]


def grid_runs(config: dict) -> list[tuple[str, str, str, str]]:
    """(split, method, cell, run name) of every run of the config: the methods x cells x seeds
    grid, then the extra runs (`extra_runs`), each on its own split if it names one."""
    grid = [(config["split"], method, cell, run_name(seed))
            for method in config.get("methods", ["maml"])
            for cell in config["cells"] for seed in config["seeds"]]
    return grid + [(extra_split(config, extra), extra_method(extra), extra["cell"],
                    run_name(seed, label))
                   for label, extra in config.get("extra_runs", {}).items()
                   for seed in extra_seeds(extra)]


def ensembles(config: dict) -> list[tuple[str, str, str, str, list[int]]]:
    """(split, method, cell, label, seeds) of every extra run whose seeds are also tested as
    one ensemble (`ensemble: true`)."""
    return [(extra_split(config, extra), extra_method(extra), extra["cell"], label,
             extra_seeds(extra))
            for label, extra in config.get("extra_runs", {}).items() if extra.get("ensemble")]


def run_settings(config: dict, method: str, cell: str, run: str,
                 split: str | None = None) -> dict:
    """Settings of one run: a grid method, cell and seed, or an extra run with its own method,
    split, preset and overrides."""
    label, seed = parse_run(run)
    split = split or config["split"]
    if label is None:
        if split != config["split"]:
            raise SettingsError(f"no grid run on split {split!r}; the grid's split is "
                                f"{config['split']!r}")
        return cell_settings(config, method, cell, seed)
    extra = config.get("extra_runs", {}).get(label)
    if (extra is None or extra["cell"] != cell or seed not in extra_seeds(extra)
            or extra_method(extra) != method or extra_split(config, extra) != split):
        raise SettingsError(f"extra_runs: no run {label!r} of method {method}, cell {cell} "
                            f"with seed {seed} on split {split}")
    own = {**config, "preset": extra.get("preset", config["preset"]),
           "overrides": extra.get("overrides", {}), "cell_overrides": {}}
    return cell_settings(own, method, cell, seed, split)


def check_config_keys(config: dict, schema: dict) -> None:
    """An unknown top-level key, named on one line (the schema's own error would follow it
    with the whole schema and config)."""
    unknown = sorted(set(config) - set(schema["properties"]))
    if unknown:
        raise SettingsError(f"config: unknown key(s) {', '.join(map(repr, unknown))}; the keys "
                            f"are {', '.join(schema['properties'])} "
                            "(workflow/schemas/config.schema.yaml)")


def check_config(config: dict) -> None:
    """Validate every method and cell of a pipeline config (and every overridden cell) before
    any job."""
    for method in config.get("methods", ["maml"]):
        for cell in dict.fromkeys([*config["cells"], *config.get("cell_overrides", {})]):
            try:
                cell_settings(config, method, cell, config["seeds"][0])
            except SettingsError as error:
                raise SettingsError(f"config, method {method}, cell {cell}: {error}") from None
    for label, extra in config.get("extra_runs", {}).items():
        try:
            if label == GRID:
                raise SettingsError(f"the name {GRID!r} is the table's label for the grid's runs")
            if extra.get("ensemble") and len(extra_seeds(extra)) < 2:
                raise SettingsError("ensemble: an ensemble needs at least two seeds")
            for seed in extra_seeds(extra):
                run_settings(config, extra_method(extra), extra["cell"], run_name(seed, label),
                             extra_split(config, extra))
        except SettingsError as error:
            raise SettingsError(f"config, extra run {label}: {error}") from None
