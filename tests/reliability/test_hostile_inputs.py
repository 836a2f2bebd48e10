"""Hostile and broken inputs: each fails with a message naming the problem and the place, exit code != 0, and no
half-written run directory — or, for odd but valid files, loads correctly."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.files import write_image_folder
from tests.reliability.helpers import QUIET_ARGS
from trainlab.data import build


def train_args(out: Path, *extra: str | Path, quiet: list[str] = QUIET_ARGS) -> list[str | Path]:
    return ["train", "--epochs", "1", "--out", out, "--name", "x", *quiet, *extra]


def assert_refused(result: tuple[int, str, str], out: Path, *fragments: str) -> None:
    code, _, err = result
    assert code != 0, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in: {err}"
    assert "Traceback" not in err
    assert not (out / "x").exists(), "a failed start must leave no run directory"


# ---- images -------------------------------------------------------------------------------------------------

def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height (the pixel data never needs to exist to be dangerous)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
                     + chunk(b"IEND", b""))


def add_bad_file(root: Path, kind: str) -> Path:
    target = root / "dog" / {"truncated_jpeg": "cut.jpg", "zero_bytes": "empty.png", "text_as_png": "notes.png",
                             "bomb": "huge.png", "bomb_warning_range": "big.png"}[kind]
    if kind == "truncated_jpeg":
        from PIL import Image

        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(target, format="JPEG")
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif kind == "zero_bytes":
        target.write_bytes(b"")
    elif kind == "text_as_png":
        target.write_text("this is a text file, not an image\n")
    elif kind == "bomb":
        png_header_only(target, 100_000, 100_000)  # 10^10 pixels: PIL raises at open
    else:
        png_header_only(target, 12_000, 12_000)  # 1.44·10^8: above MAX_IMAGE_PIXELS, where PIL only warns
    return target


@pytest.mark.parametrize("kind", ["truncated_jpeg", "zero_bytes", "text_as_png", "bomb", "bomb_warning_range"])
def test_bad_image_files_are_named_and_refused(tmp_path: Path, run_cli, kind: str) -> None:
    root = tmp_path / "images"
    write_image_folder(root)
    bad = add_bad_file(root, kind)
    why = "decompression bomb" if kind.startswith("bomb") else "not a readable image"
    assert_refused(run_cli(*train_args(tmp_path, "--data", "imagefolder", "--set", f"data.root={root}")),
                   tmp_path, str(bad), why, "data.skip_bad=true")


def test_decompression_bomb_as_the_first_image_and_at_predict_time(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "images"
    write_image_folder(root)
    png_header_only(root / "cat" / "0000.png", 100_000, 100_000)  # sorts first: the default size comes from it
    assert_refused(run_cli(*train_args(tmp_path, "--data", "imagefolder", "--set", f"data.root={root}")),
                   tmp_path, "0000.png", "decompression bomb")
    (root / "cat" / "0000.png").rename(tmp_path / "bomb.png")
    code, _, _ = run_cli(*train_args(tmp_path, "--data", "imagefolder", "--set", f"data.root={root}"))
    assert code == 0
    code, _, err = run_cli("predict", tmp_path / "x", tmp_path / "bomb.png")
    assert code == 2 and "bomb.png: refused" in err and "Traceback" not in err


def test_palette_alpha_cmyk_and_16bit_images_load_correctly(tmp_path: Path, run_cli) -> None:
    from PIL import Image

    root = tmp_path / "images"
    write_image_folder(root, classes=("dog",))
    (root / "odd").mkdir()
    palette = Image.new("P", (6, 5), 1)
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(root / "odd" / "a_palette_alpha.png", transparency=0)  # index 0 transparent: white when composited
    Image.new("CMYK", (6, 5), (0, 255, 255, 0)).save(root / "odd" / "b_cmyk.jpg")  # pure red in CMYK
    Image.fromarray(np.full((5, 6), 50_000, dtype=np.uint16)).save(root / "odd" / "c_16bit.png")
    for hidden in (root / ".thumbnails", root / "odd" / ".cache"):  # hidden folders are not classes nor images
        hidden.mkdir()
        (hidden / "junk.png").write_text("junk")
    bundle = build("imagefolder", root=str(root), mode="RGB", val_fraction=0.0)
    assert bundle.meta.classes == ["dog", "odd"]
    x, y = bundle.train.tensors
    palette_img, cmyk_img, deep_img = x[y == 1].float()
    assert palette_img[:, 0, 0].tolist() == [255, 255, 255] and palette_img[:, 2, 3].tolist() == [200, 0, 0]
    assert cmyk_img[0].mean() > 200 and cmyk_img[1:].mean() < 40
    assert torch.all((deep_img - 50_000 / 257).abs() <= 1)
    code, _, err = run_cli(*train_args(tmp_path, "--data", "imagefolder", "--set", f"data.root={root}"))
    assert code == 0, err


def test_empty_class_folder_is_refused(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "images"
    write_image_folder(root)
    (root / "owl").mkdir()
    (root / "owl" / ".DS_Store").write_text("hidden files do not count")
    assert_refused(run_cli(*train_args(tmp_path, "--data", "imagefolder", "--set", f"data.root={root}")),
                   tmp_path, f"{root / 'owl'}: empty class folder")


# ---- CSV tables ---------------------------------------------------------------------------------------------

def write_table(path: Path, rows: int = 40, **replace: dict[int, str]) -> Path:
    """A small table (numeric a, b; category c; numeric target y); ``replace={"a": {3: "abc"}}`` edits cells."""
    frame = {"a": [str(i % 7) for i in range(rows)], "b": [f"{i * 0.5:.1f}" for i in range(rows)],
             "c": ["red" if i % 3 else "blue" for i in range(rows)], "y": [f"{i % 5 + 0.25 * (i % 7)}" for i in range(rows)]}
    for column, cells in replace.items():
        for row, value in cells.items():
            frame[column][row] = value
    columns = [c for c in frame if frame[c] is not None]
    lines = [",".join(columns)] + [",".join(frame[c][i] for c in columns) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_args(out: Path, train: Path, test: Path | None = None, target: str = "y") -> list[str | Path]:
    extra = ["--set", f"data.test={test}"] if test else []
    return train_args(out, "--data", "csv", "--model", "mlp", "--set", "model.hidden=[4]", "--set", f"data.train={train}",
                      "--set", f"data.target={target}", *extra, quiet=QUIET_ARGS[:4])


def test_blank_and_na_cells_are_missing_values(tmp_path: Path, run_cli, caplog) -> None:
    table = write_table(tmp_path / "t.csv", a={1: "", 2: "N/A"}, c={4: ""}, y={5: "N/A"})
    with caplog.at_level("WARNING", logger="trainlab"):
        bundle = build("csv", train=str(table), target="y", val_fraction=0.0)
    names = bundle.meta.preprocess["features"]
    x = bundle.train.tensors[0]
    assert len(x) == 39, "the row without a target is dropped"
    assert x[1, names.index("a")] == 0 and x[2, names.index("a")] == 0  # missing → the training mean (0 after scaling)
    assert x[4, names.index("c=<missing>")] == 1
    assert "csv: dropping 1 row(s) without a 'y' value" in [r.getMessage() for r in caplog.records]
    code, _, err = run_cli(*csv_args(tmp_path, table))
    assert code == 0, err


def test_text_in_a_numeric_column_is_refused_with_line_and_value(tmp_path: Path, run_cli) -> None:
    table = write_table(tmp_path / "t.csv", a={3: "abc"})
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path,
                   "column 'a' holds numbers but has text at line(s) 5", str(table), "'abc'")


def test_missing_target_column_is_refused(tmp_path: Path, run_cli) -> None:
    table = write_table(tmp_path / "t.csv")
    assert_refused(run_cli(*csv_args(tmp_path, table, target="price")), tmp_path,
                   "data.target column 'price' is not in", "columns: a, b, c, y")


def test_test_file_missing_a_feature_or_with_text_is_refused(tmp_path: Path, run_cli) -> None:
    table = write_table(tmp_path / "t.csv")
    lacking = tmp_path / "test.csv"
    lacking.write_text("\n".join(line.rsplit(",", 3)[0] + "," + line.rsplit(",", 2)[1] + "," + line.rsplit(",", 1)[1]
                                 for line in table.read_text().splitlines()) + "\n")  # drop column b
    assert "b" not in lacking.read_text().splitlines()[0].split(",")
    assert_refused(run_cli(*csv_args(tmp_path, table, lacking)), tmp_path,
                   f"test file {lacking} lacks column(s) used in training: b")
    texty = write_table(tmp_path / "test2.csv", b={0: "twelve"})
    assert_refused(run_cli(*csv_args(tmp_path, table, texty)), tmp_path,
                   "column 'b' was numeric in training but has text at line(s) 2", str(texty), "'twelve'")


def test_unseen_category_is_encoded_as_unknown_with_a_warning(tmp_path: Path, run_cli) -> None:
    table = write_table(tmp_path / "t.csv")
    test = write_table(tmp_path / "test.csv", c={0: "green"})
    code, _, err = run_cli(*csv_args(tmp_path, table, test))
    assert code == 0, err
    assert "warning: column 'c': 1 value(s) not seen in training (green) are encoded as <unknown>\n" in err


# ---- config files, output directory, run directories ----------------------------------------------------------

@pytest.mark.parametrize("text, fragments", [
    ("train:\n  epoch: 3\n", ["config error at train.epoch: unknown key; did you mean 'epochs'?"]),
    ("optim:\n  lrr: 0.1\n", ["config error at optim.lrr: not an option of optimizer 'adam'"]),
    ("train:\n  seed: many\n", ["config error at train.seed: got 'many'"]),
    ("optim:\n  lr: -0.1\n", ["config error at optim.lr: got -0.1", "greater than 0"]),
    ("train:\n  batch_size: 0\n", ["config error at train.batch_size: got 0", "positive integer or auto"]),
    ("- just\n- a list\n", ["must hold a mapping of sections", "got list"]),
    ("train: [unclosed\n", ["is not valid YAML"]),
])
def test_bad_config_files_are_refused_before_anything_is_written(tmp_path: Path, run_cli, text: str,
                                                                 fragments: list[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs", *fragments)
    assert not (tmp_path / "runs").exists()


def test_out_under_a_regular_file_is_refused(tmp_path: Path, run_cli) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    assert_refused(run_cli(*train_args(tmp_path / "file" / "runs")), tmp_path,
                   "cannot create output directory", "choose another with --out")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_out_directory_is_refused(tmp_path: Path, run_cli) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_refused(run_cli(*train_args(locked)), locked, "is not writable", "--out")
    finally:
        locked.chmod(0o700)


def test_run_directory_from_a_newer_trainlab_is_refused_by_every_command(tiny_run: Path, tmp_path: Path,
                                                                       run_cli) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(tiny_run, newer)
    summary = json.loads((newer / "summary.json").read_text())
    summary["versions"]["trainlab"] = "99.0.0"
    (newer / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "x.png").write_bytes((tiny_run / "summary.json").read_bytes())
    for args in (["eval", newer], ["predict", newer, tmp_path / "x.png"], ["train", "--resume", newer]):
        code, _, err = run_cli(*args)
        assert code == 2 and "written by trainlab 99.0.0, newer than this trainlab" in err, args
