"""Other libraries on the same workloads, for scale: PyTorch, JAX and scikit-learn.

None of them is a dependency. Each is imported only here, inside a try: one that is not
installed is reported as such and skipped. All get the float X that numpy gets (X / 255,
scaled once outside the timing, a dense workload's own, or the sparse workload's CSR matrix),
the same starting weights where the library allows it, and the workload's layers, solver
(plain SGD or Adam) and learning rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from fastnn.backends import Backend
from fastnn.bench.timing import measure, others_cpu, speedup
from fastnn.bench.workloads import Contender, Prepared, Workload, backend_contender
from fastnn.core.model import Params

if TYPE_CHECKING:  # for the annotations only: torch is imported where it is used, if at all
    import torch
    from scipy.sparse import csr_matrix

OURS = "fastnn numba"  # the row the peers are compared with
SPARSE_FLOPS = (
    "GFLOP/s on a CSR matrix count the first layer over the non-zero features only (4 x "
    "non-zeros x hidden units a sample: the products every contender here does), not the "
    "dense-equivalent count."
)
JAX_NOT_SPARSE = (
    "not set up for a CSR matrix: jax.experimental.sparse (BCOO) is experimental, lax.scan "
    "would need every batch padded to the largest batch's non-zeros, and the gradient of a "
    "dense first-layer weight comes out dense, as PyTorch's does, so it would add no other "
    "way of doing the work"
)
PEER_SOLVERS = ("sgd", "adam")  # the update rules written out for every peer below


def scaled_input(p: Prepared) -> str:
    """What the other libraries take: what numpy takes (`Prepared.scaled`)."""
    return p.input_form("numpy")


class PeerUnavailable(Exception):
    """The library is missing or cannot run this workload; the message says why."""


def check_solver(w: Workload) -> None:
    if w.solver not in PEER_SOLVERS:
        raise PeerUnavailable(f"solver {w.solver} is not set up for the other libraries")


def torch_optimizer(model: torch.nn.Module, w: Workload) -> torch.optim.Optimizer:
    """torch.optim's SGD or Adam with the workload's rate, betas and epsilon."""
    import torch

    if w.solver == "adam":
        o = w.optimizer
        return torch.optim.Adam(
            model.parameters(), lr=w.learning_rate, betas=(o.beta_1, o.beta_2), eps=o.epsilon
        )
    return torch.optim.SGD(model.parameters(), lr=w.learning_rate)


def torch_network(params: Params) -> torch.nn.Sequential:
    """nn.Linear layers holding copies of params' weights, ReLU between them, the logits
    last."""
    import torch

    layers = []
    for W, b in zip(params.coefs, params.intercepts, strict=True):
        linear = torch.nn.Linear(*W.shape, dtype=torch.from_numpy(W).dtype)
        with torch.no_grad():  # nn.Linear stores weights as (out, in): ours transposed
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])  # no ReLU after the logits


def torch_loss(w: Workload) -> Callable:
    """The workload's loss in PyTorch: the mean cross-entropy, or half the mean squared error
    (scikit-learn's and fastnn's squared_loss on one target)."""
    import torch

    if w.output == "identity":
        squared = torch.nn.MSELoss()
        return lambda out, target: 0.5 * squared(out, target)
    return torch.nn.CrossEntropyLoss()


def torch_sparse_rows(X: csr_matrix, rows: np.ndarray) -> torch.Tensor:
    """The rows of a CSR matrix as a sparse COO tensor: torch.sparse.mm's fastest input here.
    (One batch of the sparse workload, forward and backward by 50,000 x 128 weights: COO 24 ms,
    CSR 54 ms, each also 2 to 4 times slower with nn.Linear's (units, inputs) weight
    transposed: so COO, and the weight as (inputs, units), in torch_sparse_network.)"""
    import torch

    batch = X[rows].tocoo()  # scipy's sorted rows of sorted columns: coalesced already
    at = torch.from_numpy(np.stack([batch.row, batch.col]).astype(np.int64))
    values = torch.from_numpy(batch.data)
    return torch.sparse_coo_tensor(
        at, values, batch.shape, check_invariants=False, is_coalesced=True
    )


def torch_sparse_network(params: Params) -> torch.nn.Sequential:
    """torch_network with its first layer's weight held as (inputs, units), times a sparse
    batch by torch.sparse.mm."""
    import torch

    class SparseLinear(torch.nn.Module):
        def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.from_numpy(W.copy()))
            self.bias = torch.nn.Parameter(torch.from_numpy(b.copy()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sparse.mm(x, self.weight) + self.bias

    first = SparseLinear(params.coefs[0], params.intercepts[0])
    return torch.nn.Sequential(first, *torch_network(params)[1:])


def torch_contender(p: Prepared, threads: int) -> Contender:
    """nn.Linear layers with ReLU between them, the workload's loss (torch_loss), SGD or Adam;
    a Python loop over mini-batches. On a CSR matrix each batch's rows go in as a sparse
    tensor, times the first layer's dense weight by torch.sparse.mm (torch_sparse_network)."""
    try:
        import torch
    except ImportError:
        raise PeerUnavailable("not installed") from None
    check_solver(p.workload)
    torch.set_num_threads(threads)
    sparse = p.workload.sparse
    X = p.scaled() if sparse else torch.from_numpy(p.scaled())
    y = torch.from_numpy(p.y)
    order = p.order if sparse else torch.from_numpy(p.order)
    batch = p.batch_size
    rows_of = torch_sparse_rows if sparse else lambda X, rows: X[rows]

    def setup() -> tuple:
        model = (torch_sparse_network if sparse else torch_network)(p.params0)
        return model, torch_optimizer(model, p.workload)

    loss_fn = torch_loss(p.workload)

    def run(state: tuple) -> None:
        model, optimizer = state
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            optimizer.zero_grad()
            loss_fn(model(rows_of(X, rows)), y[rows]).backward()
            optimizer.step()

    return Contender(f"pytorch {torch.__version__}", scaled_input(p), setup, run, p.samples_per_run)


