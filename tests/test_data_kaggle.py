"""Tests for the Kaggle digit-recognizer CSV reader."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastnn.data import DataError, read_kaggle_csv

PIXELS = [f"pixel{i}" for i in range(784)]


def image_row(seed: int) -> list:
    return list(np.random.default_rng(seed).integers(0, 256, size=784))


def write_csv(path, header: list[str], rows: list[list]) -> str:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def train_csv(tmp_path):
    """Write a train.csv of 3 good rows, with changes: {(row, column index): value}."""

    def write(changes=None):
        rows = [[label, *image_row(label)] for label in (3, 0, 9)]
        for (row, column), value in (changes or {}).items():
            rows[row][column] = value
        return write_csv(tmp_path / "train.csv", ["label", *PIXELS], rows)

    return write


def expect_row_error(path, row: int, column: str, problem: str) -> None:
    """The DataError names the file, the 1-based row, its file line, the column and the problem."""
    where = f"row {row} (line {row + 1} of the file, counting the header as line 1)"
    pattern = re.escape(f"{path}: {where}, column '{column}': {problem}")
    with pytest.raises(DataError, match=pattern):
        read_kaggle_csv(path)


def test_train_csv(train_csv):
    X, y = read_kaggle_csv(train_csv())
    assert X.dtype == np.uint8 and X.shape == (3, 784)
    assert y.dtype == np.int64 and y.tolist() == [3, 0, 9]
    np.testing.assert_array_equal(X[1], image_row(0))


def test_test_csv_has_no_labels(tmp_path):
    path = write_csv(tmp_path / "test.csv", PIXELS, [image_row(1), image_row(2)])
    X, y = read_kaggle_csv(str(path))
    assert y is None
    assert X.dtype == np.uint8 and X.shape == (2, 784)
    np.testing.assert_array_equal(X[1], image_row(2))


def test_header_only(tmp_path):
    X, y = read_kaggle_csv(write_csv(tmp_path / "train.csv", ["label", *PIXELS], []))
    assert X.shape == (0, 784) and X.dtype == np.uint8
    assert y.shape == (0,) and y.dtype == np.int64


def test_extreme_values_are_fine(train_csv):
    X, y = read_kaggle_csv(train_csv({(0, 0): 0, (1, 0): 9, (0, 1): 0, (0, 784): 255}))
    assert y[:2].tolist() == [0, 9] and X[0, 0] == 0 and X[0, 783] == 255


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (["label", *PIXELS[:-1]], "column 785 ('pixel783') is missing (784 columns in all)"),
        (["label", *PIXELS, "extra"], "unexpected extra column 786 ('extra')"),
        (["label", "pixel1", "pixel0", *PIXELS[2:]], "column 2 is 'pixel1', expected 'pixel0'"),
        (["Label", *PIXELS], "column 1 is 'Label', expected 'pixel0'"),
        ([*PIXELS, "label"], "unexpected extra column 785 ('label')"),
    ],
    ids=["missing", "extra", "misordered", "misnamed", "label-last"],
)
def test_wrong_header(tmp_path, header, problem):
    path = write_csv(tmp_path / "train.csv", header, [[1] * len(header)])
    with pytest.raises(DataError, match=re.escape(f"{path}: wrong header: {problem}")):
        read_kaggle_csv(path)


def test_no_header_line(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["5", *map(str, image_row(0))], [])
    with pytest.raises(DataError, match="wrong header: column 1 is '5'.*label,pixel0"):
        read_kaggle_csv(path)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty cell (or NaN)"),
        ("NaN", "empty cell (or NaN)"),
        ("abc", "'abc' is not a number"),
        ("3.5", "3.5 is not a whole number (expected an integer 0..255)"),
        ("256", "256 is outside 0..255"),
        ("-1", "-1 is outside 0..255"),
    ],
    ids=["empty", "nan", "text", "fraction", "too-big", "negative"],
)
def test_bad_pixel(train_csv, value, problem):
    # Row index 1 is the 2nd data row; column index 11 is pixel10.
    expect_row_error(train_csv({(1, 11): value}), 2, "pixel10", problem)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("10", "10 is outside 0..9"), ("-3", "-3 is outside 0..9"), ("", "empty cell (or NaN)")],
    ids=["too-big", "negative", "empty"],
)
def test_bad_label(train_csv, value, problem):
    expect_row_error(train_csv({(2, 0): value}), 3, "label", problem)


def test_first_bad_cell_is_reported(train_csv):
    # Bad cells in rows 2 and 3: row 2 wins, and within it the left-most cell.
    path = train_csv({(2, 1): "x", (1, 500): "300", (1, 20): "-5"})
    expect_row_error(path, 2, "pixel19", "-5 is outside 0..255")


def test_blank_line_keeps_line_numbers(tmp_path):
    path = tmp_path / "test.csv"
    rows = [",".join(map(str, image_row(i))) for i in range(2)]
    path.write_text("\n".join([",".join(PIXELS), rows[0], "", rows[1]]) + "\n")
    expect_row_error(path, 2, "pixel0", "empty cell (or NaN)")


def test_true_false_column(tmp_path):
    # pandas reads a column of only True/False as booleans, not as text.
    path = write_csv(tmp_path / "train.csv", ["label", *PIXELS], [["True", *image_row(0)]])
    expect_row_error(path, 1, "label", "'True' is not a number")


def test_row_with_too_many_fields(tmp_path):
    path = write_csv(tmp_path / "test.csv", PIXELS, [image_row(0), [*image_row(1), 7]])
    with pytest.raises(DataError, match=r"not a well-formed CSV .*line 3"):
        read_kaggle_csv(path)


def test_empty_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("")
    with pytest.raises(DataError, match=re.escape(f"{path}: the file is empty")):
        read_kaggle_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_kaggle_csv(tmp_path / "nope.csv")


def test_binary_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe\x00\x80")
    with pytest.raises(DataError, match="not a text CSV file"):
        read_kaggle_csv(path)


def test_pandas_is_imported_only_to_read_a_csv(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["label", *PIXELS], [[3, *image_row(3)]])
    code = textwrap.dedent(
        f"""
        import sys
        import fastnn.data, fastnn.train
        assert "pandas" not in sys.modules, "imported with fastnn.data"
        fastnn.data.read_kaggle_csv({str(path)!r})
        assert "pandas" in sys.modules
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- rows wider or narrower than the header ---------------------------------------------


