"""The export check: the written file, loaded back, must answer like the run's own model at several batch sizes.

Exporters have been silently wrong in ways a single forward pass at the export batch size never shows: a batch
size baked into a reshape, batch 1 specialised away, ``verify=True`` options that compare nothing.  So the check
loads the file as a user would (``torch.export.load``, onnxruntime, ``torch.jit.load``), feeds it raw batches of
1, 2 and 7 (the graph was captured at 2), and compares with the eager predictor on the same batches; the outputs
must have the same shape and agree within the format's :class:`~trainlab.export.formats.Tolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainlab.data.bundle import DataMeta
from trainlab.export.formats import ExportError, Runner, Tolerance
from trainlab.export.graph import example_inputs

CHECK_BATCH_SIZES = (1, 2, 7)


@dataclass(frozen=True)
class CheckResult:
    """What the check compared and the largest absolute difference it saw (over every batch size)."""

    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    tolerance: Tolerance

    def to_dict(self) -> dict[str, object]:
        return {"batch_sizes": list(self.batch_sizes), "max_abs_diff": self.max_abs_diff,
                "atol": self.tolerance.atol, "rtol": self.tolerance.rtol}


@torch.no_grad()
def check_export(original: nn.Module, exported: Runner, meta: DataMeta, tolerance: Tolerance, path: Path,
                 batch_sizes: tuple[int, ...] = CHECK_BATCH_SIZES) -> CheckResult:
    """Compare ``exported`` (the file at ``path``, loaded back) with ``original`` on seeded raw batches; an
    :class:`ExportError` naming the batch size, the difference and the tolerance when they disagree."""
    largest = 0.0
    for batch in batch_sizes:
        x = example_inputs(meta, batch, seed=batch)
        want = original(x)
        try:
            got = exported(x.clone())
        except Exception as err:  # noqa: BLE001 - a file that cannot run a batch size fails the check, loudly
            raise ExportError(f"export check failed: {path.name} cannot run a batch of {batch} "
                              f"({type(err).__name__}: {str(err).strip()[:300]}); nothing was written") from err
        if tuple(got.shape) != tuple(want.shape):
            raise ExportError(f"export check failed: {path.name} gives output shape {list(got.shape)} for a batch "
                              f"of {batch}, the run's model {list(want.shape)}; nothing was written")
        diff = (got.float() - want.float()).abs()
        largest = max(largest, float(diff.max()))
        allowed = tolerance.atol + tolerance.rtol * want.float().abs()
        if not bool(torch.all(diff <= allowed)):
            raise ExportError(f"export check failed: {path.name} differs from the run's model at batch size {batch} "
                              f"by up to {float(diff.max()):.3g} (tolerance atol {tolerance.atol:g} + rtol "
                              f"{tolerance.rtol:g} x |output|); nothing was written. Export without the check "
                              "(--no-check) only to investigate")
    return CheckResult(tuple(batch_sizes), largest, tolerance)
