"""Reading the CSV files of Kaggle's digit-recognizer competition.

``train.csv`` has a header ``label,pixel0,...,pixel783`` and one image per row;
``test.csv`` has the same without the ``label`` column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fastnn.files.atomic import write_text

from .idx import DataError

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported only where a CSV is read: importing it takes about 0.2 s, which every
# `python -m fastnn.train` on IDX files would otherwise pay for nothing.

__all__ = ["PIXEL_COLUMNS", "read_kaggle_csv", "write_kaggle_submission"]

PIXEL_COLUMNS: tuple[str, ...] = tuple(f"pixel{i}" for i in range(784))

_HEADER_HINT = (
    "A digit-recognizer CSV has the header 'label,pixel0,...,pixel783' (train.csv) "
    "or 'pixel0,...,pixel783' (test.csv)."
)


def read_kaggle_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Kaggle digit-recognizer CSV.

    Returns ``(X, y)``: X is uint8 of shape (n, 784) and y int64 of shape (n,),
    or None when the file has no ``label`` column (``test.csv``). Any problem is
    a DataError naming the file and, for bad values, the row.
    """
    path = Path(path)
    frame = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    has_label = bool(columns) and columns[0] == "label"
    _check_header(path, columns, ["label", *PIXEL_COLUMNS] if has_label else list(PIXEL_COLUMNS))
    _check_width(path, frame)
    _check_values(path, frame, has_label)

    pixels = frame.iloc[:, 1:] if has_label else frame
    X = pixels.to_numpy(dtype=np.uint8)
    y = frame["label"].to_numpy(dtype=np.int64) if has_label else None
    return X, y


