"""The figures' line styles: a reader matches lines across panels by colour."""
from maml.report import _line_styles
from maml.settings import GRID


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
    from maml.report import COLOURS
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

    from maml.report import grid_comparison

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

    from maml.report import grid_comparison

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

    from maml.report import best_per_cell, summarise

    def run(method, run, preset, iterations, accuracy, seed=0, hours=1.0):
        return {"cell": "5way1shot", "method": method, "run": run, "preset": preset,
                "split": "finn", "seed": seed, "accuracy": accuracy, "ci95": 1.0,
                "test_tasks": 600, "independent": float("nan"), "iterations": iterations,
                "train_minutes": 60 * hours, "train_cpu_hours": hours}

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
    assert f"| {sum(heads) / 3:.2f} ± {half:.2f} (3 seeds) | 7000 | 1.00 | 98.7 | " \
           f"{sum(heads) / 3 - 98.7:+.2f} | 99.47 | {sum(heads) / 3 - 99.47:+.2f} |" in lines[0]
    assert "| 99.70 (ensemble of 3 seeds) | 7000 | 3.00 (3 models) |" in lines[1]
    # without headline runs in the config: the highest single model
    only = best_per_cell(table, "finn").splitlines()[2:]
    assert [line.split(" | ")[1:3] for line in only] == [
        ["highest single model", "maml, paper_cut (paper)"]]
