"""The README's commands work as written: the shipped-model commands in a fresh clone print the
numbers the committed files hold, and without --out touch no committed file; the small pipeline
and the status command run; its copies of the results tables equal the files."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MD5, SHARED_COPY, SOURCE
from maml.files import FileFormatError
from maml.readme_blocks import (DOCUMENT_TABLES, README_TABLES, readme_table,
                                readme_with_results, table_rows)

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- shipped-models-example -->"


def example_commands() -> list[str]:
    """The bash block after the README's marker, one command per line (comments dropped)."""
    readme = (REPO / "README.md").read_text()
    block = re.search(re.escape(MARKER) + r"\s*```bash\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("document, name", [(d, n) for d, names in DOCUMENT_TABLES.items()
                                            for n in names])
def test_the_documents_copy_the_pipelines_tables_as_they_are(document, name):
    """A number the README or a docs page shows is the committed result's, not an older copy
    of it (`python -m maml readme-tables` copies them after an aggregate)."""
    text = (REPO / document).read_text()
    assert readme_table(text, name) == table_rows((REPO / "results" / name).read_text())


def test_the_readme_tables_are_replaced_whole_and_a_missing_block_is_named(tmp_path):
    (tmp_path / "in_progress.md").write_text("# Runs in progress\n\n| run |\n| --- |\n| a |\n"
                                             "\nEnsembles not yet scored:\n\n- e: a\n")
    for name in set(README_TABLES) - {"in_progress.md"}:
        (tmp_path / name).write_text("no table yet\n")
    blocks = "".join(f"<!-- results/{name} -->\n| old |\n| --- |\n<!-- /results/{name} -->\n"
                     for name in README_TABLES)
    synced = readme_with_results("intro\n" + blocks + "end\n", tmp_path)
    assert readme_table(synced, "in_progress.md") == "| run |\n| --- |\n| a |\n\n- e: a"
    assert readme_table(synced, "table.md") == "(none)"
    assert synced.startswith("intro\n") and synced.endswith("end\n") and "| old |" not in synced
    with pytest.raises(FileFormatError, match="no <!-- results/lake_runs.md -->"):
        readme_with_results(blocks.split("<!-- results/lake_runs.md")[0], tmp_path)
    (tmp_path / "table.md").unlink()
    with pytest.raises(FileFormatError, match="table.md: no such file"):
        readme_with_results(blocks, tmp_path)


def test_the_example_block_is_the_one_described():
    """... with the shared copy's md5 sums (config/offline-data.yaml), the ones CI reads."""
    commands = example_commands()
    assert shlex.split(commands[1])[-2:] == [SHARED_COPY["md5"][name] for name in
                                            ("images_background", "images_evaluation")]
    assert commands[0] == "source .venv/bin/activate"
    assert [shlex.split(c)[3] for c in commands[1:]] == ["prepare", "evaluate", "predict",
                                                         "lake-runs"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of this repository's committed state, beside the archives' folder as the
    README's paths expect (../shared/omniglot)."""
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").mkdir()
    (root / "shared" / "omniglot").symlink_to(Path(SOURCE).resolve())
    subprocess.run(["git", "clone", "-q", str(REPO), str(root / "clone")], check=True)
    return root / "clone"


def run_examples(clone, tmp_path) -> dict[str, subprocess.CompletedProcess]:
    results = {}
    for command in example_commands()[1:]:  # `python` is this interpreter, as after `source`
        words = [sys.executable if w == "python" else w.replace("/tmp/", f"{tmp_path}/")
                 for w in shlex.split(command)]
        result = subprocess.run(words, cwd=clone, capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        results[words[3]] = result
    return results


def test_the_shipped_model_examples_work_in_a_fresh_clone(clone, tmp_path):
    if MD5 != {name: SHARED_COPY["md5"][name] for name in MD5}:
        pytest.skip("the README's prepare command names the shared copy's md5 sums; "
                    "OMNIGLOT_MD5 gives other archives")
    results = run_examples(clone, tmp_path)
    committed = json.loads((clone / "results/runs/finn/maml/5way1shot/seed0/eval.json")
                           .read_text())
    again = json.loads((tmp_path / "eval.json").read_text())
    assert again["num_tasks"] == committed["num_tasks"] == 600
    # exact on the CPU kind that made the file; elsewhere a near-tie query may flip
    assert abs(again["accuracy"] - committed["accuracy"]) <= 0.003
    assert f"{100 * again['accuracy']:.2f}" in results["evaluate"].stdout
    rows = results["predict"].stdout.splitlines()
    assert rows[0].startswith("query,predicted,") and len(rows) == 6
    lake = json.loads((tmp_path / "lake_runs.json").read_text())
    words = shlex.split(next(c for c in example_commands() if " lake-runs " in c))
    model = Path(words[words.index("--model") + 1])
    shipped = json.loads((clone / model.parent / "lake_runs.json").read_text())
    assert abs(lake["error_percent"] - shipped["error_percent"]) <= 1.0
    assert "queries together" in results["lake-runs"].stdout
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                          text=True).stdout == ""  # nothing committed was touched


def _without_out(command: str) -> list[str]:
    words = [sys.executable if w == "python" else w for w in shlex.split(command)]
    if "--out" in words:
        del words[words.index("--out"):words.index("--out") + 2]
    return words


def test_no_command_without_an_output_touches_a_committed_file(clone, tmp_path):
    """Issue 44, item 2: the README's commands with their --out taken away, and the commands a
    user runs to look at a model (a few tasks, one step, a tiny training), write only to
    folders git ignores: the clone's committed files stay as committed."""
    model = "results/runs/finn/maml/5way1shot/seed0/model.npz"
    lake = next(c for c in example_commands() if " lake-runs " in c)
    commands = [_without_out(c) for c in example_commands()[1:]] + [
        _without_out(c) for c in (f"python -m maml evaluate --model {model} --num-tasks 4",
                                  lake + " --steps 1",
                                  "python -m maml status")] + [
        [sys.executable, "-m", "maml", "train", *map(str, (
            "--epochs", 2, "--task_num", 1, "--k_query", 1, "--val_every", 2, "--val_tasks", 2,
            "--checkpoint_every", 2, "--glob_update_step", 1, "--glob_update_step_test", 1))]]
    for words in commands:
        result = subprocess.run(words, cwd=clone, capture_output=True, text=True)
        assert result.returncode == 0, f"{words}\n{result.stderr[-3000:]}"
    assert (clone / "output" / "evaluations").is_dir() and (clone / "output" / "runs").is_dir()
    assert subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                          capture_output=True, text=True).stdout == ""


