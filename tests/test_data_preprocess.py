"""Tests for scale, shuffle and train_dev_split."""

import numpy as np
import pytest

from fastnn.data import DataError, scale, shuffle, train_dev_split

ALL_PIXELS = np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_is_exactly_a_division_by_255(dtype):
    result = scale(ALL_PIXELS, dtype)
    assert result.dtype == dtype
    # Bit for bit what the Numba kernels compute: convert, then divide by 255 in that dtype.
    expected = ALL_PIXELS.astype(dtype) / dtype(255)
    np.testing.assert_array_equal(
        result.view(f"u{result.itemsize}"), expected.view(f"u{result.itemsize}")
    )
    assert result[0, 0] == 0 and result[-1, -1] == 1
    # Multiplying by 1/255 instead would round differently for some pixel values.
    assert np.any(result != ALL_PIXELS.astype(dtype) * (dtype(1) / dtype(255)))


def test_scale_default_dtype_is_float32():
    assert scale(ALL_PIXELS).dtype == np.float32
    assert scale(ALL_PIXELS, "float64").dtype == np.float64


def test_scale_other_integer_dtypes_in_range():
    np.testing.assert_array_equal(scale(ALL_PIXELS.astype(np.int64)), scale(ALL_PIXELS))


@pytest.mark.parametrize(("low", "high"), [(0, 256), (-1, 255)])
def test_scale_rejects_values_outside_0_255(low, high):
    X = np.array([low, 3, high], dtype=np.int16)
    with pytest.raises(
        DataError, match=f"0..255, but this int16 array holds values from {low} to {high}"
    ):
        scale(X)


def test_scale_float_input_is_only_converted():
    X = np.array([0.0, 0.25, 1.0, 0.1], dtype=np.float64)
    same = scale(X, np.float64)
    np.testing.assert_array_equal(same, X)
    assert same is not X
    np.testing.assert_array_equal(scale(X, np.float32), X.astype(np.float32))


def test_scale_rejects_non_float_target_and_non_numeric_input():
    with pytest.raises(TypeError, match="floating-point"):
        scale(ALL_PIXELS, np.int32)
    with pytest.raises(TypeError, match="integer or float array"):
        scale(np.array(["a", "b"]))


def test_shuffle_is_seeded_and_keeps_pairs():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    X1, y1 = shuffle(X, y, seed=42)
    X2, y2 = shuffle(X, y, seed=42)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y1, np.random.default_rng(42).permutation(10))
    np.testing.assert_array_equal(X1, X[y1])  # rows still match their labels
    assert not np.array_equal(shuffle(X, y, seed=43)[1], y1)
    np.testing.assert_array_equal(y, np.arange(10))  # inputs untouched


def test_shuffle_length_mismatch():
    with pytest.raises(DataError, match="X has 3 rows but y has 2 labels"):
        shuffle(np.zeros((3, 4)), np.zeros(2), seed=0)


def test_split_takes_the_first_rows_as_dev():
    X = np.arange(30).reshape(10, 3)
    y = np.arange(10)
    X_train, y_train, X_dev, y_dev = train_dev_split(X, y, 4)
    assert X_train.shape == (6, 3) and X_dev.shape == (4, 3)
    np.testing.assert_array_equal(y_dev, [0, 1, 2, 3])
    np.testing.assert_array_equal(y_train, [4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(X_dev, X[:4])


def test_split_with_seed_shuffles_first():
    X = np.arange(30).reshape(10, 3)
    y = np.arange(10)
    X_s, y_s = shuffle(X, y, seed=7)
    X_train, y_train, X_dev, y_dev = train_dev_split(X, y, 3, seed=7)
    np.testing.assert_array_equal(y_dev, y_s[:3])
    np.testing.assert_array_equal(y_train, y_s[3:])
    np.testing.assert_array_equal(X_dev, X_s[:3])
    assert sorted([*y_dev, *y_train]) == list(range(10))


def test_split_empty_dev():
    X_train, y_train, X_dev, y_dev = train_dev_split(np.ones((5, 2)), np.arange(5), np.int64(0))
    assert X_train.shape == (5, 2) and X_dev.shape == (0, 2) and y_dev.shape == (0,)


@pytest.mark.parametrize("dev_size", [5, 6, -1])
def test_split_bad_dev_size(dev_size):
    message = f"dev_size={dev_size} is invalid for 5 examples: it must be at least 0 and less than"
    with pytest.raises(DataError, match=message):
        train_dev_split(np.ones((5, 2)), np.arange(5), dev_size)


@pytest.mark.parametrize("dev_size", [0.5, 2.0, True])
def test_split_dev_size_must_be_a_whole_number(dev_size):
    with pytest.raises(TypeError, match="whole number of rows"):
        train_dev_split(np.ones((5, 2)), np.arange(5), dev_size)
