"""A run's identity (its Snakemake params and checkpoint key) survives new default-valued
settings, and still tells really different settings apart."""

from pathlib import Path

import pytest
import yaml

from maml import settings as settings_module
from maml.files import read_json
from maml.settings import SettingsError, resolve, training_settings, upgrade, with_defaults
from maml.identity import IDENTITY_KEYS, fingerprint, identity
from maml.pipeline_config import grid_runs, parse_run, run_settings
from maml.train import resume_key

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "config.yaml", REPO / "config" / "offline-small.yaml"]


def every_run(config_path):
    config = yaml.safe_load(config_path.read_text())
    for split, method, cell, run in grid_runs(config):
        yield run_settings(config, method, cell, run, split)


def names(settings):
    """What the workflow derives from a run's settings: train's params, evaluate's params, the
    state file's key, the key a checkpoint must match."""
    return (identity(training_settings(settings)), identity(settings), fingerprint(settings),
            resume_key(settings))


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("new_default", [False, 0, 0.0, "across", ["conv", "fc"]])
def test_a_new_default_valued_setting_changes_no_runs_params_or_key(monkeypatch, config_path,
                                                                    new_default):
    before = [names(s) for s in every_run(config_path)]
    monkeypatch.setitem(settings_module.DEFAULTS, "new_switch", new_default)
    after_runs = list(every_run(config_path))
    assert all(s["new_switch"] == new_default for s in after_runs)  # the setting is there
    assert [names(s) for s in after_runs] == before


def test_a_new_setting_with_another_value_is_a_new_run(monkeypatch):
    monkeypatch.setitem(settings_module.DEFAULTS, "new_switch", False)
    run = next(every_run(CONFIGS[0]))
    changed = {**run, "new_switch": True}
    assert fingerprint(changed) != fingerprint(run)
    assert resume_key(changed) != resume_key(run)
    assert identity(changed)["new_switch"] is True


def test_settings_that_differ_have_different_keys():
    run = next(every_run(CONFIGS[0]))
    for key, value in [("inner_lr", 0.1), ("seed", 7), ("meta_batch", 3), ("lslr", True)]:
        assert fingerprint({**run, key: value}) != fingerprint(run), key
    # evaluation-only settings do not name the trained model
    assert fingerprint({**run, "test_inner_steps": 99}) == fingerprint(run)


def test_identity_keys_are_todays_defaults_and_are_frozen():
    """IDENTITY_KEYS is the December 2026 list; a key added to DEFAULTS since stays out of it."""
    replaced = settings_module.REPLACED
    assert set(settings_module.DEFAULTS) | set(replaced) >= IDENTITY_KEYS - {"preset"}
    assert all(new in settings_module.DEFAULTS for new, _ in replaced.values())
    assert len(IDENTITY_KEYS) == 30


def test_committed_runs_keep_their_identity():
    """Every committed run still in config.yaml has the key its train.json's settings give: a
    change of settings code that renamed committed runs would retrain them."""
    config = yaml.safe_load(CONFIGS[0].read_text())
    checked = 0
    for split, method, cell, run in grid_runs(config):
        summary = REPO / "results" / "runs" / split / method / cell / run / "train.json"
        if summary.exists():
            recorded = read_json(summary)["settings"]
            assert parse_run(run)[1] == recorded["seed"]
            assert fingerprint(recorded) == fingerprint(
                run_settings(config, method, cell, run, split)), summary
            checked += 1
    assert checked >= 40


def test_a_replaced_setting_keeps_the_old_forms_identity():
    """inner_adapts replaced the inner_bn boolean: the runs that had one keep their key, an old
    form given or recorded reads as the new one, and a value without an old form is new."""
    run = next(every_run(CONFIGS[0]))
    assert run["inner_adapts"] == ["conv", "bn", "fc"] and "inner_bn" not in run
    assert identity(run)["inner_bn"] is True and "inner_adapts" not in identity(run)
    old = {k: v for k, v in run.items() if k != "inner_adapts"}
    for inner_bn, adapts in ((True, ["conv", "bn", "fc"]), (False, ["fc", "conv"])):
        assert fingerprint({**old, "inner_bn": inner_bn}) == fingerprint(
            {**run, "inner_adapts": adapts})
        assert with_defaults({**old, "inner_bn": inner_bn})["inner_adapts"] == sorted(
            adapts, key=["conv", "bn", "fc"].index)
    head = {**run, "inner_adapts": ["fc"]}
    assert identity(head)["inner_adapts"] == ["fc"] and "inner_bn" not in identity(head)
    assert fingerprint(head) not in (fingerprint(run), fingerprint({**old, "inner_bn": False}))
    with pytest.raises(SettingsError, match="inner_bn: False and inner_adapts"):
        upgrade({"inner_bn": False, "inner_adapts": ["conv", "bn", "fc"]})
    for bad in ([], ["fc", "fc"], ["head"]):
        with pytest.raises(SettingsError, match="inner_adapts: one or more of"):
            resolve(5, 1, inner_adapts=bad)
