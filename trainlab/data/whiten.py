"""PCA and ZCA whitening (``data.whiten``), fitted on the training split only and saved in the preprocessing record.

Both decorrelate the model's input features and scale them to unit variance.  With the training covariance
``C = U diag(λ) Uᵀ`` (eigenvalues in decreasing order) and ``s = 1 / sqrt(λ + eps)``:

* **PCA** whitening maps a centred feature vector ``x`` to ``x U diag(s)``: the principal components, each scaled
  to unit variance (feature ``i`` of the output is the ``i``-th component, no longer the ``i``-th input feature);
* **ZCA** whitening maps it to ``x U diag(s) Uᵀ``: the same whitened vector rotated back, the whitened data
  closest to the input (pixels stay pixels, so a whitened image still looks like an image, with edges enhanced).

``eps`` keeps directions of tiny variance from being blown up into noise.  Directions with no variance at all in
the training rows (a constant pixel, the ``<unknown>`` one-hot column, the sum of a one-hot block) are dropped
(scaled by 0) instead of being multiplied by ``1 / sqrt(eps)``, so a value never seen in training cannot explode.

The record holds the mean and the matrix as lists, so ``predict`` applies exactly the numbers training used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import safetensors
import safetensors.torch
import torch

from trainlab.data.preprocess import WhitenRecord

METHODS = ("pca", "zca")
DEFAULT_EPS = 1e-5
MAX_FEATURES = 1024  # the matrix is features² numbers in data.json: 784 (MNIST) is ~12 MB, 1024 is ~20 MB
NULL_TOLERANCE = 1e-9  # eigenvalues below this fraction of the largest one are directions without variance


def check_whiten(method: str | None, eps: float | None, features: int, what: str) -> float:
    """The epsilon to use; a ValueError naming the ``data.whiten*`` key when the options or the data do not fit.

    ``what`` names the data (``"the table"``, ``"images of 1x28x28"``) in the message."""
    if method is None:
        if eps is not None:
            raise ValueError("data.whiten_eps is set but data.whiten is not; add data.whiten=zca (or pca), "
                             "or remove data.whiten_eps")
        return DEFAULT_EPS
    if method not in METHODS:
        raise ValueError(f"data.whiten: unknown method {method!r}; choices: {', '.join(METHODS)}")
    if eps is not None and not eps > 0:
        raise ValueError(f"data.whiten_eps must be > 0 (it is added to every variance), got {eps}")
    if features < 2:
        raise ValueError(f"data.whiten: {what} gives {features} feature; whitening needs at least 2 (a single "
                         "feature is already standardized), remove data.whiten")
    if features > MAX_FEATURES:
        raise ValueError(f"data.whiten: {what} gives {features} features; whitening is limited to {MAX_FEATURES} "
                         f"(its matrix has features² entries, saved with the run); use smaller inputs "
                         "(e.g. a smaller data.size) or remove data.whiten")
    return DEFAULT_EPS if eps is None else float(eps)


def moments(chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) covariance of the rows of 2-D chunks, in float64, one chunk in memory at a time."""
    count, total, outer = 0, None, None
    for chunk in chunks:
        x = chunk.double().flatten(1)
        total = x.sum(0) if total is None else total + x.sum(0)
        outer = x.T @ x if outer is None else outer + x.T @ x
        count += len(x)
    if total is None or outer is None or count == 0:
        raise ValueError("data.whiten: the training split is empty, there is nothing to fit whitening on")
    mean = total / count
    return mean, outer / count - torch.outer(mean, mean)


def fit_whitening(method: str, mean: torch.Tensor, cov: torch.Tensor, eps: float) -> WhitenRecord:
    """The PCA or ZCA record for data of this mean and covariance (eigenvector signs fixed, so fits are repeatable)."""
    values, vectors = torch.linalg.eigh(cov.double())
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)  # decreasing variance
    pivots = vectors.abs().argmax(0)
    vectors = vectors * torch.sign(vectors[pivots, torch.arange(len(values))])  # largest entry positive
    scale = torch.where(values > NULL_TOLERANCE * values.max(), (values + eps).rsqrt(), torch.zeros_like(values))
    matrix = vectors * scale
    if method == "zca":
        matrix = matrix @ vectors.T
    as_float32 = matrix.float().double()  # the numbers saved are the numbers applied, in float32
    return {"method": method, "eps": float(eps), "mean": mean.float().double().tolist(),  # type: ignore[typeddict-item]
            "matrix": as_float32.tolist()}


