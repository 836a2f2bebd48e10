"""Running metric sums kept on the device; read (one host sync) only when asked."""

from __future__ import annotations

import math
from typing import Any

import torch

from trainlab.engine import distributed


class MetricAccumulator:
    """Sums of loss, correct predictions (classification) or squared error (regression) over examples."""

    def __init__(self, task: str, device: torch.device, across_ranks: bool = False) -> None:
        self.task, self.device = task, device
        self.across_ranks = across_ranks  # read() sums over the ranks of a distributed job (all must call it)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss·n, correct or squared error
        self.count = 0  # known on the host: no sync needed
        self.sequence = False  # per-step outputs seen: classification then also reports perplexity
        self.padding = torch.zeros(2, dtype=torch.float64, device=self.device)  # ignored (-100) steps, exact sequences
        self.sequences = 0  # sequences scored for exact match (known on the host)

    @torch.no_grad()
    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        classify = self.task == "classification"
        ignored = quality = None
        n = target.shape[0]
        if output.dim() >= 3 and (target.dim() == output.dim() - 1 if classify else target.dim() >= 2):
            self.sequence = True  # a sequence model's (N, T, C) outputs: every step counts
            if classify:  # scored per step in place: flattening time-major logits would copy them
                ignored, quality = self._score_sequences(output, target)
                n = target.numel()
            else:
                output, target = _per_step(output, target)
                n = target.shape[0]
        if quality is None and classify:  # (per-step classification counted its right steps above)
            quality = (output.argmax(dim=1) == target).sum()
        elif quality is None:
            quality = (output.reshape(target.shape).float() - target.float()).pow(2).sum()
        self.sums[0] += loss.detach().double() * (n if ignored is None else n - ignored)  # the loss averages real steps
        self.sums[1] += quality.double()
        self.count += n

    def read(self, prefix: str) -> dict[str, float]:
        loss_sum, quality = self.sums.tolist()
        n = self.count
        ignored, exact = self.padding.tolist()
        sequences = self.sequences
        if self.across_ranks and distributed.active():
            local = torch.cat([self.sums, self.sums.new_tensor([float(n)]), self.padding,
                               self.sums.new_tensor([float(sequences)])])
            loss_sum, quality, total, ignored, exact, sequences = distributed.sum_over_ranks(local).tolist()
            n = int(total)
        n -= int(ignored)  # padding steps (-100) are no predictions: leave them out of every per-step mean
        if n <= 0:
            return {}
        second = {"acc": quality / n} if self.task == "classification" else {"rmse": math.sqrt(quality / n)}
        if self.sequence and self.task == "classification":
            second["ppl"] = math.exp(min(loss_sum / n, 700.0))  # perplexity: exp of the mean per-token cross-entropy
        if ignored > 0:  # padded target sequences (encoder-decoder): the share of sequences exactly right
            second["exact"] = exact / sequences
        return {f"{prefix}_loss": loss_sum / n, **{f"{prefix}_{k}": v for k, v in second.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.cpu(), "count": self.count, "sequence": self.sequence,
                "padding": self.padding.cpu(), "sequences": self.sequences}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.sums = data["sums"].to(self.device)
        self.count = data["count"]
        self.sequence = data.get("sequence", False)  # absent in checkpoints written before sequence models
        self.padding = data.get("padding", torch.zeros(2, dtype=torch.float64)).to(self.device)
        self.sequences = data.get("sequences", 0)

    def _score_sequences(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact match of ``(N, T, C)`` outputs against ``(N, T)`` labels: a sequence counts when every step is right,
        steps labelled -100 (torch's ``ignore_index``, padding after the end) excepted.  Returns the number of ignored
        steps and of right steps (one argmax serves both)."""
        ignored = target < 0
        right = output.argmax(dim=-1) == target
        count = ignored.sum().double()
        self.padding[0] += count
        self.padding[1] += exact_rows(right, ignored).sum().double()
        self.sequences += target.shape[0]
        return count, right.sum()


def exact_rows(right: torch.Tensor, ignored: torch.Tensor) -> torch.Tensor:
    """Per sequence ``(N,)``: every step right, steps labelled -100 (``ignored``, padding after the end) excepted —
    what ``exact`` counts, and k-fold's out-of-fold ``correct`` for target sequences."""
    return (right | ignored).all(dim=1)


def _per_step(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, T, C)`` outputs and ``(N, T)`` class targets (or ``(N, T)``/``(N, T, C)`` values) as ``N·T`` examples."""
    steps = output.shape[0] * output.shape[1]
    return output.reshape(steps, *output.shape[2:]), target.reshape(steps, *target.shape[2:])


def format_metric(key: str, value: float) -> str:
    """One metric value as people read it: accuracies as percentages, anything else to 4 significant digits."""
    return f"{value:.2%}" if key.endswith(("_acc", "_exact")) else f"{value:.4g}"


def format_metrics(metrics: dict[str, float]) -> str:
    """``train_loss 0.312  train_acc 91.2%  …``, leaving out bookkeeping columns (epoch, time, rate, lr)."""
    return "  ".join(f"{key} {format_metric(key, value)}" for key, value in metrics.items()
                     if key not in ("epoch", "seconds", "examples_per_s", "lr"))
