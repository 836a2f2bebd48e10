"""Learning-rate pictures: a schedule's LR per step, and the LR finder's loss against LR (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lr_curve(lrs: Sequence[float], steps_per_epoch: int, title: str, path: Path) -> Path:
    """LR against epoch (fractional: one point per optimizer update)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([i / steps_per_epoch for i in range(len(lrs))], lrs)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float], suggestion: float | None,
                 path: Path) -> Path:
    """Raw and smoothed loss against LR on a log axis, with the suggested LR marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lrs, losses, alpha=0.3, label="loss")
    ax.plot(lrs, smoothed, label="smoothed loss")
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    if smoothed:
        low, high = min(min(losses), min(smoothed)), smoothed[0]
        ax.set_ylim(low - 0.1 * abs(high - low), high + 0.5 * abs(high - low) + 1e-9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
