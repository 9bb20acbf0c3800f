"""How gradients move the weights: the optimizers, their state, and learning-rate schedules.

Names and formulas are scikit-learn's (MLPClassifier's `solver`, `momentum`,
`nesterovs_momentum`, `beta_1`, `beta_2`, `epsilon`, `alpha`, `learning_rate`, `power_t`), with
RMSprop (which scikit-learn lacks) as PyTorch defines it; its decay is `rho` here because
`alpha` is the L2 penalty. For a batch of n samples with mean-loss gradient dW, and lr the
batch's learning rate:

    g = dW + (alpha / n) * W            weights only; biases take dW as it is
    sgd, momentum 0:   W -= lr * g
    sgd, momentum mu:  v = mu * v - lr * g;  W += mu * v - lr * g (Nesterov) or W += v
    adam (step t):     m = b1 * m + (1 - b1) * g;  s = b2 * s + (1 - b2) * g * g
                       W += -lr_t * m / (sqrt(s) + eps),  lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
    rmsprop:           s = rho * s + (1 - rho) * g * g;  W += -lr * g / (sqrt(s) + eps)

and the penalty adds alpha / 2 * sum(W * W) / n to the batch's mean loss. With max_norm = c
(Srivastava et al. 2014's constraint, which goes with dropout), after each update every hidden
unit's incoming weight vector w (a column of its layer's W) longer than c is scaled back to c:

    norm = sqrt(sum(w * w)),  summed in the weights' order and dtype;  w *= c / norm if norm > c

Scalars are rounded to the weights' dtype before use; both backends do these operations in
this order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastnn.core.hyperparameters import check
from fastnn.core.model import Params

ADAPTIVE_DIVISOR = 5  # scikit-learn's: "adaptive" divides the rate by 5 when progress stalls
ADAPTIVE_FLOOR = 1e-6  # ... and stops training once the rate is at or below this


class Optimizer(NamedTuple):
    """The update rule; hyperparameters only (the learning rate comes per batch)."""

    solver: str = "sgd"
    momentum: float = 0.0
    nesterovs_momentum: bool = True
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    rho: float = 0.99
    alpha: float = 0.0  # L2 penalty
    max_norm: float | None = None  # bound on each hidden unit's incoming weights (None: none)

    @classmethod
    def of(cls, settings: object) -> Optimizer:
        """The optimizer named by the attributes of `settings` (an MLPClassifier, or the
        training command's options), which go by these fields' names."""
        return cls(*(getattr(settings, name) for name in cls._fields))

    def validate(self) -> Optimizer:
        """Raise ValueError naming the first hyperparameter out of its range."""
        check(self._asdict())
        return self

    @property
    def plain(self) -> bool:
        """Plain SGD: each weight moves by its own gradient only, so a weight whose gradient
        is zero stays as it is."""
        return self.solver == "sgd" and self.momentum == 0 and self.alpha == 0

    @property
    def n_moments(self) -> tuple[int, int]:
        """How many first moments (velocity, Adam's m) and second moments (Adam's and
        RMSprop's running mean of g * g) the state keeps per weight array: 0 or 1 each."""
        if self.solver == "adam":
            return 1, 1
        if self.solver == "rmsprop":
            return 0, 1
        return int(self.momentum != 0), 0


@dataclass
class OptimizerState:
    """What the optimizer carries from step to step, laid out as Params.arrays()."""

    step: int  # updates done so far (Adam's t)
    first: list[np.ndarray]  # velocities, or Adam's m; empty if the solver keeps none
    second: list[np.ndarray]  # running means of g * g; empty if the solver keeps none

    @classmethod
    def fresh(cls, optimizer: Optimizer, params: Params) -> OptimizerState:
        n_first, n_second = optimizer.n_moments
        arrays = params.arrays()
        return cls(
            0,
            [np.zeros_like(a) for a in arrays] if n_first else [],
            [np.zeros_like(a) for a in arrays] if n_second else [],
        )

    def copy(self) -> OptimizerState:
        return OptimizerState(
            self.step, [a.copy() for a in self.first], [a.copy() for a in self.second]
        )

    def restore(self, saved: OptimizerState) -> None:
        """Become `saved` again, in place (the arrays stay the ones the caller holds)."""
        self.step = saved.step
        for mine, theirs in zip(self.first + self.second, saved.first + saved.second, strict=True):
            mine[...] = theirs

    def laid_out_as(self, params: Params) -> bool:
        """Whether each kind of moment is either absent or one array per array of `params`,
        of its shape and dtype."""
        layout = [(a.shape, a.dtype) for a in params.arrays()]
        return all(
            [(a.shape, a.dtype) for a in moments] in ([], layout)
            for moments in (self.first, self.second)
        )

    def fits(self, optimizer: Optimizer, params: Params) -> bool:
        """Whether this state belongs to `optimizer` on a network shaped as `params`."""
        n_first, n_second = optimizer.n_moments
        kept = (bool(self.first), bool(self.second))
        return self.laid_out_as(params) and kept == (bool(n_first), bool(n_second))


def adam_rate(lr: float, optimizer: Optimizer, step: int) -> float:
    """Adam's step size at update `step` (counted from 1), its bias corrections folded in as
    scikit-learn does."""
    b1, b2 = optimizer.beta_1, optimizer.beta_2
    return lr * math.sqrt(1 - b2**step) / (1 - b1**step)


class Schedule:
    """The learning rate of every batch: constant; "invscaling", learning_rate_init /
    (t + 1) ** power_t with t the samples seen before this epoch (scikit-learn's, changed once
    an epoch); "adaptive", divided by 5 each time `stalled()` is reported, ending training once
    at or below 1e-6 (scikit-learn's); or "cosine", per step, from learning_rate_init down
    towards 0 over `max_iter` epochs (after that it stays at the last step's rate)."""

    def __init__(
        self, learning_rate: str, learning_rate_init: float, power_t: float, max_iter: int
    ) -> None:
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.current = learning_rate_init  # the rate of the coming epoch (not for "cosine")
        self.samples_seen = 0  # scikit-learn's t_: samples trained on in earlier epochs

    @property
    def settings(self) -> tuple[str, float, float, int]:
        """What the schedule was made with, in the order __init__ takes it."""
        return self.learning_rate, self.learning_rate_init, self.power_t, self.max_iter

    def rates(self, steps_done: int, n: int, batch_size: int) -> np.ndarray:
        """One rate for each batch of the coming epoch of n samples, after `steps_done`
        updates."""
        n_batches = -(-n // batch_size)
        if self.learning_rate == "cosine":
            total = max(self.max_iter, 1) * n_batches
            steps = np.minimum(np.arange(steps_done, steps_done + n_batches), total - 1)
            return 0.5 * self.learning_rate_init * (1 + np.cos(np.pi * steps / total))
        if self.learning_rate == "invscaling":
            self.current = self.learning_rate_init / (self.samples_seen + 1) ** self.power_t
        return np.full(n_batches, self.current)

    def stalled(self) -> bool:
        """Progress stalled for n_iter_no_change epochs: for "adaptive", divide the rate by 5
        and return whether training should end (the rate was already at the floor)."""
        if self.learning_rate != "adaptive":
            return False
        if self.current <= ADAPTIVE_FLOOR:
            return True
        self.current /= ADAPTIVE_DIVISOR
        return False