def readme_command(prefix: str) -> str:
    """The README's one command line that starts with `prefix`."""
    lines = [line.strip() for line in (REPO / "README.md").read_text().splitlines()
             if line.strip().startswith(prefix)]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readme_small_pipeline_runs_as_written(tmp_path):
    """Issue 45: the small run's command, word for word from REPO (its scratch folder made by
    mktemp under this test's folder), makes a table, and the closing line names it in full."""
    command = readme_command("./run.sh pipeline --directory")
    result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    [workdir] = tmp_path.iterdir()
    rows = (workdir / "results" / "table.md").read_text().splitlines()[2:]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 5way1shot", "maml"], ["| 5way1shot", "maml++"], ["| 20way1shot", "maml"],
        ["| 20way1shot", "maml++"]]
    assert f"Done. The table: {workdir}/results/table.md" in result.stdout + result.stderr


def test_the_readme_status_command_runs_as_written():
    command = shlex.split(next(line for line in re.findall(r"`([^`]*)`",
                                                            (REPO / "README.md").read_text())
                               if line.startswith("python -m maml status")))
    result = subprocess.run([sys.executable, *command[1:]], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "results/state/" in result.stdout, result.stdout


def test_every_test_file_is_described_in_docs_tests():
    described = (REPO / "docs" / "tests.md").read_text()
    assert [p.name for p in sorted((REPO / "tests").glob("test_*.py"))
            if f"`{p.name}`" not in described] == []


def test_the_readme_predict_example_runs_as_written(clone, tmp_path):
    """The "use a model on your own images" command, word for word, with my_support/ and
    my_queries/ being the examples' folders (the reader's own images in the README)."""
    lines = (REPO / "README.md").read_text().splitlines()
    [at] = [i for i, line in enumerate(lines)
            if line.startswith("python -m maml predict") and line.endswith("\\")]
    words = shlex.split(lines[at].rstrip("\\") + " " + lines[at + 1])
    shutil.copytree(clone / "examples" / "support", clone / "my_support")
    shutil.copytree(clone / "examples" / "query", clone / "my_queries")
    try:
        result = subprocess.run([sys.executable, *words[1:]], cwd=clone, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = (clone / "predictions.csv").read_text().splitlines()
        assert rows[0].startswith("query,predicted,") and len(rows) == 6
    finally:
        for made in ("my_support", "my_queries"):
            shutil.rmtree(clone / made)
        (clone / "predictions.csv").unlink(missing_ok=True)
