"""The figures: validation curves, accuracy against training CPU-hours, accuracy after each
inner step at test; panels two by two, one colour per method. Knows nothing of Paddle."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from maml.files import atomic_write, read_json  # noqa: E402
from maml.results_rows import PAPER, cell_of, method_of, published, run_label  # noqa: E402
from maml.settings import presets, with_defaults  # noqa: E402
from maml.pipeline_config import GRID  # noqa: E402


# Each method's colour in every figure, from its family in presets.yaml.
COLOURS = {method: family["colour"] for method, family in presets().items()}


def _series_label(method: str, run: str) -> str:
    return method if run == GRID else f"{method}, {run}"


EXTRA_RUN_LOOKS = (("--", "s"), (":", "^"), ("-.", "x"), ((0, (5, 1, 1, 1, 1, 1)), "d"))


def _line_styles(series) -> dict:
    """{(method, run): label and style}: one colour per method in every panel and figure; the
    grid's runs solid with dots, each extra run of a method its own dashes and marker within
    its panel."""
    styles, extra_runs = {}, {}
    for method, run in series:
        color = COLOURS.get(method) or "gray"
        if run == GRID:
            dash, marker = "-", "o"
        else:
            extra_runs[method] = extra_runs.get(method, -1) + 1
            dash, marker = EXTRA_RUN_LOOKS[extra_runs[method] % len(EXTRA_RUN_LOOKS)]
        styles[method, run] = {"label": _series_label(method, run), "color": color,
                               "linestyle": dash, "marker": marker, "markersize": 3}
    return styles


def _panel(cell: str, split: str, main_split: str) -> str:
    """A figure panel's title: the cell, and the split where it is not the grid's (its runs
    are validated and tested on other characters, so they get their own panel)."""
    return cell if split == main_split else f"{cell}, {split} split"


def _validation_curves(curves, summaries, main_split: str, threads: int = 1) -> dict:
    """{panel: {(method, run): [(each seed's validation rows of curve.csv, by iteration, its
    train.json)]}}."""
    panels = {}
    for curve_path, summary_path in zip(curves, summaries):
        summary = read_json(summary_path)
        settings = with_defaults(summary["settings"])
        frame = pd.read_csv(curve_path)
        frame["cpu_s"] = cpu_seconds_by_row(frame, summary, threads)
        frame = frame.dropna(subset=["val_accuracy"]).set_index("iteration")
        key = (method_of(settings), run_label(curve_path))
        panels.setdefault(_panel(cell_of(settings), settings["split"], main_split), {}
                          ).setdefault(key, []).append(frame)
    return _in_paper_order(panels)


def cpu_seconds_by_row(curve: pd.DataFrame, summary: dict, threads: int = 1) -> np.ndarray:
    """Each curve row's training CPU time so far: within each segment of the run (its
    train.json), the segment's process CPU time spread over its rows by their wall clock,
    its last row at the segment's end, so the curve's last row is the run's CPU time
    (`maml.progress.train_cpu_seconds`, the table's); a run without segments, wall time x
    threads, as the table."""
    elapsed = curve["elapsed_s"].to_numpy(dtype=float)
    iterations = curve["iteration"].to_numpy()
    segments = summary.get("segments") or []
    if not segments:
        return elapsed * threads
    cpu = np.zeros(len(curve))
    done = 0.0
    for segment in segments:
        inside = (iterations > segment["from_iteration"]) & (iterations <= segment["to_iteration"])
        before = elapsed[iterations == segment["from_iteration"]]
        start = before[0] if len(before) else 0.0
        span = (elapsed[inside].max() - start) if inside.any() else 0.0
        cpu[inside] = done + (elapsed[inside] - start) * (segment["cpu_s"] / span if span else 0)
        done += segment["cpu_s"]
    return cpu


def _in_paper_order(cells: dict) -> dict:
    """Panels in the paper's order of cells (others, and other splits, after)."""
    order = list(PAPER)
    return dict(sorted(cells.items(), key=lambda item: order.index(item[0])
                       if item[0] in order else len(order)))


def _log_axis_if_spread(ax, lengths) -> None:
    """A log x axis where the lines' lengths differ much (an extra run beside the grid), so
    short and long lines both stay readable."""
    if max(lengths) > 4 * min(lengths):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _zoom(ax, lines) -> None:
    """A y axis from a little below the lowest line's final value to a little above the
    highest value: the differences between the runs' results, not the climb from chance,
    fill the panel. A panel of one line has no differences to show: its whole climb does.
    `lines`: {label: (x, y)}."""
    finals = [y[-1] for _, y in lines.values()]
    top = max(float(np.nanmax(y)) for _, y in lines.values())
    bottom = (float(np.nanmin(next(iter(lines.values()))[1])) if len(lines) == 1
              else min(finals)) - 5.0
    ax.set_ylim(max(0.0, bottom), min(100.5, top + 2.0))


def _plot_panels(panels: dict, draw, path, xlabel: str, ylabel: str,
                 legend_title: str = "") -> dict:
    """Panels two by two, `draw(ax, panel, series)` drawing each one's lines and returning
    {label: (x, y)}; one legend for the figure, outside the data, one entry per line label.
    Returns {panel: {label: (x, y)}}, what was drawn."""
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.9 * rows), squeeze=False)
    drawn, handles = {}, {}
    for ax, (panel, series) in zip(axes.flat, panels.items()):
        drawn[panel] = draw(ax, panel, series)
        ax.set(title=panel, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.98),
               fontsize=8, title=legend_title or None, title_fontsize=8, frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110,
                                                  bbox_inches="tight"))
    plt.close(fig)
    return drawn


