"""Figures as PNG (matplotlib, headless): training curves, run comparisons, searches.

Every function takes a target that is a path or a binary buffer, so the HTML report can embed the same
figures that the commands save as files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

Target = Path | str | IO[bytes]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, target: Target) -> Target:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(Path(target) if isinstance(target, str) else target, dpi=100, format="png")
    plt.close(fig)
    return Path(target) if isinstance(target, str) else target


def plot_history(history: Sequence[dict[str, Any]], path: Target) -> Target:
    """Loss (left) and accuracy or RMSE (right) against epoch, train and validation overlaid."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    second = "acc" if any("train_acc" in row for row in history) else "rmse"
    panels = ("loss", second, *(("ppl",) if any("train_ppl" in row for row in history) else ()))  # language models
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, metric in zip(axes, panels):
        for split, style in (("train", "-"), ("val", "--"), ("test", ":")):  # test: train.test_each_epoch
            key = f"{split}_{metric}"
            points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), style, marker="o", markersize=3,
                        label="test (recorded only)" if split == "test" else split)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "loss", "acc": "accuracy", "rmse": "RMSE", "ppl": "perplexity"}[metric])
        ax.grid(alpha=0.3)
        _legend_or_note(ax)
    return _save(fig, path)


def _legend_or_note(ax: Any) -> None:
    """A legend, or for a panel with nothing plotted (every value missing, e.g. a run that diverged at once) a note
    saying so: an empty legend only earns a matplotlib warning."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no values recorded", ha="center", va="center", transform=ax.transAxes, color="gray")


COMPARE_PANELS = (("loss", "loss"), ("acc", "accuracy"), ("rmse", "RMSE"), ("ppl", "perplexity"), ("lr", "learning rate"))


def plot_compare(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: Target,
                 tasks: Mapping[str, str | None] | None = None) -> Target:
    """One panel per metric (loss, accuracy or RMSE, LR); each run a colour, train solid and validation dashed.

    ``tasks`` (run name → classification or regression) splits the loss panel by task when runs of different
    tasks are compared: a cross-entropy and a squared error drawn on one axis would look comparable, and are not.
    Runs without any point to draw are not passed in by the caller; with nothing to draw at all this raises
    ``ValueError``.
    """
    plt = _pyplot()
    panels = _compare_panels(histories, tasks or {})
    if not panels:
        raise ValueError("no metric to plot: the runs' histories hold no loss, accuracy, RMSE or learning rate")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, label, names) in zip(axes[0], panels):
        for i, (name, rows) in enumerate(histories.items()):
            if name not in names:
                continue
            color = colors[i % len(colors)]
            keys = [("lr", "-")] if metric == "lr" else [(f"train_{metric}", "-"), (f"val_{metric}", "--")]
            label_left = name
            for key, style in keys:
                points = [(row["epoch"], row[key]) for row in rows if _finite(row.get(key))]
                if points:
                    ax.plot(*zip(*points), style, color=color, marker="o", markersize=3, label=label_left)
                    label_left = None
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if metric == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="solid: train, dashed: val" if metric != "lr" else None, title_fontsize=7)
    return _save(fig, path)


def _compare_panels(histories: Mapping[str, Sequence[Mapping[str, Any]]],
                    tasks: Mapping[str, str | None]) -> list[tuple[str, str, list[str]]]:
    """``(metric, axis label, runs drawn)`` per panel: the metrics some run has, the loss once per task."""
    def has(name: str, metric: str) -> bool:
        return any(k == metric or k.endswith(f"_{metric}") for row in histories[name] for k in row)

    panels = []
    for metric, label in COMPARE_PANELS:
        names = [n for n in histories if has(n, metric)]
        groups = sorted({tasks.get(n) or "unknown task" for n in names}) if metric == "loss" else []
        if len(groups) > 1:
            panels += [(metric, f"{label} ({task})", [n for n in names if (tasks.get(n) or "unknown task") == task])
                       for task in groups]
        elif names:
            panels.append((metric, label, names))
    return panels


def plot_search(results: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str,
                log_params: Sequence[str], path: Target) -> Target:
    """The metric against each searched parameter, one panel per parameter (categorical values as labels)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(params), 1), figsize=(4.5 * max(len(params), 1), 4), squeeze=False)
    rows = [r for r in results if _finite(r.get(metric))]
    for ax, param in zip(axes[0], params):
        values = [r.get(param) for r in rows]
        ys = [r[metric] for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            ax.scatter(values, ys)
            if param in log_params:
                ax.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            ax.scatter([labels.index(str(v)) for v in values], ys)
            ax.set_xticks(range(len(labels)), labels=labels, rotation=30)
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
