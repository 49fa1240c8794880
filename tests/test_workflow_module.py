"""The workflow as others use it: imported as a Snakemake module from a scratch folder (the
snakemake-workflow-template's layout: workflow/Snakefile, config/config.yaml), parsed without
OpenCV, with environment files that list every runtime dependency of the package."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# Snakemake's command line in a process where OpenCV cannot be imported.
WITHOUT_CV2 = ("import sys; sys.modules['cv2'] = None; from snakemake.cli import main; "
               "sys.argv = ['snakemake', *sys.argv[1:]]; main()")


def test_the_workflow_dry_runs_as_a_module_from_a_scratch_folder(tmp_path):
    config = yaml.safe_load((REPO / "config" / "offline-small.yaml").read_text())
    config["data"] = yaml.safe_load((REPO / "config" / "offline-data.yaml").read_text())["data"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        f'module maml:\n    snakefile:\n        "{REPO / "workflow" / "Snakefile"}"\n'
        "    config:\n        config\n\n\nuse rule * from maml as maml_*\n")
    result = subprocess.run([sys.executable, "-c", WITHOUT_CV2, "-n", "--cores", "1"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    jobs = dict(line.split() for line in table if not line.startswith("total"))
    assert jobs["maml_train"] == "8" and jobs["maml_aggregate"] == "1"
    assert not (tmp_path / "results").exists()  # a dry run writes nothing


def test_config_config_yaml_is_the_top_level_config():
    assert (REPO / "config" / "config.yaml").resolve() == (REPO / "config.yaml").resolve()


def test_the_catalog_file_uses_current_keys():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    stack = catalog["usage"]["software-stack-deployment"]
    assert "singularity" not in stack and "apptainer" in stack
    assert "../shared" not in catalog["usage"]["mandatory-flags"]["flags"]


def _name(requirement: str) -> str:
    for mark in "<>=!~ ;[":
        requirement = requirement.split(mark)[0]
    return requirement.strip().lower()


def test_the_environment_files_list_every_runtime_dependency():
    """Each of envs/*.yaml installs what pyproject.toml's dependencies say, with the same
    bounds (the GPU file with Paddle's CUDA build in place of paddlepaddle)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {_name(r): r.replace(" ", "") for r in project}
    for env in ("maml-cpu", "maml-gpu"):
        spec = yaml.safe_load((REPO / "envs" / f"{env}.yaml").read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        listed = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("--")}
        if env == "maml-gpu":
            listed["paddlepaddle"] = listed.pop("paddlepaddle-gpu").replace("-gpu", "")
        assert listed == wanted, env
