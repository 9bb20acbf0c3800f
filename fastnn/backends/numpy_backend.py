"""The NumPy reference: the tutorials' equations, vectorised over a batch and nothing more.

It is the yardstick the Numba kernels are tested against, so it stays plain: no speed tricks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backends.base import (
    PLAIN_SGD,
    Forward,
    Grads,
    Truth,
    check_dropout,
    check_epoch_args,
    check_images,
    check_sample_weight,
    check_X,
    check_y,
    nothing_compiled,
    unchanged_threads,
)
from fastnn.core.augment import Augmentation, transform
from fastnn.core.dropout import Dropout
from fastnn.core.model import (
    ACTIVATIONS,
    LEAKY_SLOPE,
    OUTPUTS,
    Params,
    check_choice,
    scale_pixels,
)
from fastnn.core.optim import Optimizer, OptimizerState, adam_rate
from fastnn.core.sparse import SparseRows

# Rows of a prediction's forward pass (see NumpyBackend.predict_proba), to bound its memory on
# large sets.
PREDICTION_ROWS = 8192


def to_float(X: np.ndarray | SparseRows, dtype: np.dtype) -> Any:
    """uint8 pixels to [0, 1] as X / 255 in dtype; floats pass through; sparse rows (already
    floats) as a scipy.sparse CSR matrix, whose products with dense arrays are dense."""
    if isinstance(X, SparseRows):
        return X.to_scipy()
    return scale_pixels(X, dtype) if X.dtype == np.uint8 else X


def activate(Z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(Z, 0)
    return np.where(Z > 0, Z, Z * np.asarray(LEAKY_SLOPE, Z.dtype))


def activation_slope(Z: np.ndarray, activation: str) -> np.ndarray:
    """d activation / dZ, taking the slope at 0 as the negative side's."""
    negative = 0 if activation == "relu" else LEAKY_SLOPE
    return np.where(Z > 0, 1, negative).astype(Z.dtype)


def softmax(Z: np.ndarray) -> np.ndarray:
    shifted = Z - Z.max(axis=1, keepdims=True)  # exp cannot overflow
    E = np.exp(shifted)
    return E / E.sum(axis=1, keepdims=True)


def cross_entropy(Z2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample -log softmax(Z2)[y], from the logits so it stays finite."""
    shifted = Z2 - Z2.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    return log_sum - shifted[np.arange(len(y)), y]  # (n,)


def sigmoid(Z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-Z)), from E = exp(-|Z|) so exp cannot overflow."""
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + E), E / (1 + E))


