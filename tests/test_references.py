"""The kernels' helpers count no references (kernels.config): the views they make carry no
count, and nothing they are given or make may be released early or never. Numba's runtime
counts what it allocates and releases; every array a numba fit or prediction allocated (dense,
sparse and CSR inputs, dropout, max-norm, augmented images, the per-member buffers of a
prediction) is released by the time the call returns."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from numba.core.runtime import _nrt_python, rtsys

from fastnn.estimator import MLPClassifier

sparse = pytest.importorskip("scipy.sparse")


def images(n=120, seed=0):
    """uint8 'images' of 8 x 8 pixels, about 80% zeros, and labels of 3 classes."""
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 256, (n, 64)).astype(np.uint8)
    X[rng.random(X.shape) < 0.8] = 0
    return X, rng.integers(0, 3, n)


def fit_and_predict(X, y, **options):
    model = MLPClassifier(
        hidden_layer_sizes=(12, 9), max_iter=2, batch_size=32, backend="numba", random_state=0,
        **options,
    )  # fmt: skip
    model.fit(X, y)
    return model.predict_proba(X)


def inputs():
    X, y = images()
    dense = ((X - X.mean(0)) / (X.std(0) + 1)).astype(np.float32)  # standardised: dense
    yield pytest.param("pixels", X, y, {"dropout": 0.2, "max_norm": 2.0}, id="pixels")
    yield pytest.param("dense", dense, y, {}, id="dense")
    yield pytest.param("csr", sparse.csr_matrix(X.astype(np.float32)), y, {}, id="csr")
    augmented = {"augment": "shift", "image_shape": (8, 8)}
    yield pytest.param("augmented", X, y, augmented, id="augmented")


@pytest.mark.parametrize("name, X, y, options", list(inputs()))
def test_every_array_the_kernels_allocate_is_released(name, X, y, options):
    _nrt_python.memsys_enable_stats()  # off by default (NUMBA_NRT_STATS)
    fit_and_predict(X, y, **options)  # compiled, and Numba's own first allocations made
    gc.collect()
    before = rtsys.get_allocation_stats()
    fit_and_predict(X, y, **options)
    gc.collect()
    after = rtsys.get_allocation_stats()
    made = after.mi_alloc - before.mi_alloc
    released = after.mi_free - before.mi_free
    assert made > 0  # the kernels did allocate: the count below can fail
    assert released == made, f"{name}: {made - released} of {made} arrays never released"
    assert after.alloc - before.alloc == after.free - before.free