def plot_validation_curves(curves, summaries, path, main_split: str = "finn") -> dict:
    """One panel per cell (and split), one line per method and run: the mean over seeds of
    the validation accuracy, shaded from the lowest to the highest seed."""
    def draw(ax, panel, series):
        lengths, lines = [], {}
        for key, style in _line_styles(series).items():
            frames = series[key]
            values = 100 * pd.concat([f["val_accuracy"] for f in frames], axis=1)
            mean = values.mean(axis=1)
            label = f"{style['label']} ({len(frames)})"
            ax.plot(mean.index, mean, **{**style, "label": label})
            if len(frames) > 1:
                ax.fill_between(mean.index, values.min(axis=1), values.max(axis=1),
                                color=style["color"], alpha=0.15)
            lengths.append(mean.index.max())
            lines[label] = (mean.index.to_numpy(), mean.to_numpy())
        _log_axis_if_spread(ax, lengths)
        _zoom(ax, lines)
        return lines

    return _plot_panels(_validation_curves(curves, summaries, main_split), draw, path,
                        "meta-iteration", "validation accuracy (%)", "method, run (seeds)")


def plot_accuracy_vs_cpu_hours(curves, summaries, path, main_split: str = "finn",
                               threads: int = 1) -> dict:
    """One panel per cell (and split): validation accuracy against training CPU-hours, the
    process CPU time the table's CPU-hours column counts (`cpu_seconds_by_row`), one line per
    method and run (mean over seeds), the paper's number as a line."""
    def draw(ax, panel, series):
        lengths, lines = [], {}
        for key, style in _line_styles(series).items():
            frames = series[key]
            hours = pd.concat([f["cpu_s"] for f in frames], axis=1).mean(axis=1) / 3600
            accuracy = 100 * pd.concat([f["val_accuracy"] for f in frames], axis=1).mean(axis=1)
            ax.plot(hours, accuracy, **style)
            lengths.append(hours.max())
            lines[style["label"]] = (hours.to_numpy(), accuracy.to_numpy())
        _log_axis_if_spread(ax, lengths)
        _zoom(ax, lines)
        paper = published(main_split, panel, "paper")  # a main-split panel is a cell
        if not math.isnan(paper):
            ax.axhline(paper, color="black", linestyle="--", linewidth=1,
                       label="paper (test accuracy)")
        return lines

    return _plot_panels(_validation_curves(curves, summaries, main_split, threads), draw, path,
                        "training CPU-hours (process CPU time)", "validation accuracy (%)",
                        "method, run")


def plot_accuracy_vs_steps(evals, summaries, path, main_split: str = "finn") -> dict:
    """One panel per cell (and split): test accuracy after each inner step at test, mean
    over seeds, one line per method and run, shaded by the mean 95% interval over test
    tasks; the y axis from a little below the lowest line's last step."""
    panels = {}
    for eval_path, summary_path in zip(evals, summaries):
        result = read_json(eval_path)
        settings = with_defaults(read_json(summary_path)["settings"])
        key = (method_of(settings), run_label(eval_path))
        panels.setdefault(_panel(cell_of(result), settings["split"], main_split), {}
                          ).setdefault(key, []).append(result)

    def draw(ax, panel, series):
        lines = {}
        for key, style in _line_styles(series).items():
            results = series[key]
            acc = 100 * np.mean([r["per_step_accuracy"] for r in results], axis=0)
            ci = 100 * np.mean([r["per_step_ci95"] for r in results], axis=0)
            steps = np.arange(len(acc))
            ax.plot(steps, acc, **style)
            ax.fill_between(steps, acc - ci, acc + ci, color=style["color"], alpha=0.15)
            lines[style["label"]] = (steps, acc)
        _zoom(ax, lines)
        return lines

    return _plot_panels(_in_paper_order(panels), draw, path, "inner gradient steps at test",
                        "test accuracy (%)", "method, run")
