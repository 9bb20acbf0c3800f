"""The NumPy reference's optimizers and schedules against the published update rules, written
out here independently, step by step in float64 (scikit-learn's SGDOptimizer and AdamOptimizer,
PyTorch's RMSprop)."""

import math

import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState, Schedule

numpy_backend = get_backend("numpy")
STEPS = 5


def _problem(hidden=(6, 5)):
    rng = np.random.default_rng(7)
    params = init_params(8, hidden, 3, seed=1, dtype="float64")
    X = rng.normal(size=(12, 8))
    y = rng.integers(0, 3, 12)
    return params, X, y


def _by_the_formulas(optimizer: Optimizer, params, X, y, lr, batch_size):
    """STEPS epochs of mini-batches in order, the update written from the published rule."""
    arrays = [a.copy() for a in params.arrays()]
    velocity = [np.zeros_like(a) for a in arrays]
    m = [np.zeros_like(a) for a in arrays]
    v = [np.zeros_like(a) for a in arrays]
    t = 0
    for _ in range(STEPS):
        for start in range(0, len(X), batch_size):
            Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            n = len(Xb)
            current = type(params)(arrays[0::2], arrays[1::2])
            _, grads = numpy_backend.loss_and_grads(current, Xb, yb)
            grads = list(grads.arrays())
            for p in range(0, len(arrays), 2):  # scikit-learn: (sum + alpha * W) / n
                grads[p] = (grads[p] * n + optimizer.alpha * arrays[p]) / n
            t += 1
            for p, g in enumerate(grads):
                if optimizer.solver == "sgd":  # sklearn SGDOptimizer._get_updates
                    velocity[p] = optimizer.momentum * velocity[p] - lr * g
                    if optimizer.nesterovs_momentum:
                        update = optimizer.momentum * velocity[p] - lr * g
                    else:
                        update = velocity[p]
                elif optimizer.solver == "adam":  # sklearn AdamOptimizer._get_updates
                    b1, b2 = optimizer.beta_1, optimizer.beta_2
                    m[p] = b1 * m[p] + (1 - b1) * g
                    v[p] = b2 * v[p] + (1 - b2) * g**2
                    rate = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
                    update = -rate * m[p] / (np.sqrt(v[p]) + optimizer.epsilon)
                else:  # torch.optim.RMSprop, no momentum, not centred
                    v[p] = optimizer.rho * v[p] + (1 - optimizer.rho) * g * g
                    update = -lr * g / (np.sqrt(v[p]) + optimizer.epsilon)
                arrays[p] = arrays[p] + update
            if optimizer.max_norm is not None:  # Srivastava et al. 2014, section 5.1
                for p in range(0, len(arrays) - 2, 2):  # the hidden layers' weights
                    norms = np.linalg.norm(arrays[p], axis=0)  # each unit's incoming weights
                    arrays[p] = arrays[p] * np.where(
                        norms > optimizer.max_norm, optimizer.max_norm / norms, 1
                    )
    return arrays, t


@pytest.mark.parametrize(
    "optimizer",
    [
        Optimizer("sgd", momentum=0.9, nesterovs_momentum=True),
        Optimizer("sgd", momentum=0.8, nesterovs_momentum=False, alpha=0.5),
        Optimizer("sgd", alpha=0.5),
        Optimizer("adam"),
        Optimizer("adam", beta_1=0.8, beta_2=0.99, epsilon=1e-6, alpha=0.1),
        Optimizer("rmsprop"),
        Optimizer("rmsprop", rho=0.9, alpha=0.2),
        Optimizer("sgd", momentum=0.9, max_norm=0.4),
        Optimizer("adam", alpha=0.1, max_norm=0.3),
    ],
    ids=str,
)
@pytest.mark.parametrize("hidden", [4, (6, 5), (3, 4, 5)])
def test_reference_updates_follow_the_published_rules(optimizer, hidden):
    params, X, y = _problem(hidden)
    want, steps = _by_the_formulas(optimizer, params, X, y, lr=0.05, batch_size=5)
    state = OptimizerState.fresh(optimizer, params)
    for _ in range(STEPS):
        numpy_backend.train_epoch(
            params, X, y, np.arange(len(X)), 5, 0.05, "relu", optimizer, state
        )
    assert state.step == steps
    for name, got, expected in zip(params.names(), params.arrays(), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14, err_msg=name)


