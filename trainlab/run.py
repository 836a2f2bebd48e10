"""Reading saved runs: :class:`Run` (one run directory), :class:`KFoldRun` (fold models averaged), :func:`load_run`.

Everything here works from the files ``rundir`` defines — config, data description, checkpoints — and builds
only what it needs (the data for an evaluation, the model for a prediction); it never trains.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainlab import config as config_mod
from trainlab import rundir
from trainlab.data.whiten import check_flip
from trainlab.engine import checkpoint
from trainlab.engine.runtime import global_state_kept, resolve_device
from trainlab.inference.outputs import (
    Prediction,
    average_outputs,
    class_predictions,
    ensemble_metrics,
    loader_for,
    predict_images,
)
from trainlab.inference.table import TablePrediction, predict_table
from trainlab.inference.text import predict_texts
from trainlab.losses import build_loss
from trainlab.models import custom
from trainlab.models.recurrent import PerStepLoss
from trainlab.session import build_data, build_model, build_session, missing_split


def is_kfold_run(path: str | Path) -> bool:
    return (Path(path) / rundir.KFOLD_FILE).is_file()


class RunDirectory:
    """What every saved run offers, a single run or a k-fold run: its config, data description and summary, and
    predictions from its model(s) — :meth:`load_models` is the only thing the kinds do differently here.

    A run of your own model (``model_source.json``) imports that model's file or module only when ``trust_code``
    (it runs that code), unless ``model`` hands the class in or this process already loaded it with the same
    hash; a file changed since training is refused.  Opening the run never imports anything: using the model does.
    """

    def __init__(self, path: str | Path, *, model: type | nn.Module | None = None,
                 trust_code: bool = False) -> None:
        self.path = rundir.require_run(path)
        rundir.check_version(self.path)
        self.config = config_mod.load(self.path / rundir.CONFIG_FILE)
        self.meta = rundir.read_data_meta(self.path)
        recorded = rundir.read_model_source(self.path)
        self.model_source = custom.ModelSource.from_dict(recorded) if recorded is not None else None
        self.trust_code = trust_code
        self._given_class = model

    def model_class(self) -> type | nn.Module | None:
        """The own model's class (None for a zoo model): the one handed in, else the recorded one, checked and
        imported only as ``trust_code`` allows (:func:`~trainlab.models.custom.load_recorded`).  A run trained from
        an instance gets an instance (weights are loaded into it): the one handed in, or a copy of the original."""
        if self._given_class is not None or self.model_source is None:
            return self._given_class
        return custom.load_recorded(self.model_source, trust=self.trust_code, run=self.path)

    @property
    def summary(self) -> dict[str, Any]:
        return rundir.read_summary(self.path)

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        """The model(s) whose outputs predictions average, in eval mode."""
        raise NotImplementedError

    def predict(self, paths: Sequence[str | Path], device: str = "cpu",
                tta: bool | None = None) -> list[Prediction] | TablePrediction:
        """Predict image files of any size or mode, preprocessed as the training data was.

        ``tta`` averages each image's logits with its left-right mirror's; None (the default) does so when the run
        was evaluated that way (``train.tta_flip``), so predictions match its reported test metrics.
        A run trained on a CSV table predicts a CSV file instead (``paths``: one file) and returns
        :meth:`predict_table`'s :class:`~trainlab.inference.table.TablePrediction`.
        """
        preprocess = self.meta.preprocess
        if preprocess.get("kind") == "table":
            return self.predict_table(paths, device)
        if preprocess.get("kind") == "text":  # a passage classifier: each input is a text file or the text itself
            return predict_texts(self.load_models(device), [str(p) for p in paths], self.meta, device)
        if preprocess.get("kind") != "image":
            raise ValueError(f"run {self.path} was trained on {preprocess.get('kind', 'non-image')} data; "
                             "predict on image files needs an image run")
        flip = self.config.train.tta_flip if tta is None else tta
        check_flip(preprocess, flip)
        return predict_images(self.load_models(device), paths, self.meta, device, tta_flip=flip)

    def predict_table(self, table: Any, device: str = "cpu") -> TablePrediction:
        """Predict every row of a CSV file (or data frame) on the target's own scale, e.g. prices in dollars.

        Several models (k-fold) are averaged in the model's output space: for a log target, a geometric mean.
        """

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
        found = rundir.best_checkpoint(self.path)
        if found is None:
            raise checkpoint.CheckpointError(f"{self.path} has no complete checkpoint")
        return found

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The model with its best weights, in eval mode."""
        with torch.random.fork_rng(devices=[]):  # the initial weights it draws are replaced: leave the caller's stream
            model = build_model(self.config, self.meta, self.model_class())
        best = self.best_checkpoint()
        with _weights_fit_config(self.path, best):
            model.load_state_dict(checkpoint.evaluation_weights(checkpoint.load(best)))
        return model.to(device).eval()

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        return [self.load_model(device)]

    def test_predictions(self, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray] | None:
        """``(targets, predicted classes)`` of the best weights on the test split (flip-averaged as the run was
        evaluated), or None for a regression run, a dataset without a test split, or a run without checkpoint."""
        if self.meta.task != "classification" or rundir.best_checkpoint(self.path) is None:
            return None
        with global_state_kept():  # building data seeds the process as training would; the caller keeps its own
            test = build_data(self.config).test
        if test is None:
            return None
        loader = loader_for(test, self.meta, self.config.train.batch_size, torch.device(device))
        return class_predictions(self.load_model(device), loader, self.config.train.tta_flip)

    def evaluate(self, split: str = "test", device: str = "auto", tta: bool | None = None) -> dict[str, float]:
        """Metrics of the best weights on a split of the run's dataset, evaluated as training evaluated them
        (EMA, ``train.tta_flip``); ``tta`` overrides the flip averaging."""
        overrides: dict[str, Any] = {"train.device": device}
        if tta is not None:
            overrides["train.tta_flip"] = tta
        cfg = config_mod.load(self.path / rundir.CONFIG_FILE, overrides=overrides)
        with global_state_kept():  # a session seeds and configures as training would; the caller keeps its own
            session = build_session(cfg, run_dir=None, model=self.model_class())
            best = self.best_checkpoint()
            with _weights_fit_config(self.path, best):
                session.trainer.load_weights(checkpoint.load(best))
            return session.trainer.evaluate(session.loader(split), prefix=split)


