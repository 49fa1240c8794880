"""The figures' line styles: a reader matches lines across panels by colour."""
from maml.figures import _line_styles
from maml.pipeline_config import GRID


def test_a_method_keeps_its_colour_in_every_panel_and_lines_stay_apart():
    one_panel = _line_styles([("maml", GRID), ("maml++", GRID), ("maml", "long"),
                              ("maml", "long_5w1s"), ("maml++", "best_5w1s"),
                              ("maml", "cbfinn_bn_5w1s")])
    other_panel = _line_styles([("maml++", "best_20w1s"), ("maml", GRID)])
    colours = {key[0]: style["color"] for key, style in one_panel.items()}
    assert colours["maml"] != colours["maml++"]
    assert all(other_panel[key]["color"] == colours[key[0]] for key in other_panel)
    looks = [(style["color"], style["linestyle"], style["marker"]) for style in one_panel.values()]
    assert len(set(looks)) == len(looks)
    assert one_panel["maml", GRID]["linestyle"] == "-" != one_panel["maml", "long"]["linestyle"]
    assert one_panel["maml", "long"]["label"] == "maml, long"
    assert one_panel["maml", GRID]["label"] == "maml"


def test_each_method_has_its_own_colour_whatever_families_join():
    """A family's colour is its own (presets.yaml), not its position among the families."""
    from maml.figures import COLOURS
    from maml.settings import METHODS

    assert set(COLOURS) == set(METHODS) and None not in COLOURS.values()
    assert len(set(COLOURS.values())) == len(COLOURS)
    styles = _line_styles([("maml++", "grid"), ("newcomer", "grid")])
    assert styles["maml++", "grid"]["color"] == COLOURS["maml++"]
    assert styles["newcomer", "grid"]["color"] == "gray"


def test_the_grid_comparison_gives_welch_intervals_of_the_differences():
    import math

    import pandas as pd
    from scipy import stats

    from maml.tables import grid_comparison

    a, b = [90.0, 92.0, 89.0], [88.0, 88.5, 88.7]
    runs = pd.DataFrame([
        {"cell": "5way1shot", "method": method, "run": run, "split": "finn",
         "accuracy": acc, "train_cpu_hours": hours, "iterations": 2000}
        for method, accs, hours in (("maml", a, 0.1), ("fomaml", b, 0.05))
        for acc in accs for run in (GRID,)] + [
        {"cell": "5way1shot", "method": "maml", "run": "long", "split": "finn",
         "accuracy": 99.0, "train_cpu_hours": 1.0, "iterations": 9000}])
    va, vb = (float(pd.Series(x).var()) / 3 for x in (a, b))
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)  # Welch-Satterthwaite
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = sum(a) / 3 - sum(b) / 3
    assert grid_comparison(runs, "finn") == (
        f"- **5-way 1-shot**: maml is ahead ({sum(a) / 3:.2f}%), {diff:.2f} ± {half:.2f} points "
        f"ahead of fomaml ({sum(b) / 3:.2f}). CPU ms per iteration: maml 180, fomaml 90.\n")


def test_the_grid_comparison_names_a_difference_without_an_interval_for_one_seed():
    import pandas as pd

    from maml.tables import grid_comparison

    runs = pd.DataFrame([{"cell": "20way1shot", "method": method, "run": GRID, "split": "finn",
                          "accuracy": acc, "train_cpu_hours": 0.1, "iterations": 1000}
                         for method, acc in (("maml", 80.0), ("maml", 82.0), ("anil", 70.0))])
    assert "11.00 (seeds 2 and 1: no interval) points ahead of anil (70.00)" in grid_comparison(
        runs, "finn")


