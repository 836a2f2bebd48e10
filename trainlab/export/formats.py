"""Export formats by name: how each writes the predictor module to a file and loads that file back for the check.

* ``torch-export`` (the main path): ``torch.export.export`` + ``torch.export.save``, a ``.pt2`` archive that
  ``torch.export.load(path).module()`` runs without trainlab and without the model's Python code.
* ``onnx`` (optional extra, ``pip install "trainlab[onnx]"``): ``torch.onnx.export`` through the same
  ``torch.export`` graph, run back with onnxruntime.
* ``torchscript`` (legacy; PyTorch recommends ``torch.export``): ``torch.jit.trace``, for C++ / older runtimes.

Every format gets a dynamic batch axis; the check (:mod:`trainlab.export.check`) proves it at batch sizes 1, 2 and 7.
Tolerances are per format: the same kernels (torch-export, torchscript) agree to float rounding, onnxruntime's
kernels and fusions differ a little more.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trainlab import rundir
from trainlab.registry import Registry

MAX_BATCH = 65_536  # the dynamic batch axis's upper bound (torch.export wants one; any real batch fits)
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
Runner = Callable[[torch.Tensor], torch.Tensor]


class ExportError(ValueError):
    """A run cannot be exported in the format asked for: a missing optional package, an operator the format has
    no form for, or a failed check.  A ValueError, so the CLI reports it as one ``error:`` line."""


@dataclass(frozen=True)
class Tolerance:
    """Outputs agree when ``|exported - original| <= atol + rtol * |original|`` element-wise (as torch.allclose)."""

    atol: float
    rtol: float


@dataclass(frozen=True)
class ExportFormat:
    """One format: its default file name (owned by :mod:`trainlab.rundir`), the packages it needs, its tolerance,
    how to write a module to a path (returning facts for the metadata, e.g. the ONNX opset) and how to load the
    written file back as a function of a raw batch."""

    file_name: str
    tolerance: Tolerance
    save: Callable[[nn.Module, torch.Tensor, Path, dict[str, str]], dict[str, Any]]
    load: Callable[[Path], Runner]
    packages: tuple[str, ...] = ()


FORMATS: Registry[ExportFormat] = Registry("export format")


def require_packages(name: str) -> None:
    """Fail before any work when a format's optional packages are not installed, saying how to install them."""
    missing = []
    for package in FORMATS.entry(name).obj.packages:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise ExportError(f"--format {name} needs the optional package(s) {', '.join(missing)}: install them with "
                          f"pip install \"trainlab[{name}]\" (or pip install {' '.join(missing)})")


def _batch_axis() -> dict[int, Any]:
    """Axis 0 dynamic from 1: a fixed example batch of 2 must not be baked into the graph (nor may 1 be special)."""
    return {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}


@contextlib.contextmanager
def _recurrent_notes_silenced() -> Any:
    """torch's own notes while capturing a recurrent layer (its flattened weights re-assigned during export, a
    deprecated size check in its decomposition): nothing a user can act on, and the check proves the file."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The tensor attributes .* were assigned during export",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=r"_check_is_size will be removed", category=FutureWarning)
        yield


def _export_program(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    try:
        with _recurrent_notes_silenced():
            return torch.export.export(module, (example,), dynamic_shapes=(_batch_axis(),), strict=False)
    except Exception as err:  # noqa: BLE001 - any tracing failure means: this model has no torch.export form
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"torch.export cannot capture this model ({type(err).__name__}: {first[:300]}); "
                          "try --format torchscript") from err


def _save_torch_export(module: nn.Module, example: torch.Tensor, path: Path, names: dict[str, str]) -> dict[str, Any]:
    program = _export_program(module, example)
    with open(path, "wb") as handle:  # a handle: torch wants a path ending in .pt2, the temporary name does not
        torch.export.save(program, handle)
    return {}


def _load_torch_export(path: Path) -> Runner:
    with open(path, "rb") as handle:
        program = torch.export.load(handle).module()
    return lambda x: program(x)


def _save_onnx(module: nn.Module, example: torch.Tensor, path: Path, names: dict[str, str]) -> dict[str, Any]:
    import onnx

    try:
        with _recurrent_notes_silenced():
            torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                              input_names=[names["input"]], output_names=[names["output"]],
                              dynamic_shapes=(_batch_axis(),))
    except Exception as err:  # noqa: BLE001 - an operator without an ONNX form, or a capture failure
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"torch.onnx.export cannot convert this model ({type(err).__name__}: {first[:300]}); "
                          "try --format torch-export") from err
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    return {"opset": next(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))}


def _load_onnx(path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(np.asarray(session.run(None, {name: x.numpy()})[0]))


def _save_torchscript(module: nn.Module, example: torch.Tensor, path: Path, names: dict[str, str]) -> dict[str, Any]:
    with warnings.catch_warnings():  # tracer and deprecation notes: the check below is what proves the trace
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(traced, str(path))
    return {}


def _load_torchscript(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    return lambda x: loaded(x)


FORMATS.add("torch-export", ExportFormat(rundir.EXPORT_PT2_FILE, Tolerance(atol=1e-5, rtol=1e-4),
                                         _save_torch_export, _load_torch_export),
            description="torch.export program (.pt2): the main path; torch.export.load(path).module()")
FORMATS.add("onnx", ExportFormat(rundir.EXPORT_ONNX_FILE, Tolerance(atol=1e-4, rtol=1e-3), _save_onnx, _load_onnx,
                                 packages=ONNX_PACKAGES),
            description="ONNX (.onnx) for onnxruntime and other runtimes; needs pip install \"trainlab[onnx]\"")
FORMATS.add("torchscript", ExportFormat(rundir.EXPORT_TORCHSCRIPT_FILE, Tolerance(atol=1e-5, rtol=1e-4),
                                        _save_torchscript, _load_torchscript),
            description="TorchScript (torch.jit.trace): legacy, for runtimes without torch.export", legacy=True)