def _read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        # Blank lines are kept (as empty rows) so row numbers map to file lines.
        return pd.read_csv(path, skip_blank_lines=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the path.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty. {_HEADER_HINT}") from None
    except pd.errors.ParserError as e:
        # Usually a row with more fields than the header ("Expected N fields in line M, saw K").
        if (error := _first_width_error(path)) is not None:
            raise error from None
        raise DataError(
            f"{path}: not a well-formed CSV ({str(e).strip()}; line numbers count the header "
            "as line 1). Every line must have the same number of fields as the header."
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (it is not valid UTF-8).") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}).") from None


def _check_header(path: Path, columns: list[str], expected: list[str]) -> None:
    if columns == expected:
        return
    # pandas renames empty and repeated names ('Unnamed: 785', 'pixel0.1'): name them as written.
    raw = _record(path, 0)[1]
    if len(raw) == len(columns):
        columns = raw
    for i in range(max(len(columns), len(expected))):
        got = columns[i] if i < len(columns) else None
        want = expected[i] if i < len(expected) else None
        if got != want:
            break
    if got is None:
        problem = f"column {i + 1} ('{want}') is missing ({len(columns)} columns in all)"
    elif want is None and not any(columns[i:]):
        one = i == len(columns) - 1
        raise DataError(
            f"{path}: wrong header: unexpected extra column {i + 1}, with an empty name (the "
            f"header line ends with {'a comma' if one else 'commas'}). "
            f"Remove {'it' if one else 'them'} from the header, and from every line that has "
            f"{'one' if one else 'them'}."
        )
    elif want is None:
        problem = f"unexpected extra column {i + 1} ('{got}')"
    elif got == "":
        problem = f"column {i + 1} has an empty name, expected '{want}'"
    else:
        problem = f"column {i + 1} is '{got}', expected '{want}'"
    raise DataError(f"{path}: wrong header: {problem}. {_HEADER_HINT}")


def _records(path: Path) -> Iterator[tuple[int, int, list[str]]]:
    """Yield (row, line, fields) for each record of the file, the header being row 0.

    The file is read again with the csv module: for error messages, and for the header
    and the first row of a good file, never a second full parse of it. A blank line is a
    record with no fields (pandas, with skip_blank_lines=False, makes it an empty row).
    Stops early at anything the csv module cannot read.
    """
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        try:
            for row, fields in enumerate(reader):
                yield row, reader.line_num, fields
        except csv.Error:
            return


def _record(path: Path, row: int) -> tuple[int, list[str]]:
    """(line, fields) of record ``row`` (0 is the header); (0, []) if there is none."""
    with closing(_records(path)) as records:
        for number, line, fields in records:
            if number == row:
                return line, fields
    return 0, []


def _check_width(path: Path, frame: pd.DataFrame) -> None:
    """Raise a DataError if the first data row is wider than the header.

    pandas raises for a later row wider than the first one and fills NaN into a narrower
    one (which _check_values reports), but when the first data row is wider than the header
    it silently takes the extra leading fields as the index, shifting every column. Only
    the header and the first data row are read again here. The index type is a backstop,
    not the test: an extra leading 0, 1, 2, ... becomes a RangeIndex like the default one.
    """
    import pandas as pd

    index = frame.index
    default_index = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    with closing(_records(path)) as records:
        head = [fields for _, _, fields in islice(records, 2)]
    first_row_fits = len(head) < 2 or not head[1] or len(head[1]) == len(head[0])
    if first_row_fits and default_index:
        return
    if (error := _first_width_error(path)) is not None:
        raise error
    # Not expected: pandas chose an index for a reason the csv module does not see.
    raise DataError(
        f"{path}: not a well-formed CSV file: pandas read the first column(s) as an index "
        "although the rows have as many fields as the header. Check the file's quoting."
    )


def _first_width_error(path: Path) -> DataError | None:
    """The error for the first data row whose width differs from the header's, if any.

    A blank line is not one (it is an empty row, reported as empty cells). Reads the
    whole file again: for the error path only.
    """
    with closing(_records(path)) as records:
        _, _, header = next(records, (0, 0, []))
        for row, line, fields in records:
            if fields and len(fields) != len(header):
                return _width_error(path, row, line, fields, len(header))
    return None


def _width_error(path: Path, row: int, line: int, fields: list[str], width: int) -> DataError:
    where = f"row {row} (line {line} of the file, counting the header as line 1)"
    count = len(fields)
    if count > width:
        extra = "extra field" if count == width + 1 else "extra fields"
        detail = ""
        if not any(fields[width:]):
            what = "field at its end is" if count == width + 1 else "fields at its end are"
            detail = f" (the extra {what} empty: a trailing comma?)"
        advice = (
            f"Remove the {extra} from that row, or from every line if they all have it (an "
            "unnamed row number or ID column, or a trailing comma), or remove the row."
        )
    else:
        detail = ""
        missing = "missing field" if count == width - 1 else "missing fields"
        advice = f"Add the {missing} to that row (or remove the row)."
    return DataError(
        f"{path}: not a well-formed CSV file: {where} has {count} fields, but the header has "
        f"{width}{detail}. Every line must have one field per header column. {advice}"
    )


def _check_values(path: Path, frame: pd.DataFrame, has_label: bool) -> None:
    """Raise a DataError for the first (top-most, then left-most) bad cell, if any."""
    import pandas as pd

    high = np.full(frame.shape[1], 255)  # pixels are bytes
    if has_label:
        high[0] = 9  # labels are digits
    if all(pd.api.types.is_integer_dtype(dtype) for dtype in frame.dtypes):
        values = frame.to_numpy()  # the usual case, checked without a float copy
        bad = (values < 0) | (values > high)
    else:
        converted = {}
        for column, dtype in frame.dtypes.items():
            if pd.api.types.is_bool_dtype(dtype):
                # pandas reads a column of only True/False as bools; they are not numbers.
                converted[column] = np.nan
            elif not pd.api.types.is_numeric_dtype(dtype):
                converted[column] = pd.to_numeric(frame[column], errors="coerce")
        values = frame.assign(**converted).to_numpy(dtype=np.float64, na_value=np.nan)
        # NaN (empty or not a number) fails every comparison, so it counts as bad.
        bad = ~((values >= 0) & (values <= high) & (values == np.floor(values)))
    if not bad.any():
        return
    row = int(bad.any(axis=1).argmax())
    j = int(bad[row].argmax())
    value = frame.iat[row, j]
    problem = _describe(value, int(high[j]))
    # pandas fills NaN into a row with fewer fields than the header: if that is what is wrong
    # with this row, say so rather than report a cell (reading the file again to see).
    line, fields = _record(path, row + 1)
    if line and not fields:
        problem += ": the line is blank"
    elif line and len(fields) != frame.shape[1]:
        raise _width_error(path, row + 1, line, fields, frame.shape[1])
    raise DataError(
        f"{path}: row {row + 1} (line {row + 2} of the file, counting the header as line 1), "
        f"column '{frame.columns[j]}': {problem}. Fix or remove that row."
    )


def _describe(value: object, high: int) -> str:
    """Say what is wrong with a cell that _check_values found bad."""
    import pandas as pd

    if pd.isna(value):
        return "empty cell (or NaN)"
    if isinstance(value, (bool, np.bool_)):
        return f"'{value}' is not a number"
    try:
        number = float(value)
    except ValueError:
        return f"'{value}' is not a number"
    if number != np.floor(number):
        return f"{value} is not a whole number (expected an integer 0..{high})"
    return f"{value} is outside 0..{high}"


def write_kaggle_submission(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """Write `ImageId,Label` rows (ImageId from 1), as Kaggle expects, atomically."""
    rows = (f"{i},{label}" for i, label in enumerate(np.asarray(labels).tolist(), 1))
    write_text(path, "\n".join(["ImageId,Label", *rows]) + "\n")
