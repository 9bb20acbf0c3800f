"""Reading the CSV files of Kaggle's digit-recognizer competition.

``train.csv`` has a header ``label,pixel0,...,pixel783`` and one image per row;
``test.csv`` has the same without the ``label`` column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fastnn.atomic import write_text

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
    for i in range(max(len(columns), len(expected))):
        got = columns[i] if i < len(columns) else None
        want = expected[i] if i < len(expected) else None
        if got != want:
            break
    if got is None:
        problem = f"column {i + 1} ('{want}') is missing ({len(columns)} columns in all)"
    elif want is None:
        problem = f"unexpected extra column {i + 1} ('{got}')"
    else:
        problem = f"column {i + 1} is '{got}', expected '{want}'"
    raise DataError(f"{path}: wrong header: {problem}. {_HEADER_HINT}")


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
    raise DataError(
        f"{path}: row {row + 1} (line {row + 2} of the file, counting the header as line 1), "
        f"column '{frame.columns[j]}': {_describe(frame.iat[row, j], int(high[j]))}. "
        "Fix or remove that row."
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
