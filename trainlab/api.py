"""The Python API: ``train()``, ``load_run()`` and the :class:`Run` they return.

This module wires a validated config into data, model, optimizer, schedule, loss, callbacks and trainer;
the CLI is a thin layer over it.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from trainlab import config as config_mod
from trainlab import data as data_mod
from trainlab import models, run_summary, rundir, weights
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle, DataMeta
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.engine import autobatch, checkpoint, fastpath
from trainlab.engine.callbacks import Callback
from trainlab.engine.runtime import choose_threads, resolve_device, resolve_precision, seed_everything
from trainlab.engine.step import StepRecipe
from trainlab.engine.trainer import Trainer, evaluation_logits, evaluation_weights
from trainlab.losses import build_loss
from trainlab.optim import build_optimizer, build_schedule, updates_per_epoch
from trainlab.predict_input import load_images
from trainlab.registry import CALLBACKS

if TYPE_CHECKING:
    from trainlab.predict_table import TablePrediction


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; a checkpoint was saved in ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"training interrupted; resume with: trainlab train --resume {run_dir}")
        self.run_dir = run_dir


class TrainingFailed(RuntimeError):
    """The run stopped because it could not be trusted (e.g. the loss diverged)."""

    def __init__(self, run_dir: Path, reason: str) -> None:
        super().__init__(f"{reason}\nrun directory: {run_dir}")
        self.run_dir = run_dir


@dataclass
class Session:
    """Everything built from one config, ready to fit or evaluate."""

    cfg: RunConfig
    device: torch.device
    bundle: DataBundle
    model: nn.Module
    trainer: Trainer
    fast: fastpath.FastPath = field(default_factory=fastpath.FastPath)

    def loader(self, split: str) -> Any:
        """A non-shuffled loader over ``train``, ``val`` or ``test``."""
        dataset = getattr(self.bundle, split)
        if dataset is None:
            raise ValueError(f"dataset '{self.cfg.data.name}' has no {split} split")
        return _loader(self.cfg, dataset, self.bundle.meta, self.device, training=False)


def _loader(cfg: RunConfig, dataset: Any, meta: DataMeta, device: torch.device, training: bool) -> Any:
    """Training batches are shuffled and augmented; evaluation batches are neither."""
    return make_loader(dataset, batch_size=cfg.train.batch_size, device=device,
                       transform=BatchTransform.from_preprocess(meta.preprocess), kind=cfg.data.loader,
                       shuffle=training, seed=cfg.train.seed, num_workers=cfg.data.num_workers,
                       augment=cfg.data.augment if training else None)


def build_model(cfg: RunConfig, meta: DataMeta) -> nn.Module:
    return models.create(cfg.model.name, num_classes=meta.num_outputs, in_channels=meta.in_channels,
                         input_size=meta.input_size, **cfg.model.options())


def build_data(cfg: RunConfig) -> DataBundle:
    """The configured dataset's splits (built before any run directory exists, so bad data leaves nothing)."""
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    return data_mod.build(cfg.data.name, seed=cfg.train.seed, val_fraction=cfg.data.val_fraction,
                          **cfg.data.options())