def test_plain_sgd_keeps_no_state_and_momentum_zero_is_plain():
    """momentum 0 with or without Nesterov is W -= lr * g, the same bits as before optimizers
    existed: no velocity is kept."""
    params, X, y = _problem()
    twin = params.copy()
    state = OptimizerState.fresh(Optimizer(), params)
    assert state.first == [] and state.second == []
    numpy_backend.train_epoch(params, X, y, np.arange(12), 4, 0.1)
    numpy_backend.train_epoch(twin, X, y, np.arange(12), 4, 0.1, "relu", Optimizer(), state)
    for a, b in zip(params.arrays(), twin.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_rate_per_batch():
    """A rate per batch is used batch by batch: two batches at rates a, b equal one epoch of
    batch 1 at a followed by one of batch 2 at b."""
    params, X, y = _problem()
    twin = params.copy()
    numpy_backend.train_epoch(params, X, y, np.arange(12), 6, np.array([0.3, 0.05]))
    numpy_backend.train_epoch(twin, X, y, np.arange(6), 6, 0.3)
    numpy_backend.train_epoch(twin, X, y, np.arange(6, 12), 6, 0.05)
    for a, b in zip(params.arrays(), twin.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"one per batch \(2\)"):
        numpy_backend.train_epoch(params, X, y, np.arange(12), 6, np.array([0.1, 0.1, 0.1]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"solver": "lbfgs"}, "solver must be one of sgd, adam, rmsprop"),
        ({"momentum": 1.5}, "momentum must be a number from 0 to 1; got 1.5"),
        ({"beta_1": 1.0}, "beta_1 must be a number from 0 to less than 1; got 1.0"),
        ({"beta_2": -0.1}, "beta_2 must be"),
        ({"rho": 1}, "rho must be"),
        ({"epsilon": 0.0}, "epsilon must be a positive number"),
        ({"alpha": -1e-4}, "alpha must be"),
        ({"alpha": float("inf")}, "alpha must be"),
        ({"momentum": "0.9"}, "momentum must be"),
        ({"nesterovs_momentum": 1}, "nesterovs_momentum must be True or False"),
        ({"max_norm": 0.0}, "max_norm must be None or a positive number"),
        ({"max_norm": "3"}, "max_norm must be None or a positive number"),
    ],
)
def test_bad_optimizer_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        Optimizer()._replace(**changes).validate()


def test_a_state_of_another_optimizer_is_refused():
    params, X, y = _problem()
    adam_state = OptimizerState.fresh(Optimizer("adam"), params)
    with pytest.raises(ValueError, match="state does not fit solver 'rmsprop'"):
        numpy_backend.train_epoch(
            params, X, y, np.arange(12), 4, 0.1, "relu", Optimizer("rmsprop"), adam_state
        )


def test_invscaling_is_scikit_learns():
    """learning_rate_init / (t + 1) ** power_t, t the samples seen before the epoch."""
    schedule = Schedule("invscaling", 0.2, 0.5, max_iter=10)
    rates = []
    for _ in range(3):
        rates.append(schedule.rates(0, 100, 32)[0])
        schedule.samples_seen += 100
    assert rates == [0.2, 0.2 / 101**0.5, 0.2 / 201**0.5]
    assert len(schedule.rates(0, 100, 32)) == 4


def test_cosine_goes_from_the_initial_rate_towards_zero_per_step():
    schedule = Schedule("cosine", 0.1, 0.5, max_iter=2)
    first, second = schedule.rates(0, 10, 4), schedule.rates(3, 10, 4)  # 3 batches an epoch
    steps = np.concatenate([first, second])
    assert steps[0] == 0.1 and (np.diff(steps) < 0).all() and steps[-1] > 0
    assert steps[3] == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 6)))
    # Past max_iter epochs the rate stays at the last step's.
    assert (schedule.rates(6, 10, 4) == steps[-1]).all()


def test_adaptive_divides_by_five_until_the_floor():
    schedule = Schedule("adaptive", 1e-5, 0.5, max_iter=10)
    assert not schedule.stalled() and schedule.rates(0, 8, 8)[0] == pytest.approx(2e-6)
    assert not schedule.stalled() and schedule.current == pytest.approx(4e-7)
    assert schedule.stalled()  # at or below 1e-6: training ends
    constant = Schedule("constant", 0.1, 0.5, max_iter=10)
    assert not constant.stalled() and constant.rates(0, 8, 8)[0] == 0.1
