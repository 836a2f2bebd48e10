"""The training loop: fit and evaluate, emitting hooks to callbacks.  It owns the loop, nothing else."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.engine import checkpoint, distributed, sequence
from trainlab.engine.callbacks.base import Callback
from trainlab.engine.ema import WeightEMA
from trainlab.engine.fastpath import synchronize
from trainlab.engine.metrics import MetricAccumulator
from trainlab.engine.outputs import evaluation_logits, prediction_logits
from trainlab.engine.runtime import rng_restore, rng_snapshot
from trainlab.engine.state import TrainState
from trainlab.engine.step import StepRecipe, mixed_loss


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs: the task its metrics follow, epochs, device and precision, how often metrics are read,
    flip TTA at evaluation, and the per-update recipe (clipping, accumulation, penalty, mixing, EMA)."""

    task: str
    epochs: int
    device: torch.device
    autocast_dtype: torch.dtype | None = None
    log_every: int = 20
    tta_flip: bool = False
    recipe: StepRecipe = field(default_factory=StepRecipe)


HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_fit_end", "on_interrupt")


class Trainer:
    """Trains ``model`` with ``optimizer`` and a per-step ``schedule`` on the loaders' batches.

    ``callbacks`` is a name → callback mapping; names key their saved states in checkpoints.  Callbacks see the
    trainer as a :class:`~trainlab.engine.callbacks.base.TrainerView`.  ``run_dir`` is where callbacks write run
    files and ``checkpoint_dir`` where :meth:`save_checkpoint` writes (both None when nothing is saved).
    ``test_loader`` (``train.test_each_epoch``) adds test metrics to each epoch's history row for the curves only:
    they stay out of ``state.metrics``, so no callback or schedule can select on them.
    ``settings.recipe`` holds the per-update knobs; the schedule steps once per update.
    With an EMA, evaluation and prediction use the averaged weights (:attr:`eval_model`); with ``tta_flip`` they
    average the logits of each image and its left-right mirror.
    """

    def __init__(self, model: nn.Module, train_loader: Any, val_loader: Any | None, optimizer: torch.optim.Optimizer,
                 schedule: Any, loss_fn: nn.Module, settings: LoopSettings, *,
                 callbacks: dict[str, Callback] | None = None, run_dir: Path | None = None,
                 checkpoint_dir: Path | None = None, test_loader: Any | None = None) -> None:
        self.model, self.optimizer, self.schedule, self.loss_fn = model, optimizer, schedule, loss_fn
        self.train_loader, self.val_loader = train_loader, val_loader
        self.test_loader = test_loader  # train.test_each_epoch: recorded in the history, never in state.metrics
        self.task, self.device, self.autocast_dtype = settings.task, settings.device, settings.autocast_dtype
        self.log_every, self.tta_flip, self.recipe = settings.log_every, settings.tta_flip, settings.recipe
        self.run_dir, self.checkpoint_dir = run_dir, checkpoint_dir
        self.ema = WeightEMA(model, self.recipe.ema) if self.recipe.ema else None
        self.callbacks = dict(sorted((callbacks or {}).items(), key=lambda item: item[1].order))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.state = TrainState(epochs=settings.epochs, steps_per_epoch=len(train_loader))
        self._train_metrics = MetricAccumulator(self.task, self.device, across_ranks=True)
        self.train_module: nn.Module = model  # what the step calls: DistributedDataParallel(model) in a job

    @property
    def batch_size(self) -> int:
        """Examples per training batch."""
        return self.train_loader.batch_size

    @property
    def lr(self) -> float:
        """The learning rate in force now (the first parameter group's), for loggers."""
        return self.optimizer.param_groups[0]["lr"]

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate: the EMA average when enabled, else the live model."""
        return self.ema.module if self.ema is not None else self.model

    def fit(self) -> TrainState:
        """Train until ``epochs`` are done or a callback stops the run; Ctrl-C runs ``on_interrupt`` and re-raises."""
        s = self.state
        self._emit("on_fit_start")
        try:
            while s.epoch < s.epochs and not s.should_stop:
                self.model.train()  # before the hook, so a callback can keep parts in eval mode (frozen BatchNorm)
                self._emit("on_epoch_start")
                if s.batch_in_epoch == 0:
                    sequence.reset_carry(self.model)  # truncated BPTT: each epoch starts from a zero hidden state
                started = time.perf_counter()
                for x, y in self.train_loader.epoch(s.epoch, start=s.batch_in_epoch):
                    self._train_step(x, y)
                    self._emit("on_batch_end")
                    distributed.sync_step(s)  # all ranks stop (or are interrupted) at the same step
                    if s.should_stop:
                        break
                synchronize(self.device)  # the clock must include the queued device work
                s.epoch_seconds += time.perf_counter() - started
                if s.failed or s.batch_in_epoch < s.steps_per_epoch:
                    break
                self._finish_epoch()
                self._emit("on_epoch_end")
        except KeyboardInterrupt:
            self._emit("on_interrupt")
            raise
        self._emit("on_fit_end")
        return s

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward and backward one batch; update the weights when its accumulation group is complete."""
        s, recipe = self.state, self.recipe
        position, group = recipe.group_size(s.batch_in_epoch, s.steps_per_epoch)
        if position == 0:
            self.optimizer.zero_grad(set_to_none=True)
        mixed = recipe.mixing(x, y)
        with self.autocast():
            if mixed is None:
                output = self.train_module(x)
                loss = self.loss_fn(output, y)
            else:
                x, y, y_b, lam = mixed
                output = self.train_module(x)
                loss = mixed_loss(self.loss_fn, output, y, y_b, lam)
            objective = loss if recipe.penalty is None else loss + recipe.penalty()
        self.scaler.scale(objective / group).backward()
        if position + 1 == group:
            self._update()
        self._train_metrics.update(loss, prediction_logits(output), y)
        s.step += 1
        s.batch_in_epoch += 1
        s.last_loss = loss.detach()
        if s.step % self.log_every == 0:
            s.metrics.update(self._train_metrics.read("train"))

    def _update(self) -> None:
        """One optimizer update from the accumulated gradients, then the schedule and the EMA follow."""
        if self.recipe.clips:
            self.scaler.unscale_(self.optimizer)
            self.recipe.clip(self.model.parameters())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def _finish_epoch(self) -> None:
        s = self.state
        row: dict[str, float] = {"epoch": s.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
        row.update(self._train_metrics.read("train"))
        if self.val_loader is not None:
            row.update(self.evaluate(self.val_loader, prefix="val"))
        examples = self.train_loader.num_examples
        row.update(seconds=s.epoch_seconds, examples_per_s=examples / max(s.epoch_seconds, 1e-9))
        s.train_seconds += s.epoch_seconds
        s.metrics = dict(row)  # what callbacks and schedules select on: never the test metrics below
        if self.test_loader is not None:
            row.update(self.evaluate(self.test_loader, prefix="test"))
        s.history.append(row)
        observe = getattr(self.schedule, "observe", None)  # schedules that watch metrics (plateau)
        if observe is not None:
            observe(s.metrics)
        s.epoch, s.batch_in_epoch, s.epoch_seconds = s.epoch + 1, 0, 0.0
        self._train_metrics.reset()

    @torch.no_grad()
    def evaluate(self, loader: Any, prefix: str = "test") -> dict[str, float]:
        """Loss and accuracy (or RMSE) of :attr:`eval_model` over one pass of ``loader`` in eval mode."""
        model = self.eval_model
        was_training = model.training
        model.eval()
        carried = sequence.carry_snapshot(model)  # evaluation starts from zeros; training continues where it was
        sequence.reset_carry(model)
        totals = MetricAccumulator(self.task, self.device, across_ranks=True)  # each rank saw its own shard
        for x, y in loader.epoch(0):
            with self.autocast():
                output = self.eval_logits(model, x)
                totals.update(self.loss_fn(output, y), output, y)
        model.train(was_training)
        sequence.carry_restore(model, carried)
        return totals.read(prefix)

    def eval_logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Evaluation outputs; with ``tta_flip``, the mean logits of the images and their mirrors."""
        return evaluation_logits(model, x, self.tta_flip)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _emit(self, hook: str) -> None:
        for callback in self.callbacks.values():
            getattr(callback, hook)(self, self.state)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights needed to continue exactly: optimizer, schedule, RNGs, callbacks, the EMA
        weights, and the gradients summed so far when a checkpoint falls inside an accumulation group."""
        return {
            "train_state": self.state.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "train_metrics": self._train_metrics.state_dict(),
            "callbacks": {name: cb.state_dict() for name, cb in self.callbacks.items()},
            "rng": rng_snapshot(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "accumulated_grads": self._pending_grads(),
            "carried_state": sequence.carry_snapshot(self.model),  # recurrent models' hidden state (mid-epoch resume)
            **distributed.rank_states({"rng": rng_snapshot(), "train_metrics": self._train_metrics.state_dict(),
                                       "carried_state": sequence.carry_snapshot(self.model)}),
        }

    def _pending_grads(self) -> list[torch.Tensor | None] | None:
        position, _ = self.recipe.group_size(self.state.batch_in_epoch, self.state.steps_per_epoch)
        if position == 0:
            return None
        return [None if p.grad is None else p.grad.detach().clone() for p in self.model.parameters()]

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.state.load_state_dict(data["train_state"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.schedule.load_state_dict(data["schedule"])
        self.scaler.load_state_dict(data["scaler"])
        self._train_metrics.load_state_dict(data["train_metrics"])
        for name, cb_state in data["callbacks"].items():
            if name in self.callbacks:
                self.callbacks[name].load_state_dict(cb_state)
        rng_restore(data["rng"])
        sequence.carry_restore(self.model, data.get("carried_state"))
        if self.ema is not None and data.get("ema"):
            self.ema.load_state_dict(data["ema"])
        for param, grad in zip(self.model.parameters(), data.get("accumulated_grads") or []):
            param.grad = None if grad is None else grad.to(param.device)
        own = distributed.own_rank_state(data)  # in a job: this rank's own RNG streams and metric sums
        if own is not None:
            rng_restore(own["rng"])
            self._train_metrics.load_state_dict(own["train_metrics"])
            sequence.carry_restore(self.model, own.get("carried_state"))

    def save_checkpoint(self, kind: str, keep: int = 1, extra_meta: dict[str, Any] | None = None) -> Path:
        """Atomically write the model and trainer state into the checkpoint directory."""
        if self.checkpoint_dir is None:
            raise RuntimeError("this trainer has no checkpoint directory to save checkpoints in")
        s = self.state
        meta = {"kind": kind, "epoch": s.epoch, "step": s.step, "batch_in_epoch": s.batch_in_epoch,
                "metrics": s.metrics, **(extra_meta or {})}
        state = self.state_dict()  # in a job every rank takes part: each one's RNG state is gathered
        if not distributed.is_main():  # rank 0 alone writes
            return self.checkpoint_dir / f"{kind}-{s.step:09d}"
        return checkpoint.save(self.checkpoint_dir, kind, s.step, self.model.state_dict(), state, meta, keep=keep)

    def resume(self, path: Path) -> None:
        """Load weights and trainer state from a checkpoint directory."""
        ckpt = checkpoint.load(path)
        distributed.check_world_size(ckpt.state, path)
        try:
            self.model.load_state_dict(ckpt.model)
            self.load_state_dict(ckpt.state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:  # verified files, but not this run's state
            raise checkpoint.CheckpointError(f"checkpoint {path} does not fit this run "
                                             f"({type(err).__name__}: {err})") from None

    def load_weights(self, ckpt: checkpoint.Checkpoint) -> None:
        """Weights only (model and, when both have one, the EMA), e.g. to evaluate a saved run."""
        self.restore_weights({"model": ckpt.model, "ema": ckpt.state.get("ema")})

    def weights_snapshot(self) -> dict[str, Any]:
        """CPU copies of everything evaluation depends on — the trained weights and the EMA (None without one) —
        so a callback can put back exactly what it measured (:meth:`restore_weights`); plain tensors, checkpointable."""
        ema = self.ema.state_dict() if self.ema is not None else None
        if ema is not None:
            ema["weights"] = _cpu_copy(ema["weights"])
        return {"model": _cpu_copy(self.model.state_dict()), "ema": ema}

    def restore_weights(self, snapshot: dict[str, Any]) -> None:
        """Load a :meth:`weights_snapshot` (or a checkpoint's model and EMA); the EMA part only when both have one."""
        self.model.load_state_dict(snapshot["model"])
        if self.ema is not None and snapshot.get("ema"):
            self.ema.load_state_dict(snapshot["ema"])


def _cpu_copy(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu", copy=True) for name, t in weights.items()}
