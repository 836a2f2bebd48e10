"""Building a session from a config: data, model, optimizer, schedule, loss, callbacks and trainer.

The training lifecycle (:mod:`trainlab.training`), the LR finder and evaluation all start here.  Nothing in this
module writes files.  Building seeds torch's RNGs (``train.seed``, ``train.deterministic``) and sets the
accelerator backend flags the config asks for, because a reproducible build needs them; the thread count, which
only training needs, is :func:`apply_thread_count`, called by whoever is about to train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from trainlab import data as data_mod
from trainlab import models, rundir, weights
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle, DataMeta
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.data.whiten import check_flip
from trainlab.engine import autobatch, distributed, fastpath, sequence
from trainlab.engine.callbacks import Callback
from trainlab.engine.runtime import choose_threads, resolve_device, resolve_precision, seed_everything
from trainlab.engine.step import StepRecipe
from trainlab.engine.trainer import LoopSettings, Trainer
from trainlab.losses import build_loss
from trainlab.models import custom
from trainlab.optim import apply_finetune, build_optimizer, build_schedule, updates_per_epoch
from trainlab.models.recurrent import LAYERS as RECURRENT
from trainlab.registry import CALLBACKS, MODELS

logger = logging.getLogger(__name__)


@dataclass
class Session:
    """Everything built from one config, ready to fit or evaluate."""

    cfg: RunConfig
    device: torch.device
    bundle: DataBundle
    model: nn.Module
    trainer: Trainer
    fast: fastpath.FastPath = field(default_factory=fastpath.FastPath)

    def loader(self, split: str, shard: bool = True) -> Any:
        """A non-shuffled loader over ``train``, ``val`` or ``test`` (this rank's shard in a distributed job,
        unless ``shard`` is False: then every example, e.g. for rank 0's report)."""
        dataset = getattr(self.bundle, split)
        if dataset is None:
            raise missing_split(self.cfg.data.name, self.bundle, split)
        return make_split_loader(self.cfg, dataset, self.bundle.meta, self.device, training=False, shard=shard)


def missing_split(data: str, bundle: DataBundle, split: str) -> ValueError:
    """The error for a split the dataset does not have, naming the ones it has (a language model has no test)."""
    present = [name for name in ("train", "val", "test") if getattr(bundle, name) is not None]
    return ValueError(f"dataset '{data}' has no {split} split; it has {' and '.join(present)} (choose one with "
                      "--split, or split= in Python)")


def make_split_loader(cfg: RunConfig, dataset: Any, meta: DataMeta, device: torch.device, training: bool,
                      shard: bool = True) -> Any:
    """Training batches are shuffled and augmented; evaluation batches are neither.  In a distributed job each
    rank gets its shard and its share of the global ``train.batch_size`` (docs/distributed.md)."""
    rank, world = (distributed.rank(), distributed.world_size()) if shard else (0, 1)
    return make_loader(dataset, batch_size=cfg.train.batch_size // world, device=device,
                       transform=BatchTransform.from_preprocess(meta.preprocess), kind=cfg.data.loader,
                       shuffle=training, seed=cfg.train.seed, num_workers=cfg.data.num_workers,
                       augment=cfg.data.augment if training else None, rank=rank, world=world)


def build_model(cfg: RunConfig, meta: DataMeta, model: nn.Module | type | None = None) -> nn.Module:
    """The configured model; ``model`` is an own model's class (built with the config's options) or an instance
    (used as it is), handed in by whoever already holds it (see :mod:`trainlab.models.custom`)."""
    if isinstance(model, nn.Module):
        return model
    if model is not None:
        return custom.build(model, cfg.model.name, num_classes=meta.num_outputs, in_channels=meta.in_channels,
                            input_size=meta.input_size, options=cfg.model.options())
    return models.create(cfg.model.name, num_classes=meta.num_outputs, in_channels=meta.in_channels,
                         input_size=meta.input_size, **cfg.model.options())


def build_data(cfg: RunConfig) -> DataBundle:
    """The configured dataset's splits (built before any run directory exists, so bad data leaves nothing)."""
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    return data_mod.build(cfg.data.name, seed=cfg.train.seed, val_fraction=cfg.data.val_fraction,
                          **cfg.data.options())


def check_model_for_data(cfg: RunConfig, meta: DataMeta) -> None:
    """Refuse a zoo model that cannot learn anything true from the dataset, before a run directory exists.

    * Token ids (text datasets) are read by the sequence models only, and a table's rows by the others; the time
      series comes as rows of ``tau`` past values, d2l's formulation for an MLP.
    * A translation dataset pairs each source with a target of another length: only the encoder-decoder fits it,
      and it fits nothing else.
    * A bidirectional recurrent model on next-token (language model) data reads, in its backward direction, the
      very token each step must predict — the input one step later — so its loss and perplexity look good and mean
      nothing, and it cannot generate text, which has no future to read.
    """
    name, data = cfg.model.name, cfg.data.name
    if name not in MODELS:  # an own model: its author knows what it reads
        return
    sequence, kind, task = bool(MODELS.entry(name).meta.get("sequence")), meta.preprocess.get("kind"), meta.text_task
    if kind == "text" and not sequence:
        raise ValueError(f"{name} takes images or table rows, and '{data}' gives token ids; train a sequence model "
                         "on it: " + ("--model seq2seq" if task == "seq2seq" else "--model rnn, gru or lstm"))
    if sequence and kind == "table":
        raise ValueError(f"{name} reads sequences (token ids, or per-step features), and '{data}' is a table of rows "
                         f"of {meta.in_channels} values; train a table model such as --model mlp or --model linear "
                         "on it")
    if task == "seq2seq" and name != "seq2seq":
        raise ValueError(f"'{data}' pairs each source sequence with a target sequence of another length, which needs "
                         f"an encoder-decoder: train it with --model seq2seq ({name} gives one output per input)")
    if name == "seq2seq" and kind == "text" and task != "seq2seq":
        raise ValueError(f"seq2seq is an encoder-decoder for source and target sequences (numbers-to-digits, "
                         f"reverse-string), and '{data}' has {'the next token' if task == 'lm' else 'one label'} "
                         "to predict; train --model rnn, gru or lstm on it")
    if task == "lm" and cfg.model.options().get("bidirectional"):
        raise ValueError(f"model.bidirectional=true on '{data}', a language-model dataset (each step predicts the "
                         "next token): the backward direction would read the very token it must predict, so the "
                         "loss and perplexity would mean nothing and the model could not generate; set "
                         "model.bidirectional=false (bidirectional layers suit passage classification, e.g. "
                         "--data austen-novels)")


def with_data_defaults(cfg: RunConfig, meta: DataMeta) -> RunConfig:
    """The config with what the data decides for options left unset.

    A recurrent model predicts at every step by default (``model.output=steps``, what language models need); on
    passages with one label each (``austen-novels``) that cannot train, so there it predicts once per passage,
    after its last token (``last``).  The choice is saved with the run's config, so the run is rebuilt the same.
    """
    if cfg.model.name not in RECURRENT or "output" in cfg.model.options() or meta.text_task != "classify":
        return cfg
    logger.info("model.output=last: '%s' has one label per passage, so %s predicts once per passage, after its "
                "last token (set model.output=mean to average its steps instead)", cfg.data.name, cfg.model.name)
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"output": "last"})})


