"""``trainlab export``: every zoo model exports and answers like the original at batch sizes 1, 2 and 7; an exported
digits run gives ``trainlab predict``'s answers on raw image files; bad input fails with one line, writing nothing."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trainlab
from trainlab import rundir
from trainlab.data.bundle import DataMeta
from trainlab.data.loaders import BatchTransform
from trainlab.data.preprocess import image_preprocess
from trainlab.export import FORMATS, ExportedPredictor, ExportError, export_run
from trainlab.export.check import check_export
from trainlab.export.graph import RawInput, example_inputs
from trainlab.inference.outputs import average_outputs
from trainlab.models import create
from trainlab.registry import MODELS

TINY = {"callbacks.progress.style": "none"}
# torch.export of these takes well under a second each (default suite).  Every format of a residual and a
# depthwise-separable net with squeeze-excitation runs in CI's slow suite; the whole zoo in every format (ONNX and
# TorchScript of every model: about 45 minutes on 2 cores) is the sweep, run on demand with `pytest -m sweep`.
FAST = {"lenet", "mlp"}  # a conv net and a dense one; simple-cnn runs end to end below
REPRESENTATIVE = {"lenet", "resnet18", "mobilenet_v3_small"}
# Every image model of the zoo exports in every format; only sequence models are skipped.
SEQUENCE_SKIP = ("a sequence model (registered with sequence=True) takes tokens or per-step features, not images; "
                 "text runs export in tests/test_export_text.py")


def zoo_meta() -> DataMeta:
    """Gray 28x28 images stored 0-255, normalised as MNIST: what the zoo sweep feeds every model."""
    return DataMeta(task="classification", input_shape=(1, 28, 28), num_classes=10, classes=list("0123456789"),
                    preprocess=image_preprocess(mode="L", size=(28, 28), mean=[0.1307], std=[0.3081]))


def zoo_cases() -> list:
    cases = []
    for fmt in FORMATS.names():
        for name in MODELS.names():
            fast = fmt == "torch-export" and name in FAST
            marks = [] if fast else [pytest.mark.slow] if name in REPRESENTATIVE else [pytest.mark.sweep]
            if MODELS.entry(name).meta.get("sequence"):
                marks.append(pytest.mark.skip(reason=SEQUENCE_SKIP))
            cases.append(pytest.param(name, fmt, marks=marks, id=f"{fmt}-{name}"))
    return cases


@pytest.mark.parametrize(("name", "fmt"), zoo_cases())
def test_every_zoo_model_exports_and_matches_at_three_batch_sizes(name: str, fmt: str, tmp_path: Path) -> None:
    meta = zoo_meta()
    torch.manual_seed(0)
    module = ExportedPredictor([create(name, num_classes=10, in_channels=1, input_size=(28, 28))], meta,
                               tta_flip=False).eval()
    spec = FORMATS.get(fmt)
    path = tmp_path / spec.file_name
    spec.save(module, example_inputs(meta, 2), path, {"input": "pixels", "output": "probabilities"})
    result = check_export(module, spec.load(path), meta, spec.tolerance, path)
    assert result.batch_sizes == (1, 2, 7)
    assert result.max_abs_diff <= spec.tolerance.atol + spec.tolerance.rtol
    assert spec.load(path)(example_inputs(meta, 7)).shape == (7, 10)


def test_the_graph_prepares_raw_pixels_exactly_as_predict_does() -> None:
    """load_image's rint to the stored levels, then BatchTransform: bit for bit, so exported answers equal predict's."""
    preprocess = image_preprocess(mode="L", size=(8, 8), max_value=16, mean=[0.3047], std=[0.3764])
    pixels = torch.randint(0, 256, (5, 1, 8, 8)).float()
    stored = torch.from_numpy(np.rint(pixels.numpy() * (16 / 255.0)))
    expected = BatchTransform.from_preprocess(preprocess)(stored)
    assert torch.equal(RawInput(preprocess)(pixels), expected)


@pytest.mark.parametrize(("folds", "tta_flip"), [(1, True), (3, False)], ids=["flip-tta", "three-folds"])
def test_the_graph_averages_folds_and_flips_as_predict_does(folds: int, tta_flip: bool, tmp_path: Path) -> None:
    meta = zoo_meta()
    torch.manual_seed(0)
    models = [create("lenet", num_classes=10, in_channels=1, input_size=(28, 28)).eval() for _ in range(folds)]
    module = ExportedPredictor(models, meta, tta_flip=tta_flip).eval()
    x = example_inputs(meta, 7)
    expected = average_outputs(models, BatchTransform.from_preprocess(meta.preprocess)(x), meta.task, tta_flip)
    assert torch.equal(module(x), expected)
    spec = FORMATS.get("torch-export")
    spec.save(module, example_inputs(meta, 2), tmp_path / "m.pt2", {})
    assert check_export(module, spec.load(tmp_path / "m.pt2"), meta, spec.tolerance, tmp_path).max_abs_diff <= 1e-5


def test_a_run_resized_on_the_device_takes_its_stored_size_and_resizes_in_the_graph(tmp_path: Path) -> None:
    """``data.size``: files are read at the stored size and every batch is resized to the model's, predict included."""
    preprocess = {**image_preprocess(mode="L", size=(8, 8), max_value=16, mean=[0.3], std=[0.4]), "resize": [16, 16]}
    meta = DataMeta(task="classification", input_shape=(1, 16, 16), num_classes=10, preprocess=preprocess)
    model = create("lenet", num_classes=10, in_channels=1, input_size=(16, 16)).eval()
    module = ExportedPredictor([model], meta, tta_flip=False).eval()
    x = example_inputs(meta, 7)
    assert x.shape == (7, 1, 8, 8)
    stored = torch.from_numpy(np.rint(x.numpy() * (16 / 255.0)))
    expected = average_outputs([model], BatchTransform.from_preprocess(preprocess)(stored), meta.task)
    assert torch.equal(module(x), expected)
    spec = FORMATS.get("torch-export")
    spec.save(module, example_inputs(meta, 2), tmp_path / "m.pt2", {})
    assert check_export(module, spec.load(tmp_path / "m.pt2"), meta, spec.tolerance, tmp_path).max_abs_diff <= 1e-5


