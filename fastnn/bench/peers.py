"""Other libraries on the same workload, for scale: PyTorch, JAX and scikit-learn.

None of them is a dependency. Each is imported only here, inside a try: one that is not
installed is reported as such and skipped. All get the float32 X / 255 that numpy gets,
scaled once outside the timing, the same starting weights where the library allows it, and
plain SGD with the same learning rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from fastnn.backends import Backend
from fastnn.bench.timing import measure, others_cpu, speedup
from fastnn.bench.workloads import (
    INPUT_FORMS,
    LEARNING_RATE,
    Contender,
    Prepared,
    backend_contender,
)

SCALED_INPUT = "float32 X/255, scaled once outside the timing"
OURS = "fastnn numba"  # the row the peers are compared with


class PeerUnavailable(Exception):
    """The library is missing or cannot run this workload; the message says why."""


def torch_contender(p: Prepared, threads: int) -> Contender:
    """nn.Linear + ReLU + nn.Linear, CrossEntropyLoss, SGD; a Python loop over mini-batches."""
    try:
        import torch
    except ImportError:
        raise PeerUnavailable("not installed") from None
    torch.set_num_threads(threads)
    X = torch.from_numpy(p.scaled())
    y = torch.from_numpy(p.y)
    order = torch.from_numpy(p.order)
    batch = p.batch_size

    def setup() -> tuple:
        model = torch.nn.Sequential(
            torch.nn.Linear(p.params0.n_in, p.params0.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(p.params0.hidden, p.params0.n_out),
        )
        with torch.no_grad():  # nn.Linear stores weights as (out, in): ours transposed
            model[0].weight.copy_(torch.from_numpy(p.params0.W1.T))
            model[0].bias.copy_(torch.from_numpy(p.params0.b1))
            model[2].weight.copy_(torch.from_numpy(p.params0.W2.T))
            model[2].bias.copy_(torch.from_numpy(p.params0.b2))
        return model, torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

    loss_fn = torch.nn.CrossEntropyLoss()

    def run(state: tuple) -> None:
        model, optimizer = state
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            optimizer.zero_grad()
            loss_fn(model(X[rows]), y[rows]).backward()
            optimizer.step()

    return Contender(f"pytorch {torch.__version__}", SCALED_INPUT, setup, run, p.samples_per_run)


def jax_contender(p: Prepared, threads: int) -> Contender:
    """One jitted function per epoch: lax.scan over the batches (see PEER_NOTES)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise PeerUnavailable("not installed") from None
    n_batches = len(p.order) // p.batch_size
    if n_batches == 0:
        raise PeerUnavailable(f"fewer rows than one batch of {p.batch_size}")
    batches = jnp.asarray(p.order[: n_batches * p.batch_size].reshape(n_batches, p.batch_size))
    X = jnp.asarray(p.scaled())
    y = jnp.asarray(p.y.astype(np.int32))

    def loss(params: tuple, xb: jax.Array, yb: jax.Array) -> jax.Array:
        W1, b1, W2, b2 = params
        logits = jax.nn.relu(xb @ W1 + b1) @ W2 + b2
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1))

    @jax.jit
    def epoch(params: tuple, X: jax.Array, y: jax.Array, batches: jax.Array) -> tuple:
        def step(params: tuple, rows: jax.Array) -> tuple:
            value, grads = jax.value_and_grad(loss)(params, X[rows], y[rows])
            return jax.tree.map(lambda w, g: w - LEARNING_RATE * g, params, grads), value

        return jax.lax.scan(step, params, batches)

    def setup() -> tuple:
        return tuple(jnp.asarray(a) for a in p.params0.arrays())

    def run(params: tuple) -> tuple:
        return jax.block_until_ready(epoch(params, X, y, batches))  # jax runs asynchronously

    return Contender(f"jax {jax.__version__}", SCALED_INPUT, setup, run, n_batches * p.batch_size)


def sklearn_contender(p: Prepared, threads: int) -> Contender:
    """MLPClassifier with plain SGD for one epoch, max_iter=1 (see PEER_NOTES)."""
    try:
        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise PeerUnavailable("not installed") from None
    X, y = p.scaled(), p.y

    def setup() -> MLPClassifier:
        return MLPClassifier(
            hidden_layer_sizes=(p.params0.hidden,),
            solver="sgd",
            batch_size=p.batch_size,
            max_iter=1,
            learning_rate_init=LEARNING_RATE,
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            random_state=0,
        )

    def run(model: MLPClassifier) -> None:
        with warnings.catch_warnings():
            # max_iter=1 is the point here: one epoch, not a converged fit.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)

    return Contender(
        f"scikit-learn {sklearn.__version__}", SCALED_INPUT, setup, run, p.samples_per_run
    )


# What each peer does differently, printed under the peer table.
PEER_NOTES = {
    "pytorch": "PyTorch: nn.Linear + ReLU + nn.Linear, CrossEntropyLoss, SGD, a Python loop over "
    "the batches in the same order; torch.set_num_threads(threads).",
    "jax": "JAX: one jitted epoch, lax.scan over the batches, each batch's rows gathered inside; "
    "scan needs equal batches, so the last partial batch is dropped (96 of 60,000 MNIST rows) "
    "and samples/s counts only the rows trained on. XLA keeps its own thread pool (all cores).",
    "scikit-learn": "scikit-learn: MLPClassifier(hidden (128,), solver sgd, batch 128, "
    "max_iter=1, momentum 0, alpha 0) fit once; it draws its own initial weights and shuffles "
    "with its own generator: the same work, not the same numbers.",
}

PEERS: dict[str, Callable[[Prepared, int], Contender]] = {
    "pytorch": torch_contender,
    "jax": jax_contender,
    "scikit-learn": sklearn_contender,
}


def peer_contenders(
    p: Prepared, threads: int, names: tuple[str, ...] = tuple(PEERS)
) -> tuple[list[Contender], dict[str, str]]:
    """The peers that can run, and why each of the others was skipped."""
    found, skipped = [], {}
    for name in names:
        try:
            found.append(PEERS[name](p, threads))
        except PeerUnavailable as exc:
            skipped[name] = str(exc)
    return found, skipped


def run_peers(
    p: Prepared,
    numba: Backend | None,
    threads: int,
    repeats: int,
    peak_gflops: float,
    log: Callable[[str], None],
) -> dict:
    """The workload in every installed peer, taking turns with fastnn's numba backend;
    JSON-ready, with the notes and skipped peers the report prints."""
    found, skipped = peer_contenders(p, threads)
    ours = [] if numba is None else [replace(backend_contender(numba, p), name=OURS)]
    notes = [f"Input to all: {SCALED_INPUT}; {OURS}: {INPUT_FORMS['numba']}."]
    notes += [note for key, note in PEER_NOTES.items() if key not in skipped]
    title = (
        f"Other libraries, {p.workload.label()}, one epoch of {len(p.order):,} rows, "
        f"{threads} threads, plain SGD with lr {LEARNING_RATE:g}:"
    )
    peers = dict(workload=p.workload.name, title=title, results={}, skipped=skipped, notes=notes)
    if not found:
        return peers
    log(f"peers on {p.workload.name}: {', '.join(c.name for c in found)} ...")
    with others_cpu() as others:
        results = measure(ours + found, repeats, p.flops_per_sample, peak_gflops)
    peers["others_cores"] = others["cores"]
    numba_s = results[OURS]["median_epoch_s"] if ours else None
    for r in results.values():
        r["numba_speedup"] = speedup(r["median_epoch_s"], numba_s)
    peers["results"] = results
    return peers
