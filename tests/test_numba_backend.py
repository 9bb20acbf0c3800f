"""The Numba backend's own promises: determinism whatever the thread count, float32 kept as
float32, the threads() context, compiled code cached across processes (and no crash where the
cache cannot be written), and two Python threads training at once without aborting."""

from __future__ import annotations

import ast
import itertools
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numba
import numpy as np
import pytest

import fastnn
from fastnn.backends import get_backend, numba_packing
from fastnn.backends.numba_team import team_size
from fastnn.core.model import init_params
from fastnn.kernels import config, dense, epoch, samples, sparse, tile, update
from fastnn.kernels.cache import OUTSIDE, SourcesCache
from fastnn.kernels.layout import (
    CACHE_LINE,
    ahead_weights,
    line_aligned,
    make_layout,
    panel_copy,
)
from fastnn.kernels.team import Team

backend = get_backend("numba")
PACKAGE = Path(fastnn.__file__).parent
MAX_THREADS = numba.config.NUMBA_NUM_THREADS


def mnist_like(n=300, n_in=784, hidden=32, n_out=10, dtype="float32", seed=0):
    """Sparse uint8 'images' (~80% zeros), labels and a fresh network."""
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 256, (n, n_in)).astype(np.uint8)
    X[rng.random(X.shape) < 0.8] = 0
    y = rng.integers(0, n_out, n)
    return init_params(n_in, hidden, n_out, seed=seed, dtype=dtype), X, y


def train(params, X, y, epochs=2, batch=32, activation="relu"):
    """A few epochs from params (changed in place); their (loss, accuracy)."""
    rng = np.random.default_rng(1)
    return [
        backend.train_epoch(params, X, y, rng.permutation(len(X)), batch, 0.1, activation)
        for _ in range(epochs)
    ]


@numba.njit
def call(kernel, *args):
    """kernel(*args) from compiled code: the kernels' helpers have no wrapper for calls from
    Python (kernels.config.SERIAL)."""
    return kernel(*args)


def assert_same_bits(a, b, name):
    assert a.dtype == b.dtype and a.shape == b.shape, name
    assert a.tobytes() == b.tobytes(), f"{name}: not bit-identical"


def named_tensors(fwd=None, grads=None):
    """(name, array) of every tensor of a Forward and of a Grads: Z1, A1, ..., P, dW1, db1, ..."""
    pairs = []
    if fwd is not None:
        pairs += [(f"Z{i + 1}", Z) for i, Z in enumerate(fwd.Z)]
        pairs += [(f"A{i + 1}", A) for i, A in enumerate(fwd.A)] + [("P", fwd.P)]
    if grads is not None:
        pairs += [(f"dW{i + 1}", dW) for i, dW in enumerate(grads.dW)]
        pairs += [(f"db{i + 1}", db) for i, db in enumerate(grads.db)]
    return pairs


# --- threads ----------------------------------------------------------------------------------


def test_threads_sets_and_restores_the_count():
    # Outside any block, all the threads Numba may use; asked in a thread of its own, as the
    # whole suite's run sets teams of one for the thread that runs the tests (conftest.py).
    default = []
    asking = threading.Thread(target=lambda: default.append(team_size()))
    asking.start()
    asking.join()
    assert default == [MAX_THREADS]
    before = team_size()
    with backend.threads(1):
        assert team_size() == 1 and team_size(jobs=5) == 1
        with backend.threads(MAX_THREADS):
            assert team_size() == MAX_THREADS and team_size(jobs=1) == 1
        assert team_size() == 1
    assert team_size() == before
    with backend.threads(None):
        assert team_size() == before


def test_threads_restores_the_count_after_an_error():
    before = team_size()
    with pytest.raises(RuntimeError), backend.threads(1):
        raise RuntimeError
    assert team_size() == before


def test_threads_are_counted_per_python_thread():
    seen = []
    with backend.threads(1):
        other = threading.Thread(target=lambda: seen.append(team_size()))
        other.start()
        other.join()
    assert seen == [MAX_THREADS]


