"""SGD with momentum (plain and Nesterov's), Adam and RMSprop against torch.optim, from the same
weights and batches; skipped where PyTorch is not installed (it is never a dependency).

The conventions differ, and the test converts between them:
- Layout: nn.Linear keeps W as (out, in); fastnn as (in, out), scikit-learn's coefs_. The
  copies are transposed.
- Momentum: torch keeps buf = mu * buf + g and steps W -= lr * buf (Nesterov: W -= lr * (g +
  mu * buf)); fastnn, as scikit-learn, keeps v = mu * v - lr * g and steps W += v (Nesterov:
  W += mu * v - lr * g). At a constant rate v = -lr * buf: the same steps, rounded differently.
- Adam: torch adds epsilon to sqrt(s / (1 - beta_2^t)), scikit-learn (and fastnn) to sqrt(s)
  with the correction folded into the step size; torch's step t with epsilon / sqrt(1 -
  beta_2^t) is fastnn's with epsilon, so the test sets torch's epsilon so before each step.
  (With one epsilon for both, the two differ where sqrt(s) is not far above epsilon: 1e-6
  relative was seen here.)
- RMSprop: the same formula (epsilon added to sqrt(s)); torch's decay `alpha` is fastnn's rho.
- L2: fastnn's alpha adds (alpha / n) * W to a batch of n's gradient, weights only: torch's
  weight_decay = alpha / n on a parameter group of the weights alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState

torch = pytest.importorskip("torch")
BATCH, LR, ALPHA = 8, 0.05, 0.3


def _problem():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 12))
    y = rng.integers(0, 4, 40)
    return init_params(12, (9, 6), 4, seed=3, dtype="float64"), X, y


def _torch_model(params):
    layers = []
    for W, b in zip(params.coefs, params.intercepts, strict=True):
        linear = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _torch_optimizer(model, optimizer: Optimizer):
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
    groups = [
        {"params": weights, "weight_decay": optimizer.alpha / BATCH},
        {"params": biases, "weight_decay": 0.0},
    ]
    if optimizer.solver == "rmsprop":  # torch's alpha is fastnn's rho
        return torch.optim.RMSprop(groups, lr=LR, alpha=optimizer.rho, eps=optimizer.epsilon)
    if optimizer.solver == "adam":
        return torch.optim.Adam(
            groups, lr=LR, betas=(optimizer.beta_1, optimizer.beta_2), eps=optimizer.epsilon
        )
    return torch.optim.SGD(
        groups, lr=LR, momentum=optimizer.momentum, nesterov=optimizer.nesterovs_momentum
    )


@pytest.mark.parametrize(
    "optimizer",
    [
        Optimizer(momentum=0.9, nesterovs_momentum=False),
        Optimizer(momentum=0.9, nesterovs_momentum=True, alpha=ALPHA),
        Optimizer("adam"),
        Optimizer("adam", beta_2=0.99, alpha=ALPHA),
        Optimizer("rmsprop", rho=0.9, alpha=ALPHA),
    ],
    ids=["momentum", "nesterov+alpha", "adam", "adam+alpha", "rmsprop+alpha"],
)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fastnn_steps_as_torch_optim_does(optimizer, backend):
    params, X, y = _problem()
    model = _torch_model(params)
    torch_optimizer = _torch_optimizer(model, optimizer)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    state = OptimizerState.fresh(optimizer, params)
    t = 0  # torch's steps so far
    for _ in range(3):  # epochs, batches in row order
        get_backend(backend).train_epoch(
            params, X, y, np.arange(len(X)), BATCH, LR, "relu", optimizer, state
        )
        for start in range(0, len(X), BATCH):
            t += 1
            if optimizer.solver == "adam":
                for group in torch_optimizer.param_groups:
                    group["eps"] = optimizer.epsilon / np.sqrt(1 - optimizer.beta_2**t)
            torch_optimizer.zero_grad()
            loss_fn(model(Xt[start : start + BATCH]), yt[start : start + BATCH]).backward()
            torch_optimizer.step()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for layer, (W, b, linear) in enumerate(
        zip(params.coefs, params.intercepts, linears, strict=True)
    ):
        theirs_W, theirs_b = linear.weight.detach().numpy().T, linear.bias.detach().numpy()
        np.testing.assert_allclose(W, theirs_W, rtol=1e-9, atol=1e-12, err_msg=f"W{layer + 1}")
        np.testing.assert_allclose(b, theirs_b, rtol=1e-9, atol=1e-12, err_msg=f"b{layer + 1}")