def build_session(cfg: RunConfig, run_dir: Path | None, bundle: DataBundle | None = None,
                  extra_callbacks: Mapping[str, Callback] | None = None, initialize: bool = False) -> Session:
    """Seed, pick the device, and build data, model, optimizer, schedule, loss, callbacks and trainer.

    ``bundle`` replaces the configured dataset's splits (k-fold supplies each fold's train/val this way);
    ``extra_callbacks`` are objects the config cannot name (e.g. a search trial's pruning hook).
    ``initialize`` applies ``train.init_from`` (a fresh run only: a resume or an evaluation loads its own
    checkpoint).  ``train.batch_size=auto`` is resolved here, so the returned session's config holds a number.
    """
    device = resolve_device(cfg.train.device)
    threads, notice = choose_threads(cfg.train.threads, device)
    torch.set_num_threads(threads)
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
    if bundle is None:
        bundle = build_data(cfg)
    seed_everything(cfg.train.seed, cfg.train.deterministic)  # model init never depends on how data was built
    meta = bundle.meta
    model = build_model(cfg, meta).to(device)
    if initialize and cfg.train.init_from:
        weights.init_model(model, cfg.train.init_from, trust_pickle=cfg.train.trust_pickle)
    fast = fastpath.FastPath(cudnn_benchmark=fastpath.configure_backends(device, cfg.train.deterministic),
                             channels_last=fastpath.apply_channels_last(model, cfg.train.channels_last, device))
    loss_fn = build_loss(cfg.loss.name, meta.task, **cfg.loss.options()).to(device)
    if hasattr(model, "wrap_loss"):  # e.g. auxiliary classifiers add their own terms
        loss_fn = model.wrap_loss(loss_fn)
    if cfg.train.batch_size == "auto":
        cfg = _with_batch_size(cfg, autobatch.find_batch_size(model, loss_fn, bundle.train, meta, device,
                                                              cap=cfg.train.max_batch_size))
    train_loader = _loader(cfg, bundle.train, meta, device, training=True)
    val_loader = _loader(cfg, bundle.val, meta, device, training=False) if bundle.val is not None else None
    optimizer, fast.fused = fastpath.fuse_optimizer(build_optimizer(cfg.optim, model), cfg.train.fused, device)
    updates = updates_per_epoch(len(train_loader), cfg.train.accumulate)
    fast.compile = fastpath.wants_compile(cfg.train.compile, device, cfg.train.epochs * updates)
    schedule = build_schedule(cfg.sched, optimizer, total_steps=cfg.train.epochs * updates, steps_per_epoch=updates)
    callbacks: dict[str, Callback] = {name: CALLBACKS.get(name)(**opts) for name, opts in cfg.enabled_callbacks().items()}
    callbacks.update(extra_callbacks or {})
    trainer = Trainer(model, train_loader, val_loader, optimizer, schedule, loss_fn, task=meta.task,
                      epochs=cfg.train.epochs, device=device,
                      autocast_dtype=resolve_precision(cfg.train.precision, device), callbacks=callbacks,
                      log_every=cfg.train.log_every, run_dir=run_dir, recipe=StepRecipe.from_config(cfg, model),
                      tta_flip=cfg.train.tta_flip)
    sample = fastpath.sample_input(bundle.train, train_loader.transform, device)
    fast.flops_per_example = fastpath.training_flops_per_example(model, sample) if sample is not None else None
    return Session(cfg, device, bundle, model, trainer, fast)


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
            session = build_session(cfg, run_dir, bundle=bundle, extra_callbacks=callbacks, initialize=not resume)
        except BaseException:
            if not resume:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        rundir.save_config(run_dir, session.cfg)
        rundir.write_json(run_dir / rundir.DATA_FILE, session.bundle.meta.to_dict())
        if resume:
            _resume_latest(session.trainer, run_dir)
        return _fit(session, run_dir)