def test_training_leaves_numbas_own_thread_pool_unstarted():
    """The teams are threads of fastnn's own: Numba's OpenMP (or other) pool, which costs 40 ms
    to start and spins between parallel loops, is never started."""
    code = textwrap.dedent(
        """
        import threading
        import numba
        import numpy as np
        import fastnn
        X = np.random.default_rng(0).integers(0, 256, (50, 784)).astype(np.uint8)
        model = fastnn.MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, n_threads=2)
        model.fit(X, np.arange(50) % 3).predict(X)
        try:
            numba.threading_layer()
        except ValueError as error:
            print(error)
        print(threading.active_count())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-3:] == ["Threading layer is not initialized.", "1", ""]


@pytest.mark.parametrize("n", [0, -1, MAX_THREADS + 1, 1.5, "2", True])
def test_threads_rejects_counts_numba_cannot_run(n):
    with pytest.raises(ValueError, match=f"threads must be a whole number from 1 to {MAX_THREADS}"):
        with backend.threads(n):
            pass


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.skipif(MAX_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("batch", [32, 300])  # mini-batch; full batch over two chunks
def test_same_bits_with_one_and_two_threads(activation, batch, first_layer):
    results = {}
    for n in (1, 2):
        params, X, y = mnist_like()
        with backend.threads(n):
            history = train(params, X, y, batch=batch, activation=activation)
            fwd = backend.forward(params, X, activation)
            loss, grads = backend.loss_and_grads(params, X, y, activation)
        results[n] = (history, params, fwd, loss, grads)
    (h1, p1, f1, l1, g1), (h2, p2, f2, l2, g2) = results[1], results[2]
    assert h1 == h2 and l1 == l2  # Python floats: exact
    for name, a, b in zip(p1.names(), p1.arrays(), p2.arrays(), strict=True):
        assert_same_bits(a, b, name)
    for (name, a), (_, b) in zip(named_tensors(f1, g1), named_tensors(f2, g2), strict=True):
        assert_same_bits(a, b, name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_bits_run_after_run(first_layer, dtype):
    runs = []
    for _ in range(2):
        params, X, y = mnist_like(dtype=dtype)
        runs.append((train(params, X, y, batch=7), params))
    (h1, p1), (h2, p2) = runs
    assert h1 == h2
    for name, a, b in zip(p1.names(), p1.arrays(), p2.arrays(), strict=True):
        assert_same_bits(a, b, name)


# --- dtypes and inputs ------------------------------------------------------------------------


def test_float32_stays_float32():
    params, X, y = mnist_like(n=40)
    assert all(a.dtype == np.float32 for _, a in named_tensors(backend.forward(params, X)))
    loss, grads = backend.loss_and_grads(params, X, y)
    assert isinstance(loss, float) and all(g.dtype == np.float32 for g in grads.arrays())
    train(params, X, y, epochs=1)
    assert all(a.dtype == np.float32 for a in params.arrays())


def test_float32_is_computed_in_float32(first_layer):
    """A float32 kernel that promoted to float64 inside (a Python float literal is enough)
    would give the float64 results rounded once at the end; real float32 arithmetic rounds at
    every step and so differs from them somewhere."""
    params32, X, y = mnist_like(n=64)
    params64 = init_params(784, 32, 10, seed=0, dtype="float64")
    for a64, a32 in zip(params64.arrays(), params32.arrays(), strict=True):
        a64[...] = a32  # the same numbers, exactly
    fwd32, fwd64 = backend.forward(params32, X), backend.forward(params64, X)
    _, g32 = backend.loss_and_grads(params32, X, y)
    _, g64 = backend.loss_and_grads(params64, X, y)
    pairs = zip(named_tensors(fwd32, g32), named_tensors(fwd64, g64), strict=True)
    for (name, a32), (_, a64) in pairs:
        assert not np.array_equal(a32, a64.astype(np.float32)), f"{name} computed in float64"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uint8_is_scaled_in_the_kernel_like_the_reference(dtype, first_layer):
    params, X, _ = mnist_like(n=20, dtype=dtype)
    scaled = X.astype(dtype) / np.asarray(255, dtype)  # the reference's scaling
    from_uint8, from_float = backend.forward(params, X), backend.forward(params, scaled)
    pairs = zip(named_tensors(from_uint8), named_tensors(from_float), strict=True)
    for (name, a), (_, b) in pairs:
        assert_same_bits(a, b, name)


@pytest.mark.parametrize("n_in", [16, 64, 80, 784])  # a block; a word; a word and a block; MNIST
def test_vector_scan_lists_the_same_features_as_the_plain_scan(n_in):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (50, n_in), dtype=np.uint8)
    X[rng.random(X.shape) < 0.6] = 0
    X[3] = 0  # a row of zeros
    X[4] = 255  # and one without a zero
    X[:, :16] = 0  # a whole block of zeros in every row
    for r in range(len(X)):
        lists = []
        for scan in (sparse.scan_row_vector, sparse.scan_row_any):
            idx = np.zeros(X.shape[1] + 1, np.int32)
            bounds = np.zeros((X.shape[1] // sparse.BLOCK + 1, 1), np.int32)
            call(scan, X, np.int32(r), idx, 0, bounds)  # any integer type for the row
            lists.append((idx[: bounds[-1, 0]].tolist(), bounds[:, 0].tolist()))
        assert lists[0] == lists[1], f"row {r}"
        assert lists[0][0] == np.flatnonzero(X[r]).tolist(), f"row {r}"


def sparse_inputs(rng, dtype, pixels, n_features=37):
    """X (3, n_features) of uint8 pixels or floats, the features listed for row 1 (distinct,
    in a scrambled order), and the table that load_x reads X through."""
    idx = rng.permutation(n_features)[:23].astype(np.int32)
    if pixels:
        X = rng.integers(0, 256, (3, n_features)).astype(np.uint8)
        return X, idx, (np.arange(256) / 255).astype(dtype) * dtype(1.25)  # a dropout factor
    return rng.standard_normal((3, n_features)).astype(dtype), idx, np.array([1.25], dtype)


def input_of(X, r, k, table):
    return table[X[r, k]] if X.dtype == np.uint8 else X[r, k] * table[0]


# Widths that take every pass of tile.by_tiles (AVX-512 float32: whole tiles of 256, then 8,
# 4, 2, 1 vectors of 16 and a ragged one; other vector sizes take them at other widths).
TILE_WIDTHS = [1, 10, 16, 24, 40, 100, 250, 256, 300, 530]


@pytest.mark.parametrize(("dtype", "pixels"), [("float32", True), ("float64", False)])
def test_gather_row_sums_the_listed_rows_in_order(dtype, pixels):
    rng = np.random.default_rng(1)
    dtype = np.dtype(dtype).type
    X, idx, table = sparse_inputs(rng, dtype, pixels)
    for width in TILE_WIDTHS:
        W = rng.standard_normal((X.shape[1], width)).astype(dtype)
        Y = rng.standard_normal((4, width)).astype(dtype)
        expected = Y.copy()
        expected[2] = 0
        for e in range(3, 20):  # one term after another: the bits of the plain loop
            expected[2] = expected[2] + input_of(X, 1, idx[e], table) * W[idx[e]]
        call(tile.gather_row, Y, 2, W, idx, 3, 20, X, 1, table)
        assert_same_bits(Y, expected, f"Y, {width} wide")


@pytest.mark.parametrize(("dtype", "pixels"), [("float32", True), ("float64", False)])
def test_scatter_row_adds_to_the_listed_rows_in_order(dtype, pixels):
    rng = np.random.default_rng(2)
    dtype = np.dtype(dtype).type
    X, idx, table = sparse_inputs(rng, dtype, pixels)
    for width in TILE_WIDTHS:
        D = rng.standard_normal((5, width)).astype(dtype)
        Y = rng.standard_normal((X.shape[1], width)).astype(dtype)
        expected = Y.copy()
        for e in range(2, 21):
            k = idx[e]
            expected[k] = expected[k] + input_of(X, 1, k, table) * D[3]
        call(tile.scatter_row, Y, 3, D, idx, 2, 21, X, 1, table)
        assert_same_bits(Y, expected, f"Y, {width} wide")


@numba.njit
def read_rows(X, factor, out):
    """out[r] = row r of X as a dense first layer reads it (sparse.read_row); returns the table
    that sparse.load_x reads X through."""
    table = sparse.input_table(X, out, factor)
    for r in range(X.shape[0]):
        sparse.read_row(X, r, table, out[r])
    return table


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("factor", [1.0, 1 / 0.7])  # no input dropout; a kept input's scale
def test_read_row_gives_every_pixel_as_the_table_holds_it(dtype, factor):
    """read_row scales pixels in vectors rather than looking each up in input_table's table:
    the same bits for every byte, with and without a dropout factor; floats times table[0]."""
    dtype = np.dtype(dtype).type
    pixels = np.vstack([np.arange(256), np.arange(255, -1, -1)]).astype(np.uint8)
    floats = np.random.default_rng(3).standard_normal((2, 37)).astype(dtype)
    for X in (pixels, floats):
        out = np.full(X.shape, np.nan, dtype)
        table = read_rows(X, dtype(factor), out)
        expected = table[X] if X.dtype == np.uint8 else X * table[0]
        assert_same_bits(out, expected, f"{X.dtype} rows")


@pytest.mark.parametrize(
    ("non_zero", "path"),
    [(0.19, "sparse"), (0.35, "sparse"), (0.45, "dense"), (0.5, "dense"), (0.92, "dense")],
)
def test_the_first_layer_goes_dense_where_over_40_percent_of_inputs_are_non_zero(non_zero, path):
    """MNIST's pixels (19% non-zero) sparse; Fashion-MNIST's (49.8%) and standardised features
    dense: about where the two paths cost the same (docs/dense-engine.md)."""
    from fastnn.backends.numba_packing import dense_input

    rng = np.random.default_rng(0)
    X = rng.integers(1, 256, (1000, 784)).astype(np.uint8)
    X[rng.random(X.shape) >= non_zero] = 0
    assert ("dense" if dense_input(X) else "sparse") == path


# Widths that take every path of dense.add_products: whole tiles (of DENSE_VECTORS vectors),
# then the rest of a row in fewer whole vectors, with or without a ragged end.
DENSE_WIDTHS = [1, 5, 8, 13, 16, 24, 31, 40, 49, 64, 100]


# Each layout and each dtype once (each pair costs seconds of compiling); the epochs' products
# take all four pairs, which the equivalence suite checks tensor by tensor.
@pytest.mark.parametrize(
    ("dtype", "transposed"), [("float64", False), ("float32", True)], ids=["C-f64", "C.T-f32"]
)
def test_add_products_adds_c_at_m_to_every_row(dtype, transposed):
    """Against the float64 product, rows in tiles and alone, every width's path, and C a
    transposed view as the weight gradients pass it."""
    rng = np.random.default_rng(3)
    tol = 1e-13 if dtype == "float64" else 1e-5
    for width in DENSE_WIDTHS:
        for n_rows, n_terms in [(1, 1), (3, 7), (config.DENSE_ROWS + 3, 19), (11, 2)]:
            C = rng.standard_normal((n_terms, n_rows) if transposed else (n_rows, n_terms))
            C = (C.T if transposed else C).astype(dtype)
            M = rng.standard_normal((n_terms, width)).astype(dtype)
            Y = rng.standard_normal((n_rows + 2, width)).astype(dtype)
            expected = Y.astype(np.float64)
            expected[1 : n_rows + 1] += C[:n_rows].astype(np.float64) @ M
            got = Y.copy()
            call(dense.add_products, got[1 : n_rows + 1], 0, n_rows, C, M)
            scale = np.abs(expected).max()
            assert np.abs(got - expected).max() <= tol * scale * n_terms, (width, n_rows)
            assert_same_bits(got[[0, -1]], Y[[0, -1]], "rows outside the range")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_add_products_gives_a_row_the_same_bits_however_the_rows_are_split(dtype):
    """What makes the results independent of the number of threads: a row's sum is the same
    whether its tile holds DENSE_ROWS rows or one."""
    rng = np.random.default_rng(4)
    n_rows = 3 * config.DENSE_ROWS + 1
    C = rng.standard_normal((n_rows, 45)).astype(dtype)
    M = rng.standard_normal((45, 37)).astype(dtype)
    Y = rng.standard_normal((n_rows, 37)).astype(dtype)
    whole = Y.copy()
    call(dense.add_products, whole, 0, n_rows, C, M)
    for cuts in ([0, n_rows], [0, 1, 5, n_rows], list(range(n_rows + 1))):
        split = Y.copy()
        for start, stop in itertools.pairwise(cuts):
            call(dense.add_products, split, start, stop, C, M)
        assert_same_bits(split, whole, f"Y, rows cut at {cuts}")


@numba.njit
def first_layer_by_members(size, layout, net, chunk, sync):
    """The dense first layer's products of the chunk, the jobs of each member of a team of
    `size` done one member after another."""
    for member in range(size):
        samples.first_layer_forward(Team(member, size, sync), layout, net, chunk)


@numba.njit
def first_layer_at_once(layout, net, chunk):
    Z1 = samples.layer_rows(chunk.Z, chunk, layout, 0)
    dense.add_panel_products(
        Z1, 0, chunk.rows.shape[0], chunk.inputs, ahead_weights(net.ahead, layout, 0)
    )


@pytest.mark.parametrize("hidden", [1, 10, 40, 100, 512])
@pytest.mark.parametrize("m", [1, 5, 16, 37, 256])
def test_the_first_layers_jobs_add_every_product_once_for_any_team(hidden, m):
    """However the dense first layer's products are shared out (a job a panel of W1, or a panel
    for a block of the samples where there are few panels), every element of Z1 gets its
    products once, with the bits of all rows at once, for teams of 1 to 5."""
    rng = np.random.default_rng(hidden + m)
    params = init_params(37, hidden, 10, seed=1, dtype="float32")
    layout, net = numba_packing.network(params, "relu")
    inputs = rng.standard_normal((m, 37)).astype(np.float32)
    empty = np.empty(0, np.int64)

    def chunk_of(Z):
        return samples.Chunk(
            np.arange(m), empty, np.empty((1, 1), np.int64), Z, Z[:0], m, 0, True, inputs,
            Z[:0], empty, empty, Z[:0], Z[:0], Z[:0], np.empty((3, 0), np.int64), empty,
        )  # fmt: skip

    start = rng.standard_normal(m * hidden).astype(np.float32)  # as b1 would be
    whole = start.copy()
    first_layer_at_once(layout, net, chunk_of(whole))
    expected = start.reshape(m, hidden) + inputs @ params.coefs[0]
    np.testing.assert_allclose(whole.reshape(m, hidden), expected, rtol=1e-4, atol=1e-4)
    for size in range(1, 6):
        shared = start.copy()
        first_layer_by_members(size, layout, net, chunk_of(shared), np.zeros(3, np.int64))
        assert_same_bits(shared, whole, f"Z1 with a team of {size}")


# An error, not a fall back to Python objects with a warning: helpers compile in nopython mode.
@pytest.mark.filterwarnings("error::numba.NumbaWarning")
def test_add_products_refuses_rows_that_are_not_contiguous():
    M = np.zeros((4, 6))
    with pytest.raises(numba.core.errors.TypingError, match="C-contiguous"):
        call(dense.add_products, np.zeros((4, 6)), 0, 4, M, M[:, ::2])


@pytest.mark.parametrize("n_in", [13, 300, 784])
@pytest.mark.parametrize("hidden", [1, 10, 100, 128, 512, 3000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_layer_jobs_own_every_w1_row_once(n_in, hidden, dtype):
    """However many blocks a job takes (from all of MAX_BLOCKS_PER_JOB down to one), the jobs
    of the first layer own consecutive ranges of theta that cover W1 once, each whole rows."""
    layout = make_layout([n_in, hidden, 10], np.dtype(dtype).itemsize)
    itemsize = np.dtype(dtype).itemsize
    per_job = update.blocks_per_job.py_func(hidden, itemsize)
    assert 1 <= per_job <= update.MAX_BLOCKS_PER_JOB
    n_blocks = epoch.n_blocks.py_func(layout)
    n_groups = update.block_groups.py_func(n_blocks, per_job)
    assert (n_groups - 1) * per_job < n_blocks <= n_groups * per_job
    start = int(layout.weights_at[0])
    for g in range(n_groups):
        first, end = call(update.owned, update.BLOCK_JOB, 0, g, layout, itemsize)
        assert first == start and end > first and (end - first) % hidden == 0, g
        start = end
    assert start == layout.weights_at[0] + n_in * hidden


def test_read_only_inputs_are_accepted():
    params, X, y = mnist_like(n=20)
    X.flags.writeable = False
    y.flags.writeable = False
    backend.train_epoch(params, X, y, np.arange(20), 5, 0.1)
    assert np.isfinite(backend.loss_and_grads(params, X, y)[0])


def test_empty_input_gives_empty_outputs():
    params, X, _ = mnist_like(n=0)
    fwd = backend.forward(params, X)
    assert fwd.Z[0].shape == (0, 32) and fwd.P.shape == (0, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive"),
        ({"lr": float("nan")}, "learning rate must be a positive"),
        ({"activation": "tanh"}, "activation must be one of"),
        ({"order": np.array([0, 9])}, "order holds indices outside"),
        ({"y": np.array([0, 1, 2, 0])}, r"labels must be in 0\.\.1"),
        ({"X": np.zeros((4, 5))}, "X has 5 features but the network expects 3"),
        ({"X": np.full((4, 3), np.inf)}, "NaN or infinite"),
    ],
)
def test_bad_arguments_are_refused_like_the_reference(kwargs, message):
    params = init_params(3, 2, 2, seed=0)
    args = {"X": np.zeros((4, 3)), "y": np.zeros(4, dtype=int), "order": np.arange(4)}
    args |= {"batch_size": 2, "lr": 0.1, "activation": "relu"} | kwargs
    with pytest.raises(ValueError, match=message):
        backend.train_epoch(params, **args)


# --- processes: cache, read-only package, concurrent threads ----------------------------------


def run_python(code: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Runs code in a fresh interpreter; its exit code, stdout and stderr."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


TINY_TRAINING = """
    import numpy as np
    import fastnn
    from fastnn.backends import get_backend
    from fastnn.kernels.epoch import train_batches
    from fastnn.core.model import init_params
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (50, 784)).astype(np.uint8)
    params = init_params(784, 32, 10, seed=0, dtype="float32")
    loss, acc = get_backend("numba").train_epoch(params, X, rng.integers(0, 10, 50),
                                                 np.arange(50), 10, 0.1)
    assert np.isfinite(loss)
    print(fastnn.__file__)
    stats = train_batches.stats
    print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_a_second_process_loads_the_compiled_code_from_the_cache():
    assert config.CACHE
    code, out, err = run_python(TINY_TRAINING)  # compiles, unless an earlier run did
    assert code == 0, err
    code, out, err = run_python(TINY_TRAINING)
    assert code == 0, err
    hits, misses = map(int, out.split()[-2:])
    assert (hits, misses) == (1, 0), "the second process compiled again"


