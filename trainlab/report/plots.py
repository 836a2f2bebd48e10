"""Training curves as PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def plot_history(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Loss (left) and accuracy or RMSE (right) against epoch, train and validation overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    second = "acc" if any("train_acc" in row for row in history) else "rmse"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", second)):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{metric}"
            points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), style, marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "loss", "acc": "accuracy", "rmse": "RMSE"}[metric])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
