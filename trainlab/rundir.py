"""The run directory: the one owner of trainlab's on-disk layout.

Every file name a run, k-fold, search or comparison directory holds is defined here and nowhere else; so are
the ``summary.json`` schema and its version, ``data.json``'s reading and writing, the lock that keeps one
training process per run, and the check that refuses directories written by a newer trainlab.  Everything
trainlab writes for later readers goes through :mod:`trainlab.atomic` (temporary file, fsync, rename).

Two rules keep a run directory readable by anyone, from anywhere:

* **Strict JSON.** :func:`write_json` never writes the bare ``NaN``/``Infinity`` tokens most JSON parsers reject.
  A non-finite float (a diverged loss, the std of one fold), at any depth of dicts and lists, is written as the
  string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` instead: it stays visible, unlike ``null``, and cannot be
  confused with a missing value.  :func:`read_summary` turns those three strings back into floats, so code that
  reads ``summary.json`` through it sees the numbers it always did; other readers see the strings.
* **Absolute paths.** :func:`save_config` writes ``config.yaml`` with every relative path option
  (:data:`PATH_OPTIONS`) made absolute against the working directory of the process that saves it, so ``eval``,
  ``predict --split`` and ``--resume`` work from any directory.  The paths as the user typed them are kept in a
  comment at the top of ``config.yaml`` (``#   data.root: "table-data"``), which a resume carries over.
  Run directories written before this (0.1.0) keep their relative paths, which resolve against the working
  directory as they always did.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from trainlab import atomic
from trainlab.atomic import NON_FINITE, restore_non_finite, write_csv, write_json  # noqa: F401  (rundir's API)
from trainlab.config import RunConfig, dump_yaml, flatten, read_yaml, set_dotted, validate
from trainlab.data import whiten
from trainlab.data.bundle import DataMeta
from trainlab.engine import checkpoint
from trainlab.models import custom
from trainlab.version import __version__

# A single run: ``<out>/<name>/``.
CONFIG_FILE = "config.yaml"  # the resolved config, loadable by ``trainlab train -c``
DATA_FILE = "data.json"  # DataMeta: task, input shape, classes, the preprocessing predict applies
WHITEN_FILE = "whitening.safetensors"  # data.whiten's mean and matrix (features² numbers), named by data.json
SUMMARY_FILE = "summary.json"  # SUMMARY_SCHEMA below
METRICS_FILE = "metrics.csv"  # one row per epoch
CURVES_FILE = "curves.png"
REPORT_FILE = "report.html"
CHECKPOINT_DIR = "checkpoints"  # checkpoints/{last,best}-<step>/ in the format of trainlab.engine.checkpoint
LOCK_FILE = ".lock"
TENSORBOARD_DIR = "tensorboard"  # event files of the tensorboard callback (tensorboard --logdir runs)
MODEL_SOURCE_FILE = "model_source.json"  # an own model's file/module, class and SHA-256 (trainlab.models.custom)
# A k-fold run: the base config, data.json and summary.json above, plus these and one run per fold (fold-N/).
KFOLD_FILE = "kfold.json"
FOLD_FILE = "fold.json"  # inside fold-N/: which examples the fold validated on
FOLD_DIR = "fold-{fold}"  # fold-1 … fold-K
TRIAL_DIR = "trial-{number:04d}"  # a search's trial-0000, trial-0001, …
FOLDS_TABLE = "folds.csv"
OOF_FILE = "oof.csv"
# A search directory.
SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
SEARCH_PLOT_FILE = "search.png"
BEST_CONFIG_FILE = "best.yaml"
SEARCH_JOURNAL_FILE = "study.journal"  # optuna's journal: what makes a search resumable
# A comparison directory.
COMPARE_PLOT_FILE = "compare.png"
COMPARE_TABLE_FILE = "compare.csv"
COMPARE_DIFF_FILE = "config_diff.csv"
COMPARE_PAGE_FILE = "compare.html"
# ``trainlab export``: inside the run (or k-fold) directory by default, each model file with its metadata beside it.
EXPORT_DIR = "export"
EXPORT_PT2_FILE = "model.pt2"  # torch.export
EXPORT_ONNX_FILE = "model.onnx"
EXPORT_TORCHSCRIPT_FILE = "model.torchscript.pt"
EXPORT_META_SUFFIX = ".json"  # model.onnx → model.onnx.json: classes, input, preprocessing, versions, the check


def export_meta_path(model_file: Path) -> Path:
    """The metadata file that describes an exported model file: its name plus :data:`EXPORT_META_SUFFIX`."""
    return model_file.with_name(model_file.name + EXPORT_META_SUFFIX)


# summary.json carries ``"schema": SUMMARY_SCHEMA``; files without the key were written by trainlab 0.1.0 before
# the key existed and have the same layout (schema 1).  Bump it when a key changes meaning or disappears, and
# teach :func:`read_summary` to read the older schema or to refuse it naming the version.
SUMMARY_SCHEMA = 1
# data.json: DataMeta.to_dict() (task, input_shape, num_classes, classes, preprocess — the typed record of
# trainlab.data.preprocess) plus ``"schema": DATA_SCHEMA``; same compatibility rule as summary.json.
DATA_SCHEMA = 1
MODEL_SCHEMA = 1  # model_source.json (an own model's origin; see write_model_source)
SUMMARY_KEYS = {
    "schema": "int: SUMMARY_SCHEMA",
    "status": "running | completed | interrupted | crashed | failed",
    "stop_reason": "str | null: why training stopped early",
    "error": "str: the exception, when status is crashed",
    "model": "str", "data": "str", "task": "classification | regression", "params": "int",
    "seed": "int", "batch_size": "int", "device": "str", "threads": "int", "precision": "str",
    "world_size": "int: processes that trained together (torchrun; 1 for a single process)",
    "versions": "{trainlab, torch, python}",
    "epochs_completed": "int", "steps": "int",
    "train_seconds": "float", "wall_seconds": "float: summed over resumes",
    "final": "the last metrics.csv row", "best": "{metric: {value, epoch}}",
    "test": "{test_loss, test_acc | test_rmse}: the best checkpoint's test metrics",
    "test_checkpoint": "str: the checkpoint those test metrics come from",
    "resumed_from": "str: the checkpoint directory the latest resume loaded (absent for a run never resumed)",
    "fastpath": "speed settings the run used", "train_tflops": "float", "mfu": "float (GPUs of known peak)",
    # k-fold directories write the same file with these keys besides status, model, data, task, seed, versions,
    # wall_seconds, best (epoch null), epochs_completed and test (the fold ensemble's):
    "kind": "kfold (absent for a single run)", "folds": "int", "completed_folds": "int",
    "mean": "{metric: mean over completed folds}", "std": "{metric: sample std over completed folds}",
}


class RunDirError(RuntimeError):
    """A run directory is missing, unreadable or not writable."""


class DamagedFileError(RunDirError):
    """A run file exists but is not what trainlab wrote; ``problem`` says what is wrong, without the path."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path, self.problem = path, problem