# An entry of its own in a copy of the package: compiling it takes a second, the real ones 30 s.
PROBE = """
from fastnn.kernels.config import entry


@entry
def plus_one(x):
    return x + 1
"""
PROBE_RUN = """
    from fastnn.kernels.probe import plus_one
    assert plus_one(1) == 2
    print(sum(plus_one.stats.cache_hits.values()), sum(plus_one.stats.cache_misses.values()))
"""


def test_an_edit_to_any_kernel_source_makes_the_cached_entries_stale(tmp_path):
    """Numba checks a cached function against its own file only; an entry's cache is checked
    against every file its compiled code comes from: loaded while none changes, compiled again
    after an edit to another kernel module, or to fastnn/core/dropout.py."""
    copy = tmp_path / "fastnn"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "kernels" / "probe.py").write_text(PROBE)
    env = {"PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": ""}  # the copy's own __pycache__

    def hits_and_misses() -> tuple[int, ...]:
        code, out, err = run_python(PROBE_RUN, env, cwd=tmp_path)
        assert code == 0, err
        return tuple(map(int, out.split()))

    assert hits_and_misses() == (0, 1)
    assert hits_and_misses() == (1, 0)
    for edited in ("kernels/team.py", "core/dropout.py"):
        with (copy / edited).open("a") as source:
            source.write("# an edit\n")
        assert hits_and_misses() == (0, 1), f"the cached code outlived an edit to {edited}"
        assert hits_and_misses() == (1, 0)


