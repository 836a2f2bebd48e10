"""The fit lifecycle: start or resume a run directory, fit, and write what the run leaves behind.

``train`` → a validated config → :func:`~trainlab.session.build_session` → ``Trainer.fit`` → summary, test
metrics of the best checkpoint, and the report.  Whatever way training ends (completed, Ctrl-C, crash, diverged),
``summary.json`` says so.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from trainlab import config as config_mod
from trainlab import rundir
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle
from trainlab.engine import checkpoint, fastpath
from trainlab.engine.callbacks import Callback
from trainlab.engine.callbacks.checkpoint import share_best_rule
from trainlab.engine.trainer import Trainer
from trainlab.inference.outputs import class_predictions
from trainlab.report.html import Predictions, write_report_safely
from trainlab.run import Run
from trainlab.session import Session, apply_thread_count, build_data, build_session
from trainlab.training import summary as run_summary

logger = logging.getLogger(__name__)


class TrainingInterrupted(Exception):
    """Ctrl-C (or SIGTERM in the CLI) during training; a checkpoint was saved in ``run_dir``.

    An ordinary exception, not a ``KeyboardInterrupt``: the user's Ctrl-C has been handled by the time this is
    raised (checkpoint written, summary says ``interrupted``), so callers catch it by name — and a test that
    expected a finished run fails on its own instead of stopping a whole pytest session.
    """

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"training interrupted; resume with: trainlab train --resume {run_dir}")
        self.run_dir = run_dir


class TrainingFailed(RuntimeError):
    """The run stopped because it could not be trusted (e.g. the loss diverged)."""

    def __init__(self, run_dir: Path, reason: str) -> None:
        super().__init__(f"{reason}\nrun directory: {run_dir}")
        self.run_dir = run_dir


def train(model: str | None = None, data: str | None = None, epochs: int | None = None, *,
          config: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] | None = None,
          resume: str | Path | None = None, resume_force: bool = False, **flags: Any) -> "Run":
    """Train and return the :class:`Run`.

    ``flags`` are the CLI flag names (``lr``, ``batch_size``, ``optimizer``, ``device``, ``seed``, ``name``,
    ``out``); ``overrides`` are dotted keys (``{"optim.momentum": 0.9}`` or ``["optim.momentum=0.9"]``).
    ``resume`` continues a run directory from its last checkpoint; changing anything but the epoch count, device
    or progress display on resume is refused unless ``resume_force``.
    """
    flags = {"model": model, "data": data, "epochs": epochs, **flags}
    if resume is not None:
        run_dir = rundir.require_run(resume)
        cfg = _resume_config(run_dir, flags, overrides, resume_force)
        return _start(cfg, run_dir, resume=True)
    return train_config(config_mod.load(config, flags=flags, overrides=overrides))


def train_config(cfg: RunConfig, *, bundle: DataBundle | None = None,
                 callbacks: Mapping[str, Callback] | None = None) -> "Run":
    """Train a validated config in a fresh run directory, optionally on prebuilt splits (k-fold, search).

    The data is built first, so a dataset that fails to load leaves no run directory behind; a failure while
    building the rest (model, weights to start from, batch-size probe) removes the fresh directory again.
    """
    if bundle is None:
        bundle = build_data(cfg)
    return _start(cfg, rundir.create(cfg), bundle=bundle, callbacks=callbacks)


def resume_config(cfg: RunConfig, run_dir: Path, *, bundle: DataBundle | None = None) -> "Run":
    """Continue ``run_dir`` from its last checkpoint with an already checked config, optionally on prebuilt splits
    (k-fold resumes an interrupted fold this way; :func:`train` checks the config against the saved one first)."""
    return _start(cfg, run_dir, resume=True, bundle=bundle)


def _start(cfg: RunConfig, run_dir: Path, resume: bool = False, bundle: DataBundle | None = None,
           callbacks: Mapping[str, Callback] | None = None) -> "Run":
    with rundir.exclusive(run_dir):
        try:
            apply_thread_count(cfg)
            session = build_session(cfg, run_dir, bundle=bundle, extra_callbacks=callbacks, initialize=not resume)
        except BaseException:
            if not resume:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        share_best_rule(session.trainer.callbacks)
        # before any file is rewritten: a resume refused for want of a good checkpoint leaves the directory as it was
        resumed_from = _resume_latest(session.trainer, run_dir) if resume else None
        rundir.save_config(run_dir, session.cfg)
        rundir.write_data_meta(run_dir, session.bundle.meta)
        return _fit(session, run_dir, resumed_from)


# Settings that may change when resuming without making the continuation differ from the original run.
RESUME_SAFE = ("train.epochs", "train.device", "train.log_every", "train.name", "train.out", "callbacks.progress",
               "train.init_from", "train.trust_pickle")


def _resume_config(run_dir: Path, flags: Mapping[str, Any], overrides: Any, force: bool) -> RunConfig:
    rundir.check_version(run_dir)
    return config_mod.load_for_resume(run_dir / rundir.CONFIG_FILE, flags, overrides, safe=RESUME_SAFE, force=force,
                                      advice="start a new run, or pass --resume-force to resume anyway",
                                      normalize=lambda cfg: rundir.absolute_paths(cfg)[0])


def _resume_latest(trainer: Trainer, run_dir: Path) -> str:
    """Load the newest ``last`` checkpoint that passes every check and return its name.

    A damaged or tampered newer one is skipped with a warning that says why, so the run continues from the
    previous good checkpoint instead of from garbage (or not at all); nothing is applied to the trainer until a
    checkpoint has loaded completely.
    """
    ckpt_dir = rundir.checkpoint_dir(run_dir)
    checkpoint.clean_leftovers(ckpt_dir)
    problems = []
    for path in checkpoint.newest_first(ckpt_dir, "last"):
        try:
            trainer.resume(path)
        except checkpoint.CheckpointError as err:
            logger.warning("skipping damaged checkpoint: %s", err)
            problems.append(str(err))
            continue
        if problems:
            logger.warning("resuming from the older checkpoint %s", path)
        return path.name
    refused = f" ({len(problems)} refused, the newest because: {problems[0]})" if problems else ""
    raise checkpoint.CheckpointError(f"{run_dir} has no complete checkpoint to resume from{refused}")


def _fit(session: Session, run_dir: Path, resumed_from: str | None = None) -> "Run":
    started = time.perf_counter()
    state = session.trainer.state
    summary = run_summary.base(session, resumed_from)
    run_summary.write(run_dir, dict(summary), state, "running", started)
    try:
        _compile(session)
        session.trainer.fit()
    except KeyboardInterrupt:
        run_summary.write(run_dir, summary, state, "interrupted", started)
        raise TrainingInterrupted(run_dir) from None
    except Exception as err:
        run_summary.write(run_dir, {**summary, "error": f"{type(err).__name__}: {err}"}, state, "crashed", started)
        raise
    if state.failed:
        run_summary.write(run_dir, summary, state, "failed", started)
        write_report_safely(run_dir)
        raise TrainingFailed(run_dir, state.stop_reason or "training failed")
    if session.bundle.test is not None:
        summary.update(_test_best_weights(session, run_dir))
    summary.update(fastpath=session.fast.to_dict(), **run_summary.performance(session))
    run_summary.write(run_dir, summary, state, "completed", started)
    write_report_safely(run_dir, _test_predictions(session, run_dir), rebuild=False)
    return Run(run_dir)


def _compile(session: Session) -> None:
    """``torch.compile`` the model in place and compile its graphs now, before the training clock starts."""
    if not session.fast.compile:
        return
    eval_sizes = [len(split) for split in (session.bundle.val, session.bundle.test) if split is not None]
    fastpath.compile_model(session.trainer, session.fast, eval_sizes)


def _test_best_weights(session: Session, run_dir: Path) -> dict[str, Any]:
    """Test metrics of the weights ``trainlab eval`` and ``predict`` will use: the best checkpoint, else the last."""
    best = rundir.best_checkpoint(run_dir)
    if best is not None:
        session.trainer.load_weights(checkpoint.load(best))
    metrics = session.trainer.evaluate(session.loader("test"), prefix="test")
    return {"test": metrics, "test_checkpoint": best.name if best else "final weights (no checkpoint)"}


def _test_predictions(session: Session, run_dir: Path) -> Predictions | None:
    """The best weights' test predictions for the report's confusion matrix, from the data already in memory
    (the trainer holds the best weights after :func:`_test_best_weights`)."""
    if session.bundle.test is None or session.bundle.meta.task != "classification":
        return None
    if rundir.best_checkpoint(run_dir) is None:
        return None
    return class_predictions(session.trainer.eval_model, session.loader("test"), session.cfg.train.tta_flip)
