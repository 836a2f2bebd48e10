"""The d2l sine-with-noise series: the dataset's windows and time-ordered splits, k-step-ahead prediction fed with its
own predictions, and a trained model whose errors grow with the horizon."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import trainlab
from trainlab.data import build
from trainlab.data import timeseries as ts


def test_series_is_d2l_sine_with_noise_and_fixed_by_its_seed() -> None:
    series = ts.sine_series(1000, noise=0.2, data_seed=0)
    clean = torch.sin(0.01 * torch.arange(1, 1001, dtype=torch.float32))
    residual = series - clean
    assert series.shape == (1000,)
    assert 0.18 < float(residual.std()) < 0.22 and abs(float(residual.mean())) < 0.03
    assert torch.equal(series, ts.sine_series(1000, 0.2, 0))
    assert not torch.equal(series, ts.sine_series(1000, 0.2, 1))
    assert_close(ts.sine_series(50, noise=0.0), clean[:50])


def test_dataset_rows_are_the_tau_values_before_each_label_split_in_time_order() -> None:
    bundle = build("sine-series", val_fraction=0.1, length=1000, tau=4, train_steps=600)
    series = ts.sine_series(1000, 0.2, 0)
    x, y = bundle.train.tensors
    assert bundle.meta.task == "regression" and bundle.meta.input_shape == (4,)
    assert bundle.meta.preprocess["features"] == ["x[t-4]", "x[t-3]", "x[t-2]", "x[t-1]"]
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (540, 60, 396)
    assert torch.equal(x[7], series[7:11]) and float(y[7]) == float(series[11])
    vx, vy = bundle.val.tensors
    assert torch.equal(vx[0], series[540:544]) and float(vy[-1]) == float(series[603])  # right after training
    tx, ty = bundle.test.tensors
    assert torch.equal(tx[0], series[600:604]) and float(ty[-1]) == float(series[-1])


def test_k_step_predictions_feed_back_their_own_predictions() -> None:
    """With "predict the mean of the window", every column can be computed by hand."""
    series = torch.arange(10, dtype=torch.float32)
    predictions = ts.k_step_predictions(lambda w: w.mean(dim=1, keepdim=True), series, tau=2, k=3, start=1)
    assert predictions.shape == (10 - 1 - 2 - 3 + 1, 3)
    # window [1, 2] → 1.5, then [2, 1.5] → 1.75, then [1.5, 1.75] → 1.625
    assert_close(predictions[0], torch.tensor([1.5, 1.75, 1.625]))
    assert_close(predictions[:, 0], (series[1:6] + series[2:7]) / 2)  # one step ahead sees only observations
    errors = ts.k_step_errors(lambda w: w.mean(dim=1), series, tau=2, k=3, start=1)
    # every window starting at s predicts s+0.5, s+0.75, s+0.625 for s+2, s+3, s+4
    assert_close(errors, torch.tensor([1.5 ** 2, 2.25 ** 2, 3.375 ** 2]))


def test_a_perfect_one_step_model_is_perfect_at_every_horizon() -> None:
    series = torch.arange(20, dtype=torch.float32) * 0.5
    def next_value(w: torch.Tensor) -> torch.Tensor:  # exact for a straight line
        return 2 * w[:, -1] - w[:, -2]

    assert_close(ts.k_step_errors(next_value, series, tau=3, k=5), torch.zeros(5))


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    out = tmp_path_factory.mktemp("timeseries")
    run = trainlab.train(model="mlp", data="sine-series", epochs=5, out=str(out), name="sine", seed=0,
                         overrides=["callbacks.progress.style=none", "optim.name=adam", "optim.lr=0.01",
                                    "train.batch_size=16"])
    model = run.load_model()
    return model.eval()


@pytest.mark.parametrize("k", [16, 64])
def test_trained_model_one_step_error_is_below_its_k_step_error(trained_mlp: torch.nn.Module, k: int) -> None:
    series = ts.sine_series(1000, 0.2, 0)
    errors = ts.k_step_errors(trained_mlp, series, tau=4, k=k, start=600)  # test region only
    assert float(errors[0]) < 0.1  # close to the noise variance 0.04 one step ahead
    one, far = float(errors[0]), float(errors[-1])
    assert one < far / 1.3, f"1-step error {one:.4f}, {k}-step error {far:.4f}"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: build("sine-series", tau=0), r"tau must be in \[1, 999\] for a series of 1000 steps, got 0"),
    (lambda: build("sine-series", length=100, train_steps=600), r"train_steps must be in \[1, 95\]"),
    (lambda: build("sine-series", noise=-1.0), "noise must be >= 0, got -1.0"),
    (lambda: ts.k_step_predictions(lambda w: w[:, -1], torch.zeros(10), tau=4, k=0), "k .steps ahead. must be >= 1"),
    (lambda: ts.k_step_predictions(lambda w: w[:, -1], torch.zeros(10), tau=4, k=7),
     "no window of tau=4 plus k=7 steps after start=0"),
])
def test_bad_options_say_what_and_how_to_fix(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_cli_trains_on_the_series(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("train", "--model", "linear", "--data", "sine-series", "--epochs", "1",
                             "--out", str(tmp_path), "--name", "lin", "--set", "callbacks.progress.style=none")
    assert code == 0, err
    assert (tmp_path / "lin" / "metrics.csv").read_text().splitlines()[0].count("val_rmse") == 1