def test_the_entries_use_that_cache_and_it_knows_every_module_the_kernels_import():
    assert config.CACHE
    for compiled in (epoch.train_batches, epoch.forward, epoch.augment):
        assert isinstance(compiled._cache, SourcesCache), compiled
    imported = set()
    for path in (PACKAGE / "kernels").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module == "fastnn":
                imported |= {f"fastnn.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    outside = {
        m for m in imported if m.startswith("fastnn.") and not m.startswith("fastnn.kernels")
    }
    assert outside == {"fastnn." + name.removesuffix(".py").replace("/", ".") for name in OUTSIDE}


def test_no_writable_cache_folder_at_all_turns_caching_off(monkeypatch):
    """Numba refuses cache=True at decoration time when it finds nowhere to write; the kernels
    are then compiled without a cache instead of failing to import."""

    def nowhere(**options):
        raise RuntimeError("cannot cache function 'probe': no locator available for file")

    monkeypatch.setattr(numba, "njit", nowhere)
    assert config._can_cache() is False


CONCURRENT_TRAINING = """
    import threading
    import numba
    import numpy as np
    from fastnn.backends import get_backend
    from fastnn.core.model import init_params
    backend = get_backend("numba")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (400, 784)).astype(np.uint8)
    X[rng.random(X.shape) < 0.8] = 0
    y = rng.integers(0, 10, 400)

    def train(seed, out):
        params = init_params(784, 32, 10, seed=seed, dtype="float32")
        order = np.random.default_rng(seed).permutation(400)
        for _ in range(6):
            out.append(backend.train_epoch(params, X, y, order, 16, 0.1))
        out.append(params.coefs[0].tobytes() + params.coefs[1].tobytes())

    serial = [[], []]
    for seed in (0, 1):
        train(seed, serial[seed])
    both = [[], []]
    threads = [threading.Thread(target=train, args=(s, both[s])) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert both == serial, "concurrent results differ from serial ones"
    print("ok")
"""


