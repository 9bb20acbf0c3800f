"""Data augmentation in the kernels: every row of X transformed as fastnn.core.augment describes,
the same bits as its NumPy reference. Rows are split among threads in runs of ROWS; a row's
draws depend on its number only, so the result does not depend on the threads."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from fastnn.core.dropout import GOLDEN
from fastnn.kernels.config import SERIAL, counted_helper, helper
from fastnn.kernels.dropout import mix
from fastnn.kernels.team import my_jobs

SHIFT, AFFINE, ELASTIC = 0, 1, 2  # Warp.kind, in the order of fastnn.core.augment.KINDS
ROWS = 32  # rows a job transforms with one set of scratch buffers
_GOLDEN = np.uint64(GOLDEN)


class Warp(NamedTuple):
    """An augmentation as the kernels take it (see fastnn.core.augment.Augmentation)."""

    kind: int  # SHIFT, AFFINE or ELASTIC
    key: np.uint64  # the epoch key
    height: int
    width: int
    numbers: np.ndarray  # the kind's strengths in the working dtype (Augmentation.numbers)
    gauss: np.ndarray  # (2r + 1,) the elastic blur's weights; empty for the other kinds


@helper
def word(sample, q):
    """w_q of the sample key."""
    return mix(sample + np.uint64(q + 1) * _GOLDEN)


@helper
def lane(w, j):
    """The 16 bits b_j of draw j from its word."""
    return np.int64((w >> np.uint64(16 * (j % 4))) & np.uint64(0xFFFF))


@helper
def uniform(b, like):
    """v = (2b + 1) / 65536 - 1 from 16 bits, exact, in the dtype of the array `like`."""
    dtype = like.dtype
    return dtype.type(2 * b + 1 - 65536) * dtype.type(1 / 65536)


@helper
def whole_shift(b, k):
    """fastnn.core.augment.shift_draw: a whole number from -k to k from 16 bits b."""
    return ((2 * b + 1) * (2 * k + 1)) // 131072 - k


@helper
def shift_row(X, r, warp, sample, out):
    """out[r] = image r moved by whole pixels (fastnn.core.augment.shift_draw), 0 outside."""
    h, w = warp.height, warp.width
    k = np.int64(warp.numbers[0])
    w0 = word(sample, 0)
    dx, dy = whole_shift(lane(w0, 0), k), whole_shift(lane(w0, 1), k)
    zero = out.dtype.type(0)
    for y in range(h):
        for x in range(w):
            sy, sx = y + dy, x + dx
            inside = 0 <= sy < h and 0 <= sx < w
            out[r, y * w + x] = X[r, sy * w + sx] if inside else zero


@helper
def affine_map(warp, sample, sx, sy):
    """sx, sy (h, w) = the source coordinates of the sample's affine transform."""
    dtype = sx.dtype
    numbers = warp.numbers  # (tan(rotation / 2), scale, shear, shift)
    half_turn, scale, shear, shift = numbers[0], numbers[1], numbers[2], numbers[3]
    w0, w1 = word(sample, 0), word(sample, 1)
    v0, v1 = uniform(lane(w0, 0), sx), uniform(lane(w0, 1), sx)
    v2, v3 = uniform(lane(w0, 2), sx), uniform(lane(w0, 3), sx)
    v4 = uniform(lane(w1, 4), sx)
    one, two = dtype.type(1), dtype.type(2)
    t = half_turn * v0
    tt = t * t
    cos, sin = (one - tt) / (one + tt), (two * t) / (one + tt)
    inverse_scale = one / (one + scale * v1)
    skew = shear * v2
    a00, a01 = cos * inverse_scale, (cos * skew - sin) * inverse_scale
    a10, a11 = sin * inverse_scale, (sin * skew + cos) * inverse_scale
    cx, cy = dtype.type((warp.width - 1) / 2), dtype.type((warp.height - 1) / 2)
    ox, oy = cx + shift * v3, cy + shift * v4
    for y in range(warp.height):
        gy = dtype.type(y) - cy
        for x in range(warp.width):
            gx = dtype.type(x) - cx
            sx[y, x] = a00 * gx + a01 * gy + ox
            sy[y, x] = a10 * gx + a11 * gy + oy


@helper
def blur_columns(source, gauss, stride, blurred):
    """blurred[p] = sum over t of gauss[t] * source[p + t * stride], t ascending, for every p:
    the blur down the columns of a flat image of row length `stride` with 2r zero rows
    around it. Long loops over p, which vectorise, four taps at a time so that each sum is
    loaded and stored once per four (the order of the additions stays t ascending)."""
    n = blurred.shape[0]
    taps = gauss.shape[0]
    zero = blurred.dtype.type(0)
    for p in range(n):
        blurred[p] = zero
    grouped = taps - taps % 4
    for t in range(0, grouped, 4):
        g0, g1, g2, g3 = gauss[t], gauss[t + 1], gauss[t + 2], gauss[t + 3]
        s0 = source[t * stride : t * stride + n]
        s1 = source[(t + 1) * stride : (t + 1) * stride + n]
        s2 = source[(t + 2) * stride : (t + 2) * stride + n]
        s3 = source[(t + 3) * stride : (t + 3) * stride + n]
        for p in range(n):
            blurred[p] = (((blurred[p] + g0 * s0[p]) + g1 * s1[p]) + g2 * s2[p]) + g3 * s3[p]
    for t in range(grouped, taps):
        g = gauss[t]
        shifted = source[t * stride : t * stride + n]
        for p in range(n):
            blurred[p] += g * shifted[p]