def jax_rule(w: Workload) -> tuple[Callable, Callable]:
    """The workload's update rule written out in JAX (which has no optimizers of its own), by
    the formulas of fastnn.core.optim: init(params) -> state, and update(params, grads, state) ->
    (params, state)."""
    import jax
    import jax.numpy as jnp

    lr, o = w.learning_rate, w.optimizer

    def sgd(params: tuple, grads: tuple, state: tuple) -> tuple:
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), state

    def adam_init(params: tuple) -> tuple:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return zeros, zeros, jnp.zeros((), jnp.int32)  # m, s and the step t

    def adam(params: tuple, grads: tuple, state: tuple) -> tuple:
        m, s, t = state
        t = t + 1
        m = jax.tree.map(lambda m, g: o.beta_1 * m + (1 - o.beta_1) * g, m, grads)
        s = jax.tree.map(lambda s, g: o.beta_2 * s + (1 - o.beta_2) * g * g, s, grads)
        rate = lr * jnp.sqrt(1 - o.beta_2**t) / (1 - o.beta_1**t)
        params = jax.tree.map(
            lambda p, m, s: p - rate * m / (jnp.sqrt(s) + o.epsilon), params, m, s
        )
        return params, (m, s, t)

    if w.solver == "adam":
        return adam_init, adam
    return (lambda params: ()), sgd