def test_two_python_threads_train_at_once():
    """In a subprocess, so that a crash or a hang shows as a failed exit code: two models
    train at the same time, each with its team of threads, and give the serial results."""
    code, out, err = run_python(CONCURRENT_TRAINING)
    assert code == 0 and out.split()[-1] == "ok", f"exit code {code}: {err}"


# --- weights of any layout ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["fortran", "big-endian", "strided", "read-only", "memmap"],
)
def test_weights_of_any_layout_give_the_same_bits(kind, tmp_path):
    """The kernels are compiled for plain C-ordered native arrays: anything else goes through a
    copy (and trained copies go back), never a compile error, never a misread byte order."""
    params, X, y = mnist_like(hidden=7)
    expected_proba = backend.predict_proba(params, X)
    trained = params.copy()
    train(trained, X, y)

    def unusual(a, i):
        if kind == "fortran":
            return np.asfortranarray(a) if a.ndim == 2 else a.copy()
        if kind == "big-endian":
            return a.astype(a.dtype.newbyteorder(">"))
        if kind == "strided":
            return np.repeat(a, 2, axis=-1)[..., ::2]
        np.save(tmp_path / f"{i}.npy", a)
        return np.load(tmp_path / f"{i}.npy", mmap_mode="r" if kind == "read-only" else "r+")

    odd_arrays = [unusual(a, i) for i, a in enumerate(params.arrays())]
    odd = type(params)(odd_arrays[0::2], odd_arrays[1::2])
    assert_same_bits(backend.predict_proba(odd, X), expected_proba, f"{kind}: probabilities")
    if kind == "read-only":
        with pytest.raises(ValueError, match="read-only"):
            train(odd, X, y)
        return
    train(odd, X, y)
    for name, got, want in zip(odd.names(), odd.arrays(), trained.arrays(), strict=True):
        assert_same_bits(np.asarray(got, dtype=want.dtype), want, f"{kind}: trained {name}")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("shape", [7, (3, 5), (2, 130)])