def test_a_table_regression_model_exports_on_its_encoded_features(tmp_path: Path) -> None:
    meta = DataMeta(task="regression", input_shape=(4,), preprocess={"kind": "table", "scale": 1.0,
                                                                     "features": ["a", "b", "c", "d"]})
    module = ExportedPredictor([create("mlp", num_classes=1, in_channels=4, input_size=None)], meta, False).eval()
    spec = FORMATS.get("torch-export")
    spec.save(module, example_inputs(meta, 2), tmp_path / "m.pt2", {})
    assert check_export(module, spec.load(tmp_path / "m.pt2"), meta, spec.tolerance, tmp_path).max_abs_diff <= 1e-5
    assert spec.load(tmp_path / "m.pt2")(example_inputs(meta, 7)).shape == (7,)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> trainlab.Run:
    out = tmp_path_factory.mktemp("runs")
    return trainlab.train(epochs=2, out=out, name="digits", overrides=TINY)


def digit_files(folder: Path, count: int) -> list[Path]:
    """Test-split digits as PNG files of other sizes and modes: bright ink on black, and dark ink on white paper
    (which predict inverts for this dark-background dataset)."""
    from sklearn.datasets import load_digits

    images = load_digits().images[-count:]
    paths = []
    for i, image in enumerate(images):
        array = (image * 255 / 16).astype(np.uint8)
        picture = Image.fromarray(array).resize((24, 24), Image.Resampling.NEAREST)
        if i % 2:
            picture = Image.fromarray(255 - np.asarray(picture)).convert("RGB")
        paths.append(folder / f"digit{i}.png")
        picture.save(paths[-1])
    return paths


def raw_pixels(path: Path, metadata: dict) -> np.ndarray:
    """What docs/export.md tells a user to do before the graph, in plain PIL and numpy."""
    steps = metadata["before_graph"]
    height, width = steps["size"]
    image = Image.open(path).convert(steps["mode"])
    resample = Image.Resampling.BOX if image.width >= width else Image.Resampling.BILINEAR
    pixels = np.asarray(image.resize((width, height), resample), dtype=np.float32)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    border = np.concatenate([pixels[:, 0].ravel(), pixels[:, -1].ravel(), pixels[:, :, 0].ravel(),
                             pixels[:, :, -1].ravel()])
    if steps["invert_light_background"] and border.mean() > 127:
        pixels = 255 - pixels
    return pixels


def predicted(run_cli, run_dir: Path, files: list[Path]) -> list[dict]:
    code, out, err = run_cli("predict", run_dir, *files, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.strip().splitlines()]


