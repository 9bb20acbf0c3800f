"""Helpers for the fastnn.bench tests: tiny data sets for every workload, a stand-in for the
numba backend that compiles nothing, and one that densifies a CSR matrix."""

from __future__ import annotations

import numpy as np

from fastnn.backends import get_backend
from fastnn.bench import peers
from fastnn.bench.data import (
    REGRESSION,
    SPARSE,
    TABULAR,
    synthetic_regression,
    synthetic_sparse,
    synthetic_tabular,
)
from fastnn.bench.workloads import FULL_BATCH_HELD_OUT, Contender

N_IN = 16  # tiny images keep every workload, even hidden 512, down to milliseconds
ZEROS = 0.7  # the share of zero pixels, about MNIST's: numba takes such data sparse
# The tiny sparse set: enough features that 20 a row are sparse, few enough for a dense copy.
SPARSE_FEATURES, SPARSE_NON_ZEROS = 400, 20


def tiny_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every bench data set, N_IN features: random pixels, ZEROS of them 0, and the tabular
    and regression sets' generators at this size."""
    rng = np.random.default_rng(1)
    n = FULL_BATCH_HELD_OUT + 100  # the full-batch workload holds out the first rows
    X = rng.integers(1, 256, (n, N_IN), dtype=np.uint8)
    X[rng.random(X.shape) < ZEROS] = 0
    y = rng.integers(0, 10, n)
    return {
        "mnist": (X, y),
        "fashion-mnist": (X[::-1].copy(), y[::-1].copy()),
        TABULAR: synthetic_tabular(n, N_IN),
        REGRESSION: synthetic_regression(n, N_IN),
        SPARSE: synthetic_sparse(n, SPARSE_FEATURES, SPARSE_NON_ZEROS),
    }


class NumpyAsNumba:
    """The numpy backend under the name "numba": the two-backend paths without compiling."""

    name = "numba"

    def __init__(self) -> None:
        self._numpy = get_backend("numpy")

    def train_epoch(self, *args: object, **kwargs: object) -> tuple[float, float]:
        return self._numpy.train_epoch(*args, **kwargs)

    def threads(self, n: int | None):
        return self._numpy.threads(n)


def fake_peer(p, threads: int) -> Contender:
    """A peer in peers.PEERS that times nothing."""
    return Contender("fakelib 1.0", "test", lambda: None, lambda _: None, p.samples_per_run)


def missing_peer(p, threads: int) -> Contender:
    """A peer in peers.PEERS that is not installed."""
    raise peers.PeerUnavailable("not installed")
