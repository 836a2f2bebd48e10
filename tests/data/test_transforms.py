"""Augmentation specs and the batched device transforms: exact geometry, seeded randomness, clear errors."""

from __future__ import annotations

import pytest
import torch

from trainlab.config import ConfigError, load
from trainlab.data import transforms as T


def _batch(n: int = 16, c: int = 1, h: int = 6, w: int = 7) -> torch.Tensor:
    return torch.randint(1, 255, (n, c, h, w), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_flips_are_exact_mirrors_with_probability() -> None:
    x = _batch(200)
    out = T.HFlip(p=0.5).batch(x, T.batch_generator(0, 0, 0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 60 < int(flipped.sum()) < 140
    assert torch.equal(T.VFlip(p=1.0).batch(x, T.batch_generator(0, 0, 0)), x.flip(-2))
    assert torch.equal(T.HFlip(p=0.0).batch(x, T.batch_generator(0, 0, 0)), x)


def test_crop_is_a_shifted_window_of_the_zero_padded_image() -> None:
    x = _batch(32)
    assert torch.equal(T.Crop(padding=0).batch(x, T.batch_generator(0, 0, 0)), x)
    out = T.Crop(padding=2).batch(x, T.batch_generator(1, 2, 3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 7] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], win) for win in windows)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    shifted = T.Translate(max=0.34).batch(x, T.batch_generator(0, 0, 0))
    assert shifted.shape == x.shape and not torch.equal(shifted, x)


def test_erasing_sets_rectangles_to_value() -> None:
    x = torch.ones(64, 3, 10, 10)
    out = T.Erasing(p=1.0, value=0.0).batch(x, T.batch_generator(0, 0, 0))
    erased = (out == 0).all(dim=1)  # same rectangle in every channel
    assert bool(((out == 0) | (out == 1)).all())
    counts = erased.flatten(1).sum(1)
    assert bool((counts >= 1).all()) and float(counts.float().mean()) < 0.4 * 100
    rows, cols = erased.any(2), erased.any(1)
    assert bool((erased.flatten(1).sum(1) == rows.sum(1) * cols.sum(1)).all())  # a rectangle
    assert torch.equal(T.Erasing(p=0.0).batch(x, T.batch_generator(0, 0, 0)), x)


def test_batch_randomness_depends_only_on_seed_epoch_batch() -> None:
    aug = T.Augmentation(["hflip", {"crop": {"padding": 3}}], (1, 6, 7))
    x = _batch()
    first = aug.before_normalize(x, T.batch_generator(5, 1, 2))
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(first, aug.before_normalize(x, T.batch_generator(5, 1, 2)))
    assert not torch.equal(first, aug.before_normalize(x, T.batch_generator(5, 1, 3)))


@pytest.mark.parametrize("name", sorted(T.TRANSFORMS))
def test_every_transform_runs_on_its_path(name: str) -> None:
    shape = (3, 8, 8)
    aug = T.Augmentation([name], shape)
    x = _batch(4, *shape)
    if aug.per_sample:
        out = aug.v2_pipeline()(x[0])
        assert out.shape == shape and out.dtype == torch.uint8
    else:
        gen = T.batch_generator(0, 0, 0)
        out = aug.after_normalize(aug.before_normalize(x, gen).float(), gen)
        assert out.shape == x.shape
    assert bool(aug.per_sample) == (name in {"rotation", "color_jitter", "grayscale", "resized_crop"})


@pytest.mark.parametrize("spec, message", [
    (["rotaton"], "unknown transform 'rotaton'"),
    ([{"crop": {"pad": 4}}], "options: padding"),
    ([{"hflip": {"p": 2}}], "p must be in"),
    ([{"crop": 4}], "bad options"),
    ([{"hflip": {}, "vflip": {}}], "each entry"),
])
def test_bad_specs_fail_in_config(spec: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(overrides={"data.augment": spec})


def test_gray_images_reject_color_only_transforms() -> None:
    with pytest.raises(ValueError, match="not RGB"):
        T.Augmentation(["grayscale"], (1, 8, 8))
    with pytest.raises(ValueError, match="table"):
        T.Augmentation(["hflip"], (5,))


def test_color_jitter_defaults_work_on_gray_and_rgb_images() -> None:
    gray = T.Augmentation(["color_jitter"], (1, 8, 8)).v2_pipeline()
    rgb = T.Augmentation(["color_jitter"], (3, 8, 8)).v2_pipeline()
    assert gray.transforms[0].saturation is None and rgb.transforms[0].saturation == (0.8, 1.2)
    out = gray(torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8))
    assert out.shape == (1, 8, 8)
    with pytest.raises(ValueError, match="saturation and hue need RGB"):
        T.Augmentation([{"color_jitter": {"saturation": 0.3}}], (1, 8, 8))
