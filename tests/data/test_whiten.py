"""data.whiten (pca, zca) on tables and images: identity covariance, fitted on the training split only, saved with
the run and applied identically to raw inputs at predict time."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.conftest import TINY
from trainlab import rundir
from trainlab.data import build, transform_table
from trainlab.data.bundle import DataMeta
from trainlab.data.images import load_images
from trainlab.data.loaders import BatchTransform
from trainlab.data.whiten import METHODS
from trainlab.inference.outputs import predict_images
from trainlab.inference.table import predict_table


def correlated_table(path: Path, rows: int = 300, seed: int = 0, category: bool = False) -> Path:
    """Three strongly correlated numeric features (and optionally a text column) with a two-class target."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 3)) @ np.array([[1.0, 0.8, 0.5], [0.0, 0.6, 0.4], [0.0, 0.0, 0.3]])
    frame = pd.DataFrame(base * [1.0, 10.0, 100.0], columns=["a", "b", "c"])
    if category:
        frame["color"] = rng.choice(["red", "green", "blue"], size=rows)
    frame["label"] = np.where(base[:, 0] > 0, "yes", "no")
    frame.to_csv(path, index=False)
    return path


def table(path: Path, method: str | None, **options: object):
    return build("csv", train=str(path), target="label", whiten=method, val_fraction=0.3, **options)


def covariance(x: torch.Tensor) -> torch.Tensor:
    return torch.cov(x.double().flatten(1).T, correction=0)


@pytest.mark.parametrize("method", METHODS)
def test_whitened_training_features_have_identity_covariance(tmp_path: Path, method: str) -> None:
    bundle = table(correlated_table(tmp_path / "t.csv"), method, whiten_eps=1e-9)
    x = bundle.train.tensors[0]
    torch.testing.assert_close(covariance(x), torch.eye(3, dtype=torch.float64), atol=1e-4, rtol=0)
    assert float(x.double().mean(0).abs().max()) < 1e-5
    plain = covariance(table(tmp_path / "t.csv", None).train.tensors[0])
    assert float((plain - torch.eye(3, dtype=torch.float64)).abs().max()) > 0.5  # the input was correlated


def test_zca_stays_close_to_the_input_and_pca_is_a_rotation_of_it(tmp_path: Path) -> None:
    path = correlated_table(tmp_path / "t.csv")
    plain = table(path, None).train.tensors[0].double()
    zca, pca = (table(path, m, whiten_eps=1e-9) for m in ("zca", "pca"))
    distance = {m: float((b.train.tensors[0].double() - plain).pow(2).mean()) for m, b in (("zca", zca), ("pca", pca))}
    assert distance["zca"] < 0.5 * distance["pca"]
    for column in range(3):  # each ZCA feature still follows its own input feature
        pair = torch.stack([zca.train.tensors[0][:, column].double(), plain[:, column]])
        assert float(torch.corrcoef(pair)[0, 1]) > 0.5
    m_zca = torch.tensor(zca.meta.preprocess["whiten"]["matrix"], dtype=torch.float64)
    m_pca = torch.tensor(pca.meta.preprocess["whiten"]["matrix"], dtype=torch.float64)
    rotation = torch.linalg.solve(m_zca, m_pca)  # pca = zca @ rotation
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-4, rtol=0)
    pca_x = pca.train.tensors[0].double()
    assert (pca_x.var(0)[0] > 0.99) and float(covariance(pca_x)[0, 1].abs()) < 1e-4


def test_whitening_is_fitted_on_the_training_rows_only(tmp_path: Path) -> None:
    bundle = table(correlated_table(tmp_path / "t.csv", rows=200), "zca", whiten_eps=1e-9)
    train, val = bundle.train.tensors[0], bundle.val.tensors[0]
    eye = torch.eye(3, dtype=torch.float64)
    assert float((covariance(train) - eye).abs().max()) < 1e-4
    assert float((covariance(val) - eye).abs().max()) > 1e-2  # validation rows keep their own statistics
    assert float((covariance(torch.cat([train, val])) - eye).abs().max()) > 1e-3
    assert float(val.double().mean(0).abs().max()) > 1e-3


