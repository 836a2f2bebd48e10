"""Running metric sums kept on the device; read (one host sync) only when asked."""

from __future__ import annotations

import math
from typing import Any

import torch


class MetricAccumulator:
    """Sums of loss, correct predictions (classification) or squared error (regression) over examples."""

    def __init__(self, task: str, device: torch.device) -> None:
        self.task, self.device = task, device
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss·n, correct or squared error
        self.count = 0  # known on the host: no sync needed

    @torch.no_grad()
    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        if self.task == "classification":
            quality = (output.argmax(dim=1) == target).sum()
        else:
            quality = (output.reshape(target.shape).float() - target.float()).pow(2).sum()
        self.sums[0] += loss.detach().double() * n
        self.sums[1] += quality.double()
        self.count += n

    def read(self, prefix: str) -> dict[str, float]:
        loss_sum, quality = self.sums.tolist()
        n = self.count
        if n == 0:
            return {}
        second = {"acc": quality / n} if self.task == "classification" else {"rmse": math.sqrt(quality / n)}
        return {f"{prefix}_loss": loss_sum / n, **{f"{prefix}_{k}": v for k, v in second.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.cpu(), "count": self.count}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.sums = data["sums"].to(self.device)
        self.count = data["count"]


def format_metric(key: str, value: float) -> str:
    """One metric value as people read it: accuracies as percentages, anything else to 4 significant digits."""
    return f"{value:.2%}" if key.endswith("_acc") else f"{value:.4g}"


def format_metrics(metrics: dict[str, float]) -> str:
    """``train_loss 0.312  train_acc 91.2%  …``, leaving out bookkeeping columns (epoch, time, rate, lr)."""
    return "  ".join(f"{key} {format_metric(key, value)}" for key, value in metrics.items()
                     if key not in ("epoch", "seconds", "examples_per_s", "lr"))
