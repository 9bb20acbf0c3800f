"""The network's last layer, one sample at a time: its outputs by their kind (Net.output, in
the order of fastnn.core.model.OUTPUTS), and the gradient of the loss at its z, which is the
output minus the target for all three kinds. The kind is a number read at run time, so that one
compiled kernel serves every kind.
"""

from __future__ import annotations

import numpy as np

from fastnn.kernels.config import helper

SOFTMAX, LOGISTIC, IDENTITY = 0, 1, 2


@helper
def softmax_row(z, p):
    """p = softmax(z) of the logits z, shifted by the max so exp cannot overflow; p may be z
    itself. Returns log(sum(exp(z - max))), the max, and the first index holding it."""
    n_out = z.shape[0]
    top = z[0]
    arg = 0
    for o in range(1, n_out):
        if z[o] > top:
            top = z[o]
            arg = o
    total = z.dtype.type(0)
    for o in range(n_out):
        e = np.exp(z[o] - top)
        p[o] = e
        total += e
    for o in range(n_out):
        p[o] = p[o] / total
    return np.log(total), top, arg


@helper
def sigmoid_row(z, p):
    """p = 1 / (1 + exp(-z)) elementwise, from e = exp(-|z|) so exp cannot overflow: 1 / (1 + e)
    for z >= 0, e / (1 + e) below, as the reference computes it. p may be z itself."""
    one = p.dtype.type(1)
    for o in range(z.shape[0]):
        e = np.exp(-abs(z[o]))
        p[o] = one / (one + e) if z[o] >= 0 else e / (one + e)


@helper
def output_row(output, z, p):
    """p = the network's outputs from the last layer's z, by the kind `output`: softmax,
    logistic (a sigmoid per output) or identity."""
    if output == SOFTMAX:
        softmax_row(z, p)
    elif output == LOGISTIC:
        sigmoid_row(z, p)
    else:
        for o in range(z.shape[0]):
            p[o] = z[o]


@helper
def softmax_gradient(g, label):
    """g: a sample's logits, in place the gradient of its softmax cross-entropy, p - onehot.
    Returns the loss, -log p[label], from the logits (so it stays finite), and whether the
    label has the largest logit."""
    z_label = g[label]
    log_sum, top, arg = softmax_row(g, g)
    g[label] -= g.dtype.type(1)
    return log_sum - (z_label - top), arg == label


@helper
def logistic_gradient(g, t):
    """g: a sample's logits, in place the gradient of its binary cross-entropy summed over the
    labels, p - t with p = sigmoid(g). Returns the loss, scikit-learn's binary_log_loss of the
    sample (p clipped to [eps, 1 - eps], eps the dtype's), and whether every label is right
    (p > 0.5 where t is 1)."""
    dtype = g.dtype
    one, half = dtype.type(1), dtype.type(0.5)
    eps = dtype.type(np.finfo(dtype).eps)
    sigmoid_row(g, g)
    loss = dtype.type(0)
    right = True
    for o in range(g.shape[0]):
        p = min(max(g[o], eps), one - eps)
        loss -= t[o] * np.log(p) + (one - t[o]) * np.log(one - p)
        right = right and (g[o] > half) == (t[o] > half)
        g[o] -= t[o]
    return loss, right


@helper
def squared_gradient(g, t):
    """g: a sample's outputs, in place the gradient of half its squared error, g - t. Returns
    the loss as scikit-learn's squared_loss reports it: half the squared error averaged over
    the outputs (its gradient, like scikit-learn's, is that of the sum over the outputs), and
    False (no sample is "right")."""
    total = g.dtype.type(0)
    for o in range(g.shape[0]):
        d = g[o] - t[o]
        total += d * d
        g[o] = d
    return g.dtype.type(0.5) * (total / g.dtype.type(g.shape[0])), False


@helper
def output_gradient(net, y, targets, r, g):
    """Row r's loss by net.output, whether it is predicted right, and in g (its last layer's
    z) the loss's gradient there: the output minus the target for all three kinds. Softmax
    takes the label y[r]; logistic and identity the row targets[r]."""
    if net.output == SOFTMAX:
        return softmax_gradient(g, y[r])
    if net.output == LOGISTIC:
        return logistic_gradient(g, targets[r])
    return squared_gradient(g, targets[r])