def test_the_per_cell_summary_shows_headline_ensemble_longer_and_full_paper_rows():
    """Rows chosen by what they are (the config's ensemble run, the same method and preset
    trained longer, the paper's preset for all its iterations), not by test accuracy."""
    import math

    import pandas as pd
    from scipy import stats

    from maml.results_rows import summarise
    from maml.tables import best_per_cell

    def run(method, run, preset, iterations, accuracy, seed=0, hours=1.0,
            trained_on="5way1shot"):
        return {"cell": "5way1shot", "method": method, "run": run, "preset": preset,
                "split": "finn", "seed": seed, "accuracy": accuracy, "ci95": 1.0,
                "test_tasks": 600, "independent": float("nan"), "iterations": iterations,
                "train_minutes": 60 * hours, "train_cpu_hours": hours,
                "trained_on": trained_on, "model": f"{run}-seed{seed}/model.npz"}

    heads = [98.0, 99.0, 99.5]
    runs = pd.DataFrame(
        [run("maml++", "best", "laptop", 7000, acc, seed) for seed, acc in enumerate(heads)]
        + [run("maml++", "best8h", "laptop", 20000, 99.6, hours=4.0),
           run("maml", "paper_full", "paper", 60000, 98.9, hours=5.0),
           run("maml", "paper_cut", "paper", 19000, 99.8),  # the highest, but cut short
           run("maml", GRID, "laptop", 2000, 90.0)])
    table = summarise(runs)
    members = table[table.run == "best"].iloc[0]
    table = pd.concat([table, pd.DataFrame([{**members.to_dict(), "run": "best ensemble",
                                             "ensemble": True, "seeds": 3,
                                             "accuracy": 99.7}])], ignore_index=True)
    lines = best_per_cell(table, "finn", {("maml++", "5way1shot", "best")}).splitlines()[2:]
    half = stats.t.ppf(0.975, 2) * pd.Series(heads).std() / math.sqrt(3)
    assert [line.split(" | ")[1:3] for line in lines] == [
        ["headline", "maml++, best (laptop)"],
        ["ensemble of its seeds", "maml++, best ensemble (laptop)"],
        ["same configuration, longer", "maml++, best8h (laptop)"],
        ["the paper's protocol to its end", "maml, paper_full (paper)"]]
    assert f"| 5way1shot | {sum(heads) / 3:.2f} ± {half:.2f} (3 seeds) | model not kept | " \
           "7000 | " \
           f"1.00 | 98.7 | {sum(heads) / 3 - 98.7:+.2f} | 99.47 | " \
           f"{sum(heads) / 3 - 99.47:+.2f} |" in lines[0]
    assert "| 99.70 (ensemble of 3 seeds) | - | 7000 | 3.00 (3 models) |" in lines[1]
    # without headline runs in the config: the highest single model
    only = best_per_cell(table, "finn").splitlines()[2:]
    assert [line.split(" | ")[1:3] for line in only] == [
        ["highest single model", "maml, paper_cut (paper)"]]


def test_a_model_chosen_from_another_cell_heads_the_cell_beside_the_cells_own():
    """The configuration chosen on validation (results/selection.json) is the headline, with
    the cell it was trained on; the cell's own headline run stays beside it, and the one
    chosen for each query on its own follows where it differs."""
    import pandas as pd

    from maml.results_rows import summarise
    from maml.tables import best_per_cell, headline_table

    def run(label, accuracy, seed, trained_on):
        return {"cell": "20way5shot", "method": "maml++", "run": label, "preset": "laptop",
                "split": "finn", "seed": seed, "accuracy": accuracy, "ci95": 0.2,
                "test_tasks": 600, "independent": accuracy - 1, "iterations": 1000,
                "train_minutes": 60, "train_cpu_hours": 1.0, "trained_on": trained_on,
                "model": f"{label}-seed{seed}/model.npz"}

    runs = pd.DataFrame([run("own", 97.0, seed, "20way5shot") for seed in (0, 1)]
                        + [run("other", 98.6, seed, "20way1shot") for seed in (0, 1)]
                        + [run("lone", 98.0, 0, "20way1shot")])
    table = summarise(runs)
    chosen = {"20way5shot": {"together": "other", "support": "lone"}}
    lines = best_per_cell(table, "finn", {("maml++", "20way5shot", "own")},
                          chosen).splitlines()[2:]
    assert [line.split(" | ")[1:4] for line in lines] == [
        ["headline (chosen on validation: a model trained on 20way1shot)",
         "maml++, other (laptop)", "20way1shot"],
        ["the cell's own model", "maml++, own (laptop)", "20way5shot"],
        ["chosen on validation for each query on its own (a model trained on 20way1shot)",
         "maml++, lone (laptop)", "20way1shot"]]
    # the front page: the model chosen for each protocol, each with its accuracy in it, and
    # the file `predict` should be given (the one chosen for each query on its own)
    headline = headline_table(table, "finn", {("maml++", "20way5shot", "own")}, chosen)
    assert ("| 20way5shot | other (maml++, 20way1shot) | 98.60 ± 0.00 (2 seeds) | "
            "lone (maml++, 20way1shot) | 97.00 (1 seed) | 98.9 ± 0.2 | 99.33 | `lone-seed0/model.npz` |"
            ) in headline
    chosen["20way5shot"]["support"] = "own"  # a model the cell shows in another role
    headline = headline_table(table, "finn", {("maml++", "20way5shot", "own")}, chosen)
    assert ("| other (maml++, 20way1shot) | 98.60 ± 0.00 (2 seeds) | own (maml++, 20way5shot) | "
            "96.00 ± 0.00 (2 seeds) |") in headline
    chosen["20way5shot"]["support"] = "other"
    headline = headline_table(table, "finn", {("maml++", "20way5shot", "own")}, chosen)
    assert ("| other (maml++, 20way1shot) | 98.60 ± 0.00 (2 seeds) | the same | 97.60 ± 0.00 (2 seeds) |"
            in headline and "`other-seed0/model.npz`" in headline)


