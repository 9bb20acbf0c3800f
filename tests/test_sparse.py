"""Sparse X (scipy.sparse CSR, CSC, COO; matrices and arrays; float and integer dtypes): the
same results as the same numbers passed dense, never densified, checked in one place, nothing
new compiled; and the first layer's update stepping only the rows a batch touched where that is
exact. The numba kernels against the NumPy reference on sparse input, tensor by tensor: see
tests/test_numba_equivalence.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastnn import MLPClassifier, MLPRegressor
from fastnn.backends import get_backend, numba_packing
from fastnn.backends import numba_backend as numba_module
from fastnn.backends.tolerance import TRAINED
from fastnn.core.dropout import Dropout
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState
from fastnn.kernels import epoch
from fastnn.kernels.optimizer import steps_touched_rows

sparse = pytest.importorskip("scipy.sparse")

numba_backend = get_backend("numba")
numpy_backend = get_backend("numpy")

FORMATS = {
    "csr_matrix": sparse.csr_matrix,
    "csr_array": sparse.csr_array,
    "csc_matrix": sparse.csc_matrix,
    "csc_array": sparse.csc_array,
    "coo_matrix": sparse.coo_matrix,
    "coo_array": sparse.coo_array,
}


def dense_data(n: int = 45, n_in: int = 67, density: float = 0.15, seed: int = 0) -> np.ndarray:
    """Signed floats, most of them 0, a row all 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, n_in)) * (rng.random((n, n_in)) < density)
    X[n // 2] = 0
    return X


X = dense_data()
LABELS = np.random.default_rng(1).integers(0, 3, len(X))
TARGETS = X[:, :2] @ np.array([[1.0, -0.5], [0.3, 2.0]]) + 0.1


def classifier(backend: str = "numba", dtype: str = "float32", **params) -> MLPClassifier:
    settings = {"hidden_layer_sizes": 9, "max_iter": 3, "batch_size": 8, "random_state": 0}
    settings.update(input_dropout=0.2, dropout=0.1, backend=backend, dtype=dtype)
    return MLPClassifier(**{**settings, **params})


def same_bits(a, b) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("path", ["sparse", "dense"])
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_trains_a_sparse_x_to_the_bits_of_it_dense(dtype, fmt, path):
    """The same first-layer path, the same sums in the same order: the same bits, through fit,
    partial_fit, predict_proba and score, with dropout on the inputs and hidden units."""
    with numba_backend.first_layer(path):
        dense = classifier(dtype=dtype).fit(X, LABELS).partial_fit(X, LABELS)
        ours = classifier(dtype=dtype).fit(FORMATS[fmt](X), LABELS)
        ours.partial_fit(FORMATS[fmt](X), LABELS)
        assert same_bits(ours.coefs_ + ours.intercepts_, dense.coefs_ + dense.intercepts_)
        assert ours.loss_curve_ == dense.loss_curve_
        P = ours.predict_proba(FORMATS[fmt](X))
        np.testing.assert_array_equal(P, dense.predict_proba(X))
        assert ours.score(FORMATS[fmt](X), LABELS) == dense.score(X, LABELS)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_numba_regressor_with_early_stopping_on_sparse_x_is_the_bits_of_dense(solver):
    params = {
        "hidden_layer_sizes": (7, 5), "max_iter": 4, "batch_size": 10, "random_state": 3,
        "early_stopping": True, "validation_fraction": 0.2, "solver": solver,
        "learning_rate_init": 0.01, "momentum": 0.9,
    }  # fmt: skip
    weights = np.random.default_rng(4).uniform(0.5, 2, len(X))
    dense = MLPRegressor(**params).fit(X, TARGETS, sample_weight=weights)
    ours = MLPRegressor(**params).fit(sparse.csr_array(X), TARGETS, sample_weight=weights)
    assert same_bits(ours.coefs_, dense.coefs_)
    assert ours.validation_scores_ == dense.validation_scores_
    np.testing.assert_array_equal(ours.predict(sparse.csc_array(X)), dense.predict(X))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_integer_sparse_x_is_pixels_as_dense_integers_are(backend):
    """Integers all within 0..255 are pixels, scaled by 1/255, sparse or dense; any other
    integers are numbers, sparse or dense."""
    rng = np.random.default_rng(2)
    pixels = (rng.integers(1, 256, X.shape) * (X != 0)).astype(np.uint8)
    dtype = "float32" if backend == "numba" else "float64"
    for values in (pixels, pixels.astype(np.int64), pixels.astype(np.int64) * 3 - 200):
        dense = classifier(backend, dtype).fit(values, LABELS)
        for fmt in (sparse.csr_matrix, sparse.coo_array):
            ours = classifier(backend, dtype).fit(fmt(values), LABELS)
            if backend == "numba":
                assert same_bits(ours.coefs_, dense.coefs_)
            else:  # scipy's products sum in another order than NumPy's dense ones
                for a, b in zip(ours.coefs_, dense.coefs_, strict=True):
                    assert np.abs(a - b).max() <= TRAINED[dtype] * np.abs(b).max()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_reference_on_sparse_x_is_dense_within_tolerance(dtype):
    rng = np.random.default_rng(5)
    dense = classifier("numpy", dtype, solver="sgd", momentum=0.9).fit(X, LABELS)
    ours = classifier("numpy", dtype, solver="sgd", momentum=0.9).fit(sparse.csr_array(X), LABELS)
    for a, b in zip(ours.coefs_ + ours.intercepts_, dense.coefs_ + dense.intercepts_, strict=True):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= TRAINED[dtype] * scale
    rows = rng.permutation(len(X))[:9]
    np.testing.assert_allclose(
        ours.predict_proba(sparse.csr_matrix(X[rows])), dense.predict_proba(X[rows]), atol=1e-6
    )


def test_sparse_x_compiles_nothing_new():
    """A sparse X reaches the kernels as an empty float X beside its CSR arrays (one fixed
    dtype each): after dense fits and predictions, sparse ones compile no new signature."""
    for dtype in ("float32", "float64"):
        model = classifier(dtype=dtype, max_iter=1).fit(X, LABELS)
        model.predict(np.vstack([X] * 7))  # more rows than a chunk: the team's forward
    compiled = (len(epoch.train_batches.signatures), len(epoch.forward.signatures))
    for dtype in ("float32", "float64"):
        for fmt in (sparse.csr_matrix, sparse.coo_array):
            model = classifier(dtype=dtype, max_iter=1).fit(fmt(X), LABELS)
            model.predict(fmt(X[:3]))
            model.predict(sparse.vstack([fmt(X)] * 7))
        MLPRegressor(9, dtype=dtype, max_iter=1).fit(sparse.csr_array(X), TARGETS)
    assert (len(epoch.train_batches.signatures), len(epoch.forward.signatures)) == compiled


def test_same_bits_with_one_and_two_threads_on_sparse_x():
    """Over more than a chunk of samples (CHUNK), so that both members take part in both
    passes."""
    Xs = sparse.csr_matrix(dense_data(n=epoch.CHUNK + 90, n_in=150, density=0.05, seed=6))
    y = np.random.default_rng(7).integers(0, 4, Xs.shape[0])
    order = np.random.default_rng(8).permutation(Xs.shape[0])
    start = init_params(150, (33,), 4, "he", 9, "float32")
    dropout = Dropout((0.2,), 10, 1, 0.3)
    results = []
    for threads in (1, 2):
        params = start.copy()
        state = OptimizerState.fresh(Optimizer(solver="adam"), params)
        with numba_backend.threads(threads):
            loss = numba_backend.train_epoch(
                params, Xs, y, order, 300, 0.01, optimizer=Optimizer(solver="adam"),
                state=state, dropout=dropout,
            )  # fmt: skip
            P = numba_backend.predict_proba(params, Xs)
        results.append((loss, params, P))
    (loss_1, params_1, P_1), (loss_2, params_2, P_2) = results
    assert loss_1 == loss_2
    assert same_bits(params_1.arrays(), params_2.arrays())
    np.testing.assert_array_equal(P_1, P_2)


@pytest.mark.parametrize(
    "optimizer",
    [Optimizer(), Optimizer(momentum=0.9), Optimizer(momentum=0.9, nesterovs_momentum=False)],
    ids=["sgd", "nesterov", "momentum"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stepping_only_touched_rows_is_the_full_update(monkeypatch, dtype, optimizer):
    """Many features, a few non-zeros a row: most rows of W1 untouched by a batch. Plain SGD
    and momentum without L2 step only the touched rows (and, under momentum, those with a
    velocity): the very bits of stepping every row, which the kernels do when the backend
    gives them no row_flags."""
    rng = np.random.default_rng(11)
    n, n_in = 70, 400
    rows, columns = np.repeat(np.arange(n), 3), rng.integers(0, n_in // 2, 3 * n)
    Xs = sparse.coo_matrix((rng.normal(0, 1, 3 * n), (rows, columns)), shape=(n, n_in)).tocsr()
    y = rng.integers(0, 3, n)
    start = init_params(n_in, (17,), 3, "he", 12, dtype)

    def two_epochs():
        params = start.copy()
        state = OptimizerState.fresh(optimizer, params)
        for e in range(2):
            order = np.random.default_rng(e).permutation(n)
            numba_backend.train_epoch(
                params, Xs, y, order, 8, 0.05, optimizer=optimizer, state=state
            )
        return params, state

    full_update = epoch.train_workspace
    widths = []  # of the row flags of each epoch's workspace

    def recorded(*args):
        work = full_update(*args)
        widths.append(work.row_flags.shape[1])
        return work

    monkeypatch.setattr(numba_module, "train_workspace", recorded)
    with numba_backend.first_layer("sparse"):
        numba_backend.train_epoch(start.copy(), Xs.toarray(), y, np.arange(n), 8, 0.05)
        assert widths == [0]  # a dense X's batches touch most rows: none flagged
        by_rows, by_rows_state = two_epochs()
        assert widths == [0, n_in, n_in]

        def every_row(*args):
            return full_update(*args)._replace(row_flags=np.zeros((2, 0), np.bool_))

        monkeypatch.setattr(numba_module, "train_workspace", every_row)
        every, every_state = two_epochs()
    rule = numba_packing.rule(optimizer, np.ones(1), 0, np.dtype(dtype))
    assert steps_touched_rows.py_func(rule, np.zeros((2, n_in), np.bool_))  # rows' way taken
    assert same_bits(by_rows.arrays(), every.arrays())
    assert same_bits(by_rows_state.first, every_state.first)
    np.testing.assert_array_equal(by_rows.coefs[0][n_in // 2 :], start.coefs[0][n_in // 2 :])
    assert not np.array_equal(by_rows.coefs[0][: n_in // 2], start.coefs[0][: n_in // 2])


def test_the_users_matrix_is_left_as_it_was():
    """A CSR matrix with unsorted indices, a duplicate and a stored zero, 64-bit indices (as
    scikit-learn's checks pass): trained as its canonical form is, and left untouched."""
    dense = np.array([[0, 2.0, 0, 1.5], [0, 0, 0, 0], [3.0, 0, -1.0, 0]])
    data = np.array([1.5, 2.0, -1.0, 1.0, 2.0, 0.0])
    indices = np.array([3, 1, 2, 0, 0, 1], dtype=np.int64)
    indptr = np.array([0, 2, 2, 6], dtype=np.int64)
    X = sparse.csr_matrix((data, indices, indptr), shape=(3, 4))
    X.indices, X.indptr = indices, indptr  # scipy would narrow them to int32
    before = [a.copy() for a in (X.data, X.indices, X.indptr)]
    y = np.array([0, 1, 0])
    ours = classifier(max_iter=2, batch_size=2).fit(X, y)
    for a, b in zip((X.data, X.indices, X.indptr), before, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert same_bits(ours.coefs_, classifier(max_iter=2, batch_size=2).fit(dense, y).coefs_)


def malformed(kind: str):
    if kind == "index outside":
        return sparse.csr_matrix(
            (np.ones(2), np.array([0, 9]), np.array([0, 1, 2])), shape=(2, X.shape[1] - 60)
        )
    if kind == "indptr falling":
        m = sparse.csr_matrix(np.eye(3, 7))
        m.indptr = np.array([0, 2, 1, 3], dtype=m.indptr.dtype)
        return m
    m = sparse.coo_matrix(np.eye(3, 7))
    m.col = np.array([0, 1, 8], dtype=m.col.dtype)
    return m


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: sparse.csr_matrix(np.r_[X[:-1], [np.r_[np.nan, X[0, 1:]]]]), "1 NaN or infinite"),
        (lambda: sparse.csc_array(np.r_[X[:-1], [np.r_[np.inf, X[0, 1:]]]]), "1 NaN or infinite"),
        (lambda: sparse.csr_matrix((0, 5)), "Found array with 0 sample"),
        (lambda: sparse.csr_matrix((4, 0)), "Found array with 0 feature"),
        (lambda: sparse.csr_matrix(np.eye(3) * 1j), "Complex data not supported"),
        (lambda: malformed("index outside"), "indices outside its shape"),
        (lambda: malformed("indptr falling"), "is malformed"),
        (lambda: malformed("coo outside"), "indices outside its shape"),
    ],
    ids=["nan", "inf", "no-rows", "no-columns", "complex", "index", "indptr", "coo"],
)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_bad_sparse_x_is_refused_in_one_line(backend, make, message):
    X_bad = make()
    with pytest.raises(ValueError, match=message):
        classifier(backend).fit(X_bad, np.zeros(X_bad.shape[0], int))


def test_sparse_x_of_other_width_or_with_augmentation_is_refused():
    model = classifier().fit(sparse.csr_matrix(X), LABELS)
    with pytest.raises(ValueError, match="X has 66 features, but MLPClassifier is expecting 67"):
        model.predict(sparse.csr_matrix(X[:, 1:]))
    with pytest.raises(ValueError, match="X has 66 features, but the network is expecting 67"):
        numba_backend.forward(model._params(), sparse.csr_matrix(X[:, 1:]))
    with pytest.raises(ValueError, match="augment transforms images"):
        images = sparse.csr_matrix(dense_data(n=12, n_in=64))
        augment = {"kind": "shift", "shift": 1}
        classifier(augment=augment, image_shape=(8, 8)).fit(images, np.arange(12) % 2)


def test_fastnn_imports_and_trains_without_scipy():
    """scipy is optional: fastnn never imports it for dense data, and works where it is not
    installed (here: where importing it fails)."""
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "import numpy as np, fastnn\n"
        "m = fastnn.MLPClassifier(4, backend='numpy', max_iter=2).fit(np.eye(6), [0, 1] * 3)\n"
        "print(m.predict(np.eye(6)).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(6,)"