@counted_helper  # ravel() may copy, so Numba compiles it only with counts
def elastic_map(warp, sample, draws, noise, turned, blurred, sx, sy):
    """sx, sy (h, w) = (x, y) + alpha * the blurred random field of the sample: the field
    blurred along y, turned (transposed), blurred along x. noise (2, h + 2r, w) and turned
    (2, w + 2r, h) keep zero rows around the field; draws is (2 * h * w,), blurred (h * w,)."""
    h, w = warp.height, warp.width
    gauss = warp.gauss
    r = gauss.shape[0] // 2
    dtype = sx.dtype
    count = 2 * h * w
    for q in range(count // 4):  # whole words: no branch, so the loop vectorises
        wq = word(sample, q)
        for j in range(4 * q, 4 * q + 4):
            draws[j] = uniform(lane(wq, j), sx)
    for j in range(count - count % 4, count):
        draws[j] = uniform(lane(word(sample, j // 4), j), sx)
    for c in range(2):
        for y in range(h):
            for x in range(w):
                noise[c, r + y, x] = draws[(c * h + y) * w + x]
    alpha = warp.numbers[0]
    for c in range(2):
        blur_columns(noise[c].ravel(), gauss, w, blurred)  # along y: (h, w)
        for y in range(h):
            for x in range(w):
                turned[c, r + x, y] = blurred[y * w + x]
        blur_columns(turned[c].ravel(), gauss, h, blurred)  # along x: (w, h)
        target = sx if c == 0 else sy
        for y in range(h):
            for x in range(w):
                target[y, x] = dtype.type(x if c == 0 else y) + alpha * blurred[x * h + y]


@helper
def bilinear_row(X, r, warp, padded, sx, sy, out):
    """out[r] = image r read at (sx, sy) by bilinear interpolation, 0 outside, as
    fastnn.core.augment._bilinear (padded: (h + 3, w + 3) with zero borders, kept). A pixel whose
    four neighbours lie outside the bounding box of the image's non-zero pixels is 0 without
    reading them (the same value: each term is +0)."""
    h, w = warp.height, warp.width
    dtype = sx.dtype
    zero_pixel = X.dtype.type(0)
    top_row, bottom_row, left, right_col = h, -1, w, -1  # the non-zero pixels' box
    for y in range(h):
        for x in range(w):
            v = X[r, y * w + x]
            padded[y + 1, x + 1] = dtype.type(v)
            if v != zero_pixel:
                top_row, bottom_row = min(top_row, y), max(bottom_row, y)
                left, right_col = min(left, x), max(right_col, x)
    one, half, low = dtype.type(1), dtype.type(0.5), dtype.type(-1)
    right, bottom_edge = dtype.type(w), dtype.type(h)
    for y in range(h):
        for x in range(w):
            px = min(max(sx[y, x], low), right)
            py = min(max(sy[y, x], low), bottom_edge)
            x0, y0 = floor_int(px), floor_int(py)
            if x0 + 1 < left or x0 > right_col or y0 + 1 < top_row or y0 > bottom_row:
                out[r, y * w + x] = out.dtype.type(0)
                continue
            fx, fy = px - dtype.type(x0), py - dtype.type(y0)
            i, j = x0 + 1, y0 + 1
            top = padded[j, i] * (one - fx) + padded[j, i + 1] * fx
            bottom = padded[j + 1, i] * (one - fx) + padded[j + 1, i + 1] * fx
            out[r, y * w + x] = to_pixel(top * (one - fy) + bottom * fy, half, out)


@helper
def floor_int(v):
    """math.floor(v) as an int, by truncation then one step down for negatives with a
    fraction: no call into the maths library (which math.floor of a float32 makes)."""
    t = int(v)
    return t - (v < type(v)(t))


def to_pixel(value, half, out):
    """An interpolated value in out's dtype: uint8 rounded to the nearest (halves up)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@overload(to_pixel, jit_options=SERIAL)
def _to_pixel(value, half, out):
    if out.dtype == types.uint8:
        return lambda value, half, out: np.uint8(min(int(value + half), 255))  # value >= 0
    return lambda value, half, out: out.dtype.type(value)


@counted_helper
def augment_rows(team, X, warp, out):
    """out[r] = row r of X transformed as drawn for row r in the warp's epoch, for the rows of
    this member's jobs (ROWS rows a job; see `team`)."""
    n = X.shape[0]
    h, w = warp.height, warp.width
    r = warp.gauss.shape[0] // 2
    dtype = warp.numbers.dtype
    for job in my_jobs(team, (n + ROWS - 1) // ROWS):
        padded = np.zeros((h + 3, w + 3), dtype)
        noise = np.zeros((2, h + 2 * r, w), dtype)
        turned = np.zeros((2, w + 2 * r, h), dtype)
        blurred = np.empty(h * w, dtype)
        draws = np.empty(2 * h * w, dtype)
        sx, sy = np.empty((h, w), dtype), np.empty((h, w), dtype)
        for row in range(job * ROWS, min(n, (job + 1) * ROWS)):
            sample = mix(warp.key ^ np.uint64(row))
            if warp.kind == SHIFT:
                shift_row(X, row, warp, sample, out)
                continue
            if warp.kind == AFFINE:
                affine_map(warp, sample, sx, sy)
            else:
                elastic_map(warp, sample, draws, noise, turned, blurred, sx, sy)
            bilinear_row(X, row, warp, padded, sx, sy, out)
