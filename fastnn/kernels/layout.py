"""Where every layer's numbers live in the kernels' flat buffers, for a network of any depth.

Numba compiles a function once per argument type, and a tuple of arrays has a different type for
every length, so the kernels do not take one array per layer: each kind of per-layer data is
one flat buffer, and a `Layout` of offsets finds a layer in it. The kernels compile once for any
depth.

- `theta` holds the parameters as the update pass owns them, layer after layer: the weights,
  then the biases. The first layer's weights are coefs[0] as they are, (n_in, H1), a row per
  input feature, because its jobs own blocks of input features; every later layer's are
  transposed, (fan_out, fan_in), a row per output unit, because its jobs own output units and
  because backpropagation (dZ @ W.T) reads them that way. The gradient sums and the optimizer's
  moments are laid out as theta, so an update is one loop over the same flat range of each.
- `ahead` holds every layer's weights once more as the forward pass's dense products read them:
  coefs' (fan_in, fan_out) in panels (see `panels`); the update pass writes each changed
  column there too (the first layer's only where it runs dense, see samples.Chunk).
- Activations of a chunk of `rows` samples: each layer's Z (then dZ) are a (rows, fan_out)
  block of one buffer, its A a block of another, both from rows * units_at[layer]. A third
  holds, in panels, what the weight gradients' dense products take as M: every hidden layer's
  A, then the first layer's dZ, from rows * panels_at[slot] (see `unit_panels`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn.kernels.config import DENSE_VECTORS, REGISTER_BYTES, counted_helper, helper
from fastnn.kernels.team import borrowed


class Layout(NamedTuple):
    sizes: np.ndarray  # (L + 1,) n_in, the hidden widths, n_out
    weights_at: np.ndarray  # (L,) where each layer's weights start in theta
    bias_at: np.ndarray  # (L,) where its biases start in theta
    ahead_at: np.ndarray  # (L + 1,) where its weights start in `ahead`; the end
    units_at: np.ndarray  # (L + 1,) units of the layers before: where activations start
    panels_at: np.ndarray  # (L + 1,) per row, where each slot of `unit_panels` starts; the end
    panel: int  # the columns of a panel: a dense tile's width in the parameters' dtype


CACHE_LINE = 64  # bytes


def line_aligned(shape: int | tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """np.zeros(shape, dtype), C-ordered, its first element starting a cache line (NumPy starts
    arrays on 16 bytes). The kernels' rows then start on lines wherever a row's bytes are a
    multiple of 64 (hidden 128 float32: 512), so a 512-bit vector of a row is never split across
    two lines, and each update job's range of theta (the W1 rows of a block group of features, a
    multiple of 64 bytes) starts a line of its own, and no two threads write one line
    (docs/design.md has the measurements)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buf = np.zeros(size + CACHE_LINE // dtype.itemsize, dtype)
    start = first_on_line.py_func(buf)
    return buf[start : start + size].reshape(shape)


def line_aligned_copy(a: np.ndarray) -> np.ndarray:
    """A copy of a as `line_aligned` lays it out."""
    aligned = line_aligned(a.shape, a.dtype)
    aligned[...] = a
    return aligned


@helper
def first_on_line(buf):
    """The index of the first element of the 1-D buf that starts a cache line (within its
    first CACHE_LINE bytes)."""
    return (-buf.ctypes.data % CACHE_LINE) // buf.itemsize


def panel_width(itemsize: int) -> int:
    """The columns of a panel for elements of itemsize bytes: a dense tile's width."""
    return DENSE_VECTORS * REGISTER_BYTES // itemsize


def make_layout(sizes: list[int], itemsize: int) -> Layout:
    """The Layout of a network with these layer widths (n_in, hidden..., n_out), for
    parameters of itemsize bytes."""
    sizes = np.asarray(sizes, np.int64)
    fan_in, fan_out = sizes[:-1], sizes[1:]
    lengths = np.stack([fan_in * fan_out, fan_out], axis=1).ravel()  # W0, b0, W1, b1, ...
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    panel = panel_width(itemsize)
    paneled = -(-fan_out // panel) * panel  # each row's columns in whole panels
    panel_slots = [*paneled[:-1], paneled[0]]  # every hidden layer's A, the first layer's dZ
    return Layout(
        sizes,
        starts[0::2].copy(),
        starts[1::2].copy(),
        np.concatenate([[0], np.cumsum(fan_in * paneled)]),
        np.concatenate([[0], np.cumsum(fan_out)]),
        np.concatenate([[0], np.cumsum(panel_slots)]),
        panel,
    )


def theta_size(layout: Layout) -> int:
    return int(layout.bias_at[-1] + layout.sizes[-1])


def panel_copy(M: np.ndarray) -> np.ndarray:
    """M (terms, width) as `panels` views it, (n_panels, terms, panel), in a copy whose first
    element starts a cache line."""
    panel = panel_width(M.dtype.itemsize)
    return line_aligned_copy(to_panels(M, panel)).reshape(-1, M.shape[0], panel)


def to_panels(M: np.ndarray, panel: int) -> np.ndarray:
    """M (terms, width) as `panels` lays it out, flat: the columns beyond width zero."""
    terms, width = M.shape
    n_panels = -(-width // panel)
    padded = np.zeros((terms, n_panels * panel), M.dtype)
    padded[:, :width] = M
    return padded.reshape(terms, n_panels, panel).transpose(1, 0, 2).ravel()


@counted_helper
def matrix(buf, start, rows, cols):
    """buf[start : start + rows * cols] as a (rows, cols) C-ordered view, borrowed (see
    config: whoever passes buf keeps it alive)."""
    return borrowed(buf[start : start + rows * cols].reshape((rows, cols)))


@counted_helper
def weights(theta, layout, layer):
    """The layer's weights in theta: (n_in, H1) for layer 0, else (fan_out, fan_in)."""
    fan_in, fan_out = layout.sizes[layer], layout.sizes[layer + 1]
    if layer == 0:
        return matrix(theta, layout.weights_at[0], fan_in, fan_out)
    return matrix(theta, layout.weights_at[layer], fan_out, fan_in)


@counted_helper
def bias(theta, layout, layer):
    start = layout.bias_at[layer]
    return borrowed(theta[start : start + layout.sizes[layer + 1]])  # (fan_out,)


@counted_helper
def panels(buf, start, terms, width, panel):
    """A (terms, width) matrix M kept in panels, from buf[start]: (n_panels, terms, panel),
    panel p holding columns p * panel .. (p + 1) * panel - 1 of every row of M, one row after
    another; the last panel's columns beyond width are padding. Borrowed, as `matrix`'s."""
    n_panels = (width + panel - 1) // panel
    return borrowed(buf[start : start + n_panels * terms * panel].reshape((n_panels, terms, panel)))


@counted_helper
def ahead_weights(ahead, layout, layer):
    """The layer's weights as the forward pass's products read them: (fan_in, fan_out) in
    panels."""
    fan_in, fan_out = layout.sizes[layer], layout.sizes[layer + 1]
    return panels(ahead, layout.ahead_at[layer], fan_in, fan_out, layout.panel)


@counted_helper
def unit_panels(buf, rows, layout, slot):
    """Slot `slot` of a buffer of `rows` samples' activations in panels, (rows, width) in
    panels: a hidden layer's A for slot < L - 1, the first layer's dZ for slot L - 1."""
    n_layers = layout.sizes.shape[0] - 1
    width = layout.sizes[slot + 1] if slot < n_layers - 1 else layout.sizes[1]
    return panels(buf, rows * layout.panels_at[slot], rows, width, layout.panel)


@helper
def set_row(M, i, row):
    """M[i] = row, element by element. Numba's own `M[i] = row` checks the shapes at run time
    and formats its error message in compiled code: string code that every entry using it
    would compile and optimise again."""
    for j in range(row.shape[0]):
        M[i, j] = row[j]


@helper
def set_panel_row(P, k, row):
    """Row k of the matrix kept in panels P (see `panels`) = row. Each panel's piece is copied
    between two views, indexed from 0: an index Numba cannot prove non-negative (k, or first +
    j) gets a wraparound test at every element, which kept the loop from vectorising."""
    panel = P.shape[2]
    for p in range(P.shape[0]):
        source = row[p * panel : (p + 1) * panel]  # the last panel's may be shorter
        target = P[p, k]
        for j in range(source.shape[0]):
            target[j] = source[j]
