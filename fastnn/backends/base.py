"""What every backend provides, and the argument checks they share.

A backend is stateless: parameters live in a `Params` and are updated in place by `train_epoch`.
Inputs X are pixels 0..255 (uint8, or other integers all within that range; scaled to [0, 1] as
X / 255 in the parameters' dtype) or numbers used as they are, dense or scipy.sparse (see
fastnn.core.checks.sparse_features). What the outputs are trained
towards depends on their kind (fastnn.core.model.OUTPUTS): for "softmax" y holds integer labels
0..n_out-1; for "logistic" an indicator matrix (n, n_out) of 0 and 1; for "identity" the
targets (n, n_out), any finite numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import numpy as np

from fastnn.core.augment import Augmentation
from fastnn.core.checks import sample_weights, sparse_features
from fastnn.core.dropout import Dropout, check_rates
from fastnn.core.model import ACTIVATIONS, OUTPUTS, Params, check_choice, pixels_or_floats
from fastnn.core.optim import Optimizer, OptimizerState
from fastnn.core.sparse import SparseRows, is_sparse

PLAIN_SGD = Optimizer()  # today's recipe: W -= lr * dW


class Forward(NamedTuple):
    """Every intermediate of one forward pass over n samples, layer by layer."""

    Z: list[np.ndarray]  # Z[l]: (n, fan_out of layer l) pre-activations; Z[-1] the last's
    A: list[np.ndarray]  # A[l]: (n, fan_out of layer l) activations of the hidden layers
    P: np.ndarray  # (n, n_out) the outputs: softmax, sigmoid or identity of Z[-1]


class Grads(NamedTuple):
    """Gradients of the mean loss over a batch, laid out as Params."""

    dW: list[np.ndarray]  # dW[l]: like coefs[l]
    db: list[np.ndarray]  # db[l]: like intercepts[l]

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(a for pair in zip(self.dW, self.db, strict=True) for a in pair)


class Backend(Protocol):
    name: str

    def forward(
        self,
        params: Params,
        X: np.ndarray,
        activation: str = "relu",
        output: str = "softmax",
        check_input: bool = True,
    ) -> Forward:
        """Every layer's Z and A for X, and the outputs P (see `Forward`). check_input=False:
        X has passed `check_X` already (see there)."""
        ...

    def loss_and_grads(
        self,
        params: Params,
        X: np.ndarray,
        y: np.ndarray,
        activation: str = "relu",
        dropout: Dropout | None = None,
        output: str = "softmax",
        sample_weight: np.ndarray | None = None,
    ) -> tuple[float, Grads]:
        """The mean loss over X and its gradients; with dropout, row i of X is row i of the
        masks (see fastnn.core.dropout). The loss is scikit-learn's for the output kind (see
        fastnn.core.model.OUTPUTS); for "identity" with several outputs its squared_loss,
        averaged over the outputs as well, while the gradients are those of the sum over the
        outputs, as scikit-learn's. With sample_weight (one weight a row of X), the weighted
        mean, sum(w_i * loss_i) / sum(w), as scikit-learn's."""
        ...

    def train_epoch(
        self,
        params: Params,
        X: np.ndarray,
        y: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        lr: float | np.ndarray,
        activation: str = "relu",
        optimizer: Optimizer = PLAIN_SGD,
        state: OptimizerState | None = None,
        dropout: Dropout | None = None,
        output: str = "softmax",
        sample_weight: np.ndarray | None = None,
        check_input: bool = True,
    ) -> tuple[float, float]:
        """One pass of mini-batch gradient descent over X[order], batch by batch, the last
        batch possibly smaller, at rate lr (one for all batches, or one per batch), by the
        update rule `optimizer` (plain SGD by default) whose state (a fresh one if None) goes
        on from step to step, dropping hidden units as `dropout` says (none if None).
        Updates params and state in place; returns the mean loss (with the L2 penalty, if
        any) and the accuracy over the epoch (for "logistic" the share of samples with every
        label right; nan for "identity"), each batch measured before its update.

        With sample_weight (one weight a row of X, see `check_sample_weight`) each batch
        descends scikit-learn's weighted objective: the weighted mean of its losses plus the L2
        penalty over its weight sum (rather than its size); the loss returned is, as
        scikit-learn's loss_, the mean over the batches of that objective, each counted as
        many times as it has rows. A batch whose weights sum to 0 has nothing to learn from:
        it makes no update (and adds 0 to the loss), though it counts as a step of the
        optimizer, as its learning rate was drawn for it. check_input=False: X has passed
        `check_X` already (see there)."""
        ...

    def predict_proba(
        self,
        params: Params,
        X: np.ndarray,
        activation: str = "relu",
        output: str = "softmax",
        check_input: bool = True,
    ) -> np.ndarray:
        """The outputs (n, n_out): probabilities, or for "identity" the predictions.
        check_input=False: X has passed `check_X` already (see there)."""
        ...

    def augment(
        self, X: np.ndarray, augmentation: Augmentation, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Every row of X (images, see fastnn.core.augment) transformed as drawn for its row number
        in the augmentation's epoch, into `out` (a new array if None): X's shape and dtype."""
        ...

    def threads(self, n: int | None) -> contextlib.AbstractContextManager[None]:
        """Run the block with n threads (None: leave as is), restoring the count afterwards."""
        ...

    def compilation(
        self, say: Callable[[str], None] | None
    ) -> contextlib.AbstractContextManager[Compilation]:
        """Watch the block for compiling: tell `say` when it starts, record it in the
        Compilation yielded."""
        ...


class Compilation:
    """How long kernels were compiled (rather than loaded from the cache) during a block:
    None if they were not."""

    def __init__(self) -> None:
        self.seconds: float | None = None


@contextlib.contextmanager
def unchanged_threads(n: int | None) -> Iterator[None]:
    yield


@contextlib.contextmanager
def nothing_compiled(say: Callable[[str], None] | None) -> Iterator[Compilation]:
    yield Compilation()


def check_X(
    params: Params, X: np.ndarray | SparseRows, check_input: bool = True
) -> np.ndarray | SparseRows:
    """X as a C-contiguous 2-D uint8 or params-dtype array with params.n_in columns; a sparse
    X (scipy.sparse, or SparseRows) as SparseRows of the params' dtype
    (fastnn.core.checks.sparse_features). check_input=False skips the one check that reads
    every value, that a float X is finite: for an X that has passed it, as the training
    loop's X does once a run rather than once an epoch (a pass over X, a few percent of a
    dense epoch)."""
    if is_sparse(X) or isinstance(X, SparseRows):
        X = sparse_features(X, params.dtype, params.n_in, "the network")
        if X.dtype != params.dtype.newbyteorder("="):
            raise ValueError(f"X (sparse) holds {X.dtype}, but the network is {params.dtype}")
        return X
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}")
    if X.shape[1] != params.n_in:
        raise ValueError(f"X has {X.shape[1]} features but the network expects {params.n_in}")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"X must be uint8 pixels or floats; got dtype {X.dtype}")
    X = pixels_or_floats(X, params.dtype)
    if check_input and X.dtype != np.uint8 and not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    return X


def check_images(
    X: np.ndarray, augmentation: Augmentation, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """X as a C-contiguous 2-D uint8 or float array of the augmentation's images, and `out`
    checked against it (or a new array)."""
    X = np.ascontiguousarray(X)
    height, width = augmentation.image_shape
    if X.ndim != 2 or X.shape[1] != height * width:
        raise ValueError(
            f"X must be 2-D with one {height}x{width} image per row; got shape {X.shape}"
        )
    if X.dtype not in (np.uint8, np.float32, np.float64):
        raise ValueError(f"X must be uint8 pixels or float32/float64; got dtype {X.dtype}")
    if out is None:
        return X, np.empty_like(X)
    if out.shape != X.shape or out.dtype != X.dtype or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous array of X's shape and dtype")
    if not out.flags.writeable or np.shares_memory(out, X):
        raise ValueError("out must be writable and must not overlap X")
    return X, out


def _check_writable(params: Params) -> None:
    """Training updates the weights in place, so they must be writable."""
    locked = [
        name
        for name, a in zip(params.names(), params.arrays(), strict=True)
        if not a.flags.writeable
    ]
    if locked:
        raise ValueError(
            f"the weights {', '.join(locked)} are read-only (memory-mapped or from a read-only "
            "buffer), and training updates them in place: train a writable copy, "
            "params.copy()"
        )


def check_sample_weight(X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray | None:
    """sample_weight checked (fastnn.core.checks.sample_weights) against X's rows: float64,
    C-contiguous, or None for none."""
    return sample_weights(sample_weight, X.shape[0])


class Truth(NamedTuple):
    """What the outputs are trained towards, checked (`check_y`): labels for "softmax", else
    targets; the other is empty."""

    labels: np.ndarray  # (n,) int64, or (0,)
    targets: np.ndarray  # (n, n_out) in the parameters' dtype, or (0, n_out)


def check_y(params: Params, X: np.ndarray, y: np.ndarray, output: str = "softmax") -> Truth:
    """y checked against X and the network for the output kind."""
    check_choice("output", output, OUTPUTS)
    y = np.asarray(y)
    dtype = params.dtype.newbyteorder("=")  # native, as the kernels take every array
    no_targets = np.empty((0, params.n_out), dtype)
    if output == "softmax":
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must be 1-D with one label per row of X ({X.shape[0]}); got {y.shape}"
            )
        if y.dtype.kind not in "iu":
            raise ValueError(f"y must hold integer class indices; got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= params.n_out):
            raise ValueError(f"labels must be in 0..{params.n_out - 1}; got {y.min()}..{y.max()}")
        return Truth(np.ascontiguousarray(y, dtype=np.int64), no_targets)
    if y.shape != (X.shape[0], params.n_out):
        raise ValueError(
            f"y must be 2-D with a row of {params.n_out} targets per row of X "
            f"({X.shape[0]}, {params.n_out}); got {y.shape}"
        )
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y must hold numbers; got dtype {y.dtype}")
    targets = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(targets).all():
        raise ValueError("y contains NaN or infinite targets")
    if output == "logistic" and not np.isin(targets, (0, 1)).all():
        raise ValueError("y must be an indicator matrix of 0 and 1 for logistic outputs")
    return Truth(np.empty(0, np.int64), targets)


def check_epoch_args(
    params: Params,
    X: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    lr: float | np.ndarray,
    activation: str,
    optimizer: Optimizer,
    state: OptimizerState | None,
    dropout: Dropout | None = None,
) -> tuple[np.ndarray, np.ndarray, OptimizerState]:
    """The checked sample order, one learning rate per batch (lr may be one for all), and the
    optimizer's state (a fresh one if None)."""
    if dropout is not None:
        check_dropout(params, dropout)
    _check_writable(params)
    check_choice("activation", activation, ACTIVATIONS)
    order = np.asarray(order)
    if order.ndim != 1 or order.dtype.kind not in "iu" or order.size == 0:
        raise ValueError("order must be a non-empty 1-D array of row indices")
    if order.min() < 0 or order.max() >= X.shape[0]:
        raise ValueError(f"order holds indices outside 0..{X.shape[0] - 1}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number; got {batch_size!r}")
    n_batches = -(-order.size // int(batch_size))
    rates = np.asarray(lr, dtype=np.float64)
    if rates.ndim == 0:
        rates = np.full(n_batches, float(rates))
    if rates.shape != (n_batches,):
        raise ValueError(f"lr must be one number or one per batch ({n_batches}); got {rates.shape}")
    if not (np.isfinite(rates).all() and (rates > 0).all()):
        raise ValueError(f"learning rate must be a positive number; got {lr!r}")
    optimizer.validate()
    if state is None:
        state = OptimizerState.fresh(optimizer, params)
    elif not state.fits(optimizer, params):
        raise ValueError(
            f"the optimizer state does not fit solver {optimizer.solver!r} (momentum "
            f"{optimizer.momentum}) on this network: start from OptimizerState.fresh"
        )
    return np.ascontiguousarray(order, dtype=np.int64), rates, state


def check_dropout(params: Params, dropout: Dropout) -> None:
    """A Dropout that fits the network: a rate per hidden layer, a 64-bit seed, an epoch."""
    n_hidden = len(params.hidden_sizes)
    if len(dropout.rates) != n_hidden:
        raise ValueError(f"dropout needs one rate per hidden layer ({n_hidden}); got {dropout}")
    check_rates(dropout.rates, n_hidden)
    check_rates(dropout.input_rate, 1)
    for name in ("seed", "epoch"):
        value = getattr(dropout, name)
        if not isinstance(value, (int, np.integer)) or not 0 <= value < 2**64:
            raise ValueError(f"dropout {name} must be a whole number from 0 to 2**64 - 1")
