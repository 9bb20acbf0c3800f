"""A process forked after the Numba kernels ran (multiprocessing's default on Linux) can train
and predict: GNU OpenMP cannot run there, so it gets the NumPy reference, never a hang."""

import subprocess
import sys
import textwrap

import pytest

from fastnn.kernels.config import THREADING_LAYER

SCRIPT = textwrap.dedent(
    """
    import multiprocessing, warnings
    import numpy as np
    import fastnn
    from fastnn.backends import get_backend
    from fastnn.model import init_params

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (400, 784), dtype=np.uint8)
    y = (X[:, :392].mean(axis=1) > X[:, 392:].mean(axis=1)).astype(int)
    parent_model = fastnn.MLPClassifier(hidden_layer_sizes=16, max_iter=2, random_state=0)
    parent_model.fit(X, y)  # the Numba kernels run in the parent
    held = get_backend("numba")

    def child(seed):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fastnn.MLPClassifier(hidden_layer_sizes=16, max_iter=2, random_state=seed)
            model.fit(X, y)
            parent_says = parent_model.predict(X)
        try:  # a backend object taken before the fork: a clear error, not a killed child
            held.predict_proba(init_params(784, 4), X[:2])
            held_error = None
        except RuntimeError as exc:
            held_error = str(exc)
        messages = [str(w.message) for w in caught]
        return model.coefs_[0].tobytes(), parent_says.tolist(), messages, held_error

    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(child, [1, 2]).get(timeout=120)
    for seed, (coefs, parent_says, messages, held_error) in zip([1, 2], results):
        reference = fastnn.MLPClassifier(
            hidden_layer_sizes=16, max_iter=2, random_state=seed, backend="numpy"
        ).fit(X, y)
        assert coefs == reference.coefs_[0].tobytes(), "the child did not train as numpy does"
        assert parent_says == parent_model.predict(X).tolist()
        assert sum("forked" in m and "spawn" in m for m in messages) == 1, messages
        assert "forked" in held_error and "spawn" in held_error, held_error
    print("ok")
    """
)


@pytest.mark.skipif(THREADING_LAYER != "omp", reason="only GNU OpenMP cannot run after a fork")
def test_a_forked_child_trains_and_predicts():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
