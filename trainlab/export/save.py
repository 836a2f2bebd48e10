"""Export a saved run: build predict's whole path as one module, write it in a format, check it, describe it.

The model file is written to a temporary name beside its destination, loaded back and checked there, and only
renamed into place when the check passes (:func:`trainlab.atomic.atomic_path`); a failed export leaves nothing
behind and an existing file untouched.  The metadata file is written after the model file, atomically too.

A k-fold directory exports its fold models as one graph that averages their probabilities, exactly as ``predict``
on that directory does: one file, one metadata record listing the number of folds.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from torch import nn

from trainlab import atomic, rundir
from trainlab.export.check import CheckResult, check_export
from trainlab.export.formats import FORMATS, ExportError, require_packages
from trainlab.export.graph import (
    TEXT_LAYOUTS,
    ExportedPredictor,
    example_inputs,
    input_name,
    output_name,
    text_task,
    text_window,
)
from trainlab.export.metadata import build_metadata
from trainlab.models.masked_recurrent import MaskedRecurrent, MaskedSeq2Seq, SourceInput
from trainlab.models.recurrent import RecurrentNet
from trainlab.models.seq2seq import Seq2Seq
from trainlab.run import KFoldRun, RunDirectory, load_run

logger = logging.getLogger(__name__)

EXPORT_BATCH = 2  # the batch the graph is captured at: not 1, which tracers like to specialise


@dataclass(frozen=True)
class ExportResult:
    """Where the model and its metadata went, and the check's result (None with ``check=False``)."""

    path: Path
    metadata_path: Path
    format: str
    check: CheckResult | None


def default_path(run_dir: Path, fmt: str) -> Path:
    """``<run>/export/<format's file name>``: the names are :mod:`trainlab.rundir`'s."""
    return run_dir / rundir.EXPORT_DIR / FORMATS.get(fmt).file_name


def export_run(run: str | Path | RunDirectory, fmt: str = "torch-export", out: str | Path | None = None, *,
               check: bool = True, overwrite: bool = False) -> ExportResult:
    """Export ``run`` (a run or k-fold directory, or an opened one) as ``fmt`` to ``out`` (default:
    :func:`default_path`), with a metadata JSON beside it; with ``check``, fail unless the written file answers
    like the run at batch sizes 1, 2 and 7.  An existing output is refused unless ``overwrite``."""
    spec = FORMATS.get(fmt)  # an unknown format: UnknownNameError naming the choices
    require_packages(fmt)
    opened = run if isinstance(run, RunDirectory) else load_run(run)
    _refuse_unexportable(opened)
    path = Path(out) if out is not None else default_path(opened.path, fmt)
    meta_path = rundir.export_meta_path(path)
    _refuse_existing([path, meta_path], overwrite)
    if FORMATS.entry(fmt).meta.get("legacy"):
        logger.info("%s is legacy (PyTorch deprecates it in favour of torch.export); prefer --format torch-export "
                    "where the runtime allows", fmt)
    module, reference = _predictors(opened)
    names = {"input": input_name(opened.meta), "output": output_name(opened.meta)}
    with _new_folder(path.parent), atomic.atomic_path(path) as tmp:
        facts = spec.save(module, example_inputs(opened.meta, EXPORT_BATCH), tmp, names)
        result = check_export(reference, spec.load(tmp), opened.meta, spec.tolerance, path) if check else None
    folds = len(opened.folds) if isinstance(opened, KFoldRun) else 1
    rundir.write_json(meta_path, build_metadata(
        run_dir=opened.path, model_name=opened.config.model.name, fmt=fmt, model_file=path, meta=opened.meta,
        tta_flip=opened.config.train.tta_flip, folds=folds, facts=facts, check=result))
    logger.debug("exported %s as %s to %s", opened.path, fmt, path)
    return ExportResult(path, meta_path, fmt, result)


def predictor(run: RunDirectory) -> nn.Module:
    """The module every format exports: raw input → predict's output, for the run's model(s) on the CPU."""
    return _predictors(run)[0]


def _predictors(run: RunDirectory) -> tuple[nn.Module, nn.Module]:
    """``(the module exported, predict's own path to check the file against)``: one module for every run but those
    whose models pack their input (passage classifiers, encoder-decoders): they are exported unpacked
    (:mod:`trainlab.models.masked_recurrent`) and checked against the packed models predict runs."""
    models, tta_flip, preprocess = run.load_models("cpu"), run.config.train.tta_flip, run.meta.preprocess
    task = text_task(preprocess)
    if task == "classify":
        unpacked = [MaskedRecurrent(model) if isinstance(model, RecurrentNet) else model for model in models]
    elif task == "seq2seq":
        steps = int(preprocess["target_length"])
        models = [SourceInput(model, steps) for model in models]  # the source alone in, as the graph takes it
        unpacked = [MaskedSeq2Seq(asked.model, steps) if isinstance(asked.model, Seq2Seq) else asked
                    for asked in models]
    else:
        reference = ExportedPredictor(models, run.meta, tta_flip).eval()
        return reference, reference
    return (ExportedPredictor(unpacked, run.meta, tta_flip).eval(),
            ExportedPredictor(models, run.meta, tta_flip).eval())


def _refuse_unexportable(run: RunDirectory) -> None:
    """Image and table runs export predict's path; a language model its per-step next-token probabilities over a
    window of its training length; a passage classifier its class probabilities for passages padded to its longest
    training passage; an encoder-decoder its greedy decoding of sources padded to its longest training source."""
    preprocess = run.meta.preprocess
    kind, task = preprocess.get("kind"), text_task(preprocess)
    if task is not None and task not in TEXT_LAYOUTS:
        raise ExportError(f"{run.path} cannot be exported: its data.json names the text task '{task}', which export "
                          f"does not know ({', '.join(TEXT_LAYOUTS)})")
    if task is not None and text_window(preprocess) is None:
        raise ExportError(f"{run.path} cannot be exported: its data.json records no window length "
                          f"({TEXT_LAYOUTS[task].window})")
    if kind not in ("image", "table", "text"):
        raise ExportError(f"{run.path} was trained on {kind} data; export handles image, table and text runs")


@contextlib.contextmanager
def _new_folder(folder: Path) -> Iterator[None]:
    """Create ``folder`` (and its parents) for the export, and remove what was created if the export fails, so a
    failed export leaves no trace, not even an empty ``export/`` directory."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for created in missing:  # deepest first; a folder something else wrote into meanwhile stays
            with contextlib.suppress(OSError):
                created.rmdir()
        raise


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    for path in paths:
        if path.exists() and not overwrite:
            raise ExportError(f"refusing to write {path}: it already exists (an earlier export?); pass --force to "
                              "overwrite it, or write elsewhere with --out")
        if path.is_dir():
            raise ExportError(f"{path} is a directory; name a file to export to")