def jax_contender(p: Prepared, threads: int) -> Contender:
    """One jitted function per epoch: lax.scan over the batches (see peer_notes)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise PeerUnavailable("not installed") from None
    check_solver(p.workload)
    if p.workload.sparse:
        raise PeerUnavailable(JAX_NOT_SPARSE)
    init, update = jax_rule(p.workload)
    n_batches = len(p.order) // p.batch_size
    if n_batches == 0:
        raise PeerUnavailable(f"fewer rows than one batch of {p.batch_size}")
    batches = jnp.asarray(p.order[: n_batches * p.batch_size].reshape(n_batches, p.batch_size))
    X = jnp.asarray(p.scaled())
    regression = p.workload.output == "identity"
    y = jnp.asarray(p.y if regression else p.y.astype(np.int32))

    def loss(params: tuple, xb: jax.Array, yb: jax.Array) -> jax.Array:
        *hidden, (W_out, b_out) = zip(params[0::2], params[1::2], strict=True)
        a = xb
        for W, b in hidden:
            a = jax.nn.relu(a @ W + b)
        logits = a @ W_out + b_out
        if regression:  # half the mean squared error, one target
            return 0.5 * jnp.mean((logits - yb) ** 2)
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1))

    @jax.jit
    def epoch(carry: tuple, X: jax.Array, y: jax.Array, batches: jax.Array) -> tuple:
        def step(carry: tuple, rows: jax.Array) -> tuple:
            params, state = carry
            value, grads = jax.value_and_grad(loss)(params, X[rows], y[rows])
            return update(params, grads, state), value

        return jax.lax.scan(step, carry, batches)

    def setup() -> tuple:
        params = tuple(jnp.asarray(a) for a in p.params0.arrays())
        return params, init(params)

    def run(carry: tuple) -> tuple:
        return jax.block_until_ready(epoch(carry, X, y, batches))  # jax runs asynchronously

    return Contender(
        f"jax {jax.__version__}", scaled_input(p), setup, run, n_batches * p.batch_size
    )


def sklearn_contender(p: Prepared, threads: int) -> Contender:
    """MLPClassifier (MLPRegressor for a regression) with the workload's solver for one epoch,
    max_iter=1 (see peer_notes)."""
    try:
        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError:
        raise PeerUnavailable("not installed") from None
    check_solver(p.workload)
    regression = p.workload.output == "identity"
    estimator = MLPRegressor if regression else MLPClassifier
    X, y = p.scaled(), p.y.ravel() if regression else p.y
    # fastnn's optimizer settings go by MLPClassifier's names; RMSprop's rho and the max-norm
    # constraint are ours (the workloads use neither).
    settings = p.workload.optimizer._asdict()
    del settings["rho"], settings["max_norm"]

    def setup() -> MLPClassifier | MLPRegressor:
        return estimator(
            hidden_layer_sizes=p.workload.hidden,
            batch_size=p.batch_size,
            max_iter=1,
            learning_rate_init=p.workload.learning_rate,
            random_state=0,
            **settings,
        )

    def run(model: MLPClassifier | MLPRegressor) -> None:
        with warnings.catch_warnings():
            # max_iter=1 is the point here: one epoch, not a converged fit.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)

    return Contender(
        f"scikit-learn {sklearn.__version__}", scaled_input(p), setup, run, p.samples_per_run
    )


def peer_notes(p: Prepared) -> dict[str, str]:
    """What each peer does differently on this workload, printed under the peer tables. They
    name no workload, so notes that come out equal for several are printed once."""
    dropped = len(p.order) % p.batch_size
    regression = p.workload.output == "identity"
    loss = "half of MSELoss" if regression else "CrossEntropyLoss"
    estimator = "MLPRegressor" if regression else "MLPClassifier"
    if p.workload.sparse:
        return sparse_peer_notes(p, estimator)
    return {
        "pytorch": f"PyTorch: nn.Linear layers with ReLU between them, {loss}, "
        "torch.optim.SGD, or torch.optim.Adam with fastnn's betas and epsilon (it adds epsilon "
        "after the bias correction, fastnn and scikit-learn before: a slightly different "
        "step), a Python loop over the batches in the same order; "
        "torch.set_num_threads(threads).",
        "jax": "JAX: one jitted epoch, lax.scan over the batches, each batch's rows gathered "
        "inside, SGD or Adam written out by fastnn's formulas; scan needs equal batches, so "
        f"the last partial batch is dropped ({dropped} of {len(p.order):,} rows) and samples/s "
        "counts only the rows trained on. XLA keeps its own thread pool (all cores).",
        "scikit-learn": f"scikit-learn: {estimator} with the workload's hidden_layer_sizes, "
        "solver, learning_rate_init and batch_size, max_iter=1, alpha 0, momentum 0 for SGD, "
        "fastnn's betas and epsilon for Adam, fit once; it draws its own initial weights and "
        "shuffles with its own generator: the same work, not the same numbers.",
    }


def sparse_peer_notes(p: Prepared, estimator: str) -> dict[str, str]:
    """peer_notes on a CSR matrix: how each peer multiplies by it, and what its first layer's
    weight gradient comes out as, which decides how much each SGD step writes."""
    n_in, hidden = p.X.shape[1], p.workload.hidden[0]

    def dense_gradient(what: str) -> str:
        return (
            f"its first layer's weight gradient X.T dZ comes out dense ({what}: {n_in:,} x "
            f"{hidden} values a batch, most of them 0), and each SGD step updates every "
            "first-layer weight"
        )

    return {
        "pytorch": "PyTorch on a CSR matrix: each batch's rows taken from it by scipy and "
        "wrapped as a sparse COO tensor inside the timing, times the first layer's dense "
        "weight, held as (inputs, units), by torch.sparse.mm (CSR tensors and nn.Linear's "
        "transposed weight were 2 to 4 times slower), then nn.Linear layers with ReLU between "
        "them, "
        "CrossEntropyLoss and torch.optim.SGD, the batches in the same order; "
        f"{dense_gradient('a strided tensor from autograd')}; torch.set_num_threads(threads).",
        "scikit-learn": f"scikit-learn: {estimator} with the workload's hidden_layer_sizes, "
        "solver, learning_rate_init and batch_size, max_iter=1, alpha 0, momentum 0, fit once "
        "on the CSR matrix itself (its products with X go through scipy); "
        f"{dense_gradient('an ndarray from safe_sparse_dot')}. "
        "It draws its own initial weights and shuffles with its own generator: the same work, "
        "not the same numbers.",
    }


PEERS: dict[str, Callable[[Prepared, int], Contender]] = {
    "pytorch": torch_contender,
    "jax": jax_contender,
    "scikit-learn": sklearn_contender,
}


def peer_contenders(
    p: Prepared, threads: int, names: tuple[str, ...] | None = None
) -> tuple[list[Contender], dict[str, str]]:
    """The peers that can run (of `names`, default all), and why each other was skipped."""
    found, skipped = [], {}
    for name in tuple(PEERS) if names is None else names:
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
    if p.workload.dense or p.workload.sparse:
        notes = [f"Input to all, {OURS} included: {scaled_input(p)}."]
    else:
        notes = [f"Input to all: {scaled_input(p)}; {OURS}: {p.input_form('numba')}."]
    notes += [note for key, note in peer_notes(p).items() if key in PEERS and key not in skipped]
    if p.workload.sparse:
        notes.append(SPARSE_FLOPS)
    title = (
        f"Other libraries, {p.workload.label()}, one epoch of {len(p.order):,} rows, "
        f"{threads} threads:"
    )
    peers = dict(workload=p.workload.name, title=title, results={}, skipped=skipped, notes=notes)
    if not found:
        return peers
    log(f"peers on {p.workload.name}: {', '.join(c.name for c in found)} ...")
    with others_cpu() as others:
        flops = p.sparse_flops_per_sample if p.workload.sparse else p.flops_per_sample
        results = measure(ours + found, repeats, flops, peak_gflops)
    peers["others_cores"] = others["cores"]
    numba_s = results[OURS]["median_epoch_s"] if ours else None
    for r in results.values():
        r["numba_speedup"] = speedup(r["median_epoch_s"], numba_s)
    peers["results"] = results
    return peers