def kaggle_file(tmp_path, kind: str, rows: int = 3) -> tuple:
    """A good header and ``rows`` good rows (as lists of strings) of a train.csv or test.csv."""
    header = ["label", *PIXELS] if kind == "train" else list(PIXELS)
    label = (lambda i: [str(i % 10)]) if kind == "train" else (lambda i: [])
    body = [[*label(i), *map(str, image_row(i))] for i in range(rows)]
    return tmp_path / f"{kind}.csv", header, body


def write_lines(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n")
    return path


def expect_width_error(path, row: int, fields: int, header_fields: int, detail: str = ""):
    where = f"row {row} (line {row + 1} of the file, counting the header as line 1)"
    problem = f"has {fields} fields, but the header has {header_fields}{detail}"
    pattern = re.escape(f"{path}: not a well-formed CSV file: {where} {problem}.")
    with pytest.raises(DataError, match=pattern) as info:
        read_kaggle_csv(path)
    return str(info.value)


# Each case: how to change the rows, then (the row reported, the fields it has minus the
# header's, the detail said about it).
WIDTH_CASES = {
    # pandas takes the extra first column as the index: an index 0, 1, 2 is even a RangeIndex.
    "every-row-wider-index-from-0": (
        lambda rows: [[str(i), *r] for i, r in enumerate(rows)],
        (1, +1, ""),
    ),
    "every-row-wider-ids-from-1": (
        lambda rows: [[str(i + 1), *r] for i, r in enumerate(rows)],
        (1, +1, ""),
    ),
    "every-row-two-wider": (
        lambda rows: [[str(i), "7", *r] for i, r in enumerate(rows)],
        (1, +2, ""),
    ),
    # pandas' C parser: "Expected N fields in line M, saw K".
    "some-rows-wider": (lambda rows: [*rows[:1], [*rows[1], "7"], *rows[2:]], (2, +1, "")),
    "last-row-wider": (lambda rows: [*rows[:2], ["0", *rows[2]]], (3, +1, "")),
    # pandas fills NaN: it used to be reported as an empty cell.
    "row-narrower": (lambda rows: [*rows[:1], rows[1][:-1], *rows[2:]], (2, -1, "")),
    "first-row-two-narrower": (lambda rows: [rows[0][2:], *rows[1:]], (1, -2, "")),
    "trailing-comma-on-data-lines": (
        lambda rows: [[*r, ""] for r in rows],
        (1, +1, " (the extra field at its end is empty: a trailing comma?)"),
    ),
}


@pytest.mark.parametrize("kind", ["train", "test"])
@pytest.mark.parametrize("case", list(WIDTH_CASES))
def test_row_width_differs_from_header(tmp_path, kind, case):
    change, (row, extra, detail) = WIDTH_CASES[case]
    path, header, rows = kaggle_file(tmp_path, kind)
    write_lines(path, [",".join(header), *(",".join(r) for r in change(rows))])
    message = expect_width_error(path, row, len(header) + extra, len(header), detail)
    assert ("extra field" if extra > 0 else "missing field") in message


@pytest.mark.parametrize("kind", ["train", "test"])
def test_trailing_comma_on_every_line(tmp_path, kind):
    path, header, rows = kaggle_file(tmp_path, kind)
    write_lines(path, [",".join(line) + "," for line in [header, *rows]])
    column = len(header) + 1
    pattern = re.escape(
        f"{path}: wrong header: unexpected extra column {column}, with an empty name "
        "(the header line ends with a comma). Remove it from the header, and from every line that "
        "has one."
    )
    with pytest.raises(DataError, match=pattern):
        read_kaggle_csv(path)


def test_width_error_counts_lines_with_blank_lines(tmp_path):
    path, header, rows = kaggle_file(tmp_path, "test")
    lines = [",".join(header), ",".join(rows[0]), "", ",".join([*rows[1], "1", "2"])]
    write_lines(path, lines)
    # The blank line is row 2 (an empty row, as pandas reads it); the wide row is row 3.
    expect_width_error(path, 3, len(header) + 2, len(header))


def test_blank_line_is_named_blank(tmp_path):
    path, header, rows = kaggle_file(tmp_path, "test")
    write_lines(path, [",".join(header), ",".join(rows[0]), "", ",".join(rows[1])])
    with pytest.raises(DataError, match=re.escape("empty cell (or NaN): the line is blank")):
        read_kaggle_csv(path)


def test_good_file_is_parsed_once(tmp_path, monkeypatch):
    """Only the header and the first data row are read again to check the widths."""
    from fastnn.data import kaggle

    path, header, rows = kaggle_file(tmp_path, "train", rows=50)
    write_lines(path, [",".join(line) for line in [header, *rows]])
    pulled = []
    real_records = kaggle._records

    def counting(*args):
        for record in real_records(*args):
            pulled.append(record)
            yield record

    monkeypatch.setattr(kaggle, "_records", counting)
    X, y = read_kaggle_csv(path)
    assert X.shape == (50, 784) and y.tolist() == [i % 10 for i in range(50)]
    assert len(pulled) <= 2