class KFoldRun(RunDirectory):
    """A k-fold directory: ``kfold.json``, the base ``config.yaml``, ``folds.csv``, ``oof.csv`` and ``fold-N/`` runs;
    it predicts with the mean of its fold models."""

    def __init__(self, path: str | Path, *, model: type | nn.Module | None = None,
                 trust_code: bool = False) -> None:
        if not is_kfold_run(path):
            raise rundir.RunDirError(f"{path} is not a k-fold run (no {rundir.KFOLD_FILE})")
        super().__init__(path, model=model, trust_code=trust_code)
        self.info = rundir.read_json(self.path / rundir.KFOLD_FILE)
        def fold_model() -> type | nn.Module | None:  # an instance handed in: each fold loads its weights into a copy
            return copy.deepcopy(model) if isinstance(model, nn.Module) else model

        self.folds = [Run(self.path / name, model=fold_model(), trust_code=trust_code)
                      for name in self.info["completed"]]
        if not self.folds:
            raise rundir.RunDirError(f"{self.path} has no completed fold to predict with")

    def __repr__(self) -> str:
        return f"KFoldRun('{self.path}', folds={len(self.folds)})"

    @property
    def history(self) -> pd.DataFrame:
        """The per-fold table (one row per fold), as in ``folds.csv``."""
        return pd.read_csv(self.path / rundir.FOLDS_TABLE)

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        return [fold.load_model(device) for fold in self.folds]

    @torch.no_grad()
    def predict_outputs(self, batch: torch.Tensor, models: Sequence[nn.Module] | None = None,
                        tta: bool | None = None) -> torch.Tensor:
        """Mean over fold models of the class probabilities (classification) or values (regression); image batches
        are flip-averaged when the folds were evaluated so (``train.tta_flip``) unless ``tta`` says otherwise."""
        models = list(models) if models is not None else self.load_models(batch.device)
        flip = self.config.train.tta_flip if tta is None else tta
        return average_outputs(models, batch, self.meta.task, tta_flip=flip)

    def evaluate(self, split: str = "test", device: str = "auto", tta: bool | None = None) -> dict[str, float]:
        """Metrics of the ensemble on a split of the run's dataset (``test`` is the one k-fold never trains on);
        flip-averaged as the folds were evaluated (``train.tta_flip``) unless ``tta`` says otherwise."""
        cfg = self.config
        with global_state_kept():
            bundle = build_data(cfg)
        dataset = getattr(bundle, split)
        if dataset is None:
            raise missing_split(cfg.data.name, bundle, split)
        dev = resolve_device(device)
        models = self.load_models(dev)
        loader = loader_for(dataset, self.meta, cfg.train.batch_size, dev)
        # per-step outputs (an encoder-decoder's) are scored step by step, as each fold's own evaluation does
        loss_fn = PerStepLoss(build_loss(cfg.loss.name, self.meta.task, **cfg.loss.options()))
        flip = cfg.train.tta_flip if tta is None else tta
        return ensemble_metrics(models, loader, self.meta.task, loss_fn, split, tta_flip=flip)


@contextlib.contextmanager
def _weights_fit_config(run_dir: Path, ckpt: Path) -> Iterator[None]:
    """torch's state-dict mismatch (a RuntimeError with a traceback) as a CheckpointError saying why it happens:
    the model built from config.yaml is not the one the checkpoint was trained as, because the file was edited."""
    try:
        yield
    except RuntimeError as err:
        if "state_dict" not in str(err):
            raise
        detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise checkpoint.CheckpointError(
            f"the model {run_dir / rundir.CONFIG_FILE} describes does not fit the weights in {ckpt} "
            f"({detail[:300]}): was config.yaml edited after training? Put back the model settings the run was "
            "trained with") from None


def load_run(path: str | Path, *, model: type | nn.Module | None = None,
             trust_code: bool = False) -> Run | KFoldRun:
    """Open a run directory; a k-fold directory opens as a :class:`KFoldRun` (the fold models averaged).

    For a run of your own model, ``model`` passes its class again (needed for a class defined in ``__main__``),
    and ``trust_code`` allows importing the recorded file or module, which runs its code.
    """
    cls = KFoldRun if is_kfold_run(path) else Run
    return cls(path, model=model, trust_code=trust_code)
