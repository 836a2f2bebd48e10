"""Prediction and ``trainlab eval`` apply flip test-time augmentation exactly as the run's test metrics did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trainlab
from trainlab.data.images import load_images
from trainlab.data.loaders import BatchTransform


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> trainlab.Run:
    out = tmp_path_factory.mktemp("runs")
    return trainlab.train("mlp", "digits", 2, out=out, name="tta",
                          overrides={"train.tta_flip": True, "train.ema": 0.9, "train.device": "cpu",
                                     "callbacks.progress.style": "none", "callbacks.plot_curves": None})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A few digits as gray PNGs (asymmetric shapes, so a mirror changes the logits)."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, image in enumerate(load_digits().images[:6]):
        paths.append(folder / f"{i}.png")
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(paths[-1])
    return paths


def expected_probabilities(run: trainlab.Run, paths: list[Path], flip: bool) -> torch.Tensor:
    """Softmax of the model's logits (the mean over the image and its mirror when ``flip``), computed by hand."""
    preprocess = run.meta.preprocess
    x = BatchTransform.from_preprocess(preprocess)(load_images(paths, preprocess))
    model = run.load_model()
    with torch.no_grad():
        logits = (model(x) + model(x.flip(-1))) / 2 if flip else model(x)
    return logits.softmax(dim=1)


def check(predictions: list, expected: torch.Tensor) -> None:
    top = expected.max(dim=1)
    assert [p.label for p in predictions] == [str(int(i)) for i in top.indices]
    assert [p.probability for p in predictions] == pytest.approx(top.values.tolist(), abs=1e-6)


def test_predict_averages_image_and_mirror_by_default_and_not_with_tta_off(run: trainlab.Run,
                                                                           images: list[Path]) -> None:
    flipped, plain = expected_probabilities(run, images, True), expected_probabilities(run, images, False)
    assert not torch.allclose(flipped.max(dim=1).values, plain.max(dim=1).values, atol=1e-4)  # the test has teeth
    check(run.predict(images), flipped)
    check(run.predict(images, tta=False), plain)


def test_predict_cli_tta_flags(run: trainlab.Run, images: list[Path], run_cli) -> None:
    for flags, flip in (((), True), (("--no-tta",), False), (("--tta",), True)):
        code, out, _ = run_cli("predict", run.path, *images, "--json", *flags)
        assert code == 0
        probabilities = [json.loads(line)["probability"] for line in out.strip().splitlines()]
        assert probabilities == pytest.approx(expected_probabilities(run, images, flip).max(dim=1).values.tolist(),
                                              abs=1e-6), flags


def test_eval_matches_the_reported_test_metrics_with_tta(run: trainlab.Run, run_cli) -> None:
    reported = run.summary["test"]
    assert run.evaluate("test", device="cpu") == pytest.approx(reported, abs=1e-9)
    assert run.evaluate("test", device="cpu", tta=False)["test_loss"] != pytest.approx(reported["test_loss"])
    code, out, _ = run_cli("eval", run.path, "--device", "cpu")
    assert code == 0 and f"test_acc {reported['test_acc']:.2%}" in out


def test_flip_tta_with_pca_whitening_is_refused_before_anything_is_written(run_cli, tmp_path: Path) -> None:
    """PCA-whitened inputs are principal components in the image's shape: no left and right to mirror."""
    code, _, err = run_cli("train", "--model", "mlp", "--epochs", "1", "--out", tmp_path / "runs", "--set",
                           "data.whiten=pca", "--set", "train.tta_flip=true", "--set", "callbacks.progress.style=none")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "flip test-time augmentation (train.tta_flip or --tta) mirrors the input images, but data.whiten=pca" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_predict_with_tta_on_a_pca_run_is_refused_and_zca_is_allowed(run_cli, tmp_path: Path, images) -> None:
    runs = {}
    for method in ("pca", "zca"):
        runs[method] = trainlab.train("mlp", "digits", 1, out=tmp_path, name=method,
                                      overrides={"data.whiten": method, "callbacks.progress.style": "none",
                                                 "callbacks.plot_curves": None})
    code, out, err = run_cli("predict", runs["pca"].path, str(images[0]), "--tta")
    assert code == 2 and out == "" and "data.whiten=pca turns each image into principal components" in err
    assert run_cli("predict", runs["pca"].path, str(images[0]))[0] == 0  # without the flip it predicts
    code, out, err = run_cli("predict", runs["zca"].path, str(images[0]), "--tta")
    assert code == 0, err