def test_the_cpu_hours_figure_plots_the_runs_process_cpu_time(tmp_path):
    """Each line ends at its runs' mean training CPU time, the table's CPU-hours (process CPU
    time, `train_cpu_seconds`), not their wall time: first-order MAML's seeds took far more
    wall time than CPU time here."""
    from pathlib import Path

    import numpy as np

    from maml.files import read_json
    from maml.progress import train_cpu_seconds
    from maml.figures import plot_accuracy_vs_cpu_hours

    repo = Path(__file__).resolve().parents[1] / "results" / "runs" / "finn"
    folders = [repo / "fomaml" / "5way1shot" / f"seed{s}" for s in range(3)] + [
        repo / "maml++" / "5way1shot" / f"best_5w1s-seed{s}" for s in range(3)]
    summaries = [folder / "train.json" for folder in folders]
    drawn = plot_accuracy_vs_cpu_hours([f / "curve.csv" for f in folders], summaries,
                                       tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    lines = drawn["5way1shot"]
    for label, group in (("fomaml", folders[:3]), ("maml++, best_5w1s", folders[3:])):
        records = [read_json(f / "train.json") for f in group]
        cpu = np.mean([train_cpu_seconds(r) for r in records]) / 3600
        hours, _ = lines[label]
        assert abs(hours[-1] - cpu) < 1e-9 * cpu, label
        assert np.all(np.diff(hours) > 0)
    fomaml_wall = np.mean([read_json(f / "train.json")["wall_time_s"] for f in folders[:3]])
    assert lines["fomaml"][0][-1] * 3600 < fomaml_wall / 2  # the wall clock is not plotted


def test_a_panel_zooms_on_the_differences_between_lines_and_shows_a_lone_line_whole():
    """Several lines: from a little below the lowest final value, hiding the climb from
    chance; one line: nothing to compare, so its whole climb stays in the panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from maml.figures import _zoom

    climb, other = np.array([20.0, 60.0, 90.0]), np.array([30.0, 70.0, 95.0])
    figure, (several, lone) = plt.subplots(1, 2)
    _zoom(several, {"a": (np.arange(3), climb), "b": (np.arange(3), other)})
    _zoom(lone, {"a": (np.arange(3), climb)})
    assert several.get_ylim() == (85.0, 97.0)
    assert lone.get_ylim() == (15.0, 92.0)
    plt.close(figure)


def test_the_html_table_is_for_people():
    """The committed table.html: UTF-8, the headers a person reads, no NaN or booleans."""
    from pathlib import Path

    html = (Path(__file__).resolve().parents[1] / "results" / "table.html").read_text()
    assert '<meta charset="utf-8">' in html
    for header in ("each query on its own", "trained on", "queries together (paper's protocol)",
                   "Lake's 20 one-shot runs"):
        assert header in html, header
    for raw in ("NaN", ">nan<", "True", "False", "ci95_seeds", "independent_seeds",
                "train_minutes", "`"):
        assert raw not in html, raw


def test_a_failed_aggregate_leaves_the_committed_tables_as_they_were(tmp_path):
    """An evaluation made by hand with 4 tasks (or a corrupt one) stops the aggregate, which
    then has replaced none of its outputs (issue 44)."""
    import json
    import shutil
    from pathlib import Path

    import pytest

    from maml.files import FileFormatError
    from maml.report import aggregate

    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "results" / "runs" / "finn" / "maml" / "5way1shot" / "seed0"
    shutil.copytree(repo / "results" / "runs" / "finn" / "maml" / "5way1shot" / "seed0", run)
    names = ("markdown", "csv", "best", "headline", "comparison", "html", "curves", "steps",
             "cpu_hours", "lake_markdown", "lake_csv", "provenance", "in_progress")
    outputs = {name: tmp_path / "results" / f"{name}.out" for name in names}
    for path in outputs.values():
        path.write_text("committed\n")
    result = json.loads((run / "eval.json").read_text())
    for broken in ({**result, "num_tasks": 4}, {**result, "accuracy": float("nan")}):
        (run / "eval.json").write_text(json.dumps(broken))
        with pytest.raises(FileFormatError, match="eval.json: "):
            aggregate([run / "eval.json"], [run / "train.json"], [run / "curve.csv"],
                      outputs, {"split": "finn", "test_tasks": 600, "test_seed": 0})
        assert all(path.read_text() == "committed\n" for path in outputs.values())
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(
        ["runs", *(p.name for p in outputs.values())])  # no staging folder left behind


def test_lakes_html_table_without_any_model_of_this_code():
    """The published rows alone (a config that scores no model on Lake's runs): every cell
    text, none NaN."""
    from maml.tables import lake_html_frame, lake_table

    frame, _ = lake_table([], {})
    html = lake_html_frame(frame)
    assert len(html) == len(frame) and not html.isna().any().any()
    assert "nan" not in html.to_string().lower()