def assert_same_as_predict(probabilities: np.ndarray, metadata: dict, expected: list[dict]) -> None:
    classes = metadata["classes"]
    assert [classes[i] for i in probabilities.argmax(axis=1)] == [p["label"] for p in expected]
    assert np.allclose(probabilities.max(axis=1), [p["probability"] for p in expected], atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # the legacy format's own note
@pytest.mark.parametrize("fmt", ["torch-export", "torchscript"])
def test_cli_export_gives_predicts_answers_on_raw_files(digits_run: trainlab.Run, run_cli, tmp_path: Path,
                                                        fmt: str) -> None:
    out = tmp_path / f"digits-{fmt}.{'pt2' if fmt == 'torch-export' else 'pt'}"
    code, stdout, err = run_cli("export", digits_run.path, "--format", fmt, "--out", out)
    assert code == 0, err
    assert "check: batch sizes 1, 2, 7: largest absolute difference" in stdout
    metadata = json.loads(rundir.export_meta_path(out).read_text())
    assert metadata["format"] == fmt and metadata["task"] == "classification"
    assert metadata["classes"] == [str(i) for i in range(10)]
    assert metadata["input"]["shape"] == [None, 1, 8, 8]
    assert metadata["versions"]["trainlab"] == trainlab.__version__
    assert metadata["check"]["batch_sizes"] == [1, 2, 7] and metadata["check"]["max_abs_diff"] <= 1e-5
    files = digit_files(tmp_path, 6)
    batch = torch.from_numpy(np.stack([raw_pixels(f, metadata) for f in files]))
    program = torch.export.load(out).module() if fmt == "torch-export" else torch.jit.load(str(out))
    with torch.no_grad():
        probabilities = program(batch).numpy()
    assert_same_as_predict(probabilities, metadata, predicted(run_cli, digits_run.path, files))


def test_onnx_export_runs_in_onnxruntime_with_predicts_answers(digits_run: trainlab.Run, run_cli,
                                                               tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    code, stdout, err = run_cli("export", digits_run.path, "--format", "onnx")
    assert code == 0, err
    path = digits_run.path / rundir.EXPORT_DIR / rundir.EXPORT_ONNX_FILE
    assert f"to {path}" in stdout
    metadata = json.loads(rundir.export_meta_path(path).read_text())
    assert metadata["opset"] >= 17 and metadata["check"]["max_abs_diff"] <= 1e-4
    files = digit_files(tmp_path, 7)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == metadata["input"]["name"] == "pixels"
    probabilities = session.run(None, {"pixels": np.stack([raw_pixels(f, metadata) for f in files])})[0]
    assert_same_as_predict(probabilities, metadata, predicted(run_cli, digits_run.path, files))


def test_kfold_run_exports_one_graph_averaging_its_folds(tmp_path_factory: pytest.TempPathFactory) -> None:
    from trainlab import config as config_mod
    from trainlab.experiments.kfold import run_kfold
    from trainlab.run import KFoldRun

    out = tmp_path_factory.mktemp("kfold")
    cfg = config_mod.load(overrides={**TINY, "train.epochs": 1, "train.out": str(out), "train.name": "cv"})
    folds = run_kfold(cfg, 2).path
    result = export_run(folds)
    assert result.path == folds / rundir.EXPORT_DIR / rundir.EXPORT_PT2_FILE
    assert json.loads(result.metadata_path.read_text())["folds"] == 2
    ensemble = KFoldRun(folds)
    x = example_inputs(ensemble.meta, 7)
    stored = torch.from_numpy(np.rint(x.numpy() * (16 / 255.0)))
    expected = ensemble.predict_outputs(BatchTransform.from_preprocess(ensemble.meta.preprocess)(stored))
    assert torch.allclose(torch.export.load(result.path).module()(x), expected, atol=1e-6)


OWN_MODEL = """
from torch import nn


class TinyOwn(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x)
"""


def test_an_own_model_exports_with_trust_code_and_runs_without_its_file(run_cli, tmp_path: Path) -> None:
    """(This process trained it, so the run would open without --trust-code too; another process needs the flag.)"""
    source = tmp_path / "tiny_own_export.py"
    source.write_text(OWN_MODEL)
    argv = ["train", "--model", f"{source}:TinyOwn", "--epochs", "1", "--out", tmp_path / "runs", "--name", "own",
            "--set", "callbacks.progress.style=none"]
    assert run_cli(*argv)[0] == 0
    out = tmp_path / "own.pt2"
    code, _, err = run_cli("export", tmp_path / "runs" / "own", "--out", out, "--trust-code")
    assert code == 0, err
    source.unlink()
    with torch.no_grad():
        assert torch.export.load(out).module()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_a_failed_check_fails_loudly_and_writes_nothing(digits_run: trainlab.Run, run_cli, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = torch.export.load

    class Drifting:
        """The loaded program, off by 0.01 at batch 7 only: what a baked-in batch size looks like."""

        def __init__(self, program: torch.export.ExportedProgram) -> None:
            self.program = program.module()

        def module(self):
            return lambda x: self.program(x) + (0.01 if x.shape[0] == 7 else 0.0)

    monkeypatch.setattr(torch.export, "load", lambda path: Drifting(real_load(path)))
    out = tmp_path / "new" / "drift.pt2"
    code, _, err = run_cli("export", digits_run.path, "--out", out)
    assert code != 0
    assert err.strip().splitlines()[-1].startswith("error: export check failed: drift.pt2 differs from the run's "
                                                   "model at batch size 7 by up to 0.01")
    assert list(tmp_path.iterdir()) == []
    code, _, err = run_cli("export", digits_run.path, "--out", out, "--no-check")
    assert code == 0 and out.is_file() and json.loads(rundir.export_meta_path(out).read_text())["check"] is None


def test_existing_output_is_kept_without_force(digits_run: trainlab.Run, run_cli, tmp_path: Path) -> None:
    out = tmp_path / "model.pt2"
    out.write_bytes(b"someone else's file")
    code, _, err = run_cli("export", digits_run.path, "--out", out)
    assert code == 2 and err.strip() == f"error: refusing to write {out}: it already exists and is not replaceable " \
                                        "without --force (an export is never overwritten silently); choose another " \
                                        "--out, or pass --force to overwrite it"
    assert out.read_bytes() == b"someone else's file" and not rundir.export_meta_path(out).exists()
    code, _, err = run_cli("export", digits_run.path, "--out", out, "--force")
    assert code == 0, err
    assert torch.export.load(out).module()(example_inputs(digits_run.meta, 1)).shape == (1, 10)


def test_default_output_is_never_overwritten_without_force(digits_run: trainlab.Run, run_cli) -> None:
    path = digits_run.path / rundir.EXPORT_DIR / rundir.EXPORT_TORCHSCRIPT_FILE
    assert run_cli("export", digits_run.path, "--format", "torchscript", "--no-check")[0] == 0
    before = path.read_bytes()
    code, _, err = run_cli("export", digits_run.path, "--format", "torchscript")
    assert code == 2 and err.startswith(f"error: refusing to write {path}: it already exists")
    assert path.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["no/such/run"], "error: no/such/run is not a trainlab run directory"),
    (["RUN", "--format", "tflite"], "error: unknown export format 'tflite'"),
    (["RUN", "--format", "onnx", "--out", "RUN/inside.onnx"], "lies inside the run directory"),
])
def test_bad_input_is_one_error_line(digits_run: trainlab.Run, run_cli, args: list[str], message: str) -> None:
    before = sorted(p.name for p in digits_run.path.rglob("*"))
    code, out, err = run_cli("export", *[a.replace("RUN", str(digits_run.path)) for a in args])
    assert code == 2 and out == ""
    assert message in err.splitlines()[0] and not any(line.startswith("Traceback") for line in err.splitlines())
    assert sorted(p.name for p in digits_run.path.rglob("*")) == before


def test_a_run_of_another_kind_is_refused_naming_it(digits_run: trainlab.Run, tmp_path: Path) -> None:
    opened = trainlab.load_run(digits_run.path)
    opened.meta = dataclasses.replace(opened.meta, preprocess={"kind": "audio"})
    with pytest.raises(ExportError, match=r"was trained on audio data; export handles image, table and text runs"):
        export_run(opened, out=tmp_path / "audio.pt2")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_extra_says_how_to_install(digits_run: trainlab.Run, run_cli, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    code, _, err = run_cli("export", digits_run.path, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert code == 2
    assert err.strip() == ('error: --format onnx needs the optional package(s) onnxruntime: install them with '
                           'pip install "trainlab[onnx]" (or pip install onnxruntime)')
    assert list(tmp_path.iterdir()) == []