ARRAY_KEYS = ("mean", "matrix")  # a record's bulk: features and features² numbers, kept out of data.json


def whitening_arrays(preprocess: Any) -> dict[str, torch.Tensor]:
    """The whitening record's mean and matrix as float32 tensors (the values it holds are float32 already), or {}
    when the preprocessing has no whitening or its arrays are not inline."""
    record = preprocess.get("whiten") if isinstance(preprocess, dict) else None
    if not isinstance(record, dict) or not all(key in record for key in ARRAY_KEYS):
        return {}
    return {key: torch.tensor(record[key], dtype=torch.float32) for key in ARRAY_KEYS}


def without_arrays(preprocess: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The preprocessing record with the whitening record's mean and matrix left out, ``extra`` keys added to it
    (e.g. the file that holds them); unchanged without whitening."""
    record = preprocess.get("whiten")
    if not isinstance(record, dict):
        return preprocess
    return {**preprocess, "whiten": {**{k: v for k, v in record.items() if k not in ARRAY_KEYS}, **extra}}


def with_arrays(preprocess: dict[str, Any], arrays: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Inverse of ``without_arrays(preprocess, file=…)``: the arrays put back as the lists a fit makes (float32
    values, so exactly), the ``file`` key that named them removed."""
    record = {k: v for k, v in preprocess["whiten"].items() if k != "file"}
    return {**preprocess, "whiten": {**record, **{key: arrays[key].tolist() for key in ARRAY_KEYS}}}


def arrays_bytes(arrays: dict[str, torch.Tensor]) -> bytes:
    """:func:`whitening_arrays` as a safetensors file's bytes (a format that never executes code on load)."""
    return safetensors.torch.save(arrays)


def read_arrays(path: Path) -> dict[str, torch.Tensor]:
    """The arrays :func:`arrays_bytes` wrote to ``path``; a missing, damaged or foreign file is an error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it holds the run's whitening (mean and matrix)")
    try:
        arrays = safetensors.torch.load_file(path)
    except (OSError, safetensors.SafetensorError) as err:
        raise ValueError(f"{path} is not the safetensors file trainlab wrote ({err})") from None
    if set(arrays) != set(ARRAY_KEYS):
        raise ValueError(f"{path} holds {sorted(arrays)}, not whitening's {list(ARRAY_KEYS)}")
    return arrays


class Whitening:
    """A whitening record as a callable on batches ``(N, ...)``: flatten, ``(x - mean) @ matrix``, reshape back."""

    def __init__(self, record: WhitenRecord):
        self.mean = torch.tensor(record["mean"], dtype=torch.float32)
        self.matrix = torch.tensor(record["matrix"], dtype=torch.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.float().flatten(1)
        if flat.shape[1] != len(self.mean):
            raise ValueError(f"whitening was fitted on {len(self.mean)} features but the input has {flat.shape[1]}")
        mean, matrix = self.mean.to(x.device), self.matrix.to(x.device)
        return ((flat - mean) @ matrix).view(x.shape)


def check_flip(preprocess: Any, flip: bool) -> None:
    """Refuse flip test-time augmentation on PCA-whitened inputs.

    Flip TTA mirrors the model's input left to right.  ZCA-whitened images keep their pixels in place, so a mirror
    is still a mirror; PCA-whitened ones hold principal components laid out in the image's shape, which have no left
    and right — averaging with the "mirror" would average with noise.
    """
    whiten = preprocess.get("whiten") if isinstance(preprocess, dict) else None
    if flip and isinstance(whiten, dict) and whiten.get("method") == "pca":
        raise ValueError("flip test-time augmentation (train.tta_flip or --tta) mirrors the input images, but "
                         "data.whiten=pca turns each image into principal components, which have no left and right; "
                         "use data.whiten=zca (it keeps pixels in place) or leave the flip out")
