"""The first layer's sparse loops, with one side of each kept in vector registers.

Both loops take a sample's list of non-zero features k (`sparse`), with x_k its input:

- forward, `gather_row`: Z1[i] = sum over the list of x_k * W1[k]. A tile of Z1[i] stays in
  registers over the whole list, so an entry costs only the load of W1[k]'s tile and the
  multiply-adds, not a load and a store of Z1[i] as well;
- update, `scatter_row`: dW1[k] += x_k * dZ1[i] for each k of the list. dZ1[i]'s tile is
  loaded once for the list, so an entry costs the load and the store of dW1[k]'s tile.

A tile is TILE_VECTORS vectors of REGISTER_BYTES (see `config`). Each element gets its terms
one after another in list order, multiplied then added (no FMA), so the results are the same
bits as a plain loop. What a row has beyond whole tiles goes in tiles of fewer vectors, and a
last vector that the row fills only in part with a masked load and store (masking every vector
of a tile instead costs several times as much).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn.kernels.config import REGISTER_BYTES, TILE_VECTORS, helper, named
from fastnn.kernels.sparse import splat


class _TileCode:
    """LLVM IR for a tile of n_whole vectors from element j0 of rows `width` wide, plus, if
    ragged, one that ends the row, of which only the elements below `width` are touched."""

    def __init__(self, context, builder, dtype, n_whole, ragged, width, j0):
        self.builder = builder
        self.n_vectors = n_whole + ragged
        self.n_whole = n_whole
        self.lanes = REGISTER_BYTES // (dtype.bitwidth // 8)
        self.vector = ir.VectorType(context.get_data_type(dtype), self.lanes)
        self.pointer = self.vector.as_pointer()
        self.intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        self.align = ir.Constant(i32, dtype.bitwidth // 8)
        if ragged:  # lane q of the last vector: inside the row if j0 + n_whole * lanes + q < width
            numbers = ir.VectorType(self.intp, self.lanes)
            left = splat(builder, builder.sub(width, j0), numbers)
            first = ir.Constant(numbers, [n_whole * self.lanes + q for q in range(self.lanes)])
            self.mask = builder.icmp_signed("<", first, left)
            name = f"v{self.lanes}f{dtype.bitwidth}"
            mask_type = ir.VectorType(ir.IntType(1), self.lanes)
            self.masked_load = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(self.vector, [self.pointer, i32, mask_type, self.vector]),
                f"llvm.masked.load.{name}.p0",
            )
            self.masked_store = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [self.vector, self.pointer, i32, mask_type]),
                f"llvm.masked.store.{name}.p0",
            )

    def _at(self, tile, v):
        offset = ir.Constant(self.intp, v * self.lanes)
        return self.builder.bitcast(self.builder.gep(tile, [offset]), self.pointer)

    def load(self, tile, v):
        """Vector v of the tile starting at the element pointer `tile`."""
        if v == self.n_whole:
            zeros = ir.Constant(self.vector, None)
            pointer = self._at(tile, v)
            return self.builder.call(self.masked_load, [pointer, self.align, self.mask, zeros])
        return self.builder.load(self._at(tile, v), align=self.align.constant)

    def store(self, value, tile, v):
        if v == self.n_whole:
            self.builder.call(self.masked_store, [value, self._at(tile, v), self.align, self.mask])
        else:
            self.builder.store(value, self._at(tile, v), align=self.align.constant)

    def multiply_add(self, total, x, value):
        """total + x * value, rounded after each: no FMA, the same bits as the plain loop."""
        return self.builder.fadd(total, self.builder.fmul(x, value))


def _index(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


def _entry_loop(context, builder, signature, args, carried, body):
    """The loop over an intrinsic's entries (its arguments are (Y, i, j0, M, idx, start, end,
    X, r, table)): for e in start..end-1, carried = body(k, x, carried), k = idx[e] and x its
    input, X[r, k] read through table as `sparse.load_x` does; returns the carried values
    after the loop."""
    arg_types = signature.args
    rows, X, table = (
        context.make_array(arg_types[k])(context, builder, args[k]) for k in (4, 7, 9)
    )
    intp = context.get_value_type(types.intp)
    r = _index(context, builder, args[8], arg_types[8])
    x_row = builder.gep(X.data, [builder.mul(r, builder.extract_value(X.shape, 1))])
    first = _index(context, builder, args[5], arg_types[5])
    end = _index(context, builder, args[6], arg_types[6])
    before = builder.basic_block
    test = builder.append_basic_block("entry_test")
    loop = builder.append_basic_block("entry")
    after = builder.append_basic_block("entries_done")
    builder.branch(test)
    builder.position_at_end(test)
    e = builder.phi(intp)
    e.add_incoming(first, before)
    phis = []
    for value in carried:
        phi = builder.phi(value.type)
        phi.add_incoming(value, before)
        phis.append(phi)
    builder.cbranch(builder.icmp_signed("<", e, end), loop, after)
    builder.position_at_end(loop)
    k = builder.sext(builder.load(builder.gep(rows.data, [e])), intp)
    raw = builder.load(builder.gep(x_row, [k]))
    if arg_types[7].dtype == types.uint8:  # table[v]: v / 255 times the dropout factor
        x = builder.load(builder.gep(table.data, [builder.zext(raw, intp)]))
    else:  # X[r, k] * table[0]
        x = builder.fmul(raw, builder.load(table.data))
    new = body(k, x, phis)
    end_of_loop = builder.basic_block
    e.add_incoming(builder.add(e, ir.Constant(intp, 1)), end_of_loop)
    for phi, value in zip(phis, new, strict=True):
        phi.add_incoming(value, end_of_loop)
    builder.branch(test)
    builder.position_at_end(after)
    return phis


def _gather_intrinsic(n_whole: int, ragged: bool):
    """f(Y, i, j0, W, idx, start, end, X, r, table): the tile of Y[i] from j0 (see
    `_TileCode`) = sum over e in start..end-1 of x_k * W[k] (k = idx[e]), in that order."""

    def codegen(context, builder, signature, args):
        arg_types = signature.args
        Y, W = (context.make_array(arg_types[k])(context, builder, args[k]) for k in (0, 3))
        width = builder.extract_value(W.shape, 1)
        j0 = _index(context, builder, args[2], arg_types[2])
        code = _TileCode(context, builder, arg_types[0].dtype, n_whole, ragged, width, j0)
        w_tile = builder.gep(W.data, [j0])

        def add_entry(k, x, sums):
            scale = splat(builder, x, code.vector)
            w_row = builder.gep(w_tile, [builder.mul(k, width)])
            return [code.multiply_add(s, scale, code.load(w_row, v)) for v, s in enumerate(sums)]

        zeros = [ir.Constant(code.vector, None)] * code.n_vectors
        sums = _entry_loop(context, builder, signature, args, zeros, add_entry)
        i = _index(context, builder, args[1], arg_types[1])
        y_tile = cgutils.get_item_pointer(context, builder, arg_types[0], Y, [i, j0])
        for v, total in enumerate(sums):
            code.store(total, y_tile, v)
        return context.get_dummy_value()

    @intrinsic
    def gather(typingctx, Y, i, j0, W, idx, start, end, X, r, table):
        return types.void(Y, i, j0, W, idx, start, end, X, r, table), codegen

    return gather


def _scatter_intrinsic(n_whole: int, ragged: bool):
    """f(Y, i, j0, D, idx, start, end, X, r, table): for e in start..end-1, in that order, the
    tile of Y[k] from j0 (k = idx[e], see `_TileCode`) += x_k * D[i]'s tile.

    The ragged end of the tile goes in plain vectors of half a register, a quarter, ... one
    element, each if the end has it, rather than in a masked vector: a masked store cannot
    forward its value to the next masked load of the same row (the next sample's, often), which
    waits for it to reach the cache; hidden 10 float32 took 7.3 ns per entry masked against 2.7
    ns so."""

    def codegen(context, builder, signature, args):
        arg_types = signature.args
        Y, D = (context.make_array(arg_types[k])(context, builder, args[k]) for k in (0, 3))
        width = builder.extract_value(D.shape, 1)
        j0 = _index(context, builder, args[2], arg_types[2])
        code = _TileCode(context, builder, arg_types[0].dtype, n_whole, False, width, j0)
        i = _index(context, builder, args[1], arg_types[1])
        d_tile = cgutils.get_item_pointer(context, builder, arg_types[3], D, [i, j0])
        d = [code.load(d_tile, v) for v in range(n_whole)]
        y_tile = builder.gep(Y.data, [j0])
        intp = code.intp
        after_whole = ir.Constant(intp, n_whole * code.lanes)
        left = builder.sub(builder.sub(width, j0), after_whole)  # elements of the ragged end
        element = code.vector.element

        def add_piece(y_row, scale, size):
            """The piece of `size` elements of the ragged end, if it has one: after the larger
            pieces it has."""
            has = builder.icmp_unsigned("!=", builder.and_(left, ir.Constant(intp, size)), intp(0))
            with builder.if_then(has, likely=True):
                offset = builder.add(after_whole, builder.and_(left, intp(-2 * size)))
                piece = ir.VectorType(element, size).as_pointer()

                def at(tile):
                    return builder.bitcast(builder.gep(tile, [offset]), piece)

                total = builder.load(at(y_row), align=code.align.constant)
                value = builder.load(at(d_tile), align=code.align.constant)
                factor = splat(builder, scale, ir.VectorType(element, size))
                builder.store(
                    code.multiply_add(total, factor, value), at(y_row), align=code.align.constant
                )

        def add_entry(k, x, carried):
            scale = splat(builder, x, code.vector)
            y_row = builder.gep(y_tile, [builder.mul(k, width)])
            for v in range(n_whole):
                code.store(code.multiply_add(code.load(y_row, v), scale, d[v]), y_row, v)
            if ragged:
                size = code.lanes // 2
                while size >= 1:
                    add_piece(y_row, x, size)
                    size //= 2
            return carried

        _entry_loop(context, builder, signature, args, [], add_entry)
        return context.get_dummy_value()

    @intrinsic
    def scatter(typingctx, Y, i, j0, D, idx, start, end, X, r, table):
        return types.void(Y, i, j0, D, idx, start, end, X, r, table), codegen

    return scatter


def _by_tiles(make_intrinsic, name: str):
    """A serial function f(Y, i, M, idx, start, end, X, r, table) doing what the intrinsics
    that make_intrinsic(n_whole, ragged) makes do, over the whole width of M's rows: whole
    tiles, then what is left in passes of 8, 4, 2 and 1 vectors (those it has), the ragged
    vector riding along with the last pass. Each pass is written out: choosing the intrinsic
    by a number at run time (a loop over the pass sizes) made the update pass at hidden 10
    1.6 times as slow."""
    tile = make_intrinsic(TILE_VECTORS, False)
    whole_8, whole_4, whole_2, whole_1 = (make_intrinsic(n, False) for n in (8, 4, 2, 1))
    end_8, end_4, end_2, end_1, end_0 = (make_intrinsic(n, True) for n in (8, 4, 2, 1, 0))

    @helper
    @named(name)
    def by_tiles(Y, i, M, idx, start, end, X, r, table):
        lanes = REGISTER_BYTES // M.itemsize
        width = M.shape[1]
        j0 = 0
        while j0 + TILE_VECTORS * lanes <= width:
            tile(Y, i, j0, M, idx, start, end, X, r, table)
            j0 += TILE_VECTORS * lanes
        whole = (width - j0) // lanes  # fewer than TILE_VECTORS: 8 + 4 + 2 + 1 at most
        ragged = (width - j0) % lanes > 0
        if whole >= 8:
            whole -= 8
            if whole == 0 and ragged:
                return end_8(Y, i, j0, M, idx, start, end, X, r, table)
            whole_8(Y, i, j0, M, idx, start, end, X, r, table)
            j0 += 8 * lanes
        if whole >= 4:
            whole -= 4
            if whole == 0 and ragged:
                return end_4(Y, i, j0, M, idx, start, end, X, r, table)
            whole_4(Y, i, j0, M, idx, start, end, X, r, table)
            j0 += 4 * lanes
        if whole >= 2:
            whole -= 2
            if whole == 0 and ragged:
                return end_2(Y, i, j0, M, idx, start, end, X, r, table)
            whole_2(Y, i, j0, M, idx, start, end, X, r, table)
            j0 += 2 * lanes
        if whole == 1 and ragged:
            end_1(Y, i, j0, M, idx, start, end, X, r, table)
        elif whole == 1:
            whole_1(Y, i, j0, M, idx, start, end, X, r, table)
        elif ragged:
            end_0(Y, i, j0, M, idx, start, end, X, r, table)

    return by_tiles


# Y[i] = sum of x_k * W[k] over the features k of idx[start:end] (X[r]'s, read through table).
gather_row = _by_tiles(_gather_intrinsic, "gather_row")
# Y[k] += x_k * D[i] for the features k of idx[start:end], in that order.
scatter_row = _by_tiles(_scatter_intrinsic, "scatter_row")
