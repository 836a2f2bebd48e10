"""data.size and data.normalize on every image dataset: recorded in data.json, applied per batch, and by predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import TINY
from tests.data.files import write_cifar, write_idx_dataset, write_image_folder, write_mnist_csv
from trainlab.data import build, embedded
from trainlab.data.image_options import IMAGENET_MEAN, IMAGENET_STD
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.registry import DATASETS

DIGITS_MEAN, DIGITS_STD = [0.3047], [0.3764]


@pytest.fixture
def image_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """Options that build each image dataset from tiny files in its real on-disk format."""
    write_idx_dataset(tmp_path / "idx", n_train=40, n_test=20, size=6)
    write_cifar(tmp_path / "cifar" / "cifar-10-batches-py", per_batch=4)
    write_image_folder(tmp_path / "folder")
    mnist5k = tmp_path / "mnist_5k.csv.gz"
    write_mnist_csv(mnist5k, per_class=3)
    monkeypatch.setattr(embedded, "mnist5k_file", lambda: mnist5k)
    return {"digits": {}, "mnist-5k": {}, "mnist": {"root": str(tmp_path / "idx")},
            "fashion-mnist": {"root": str(tmp_path / "idx")}, "cifar10": {"root": str(tmp_path / "cifar")},
            "imagefolder": {"root": str(tmp_path / "folder"), "size": [5, 6]}}


def image_datasets() -> list[str]:
    """Every registered dataset whose builder takes data.normalize: the image datasets."""
    from trainlab.registry import builder_params

    return sorted(name for name in DATASETS.names() if "normalize" in builder_params(DATASETS.get(name)))


def test_every_image_dataset_takes_size_and_normalize() -> None:
    assert image_datasets() == ["cifar10", "digits", "fashion-mnist", "imagefolder", "mnist", "mnist-5k"]


@pytest.mark.parametrize("name", image_datasets())
def test_size_and_normalize_on_every_image_dataset(name: str, image_sources: dict[str, dict]) -> None:
    options = image_sources[name]
    plain = build(name, **options)
    channels = plain.meta.in_channels
    stats = {"mean": [0.5] * channels, "std": [0.25] * channels}
    bundle = build(name, **{**options, "size": [10, 12]}, normalize=stats)
    assert bundle.meta.input_shape == (channels, 10, 12)
    assert bundle.meta.preprocess["mean"] == stats["mean"] and bundle.meta.preprocess["std"] == stats["std"]
    raw = bundle.train.tensors[0][:4]
    loader = make_loader(bundle.train, batch_size=4, device=torch.device("cpu"),
                         transform=BatchTransform.from_preprocess(bundle.meta.preprocess))
    x, _ = next(iter(loader.epoch(0)))
    assert x.shape == (4, channels, 10, 12)
    scaled = raw.float() * bundle.meta.preprocess["scale"]
    if name == "imagefolder":  # files are resized once, as they are read: stored at the model's size
        assert raw.shape[-2:] == (10, 12) and bundle.meta.preprocess["resize"] is None
        expected = (scaled - 0.5) / 0.25
    else:  # stored at their own size, resized per batch on the device
        assert raw.shape[-2:] == plain.meta.input_shape[1:] and bundle.meta.preprocess["resize"] == [10, 12]
        shrink = raw.shape[-1] > 12  # CIFAR's 32x32: antialiased, as torchvision's Resize
        resized = F.interpolate(scaled, size=(10, 12), mode="bilinear", align_corners=False, antialias=shrink)
        expected = (resized - 0.5) / 0.25
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize("normalize, mean, std", [
    ("dataset", DIGITS_MEAN, DIGITS_STD), ("none", [0.0], [1.0]), ({"mean": [0.5], "std": [0.5]}, [0.5], [0.5]),
    ({"mean": 0.1, "std": 0.2}, [0.1], [0.2]),
])
def test_normalize_choices_on_gray_digits(normalize: object, mean: list, std: list) -> None:
    preprocess = build("digits", normalize=normalize).meta.preprocess
    assert preprocess["mean"] == pytest.approx(mean) and preprocess["std"] == pytest.approx(std)


def test_imagenet_statistics_on_rgb_images(image_sources: dict[str, dict]) -> None:
    preprocess = build("cifar10", **image_sources["cifar10"], normalize="imagenet").meta.preprocess
    assert preprocess["mean"] == list(IMAGENET_MEAN) and preprocess["std"] == list(IMAGENET_STD)


def test_single_int_size_is_a_square_and_the_default_keeps_the_size() -> None:
    assert build("digits", size=20).meta.input_shape == (1, 20, 20)
    plain = build("digits").meta
    assert plain.input_shape == (1, 8, 8) and plain.preprocess["resize"] is None


@pytest.fixture(scope="module")
def resized_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny digits run at 12x12 with given statistics, trained through the CLI with one flag each."""
    from trainlab.cli import main

    out = tmp_path_factory.mktemp("runs")
    code = main(["train", "--data", "digits", "--model", "mlp", *TINY, "--out", str(out), "--name", "big",
                 "--set", "data.size=12", "--set", "data.normalize={mean: [0.5], std: [0.5]}"])
    assert code == 0
    return out / "big"