def _with_batch_size(cfg: RunConfig, batch_size: int) -> RunConfig:
    """The config with ``train.batch_size`` fixed to the probed number (saved so a resume reuses it)."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": batch_size})})


# Settings that may change when resuming without making the continuation differ from the original run.
RESUME_SAFE = ("train.epochs", "train.device", "train.log_every", "train.name", "train.out", "callbacks.progress",
               "train.init_from", "train.trust_pickle")


def _resume_config(run_dir: Path, flags: Mapping[str, Any], overrides: Any, force: bool) -> RunConfig:
    rundir.check_version(run_dir)
    return config_mod.load_for_resume(run_dir / rundir.CONFIG_FILE, flags, overrides, safe=RESUME_SAFE, force=force,
                                      advice="start a new run, or pass --resume-force to resume anyway")


def _resume_latest(trainer: Trainer, run_dir: Path) -> None:
    ckpt_dir = run_dir / rundir.CHECKPOINT_DIR
    checkpoint.clean_leftovers(ckpt_dir)
    latest = checkpoint.latest_valid(ckpt_dir, "last")
    if latest is None:
        raise checkpoint.CheckpointError(f"{run_dir} has no complete checkpoint to resume from")
    trainer.resume(latest)


def _fit(session: Session, run_dir: Path) -> "Run":
    started = time.perf_counter()
    state = session.trainer.state
    summary = run_summary.base(session)
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
        _write_report(run_dir, None)
        raise TrainingFailed(run_dir, state.stop_reason or "training failed")
    if session.bundle.test is not None:
        summary.update(_test_best_weights(session, run_dir))
    summary.update(fastpath=session.fast.to_dict(), **run_summary.performance(session))
    run_summary.write(run_dir, summary, state, "completed", started)
    _write_report(run_dir, session)
    return Run(run_dir)


def _compile(session: Session) -> None:
    """``torch.compile`` the model in place and compile its graphs now, before the training clock starts."""
    if not session.fast.compile:
        return
    eval_sizes = [len(split) for split in (session.bundle.val, session.bundle.test) if split is not None]
    fastpath.compile_model(session.trainer, session.fast, eval_sizes)


def _test_best_weights(session: Session, run_dir: Path) -> dict[str, Any]:
    """Test metrics of the weights ``trainlab eval`` and ``predict`` will use: the best checkpoint, else the last."""
    best = best_checkpoint_path(run_dir)
    if best is not None:
        session.trainer.load_weights(checkpoint.load(best))
    metrics = session.trainer.evaluate(session.loader("test"), prefix="test")
    return {"test": metrics, "test_checkpoint": best.name if best else "final weights (no checkpoint)"}


def best_checkpoint_path(run_dir: Path) -> Path | None:
    """The best checkpoint if one was saved, else the last, else None."""
    ckpt_dir = run_dir / rundir.CHECKPOINT_DIR
    return checkpoint.latest(ckpt_dir, "best") or checkpoint.latest(ckpt_dir, "last")


def _write_report(run_dir: Path, session: Session | None) -> None:
    """report.html for the finished run; a broken report must never cost the run, so errors only warn."""
    from trainlab.report.html import write_report_safely

    write_report_safely(run_dir, session)


@dataclass
class Prediction:
    """One input's prediction: class name and probability (classification) or value (regression)."""

    path: str
    label: str | None
    probability: float | None
    value: float | None = None


@torch.no_grad()
def model_outputs(model: nn.Module, x: torch.Tensor, task: str, tta_flip: bool = False) -> torch.Tensor:
    """Class probabilities ``(n, classes)``, or one value per example ``(n,)``, in eval mode; ``tta_flip`` averages
    the logits of each image and its mirror first, exactly as the trainer's evaluation does."""
    out = evaluation_logits(model.eval(), x, tta_flip).float()
    return out.softmax(dim=1) if task == "classification" else out.reshape(-1)


def average_outputs(models: Sequence[nn.Module], x: torch.Tensor, task: str, tta_flip: bool = False) -> torch.Tensor:
    """The models' probabilities (or values) averaged: one model gives its own, fold models an ensemble."""
    return torch.stack([model_outputs(model, x, task, tta_flip) for model in models]).mean(dim=0)


