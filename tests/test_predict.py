"""Predict on image files of any size and mode, preprocessed the way the digits were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainlab
from trainlab.data.images import InputError


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> trainlab.Run:
    out = tmp_path_factory.mktemp("runs")
    return trainlab.train(epochs=6, out=out, name="digits", overrides={"callbacks.progress.style": "none"})


def digit_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Test-split digits as 0..255 arrays (ink bright on dark, like the training data)."""
    from sklearn.datasets import load_digits

    from trainlab.data.bundle import stratified_split

    raw = load_digits()
    _, test = stratified_split(raw.target, 0.2, 0)
    pick = test[:count]
    return (raw.images[pick] * 255 / 16).astype(np.uint8), raw.target[pick]


def save_variant(array: np.ndarray, path: Path, variant: str) -> Path:
    """Write one digit as a PNG in a given mode and an odd size; 'paper' variants are dark ink on white."""
    size = {"gray": (13, 17), "rgb": (31, 29), "rgba": (64, 64), "paper": (45, 40), "palette": (23, 23),
            "gray16": (19, 21)}[variant]
    image = Image.fromarray(array).resize(size, Image.Resampling.NEAREST)
    if variant == "rgb":
        image = image.convert("RGB")
    elif variant == "rgba":
        rgba = Image.merge("RGBA", [Image.new("L", size, 0)] * 3 + [image])  # black ink, alpha = ink
        image = rgba  # transparent background, composited on white → dark ink on paper
    elif variant == "paper":
        image = Image.fromarray(255 - np.asarray(image)).convert("RGB")
    elif variant == "palette":
        image = image.convert("RGB").convert("P")
    elif variant == "gray16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    image.save(path)
    return path


@pytest.mark.parametrize("variant", ["gray", "rgb", "rgba", "paper", "palette", "gray16"])
def test_predicts_digits_in_any_mode_and_size(run: trainlab.Run, tmp_path: Path, variant: str) -> None:
    arrays, labels = digit_images(40)
    paths = [save_variant(a, tmp_path / f"{i}.png", variant) for i, a in enumerate(arrays)]
    predictions = run.predict(paths)
    assert [p.path for p in predictions] == [str(p) for p in paths]
    assert all(0.0 < p.probability <= 1.0 for p in predictions)
    accuracy = np.mean([p.label == str(y) for p, y in zip(predictions, labels)])
    assert accuracy >= 0.85, f"{variant}: accuracy {accuracy:.2f}"


def test_predict_cli_prints_class_and_probability(run: trainlab.Run, tmp_path: Path, run_cli) -> None:
    arrays, labels = digit_images(2)
    paths = [save_variant(a, tmp_path / f"d{i}.png", "gray") for i, a in enumerate(arrays)]
    code, out, _ = run_cli("predict", run.path, *paths, "--json")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and '"label"' in lines[0] and '"probability"' in lines[0]


def test_unreadable_files_are_all_named(run: trainlab.Run, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as err:
        run.predict([text, empty])
    assert str(text) in str(err.value) and str(empty) in str(err.value)


def test_api_run_round_trip(run: trainlab.Run) -> None:
    again = trainlab.load_run(run.path)
    assert list(again.history["epoch"]) == [1, 2, 3, 4, 5, 6]
    metrics = again.evaluate()
    assert metrics["test_acc"] == pytest.approx(run.summary["test"]["test_acc"])
    assert metrics["test_acc"] >= 0.9
