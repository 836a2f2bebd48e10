"""Turn user files into model input exactly the way the training data was stored and transformed."""

from __future__ import annotations

import logging
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

SMALL_SIDE = 4  # an image side under 1/SMALL_SIDE of the model's is blown up from too little detail
ASPECT_LIMIT = 2.0  # width/height this many times off the model's is squashed out of shape


class InputError(ValueError):
    """A file given to predict cannot be read or converted."""


def load_image(path: Path, preprocess: dict[str, Any], warn_size: bool = False) -> torch.Tensor:
    """Read one image of any size or mode into the stored training format (C, H, W) at the stored value scale.

    Palette, alpha, 16-bit and CMYK images are converted to the training ``mode``; alpha is composited on white,
    as an image viewer shows it.  When training images have a dark background (ink bright, as in MNIST) and the file has
    a light one (a scan, a drawing), it is inverted.  ``warn_size`` logs a warning when the resize to the model's size
    distorts the image badly (see :func:`size_warning`): predict asks for it, training reads its own folder quietly.
    ``size`` is the stored size; a run trained with ``data.size`` on a built-in dataset records the model's size as
    ``resize``, which :class:`~trainlab.data.loaders.BatchTransform` applies to this tensor exactly as to a batch.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # PIL only warns between MAX_IMAGE_PIXELS and twice that: refuse those too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                image = _to_mode(img, preprocess.get("mode", "RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(f"{path}: refused, the header declares an image too large to decode safely "
                         f"(a possible decompression bomb: {err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None
    height, width = preprocess["size"]
    problem = size_warning(image.size, (width, height)) if warn_size else None
    if problem:
        logger.warning("%s: %s", path, problem)
    image = image.resize((width, height), Image.Resampling.BOX if image.width >= width else Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if preprocess.get("background") == "dark" and _border_mean(array) > 127:
        array = 255.0 - array
    max_value = preprocess.get("max_value", 255)
    return torch.from_numpy(np.rint(array * (max_value / 255.0)) if max_value != 255 else array)


def size_warning(size: tuple[int, int], model_size: tuple[int, int]) -> str | None:
    """Why resizing an image of ``size`` (width, height) to ``model_size`` will mislead the model, or None.

    A side under 1/4 of the model's side has too little detail for the model to see what it was trained on, and an
    aspect ratio twice off squashes the content; the prediction is still made, but it deserves little trust.
    """
    (w, h), (mw, mh) = size, model_size
    aspect = (w / h) / (mw / mh)
    if w * SMALL_SIDE < mw or h * SMALL_SIDE < mh:
        why = f"much smaller than the model's {mw}x{mh} input (a side under 1/{SMALL_SIDE} of it)"
    elif max(aspect, 1 / aspect) > ASPECT_LIMIT:
        why = f"a very different shape from the model's {mw}x{mh} input (aspect ratio {w / h:.3g} vs {mw / mh:.3g})"
    else:
        return None
    return f"the image is {w}x{h} (width x height), {why}; it is resized to {mw}x{mh}, so the prediction may be poor"


def _to_mode(img: Any, mode: str) -> Any:
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8))
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        base = Image.new("RGB", img.size, (255, 255, 255))
        base.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        img = base
    return img.convert(mode)


def _border_mean(array: np.ndarray) -> float:
    border = np.concatenate([array[:, 0, :].ravel(), array[:, -1, :].ravel(), array[:, :, 0].ravel(), array[:, :, -1].ravel()])
    return float(border.mean())


def load_images(paths: Sequence[str | Path], preprocess: dict[str, Any]) -> torch.Tensor:
    """A batch (N, C, H, W) of images at the stored training scale; fails naming every unreadable file."""
    tensors, problems = [], []
    for path in map(Path, paths):
        try:
            tensors.append(load_image(path, preprocess, warn_size=True))
        except InputError as err:
            problems.append(str(err))
    if problems:
        raise InputError("cannot predict on these files:\n  " + "\n  ".join(problems))
    return torch.stack(tensors)
