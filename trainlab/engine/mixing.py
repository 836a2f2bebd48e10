"""Mixup and CutMix: train on blends of two examples, with the loss blended in the same proportion.

Both return ``(inputs, targets_a, targets_b, lam)`` and the trainer uses
``lam · loss(out, a) + (1 − lam) · loss(out, b)``.  For cross-entropy this equals the loss against the mixed
one-hot label ``lam · onehot(a) + (1 − lam) · onehot(b)`` (the loss is linear in the target), and it works
with any loss that takes ordinary targets.  ``lam ≥ 0.5`` is enforced so ``targets_a`` is the dominant label,
which the training accuracy is measured against.  Randomness comes from torch's global generators, which are
seeded and checkpointed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Mixing:
    """Batch mixing settings: Beta(α, α) parameters (0 disables) and the chance that a batch is mixed."""

    mixup: float = 0.0
    cutmix: float = 0.0
    prob: float = 1.0

    @property
    def enabled(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.prob > 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float] | None:
        """A mixed batch, or None when this batch is left alone (chance ``1 − prob``)."""
        if not self.enabled or torch.rand(()).item() >= self.prob:
            return None
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or torch.rand(()).item() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        lam = max(lam, 1.0 - lam)
        perm = torch.randperm(x.shape[0], device=x.device)
        if use_cutmix:
            mixed, lam = cutmix(x, perm, lam)
        else:
            mixed = mixup(x, perm, lam)
        return mixed, y, y[perm], lam


def mixup(x: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam · x + (1 − lam) · x[perm]``."""
    return x.mul(lam).add_(x[perm], alpha=1.0 - lam)


def cutmix(x: torch.Tensor, perm: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """Paste a box of ``x[perm]`` covering about ``1 − lam`` of each image; returns the exact kept fraction."""
    if x.dim() != 4:
        raise ValueError(f"train.cutmix needs image batches (N, C, H, W), got shape {tuple(x.shape)}; "
                         "use train.mixup for other inputs")
    height, width = x.shape[2:]
    cut = (1.0 - lam) ** 0.5
    box_h, box_w = round(height * cut), round(width * cut)
    cy, cx = torch.randint(height, ()).item(), torch.randint(width, ()).item()
    top, bottom = max(cy - box_h // 2, 0), min(cy + (box_h + 1) // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + (box_w + 1) // 2, width)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (height * width)
