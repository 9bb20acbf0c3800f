"""The NumPy reference: the tutorials' equations, vectorised over a batch and nothing more.

It is the yardstick the Numba kernels are tested against, so it stays plain: no speed tricks.
"""

from __future__ import annotations

import numpy as np

from fastnn.backends.base import (
    Forward,
    Grads,
    check_epoch_args,
    check_X,
    check_y,
    nothing_compiled,
    unchanged_threads,
)
from fastnn.model import ACTIVATIONS, LEAKY_SLOPE, Params, check_choice, scale_pixels


def to_float(X: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """uint8 pixels to [0, 1] as X / 255 in dtype; floats pass through."""
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


def forward(params: Params, X: np.ndarray, activation: str) -> Forward:
    Z1 = X @ params.W1 + params.b1  # (n, H)
    A1 = activate(Z1, activation)  # (n, H)
    Z2 = A1 @ params.W2 + params.b2  # (n, n_out)
    return Forward(Z1, A1, Z2, softmax(Z2))


def backward(params: Params, X: np.ndarray, y: np.ndarray, fwd: Forward, activation: str) -> Grads:
    n = X.shape[0]
    dZ2 = fwd.P.copy()  # (n, n_out)
    dZ2[np.arange(n), y] -= 1
    dZ2 /= n  # gradient of the mean loss
    dW2 = fwd.A1.T @ dZ2  # (H, n_out)
    db2 = dZ2.sum(axis=0)  # (n_out,)  over the batch only
    dZ1 = (dZ2 @ params.W2.T) * activation_slope(fwd.Z1, activation)  # (n, H)
    dW1 = X.T @ dZ1  # (n_in, H)
    db1 = dZ1.sum(axis=0)  # (H,)
    return Grads(dW1, db1, dW2, db2)


class NumpyBackend:
    name = "numpy"

    def forward(self, params: Params, X: np.ndarray, activation: str = "relu") -> Forward:
        check_choice("activation", activation, ACTIVATIONS)
        return forward(params, to_float(check_X(params, X), params.dtype), activation)

    def loss_and_grads(
        self, params: Params, X: np.ndarray, y: np.ndarray, activation: str = "relu"
    ) -> tuple[float, Grads]:
        check_choice("activation", activation, ACTIVATIONS)
        X = check_X(params, X)
        y = check_y(params, X, y)
        X = to_float(X, params.dtype)
        fwd = forward(params, X, activation)
        loss = float(cross_entropy(fwd.Z2, y).mean())
        return loss, backward(params, X, y, fwd, activation)

    def train_epoch(
        self,
        params: Params,
        X: np.ndarray,
        y: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        lr: float,
        activation: str = "relu",
    ) -> tuple[float, float]:
        X = check_X(params, X)
        y = check_y(params, X, y)
        order = check_epoch_args(params, X, order, batch_size, lr, activation)
        lr = params.dtype.type(lr)
        loss_sum = 0.0
        correct = 0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            Xb, yb = to_float(X[rows], params.dtype), y[rows]
            fwd = forward(params, Xb, activation)
            loss_sum += float(cross_entropy(fwd.Z2, yb).sum())
            correct += int((fwd.Z2.argmax(axis=1) == yb).sum())
            grads = backward(params, Xb, yb, fwd, activation)
            for param, grad in zip(params.arrays(), grads, strict=True):
                param -= lr * grad
        return loss_sum / len(order), correct / len(order)

    def predict_proba(self, params: Params, X: np.ndarray, activation: str = "relu") -> np.ndarray:
        return self.forward(params, X, activation).P

    def threads(self, n: int | None):
        # NumPy's BLAS threads are set by its own environment variables, before import.
        return unchanged_threads(n)

    def compilation(self, say):
        return nothing_compiled(say)