def model_label(cfg: RunConfig) -> str:
    """The model's name as directory names use it: an own model (``path/to/file.py:Class``) by its class name."""
    return cfg.model.name.rpartition(":")[2]


def default_name(cfg: RunConfig) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>``."""
    return f"{model_label(cfg)}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def create(cfg: RunConfig) -> Path:
    """Make a fresh directory ``<out>/<name>``; an existing name gets a ``-2``, ``-3``… suffix, never reused."""
    out = Path(cfg.train.out)
    name = cfg.train.name or default_name(cfg)
    if not re.fullmatch(r"[\w.\-]+", name) or not name.strip("."):
        raise RunDirError(f"run name '{name}' may only use letters, digits, '.', '_' and '-', and not only dots")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create output directory {out}: {err.strerror}; choose another with --out") from None
    if not os.access(out, os.W_OK):
        raise RunDirError(f"output directory {out} is not writable; choose another with --out")
    for suffix in ("", *(f"-{i}" for i in range(2, 10_000))):
        path = out / f"{name}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"too many runs named {name} in {out}")


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for one training process: a second ``train --resume`` of the same run while the
    first still trains would interleave checkpoints and metrics, so it is refused, naming the holder's PID.

    An advisory ``flock`` on ``.lock``: the operating system drops it when the holder exits, however it exits, so
    a killed run never leaves a stale lock.  Where ``fcntl`` does not exist (Windows) runs are not locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunDirError(f"{run_dir} is in use by another training process (pid {holder}); wait for it to "
                              "finish or stop it (Ctrl-C saves a checkpoint), then resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def write_config(path: Path, cfg: RunConfig, comment: str = "") -> None:
    """Write a resolved config as YAML atomically and durably (``config.yaml``, a search's ``best.yaml``),
    after ``comment`` (``#`` lines, which YAML ignores when the file is loaded)."""
    with atomic.atomic_path(path) as tmp:
        dump_yaml(cfg, tmp)
        if comment:
            tmp.write_text(comment + tmp.read_text())


def read_json(path: Path) -> Any:
    """A run file's JSON; a missing or damaged file is a RunDirError naming it (one line in the CLI)."""
    if not path.is_file():
        raise RunDirError(f"{path} is missing: is {path.parent} a trainlab run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DamagedFileError(path, f"is not valid JSON ({err.msg}: line {err.lineno} column {err.colno})") from None
    except UnicodeDecodeError:
        raise DamagedFileError(path, "is not UTF-8 text, so not the JSON trainlab wrote") from None


# Config options that name files or folders.  data.train and data.test are relative to data.root when it is set
# (the csv dataset joins them), so only without a data.root are they resolved themselves.
PATH_OPTIONS = ("data.root", "data.train", "data.test", "train.init_from")
TYPED_PATHS_HEADER = "# Relative paths were made absolute when this run was saved; as typed (JSON strings):"
_TYPED_PATH_LINE = re.compile(r"^#   ([\w.]+): (\".*\")$")


def save_config(run_dir: Path, cfg: RunConfig) -> None:
    """Write ``config.yaml`` with absolute paths, so the run works from any directory (see the module docstring).

    The paths as typed go into the file's leading comment, together with those an earlier save recorded for a path
    that is still the same (a resume saves a config whose paths are already absolute).
    """
    path = run_dir / CONFIG_FILE
    cfg, typed = absolute_paths(cfg)
    typed = {**_typed_paths(path, cfg), **typed}
    comment = "".join([TYPED_PATHS_HEADER + "\n", *(f"#   {key}: {json.dumps(value)}\n"
                                                     for key, value in typed.items())]) if typed else ""
    write_config(path, cfg, comment)


def absolute_paths(cfg: RunConfig, base: Path | None = None) -> tuple[RunConfig, dict[str, str]]:
    """``cfg`` with each relative option of :data:`PATH_OPTIONS` that names an existing file or folder made
    absolute against ``base`` (default: the working directory), and ``{key: value as typed}`` of those changed.

    ``~`` is expanded first.  The path is joined, not resolved: a symlinked data folder stays the link, and
    ``..`` keeps its meaning.  A value that names nothing under ``base`` is left as typed, since a dataset may
    read it otherwise (a built run's paths always exist: the data was read from them).
    """
    base = Path.cwd() if base is None else base
    data = cfg.data.options()
    keys = [key for key in PATH_OPTIONS if not (key in ("data.train", "data.test") and data.get("root"))]
    values = {key: data.get(key.split(".", 1)[1]) if key.startswith("data.") else cfg.train.init_from
              for key in keys}
    typed: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            full = base / Path(value).expanduser()
            if full.exists() or full.is_symlink():
                typed[key] = value
                values[key] = str(full)
    model_file = _absolute_model_file(cfg.model.name, base)
    if model_file is not None:
        typed["model.name"], values["model.name"] = cfg.model.name, model_file
    if not typed:
        return cfg, {}
    tree = cfg.to_dict()
    for key in typed:
        set_dotted(tree, key, values[key])
    return validate(tree), typed


def _absolute_model_file(name: str, base: Path) -> str | None:
    """An own model given as ``relative/file.py:Class`` with its file made absolute, so ``train -c config.yaml``
    works from any directory as eval and predict do; None for registry names, modules and absolute files."""
    if not custom.is_reference(name) or ".py:" not in name:  # a module, or a class defined in a script
        return None
    kind, target, class_name = custom.split_reference(name)
    full = base / Path(target).expanduser()
    if kind != custom.FILE or Path(target).expanduser().is_absolute() or not full.is_file():
        return None
    return f"{full}:{class_name}"


def _typed_paths(path: Path, cfg: RunConfig) -> dict[str, str]:
    """The paths as typed that an earlier :func:`save_config` recorded in ``path``'s leading comment, for the options
    whose saved value ``cfg`` still has (a path changed by ``--resume-force`` loses its old note)."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    if not lines or lines[0] != TYPED_PATHS_HEADER:
        return {}
    typed: dict[str, str] = {}
    for line in lines[1:]:
        match = _TYPED_PATH_LINE.match(line)
        if match is None:
            break
        try:
            typed[match.group(1)] = json.loads(match.group(2))
        except json.JSONDecodeError:
            break
    before, now = flatten(read_yaml(path)), flatten(cfg.to_dict())
    return {key: value for key, value in typed.items() if key in now and before.get(key) == now[key]}


def write_data_meta(run_dir: Path, meta: DataMeta) -> None:
    """``data.json``: the DataMeta stamped with DATA_SCHEMA; whitening's arrays go to WHITEN_FILE, which it names."""
    preprocess, arrays = meta.preprocess, whiten.whitening_arrays(meta.preprocess)
    if arrays:
        atomic.write_bytes(run_dir / WHITEN_FILE, whiten.arrays_bytes(arrays))
        preprocess = whiten.without_arrays(preprocess, file=WHITEN_FILE)
    write_json(run_dir / DATA_FILE, {"schema": DATA_SCHEMA, **meta.to_dict(), "preprocess": preprocess})


def read_data_meta(run_dir: Path) -> DataMeta:
    """``data.json`` of this or an older trainlab (without ``schema``: 0.1.0's schema 1; whitening arrays inline)."""
    path = run_dir / DATA_FILE
    data = read_json(path)
    schema = data.get("schema", 1) if isinstance(data, dict) else None
    if schema != DATA_SCHEMA:
        raise RunDirError(f"{path} has data schema {schema}; this trainlab {__version__} reads schema {DATA_SCHEMA}")
    preprocess = data.get("preprocess")
    record = preprocess.get("whiten") if isinstance(preprocess, dict) else None
    if isinstance(record, dict) and "file" in record:  # only WHITEN_FILE beside it, never a path the file names
        if record["file"] != WHITEN_FILE:
            raise RunDirError(f"{path} names whitening arrays in {record['file']!r}; trainlab reads {WHITEN_FILE}")
        data["preprocess"] = whiten.with_arrays(preprocess, whiten.read_arrays(run_dir / WHITEN_FILE))
    try:
        return DataMeta.from_dict(data, where=str(path))
    except (KeyError, TypeError) as err:
        raise RunDirError(f"{path} is not a data description trainlab wrote (missing or malformed {err})") from None


def write_model_source(run_dir: Path, source: dict[str, Any]) -> None:
    """``model_source.json``: where an own model's class comes from (``ModelSource.to_dict()``), with MODEL_SCHEMA."""
    write_json(run_dir / MODEL_SOURCE_FILE, {"schema": MODEL_SCHEMA, **source})


def read_model_source(run_dir: Path) -> dict[str, Any] | None:
    """The recorded source of the run's own model, or None for a zoo model (no file)."""
    path = run_dir / MODEL_SOURCE_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or data.get("schema") != MODEL_SCHEMA:
        raise RunDirError(f"{path} is not a model source this trainlab {__version__} reads (schema {MODEL_SCHEMA})")
    return {key: value for key, value in data.items() if key != "schema"}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` stamped with :data:`SUMMARY_SCHEMA` (keys documented in :data:`SUMMARY_KEYS`)."""
    write_json(run_dir / SUMMARY_FILE, {"schema": SUMMARY_SCHEMA, **summary})


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` of a run written by this or an older trainlab (a file without ``schema`` is schema 1).

    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` are read back as floats (see :func:`write_json`); older files
    hold the bare tokens, which Python's parser reads as the same floats.
    """
    summary = restore_non_finite(read_json(run_dir / SUMMARY_FILE))
    schema = summary.get("schema", 1) if isinstance(summary, dict) else None
    if schema != SUMMARY_SCHEMA:
        raise RunDirError(f"{run_dir / SUMMARY_FILE} has summary schema {schema}; this trainlab {__version__} "
                          f"reads schema {SUMMARY_SCHEMA}")
    return summary


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR


def best_checkpoint(run_dir: Path) -> Path | None:
    """The best checkpoint if one was saved, else the last, else None: the weights eval and predict use."""
    ckpt_dir = checkpoint_dir(run_dir)
    return checkpoint.latest(ckpt_dir, "best") or checkpoint.latest(ckpt_dir, "last")


def versions() -> dict[str, str]:
    return {"trainlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def require_run(path: str | Path) -> Path:
    """The path as a run directory, or a clear error naming what is missing."""
    run_dir = Path(path)
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirError(f"{run_dir} is not a trainlab run directory (no {CONFIG_FILE}); list runs with `trainlab runs`")
    return run_dir


def find_runs(root: str | Path) -> list[Path]:
    """Run directories directly under ``root`` (those holding a config.yaml), sorted by name."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file()) if root.is_dir() else []


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def check_version(run_dir: Path) -> None:
    """Refuse a run directory written by a newer trainlab, whose files this version may misread."""
    path = run_dir / SUMMARY_FILE
    written_by = json.loads(path.read_text()).get("versions", {}).get("trainlab") if path.is_file() else None
    if written_by and _version_tuple(written_by) > _version_tuple(__version__):
        raise RunDirError(f"{run_dir} was written by trainlab {written_by}, newer than this trainlab {__version__}; "
                          "upgrade trainlab to use it")

