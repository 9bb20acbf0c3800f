"""The max-norm constraint in the kernels (see fastnn.core.optim): after each update, a hidden
unit's incoming weight vector longer than the limit is scaled back to it.

A later layer's weights are stored transposed (a unit's incoming weights are a row, owned by
one job of the update pass: `cap_rows`); the first layer's by input feature (a unit's incoming
weights are a column across every block of features), so it takes a pass of its own after the
update pass (`cap_first_layer`), a group of columns a job, shared by the team (see `team`).
"""

from __future__ import annotations

import numpy as np

from fastnn.kernels.config import counted_helper, helper
from fastnn.kernels.layout import ahead_weights, weights
from fastnn.kernels.team import my_jobs

CAP_GROUP = 16  # first-layer columns a job of cap_first_layer owns


@helper
def cap_rows(WT, first, end, limit):
    """Rows first..end-1 of WT, each a unit's incoming weights, scaled to norm `limit` where
    longer; the squares summed in order, in the weights' dtype."""
    for o in range(first, end):
        total = WT.dtype.type(0)
        for j in range(WT.shape[1]):
            total += WT[o, j] * WT[o, j]
        norm = np.sqrt(total)
        if norm > limit:
            factor = limit / norm
            for j in range(WT.shape[1]):
                WT[o, j] = WT[o, j] * factor


@counted_helper
def cap_first_layer(team, net, layout, limit, dense_input):
    """cap_rows for the columns of W1 (n_in, H), CAP_GROUP columns a job: this member's jobs;
    and, where the first layer runs dense, for their forward copy (see layout.ahead_weights)."""
    W1 = weights(net.theta, layout, 0)
    W1_ahead = ahead_weights(net.ahead, layout, 0)
    panel = layout.panel
    n_in, H = W1.shape
    for g in my_jobs(team, (H + CAP_GROUP - 1) // CAP_GROUP):
        first, end = g * CAP_GROUP, min((g + 1) * CAP_GROUP, H)
        totals = np.zeros(end - first, W1.dtype)  # (group,) sums of squares, in order
        for k in range(n_in):
            for j in range(first, end):
                totals[j - first] += W1[k, j] * W1[k, j]
        factors = np.ones(end - first, W1.dtype)
        for j in range(end - first):
            norm = np.sqrt(totals[j])
            if norm > limit:
                factors[j] = limit / norm
        for k in range(n_in):
            for j in range(first, end):
                if factors[j - first] != 1:
                    W1[k, j] = W1[k, j] * factors[j - first]
                    if dense_input:
                        W1_ahead[j // panel, k, j % panel] = W1[k, j]