def test_line_aligned_arrays_start_on_a_cache_line(dtype, shape) -> None:
    for _ in range(20):  # whatever offset NumPy's allocation happens to give
        a = line_aligned(shape, dtype)
        assert a.ctypes.data % CACHE_LINE == 0
        assert a.shape == (shape if isinstance(shape, tuple) else (shape,))
        assert a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable


def test_no_two_kernel_functions_compile_under_one_name():
    """Numba links compiled functions by module, qualified name, argument types and a number
    counted per process: two functions of one name compiled for the same types, each in an
    entry cached by a different process, could call each other's code (a factory's
    "...<locals>.f" did: a dense tile of 4 rows ran where one of 1 was meant, writing past its
    buffer). kernels.config.named gives each function a factory makes a name of its own."""
    import gc

    from numba.core.registry import CPUDispatcher

    rng = np.random.default_rng(0)
    Y, C, M = (
        rng.standard_normal(shape).astype(np.float32) for shape in ((9, 30), (9, 5), (5, 30))
    )
    call(dense.add_products, Y, 0, 9, C, M)  # the factories' functions, compiled here
    panels = panel_copy(M)
    call(dense.add_panel_products, Y, 0, 9, C, panels)
    X, idx, table = sparse_inputs(rng, np.float32, True)
    W = rng.standard_normal((X.shape[1], 30)).astype(np.float32)
    call(tile.gather_row, Y, 2, W, idx, 3, 20, X, 1, table)
    call(tile.scatter_row, W, 3, Y, idx, 2, 21, X, 1, table)
    compiled = {}
    for d in gc.get_objects():
        # type(), not isinstance(): a dead weak proxy among the objects raises on any look
        kernel = type(d) in (CPUDispatcher, config.Helper)
        if kernel and d.py_func.__module__.startswith("fastnn.kernels"):
            name = (d.py_func.__module__, d.py_func.__qualname__)
            compiled.setdefault(name, []).append(set(d.signatures))
    assert len(compiled) > 30  # every helper of the kernels, not a few
    clashes = [
        name
        for name, signatures in compiled.items()
        for a, b in itertools.combinations(signatures, 2)
        if a & b
    ]
    assert not clashes, f"kernel functions compiled under one name for the same types: {clashes}"


