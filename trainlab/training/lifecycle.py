"""The fit lifecycle: start or resume a run directory, fit, and write what the run leaves behind.

``train`` → a validated config → :func:`~trainlab.session.build_session` → ``Trainer.fit`` → summary, test
metrics of the best checkpoint, and the report.  Whatever way training ends (completed, Ctrl-C, crash, diverged),
``summary.json`` says so.

Started by torchrun (several processes), every rank runs this same lifecycle inside one process group
(:mod:`trainlab.engine.distributed`); rank 0 alone creates, locks and writes the run directory, the other ranks
only read checkpoints from it, and barriers keep rank 0 from replacing a checkpoint another rank still reads.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from trainlab import config as config_mod
from trainlab import atomic, rundir
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle
from trainlab.engine import checkpoint, distributed, fastpath
from trainlab.engine.callbacks import Callback
from trainlab.engine.callbacks.checkpoint import share_best_rule
from trainlab.engine.runtime import resolve_device
from trainlab.engine.trainer import Trainer
from trainlab.inference.outputs import class_predictions
from trainlab.models import custom
from trainlab.report.html import Predictions, write_report_safely
from trainlab.run import Run
from trainlab.session import Session, apply_thread_count, build_data, build_session, check_model_for_data
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


def train(model: str | type | nn.Module | None = None, data: str | None = None, epochs: int | None = None, *,
          config: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] | None = None,
          resume: str | Path | None = None, resume_force: bool = False, trust_code: bool = False,
          **flags: Any) -> "Run":
    """Train and return the :class:`Run`.

    ``flags`` are the CLI flag names (``lr``, ``batch_size``, ``optimizer``, ``device``, ``seed``, ``name``,
    ``out``); ``overrides`` are dotted keys (``{"optim.momentum": 0.9}`` or ``["optim.momentum=0.9"]``).
    ``resume`` continues a run directory from its last checkpoint; changing anything but the epoch count, device
    or progress display on resume is refused unless ``resume_force``.

    ``model`` may also be your own ``nn.Module``: a reference (``"path/to/file.py:Net"``, ``"package.module:Net"``;
    importing it runs that code), a class (built with ``overrides`` such as ``{"model.width": 64}``) or an instance
    (trained as it is).  Resuming a run of an own model imports its recorded file only with ``trust_code``, or
    uses the class passed as ``model``.
    """
    given = model if not isinstance(model, str) else None
    if resume is not None:
        run_dir = rundir.require_run(resume)
        flags = {"model": None if given is not None else model, "data": data, "epochs": epochs, **flags}
        cfg = _resume_config(run_dir, flags, overrides, resume_force)
        return _start(cfg, run_dir, resume=True, model=given, trust_code=trust_code)
    reference = model if given is None else \
        custom.remember(given if isinstance(given, type) else type(given)).reference
    flags = {"model": reference, "data": data, "epochs": epochs, **flags}
    return train_config(config_mod.load(config, flags=flags, overrides=overrides), model=given)


def train_config(cfg: RunConfig, *, bundle: DataBundle | None = None,
                 callbacks: Mapping[str, Callback] | None = None, model: type | nn.Module | None = None) -> "Run":
    """Train a validated config in a fresh run directory, optionally on prebuilt splits (k-fold, search).

    The data is built first, so a dataset that fails to load leaves no run directory behind; a failure while
    building the rest (model, weights to start from, batch-size probe) removes the fresh directory again.
    An own model (``model.name`` a reference, or ``model`` its class or instance) is loaded and its options
    checked before even the data.
    """
    own = _own_model(cfg, model)
    with distributed.process_group(resolve_device(cfg.train.device), quiet=(TrainingInterrupted,)):
        distributed.check_batch_size(cfg.train.batch_size)  # before anything is written
        if bundle is None:
            bundle = build_data(cfg)
        check_model_for_data(cfg, bundle.meta)
        run_dir = distributed.from_main(lambda: rundir.create(cfg))  # one directory, named by rank 0
        return _start(cfg, run_dir, bundle=bundle, callbacks=callbacks, own=own)


def resume_config(cfg: RunConfig, run_dir: Path, *, bundle: DataBundle | None = None,
                  model: type | nn.Module | None = None, trust_code: bool = False) -> "Run":
    """Continue ``run_dir`` from its last checkpoint with an already checked config, optionally on prebuilt splits
    (k-fold resumes an interrupted fold this way; :func:`train` checks the config against the saved one first)."""
    return _start(cfg, run_dir, resume=True, bundle=bundle, model=model, trust_code=trust_code)


def _own_model(cfg: RunConfig,
               model: type | nn.Module | None) -> tuple[type | nn.Module, custom.ModelSource] | None:
    """The class (or instance) of an own model and its source, options checked against the constructor; None for a
    zoo model.  A class defined in ``__main__`` trains, with a warning that the run says it cannot be re-imported."""
    if model is None and not custom.is_reference(cfg.model.name):
        return None
    if model is None:
        model, source = custom.resolve(cfg.model.name)
    else:
        source = custom.remember(model) if isinstance(model, type) else custom.remember(type(model), model)
    if isinstance(model, nn.Module) and cfg.model.options():
        raise ValueError(f"model options {sorted(cfg.model.options())} are for building a class; an instance "
                         "trains as it is: pass the class instead, or build the instance with those settings")
    if isinstance(model, type):
        custom.check_options(model, cfg.model.name, cfg.model.options())
    if source.kind == custom.UNIMPORTABLE:
        logger.warning("model %s (module %s) is defined in __main__ or inside a function, so no other process can "
                       "import it: the run records this, and reopening it elsewhere needs the class passed again "
                       "(trainlab.load_run(path, model=%s))",
                       source.class_name, source.module, source.class_name.split(".")[-1])
    return model, source


def _recorded_model(run_dir: Path, model: type | nn.Module | None,
                    trust_code: bool) -> tuple[type | nn.Module, custom.ModelSource] | None:
    """A resumed run's own model: the class passed in, or its recorded file checked and imported if trusted."""
    recorded = rundir.read_model_source(run_dir)
    if recorded is None:
        return None
    source = custom.ModelSource.from_dict(recorded)
    if model is None:
        return custom.load_recorded(source, trust=trust_code, run=run_dir), source
    custom.adopt(source, model)  # the run reopens in this process (its report, the Run returned) with this model
    return model, source


