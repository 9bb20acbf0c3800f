"""The input side: reading X as the parameters' dtype, and listing each sample's non-zero
features.

MNIST rows are about 81% zeros, and a zero input adds nothing to X @ W1 nor to X.T @ dZ1, so the
kernels list, per sample of a chunk, its non-zero features in ascending order and touch W1 only
there. Sample i of a chunk owns the `slots` index slots from i * slots: n_in + 1 for a dense X
(see `scan_row` for the spare one), the longest row's non-zeros for a sparse one (`csr`). The
features are grouped in blocks of BLOCK: block b is features b * BLOCK .. (b + 1) * BLOCK - 1,
and bounds[b, i] .. bounds[b + 1, i] - 1 are the slots of sample i's features in block b, so
that the job of `update.gradient_pass` that owns blocks b..b' finds its entries of every sample
without searching: bounds[b, i] .. bounds[b' + 1, i] - 1.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic, overload

from fastnn.kernels.config import REGISTER_BYTES, SERIAL, counted_helper, helper

BLOCK = 16  # input features per block (an update job owns a few: update.blocks_per_job)
WORD = 64  # pixels that scan_row_vector tests at once
BLOCKS_PER_WORD = WORD // BLOCK


def load_x(X, r, k, table):
    """X[r, k] in the parameters' dtype times the input dropout factor of the kept features:
    uint8 pixels through `table`, floats times table[0] (see `input_table`)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@overload(load_x, jit_options=SERIAL)
def _load_x(X, r, k, table):
    if X.dtype == types.uint8:
        return lambda X, r, k, table: table[X[r, k]]
    return lambda X, r, k, table: X[r, k] * table[0]


def input_table(X, like, factor):
    """What `load_x` reads X through: for uint8 pixels v / 255 * factor for every byte v, for
    floats [factor]; factor is a kept input's dropout factor (1 without input dropout, which
    changes no bit: x * 1 is x)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@overload(input_table, jit_options=SERIAL)
def _input_table(X, like, factor):
    if X.dtype == types.uint8:

        def pixels(X, like, factor):
            table = pixel_table(like)
            for v in range(256):
                table[v] = table[v] * factor
            return table

        return pixels

    def floats(X, like, factor):
        table = np.empty(1, like.dtype)
        table[0] = factor
        return table

    return floats


def rows_in_place(X, like):
    """X itself where its rows can be a dense first layer's inputs as they are (floats of
    like's dtype, read through a table of [1]), else an empty (0, n_in) array of like's dtype:
    a type fixed when compiling, so that both cases compile."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@overload(rows_in_place, jit_options=SERIAL)
def _rows_in_place(X, like):
    if X.dtype == like.dtype and X.layout == "C":
        return lambda X, like: X
    return lambda X, like: np.empty((0, X.shape[1]), like.dtype)


def read_row(X, r, table, out):
    """out[k] = X[r, k] as `load_x` reads it, for every feature k: a dense first layer's
    input. Pixels are scaled here, not looked up: (v / 255) * factor, which is what the table
    holds (its entry 255 is 1 * factor: the factor), in vector instructions, where a lookup a
    pixel took 3.3 times as long (10,000 MNIST rows: 2.74 against 0.83 ms)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@overload(read_row, jit_options=SERIAL)
def _read_row(X, r, table, out):
    if X.dtype == types.uint8:

        def pixels(X, r, table, out):
            top, factor = out.dtype.type(255), table[255]
            for k in range(X.shape[1]):
                out[k] = out.dtype.type(X[r, k]) / top * factor

        return pixels

    def floats(X, r, table, out):
        for k in range(X.shape[1]):
            out[k] = load_x(X, r, k, table)

    return floats


@counted_helper
def pixel_table(like):
    """v / 255 in the dtype of `like` for every byte v: the reference's division, done once."""
    dtype = like.dtype
    table = np.empty(256, dtype)  # (256,)
    for v in range(256):
        table[v] = dtype.type(v) / dtype.type(255)
    return table


def splat(builder, value, vector_type):
    """An intrinsic's code for a vector of vector_type with `value` in every lane (one insert
    and a shuffle: a broadcast on x86)."""
    single = builder.insert_element(ir.Constant(vector_type, None), value, ir.IntType(32)(0))
    lanes = vector_type.count
    return builder.shuffle_vector(
        single, single, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    )


