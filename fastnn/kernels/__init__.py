"""Numba kernels of the two-layer network: plain functions of arrays, compiled by Numba.

- `config`: every compiler option and the threading layer, in one place;
- `sparse`: reading X (uint8 pixels scaled as x / 255 in the parameters' dtype, as the
  reference does) and listing each sample's non-zero features, all the first layer touches;
- `vector`: the one inner loop, y += c0 * M[r0] + ..., as explicit SIMD code;
- `forward`: the forward pass of one sample, as small serial helpers;
- `backward`: a mini-batch's forward pass, backpropagation and update, fused into two parallel
  passes, one over samples and one over the parameters' rows;
- `epoch`: `run`, the one entry point `fastnn.backends.numba_backend` calls: a whole epoch, the
  gradients of one batch, or a forward pass.
"""
