"""K-fold on digits and on a synthetic regression: sub-runs, tables, out-of-fold predictions, the fold ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.experiments.conftest import tiny_config
from trainlab import load_run
from trainlab.data.loaders import BatchTransform
from trainlab.experiments.kfold import KFoldResult, run_kfold
from trainlab.run import KFoldRun


@pytest.fixture(scope="module")
def kfold_digits(tmp_path_factory: pytest.TempPathFactory) -> KFoldResult:
    out = tmp_path_factory.mktemp("kfold")
    # lr 0.03 (not the default 1e-3) so one epoch of 10 steps per fold learns something: the ensemble's test
    # accuracy (0.43 with this seed) is then well above chance, which test_table_mean_and_std_match_the_folds checks
    return run_kfold(tiny_config(out, **{"train.name": "cv", "optim.lr": 0.03}), 3)


def test_every_fold_is_a_run_and_the_folds_cover_the_pool(kfold_digits: KFoldResult) -> None:
    root = kfold_digits.path
    assert root.name == "cv"
    val_parts = []
    for i in (1, 2, 3):
        fold = root / f"fold-{i}"
        assert (fold / "config.yaml").is_file() and (fold / "report.html").is_file()
        assert json.loads((fold / "summary.json").read_text())["status"] == "completed"
        val_parts.append(json.loads((fold / "fold.json").read_text())["val_indices"])
    flat = [i for part in val_parts for i in part]
    assert len(flat) == len(set(flat))
    oof = pd.read_csv(root / "oof.csv")
    assert sorted(oof["index"]) == sorted(flat) == list(range(len(flat)))
    assert {"fold", "target", "prediction", "correct", "prob_0", "prob_9"} <= set(oof.columns)
    probs = oof[[f"prob_{c}" for c in range(10)]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_table_mean_and_std_match_the_folds(kfold_digits: KFoldResult) -> None:
    table = pd.read_csv(kfold_digits.path / "folds.csv")
    assert table["fold"].tolist() == [1, 2, 3] and (table["status"] == "completed").all()
    summary = json.loads((kfold_digits.path / "summary.json").read_text())
    assert summary["kind"] == "kfold" and summary["status"] == "completed"
    for key in ("val_acc", "val_loss", "test_acc"):
        assert summary["mean"][key] == pytest.approx(table[key].mean())
        assert summary["std"][key] == pytest.approx(table[key].std(ddof=1))
    assert summary["test"]["test_acc"] > 0.3  # the fold ensemble learned: chance on 10 digit classes is 0.1


def test_fold_ensemble_averages_probabilities(kfold_digits: KFoldResult) -> None:
    ensemble = load_run(kfold_digits.path)
    assert isinstance(ensemble, KFoldRun) and len(ensemble.folds) == 3
    x = BatchTransform.from_preprocess(ensemble.meta.preprocess)(torch.randint(0, 17, (5, 1, 8, 8)))
    expected = torch.stack([f.load_model()(x).softmax(dim=1) for f in ensemble.folds]).mean(dim=0)
    torch.testing.assert_close(ensemble.predict_outputs(x), expected.detach())


def test_fold_ensemble_flip_averages_each_fold_when_asked(kfold_digits: KFoldResult) -> None:
    ensemble = load_run(kfold_digits.path)
    assert not ensemble.config.train.tta_flip  # so the default is plain, and tta=True forces the averaging
    x = BatchTransform.from_preprocess(ensemble.meta.preprocess)(torch.randint(0, 17, (5, 1, 8, 8)))
    with torch.no_grad():
        expected = torch.stack([((m(x) + m(x.flip(-1))) / 2).softmax(dim=1)
                                for m in (f.load_model() for f in ensemble.folds)]).mean(dim=0)
    torch.testing.assert_close(ensemble.predict_outputs(x, tta=True), expected)
    flipped = ensemble.evaluate("test", device="cpu", tta=True)
    assert flipped["test_loss"] != pytest.approx(ensemble.evaluate("test", device="cpu")["test_loss"])


def test_ensemble_evaluate_matches_the_summary(kfold_digits: KFoldResult) -> None:
    metrics = KFoldRun(kfold_digits.path).evaluate("test", device="cpu")
    summary = json.loads((kfold_digits.path / "summary.json").read_text())
    assert metrics == pytest.approx(summary["test"])


def test_predict_cli_uses_the_ensemble(kfold_digits: KFoldResult, run_cli, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.fromarray((np.eye(8) * 255).astype("uint8")).save(image)
    code, out, _ = run_cli("predict", kfold_digits.path, image, "--json")
    assert code == 0
    row = json.loads(out)
    probs = KFoldRun(kfold_digits.path).predict([image])[0]
    assert row["label"] == probs.label and row["probability"] == pytest.approx(probs.probability)


def test_report_of_the_kfold_directory_lists_the_folds(kfold_digits: KFoldResult) -> None:
    text = (kfold_digits.path / "report.html").read_text()
    assert 'id="folds"' in text and 'href="fold-3/report.html"' in text


def test_regression_kfold_uses_plain_folds(tmp_path: Path, regression_data: str) -> None:
    result = run_kfold(tiny_config(tmp_path, **{"data.name": regression_data}), 2)
    oof = pd.read_csv(result.path / "oof.csv")
    assert len(oof) == 200 and sorted(oof["index"]) == list(range(200))
    assert not any(c.startswith("prob_") for c in oof.columns)
    assert set(result.mean) >= {"val_rmse", "val_loss", "test_rmse"}
    summary = json.loads((result.path / "summary.json").read_text())
    assert summary["task"] == "regression" and "test_rmse" in summary["test"]


def test_out_of_fold_predictions_are_flip_averaged_like_the_folds_validation(tmp_path: Path) -> None:
    from trainlab.experiments.folds import pooled
    from trainlab.session import build_data

    result = run_kfold(tiny_config(tmp_path, **{"train.name": "tta", "train.tta_flip": True}), 2)
    ensemble = KFoldRun(result.path)
    oof = pd.read_csv(result.path / "oof.csv")
    fold = ensemble.folds[0]
    val_idx = json.loads((result.path / "fold-1" / "fold.json").read_text())["val_indices"][:6]
    pool = pooled(build_data(ensemble.config))
    images = torch.stack([torch.as_tensor(pool[i][0]) for i in val_idx])
    x = BatchTransform.from_preprocess(ensemble.meta.preprocess)(images)
    model = fold.load_model().eval()
    with torch.no_grad():
        expected = ((model(x) + model(x.flip(-1))) / 2).softmax(dim=1)
    rows = oof.set_index("index").loc[val_idx, [f"prob_{c}" for c in range(10)]].to_numpy()
    np.testing.assert_allclose(rows, expected.numpy(), atol=1e-5)
