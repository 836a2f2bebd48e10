"""The module that is exported: a saved run's model(s) with ``predict``'s preprocessing and output in one graph.

``trainlab predict`` turns an image file into a prediction in two stages.  What needs PIL stays in Python and is
described in the metadata file instead (see :mod:`trainlab.export.metadata`): convert to the run's mode, composite
alpha on white, resize to the size images are stored at, invert a light background for dark-background runs.
Everything after that — the stored value scale (``rint(x * max_value / 255)``), the run's ``BatchTransform`` (scale,
resize to ``data.size``, ``(x - mean) / std``, whitening), the model, flip TTA when the run was evaluated with it,
softmax, and the mean over k-fold models — is tensor arithmetic and goes into the graph, so the exported file takes
raw 0-255 pixels and answers exactly what ``predict`` answers.  A language model's graph takes a window of token ids
(text to ids, like a prompt, is described in the metadata) and answers the next token's probabilities at every step;
a passage classifier's takes passages as token ids right-padded to the longest training passage and answers class
probabilities; an encoder-decoder's takes padded sources and answers the greedy decoding's per-step probabilities
(both with their recurrent layers unpacked, :mod:`trainlab.models.masked_recurrent`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from trainlab.data.bundle import DataMeta
from trainlab.data.loaders import BatchTransform
from trainlab.engine.outputs import evaluation_logits, probabilities

RAW_MAX = 255  # exported image graphs take pixels 0-255, as an 8-bit image file holds them


class RawInput(nn.Module):
    """Raw input → model input, the tensor part of predict's path: ``load_image``'s value scale, then the run's own
    :class:`~trainlab.data.loaders.BatchTransform` (scale, resize to ``data.size``, ``(x - mean) / std``, whitening),
    so the graph follows whatever predict does and the eager result is bit-identical to it.

    Images: 0-255 pixels at the stored ``size`` → ``rint(x * max_value / 255)`` when the run stores fewer levels
    (the 8x8 digits keep 0-16), then the transform.  Tables: the encoded feature vector through the transform
    (``scale`` 1.0 for every table dataset), since the CSV encoding is done by pandas, outside any graph.
    """

    def __init__(self, preprocess: dict[str, Any]) -> None:
        super().__init__()
        max_value = preprocess.get("max_value", RAW_MAX)
        image = preprocess.get("kind") == "image"
        self.tokens = preprocess.get("kind") == "text"  # token ids go to the model as they are
        self.levels = float(max_value) / RAW_MAX if image and max_value != RAW_MAX else None
        self.transform = BatchTransform.from_preprocess(preprocess)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens:
            return x
        x = x.float()
        if self.levels is not None:
            x = torch.round(x * self.levels)
        return self.transform(x)


class ExportedPredictor(nn.Module):
    """Raw input ``(N, *input_shape)`` → class probabilities ``(N, classes)`` or values ``(N,)``: predict's answer.

    Several models (the folds of a k-fold run) are averaged after softmax, as ``predict`` averages them.
    """

    def __init__(self, models: Sequence[nn.Module], meta: DataMeta, tta_flip: bool) -> None:
        super().__init__()
        if not models:
            raise ValueError("an exported predictor needs at least one model")
        self.prepare = RawInput(meta.preprocess)
        self.models = nn.ModuleList(models)
        self.task = meta.task
        self.tta_flip = tta_flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        outputs = [probabilities(evaluation_logits(model, x, self.tta_flip), self.task) for model in self.models]
        return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0)


@dataclass(frozen=True)
class TextLayout:
    """How a text task's graph takes its rows: the preprocessing key holding the fixed number of ids per row
    (``torch.export`` fixes a recurrent layer's time axis), the lowest id of a token a row may hold, and whether
    rows are right-padded with 0 up to that width (else every row fills it)."""

    window: str
    first_id: int
    padded: bool


TEXT_LAYOUTS = {
    "lm": TextLayout("num_steps", first_id=1, padded=False),  # a window of the token stream
    "classify": TextLayout("max_length", first_id=1, padded=True),  # passages, up to the longest training one
    "seq2seq": TextLayout("source_length", first_id=4, padded=True),  # sources: no <pad>, <unk>, <bos>, <eos>
}


def text_task(preprocess: dict[str, Any]) -> str | None:
    """``lm``, ``classify`` or ``seq2seq`` for a text run (a record without a task is a language model's), else
    None."""
    return (preprocess.get("task") or "lm") if preprocess.get("kind") == "text" else None


def text_window(preprocess: dict[str, Any]) -> int | None:
    """The fixed number of token ids per row a text graph takes (:data:`TEXT_LAYOUTS`), or None when the record
    lacks it."""
    key = TEXT_LAYOUTS[text_task(preprocess)].window
    return int(preprocess[key]) if key in preprocess else None


def raw_input_shape(meta: DataMeta) -> tuple[int, ...]:
    """One raw input's shape: ``(C, H, W)`` at the stored image ``size`` (the graph resizes to ``data.size``
    itself, as predict does), the encoded feature vector of a table, or a text run's :func:`text_window`."""
    kind = meta.preprocess.get("kind")
    if kind == "image":
        return (meta.input_shape[0], *meta.preprocess["size"])
    if kind == "text":
        return (text_window(meta.preprocess),)
    return tuple(meta.input_shape)


def example_inputs(meta: DataMeta, batch: int, seed: int = 0) -> torch.Tensor:
    """A reproducible raw batch: random whole pixels 0-255 for images, standard-normal features for tables, random
    token ids for text: a language model's full windows, a classifier's passages and an encoder-decoder's sources
    (their tokens only, no <bos>) of random lengths right-padded with 0, so a check sees the padding handled."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, *raw_input_shape(meta))
    kind = meta.preprocess.get("kind")
    if kind == "image":
        return torch.randint(0, RAW_MAX + 1, shape, generator=generator).float()
    if kind == "text":
        layout = TEXT_LAYOUTS[text_task(meta.preprocess)]
        ids = torch.randint(layout.first_id, len(meta.preprocess["vocab"]), shape, generator=generator)
        if layout.padded:
            lengths = torch.randint(1, shape[1] + 1, (batch, 1), generator=generator)
            ids[torch.arange(shape[1])[None, :] >= lengths] = 0
        return ids
    return torch.randn(shape, generator=generator)


def input_name(meta: DataMeta) -> str:
    return {"image": "pixels", "text": "token_ids"}.get(meta.preprocess.get("kind"), "features")


def output_name(meta: DataMeta) -> str:
    return "probabilities" if meta.task == "classification" else "values"
