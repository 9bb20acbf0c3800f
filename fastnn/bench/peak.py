"""The machine's fused multiply-add peak, measured: what the arithmetic of an epoch is set
against besides numpy's matmul.

Every thread runs CHAINS independent chains of vector fused multiply-adds, a = a * b + c, in
registers, for a fixed number of rounds: no memory traffic, and enough independent chains to
cover the FMA units' latency, so the rate is the cores' arithmetic ceiling for that vector width
(an FMA counts as two FLOPs, as matmul's rate counts them). Both 256-bit (AVX2) and 512-bit
(AVX-512) vectors are tried and the faster is the peak: on CPUs without 512-bit units LLVM
splits those vectors in two, which changes nothing; where the 512-bit units are real, they win.
"""

from __future__ import annotations

import time

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from fastnn.kernels.config import REGISTER_BYTES

CHAINS = 12  # independent accumulators: FMA latency (4-5 cycles) x 2 units, and some over
VECTOR_BITS = (256, 512)
ROUNDS = 20_000_000  # per timed run and thread: about 40 ms at 3 GHz, far above launch costs
TRIES = 5


@intrinsic
def fma_rounds(typingctx, rounds, b, bits):
    """CHAINS vector chains of `bits`-bit vectors of b's dtype, each a = a * b + b for `rounds`
    rounds, then the sum of every lane of every chain (returned, so the work cannot be
    dropped as unused)."""
    if not isinstance(bits, types.IntegerLiteral) or not isinstance(b, types.Float):
        raise TypingError("fma_rounds needs a float b and the vector width as a constant")
    lanes = bits.literal_value // b.bitwidth

    def codegen(context, builder, signature, args):
        rounds_value, b_value, _ = args
        element = context.get_data_type(b)
        vector = ir.VectorType(element, lanes)
        name = f"llvm.fma.v{lanes}f{b.bitwidth}"
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3), name
        )
        splat = ir.Constant(vector, None)
        for lane in range(lanes):
            splat = builder.insert_element(splat, b_value, ir.Constant(ir.IntType(32), lane))
        chains = [cgutils.alloca_once(builder, vector) for _ in range(CHAINS)]
        for k, chain in enumerate(chains):  # each chain starts apart, so none can be shared
            start = builder.fmul(splat, ir.Constant(vector, [float(k + 1)] * lanes))
            builder.store(start, chain)
        with cgutils.for_range(builder, rounds_value):
            for chain in chains:
                builder.store(builder.call(fma, [builder.load(chain), splat, splat]), chain)
        total = ir.Constant(element, 0.0)
        for chain in chains:
            value = builder.load(chain)
            for lane in range(lanes):
                lane_value = builder.extract_element(value, ir.Constant(ir.IntType(32), lane))
                total = builder.fadd(total, lane_value)
        return total

    return b(rounds, b, bits), codegen


def _kernel(bits: int):
    @njit(parallel=True, nogil=True)
    def run(rounds, b, out):
        for t in prange(out.shape[0]):
            out[t] = fma_rounds(rounds, b, bits)

    return run


KERNELS = {bits: _kernel(bits) for bits in VECTOR_BITS}


def fma_peak_gflops(dtype: str, threads: int | None = None, rounds: int = ROUNDS) -> dict:
    """The best FMA rate, GFLOP/s, of `threads` threads (Numba's current count if None) in
    `dtype` ("float32" or "float64"), the vector width that reached it, and the width of the
    registers that ran it (narrower where LLVM split the vectors)."""
    threads = threads or numba.get_num_threads()
    b = np.dtype(dtype).type(0.5)  # a = a * 0.5 + 0.5 settles at 1: no overflow, no subnormals
    best = {"gflops": 0.0, "vector_bits": VECTOR_BITS[0]}
    for bits, kernel in KERNELS.items():
        out = np.empty(threads, dtype)
        kernel(10, b, out)  # compile and start the threads
        lanes = bits // 8 // np.dtype(dtype).itemsize
        for _ in range(TRIES):
            start = time.perf_counter()
            kernel(rounds, b, out)
            seconds = time.perf_counter() - start
            rate = 2 * lanes * CHAINS * rounds * threads / seconds / 1e9
            if rate > best["gflops"]:
                best = {"gflops": rate, "vector_bits": bits}
    best["register_bits"] = min(best["vector_bits"], 8 * REGISTER_BYTES)
    return best


def fma_peaks(threads: int, rounds: int = ROUNDS) -> dict[str, dict]:
    """fma_peak_gflops for float32 and float64, JSON-ready."""
    return {dtype: fma_peak_gflops(dtype, threads, rounds) for dtype in ("float32", "float64")}


def set_against_fma_peak(
    entries: list[dict], peaks: dict[str, dict], one_thread: dict[str, dict] | None = None
) -> None:
    """Adds to each workload's numba result the FLOPs its kernels do per second
    (`work_flops_per_sample`: the first layer's over every input where it ran dense, over the
    non-zero ones where it ran sparse) and that rate's share of the FMA peak of the workload's
    dtype; and, given one thread's peaks, to each layer timed alone on one thread
    (bench.layers) its products' share of that."""
    for entry in entries:
        result = entry["results"].get("numba")
        if result is None:
            continue
        work = result["samples_per_s"] * entry["work_flops_per_sample"] / 1e9
        result["work_gflops"] = work
        result["pct_of_fma_peak"] = 100 * work / peaks[entry["dtype"]]["gflops"]
        if one_thread is None or not entry.get("layers"):
            continue
        peak = one_thread[entry["dtype"]]["gflops"]
        for layer in entry["layers"]["layers"]:
            rate = layer["gflops"]
            layer["pct_of_one_thread_fma_peak"] = None if rate is None else 100 * rate / peak
