"""K-fold on text: labelled passages (``austen-novels``) keep their token ids as integers, cover the pool, and the
fold ensemble classifies a passage with the mean of the fold models' probabilities; translation pairs
(``numbers-to-digits``) split unstratified, their out-of-fold rows are texts, and the ensemble is scored per step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_model_data_pairing import novels
from trainlab import config as config_mod
from trainlab.data import build
from trainlab.data.text import Vocabulary
from trainlab.data.text_classify import TokenDataset, passage_ids
from trainlab.experiments.folds import split_folds
from trainlab.experiments.kfold import KFoldResult, run_kfold
from trainlab.run import KFoldRun

PASSAGE = "It is a truth universally acknowledged, that a single man in possession of a good fortune"


@pytest.fixture(scope="module")
def kfold_novels(tmp_path_factory: pytest.TempPathFactory) -> KFoldResult:
    tmp = tmp_path_factory.mktemp("kfold-text")
    overrides = {**novels(tmp), "train.epochs": 1, "train.out": str(tmp / "runs"), "train.name": "cv"}
    return run_kfold(config_mod.load(overrides={k: v for k, v in overrides.items() if v is not None}), 3)


def test_folds_of_passages_keep_integer_ids_and_their_batching(tmp_path: Path) -> None:
    """Rebuilt as plain TensorDatasets, the passages were batched as floats and the embedding refused them."""
    options = {key.removeprefix("data."): value for key, value in novels(tmp_path).items()
               if key.startswith("data.") and key != "data.name"}
    bundle = build("austen-novels", seed=0, val_fraction=0.2, **options)
    split = split_folds(bundle, 3, seed=0)
    pool = len(bundle.train) + len(bundle.val)
    assert sorted(np.concatenate(split.val_parts).tolist()) == list(range(pool))
    for fold in split.bundles:
        for part in (fold.train, fold.val):
            assert type(part) is TokenDataset and part.tensors[0].dtype == torch.long
        assert len(fold.train) + len(fold.val) == pool
        loader = fold.train.make_loader(batch_size=4, device=torch.device("cpu"), shuffle=False, seed=0)
        x, _ = next(iter(loader.epoch(0)))
        assert x.dtype == torch.long


def test_every_fold_trains_and_the_out_of_fold_table_names_the_novels(kfold_novels: KFoldResult) -> None:
    root = kfold_novels.path
    for i in (1, 2, 3):
        assert json.loads((root / f"fold-{i}" / "summary.json").read_text())["status"] == "completed"
    classes = KFoldRun(root).meta.classes
    assert len(classes) == 6 and "pride-and-prejudice" in classes
    oof = pd.read_csv(root / "oof.csv")
    assert sorted(oof["index"]) == list(range(len(oof)))
    probs = oof[[f"prob_{name}" for name in classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert set(oof["prediction"]) <= set(classes)


def test_the_fold_ensemble_classifies_a_passage_with_the_mean_of_the_folds(kfold_novels: KFoldResult,
                                                                           run_cli) -> None:
    ensemble = KFoldRun(kfold_novels.path)
    x = passage_ids([PASSAGE], Vocabulary.from_record(ensemble.meta.preprocess))
    with torch.no_grad():
        mean = torch.stack([model.eval()(x).softmax(dim=1) for model in ensemble.load_models()]).mean(dim=0)[0]
    code, out, _ = run_cli("predict", kfold_novels.path, PASSAGE, "--json")
    assert code == 0
    row = json.loads(out)
    assert row["label"] == ensemble.meta.classes[int(mean.argmax())]
    assert row["probability"] == pytest.approx(float(mean.max()), rel=1e-5)


@pytest.fixture(scope="module")
def kfold_translation(tmp_path_factory: pytest.TempPathFactory) -> KFoldResult:
    tmp = tmp_path_factory.mktemp("kfold-seq2seq")
    cfg = config_mod.load(overrides={
        "model.name": "seq2seq", "data.name": "numbers-to-digits", "data.n": 300, "train.epochs": 2,
        "optim.name": "adam", "optim.lr": 0.01, "train.batch_size": 32, "callbacks.progress.style": "none",
        "train.out": str(tmp / "runs"), "train.name": "cv"})
    return run_kfold(cfg, 2)


def test_translation_pairs_split_plainly_and_oof_rows_are_texts_scored_like_val_exact(
        kfold_translation: KFoldResult) -> None:
    """Stratifying target sequences failed in scikit-learn; an out-of-fold row per pair could not hold a sequence,
    and the ensemble's loss compared (N, T, V) outputs with (N, T) labels."""
    root = kfold_translation.path
    assert json.loads((root / "kfold.json").read_text())["stratified"] is False
    oof = pd.read_csv(root / "oof.csv", dtype={"target": str, "prediction": str}, keep_default_na=False)
    assert list(oof.columns) == ["index", "fold", "target", "prediction", "correct"]
    assert sorted(oof["index"]) == list(range(len(oof)))
    assert oof["target"].str.fullmatch(r"\d+").all()  # digits, as the dataset spells numbers
    assert (oof["correct"] == (oof["target"] == oof["prediction"])).all()
    folds = pd.read_csv(root / "folds.csv")
    for fold, rows in oof.groupby("fold"):
        assert rows["correct"].mean() == pytest.approx(float(folds.loc[folds["fold"] == fold, "val_exact"].iloc[0]))


def test_translation_ensemble_loss_is_the_mean_over_target_steps(kfold_translation: KFoldResult) -> None:
    ensemble = KFoldRun(kfold_translation.path)
    bundle = build("numbers-to-digits", seed=ensemble.config.train.seed, **ensemble.config.data.options())
    x, y = bundle.test.tensors
    with torch.no_grad():
        mean = torch.stack([model.eval()(x).softmax(dim=-1) for model in ensemble.load_models()]).mean(dim=0)
    steps = y >= 0
    picked = mean.gather(-1, y.clamp_min(0).unsqueeze(-1)).squeeze(-1)[steps]
    metrics = ensemble.evaluate("test", device="cpu")
    assert metrics["test_loss"] == pytest.approx(float(-picked.clamp_min(1e-12).log().mean()), rel=1e-4)
    assert metrics == pytest.approx(json.loads((kfold_translation.path / "summary.json").read_text())["test"])


def test_the_fold_ensemble_exports_as_one_graph_answering_like_predict(kfold_novels: KFoldResult, run_cli,
                                                                       tmp_path: Path) -> None:
    from trainlab.export import export_run

    result = export_run(kfold_novels.path, "torch-export", tmp_path / "novels.pt2")
    assert result.check is not None and result.check.max_abs_diff < 1e-5
    metadata = json.loads(result.metadata_path.read_text())
    assert metadata["folds"] == 3 and metadata["in_graph"][-1] == "mean over the 3 fold models"
    width = metadata["input"]["shape"][1]
    with open(result.path, "rb") as handle:
        program = torch.export.load(handle).module()
    passage = PASSAGE[:width]
    with torch.no_grad():
        got = program(passage_ids([passage], Vocabulary.from_record(metadata["preprocess"]), length=width))[0]
    code, out, _ = run_cli("predict", kfold_novels.path, passage, "--json")
    row = json.loads(out)
    assert code == 0 and metadata["classes"][int(got.argmax())] == row["label"]
    assert float(got.max()) == pytest.approx(row["probability"], rel=1e-5)