def _start(cfg: RunConfig, run_dir: Path, resume: bool = False, bundle: DataBundle | None = None,
           callbacks: Mapping[str, Callback] | None = None,
           own: tuple[type | nn.Module, custom.ModelSource] | None = None, model: type | nn.Module | None = None,
           trust_code: bool = False) -> "Run":
    if resume:
        own = _recorded_model(run_dir, model, trust_code)  # before anything in the directory changes
    group = distributed.process_group(resolve_device(cfg.train.device), quiet=(TrainingInterrupted,))
    with group, _main_only(rundir.exclusive, run_dir):
        main = distributed.is_main()
        try:
            apply_thread_count(cfg)
            session = build_session(cfg, run_dir if main else None, bundle=bundle, extra_callbacks=callbacks,
                                    initialize=not resume, model=own[0] if own else None)
        except BaseException:
            if not resume and main:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        session.trainer.checkpoint_dir = rundir.checkpoint_dir(run_dir)  # other ranks: run_dir None, nothing written
        share_best_rule(session.trainer.callbacks)
        # before any file is rewritten: a resume refused for want of a good checkpoint leaves the directory as it was
        resumed_from = _resume_latest(session.trainer, run_dir) if resume else None
        distributed.barrier()  # every rank has read its checkpoint before rank 0 writes (and prunes) any
        if main:
            if resume:  # a writer killed mid-write (SIGKILL) left its temporary file; the run is ours again
                atomic.sweep_orphans(run_dir)
            rundir.save_config(run_dir, session.cfg)
            rundir.write_data_meta(run_dir, session.bundle.meta)
            if own is not None:
                rundir.write_model_source(run_dir, own[1].to_dict())
        return _fit(session, run_dir, resumed_from)


def _main_only(context: Any, *args: Any) -> contextlib.AbstractContextManager[Any]:
    """``context(*args)`` on rank 0 (or a single process); nothing on the other ranks."""
    return context(*args) if distributed.is_main() else contextlib.nullcontext()


# Settings that may change when resuming without making the continuation differ from the original run.
RESUME_SAFE = ("train.epochs", "train.device", "train.log_every", "train.name", "train.out", "callbacks.progress",
               "train.init_from", "train.trust_pickle", "train.test_each_epoch", "callbacks.tensorboard")


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
    if distributed.is_main():
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
    main = distributed.is_main()  # rank 0 alone writes summary.json and the report
    write = run_summary.write if main else _write_nothing
    summary = run_summary.base(session, resumed_from)
    write(run_dir, dict(summary), state, "running", started)
    try:
        _compile(session)
        session.trainer.fit()
    except KeyboardInterrupt:
        write(run_dir, summary, state, "interrupted", started)
        raise TrainingInterrupted(run_dir) from None
    except Exception as err:
        write(run_dir, {**summary, "error": f"{type(err).__name__}: {err}"}, state, "crashed", started)
        raise
    distributed.barrier()  # rank 0's checkpoints are final before any rank reads the best one
    if state.failed:
        write(run_dir, summary, state, "failed", started)
        if main:
            write_report_safely(run_dir)
        raise TrainingFailed(run_dir, state.stop_reason or "training failed")
    if session.bundle.test is not None:
        summary.update(_test_best_weights(session, run_dir))
    summary.update(fastpath=session.fast.to_dict(), **run_summary.performance(session))
    write(run_dir, summary, state, "completed", started)
    if main:
        write_report_safely(run_dir, _test_predictions(session, run_dir), rebuild=False)
    distributed.barrier()  # summary.json is complete before any rank opens the run
    return Run(run_dir)


def _write_nothing(*args: Any) -> None:
    """A rank other than 0 writes no run file."""


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
    return class_predictions(session.trainer.eval_model, session.loader("test", shard=False),  # rank 0: all of it
                             session.cfg.train.tta_flip)