def test_helpers_are_compiled_to_ir_only_and_refuse_calls_from_python():
    """A helper's library is finalised without machine code (kernels.linking): its callers
    optimise and compile its IR with their own; Python, which would need that code, is told to
    call it from compiled code."""
    from fastnn.kernels.linking import HelperLibrary

    rng = np.random.default_rng(0)
    Y, C, M = (rng.standard_normal(shape) for shape in ((5, 7), (5, 3), (3, 7)))
    expected = Y + C @ M
    call(dense.add_products, Y, 0, 5, C, M)  # the trampoline's machine code runs the helper
    np.testing.assert_allclose(Y, expected, rtol=1e-12)
    signature = next(s for s in dense.add_products.signatures if s[0] == numba.typeof(Y))
    library = dense.add_products.overloads[signature].library
    assert isinstance(library, HelperLibrary) and library._finalized
    assert not library._compiled  # no machine code of its own
    trampoline = next(
        o for s, o in call.overloads.items() if s[:1] == (numba.typeof(dense.add_products),)
    ).library
    assert not isinstance(trampoline, HelperLibrary) and trampoline._compiled
    with pytest.raises(TypeError, match="runs in compiled code only"):
        dense.add_products(Y, 0, 5, C, M)


# --- predictions of a few rows ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pixels", [True, False])
def test_a_row_predicted_alone_has_the_bits_it_has_in_a_batch(dtype, pixels):
    """A prediction calls the compiled forward pass directly (numba_backend's
    _compiled_forward, past the dispatcher), one chunk on the calling thread, more on a team;
    each row comes out as it does among thousands."""
    from fastnn.backends import numba_backend

    params = init_params(784, (33, 17), 10, "he", 0, dtype)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (600, 784)).astype(np.uint8)
    X[rng.random(X.shape) < 0.8] = 0  # sparse rows, as MNIST's
    X = X if pixels else (X / 255).astype(dtype)
    together = backend.predict_proba(params, X)  # three chunks: the team's path
    for i in (0, 1, 599):
        assert_same_bits(
            backend.predict_proba(params, X[i : i + 1]), together[i : i + 1], f"row {i}"
        )
    assert_same_bits(backend.predict_proba(params, X[:5]), together[:5], "rows 0-4")
    assert (X.dtype, np.dtype(dtype)) in numba_backend._forward_of  # the direct calls were taken


