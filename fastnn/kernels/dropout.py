"""Dropout in the kernels: the masks of fastnn.core.dropout, drawn unit by unit where a sample's
activations (forward) or their gradients (backward) are made, so no mask is stored. Input
features are dropped from a sample's list of non-zero features (which both passes read), or
zeroed in its row of inputs where the first layer runs dense, and the kept ones scaled as they
are read (`sparse.input_table`)."""

from __future__ import annotations

import numpy as np

from fastnn.core.dropout import DRAW_BITS, GOLDEN, MIX_1, MIX_2
from fastnn.kernels.config import helper

_GOLDEN, _MIX_1, _MIX_2 = np.uint64(GOLDEN), np.uint64(MIX_1), np.uint64(MIX_2)
_DRAW_SHIFT = np.uint64(64 - DRAW_BITS)


@helper
def mix(z):
    """fastnn.core.dropout.mix on a uint64 (Numba's uint64 arithmetic wraps mod 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@helper
def drops(net, at):
    """Whether entry `at` of net's dropout (a hidden layer, or the inputs) drops anything."""
    return net.drop_thresholds[at] > 0


@helper
def sample_key(net, at, row):
    """s of fastnn.core.dropout for row `row` of X and entry `at` of net's dropout."""
    return mix(net.drop_keys[at] ^ np.uint64(row))


@helper
def keeps(sample, unit, threshold):
    """Whether the unit (or input feature) numbered `unit` is kept for the sample keyed so."""
    return mix(sample + np.uint64(unit + 1) * _GOLDEN) >> _DRAW_SHIFT >= threshold


@helper
def drop_units(v, net, layer, row):
    """v[j] *= the dropout factor of unit j of hidden layer `layer` for row `row` of X:
    1 / (1 - rate) if kept, 0 if dropped; the same factors as fastnn.core.dropout.Dropout.masks."""
    sample = sample_key(net, layer, row)
    threshold, scale = net.drop_thresholds[layer], net.drop_scales[layer]
    zero = v.dtype.type(0)
    for j in range(v.shape[0]):
        v[j] = v[j] * (scale if keeps(sample, j, threshold) else zero)


@helper
def drop_inputs(x, net, at, row):
    """x[k] = 0 for the input features k that entry `at` of net's dropout (the inputs') drops
    for row `row` of X: a dense first layer's row of inputs, the kept ones already scaled."""
    sample = sample_key(net, at, row)
    threshold = net.drop_thresholds[at]
    zero = x.dtype.type(0)
    for k in range(x.shape[0]):
        if not keeps(sample, k, threshold):
            x[k] = zero


@helper
def drop_features(idx, vals, bounds, i, net, at, row):
    """Removes from sample i's list of non-zero features (see `sparse`) those that entry `at`
    of net's dropout (the inputs') drops for row `row` of X, keeping the order and each
    block's bounds; and their values, where the list has them beside it (vals, for a sparse
    X: see `csr`; else empty)."""
    sample = sample_key(net, at, row)
    threshold = net.drop_thresholds[at]
    n_blocks = bounds.shape[0] - 1
    valued = vals.shape[0] > 0
    kept = start = bounds[0, i]
    for b in range(n_blocks):
        end = bounds[b + 1, i]
        bounds[b, i] = kept
        for e in range(start, end):
            k = idx[e]
            if keeps(sample, k, threshold):
                idx[kept] = k
                if valued:
                    vals[kept] = vals[e]
                kept += 1
        start = end
    bounds[n_blocks, i] = kept
