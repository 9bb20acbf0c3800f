"""Numba kernels of the network, any number of hidden layers: plain functions of arrays,
compiled by Numba.

- `config`: every compiler option, in one place;
- `linking`: the helpers compiled to LLVM IR only, optimised and compiled to machine code once,
  with the entry that calls them;
- `cache`: Numba's on-disk cache of the entries, stale after an edit to any kernel source;
- `team`: the threads that run an entry together, and the barrier where they meet;
- `sparse`: reading X (uint8 pixels scaled as x / 255 in the parameters' dtype, as the
  reference does) and listing each sample's non-zero features, all the first layer touches;
- `vector`: the one inner loop, y += c0 * M[r0] + ..., as explicit SIMD code;
- `forward`: the forward pass of one sample, as small serial helpers;
- `outputs`: the last layer by the output kind (softmax, logistic, identity): the outputs and
  the loss's gradient there;
- `passes`: a mini-batch's forward pass, backpropagation and update, fused into two passes
  shared by the team, one over samples and one over the parameters' rows;
- `layout`: where each layer's numbers sit in the flat buffers that let one compiled kernel
  take any number of hidden layers;
- `optimizer`: the update rules (SGD, momentum, Adam, RMSprop, L2 penalty) on a flat range;
- `epoch`: the entry points `fastnn.backends.numba_backend` calls: `train_batches` (a whole
  epoch, or the gradients of one batch), `forward` and `augment`.
"""
