"""The optimizer step, on one flat range of theta at a time (see `layout`): the range a job of
the update pass owns, so each element is written by one thread.

The formulas and their order are fastnn.core.optim's, which the NumPy reference
(`numpy_backend.step`) follows: every scalar arrives already rounded to the parameters' dtype,
and each operation is written as the reference does it, so float64 results agree with it to
rounding and plain SGD is the very subtraction it always was.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn.kernels.config import helper

# Rule.solver: what a step does with the gradient sums. GRADIENTS_ONLY leaves them where they
# are (for loss_and_grads) instead of moving the weights.
GRADIENTS_ONLY, SGD, MOMENTUM, ADAM, RMSPROP = 0, 1, 2, 3, 4


class Rule(NamedTuple):
    """The update rule and its scalars, all but `alpha` in the parameters' dtype."""

    solver: int
    rates: np.ndarray  # (n_batches,) each batch's learning rate (Adam's bias-corrected)
    alpha: float  # L2 penalty (float64): weights get g = dW + (alpha / n) * W
    momentum: np.floating
    nesterov: bool
    beta_1: np.floating
    one_minus_beta_1: np.floating
    beta_2: np.floating
    one_minus_beta_2: np.floating
    rho: np.floating
    one_minus_rho: np.floating
    epsilon: np.floating
    max_norm: np.floating  # the limit of a hidden unit's incoming weights' norm; 0: none


@helper
def moves_idle_weights(rule):
    """Whether a zero gradient can move a weight: through the penalty, or through a momentum
    or moment already built up (which `step` cannot know from the gradient alone)."""
    return (
        rule.alpha > 0 or rule.solver == MOMENTUM or rule.solver == ADAM or (rule.solver == RMSPROP)
    )


@helper
def steps_touched_rows(rule, row_flags):
    """Whether the first layer's rows are stepped only where the batch touched them (or, under
    momentum, where a velocity is not yet zero: `update.step_rows`): exact for plain SGD and
    momentum without L2 (an untouched row's gradient is +0, and w - lr * 0 is w), where the
    workspace has row_flags (a sparse matrix X on a sparse first layer). Not under L2, which
    decays every weight, nor Adam or RMSprop, whose moments move every weight each step, as
    scikit-learn's do (docs/library.md, "Sparse input")."""
    return (
        row_flags.shape[1] > 0
        and rule.alpha == 0
        and (rule.solver == SGD or rule.solver == MOMENTUM)
    )


@helper
def step(theta, sums, first, second, start, stop, rule, lr, decay):
    """One update of theta[start:stop] from its gradient sums, by rule.solver; decay: alpha / n
    in the dtype for weights, None for biases. Then the sums are zero for the next batch
    (GRADIENTS_ONLY: kept, they are the result). The helpers take the range as slices and loop
    from 0: indices Numba knows are not negative, so it drops its wraparound test and the
    loops vectorise (10x faster than indexing the whole buffers from `start`)."""
    if rule.solver == GRADIENTS_ONLY:
        return
    m, s = first[start:stop], second[start:stop]  # empty where the rule keeps no moment
    step_slices(theta[start:stop], sums[start:stop], m, s, rule, lr, decay)


@helper
def step_slices(p, g, m, s, rule, lr, decay):
    """`step` of the weights p from their gradient sums g (zero after), m and s the rule's
    first and second moments of them."""
    if decay is not None and rule.alpha > 0:
        for j in range(g.shape[0]):
            g[j] = g[j] + decay * p[j]  # g, as the reference adds it
    if rule.solver == SGD:
        for j in range(g.shape[0]):
            p[j] -= lr * g[j]
    elif rule.solver == MOMENTUM:
        momentum_step(p, g, m, rule, lr)
    elif rule.solver == ADAM:
        adam_step(p, g, m, s, rule, lr)
    else:
        rmsprop_step(p, g, s, rule, lr)
    g[:] = 0


@helper
def momentum_step(p, g, velocity, rule, lr):
    """v = mu * v - lr * g; then W += mu * v - lr * g (Nesterov) or W += v."""
    mu = rule.momentum
    for j in range(g.shape[0]):
        velocity[j] = mu * velocity[j] - lr * g[j]
    if rule.nesterov:
        for j in range(g.shape[0]):
            p[j] += mu * velocity[j] - lr * g[j]
    else:
        for j in range(g.shape[0]):
            p[j] += velocity[j]


@helper
def adam_step(p, g, m, s, rule, lr):
    """m = b1 * m + (1 - b1) * g; s = b2 * s + (1 - b2) * g * g; W += -lr * m / (sqrt(s) + eps),
    lr already Adam's bias-corrected rate of this step."""
    b1, c1 = rule.beta_1, rule.one_minus_beta_1
    b2, c2 = rule.beta_2, rule.one_minus_beta_2
    eps, rate = rule.epsilon, -lr
    for j in range(g.shape[0]):
        m[j] = b1 * m[j] + c1 * g[j]
        s[j] = b2 * s[j] + c2 * (g[j] * g[j])
        p[j] += rate * m[j] / (np.sqrt(s[j]) + eps)


@helper
def rmsprop_step(p, g, s, rule, lr):
    """s = rho * s + (1 - rho) * g * g; W += -lr * g / (sqrt(s) + eps)."""
    rho, c = rule.rho, rule.one_minus_rho
    eps, rate = rule.epsilon, -lr
    for j in range(g.shape[0]):
        s[j] = rho * s[j] + c * (g[j] * g[j])
        p[j] += rate * g[j] / (np.sqrt(s[j]) + eps)
