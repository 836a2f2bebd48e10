"""The d2l sine-with-noise time series and k-step-ahead prediction.

``x_t = sin(0.01 t) + eps_t``, ``eps_t ~ N(0, noise²)``, ``t = 1 … length``: an autoregressive model predicts
``x_t`` from the ``tau`` values before it. The dataset ``sine-series`` holds those windows as table rows
(``(x_{t-tau}, …, x_{t-1}) → x_t``), split in time order — training on the first ``train_steps`` windows (the last
``val_fraction`` of them held out for validation) and testing on every later window — so validation and test always
lie after what the model trained on, as forecasting needs.

:func:`k_step_predictions` shows why one-step accuracy flatters a model: predicting ``k`` steps ahead feeds the
model its own predictions, and the errors compound (d2l's "multistep prediction"). It takes any callable from
``(n, tau)`` windows to ``(n,)`` or ``(n, 1)`` values, e.g. a trained run's model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta
from trainlab.data.preprocess import table_preprocess
from trainlab.registry import DATASETS

Predictor = Callable[[torch.Tensor], torch.Tensor]


def sine_series(length: int = 1000, noise: float = 0.2, data_seed: int = 0) -> torch.Tensor:
    """``sin(0.01 t) + N(0, noise²)`` for ``t = 1 … length`` as a float32 vector, the same for the same seed."""
    if length < 2:
        raise ValueError(f"sine-series length must be >= 2 time steps, got {length}")
    if noise < 0:
        raise ValueError(f"sine-series noise must be >= 0, got {noise}")
    generator = torch.Generator().manual_seed(data_seed)
    time = torch.arange(1, length + 1, dtype=torch.float32)
    return torch.sin(0.01 * time) + torch.normal(0.0, noise, (length,), generator=generator)


def windows(series: torch.Tensor, tau: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(len - tau, tau)`` — row ``i`` is ``series[i : i + tau]`` — and labels ``series[tau:]``."""
    if not 1 <= tau < len(series):
        raise ValueError(f"tau must be in [1, {len(series) - 1}] for a series of {len(series)} steps, got {tau}")
    return series.unfold(0, tau, 1)[:-1].clone(), series[tau:].clone()


@DATASETS.register("sine-series", description="d2l's noisy sine time series: predict x_t from the tau values before it")
def sine_series_dataset(*, seed: int = 0, val_fraction: float = 0.1, length: int = 1000, tau: int = 4,
                        noise: float = 0.2, train_steps: int = 600, data_seed: int = 0) -> DataBundle:
    """Windows of :func:`sine_series` in time order: train and validation from the first ``train_steps`` windows,
    test from the rest. Nothing is random but the series itself (``data_seed``), so ``seed`` changes nothing here."""
    features, labels = windows(sine_series(length, noise, data_seed), tau)
    if not 1 <= train_steps < len(labels):
        raise ValueError(f"sine-series train_steps must be in [1, {len(labels) - 1}] (the series has {len(labels)} "
                         f"windows of tau={tau}; the rest are the test split), got {train_steps}")
    n_val = round(train_steps * val_fraction) if val_fraction > 0 else 0
    n_train = train_steps - n_val
    val = TensorDataset(features[n_train:train_steps], labels[n_train:train_steps]) if n_val else None
    meta = DataMeta(task="regression", input_shape=(tau,),
                    preprocess=table_preprocess(features=[f"x[t-{tau - i}]" for i in range(tau)]))
    return DataBundle(train=TensorDataset(features[:n_train], labels[:n_train]), val=val,
                      test=TensorDataset(features[train_steps:], labels[train_steps:]), meta=meta)


@torch.no_grad()
def k_step_predictions(predict: Predictor, series: torch.Tensor, tau: int, k: int,
                       start: int = 0) -> torch.Tensor:
    """Predictions ``(n, k)`` where column ``j`` is the ``(j+1)``-step-ahead prediction of ``series[t + tau + j]``
    for every window start ``t >= start`` that has ``k`` true values after it.

    Step 1 sees ``tau`` observed values; step ``j+1`` sees the ``j`` newest values as the model's own earlier
    predictions (d2l's multistep prediction), so its error includes every earlier step's.
    """
    if k < 1:
        raise ValueError(f"k (steps ahead) must be >= 1, got {k}")
    n = len(series) - start - tau - k + 1
    if n < 1:
        raise ValueError(f"a series of {len(series)} steps has no window of tau={tau} plus k={k} steps after "
                         f"start={start}; use a smaller k or start")
    known = series[start:start + n + tau - 1].unfold(0, tau, 1)  # (n, tau): the observed windows
    columns = list(known.T)
    for _ in range(k):
        window = torch.stack(columns[-tau:], dim=1)
        columns.append(predict(window).reshape(n).to(series.dtype))
    return torch.stack(columns[tau:], dim=1)


def k_step_errors(predict: Predictor, series: torch.Tensor, tau: int, k: int, start: int = 0) -> torch.Tensor:
    """Mean squared error ``(k,)`` of the 1-, 2-, …, k-step-ahead predictions against the series."""
    predictions = k_step_predictions(predict, series, tau, k, start)
    n = predictions.shape[0]
    truth = series[start + tau:start + tau + n + k - 1].unfold(0, k, 1)  # row t: the k values after window t
    return (predictions - truth).pow(2).mean(dim=0)
