"""Dense matrix products in register tiles with fused multiply-adds: every product of a layer
whose input is dense.

One operation serves them all, Y[i] += C[i] @ M for a range of rows i, with C any 2-D array
(a transposed view too):

- forward, Z = b + A @ W: C = A, M = W (fan_in, fan_out);
- backward, dA = dZ @ W.T: C = dZ, M = W.T (fan_out, fan_in), as theta keeps later layers;
- weight gradients, dW.T += dZ.T @ A: C = dZ.T (a view), M = A, the terms over samples (the
  first layer's, dense: dW1 += X.T @ dZ1).

A tile is DENSE_ROWS rows of Y by DENSE_VECTORS vectors of REGISTER_BYTES, held in registers
over the whole sum (`config`): each term loads the tile's vectors of M[t] once for all its rows
and broadcasts one C[i, t] per row, so a row's sum costs no load or store of Y in the loop. The
terms go in ascending order, each fused into its sum (llvm.fmuladd: one rounding where the CPU
has FMA, two where it has not), and the tile's sum is added to Y once at the end. Every element
of Y thus gets the same operations in the same order whatever tile, row range or thread
computes it, so results do not depend on how the rows are shared out.

M comes as rows (`add_products`) or in panels (`add_panel_products`, see `layout.panels`): a
tile's columns of every M[t] one after another, so the tiles of a column of Y read M in order,
from cache after the first. Rows of a power-of-two width (512 floats: 2 KB) fall on a few of
the cache's sets, and M's rows then evict each other between tiles, which panels avoid
(docs/design.md has the measurements).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from fastnn.kernels.config import DENSE_ROWS, DENSE_VECTORS, REGISTER_BYTES, helper, named
from fastnn.kernels.sparse import prefetch_line, splat
from fastnn.kernels.tile import _TileCode


def _byte_pointer(builder, pointer, offset):
    """pointer + offset bytes, as an i8 pointer."""
    i8p = ir.IntType(8).as_pointer()
    return builder.gep(builder.bitcast(pointer, i8p), [offset])


def _product_intrinsic(n_rows: int, n_whole: int, ragged: bool, paneled: bool):
    """f(Y, i, y0, C, M, m0): for the n_rows rows i.. of Y and C, the tile of Y[i] from column
    y0 (n_whole vectors and, if ragged, one that ends the row: see `tile._TileCode`) += the sum
    over t of C[i, t] * the tile of M[t] from column m0, t ascending, fused, summed in registers
    from zero. Paneled: M's rows hold every vector of the tile (a panel's are padded), so they
    are loaded whole; else M's ragged vector is masked as Y's is."""

    def codegen(context, builder, signature, args):
        Y_type, _, _, C_type, M_type, _ = signature.args
        Y, C, M = (
            context.make_array(ty)(context, builder, args[k])
            for k, ty in ((0, Y_type), (3, C_type), (4, M_type))
        )
        intp = context.get_value_type(types.intp)
        i, y0, m0 = (
            context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 2, 5)
        )
        width = builder.extract_value(Y.shape, 1)
        code = _TileCode(context, builder, Y_type.dtype, n_whole, ragged, width, y0)
        fmuladd = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(code.vector, [code.vector] * 3),
            f"llvm.fmuladd.v{code.lanes}f{Y_type.dtype.bitwidth}",
        )
        terms = builder.extract_value(C.shape, 1)
        c_row_stride, c_term_stride = cgutils.unpack_tuple(builder, C.strides)
        m_row_stride = builder.extract_value(M.strides, 0)
        item = ir.Constant(intp, Y_type.dtype.bitwidth // 8)
        element = code.vector.element.as_pointer()
        c_first = _byte_pointer(builder, C.data, builder.mul(i, c_row_stride))
        row_offsets = [builder.mul(intp(r), c_row_stride) for r in range(n_rows)]
        m_first = _byte_pointer(builder, M.data, builder.mul(m0, item))

        def load_m(row, v):
            if paneled:
                pointer = builder.gep(row, [ir.Constant(intp, v * code.lanes)])
                return builder.load(
                    builder.bitcast(pointer, code.pointer), align=code.align.constant
                )
            return code.load(row, v)

        # Y's tile is read after the sum: where Y (a gradient sum larger than the L2 cache) is
        # not in cache, its loads would wait on memory with nothing left to overlap them.
        vector_bytes = code.lanes * (Y_type.dtype.bitwidth // 8)
        for r in range(n_rows):
            y_row = cgutils.get_item_pointer(
                context, builder, Y_type, Y, [builder.add(i, intp(r)), y0]
            )
            for v in range(code.n_vectors):  # a vector's first element is within the row
                prefetch_line(builder, _byte_pointer(builder, y_row, intp(v * vector_bytes)), True)
        before = builder.basic_block
        test = builder.append_basic_block("term_test")
        loop = builder.append_basic_block("term")
        after = builder.append_basic_block("terms_done")
        builder.branch(test)
        builder.position_at_end(test)
        t = builder.phi(intp)
        t.add_incoming(intp(0), before)
        c_term = builder.phi(c_first.type)  # C[i, t]
        c_term.add_incoming(c_first, before)
        m_row = builder.phi(m_first.type)  # M[t, m0]
        m_row.add_incoming(m_first, before)
        sums = []
        for _ in range(n_rows * code.n_vectors):
            phi = builder.phi(code.vector)
            phi.add_incoming(ir.Constant(code.vector, None), before)
            sums.append(phi)
        builder.cbranch(builder.icmp_signed("<", t, terms), loop, after)

        builder.position_at_end(loop)
        values = [load_m(builder.bitcast(m_row, element), v) for v in range(code.n_vectors)]
        new = []
        for r in range(n_rows):
            c = builder.bitcast(builder.gep(c_term, [row_offsets[r]]), element)
            scale = splat(builder, builder.load(c), code.vector)
            for v, value in enumerate(values):
                total = sums[r * code.n_vectors + v]
                new.append(builder.call(fmuladd, [scale, value, total]))
        end_of_loop = builder.basic_block
        t.add_incoming(builder.add(t, intp(1)), end_of_loop)
        c_term.add_incoming(builder.gep(c_term, [c_term_stride]), end_of_loop)
        m_row.add_incoming(builder.gep(m_row, [m_row_stride]), end_of_loop)
        for phi, value in zip(sums, new, strict=True):
            phi.add_incoming(value, end_of_loop)
        builder.branch(test)

        builder.position_at_end(after)
        for r in range(n_rows):
            y_tile = cgutils.get_item_pointer(
                context, builder, Y_type, Y, [builder.add(i, intp(r)), y0]
            )
            for v in range(code.n_vectors):
                total = builder.fadd(code.load(y_tile, v), sums[r * code.n_vectors + v])
                code.store(total, y_tile, v)
        return context.get_dummy_value()

    @intrinsic
    def product(typingctx, Y, i, y0, C, M, m0):
        for array in (Y, M):  # rows read as whole vectors must be contiguous: refuse to compile
            if not (isinstance(array, types.Array) and array.ndim == 2 and array.layout == "C"):
                raise TypingError(f"add_products needs Y and M 2-D C-contiguous; got {array}")
        if not (isinstance(C, types.Array) and C.ndim == 2 and C.dtype == Y.dtype == M.dtype):
            raise TypingError(f"add_products needs C 2-D and one dtype; got {Y}, {C}, {M}")
        return types.void(Y, i, y0, C, M, m0), codegen

    return product


def _rest_of_row(n_rows: int, n_whole: int, paneled: bool):
    """A serial f(Y, i, y0, C, M, m0, n, ragged) for the end of a row that holds fewer than
    DENSE_VECTORS whole vectors: n (n_whole or more) whole and a ragged end or not. One
    intrinsic for each (n, ragged) it can take, chosen by comparisons: a table of them would
    cost a call through a pointer in the innermost loop."""
    plain = _product_intrinsic(n_rows, n_whole, False, paneled)
    ends = _product_intrinsic(n_rows, n_whole, True, paneled)
    name = f"rest_of_{n_rows}_rows_from_{n_whole}_{'panels' if paneled else 'rows'}"
    if n_whole + 1 == DENSE_VECTORS:

        @helper
        @named(name)
        def last(Y, i, y0, C, M, m0, n, ragged):
            if ragged:
                ends(Y, i, y0, C, M, m0)
            elif n_whole > 0:
                plain(Y, i, y0, C, M, m0)

        return last
    wider = _rest_of_row(n_rows, n_whole + 1, paneled)

    @helper
    @named(name)
    def rest(Y, i, y0, C, M, m0, n, ragged):
        if n > n_whole:
            wider(Y, i, y0, C, M, m0, n, ragged)
        elif ragged:
            ends(Y, i, y0, C, M, m0)
        elif n_whole > 0:
            plain(Y, i, y0, C, M, m0)

    return rest


def _column_of_tiles(paneled: bool):
    """A serial f(Y, start, stop, y0, C, M, m0): the rows start..stop-1 of Y's tiles from
    column y0 (M's from m0), DENSE_VECTORS vectors wide or, where Y's row ends sooner, what is
    left of it; DENSE_ROWS rows a tile, then the rows left one at a time."""
    whole_tile = _product_intrinsic(DENSE_ROWS, DENSE_VECTORS, False, paneled)
    whole_row = _product_intrinsic(1, DENSE_VECTORS, False, paneled)
    rest_tile = _rest_of_row(DENSE_ROWS, 0, paneled)
    rest_row = _rest_of_row(1, 0, paneled)

    @helper
    @named(f"column_of_tiles_from_{'panels' if paneled else 'rows'}")
    def column(Y, start, stop, y0, C, M, m0):
        lanes = REGISTER_BYTES // Y.itemsize
        left = Y.shape[1] - y0
        i = start
        if left >= DENSE_VECTORS * lanes:
            while i + DENSE_ROWS <= stop:
                whole_tile(Y, i, y0, C, M, m0)
                i += DENSE_ROWS
            for row in range(i, stop):
                whole_row(Y, row, y0, C, M, m0)
            return
        n, ragged = left // lanes, left % lanes > 0
        while i + DENSE_ROWS <= stop:
            rest_tile(Y, i, y0, C, M, m0, n, ragged)
            i += DENSE_ROWS
        for row in range(i, stop):
            rest_row(Y, row, y0, C, M, m0, n, ragged)

    return column


_column_from_rows = _column_of_tiles(paneled=False)
_column_from_panel = _column_of_tiles(paneled=True)


@helper
def add_products(Y, start, stop, C, M):
    """Y[i] += C[i] @ M for the rows i of start..stop-1 (see the module's docstring), a column
    of tiles at a time. C (rows, terms), M (terms, width), Y (rows, width); one dtype."""
    step = DENSE_VECTORS * (REGISTER_BYTES // Y.itemsize)
    for j0 in range(0, Y.shape[1], step):
        _column_from_rows(Y, start, stop, j0, C, M, j0)


@helper
def add_panel_column(Y, start, stop, C, panels, p):
    """The columns of Y that panel p of M covers: Y[i, cols] += C[i] @ M[:, cols] for the rows i
    of start..stop-1, M in panels (see `add_panel_products`)."""
    _column_from_panel(Y, start, stop, p * panels.shape[2], C, panels[p], 0)


@helper
def add_panel_products(Y, start, stop, C, panels):
    """add_products with M in panels (see `layout.panels`): (n_panels, terms, panel width), the
    panel width that of a tile, DENSE_VECTORS vectors."""
    for p in range(panels.shape[0]):
        add_panel_column(Y, start, stop, C, panels, p)
