"""The metadata file written beside an exported model: what a program needs to use it without trainlab.

The graph holds every tensor step of ``predict`` (:mod:`trainlab.export.graph`); this file says what comes before
the graph (reading the file, mode, alpha, the size to resize to, inverting a light background) and after it (the
class names), plus the run it came from, the versions that wrote it and the parity check's result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainlab import rundir
from trainlab.data.bundle import DataMeta
from trainlab.data.text import WORD_PATTERN
from trainlab.data.whiten import without_arrays
from trainlab.export.check import CheckResult
from trainlab.export.graph import RAW_MAX, input_name, output_name, raw_input_shape, text_task

METADATA_SCHEMA = 1

RESIZE_RULE = ("PIL Image.resize to (width, height) = (size[1], size[0]) with Resampling.BOX when the image is at "
               "least that wide, else Resampling.BILINEAR")


def image_steps(preprocess: dict[str, Any]) -> dict[str, Any]:
    """What predict does to an image file before the graph: the part that needs an image library."""
    return {
        "mode": preprocess["mode"],
        "alpha": "composite RGBA/LA/palette images on a white background first",
        "size": list(preprocess["size"]),
        "resize": RESIZE_RULE,
        "invert_light_background": preprocess.get("background") == "dark",
        "invert_rule": "when true and the mean of the image's border pixels (0-255) is over 127, use 255 - pixels",
        "layout": "float32 (N, C, H, W), pixels 0-255 as the file holds them (no scaling)",
    }


def text_steps(preprocess: dict[str, Any]) -> dict[str, Any]:
    """What comes before a text graph: text to token ids, as ``generate`` encodes a prompt (a language model) or
    ``predict`` a passage (a classifier)."""
    unit = ("character" if preprocess.get("level") == "char" else
            f"word or punctuation mark (the matches of the regular expression {WORD_PATTERN}, Python's re)")
    tokens = (f"each {unit} of the text" + (", lowercased," if preprocess.get("lowercase") else "")
              + " becomes its index in preprocess.vocab; one the vocabulary lacks becomes 1 (<unk>)")
    task = text_task(preprocess)
    if task == "seq2seq":
        width = preprocess["source_length"]
        return {"tokens": "each character of the source becomes its index in preprocess.vocab (ids 0-3 are <pad>, "
                          "<unk>, <bos>, <eos>); predict refuses a source with a character the vocabulary lacks",
                "window": f"each source's ids, right-padded with 0 (<pad>) to exactly {width} per row (the longest "
                          "training source): torch.export fixes a recurrent layer's time axis; predict refuses a "
                          "longer source",
                "layout": "int64 (N, source_length)"}
    if task == "classify":
        width = preprocess["max_length"]
        return {"tokens": "runs of whitespace (line breaks too) become one space and the ends are trimmed; then "
                          + tokens,
                "window": f"each passage's ids, right-padded with 0 (<pad>) to exactly {width} per row (the longest "
                          f"training passage): torch.export fixes a recurrent layer's time axis. Cut a longer "
                          f"passage to its first {width} ids (predict reads it whole)",
                "layout": "int64 (N, max_length)"}
    steps = {
        "tokens": tokens,
        "window": f"exactly {preprocess['num_steps']} token ids per row (the run's data.num_steps): torch.export "
                  "fixes a recurrent layer's time axis. Right-pad a shorter text with 0 and read only its own "
                  "positions: the model reads left to right, so nothing after a position changes its answer",
        "layout": "int64 (N, num_steps)",
    }
    if preprocess.get("styles"):
        steps["styles"] = ("every paragraph of the training text began with its novel's style token "
                           "(preprocess.styles): put one first for text in that novel's style")
    return steps


TEXT_GRAPH_STEPS = {  # text task → what its graph does, given the run's preprocessing record
    "lm": lambda record: ["the recurrent model over the window from a zero hidden state",
                          "softmax over the vocabulary at every step"],
    "classify": lambda record: [
        "each passage's length: its ids before the padding (0)",
        "the recurrent model over each passage's real ids from a zero hidden state (a backward direction reads them "
        "last to first), pooled as the run's model.output says", "softmax over classes"],
    "seq2seq": lambda record: [
        "each source's length: its ids before the padding (0)",
        "the encoder over each source's real ids; its final state starts the decoder",
        f"greedy decoding of {record['target_length']} steps from <bos>, each step reading the previous step's most "
        "likely token", "softmax over the vocabulary at every step"],
}


def graph_steps(preprocess: dict[str, Any], task: str, tta_flip: bool, folds: int) -> list[str]:
    """The steps inside the graph, in order, for a reader who wants to know what not to do twice."""
    text = text_task(preprocess)
    steps = TEXT_GRAPH_STEPS[text](preprocess) if text else _tensor_steps(preprocess, task, tta_flip)
    if folds > 1:
        steps.append(f"mean over the {folds} fold models")
    return steps


def _tensor_steps(preprocess: dict[str, Any], task: str, tta_flip: bool) -> list[str]:
    """An image's or a table's graph: the stored value scale, the run's transform, the model, the output."""
    steps = []
    if preprocess.get("kind") == "image" and preprocess.get("max_value", RAW_MAX) != RAW_MAX:
        levels = preprocess["max_value"]
        steps.append(f"round(x * {levels} / {RAW_MAX}): the run stores pixels 0-{levels}")
    steps.append(f"x * scale (scale {preprocess.get('scale', 1.0):g})")
    if preprocess.get("resize"):
        steps.append(f"bilinear resize to {list(preprocess['resize'])} (antialiased when shrinking)")
    if preprocess.get("mean") is not None and preprocess.get("std") is not None:
        steps.append(f"(x - mean) / std per channel (mean {preprocess['mean']}, std {preprocess['std']})")
    if preprocess.get("whiten") and preprocess.get("kind") == "image":
        steps.append(f"{preprocess['whiten']['method']} whitening of the flattened image")
    if tta_flip:
        steps.append("mean of the logits of the input and its left-right mirror (the run's train.tta_flip)")
    steps.append("softmax over classes" if task == "classification" else "one value per example")
    return steps


