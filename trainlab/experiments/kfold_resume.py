"""``trainlab kfold --resume``: continue an interrupted or crashed k-fold run in place.

Finished folds are reused as they are, an interrupted fold continues from its last checkpoint through the
single-run resume (so it ends exactly as if it had never stopped), folds not yet started train normally, and
the aggregate outputs are then written as a fresh run writes them.  Resuming is refused where the result could
not match an uninterrupted run: a changed configuration (unless forced, as for ``trainlab train --resume``),
another number of folds, or a different split of the data (never overridable: the finished folds would have
been trained on other examples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from trainlab import config as config_mod
from trainlab import atomic, rundir
from trainlab.config import ConfigError, RunConfig
from trainlab.experiments.folds import split_folds
from trainlab.experiments.kfold import KFoldResult, OnFold, OnProgress, run_folds
from trainlab.run import is_kfold_run
from trainlab.rundir import FOLDS_TABLE, KFOLD_FILE, OOF_FILE
from trainlab.session import build_data

# Settings that may change on resume without making the folds differ from one another or from a fresh run.
# Unlike a single run, train.epochs is not among them: the finished folds were trained for the saved count.
KFOLD_RESUME_SAFE = ("train.device", "train.log_every", "train.name", "train.out", "callbacks.progress")
FINAL_STATUSES = ("completed", "partial", "failed")


class KFoldComplete(rundir.RunDirError):
    """The k-fold run asked to resume has already finished; its results stay where they are."""

    def __init__(self, path: Path, status: str) -> None:
        super().__init__(f"{path} is already complete (status: {status}), nothing to resume; results are in "
                         f"{path / FOLDS_TABLE}, {path / OOF_FILE}, {path / rundir.SUMMARY_FILE} and "
                         f"{path / rundir.REPORT_FILE}. To train again, start a new k-fold run")
        self.path, self.status = path, status


def resume_kfold(path: str | Path, *, flags: Mapping[str, Any] | None = None,
                 overrides: Sequence[str] | Mapping[str, Any] | None = None, folds: int | None = None,
                 force: bool = False, on_fold: OnFold | None = None,
                 on_progress: OnProgress | None = None) -> KFoldResult:
    """Finish the k-fold run in ``path`` and return its result, as :func:`~trainlab.experiments.kfold.run_kfold`.

    ``flags``/``overrides`` are applied to the saved config as for ``train(resume=…)``: anything but device,
    logging and progress settings is refused unless ``force``.  ``folds``, if given, must match the saved count.
    Raises :class:`KFoldComplete` for a run that already finished.
    """
    root = open_unfinished(path)
    with rundir.exclusive(root):  # a second resume of a k-fold run still running stops here, before any write
        return _resume(root, flags, overrides, folds, force, on_fold, on_progress)


def _resume(root: Path, flags: Mapping[str, Any] | None, overrides: Any, folds: int | None, force: bool,
            on_fold: OnFold | None, on_progress: OnProgress | None) -> KFoldResult:
    info = rundir.read_json(root / KFOLD_FILE)
    if folds is not None and folds != info["folds"]:
        raise ConfigError(f"{root} was started with --folds {info['folds']}, not {folds}; drop --folds to resume "
                          "it, or start a new k-fold run for another number of folds")
    cfg = _resume_config(root, flags, overrides, force)
    bundle = build_data(cfg)
    split = split_folds(bundle, info["folds"], cfg.train.seed)
    if split.fingerprint != info["fingerprint"]:
        raise ConfigError(
            f"cannot resume {root}: its folds would change. It was split with seed {info['seed']} over "
            f"{info['examples']} examples; now seed {cfg.train.seed} over {sum(map(len, split.val_parts))} examples "
            "gives a different assignment (a changed seed, dataset files or labels). The finished folds were "
            "trained on the old split, so this is refused even with --resume-force; start a new k-fold run")
    atomic.sweep_orphans(root)  # writers killed mid-write (SIGKILL) left temporary files; the run is ours again
    rundir.save_config(root, cfg)
    summary_path = root / rundir.SUMMARY_FILE
    earlier = rundir.read_summary(root).get("wall_seconds", 0.0) if summary_path.is_file() else 0.0
    return run_folds(cfg, root, bundle, split, on_fold, on_progress, earlier_seconds=earlier)


def open_unfinished(path: str | Path) -> Path:
    """``path`` as a k-fold directory that can be resumed, or an error saying what it is instead."""
    root = Path(path)
    if not root.is_dir():
        raise rundir.RunDirError(f"{root} does not exist; pass the directory a k-fold run was saved in")
    if not is_kfold_run(root):
        if any(root.glob("fold-*")):
            raise rundir.RunDirError(f"{root} has no {KFOLD_FILE}: it was started by an older trainlab that did "
                                     "not record its folds, so it cannot be resumed; start it again")
        if (root / rundir.CONFIG_FILE).is_file():
            raise rundir.RunDirError(f"{root} is a single training run, not a k-fold run; resume it with: "
                                     f"trainlab train --resume {root}")
        raise rundir.RunDirError(f"{root} is not a k-fold run directory (no {KFOLD_FILE})")
    rundir.check_version(root)
    summary_path = root / rundir.SUMMARY_FILE
    status = rundir.read_summary(root).get("status") if summary_path.is_file() else None
    if status in FINAL_STATUSES:
        raise KFoldComplete(root, status)
    if "fingerprint" not in rundir.read_json(root / KFOLD_FILE):
        raise rundir.RunDirError(f"{root} was started by an older trainlab that did not record its folds, so it "
                                 "cannot be resumed; start it again")
    return root


def _resume_config(root: Path, flags: Mapping[str, Any] | None, overrides: Any, force: bool) -> RunConfig:
    """The saved base config with ``flags``/``overrides`` applied; changes beyond the safe ones need ``force``."""
    return config_mod.load_for_resume(
        root / rundir.CONFIG_FILE, flags, overrides, safe=KFOLD_RESUME_SAFE, force=force,
        advice="its finished folds used the saved settings; start a new k-fold run, or pass --resume-force to "
               "resume anyway (the folds will then not all be trained alike)")
