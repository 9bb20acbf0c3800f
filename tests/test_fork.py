"""A process forked after the Numba kernels ran (multiprocessing's default on Linux) trains and
predicts with them as its parent does: the kernels' threads are started per call (see
fastnn.kernels.team), so no thread pool is left behind that a fork would break."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import multiprocessing, warnings
    import numpy as np
    import fastnn
    from fastnn.backends import get_backend
    from fastnn.core.model import init_params

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
            held_says = held.predict_proba(init_params(784, 4), X[:2])  # taken before the fork
        messages = [str(w.message) for w in caught]
        return model.coefs_[0].tobytes(), parent_says.tolist(), messages, held_says

    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(child, [1, 2]).get(timeout=120)
    for seed, (coefs, parent_says, messages, held_says) in zip([1, 2], results):
        here = fastnn.MLPClassifier(hidden_layer_sizes=16, max_iter=2, random_state=seed).fit(X, y)
        assert coefs == here.coefs_[0].tobytes(), "the child did not train as the parent does"
        assert parent_says == parent_model.predict(X).tolist()
        assert messages == [], messages
        expected = held.predict_proba(init_params(784, 4), X[:2])
        assert np.array_equal(held_says, expected)
    print("ok")
    """
)


def test_a_forked_child_trains_and_predicts():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