class RunDirectory:
    """What every saved run offers, a single run or a k-fold run: its config, data description and summary, and
    predictions from its model(s) — :meth:`load_models` is the only thing the kinds do differently here."""

    def __init__(self, path: str | Path) -> None:
        self.path = rundir.require_run(path)
        rundir.check_version(self.path)
        self.config = config_mod.load(self.path / rundir.CONFIG_FILE)
        self.meta = DataMeta.from_dict(rundir.read_json(self.path / rundir.DATA_FILE))

    @property
    def summary(self) -> dict[str, Any]:
        return rundir.read_json(self.path / rundir.SUMMARY_FILE)

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        """The model(s) whose outputs predictions average, in eval mode."""
        raise NotImplementedError

    def predict(self, paths: Sequence[str | Path], device: str = "cpu",
                tta: bool | None = None) -> list[Prediction] | TablePrediction:
        """Predict image files of any size or mode, preprocessed as the training data was.

        ``tta`` averages each image's logits with its left-right mirror's; None (the default) does so when the run
        was evaluated that way (``train.tta_flip``), so predictions match its reported test metrics.
        A run trained on a CSV table predicts a CSV file instead (``paths``: one file) and returns
        :meth:`predict_table`'s :class:`~trainlab.predict_table.TablePrediction`.
        """
        preprocess = self.meta.preprocess
        if preprocess.get("kind") == "table":
            return self.predict_table(paths, device)
        if preprocess.get("kind") != "image":
            raise ValueError(f"run {self.path} was trained on {preprocess.get('kind', 'non-image')} data; "
                             "predict on image files needs an image run")
        batch = BatchTransform.from_preprocess(preprocess)(load_images(paths, preprocess)).to(device)
        flip = self.config.train.tta_flip if tta is None else tta
        output = average_outputs(self.load_models(device), batch, self.meta.task, tta_flip=flip)
        if self.meta.task != "classification":
            return [Prediction(str(p), None, None, float(v)) for p, v in zip(paths, output)]
        classes = self.meta.classes or [str(i) for i in range(output.shape[1])]
        top = output.max(dim=1)
        return [Prediction(str(p), classes[int(i)], float(v)) for p, v, i in zip(paths, top.values, top.indices)]

    def predict_table(self, table: Any, device: str = "cpu") -> TablePrediction:
        """Predict every row of a CSV file (or data frame) on the target's own scale, e.g. prices in dollars.

        Several models (k-fold) are averaged in the model's output space: for a log target, a geometric mean.
        """
        from trainlab.predict_table import predict_table

        return predict_table(self.load_models(device), table, self.meta, device)


class Run(RunDirectory):
    """A finished (or interrupted) run directory, ready to inspect, evaluate and predict with."""

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch, as in ``metrics.csv``."""
        path = self.path / rundir.METRICS_FILE
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    def best_checkpoint(self) -> Path:
        """The best checkpoint if one was saved, else the last."""
        found = best_checkpoint_path(self.path)
        if found is None:
            raise checkpoint.CheckpointError(f"{self.path} has no complete checkpoint")
        return found

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The model with its best weights, in eval mode."""
        model = build_model(self.config, self.meta)
        model.load_state_dict(evaluation_weights(checkpoint.load(self.best_checkpoint())))
        return model.to(device).eval()

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        return [self.load_model(device)]

    def evaluate(self, split: str = "test", device: str = "auto", tta: bool | None = None) -> dict[str, float]:
        """Metrics of the best weights on a split of the run's dataset, evaluated as training evaluated them
        (EMA, ``train.tta_flip``); ``tta`` overrides the flip averaging."""
        overrides: dict[str, Any] = {"train.device": device}
        if tta is not None:
            overrides["train.tta_flip"] = tta
        cfg = config_mod.load(self.path / rundir.CONFIG_FILE, overrides=overrides)
        session = build_session(cfg, run_dir=None)
        session.trainer.load_weights(checkpoint.load(self.best_checkpoint()))
        return session.trainer.evaluate(session.loader(split), prefix=split)


def load_run(path: str | Path) -> Any:
    """Open a run directory; a k-fold directory opens as a :class:`KFoldRun` (the fold models averaged)."""
    from trainlab.experiments.ensemble import KFoldRun, is_kfold_run

    return KFoldRun(path) if is_kfold_run(path) else Run(path)