def build_session(cfg: RunConfig, run_dir: Path | None, bundle: DataBundle | None = None,
                  extra_callbacks: Mapping[str, Callback] | None = None, initialize: bool = False,
                  model: nn.Module | type | None = None) -> Session:
    """Seed, pick the device, and build data, model, optimizer, schedule, loss, callbacks and trainer.

    ``bundle`` replaces the configured dataset's splits (k-fold supplies each fold's train/val this way);
    ``extra_callbacks`` are objects the config cannot name (e.g. a search trial's pruning hook).
    ``initialize`` applies ``train.init_from`` (a fresh run only: a resume or an evaluation loads its own
    checkpoint).  ``model``: an own model's class or instance, as :func:`build_model` takes it.
    ``train.batch_size=auto`` is resolved here, so the returned session's config holds a number.
    """
    device = resolve_device(cfg.train.device)
    if bundle is None:
        bundle = build_data(cfg)
    seed_everything(cfg.train.seed, cfg.train.deterministic)  # model init never depends on how data was built
    meta = bundle.meta
    check_flip(meta.preprocess, cfg.train.tta_flip)
    cfg = with_data_defaults(cfg, meta)
    model = build_model(cfg, meta, model).to(device)
    if initialize and cfg.train.init_from:
        weights.init_model(model, cfg.train.init_from, trust_pickle=cfg.train.trust_pickle,
                           new_head=cfg.finetune.new_head)
    apply_finetune(model, cfg.finetune, announce=initialize)  # also on resume: the finetune callback thaws by epoch
    fast = fastpath.FastPath(cudnn_benchmark=fastpath.configure_backends(device, cfg.train.deterministic),
                             channels_last=fastpath.apply_channels_last(model, cfg.train.channels_last, device))
    loss_fn = build_loss(cfg.loss.name, meta.task, **cfg.loss.options()).to(device)
    if hasattr(model, "wrap_loss"):  # e.g. auxiliary classifiers add their own terms
        loss_fn = model.wrap_loss(loss_fn)
    distributed.check_batch_size(cfg.train.batch_size)  # the global batch must split evenly; auto is refused
    if cfg.train.batch_size == "auto":
        cfg = _with_batch_size(cfg, autobatch.find_batch_size(model, loss_fn, bundle.train, meta, device,
                                                              cap=cfg.train.max_batch_size))
    train_loader = make_split_loader(cfg, bundle.train, meta, device, training=True)
    sequence.configure_carry(model, train_loader)  # sequential text: hidden state carried across batches
    val_loader = make_split_loader(cfg, bundle.val, meta, device, training=False) if bundle.val is not None else None
    optimizer, fast.fused = fastpath.fuse_optimizer(build_optimizer(cfg.optim, model, cfg.finetune), cfg.train.fused,
                                                    device)
    updates = updates_per_epoch(len(train_loader), cfg.train.accumulate)
    fast.compile = sequence.keep_compile(cfg.train.compile, model,
                                         fastpath.wants_compile(cfg.train.compile, device, cfg.train.epochs * updates))
    schedule = build_schedule(cfg.sched, optimizer, total_steps=cfg.train.epochs * updates, steps_per_epoch=updates)
    callbacks: dict[str, Callback] = {name: CALLBACKS.get(name)(**opts) for name, opts in cfg.enabled_callbacks().items()}
    callbacks.update(extra_callbacks or {})
    if cfg.finetune.active():  # frozen BatchNorm in eval mode, gradual unfreezing
        if "finetune" in callbacks:
            raise ValueError("set finetune.bn and finetune.unfreeze_after in the finetune section, not in "
                             "callbacks.finetune")
        callbacks["finetune"] = CALLBACKS.get("finetune")(bn=cfg.finetune.bn,
                                                          unfreeze_after=cfg.finetune.unfreeze_after)
    if not distributed.is_main():
        callbacks.pop("progress", None)  # one progress display per job, rank 0's
    settings = LoopSettings(task=meta.task, epochs=cfg.train.epochs, device=device,
                            autocast_dtype=resolve_precision(cfg.train.precision, device),
                            log_every=cfg.train.log_every, tta_flip=cfg.train.tta_flip,
                            recipe=sequence.with_model_clipping(StepRecipe.from_config(cfg, model), model))
    trainer = Trainer(model, train_loader, val_loader, optimizer, schedule, loss_fn, settings, callbacks=callbacks,
                      run_dir=run_dir, checkpoint_dir=rundir.checkpoint_dir(run_dir) if run_dir is not None else None,
                      test_loader=_each_epoch_test_loader(cfg, bundle, device))
    trainer.train_module = distributed.wrap_model(model, device)
    if (seed := distributed.rank_seed(cfg.train.seed)) is not None:
        torch.manual_seed(seed)  # the same initial weights everywhere, then each rank its own dropout/mixing stream
    sample = fastpath.sample_input(bundle.train, train_loader.transform, device)
    fast.flops_per_example = fastpath.training_flops_per_example(model, sample) if sample is not None else None
    return Session(cfg, device, bundle, model, trainer, fast)


def _each_epoch_test_loader(cfg: RunConfig, bundle: DataBundle, device: torch.device) -> Any | None:
    """The test split's loader when ``train.test_each_epoch`` asks for per-epoch test metrics (recorded only)."""
    if not cfg.train.test_each_epoch:
        return None
    if bundle.test is None:
        logger.warning("train.test_each_epoch: dataset '%s' has no test split; no test metrics are recorded",
                       cfg.data.name)
        return None
    return make_split_loader(cfg, bundle.test, bundle.meta, device, training=False)


def _with_batch_size(cfg: RunConfig, batch_size: int) -> RunConfig:
    """The config with ``train.batch_size`` fixed to the probed number (saved so a resume reuses it)."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": batch_size})})




def apply_thread_count(cfg: RunConfig) -> int:
    """Set torch's CPU thread count for training (``train.threads``, or fewer when other processes are running now).

    Process-wide, so only code that is about to train calls it — never evaluation or prediction of a saved run.
    """
    threads, notice = choose_threads(cfg.train.threads, resolve_device(cfg.train.device))
    torch.set_num_threads(threads)
    if notice:
        logger.info(notice)
    return threads