def after_steps(meta: DataMeta) -> str:
    """What predict does to the graph's output: name the class, or undo a table's target transform."""
    target, text = meta.preprocess.get("target") or {}, text_task(meta.preprocess)
    if text == "seq2seq":
        return ("probabilities[:, t] is the distribution of output token t; the translation is "
                "preprocess.vocab[argmax] at each step before the first <eos> (id 3)")
    if text == "lm":
        return ("probabilities[:, t] is the distribution of the token after position t; its most likely token is "
                "preprocess.vocab[argmax]")
    if meta.task == "classification":
        return "the predicted class is classes[argmax(probabilities)], its probability the max"
    if target.get("shift") or target.get("log"):
        return (f"values are in the model's output space: add preprocess.target.shift ({target.get('shift', 0.0)})"
                + (", then expm1" if target.get("log") else "") + ", as predict does")
    return "values are the prediction"


def build_metadata(*, run_dir: Path, model_name: str, fmt: str, model_file: Path, meta: DataMeta, tta_flip: bool,
                   folds: int, facts: dict[str, Any], check: CheckResult | None) -> dict[str, Any]:
    """The metadata record (strict JSON through :func:`trainlab.rundir.write_json`)."""
    preprocess = meta.preprocess
    kind = preprocess.get("kind")
    return {
        "schema": METADATA_SCHEMA,
        "format": fmt,
        "file": model_file.name,
        **facts,
        "run": str(run_dir.resolve()),
        "model": model_name,
        "folds": folds,
        "task": meta.task,
        "classes": meta.classes if meta.task == "classification" else None,
        "input": {"name": input_name(meta), "shape": [None, *raw_input_shape(meta)],
                  "dtype": "int64" if kind == "text" else "float32", "dynamic_axes": {"0": "batch"}},
        "output": {"name": output_name(meta), "shape": _output_shape(meta)},
        "before_graph": _before_graph(preprocess),
        "in_graph": graph_steps(preprocess, meta.task, tta_flip, folds),
        "after_graph": after_steps(meta),
        "tta_flip": tta_flip,
        "preprocess": without_arrays(preprocess),  # whitening is in the graph: its method, not its matrix
        "check": check.to_dict() if check is not None else None,
        "versions": rundir.versions(),
    }


def _output_shape(meta: DataMeta) -> list[int | None]:
    text = text_task(meta.preprocess)
    if text == "seq2seq":
        return [None, int(meta.preprocess["target_length"]), meta.num_outputs]
    if text == "lm":
        return [None, *raw_input_shape(meta), meta.num_outputs]
    return [None, meta.num_outputs] if meta.task == "classification" else [None]


def _before_graph(preprocess: dict[str, Any]) -> dict[str, Any]:
    kind = preprocess.get("kind")
    if kind == "image":
        return image_steps(preprocess)
    if kind == "text":
        return text_steps(preprocess)
    return {"features": "the encoded feature vector, in the order of preprocess.features (as predict encodes a CSV)"}
