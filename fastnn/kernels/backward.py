"""A mini-batch's forward pass, backpropagation and update, fused, in two parallel passes that
take the batch a chunk of samples at a time (so a full batch of 60,000 stays in cache too).

`sample_pass` splits a chunk's samples among threads: each runs its sample forward, through
the softmax cross-entropy gradient, back to the hidden layer (dZ1), and keeps what the weight
gradients need: its A1, dZ1, dZ2 rows and its list of non-zero features.

`gradient_pass` splits the parameters among threads by output element: a job owns the BLOCK
rows of W1 of one block of features, or one column of W2, or the biases. It adds the chunk's
samples' terms, in ascending sample order, to its own rows of the gradient accumulators; after
the batch's last chunk it subtracts lr * gradient (or, for `loss_and_grads`, writes the
gradient out). No element is written by two jobs and every sum runs in sample order whatever
thread runs the job, so results are the same bits for any number of threads.
"""

from __future__ import annotations

from numba import njit, prange

from fastnn.kernels.config import PARALLEL, SERIAL
from fastnn.kernels.forward import activate_row, hidden_row, logits_row, softmax_row
from fastnn.kernels.sparse import BLOCK, load_x, prefetch_row, scan_row
from fastnn.kernels.vector import add_scaled_rows, add_vec_mat


@njit(**SERIAL)
def hidden_grad_row(G, i, W2T, A, slope, leaky, D):
    """D[i] = (G[i] @ W2.T) * activation'(z1), telling z1 > 0 from A[i] > 0 (the same test:
    the activation keeps the sign); the slope at 0 is the negative side's, as in the
    reference."""
    H = D.shape[1]
    zero = D.dtype.type(0)
    negative = slope if leaky else zero
    for j in range(H):
        D[i, j] = 0
    add_vec_mat(D, i, G[i], W2T)
    for j in range(H):
        if not A[i, j] > zero:
            D[i, j] = D[i, j] * negative


@njit(**PARALLEL)
def sample_pass(work, X, y, table, slope, leaky, chunk, batch_size, losses, hits, P, backprop):
    """Sample i of the chunk, X row rows[i]: its features in idx and bounds[:, i], Z1 in D[i],
    A1 in A[i], Z2 in G[i]; then without `backprop`, P[i] = softmax. With it, losses[i] =
    cross-entropy, hits[i] = argmax(Z2) == label, and the gradients of the batch's mean loss:
    G[i] = dZ2, D[i] = dZ1 (P is not used).
    work = (W1, b1, W2, W2.T, b2); chunk = (rows, idx, bounds, A, D, G)."""
    W1, b1, W2, W2T, b2 = work
    rows, idx, bounds, A, D, G = chunk
    size = W1.dtype.type(batch_size)
    one = W1.dtype.type(1)
    for i in prange(rows.shape[0]):
        r = rows[i]
        if i + 1 < rows.shape[0]:
            prefetch_row(X, rows[i + 1])  # arrives while this sample is worked on
        scan_row(X, r, idx, i, bounds)
        start, end = bounds[0, i], bounds[bounds.shape[0] - 1, i]
        hidden_row(W1, b1, X, r, table, idx, start, end, D, i)
        activate_row(D[i], A[i], slope, leaky)
        logits_row(A, i, W2, b2, G)
        if not backprop:
            softmax_row(G[i], P[i])
        else:
            label = y[r]
            z_label = G[i, label]
            log_sum, top, arg = softmax_row(G[i], G[i])
            losses[i] = log_sum - (z_label - top)
            hits[i] = arg == label
            G[i, label] -= one
            for o in range(G.shape[1]):
                G[i, o] = G[i, o] / size  # the gradient of the mean loss
            hidden_grad_row(G, i, W2T, A, slope, leaky, D)


@njit(**SERIAL)
def add_block_terms(b, X, rows, table, idx, bounds, D, acc):
    """acc[k] += X[rows[i], k] * D[i] for the features k of block b, samples i in order.
    Returns whether any sample has a non-zero feature in the block."""
    touched = False
    for i in range(rows.shape[0]):
        r = rows[i]
        for e in range(bounds[b, i], bounds[b + 1, i]):
            touched = True
            k = idx[e]
            add_scaled_rows(acc, k, D, (i,), (load_x(X, r, k, table),))
    return touched


@njit(**SERIAL)
def add_column_terms(o, A, G, dW2T):
    """dW2T[o] += G[:, o] @ A, samples in order: column o of dW2 = A1.T @ dZ2."""
    add_vec_mat(dW2T, o, G[:, o], A)


@njit(**SERIAL)
def add_rows(M, acc):
    """acc += M[i], rows i in order: a bias gradient, summed over the samples."""
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            acc[j] += M[i, j]


@njit(**SERIAL)
def apply(param, acc, lr, out, update):
    """param -= lr * acc if update, else out = acc (1-D); then acc = 0 for the next batch."""
    if update:
        for j in range(acc.shape[0]):
            param[j] -= lr * acc[j]
    else:
        for j in range(acc.shape[0]):
            out[j] = acc[j]
    for j in range(acc.shape[0]):
        acc[j] = 0


@njit(**SERIAL)
def job_stride(n):
    """A stride coprime with n near 5n / 8. prange gives each thread a contiguous range of
    iterations; iteration t doing job t * stride % n, every thread gets a mix of the busy
    middle of the image, its empty borders and the small jobs of W2 and the biases, and so
    about the same work."""
    stride = max(1, (n * 5) // 8)
    while _gcd(stride, n) != 1:
        stride += 1
    return stride


@njit(**SERIAL)
def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@njit(**PARALLEL)
def gradient_pass(work, X, table, chunk, lr, update, last, sums, touched, grads):
    """Adds the chunk's terms to sums = (dW1 (n_in, H), db1, dW2.T (n_out, H), db2), every
    job to its own rows. After the batch's `last` chunk: if `update`, params -= lr * sums,
    else grads (the same layout; width-0 placeholders when updating) = sums; then the sums
    are zero again. touched[b]: whether block b of features had a non-zero in the batch so
    far (rows of blocks without one hold zeros: nothing to apply). work and chunk: as for
    sample_pass."""
    W1, b1, W2, W2T, b2 = work
    rows, idx, bounds, A, D, G = chunk
    dW1, db1, dW2T, db2 = sums
    n_blocks = bounds.shape[0] - 1
    n_out = W2.shape[1]
    n_jobs = n_blocks + n_out + 1
    stride = job_stride(n_jobs)
    for t in prange(n_jobs):
        job = t * stride % n_jobs
        if job < n_blocks:
            b = job
            touched[b] |= add_block_terms(b, X, rows, table, idx, bounds, D, dW1)
            if last and touched[b]:
                for k in range(b * BLOCK, min((b + 1) * BLOCK, W1.shape[0])):
                    apply(W1[k], dW1[k], lr, grads[0][k], update)
                touched[b] = False
        elif job < n_blocks + n_out:
            o = job - n_blocks
            add_column_terms(o, A, G, dW2T)
            if last:
                apply(W2T[o], dW2T[o], lr, grads[2][o], update)
                if update:
                    for j in range(W2.shape[0]):
                        W2[j, o] = W2T[o, j]  # the same subtraction: the same bits
        else:
            add_rows(D, db1)
            add_rows(G, db2)
            if last:
                apply(b1, db1, lr, grads[1], update)
                apply(b2, db2, lr, grads[3], update)
