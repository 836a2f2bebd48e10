"""Fold splits for any registered dataset: merge train and validation, then split with scikit-learn, seeded."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset, TensorDataset

from trainlab.data.bundle import DataBundle


def pooled(bundle: DataBundle) -> Dataset:
    """Train and validation together: k-fold re-splits everything that is not the held-out test set.  In-memory
    splits stay one dataset of the train split's class (a ``TokenDataset`` keeps its ids integers)."""
    if bundle.val is None:
        return bundle.train
    if isinstance(bundle.train, TensorDataset) and isinstance(bundle.val, TensorDataset):
        merged = [torch.cat([a, b]) for a, b in zip(bundle.train.tensors, bundle.val.tensors)]
        return _with_tensors(bundle.train, merged)
    return ConcatDataset([bundle.train, bundle.val])


def targets_of(dataset: Dataset) -> np.ndarray:
    """Every target of a dataset (read from the tensors when in memory, else one item at a time)."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].cpu().numpy()
    return np.asarray([float(item[1]) if torch.is_tensor(item[1]) and item[1].is_floating_point() else int(item[1])
                       for item in (dataset[i] for i in range(len(dataset)))])  # type: ignore[arg-type]


def subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    """The examples at ``indices``; in-memory data stays a TensorDataset of its own class, so the device loader
    still applies, with the class's batching (token ids stay integers)."""
    if isinstance(dataset, TensorDataset):
        index = torch.as_tensor(indices, dtype=torch.long)
        return _with_tensors(dataset, [t[index] for t in dataset.tensors])
    return Subset(dataset, indices.tolist())


def _with_tensors(dataset: TensorDataset, tensors: list[torch.Tensor]) -> TensorDataset:
    """A copy of ``dataset`` (its class and attributes, e.g. a ``TokenDataset``'s batching) holding ``tensors``;
    copied rather than rebuilt, since a subclass's constructor may take other arguments."""
    clone = copy.copy(dataset)
    clone.tensors = tuple(tensors)
    return clone


def fold_indices(targets: np.ndarray, folds: int, seed: int, stratify: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, val)`` index pairs; the validation parts are disjoint and together cover every example.

    Classification uses ``StratifiedKFold`` so each fold keeps the class proportions; regression ``KFold``.
    Both shuffle with ``seed``.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    if folds > len(targets):
        raise ValueError(f"--folds {folds} is more than the {len(targets)} examples available")
    if stratify:
        _, counts = np.unique(targets, return_counts=True)
        if counts.min() < folds:
            raise ValueError(f"the rarest class has only {counts.min()} examples, fewer than --folds {folds}; "
                             "use fewer folds")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(np.zeros(len(targets)), targets)]


@dataclass
class FoldSplit:
    """The folds of one dataset: each fold's bundle, its validation indices into the pool, a fingerprint, and
    whether the folds keep the class proportions."""

    bundles: list[DataBundle]
    val_parts: list[np.ndarray]
    fingerprint: str
    stratified: bool


def split_folds(bundle: DataBundle, folds: int, seed: int) -> FoldSplit:
    """One bundle per fold (the fold's train and val, the original test) and what identifies the split.

    Passages with one label each (``austen-novels``) split like table rows, translation pairs too (unstratified:
    a target sequence is no class); a token stream (language models) does not."""
    if bundle.meta.text_task == "lm":
        raise ValueError("k-fold re-splits images, table rows, labelled passages and translation pairs; this text "
                         "dataset holds one stream of tokens, read in windows, which it cannot split yet: train it "
                         "with `trainlab train`, which holds out data.val_fraction")
    pool = pooled(bundle)
    targets = targets_of(pool)
    stratify = bundle.meta.task == "classification" and targets.ndim == 1  # not target sequences
    splits = fold_indices(targets, folds, seed, stratify=stratify)
    bundles = [DataBundle(train=subset(pool, tr), val=subset(pool, va), test=bundle.test, meta=bundle.meta)
               for tr, va in splits]
    val_parts = [va for _, va in splits]
    return FoldSplit(bundles, val_parts, split_fingerprint(targets, val_parts), stratify)


def fold_bundles(bundle: DataBundle, folds: int, seed: int) -> tuple[list[DataBundle], list[np.ndarray]]:
    """One bundle per fold and each fold's validation indices (:func:`split_folds` without the fingerprint)."""
    split = split_folds(bundle, folds, seed)
    return split.bundles, split.val_parts


def split_fingerprint(targets: np.ndarray, val_parts: Sequence[np.ndarray]) -> str:
    """sha256 of the pooled targets and of which indices each fold holds out.

    A resumed k-fold run must train its remaining folds on exactly the split its finished folds used; this
    changes when the seed, the number of folds, the dataset's size or its labels change.
    """
    digest = hashlib.sha256(np.ascontiguousarray(targets, dtype=np.float64).tobytes())
    for part in val_parts:
        digest.update(b"|" + np.ascontiguousarray(part, dtype=np.int64).tobytes())
    return digest.hexdigest()
