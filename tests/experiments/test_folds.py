"""Fold splits: disjoint, covering, stratified, seeded; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from trainlab import data as data_mod
from trainlab.experiments.folds import fold_bundles, fold_indices, pooled, subset, targets_of


@pytest.mark.parametrize("stratify", [True, False])
def test_folds_are_disjoint_and_cover_the_data(stratify: bool) -> None:
    targets = np.repeat(np.arange(4), 25)
    splits = fold_indices(targets, 5, seed=0, stratify=stratify)
    vals = np.concatenate([va for _, va in splits])
    assert sorted(vals.tolist()) == list(range(100))
    for train, val in splits:
        assert not set(train) & set(val)
        assert len(train) + len(val) == 100


def test_stratified_folds_keep_class_proportions() -> None:
    targets = np.array([0] * 60 + [1] * 30 + [2] * 10)
    for _, val in fold_indices(targets, 5, seed=3, stratify=True):
        assert np.bincount(targets[val]).tolist() == [12, 6, 2]


def test_fold_split_is_seeded() -> None:
    targets = np.arange(40) % 2
    first = fold_indices(targets, 4, seed=1, stratify=True)
    again = fold_indices(targets, 4, seed=1, stratify=True)
    other = fold_indices(targets, 4, seed=2, stratify=True)
    assert all((a[1] == b[1]).all() for a, b in zip(first, again))
    assert any((a[1] != b[1]).any() for a, b in zip(first, other))


@pytest.mark.parametrize("folds, message", [(1, "at least 2"), (200, "more than")])
def test_bad_fold_counts_are_explained(folds: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fold_indices(np.arange(100) % 2, folds, seed=0, stratify=False)


def test_rare_class_names_the_problem() -> None:
    with pytest.raises(ValueError, match="rarest class has only 2"):
        fold_indices(np.array([0] * 20 + [1] * 2), 3, seed=0, stratify=True)


def test_fold_bundles_pool_train_and_val_of_digits() -> None:
    bundle = data_mod.build("digits", seed=0, val_fraction=0.1)
    n = len(bundle.train) + len(bundle.val)
    bundles, vals = fold_bundles(bundle, 3, seed=0)
    assert sorted(np.concatenate(vals).tolist()) == list(range(n))
    for fold in bundles:
        assert isinstance(fold.train, TensorDataset) and len(fold.train) + len(fold.val) == n
        assert fold.test is bundle.test
    pool_targets = targets_of(pooled(bundle))
    assert (targets_of(bundles[0].val) == pool_targets[vals[0]]).all()


def test_generic_datasets_use_subsets() -> None:
    data = Subset(TensorDataset(torch.arange(10.0), torch.arange(10) % 2), list(range(10)))
    assert targets_of(data).tolist() == [0, 1] * 5
    part = subset(data, np.array([1, 3]))
    assert isinstance(part, Subset) and [int(part[i][1]) for i in range(2)] == [1, 1]


def test_split_folds_stratifies_classification_bundles() -> None:
    """k-fold itself (split_folds), not only fold_indices: every fold keeps the pool's 60/30/10 class mix."""
    from trainlab.data.bundle import DataBundle, DataMeta
    from trainlab.experiments.folds import split_folds

    rng = np.random.default_rng(0)
    targets = rng.permutation(np.array([0] * 60 + [1] * 30 + [2] * 10))  # interleaved, so order cannot stratify
    x = torch.arange(100.0)[:, None]
    y = torch.as_tensor(targets)
    bundle = DataBundle(train=TensorDataset(x[:80], y[:80]), val=TensorDataset(x[80:], y[80:]), test=None,
                        meta=DataMeta(task="classification", input_shape=(1,), num_classes=3))
    split = split_folds(bundle, 5, seed=3)
    for fold, val_idx in zip(split.bundles, split.val_parts):
        assert np.bincount(targets_of(fold.val), minlength=3).tolist() == [12, 6, 2]
        assert np.bincount(targets_of(fold.train), minlength=3).tolist() == [48, 24, 8]
        assert (targets_of(fold.val) == targets[val_idx]).all()


class _Labelled(TensorDataset):
    """A user's in-memory dataset whose constructor takes something other than the tensors."""

    def __init__(self, size: int, offset: int) -> None:
        super().__init__(torch.arange(size).float().unsqueeze(1) + offset, torch.arange(size) % 2)
        self.offset = offset


def test_pooled_and_fold_subsets_keep_a_tensor_datasets_own_class_and_attributes() -> None:
    """Rebuilt as plain TensorDatasets, a subclass lost its batching (token ids became floats); rebuilt through
    its own constructor, one taking other arguments would fail."""
    bundle = data_mod.DataBundle(train=_Labelled(6, 100), val=_Labelled(4, 200), test=None,
                                 meta=data_mod.DataMeta(task="classification", input_shape=(1,)))
    pool = pooled(bundle)
    assert type(pool) is _Labelled and pool.offset == 100 and len(pool) == 10
    assert pool.tensors[0][6:, 0].tolist() == [200.0, 201.0, 202.0, 203.0]
    part = subset(pool, np.array([9, 0]))
    assert type(part) is _Labelled and part.tensors[0][:, 0].tolist() == [203.0, 100.0]
    assert part.tensors[1].tolist() == [1, 0]
    assert len(bundle.train) == 6 and len(pool) == 10  # the originals are untouched