def item_address(context, builder, arg_types, args):
    """The address of array[i, ...] in an intrinsic's code, from its arguments (array, i, ...)
    and their types, whatever integer types the indices have (LLVM needs them as wide as a
    pointer)."""
    array_type = arg_types[0]
    array = context.make_array(array_type)(context, builder, args[0])
    indices = [
        context.cast(builder, value, ty, types.intp)
        for value, ty in zip(args[1:], arg_types[1:], strict=True)
    ]
    return cgutils.get_item_pointer(context, builder, array_type, array, indices)


def prefetch_line(builder, address, write: bool) -> None:
    """An intrinsic's code asking the CPU to start loading the cache line at `address`, to read
    it or to write it, and to keep it (llvm.prefetch; a hint, which never faults)."""
    byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
    prefetch = builder.module.declare_intrinsic(  # mangled to suit llvmlite's pointers
        "llvm.prefetch",
        [byte_pointer],
        ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
    )
    keep, data = i32(3), i32(1)
    builder.call(prefetch, [builder.bitcast(address, byte_pointer), i32(int(write)), keep, data])


@intrinsic
def _prefetch(typingctx, X, r, k):
    """Asks the CPU to start loading the cache line of X[r, k] (llvm.prefetch: read, keep)."""

    def codegen(context, builder, signature, args):
        prefetch_line(builder, item_address(context, builder, signature.args, args), False)
        return context.get_dummy_value()

    return types.void(X, r, k), codegen


@helper
def prefetch_row(X, r):
    """Starts loading row r of X into cache. Samples come in shuffled order, so the hardware
    cannot guess the next row and each of its cache lines would cost a trip to memory."""
    for k in range(0, X.shape[1], max(1, 64 // X.itemsize)):
        _prefetch(X, r, k)


def scan_row(X, r, idx, i, bounds):
    """Lists the non-zero features of row r of X, ascending, in the slots of sample i of idx
    and fills column i of bounds (n_blocks + 1, chunk)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@overload(scan_row, jit_options=SERIAL)
def _scan_row(X, r, idx, i, bounds):
    if X.dtype == types.uint8 and X.layout == "C":

        def impl(X, r, idx, i, bounds):
            if X.shape[1] % BLOCK == 0:
                scan_row_vector(X, r, idx, i, bounds)
            else:
                scan_row_any(X, r, idx, i, bounds)

        return impl
    return lambda X, r, idx, i, bounds: scan_row_any(X, r, idx, i, bounds)


@helper
def scan_row_any(X, r, idx, i, bounds):
    """scan_row for any X. Within a block that has a non-zero, every feature is written and
    the cursor moves past non-zeros only: one spare slot, and no unpredictable branch per
    pixel. Blocks of zeros (the image borders) are skipped whole."""
    n_in = X.shape[1]
    zero = X.dtype.type(0)
    c = i * (idx.shape[0] // bounds.shape[1])
    for b in range(bounds.shape[0] - 1):
        bounds[b, i] = c
        first = b * BLOCK
        last = min(first + BLOCK, n_in)
        any_nonzero = False
        for k in range(first, last):
            any_nonzero |= X[r, k] != zero
        if any_nonzero:
            for k in range(first, last):
                idx[c] = k
                c += X[r, k] != zero
    bounds[bounds.shape[0] - 1, i] = c


def _nonzero_bits_of(width: int):
    """An intrinsic f(X, r, k): bit q set where X[r, k + q] != 0, q < width <= 64, for uint8 X
    in C order: one vector load, one compare and a move of the compare's sign bits (pcmpeqb,
    pmovmskb on x86; one mask register on AVX-512)."""

    @intrinsic
    def nonzero_bits(typingctx, X, r, k):
        def codegen(context, builder, signature, args):
            address = item_address(context, builder, signature.args, args)
            lanes = ir.VectorType(ir.IntType(8), width)
            pixels = builder.load(builder.bitcast(address, lanes.as_pointer()), align=1)
            nonzero = builder.icmp_unsigned("!=", pixels, ir.Constant(lanes, None))
            bits = builder.bitcast(nonzero, ir.IntType(width))
            return bits if width == 64 else builder.zext(bits, ir.IntType(64))

        return types.uint64(X, r, k), codegen

    return nonzero_bits


_nonzero_bits = _nonzero_bits_of(BLOCK)
_nonzero_word = _nonzero_bits_of(WORD)


@intrinsic
def _bit_count(typingctx, m):
    """The number of set bits of the uint64 m (llvm.ctpop: popcnt on x86), as an int64."""

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [i64])
        return builder.call(ctpop, [args[0]])

    return types.int64(types.uint64), codegen


@helper
def list_set_bits(m, first, idx, c):
    """idx[c], idx[c + 1], ... = first + the positions of m's set bits, lowest first; returns
    the slot after the last one written."""
    while m:
        idx[c] = first + np.int64(trailing_zeros(m))  # int64 + uint64 would be a float
        c += 1
        m &= m - np.uint64(1)
    return c


@intrinsic
def _compress_block(typingctx, idx, c, bits, first):
    """idx[c], idx[c + 1], ... = first + the positions q < BLOCK of bits' set bits, lowest
    first, with AVX-512 instructions: the positions packed in a register (vpcompressd) and only
    the slots they fill written (a masked store: writing the whole vector could reach into the
    next sample's slots, which another member may be writing)."""

    def codegen(context, builder, signature, args):
        i1, word, i32 = ir.IntType(1), ir.IntType(BLOCK), ir.IntType(32)  # word: a block's bits
        lanes = ir.VectorType(i32, BLOCK)
        masks = ir.VectorType(i1, BLOCK)
        block_bits = builder.trunc(args[2], word)
        first = context.cast(builder, args[3], signature.args[3], types.int32)
        positions = builder.add(
            splat(builder, first, lanes), ir.Constant(lanes, list(range(BLOCK)))
        )
        compress = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(lanes, [lanes, lanes, masks]),
            f"llvm.x86.avx512.mask.compress.v{BLOCK}i32",
        )
        packed = builder.call(
            compress, [positions, ir.Constant(lanes, None), builder.bitcast(block_bits, masks)]
        )
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [word])
        count = builder.call(ctpop, [block_bits])
        filled = builder.sub(builder.shl(word(1), count), word(1))  # the lowest `count` lanes
        store = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [lanes, lanes.as_pointer(), i32, masks]),
            f"llvm.masked.store.v{BLOCK}i32.p0",
        )
        slot = item_address(context, builder, signature.args[:2], args[:2])
        target = builder.bitcast(slot, lanes.as_pointer())
        builder.call(store, [packed, target, i32(4), builder.bitcast(filled, masks)])
        return context.get_dummy_value()

    return types.void(idx, c, bits, first), codegen


