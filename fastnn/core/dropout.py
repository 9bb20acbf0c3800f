"""Dropout of hidden units and, optionally, of input features (inverted dropout), with masks
both backends draw alike.

During training each hidden unit of each sample is kept with probability 1 - rate, and a kept
unit's activation is multiplied by 1 / (1 - rate), so the next layer sees the same expected
input as at prediction time, when nothing is dropped. The gradient flows back through the kept
units only, times the same factor.

Whether unit j of layer l is kept for row r of X in epoch e depends on those numbers and the
seed only: a counter-based hash (splitmix64's mixing), not a sequential generator. So the mask
is the same whatever the batches, the chunks or the threads that process the sample, which
keeps the NumPy reference and the Numba kernels equal and runs the same bits with any number of
threads; a resumed run draws the masks the uninterrupted run would have.

    layer key   k_l  = mix(mix(mix(seed ^ SALT) ^ e) ^ l)          (Python, per epoch and layer)
    sample key  s    = mix(k_l ^ r)
    unit draw   z_j  = mix(s + (j + 1) * GOLDEN)                   (all mod 2**64)
    kept        (z_j >> 11) >= floor(rate * 2**53)

that is, a uniform 53-bit number at or above the rate; for the input features (j = feature),
l = INPUT_LAYER. The factor 1 / (1 - rate) is rounded to the parameters' dtype once, and each
backend multiplies by it (or by 0) in the same order: an input x becomes x * factor (after
x / 255 for pixels), a hidden unit's activation a becomes a * factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

MASK64 = (1 << 64) - 1
SALT = 0x6A09E667F3BCC909  # keeps the keys apart from other uses of the same seed
GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
MIX_1, MIX_2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
DRAW_BITS = 53
INPUT_LAYER = 1 << 32  # the inputs' layer number in the keys: no hidden layer's


def mix(z: int) -> int:
    """splitmix64's finaliser on a Python int taken mod 2**64."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX_1) & MASK64
    z = ((z ^ (z >> 27)) * MIX_2) & MASK64
    return z ^ (z >> 31)


def mix_array(z: np.ndarray) -> np.ndarray:
    """mix() on a uint64 array (NumPy's uint64 arithmetic wraps mod 2**64, as wanted)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX_1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX_2)
    return z ^ (z >> np.uint64(31))


def check_rates(dropout: float | Sequence[float], n_hidden: int) -> tuple[float, ...]:
    """One dropout rate per hidden layer from one for all or one per layer; ValueError with
    what to pass otherwise."""
    rates = [dropout] if np.ndim(dropout) == 0 else list(dropout)
    if len(rates) not in (1, n_hidden):
        raise ValueError(
            f"dropout must be one rate or one per hidden layer ({n_hidden}); got {dropout!r}"
        )
    for rate in rates:
        number = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(
            rate, bool
        )
        if not (number and 0 <= rate < 1):
            raise ValueError(
                f"dropout rates must be numbers from 0 to less than 1 (the probability of "
                f"dropping a unit; 0 keeps them all); got {dropout!r}"
            )
    return tuple(float(r) for r in rates) * (n_hidden if len(rates) == 1 else 1)


class Dropout(NamedTuple):
    """Dropout in one epoch: the rate of each hidden layer and of the inputs, the seed and the
    epoch. The arrays of keys, thresholds and scales hold the hidden layers' entries, then the
    inputs' (at index n_hidden)."""

    rates: tuple[float, ...]  # (n_hidden,) probability of dropping a unit, 0 <= rate < 1
    seed: int  # 0 <= seed < 2**64
    epoch: int  # counted from 1 over the model's life
    input_rate: float = 0.0  # probability of dropping an input feature

    @property
    def active(self) -> bool:
        return any(self.rates) or self.input_rate > 0

    def _all_rates(self) -> tuple[float, ...]:
        return (*self.rates, self.input_rate)

    def layer_keys(self) -> np.ndarray:
        """(n_hidden + 1,) uint64: k_l of each hidden layer in this epoch, then the inputs'
        (keyed by INPUT_LAYER, so an input mask does not depend on the depth)."""
        start = mix(mix(self.seed ^ SALT) ^ self.epoch)
        layers = [*range(len(self.rates)), INPUT_LAYER]
        return np.array([mix(start ^ layer) for layer in layers], np.uint64)

    def thresholds(self) -> np.ndarray:
        """(n_hidden + 1,) uint64: a unit is kept when its 53-bit draw is at least this."""
        return np.array([math.floor(r * 2**DRAW_BITS) for r in self._all_rates()], np.uint64)

    def scales(self, dtype: np.dtype) -> np.ndarray:
        """(n_hidden + 1,) 1 / (1 - rate) rounded to dtype: the factor of a kept unit."""
        return np.array([1 / (1 - r) for r in self._all_rates()], np.float64).astype(dtype)

    def masks(self, rows: np.ndarray, widths: Sequence[int], dtype: np.dtype) -> list:
        """Per hidden layer, (len(rows), width) factors: 1 / (1 - rate) where the unit is kept
        for that row of X, 0 where it is dropped; None for a layer without dropout."""
        return [
            self._mask(layer, rows, width, dtype) if rate else None
            for layer, (rate, width) in enumerate(zip(self.rates, widths, strict=True))
        ]

    def input_mask(self, rows: np.ndarray, n_in: int, dtype: np.dtype) -> np.ndarray | None:
        """(len(rows), n_in) factors of the input features, as `masks`; None without."""
        return self._mask(len(self.rates), rows, n_in, dtype) if self.input_rate else None

    def _mask(self, at: int, rows: np.ndarray, width: int, dtype: np.dtype) -> np.ndarray:
        """The factors of entry `at` of the keys (a hidden layer, or the inputs)."""
        key, threshold = self.layer_keys()[at], self.thresholds()[at]
        samples = mix_array(key ^ np.asarray(rows).astype(np.uint64))  # (n,)
        counters = (np.arange(width, dtype=np.uint64) + np.uint64(1)) * np.uint64(GOLDEN)
        draws = mix_array(samples[:, None] + counters) >> np.uint64(64 - DRAW_BITS)
        return np.where(draws >= threshold, self.scales(dtype)[at], 0).astype(dtype)
