"""resize, center_crop and normalize: batched equal to torchvision's per-image versions, validated options, and the
data.augment rule that training batches end at the size evaluation and the model see."""

from __future__ import annotations

import pytest
import torch

from trainlab.config import ConfigError, load
from trainlab.data import transforms as T
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.data.sizing import resize_batch
from trainlab.registry import AUGMENTATIONS


def _images(n: int = 6, c: int = 3, h: int = 9, w: int = 11) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_the_new_transforms_are_registered() -> None:
    assert {"resize", "center_crop", "normalize"} <= set(AUGMENTATIONS.names())
    assert AUGMENTATIONS.get("resize") is T.Resize and AUGMENTATIONS.get("center_crop") is T.CenterCrop


@pytest.mark.parametrize("size", [(18, 22), (5, 4), (9, 11), 7])
def test_batched_resize_matches_torchvision_per_image(size: object) -> None:
    from torchvision.transforms import v2

    x = _images()
    transform = T.Resize(size=size)  # type: ignore[arg-type]
    out = transform.batch(x, T.batch_generator(0, 0, 0))
    pair = (size, size) if isinstance(size, int) else size
    assert out.shape == (6, 3, *pair) and out.dtype == torch.uint8
    per_image = torch.stack([transform.v2(tuple(x.shape[1:]))(image) for image in x])
    reference = torch.stack([v2.Resize(list(pair), antialias=True)(image) for image in x])
    assert torch.equal(per_image, reference)
    assert int((out.int() - per_image.int()).abs().max()) <= 1  # uint8 rounding may differ by one level


@pytest.mark.parametrize("size", [(5, 7), (9, 11), (4, 4), 3])
def test_batched_center_crop_equals_torchvision(size: object) -> None:
    from torchvision.transforms import v2

    x = _images()
    pair = [size, size] if isinstance(size, int) else list(size)  # type: ignore[arg-type]
    out = T.CenterCrop(size=size).batch(x, T.batch_generator(0, 0, 0))  # type: ignore[arg-type]
    assert torch.equal(out, torch.stack([v2.CenterCrop(pair)(image) for image in x]))
    assert torch.equal(T.CenterCrop(size=size).v2((3, 9, 11))(x[0]), out[0])  # type: ignore[arg-type]


def test_normalize_equals_torchvision_and_bare_name_is_a_no_op() -> None:
    from torchvision.transforms import v2

    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    norm = T.Normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    expected = torch.stack([v2.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.5])(image) for image in x])
    torch.testing.assert_close(norm.batch(x, T.batch_generator(0, 0, 0)), expected)
    torch.testing.assert_close(torch.stack([norm.v2((3, 5, 5))(image) for image in x]), expected)
    assert torch.equal(T.Normalize().batch(x, T.batch_generator(0, 0, 0)), x)
    aug = T.Augmentation(["normalize"], (3, 5, 5))
    assert torch.equal(aug.before_normalize(x, T.batch_generator(0, 0, 0)), x)


def test_a_zoom_runs_batched_and_per_image_at_the_dataset_size() -> None:
    x = _images(c=1, h=8, w=8)
    zoom = T.Augmentation([{"center_crop": {"size": 6}}, "resize"], (1, 8, 8))  # resize: back to the dataset size
    assert not zoom.per_sample
    out = zoom.before_normalize(x, T.batch_generator(0, 0, 0))
    assert out.shape == x.shape and torch.equal(out, resize_batch(x[..., 1:7, 1:7], (8, 8)))
    per_image = T.Augmentation([{"resize": {"size": [12, 12]}}, "center_crop", "rotation"], (1, 8, 8))
    assert per_image.per_sample == ["rotation"]
    torch.manual_seed(0)
    assert per_image.v2_pipeline()(x[0]).shape == (1, 8, 8)


def test_training_loader_with_resize_and_crop_keeps_the_model_size() -> None:
    from torch.utils.data import TensorDataset

    data = TensorDataset(_images(n=10, c=1, h=8, w=8), torch.arange(10) % 2)
    loader = make_loader(data, batch_size=5, device=torch.device("cpu"), transform=BatchTransform(1 / 255),
                         shuffle=True, augment=[{"resize": {"size": 10}}, {"center_crop": {"size": 8}}])
    batches = [x for x, _ in loader.epoch(0)]
    assert [tuple(x.shape) for x in batches] == [(5, 1, 8, 8)] * 2 and batches[0].dtype == torch.float32


@pytest.mark.parametrize("spec, message", [
    ([{"resize": {"size": 0}}], "resize: size must be N or [height, width]"),
    ([{"resize": {"size": [4, 4, 4]}}], "resize: size must be N or [height, width]"),
    ([{"center_crop": {"size": -2}}], "center_crop: size must be"),
    ([{"resize": {"scale": 2}}], "options: size"),
    ([{"normalize": {"mean": [0.5, 0.5], "std": [0.5]}}], "one value per channel"),
    ([{"normalize": {"mean": [0.5]}}], "give both mean and std"),
    ([{"normalize": {"mean": [0.5], "std": [0.0]}}], "std must be > 0"),
])
def test_bad_options_fail_in_config(spec: list, message: str) -> None:
    with pytest.raises(ConfigError, match="data.augment") as err:
        load(None, overrides={"data": {"augment": spec}})
    assert message in str(err.value)


@pytest.mark.parametrize("spec, message", [
    ([{"resize": {"size": 12}}], "leaves training images at 1x12x12"),
    ([{"center_crop": {"size": 6}}], "leaves training images at 1x6x6"),
    ([{"center_crop": {"size": 10}}], "center_crop: size [10, 10] is larger than the 8x8 images"),
    ([{"normalize": {"mean": [0.5], "std": [0.5]}}], "set data.normalize="),
])
def test_pipelines_that_would_not_fit_the_model_are_refused(spec: list, message: str) -> None:
    with pytest.raises(ValueError, match="data.augment|center_crop|normalize") as err:
        T.Augmentation(spec, (1, 8, 8))
    assert message in str(err.value)