@helper
def list_word(m, first, idx, c):
    """list_set_bits for a WORD of pixels, a BLOCK at a time with `_compress_block`: no loop
    over the set bits, so no branch mispredicted at its end."""
    for q in range(BLOCKS_PER_WORD):
        bits = (m >> np.uint64(q * BLOCK)) & np.uint64((1 << BLOCK) - 1)
        _compress_block(idx, c, bits, first + q * BLOCK)
        c += _bit_count(bits)
    return c


# Where the CPU has AVX-512 (REGISTER_BYTES of 64), a word's non-zeros are listed with it.
list_nonzeros = list_word if REGISTER_BYTES == 64 else list_set_bits


@helper
def scan_row_vector(X, r, idx, i, bounds):
    """scan_row for uint8 pixels in C order, n_in a multiple of BLOCK: a bit mask of a WORD of
    pixels from one vector compare, then only the non-zeros written, lowest bit first
    (ascending); each block's bound is the count of set bits below it. A word, not a block, at
    a time: the loop over set bits ends with a mispredicted branch, once a word instead of once
    a block (MNIST's 60,000 rows in a shuffled order: 0.019 s against 0.029 s). The last pixels
    that fill no word go a block at a time."""
    n_blocks = bounds.shape[0] - 1
    c = i * (idx.shape[0] // bounds.shape[1])
    b = 0
    while (b + BLOCKS_PER_WORD) * BLOCK <= X.shape[1]:
        first = b * BLOCK
        m = _nonzero_word(X, r, first)
        for q in range(BLOCKS_PER_WORD):
            below = (np.uint64(1) << np.uint64(q * BLOCK)) - np.uint64(1)
            bounds[b + q, i] = c + _bit_count(m & below)
        c = list_nonzeros(m, first, idx, c)
        b += BLOCKS_PER_WORD
    for rest in range(b, n_blocks):
        bounds[rest, i] = c
        c = list_set_bits(_nonzero_bits(X, r, rest * BLOCK), rest * BLOCK, idx, c)
    bounds[n_blocks, i] = c