def test_directions_without_training_variance_are_dropped_not_blown_up(tmp_path: Path, caplog) -> None:
    path = correlated_table(tmp_path / "t.csv", category=True)
    bundle = table(path, "pca")
    x = bundle.train.tensors[0]
    eigenvalues = torch.linalg.eigvalsh(covariance(x))
    # 3 numbers + 3 colors + <missing> + <unknown>: 8 features, 5 directions that vary (the colors sum to 1)
    assert x.shape[1] == 8 and int((eigenvalues > 0.9).sum()) == 5 and int((eigenvalues.abs() < 1e-6).sum()) == 3
    unseen = pd.read_csv(path).head(3).assign(color="purple")
    with caplog.at_level("WARNING", logger="trainlab"):
        encoded = transform_table(unseen, bundle.meta.preprocess)
    assert "column 'color': 1 value(s) not seen in training (purple) are encoded as <unknown>" in caplog.text
    assert float(encoded.abs().max()) < 10  # an unseen category is not multiplied by 1/sqrt(eps)


@pytest.mark.parametrize("method", METHODS)
def test_table_predict_on_raw_rows_equals_the_training_transform(tmp_path: Path, method: str) -> None:
    path = correlated_table(tmp_path / "t.csv", category=True)
    bundle = build("csv", train=str(path), test=str(correlated_table(tmp_path / "test.csv", seed=1, category=True)),
                   target="label", whiten=method, val_fraction=0.0)
    saved = DataMeta.from_dict(json.loads(json.dumps(bundle.meta.to_dict())))  # as data.json reads it back
    assert torch.equal(transform_table(pd.read_csv(path), saved.preprocess), bundle.train.tensors[0])
    torch.manual_seed(0)
    model = nn.Linear(bundle.meta.input_shape[0], 2).eval()
    prediction = predict_table([model], tmp_path / "test.csv", saved)
    with torch.no_grad():
        expected = model(bundle.test.tensors[0]).softmax(dim=1)
    np.testing.assert_allclose(prediction.probabilities.to_numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_whitened_digits_have_identity_covariance_where_pixels_vary(method: str) -> None:
    bundle = build("digits", whiten=method, whiten_eps=1e-9)
    x = BatchTransform.from_preprocess(bundle.meta.preprocess)(bundle.train.tensors[0])
    assert x.shape[1:] == (1, 8, 8)
    eigenvalues = torch.linalg.eigvalsh(covariance(x))
    constant = int((bundle.train.tensors[0].flatten(1).double().var(0) == 0).sum())
    assert constant >= 1  # a corner pixel of the 8x8 digits is always blank
    assert int((eigenvalues.abs() < 1e-6).sum()) == constant and int((eigenvalues > 0.999).sum()) == 64 - constant


def test_image_predict_on_raw_files_equals_the_training_transform(tmp_path: Path) -> None:
    from PIL import Image

    bundle = build("digits", size=10, whiten="zca", whiten_eps=0.01)
    run = tmp_path / "run"
    run.mkdir()
    rundir.write_data_meta(run, bundle.meta)
    saved = rundir.read_data_meta(run)
    assert saved.preprocess["whiten"]["method"] == "zca" and saved.preprocess["whiten"]["eps"] == 0.01
    images = bundle.test.tensors[0][:4]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.rint(image[0].numpy().astype(np.float64) * 255 / 16).astype(np.uint8)).save(paths[-1])
    training = BatchTransform.from_preprocess(bundle.meta.preprocess)(images)
    assert torch.equal(BatchTransform.from_preprocess(saved.preprocess)(load_images(paths, saved.preprocess)), training)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 10)).eval()
    predictions = predict_images([model], paths, saved)
    with torch.no_grad():
        expected = model(training).softmax(dim=1).max(dim=1)
    assert [p.probability for p in predictions] == pytest.approx(expected.values.tolist(), abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--set", "data.whiten=pcaa"], "data.whiten"),
    (["--set", "data.whiten=zca", "--set", "data.whiten_eps=0"], "data.whiten_eps must be > 0"),
    (["--set", "data.whiten_eps=0.1"], "data.whiten_eps is set but data.whiten is not"),
    (["--set", "data.whiten=zca", "--set", "data.size=40"], "whitening is limited to 1024"),
])
def test_bad_whiten_options_on_images(run_cli, tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run_cli("train", "--data", "digits", *TINY, "--out", tmp_path / "runs", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not (tmp_path / "runs").exists()


def test_whitening_a_one_feature_table_is_refused(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    pd.DataFrame({"x": np.arange(20.0), "label": ["a", "b"] * 10}).to_csv(path, index=False)
    code, _, err = run_cli("train", "--data", "csv", *TINY, "--out", tmp_path / "runs", "--set", f"data.train={path}",
                           "--set", "data.target=label", "--set", "data.whiten=pca")
    assert code == 2 and err.startswith("error: data.whiten:") and "1 feature" in err and "at least 2" in err, err
    assert not (tmp_path / "runs").exists()


def test_the_whitening_arrays_live_beside_data_json_and_read_back_exactly(tmp_path: Path) -> None:
    """features² numbers do not belong in data.json: it names whitening.safetensors, which holds them in float32."""
    bundle = build("digits", whiten="zca", whiten_eps=0.01)
    rundir.write_data_meta(tmp_path, bundle.meta)
    data = json.loads((tmp_path / rundir.DATA_FILE).read_text())
    assert data["preprocess"]["whiten"] == {"method": "zca", "eps": 0.01, "file": rundir.WHITEN_FILE}
    assert (tmp_path / rundir.DATA_FILE).stat().st_size < 5_000 < (tmp_path / rundir.WHITEN_FILE).stat().st_size
    assert rundir.read_data_meta(tmp_path) == bundle.meta  # every number as the fit made it


def test_a_data_json_with_the_arrays_inline_still_reads(tmp_path: Path) -> None:
    """Runs written before whitening.safetensors hold the mean and matrix in data.json itself."""
    bundle = build("digits", whiten="pca")
    rundir.write_json(tmp_path / rundir.DATA_FILE, {"schema": rundir.DATA_SCHEMA, **bundle.meta.to_dict()})
    assert rundir.read_data_meta(tmp_path) == bundle.meta


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "whitening.safetensors is missing: it holds the run's whitening"),
    ("foreign", "holds ['weights'], not whitening's ['mean', 'matrix']"),
    ("garbage", "is not the safetensors file trainlab wrote"),
    ("elsewhere", "names whitening arrays in '../other.safetensors'; trainlab reads whitening.safetensors"),
])
def test_a_missing_or_wrong_whitening_file_is_an_error_naming_it(tmp_path: Path, damage: str, message: str) -> None:
    from safetensors.torch import save_file

    rundir.write_data_meta(tmp_path, build("digits", whiten="zca").meta)
    arrays = tmp_path / rundir.WHITEN_FILE
    if damage == "missing":
        arrays.unlink()
    elif damage == "foreign":
        save_file({"weights": torch.zeros(2)}, arrays)
    elif damage == "garbage":
        arrays.write_bytes(b"not safetensors")
    else:
        data = json.loads((tmp_path / rundir.DATA_FILE).read_text())
        data["preprocess"]["whiten"]["file"] = "../other.safetensors"
        (tmp_path / rundir.DATA_FILE).write_text(json.dumps(data))
    with pytest.raises((ValueError, FileNotFoundError, rundir.RunDirError), match=re.escape(message)):
        rundir.read_data_meta(tmp_path)
