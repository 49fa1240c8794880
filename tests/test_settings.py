"""Settings and names: method families, run names, impossible cells, limits stated once, YAML
errors, a run's settings file as a config, run.sh's config check, test-time counterparts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maml.settings import SettingsError, resolve
from maml.pipeline_config import parse_run, run_name


def test_methods_resolve_to_their_families():
    fomaml = resolve(20, 1, method="fomaml", preset="laptop")
    maml = resolve(20, 1, method="maml", preset="laptop")
    assert fomaml["first_order"] and not maml["first_order"]
    assert {k: v for k, v in fomaml.items() if k not in ("first_order", "method")} == {
        k: v for k, v in maml.items() if k not in ("first_order", "method")}
    paper = resolve(5, 1, preset="paper")
    assert not paper["bn_scale"] and paper["inner_adapts"] == ["conv", "fc"]  # cbfinn/maml's
    plus = resolve(20, 1, method="maml++", preset="paper")
    assert plus["meta_batch"] == 8 and plus["inner_steps"] == 5 and plus["iterations"] == 50000
    assert plus["lslr"] and plus["per_step_bn"] and plus["multi_step_loss"]
    assert plus["inner_adapts"] == ["conv", "fc"] and plus["cosine_meta_lr"]
    with pytest.raises(SettingsError, match="method maml\\+\\+ has no preset 'reference'"):
        resolve(5, 1, method="maml++", preset="reference")


def test_cli_rejects_impossible_cell(prepared):
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--n_way", "5",
                             "--k_spt", "10", "--k_query", "15"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "k_shot + k_query = 25 exceeds" in result.stderr


@pytest.mark.parametrize("seed,label,name", [(0, None, "seed0"), (12, None, "seed12"),
                                             (3, "long", "long-seed3"),
                                             (0, "seed_study", "seed_study-seed0")])
def test_run_names_round_trip(seed, label, name):
    assert run_name(seed, label) == name
    assert parse_run(name) == (label, seed)


@pytest.mark.parametrize("name", ["seed", "Long-seed0", "long_seed0", "-seed0", "seed0x"])
def test_bad_run_name_rejected(name):
    with pytest.raises(SettingsError, match="not a run name"):
        parse_run(name)


def test_cli_rejects_zero_way_and_zero_shot(prepared):
    for flag in ("--n_way", "--k_spt"):
        result = subprocess.run([sys.executable, "-m", "maml", "train", flag, "0"],
                                capture_output=True, text=True)
        assert result.returncode == 2, flag
        assert "must be positive and finite, got 0" in result.stderr


def test_names_and_limits_are_stated_once():
    """Methods are presets.yaml's families, splits the split sizes' keys; the schema names
    neither (the config checks use these) and states the task limit as settings does."""
    import yaml

    from maml.settings import MAX_TASKS, METHODS, SPLITS

    families = yaml.safe_load((Path(__file__).parents[1] / "src/maml/presets.yaml").read_text())
    assert METHODS == tuple(families) and SPLITS == ("finn", "lake", "lake_alphabets")
    text = (Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    schema = yaml.safe_load(text)
    enums = [value for entry in schema["properties"].values() for value in entry.get("enum", [])]
    assert enums and not set(enums) & {*METHODS, *SPLITS} and "68d2efa1" not in text
    assert schema["properties"]["test_tasks"]["maximum"] == MAX_TASKS


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("n_way: 5\nk_shot: [1\nmeta_batch: 4\n")
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--config", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}: line 3, column 11: not valid YAML" in result.stderr


def test_a_settings_file_of_a_run_is_a_config(prepared, tmp_path):
    """A committed train-settings JSON (meta_lr_min: 1e-05, which YAML 1.1 reads as text)
    retrains its run from the command line; bad JSON names the file and line."""
    repo = Path(__file__).resolve().parents[1]
    (committed,) = (repo / "results/runs/finn/maml/5way1shot/seed0").glob("train-settings-*.json")
    settings = json.loads(committed.read_text())
    short = tmp_path / "settings.json"
    short.write_text(json.dumps({**settings, "iterations": 2, "val_every": 2,
                                 "checkpoint_every": 2, "val_tasks": 2}))
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--config", str(short),
                             "--data", str(prepared["data_path"]), "--split-file",
                             str(prepared["splits"]["finn"]), "--out-dir", str(tmp_path / "run")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    recorded = json.loads((tmp_path / "run" / "train.json").read_text())["settings"]
    assert recorded["meta_lr_min"] == 1e-05 and recorded["inner_adapts"] == ["conv", "bn", "fc"]
    short.write_text('{"n_way": 5,\n "k_shot": }')
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--config", str(short)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{short}: line 2, column 12: not valid JSON" in result.stderr


def test_run_sh_checks_config_files_before_snakemake(tmp_path):
    """Snakemake says only 'Config file is not valid JSON or YAML'."""
    bad = tmp_path / "extra.yaml"
    bad.write_text("seeds: [0\n")
    repo = Path(__file__).resolve().parents[1]
    for args in (["--configfile", "config/offline-data.yaml", str(bad)],
                 [f"--configfile={bad}"]):
        result = subprocess.run([str(repo / "run.sh"), "pipeline", *args, "-n"],
                                capture_output=True, text=True)
        assert result.returncode == 2, args
        assert f"error: {bad}: line 2" in result.stderr, result.stderr


def test_test_time_settings_equal_their_training_counterparts_in_every_preset():
    """What lets a pipeline model's train.json (training settings only) give evaluate,
    predict and lake-runs its test-time settings (settings.with_defaults)."""
    from maml.settings import TEST_COUNTERPARTS, presets, with_defaults

    checked = 0
    for method, family in presets().items():
        for preset in family["presets"]:
            for n_way in (5, 20):
                for k_shot in (1, 5):
                    settings = resolve(n_way, k_shot, preset, method)
                    for key, counterpart in TEST_COUNTERPARTS.items():
                        assert settings[key] == settings[counterpart], (method, preset, key)
                    training_only = {k: v for k, v in settings.items()
                                     if k not in TEST_COUNTERPARTS}
                    assert with_defaults(training_only) == {**settings, "preset": preset}
                    checked += 1
    assert checked == 4 * sum(len(family["presets"]) for family in presets().values())


def test_common_holds_for_every_preset_of_its_family():
    """A BOIL-like family (`like: maml`, the head frozen in `common`) whose taken `paper` preset
    adapts the head: an error naming both, not a silent override; without the clash `common`
    reaches every taken preset."""
    from maml.settings import resolve_families
    maml = {"paper": {"by_way": {5: {"inner_adapts": ["conv", "fc"]}}, "meta_lr": 0.001},
            "laptop": {"meta_lr": 0.001}}
    with pytest.raises(SettingsError, match="boil's preset paper sets inner_adapts, which its "
                       "family's `common` fixes"):
        resolve_families({"maml": maml, "boil": {"like": "maml",
                                                 "common": {"inner_adapts": ["conv"]}}})
    families = resolve_families({"maml": {"laptop": maml["laptop"]},
                                 "boil": {"like": "maml", "common": {"inner_adapts": ["conv"]}}})
    assert families["boil"]["presets"]["laptop"] == {"meta_lr": 0.001, "inner_adapts": ["conv"]}
