"""Dense matrix products in register tiles with fused multiply-adds: every product of a layer
whose input is dense.

One operation serves them all, Y[i] += C[i] @ M for a range of rows i, with C any 2-D array
(a transposed view too) and M's rows contiguous:

- forward, Z = A @ W (+ b): C = A, M = W (fan_in, fan_out);
- backward, dA = dZ @ W.T: C = dZ, M = W.T (fan_out, fan_in), as theta keeps later layers;
- weight gradients, dW.T += dZ.T @ A: C = dZ.T (a view), M = A, the terms over samples.

A tile is DENSE_ROWS rows of Y by DENSE_VECTORS vectors of REGISTER_BYTES, held in registers over
the whole sum (`config`): each term loads the tile's vectors of M[t] once for all its rows and
broadcasts one C[i, t] per row, so a row's sum costs no load or store of Y in the loop. The
terms go in ascending order, each fused into its sum (llvm.fmuladd: one rounding where the CPU
has FMA, two where it has not), and the tile's sum is added to Y once at the end. Every element
of Y thus gets the same operations in the same order whatever tile, row range or thread
computes it, so results do not depend on how the rows are shared out.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from fastnn.kernels.config import DENSE_ROWS, DENSE_VECTORS, REGISTER_BYTES, SERIAL
from fastnn.kernels.sparse import splat
from fastnn.kernels.tile import _TileCode


def _byte_pointer(builder, pointer, offset):
    """pointer + offset bytes, as an i8 pointer."""
    i8p = ir.IntType(8).as_pointer()
    return builder.gep(builder.bitcast(pointer, i8p), [offset])


def _product_intrinsic(n_rows: int, n_whole: int, ragged: bool):
    """f(Y, i, C, M, j0): for the n_rows rows i.. of Y and C, the tile of Y[i] from column j0
    (n_whole vectors and, if ragged, one that ends the row: see `tile._TileCode`) += the sum
    over t of C[i, t] * M[t]'s tile, t ascending, fused, summed in registers from zero."""

    def codegen(context, builder, signature, args):
        Y_type, _, C_type, M_type, _ = signature.args
        Y, C, M = (
            context.make_array(ty)(context, builder, args[k])
            for k, ty in ((0, Y_type), (2, C_type), (3, M_type))
        )
        intp = context.get_value_type(types.intp)
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        j0 = context.cast(builder, args[4], signature.args[4], types.intp)
        width = builder.extract_value(M.shape, 1)
        code = _TileCode(context, builder, Y_type.dtype, n_whole, ragged, width, j0)
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
        m_first = _byte_pointer(builder, M.data, builder.mul(j0, item))

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
        m_row = builder.phi(m_first.type)  # M[t, j0]
        m_row.add_incoming(m_first, before)
        sums = []
        for _ in range(n_rows * code.n_vectors):
            phi = builder.phi(code.vector)
            phi.add_incoming(ir.Constant(code.vector, None), before)
            sums.append(phi)
        builder.cbranch(builder.icmp_signed("<", t, terms), loop, after)

        builder.position_at_end(loop)
        values = [code.load(builder.bitcast(m_row, element), v) for v in range(code.n_vectors)]
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
                context, builder, Y_type, Y, [builder.add(i, intp(r)), j0]
            )
            for v in range(code.n_vectors):
                total = builder.fadd(code.load(y_tile, v), sums[r * code.n_vectors + v])
                code.store(total, y_tile, v)
        return context.get_dummy_value()

    @intrinsic
    def product(typingctx, Y, i, C, M, j0):
        for array in (Y, M):  # rows read as whole vectors must be contiguous: refuse to compile
            if not (isinstance(array, types.Array) and array.ndim == 2 and array.layout == "C"):
                raise TypingError(f"add_products needs Y and M 2-D C-contiguous; got {array}")
        if not (isinstance(C, types.Array) and C.ndim == 2 and C.dtype == Y.dtype == M.dtype):
            raise TypingError(f"add_products needs C 2-D and one dtype; got {Y}, {C}, {M}")
        return types.void(Y, i, C, M, j0), codegen

    return product


def _rest_of_row(n_rows: int, n_whole: int):
    """A serial f(Y, i, C, M, j0, n, ragged) for the end of a row that holds fewer than
    DENSE_VECTORS whole vectors: n (n_whole or more) whole and a ragged end or not. One
    intrinsic for each (n, ragged) it can take, chosen by comparisons: a table of them would
    cost a call through a pointer in the innermost loop."""
    plain = _product_intrinsic(n_rows, n_whole, False)
    ends = _product_intrinsic(n_rows, n_whole, True)
    if n_whole + 1 == DENSE_VECTORS:

        @njit(**SERIAL)
        def last(Y, i, C, M, j0, n, ragged):
            if ragged:
                ends(Y, i, C, M, j0)
            elif n_whole > 0:
                plain(Y, i, C, M, j0)

        return last
    wider = _rest_of_row(n_rows, n_whole + 1)

    @njit(**SERIAL)
    def rest(Y, i, C, M, j0, n, ragged):
        if n > n_whole:
            wider(Y, i, C, M, j0, n, ragged)
        elif ragged:
            ends(Y, i, C, M, j0)
        elif n_whole > 0:
            plain(Y, i, C, M, j0)

    return rest


def _column_tiles(n_rows: int):
    """(whole, rest): serial functions doing the tile of n_rows rows from i and column j0,
    whole(Y, i, C, M, j0) DENSE_VECTORS vectors wide, rest(Y, i, C, M, j0, n, ragged) the end
    of a row (see `_rest_of_row`)."""
    return _product_intrinsic(n_rows, DENSE_VECTORS, False), _rest_of_row(n_rows, 0)


_whole_tile, _rest_tile = _column_tiles(DENSE_ROWS)
_whole_row, _rest_row = _column_tiles(1)


@njit(**SERIAL)
def add_products(Y, start, stop, C, M):
    """Y[i] += C[i] @ M for the rows i of start..stop-1 (see the module's docstring): a column
    of tiles at a time, DENSE_ROWS rows a tile and the rows left one at a time, so that the
    tiles of a column read the same columns of M, from cache after the first. C (rows, terms),
    M (terms, width) with contiguous rows, Y (rows, width); one dtype."""
    lanes = REGISTER_BYTES // M.itemsize
    width = M.shape[1]
    j0 = 0
    while j0 + DENSE_VECTORS * lanes <= width:
        i = start
        while i + DENSE_ROWS <= stop:
            _whole_tile(Y, i, C, M, j0)
            i += DENSE_ROWS
        for row in range(i, stop):
            _whole_row(Y, row, C, M, j0)
        j0 += DENSE_VECTORS * lanes
    if j0 < width:
        n, ragged = (width - j0) // lanes, (width - j0) % lanes > 0
        i = start
        while i + DENSE_ROWS <= stop:
            _rest_tile(Y, i, C, M, j0, n, ragged)
            i += DENSE_ROWS
        for row in range(i, stop):
            _rest_row(Y, row, C, M, j0, n, ragged)