def test_a_long_prediction_is_made_in_parts_of_prediction_rows(monkeypatch):
    """Ctrl-C waits for a compiled call to return, so a prediction of many rows calls the
    forward pass PREDICTION_ROWS rows at a time, each part on the path judged once for all of
    X; the rows come out as they do in one call, dense and sparse."""
    from fastnn.backends import numba_backend

    scipy_sparse = pytest.importorskip("scipy.sparse")
    params = init_params(784, (33,), 10, "he", 0, "float32")
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (700, 784)).astype(np.uint8)
    X[rng.random(X.shape) < 0.8] = 0
    whole = backend.predict_proba(params, X)
    csr = scipy_sparse.csr_matrix((X / 255).astype(np.float32))
    whole_csr = backend.predict_proba(params, csr)
    calls = []
    compiled_forward = numba_backend._compiled_forward

    def counted(args):
        calls.append(len(args[-1].P))
        return compiled_forward(args)

    monkeypatch.setattr(numba_backend, "_compiled_forward", counted)
    monkeypatch.setattr(numba_backend, "PREDICTION_ROWS", 300)
    assert_same_bits(backend.predict_proba(params, X), whole, "dense, in parts")
    assert calls == [300, 300, 100]
    assert_same_bits(backend.predict_proba(params, csr), whole_csr, "sparse, in parts")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_prediction_reads_float_rows_in_place_with_the_bits_of_the_copy(dtype):
    """A prediction's dense first layer reads the rows of a float X where they are; the same
    rows as a CSR matrix are copied into the chunk's inputs first, as training copies them:
    the same bits, on one chunk and on a team's."""
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((700, 40)).astype(dtype)
    X[rng.random(X.shape) < 0.3] = 0  # zeros a CSR matrix leaves out
    params = init_params(40, (33, 17), 10, "he", 0, dtype)
    with backend.first_layer("dense"), backend.threads(2):
        for rows in (slice(0, 5), slice(None)):
            in_place = backend.predict_proba(params, X[rows])
            copied = backend.predict_proba(params, scipy_sparse.csr_matrix(X[rows]))
            assert_same_bits(in_place, copied, f"P of rows {rows}")