def binary_log_loss(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-sample binary cross-entropy summed over the labels, P clipped to [eps, 1 - eps] (eps
    the dtype's), as scikit-learn's binary_log_loss (its mean over the samples)."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    return -(T * np.log(P) + (1 - T) * np.log(1 - P)).sum(axis=1)  # (n,)


def squared_loss(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-sample half squared error averaged over the outputs: their mean over the samples is
    scikit-learn's squared_loss. Its gradient (see `backward`) is, like scikit-learn's, that of
    the sum over the outputs, so with k outputs the loss reported is 1/k of the one descended."""
    return 0.5 * ((P - T) ** 2).mean(axis=1)  # (n,)


def outputs(Z: np.ndarray, output: str) -> np.ndarray:
    """The network's outputs from the last layer's Z, by kind (fastnn.core.model.OUTPUTS)."""
    if output == "softmax":
        return softmax(Z)
    return sigmoid(Z) if output == "logistic" else Z


def sample_losses(fwd: Forward, truth: Truth, output: str) -> np.ndarray:
    """Each sample's loss (n,) by the output kind."""
    if output == "softmax":
        return cross_entropy(fwd.Z[-1], truth.labels)
    if output == "logistic":
        return binary_log_loss(fwd.P, truth.targets)
    return squared_loss(fwd.P, truth.targets)


def hits(fwd: Forward, truth: Truth, output: str) -> int:
    """Samples predicted right: the label's logit the largest, or every label on the right
    side of 0.5; none for "identity"."""
    if output == "softmax":
        return int((fwd.Z[-1].argmax(axis=1) == truth.labels).sum())
    if output == "logistic":
        return int(((fwd.P > 0.5) == (truth.targets > 0.5)).all(axis=1).sum())
    return 0


def with_targets(truth: Truth, output: str, params: Params) -> Truth:
    """truth with targets (n, n_out) for every kind, what `backward` takes: for "softmax" the
    labels one-hot."""
    if output != "softmax":
        return truth
    return truth._replace(targets=np.eye(params.n_out, dtype=params.dtype)[truth.labels])


def rows_of(truth: Truth, rows: np.ndarray) -> Truth:
    """The given rows of `with_targets`'s truth (labels empty but for "softmax")."""
    return Truth(truth.labels[rows] if truth.labels.size else truth.labels, truth.targets[rows])


def forward(
    params: Params,
    X: np.ndarray,
    activation: str,
    masks: list | None = None,
    output: str = "softmax",
) -> Forward:
    """masks: per hidden layer, the dropout factors of each sample's units (see
    fastnn.core.dropout), or None for none; each A is then the activation times its mask."""
    Z, A = [], []
    inputs = X  # (n, n_in)
    for layer, (W, b) in enumerate(zip(params.coefs, params.intercepts, strict=True)):
        Z.append(inputs @ W + b)  # (n, fan_out)
        if len(Z) < len(params.coefs):
            inputs = activate(Z[-1], activation)  # (n, fan_out)
            if masks is not None and masks[layer] is not None:
                inputs = inputs * masks[layer]  # (n, fan_out) dropped units 0, kept scaled
            A.append(inputs)
    return Forward(Z, A, outputs(Z[-1], output))


def weight_sum(weights: np.ndarray) -> float:
    """The sum of a batch's sample weights (float64), what its gradients are divided by where
    an unweighted batch's are divided by its size; 1 for weights summing to 0, whose gradients
    are then 0, not 0 / 0 (and such a batch makes no update: see `step`)."""
    return float(weights.sum()) or 1.0


def backward(
    params: Params,
    X: np.ndarray,
    T: np.ndarray,
    fwd: Forward,
    activation: str,
    masks: list | None = None,
    weights: np.ndarray | None = None,
) -> Grads:
    """Gradients of the mean loss (no penalty: the optimizer step adds alpha's), T (n, n_out)
    what the outputs are trained towards (`with_targets`): at the last layer's Z the gradient
    is P - T for each output kind (softmax with cross-entropy, sigmoid with binary
    cross-entropy, identity with half the squared error summed over the outputs); masks: the
    dropout factors the forward pass used; weights (n,) float64: those of the weighted mean
    loss, sum(w_i * loss_i) / sum(w), or None for the plain mean."""
    n = X.shape[0]
    if weights is None:
        dZ = (fwd.P - T) / n  # (n, n_out) gradient of the mean loss
    else:
        dtype = params.dtype.type  # the weights rounded as the kernels round them
        w = weights.astype(params.dtype)[:, None]  # (n, 1)
        dZ = (fwd.P - T) * w / dtype(weight_sum(weights))  # of the weighted mean loss
    inputs = [X, *fwd.A]  # what each layer took: (n, fan_in)
    dW, db = [], []
    for layer in reversed(range(len(params.coefs))):
        dW.insert(0, inputs[layer].T @ dZ)  # (fan_in, fan_out)
        db.insert(0, dZ.sum(axis=0))  # (fan_out,)  over the batch only
        if layer:
            slope = activation_slope(fwd.Z[layer - 1], activation)  # (n, fan_in)
            dZ = (dZ @ params.coefs[layer].T) * slope  # (n, fan_in)
            if masks is not None and masks[layer - 1] is not None:
                dZ = dZ * masks[layer - 1]  # through the kept units only
    return Grads(dW, db)


def dropout_masks(params: Params, dropout: Dropout | None, rows: np.ndarray) -> list | None:
    """The dropout factors of the given rows of X (see fastnn.core.dropout), or None for none."""
    if dropout is None or not dropout.active:
        return None
    return dropout.masks(rows, params.hidden_sizes, params.dtype)


def drop_inputs(X: Any, dropout: Dropout | None, rows: np.ndarray) -> Any:
    """X (the given rows of the data, as floats, dense or scipy.sparse) times its input dropout
    factors, if any."""
    if dropout is None or not dropout.input_rate:
        return X
    mask = dropout.input_mask(rows, X.shape[1], X.dtype)  # (n, n_in)
    if isinstance(X, np.ndarray):
        return X * mask
    return X.multiply(mask).tocsr()  # sparse still


def penalty(params: Params, alpha: float) -> float:
    """alpha / 2 * the sum of the squared weights (not biases): the batch's summed loss gains
    this, so its mean gains it / n, as scikit-learn adds it."""
    if alpha == 0:
        return 0.0
    return 0.5 * alpha * sum(float(np.dot(W.ravel(), W.ravel())) for W in params.coefs)


def step(
    params: Params,
    grads: Grads,
    optimizer: Optimizer,
    state: OptimizerState,
    lr: float,
    n: float,
) -> None:
    """One update of params and state in place, by the formulas of fastnn.core.optim; n: the
    batch's size, or with sample weights their sum, which the L2 decay alpha / n divides by
    (scikit-learn's). A weighted batch of weights summing to 0 has nothing to learn from: it
    counts as a step (for Adam's bias correction, as the rates are drawn per batch) but moves
    nothing."""
    dtype = params.dtype.type
    state.step += 1
    if n == 0:
        return
    if optimizer.solver == "adam":
        lr = adam_rate(lr, optimizer, state.step)
    rate, decay = dtype(lr), dtype(optimizer.alpha / n)
    mu, b1, b2 = dtype(optimizer.momentum), dtype(optimizer.beta_1), dtype(optimizer.beta_2)
    c1, c2 = dtype(1 - optimizer.beta_1), dtype(1 - optimizer.beta_2)
    rho, c_rho, eps = dtype(optimizer.rho), dtype(1 - optimizer.rho), dtype(optimizer.epsilon)
    first, second = state.first, state.second
    for p, (param, grad) in enumerate(zip(params.arrays(), grads.arrays(), strict=True)):
        g = grad + decay * param if optimizer.alpha and p % 2 == 0 else grad  # W, not b
        if optimizer.solver == "adam":
            first[p][...] = b1 * first[p] + c1 * g
            second[p][...] = b2 * second[p] + c2 * (g * g)
            param += -rate * first[p] / (np.sqrt(second[p]) + eps)
        elif optimizer.solver == "rmsprop":
            second[p][...] = rho * second[p] + c_rho * (g * g)
            param += -rate * g / (np.sqrt(second[p]) + eps)
        elif optimizer.momentum:
            first[p][...] = mu * first[p] - rate * g
            param += mu * first[p] - rate * g if optimizer.nesterovs_momentum else first[p]
        else:
            param -= rate * g
    if optimizer.max_norm is not None:
        limit = dtype(optimizer.max_norm)
        for W in params.coefs[:-1]:  # the hidden layers' incoming weights
            norms = np.sqrt(np.sum(W * W, axis=0))  # (fan_out,) one per unit
            longer = norms > limit
            W[:, longer] *= limit / norms[longer]


class NumpyBackend:
    name = "numpy"

    def forward(
        self,
        params: Params,
        X: np.ndarray,
        activation: str = "relu",
        output: str = "softmax",
        check_input: bool = True,
    ) -> Forward:
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("output", output, OUTPUTS)
        X = to_float(check_X(params, X, check_input), params.dtype)
        return forward(params, X, activation, output=output)

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
        check_choice("activation", activation, ACTIVATIONS)
        X = check_X(params, X)
        truth = check_y(params, X, y, output)
        weights = check_sample_weight(X, sample_weight)
        if dropout is not None:
            check_dropout(params, dropout)
        rows = np.arange(len(X))
        X = drop_inputs(to_float(X, params.dtype), dropout, rows)
        masks = dropout_masks(params, dropout, rows)
        fwd = forward(params, X, activation, masks, output)
        losses = sample_losses(fwd, truth, output)
        if weights is None:
            loss = float(losses.mean())
        else:
            loss = float((weights * losses).sum()) / weight_sum(weights)
        targets = with_targets(truth, output, params).targets
        return loss, backward(params, X, targets, fwd, activation, masks, weights)

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
        X = check_X(params, X, check_input)
        truth = check_y(params, X, y, output)
        weights = check_sample_weight(X, sample_weight)
        order, rates, state = check_epoch_args(
            params, X, order, batch_size, lr, activation, optimizer, state, dropout
        )
        truth = with_targets(truth, output, params)
        loss_sum = 0.0
        correct = 0
        for batch, start in enumerate(range(0, len(order), batch_size)):
            rows = order[start : start + batch_size]
            Xb = drop_inputs(to_float(X[rows], params.dtype), dropout, rows)
            tb = rows_of(truth, rows)
            masks = dropout_masks(params, dropout, rows)
            fwd = forward(params, Xb, activation, masks, output)
            losses = sample_losses(fwd, tb, output)
            correct += hits(fwd, tb, output)
            if weights is None:
                loss_sum += float(losses.sum()) + penalty(params, optimizer.alpha)
                n = len(rows)
                grads = backward(params, Xb, tb.targets, fwd, activation, masks)
            else:
                # scikit-learn's: the batch's weighted mean loss, and its penalty over the
                # weight sum n, counted len(rows) times; nothing from a batch weighing 0.
                wb = weights[rows]
                n = float(wb.sum())
                if n > 0:
                    batch_sum = penalty(params, optimizer.alpha) + float((wb * losses).sum())
                    loss_sum += batch_sum * len(rows) / n
                grads = backward(params, Xb, tb.targets, fwd, activation, masks, wb)
            step(params, grads, optimizer, state, rates[batch], n)
        accuracy = float("nan") if output == "identity" else correct / len(order)
        return loss_sum / len(order), accuracy

    def predict_proba(
        self,
        params: Params,
        X: np.ndarray,
        activation: str = "relu",
        output: str = "softmax",
        check_input: bool = True,
    ) -> np.ndarray:
        """The forward pass PREDICTION_ROWS rows at a time: every layer's Z and A of a chunk
        at once is what the reference holds, not of all of X."""
        X = check_X(params, X, check_input)
        parts = (X[start : start + PREDICTION_ROWS] for start in range(0, len(X), PREDICTION_ROWS))
        chunks = [
            self.forward(params, part, activation, output, check_input=False).P for part in parts
        ]
        if len(chunks) == 1:  # as it is: a copy would add to a row's latency
            return chunks[0]
        return np.concatenate(chunks) if chunks else np.zeros((0, params.n_out), params.dtype)

    def augment(
        self, X: np.ndarray, augmentation: Augmentation, out: np.ndarray | None = None
    ) -> np.ndarray:
        X, out = check_images(X, augmentation, out)
        return transform(X, augmentation, out)

    def threads(self, n: int | None):
        # NumPy's BLAS threads are set by its own environment variables, before import.
        return unchanged_threads(n)

    def compilation(self, say):
        return nothing_compiled(say)