def test_size_and_normalize_are_saved_in_data_json(resized_run: Path) -> None:
    saved = json.loads((resized_run / "data.json").read_text())
    assert saved["input_shape"] == [1, 12, 12]
    assert saved["preprocess"]["size"] == [8, 8] and saved["preprocess"]["resize"] == [12, 12]
    assert saved["preprocess"]["mean"] == [0.5] and saved["preprocess"]["std"] == [0.5]


def test_predict_on_a_raw_image_does_what_training_did(resized_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    from trainlab.api import load_run

    bundle = build("digits", size=12, normalize={"mean": [0.5], "std": [0.5]})
    images, _ = bundle.test.tensors
    paths = []
    for i in range(3):  # the stored 0..16 digits as the 0..255 image files a user would have
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(np.rint(images[i, 0].numpy().astype(np.float64) * 255 / 16).astype(np.uint8), mode="L").save(path)
        paths.append(path)
    run = load_run(resized_run)
    predictions = run.predict(paths, tta=False)
    model = run.load_models()[0]
    with torch.no_grad():
        probs = model(BatchTransform.from_preprocess(bundle.meta.preprocess)(images[:3])).softmax(dim=1)
    assert [p.label for p in predictions] == [str(int(i)) for i in probs.argmax(dim=1)]
    assert [p.probability for p in predictions] == pytest.approx(probs.max(dim=1).values.tolist(), abs=1e-5)


@pytest.mark.parametrize("setting, key", [
    ("data.size=0", "data.size"), ("data.size=-3", "data.size"), ("data.size=[8, 8, 8]", "data.size"),
    ("data.normalize=imagenett", "data.normalize"), ("data.normalize=imagenet", "data.normalize"),
    ("data.normalize={mean: [0.5, 0.5], std: [0.5, 0.5]}", "data.normalize"),
    ("data.normalize={mean: [0.5], std: [0]}", "data.normalize"), ("data.normalize={mean: [0.5]}", "data.normalize"),
    ("data.normalize={mean: [a], std: [0.5]}", "data.normalize"),
])
def test_bad_size_or_normalize_is_one_error_naming_the_key(run_cli, tmp_path: Path, setting: str, key: str) -> None:
    code, out, err = run_cli("train", "--data", "digits", *TINY, "--out", tmp_path / "runs", "--set", setting)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and key in lines[0], err
    assert not (tmp_path / "runs").exists()


def test_shared_fashion_mnist_at_224_is_one_flag(shared_data: Path) -> None:
    """The curriculum's AlexNet/VGG/ResNet input: stored at 28x28 (60k images, 47 MB), resized per batch."""
    bundle = build("fashion-mnist", root=str(shared_data / "fashion-mnist"), size=224)
    assert bundle.meta.input_shape == (1, 224, 224) and bundle.train.tensors[0].shape[1:] == (1, 28, 28)
    loader = make_loader(bundle.train, batch_size=32, device=torch.device("cpu"),
                         transform=BatchTransform.from_preprocess(bundle.meta.preprocess), shuffle=True)
    x, _ = next(iter(loader.epoch(0)))
    assert x.shape == (32, 1, 224, 224) and abs(float(x.mean())) < 0.5
