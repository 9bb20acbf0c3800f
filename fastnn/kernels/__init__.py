"""Numba kernels of the network, any number of hidden layers: plain functions of arrays,
compiled by Numba.

- `config`: every compiler option, in one place;
- `linking`: the helpers compiled to LLVM IR only, optimised and compiled to machine code once,
  with the entry that calls them;
- `cache`: Numba's on-disk cache of the entries, stale after an edit to any kernel source;
- `team`: the threads that run an entry together, and the barrier where they meet;
- `sparse`: reading X (uint8 pixels scaled as x / 255 in the parameters' dtype, as the
  reference does) and listing each sample's non-zero features, all the first layer touches;
- `csr`: a scipy.sparse X into the first layer, never densified;
- `tile`: the sparse first layer's loops, one side kept in vector registers;
- `dense`: the products of every layer whose input is dense, in register tiles with fused
  multiply-adds;
- `forward`: the forward pass of one sample, as small serial helpers;
- `outputs`: the last layer by the output kind (softmax, logistic, identity): the outputs and
  the loss's gradient there;
- `dropout` and `constraint`: dropout's masks drawn where they are used, and max-norm;
- `samples`: a mini-batch's sample pass, each sample forward and back, shared by the team (and
  a prediction's forward pass);
- `update`: the update pass over the parameters' rows: the gradient sums and the step;
- `layout`: where each layer's numbers sit in the flat buffers that let one compiled kernel
  take any number of hidden layers;
- `optimizer`: the update rules (SGD, momentum, Adam, RMSprop, L2 penalty) on a flat range;
- `augment`: an epoch's augmented images;
- `epoch`: the entry points `fastnn.backends.numba_backend` calls: `train_batches` (a whole
  epoch, or the gradients of one batch), `forward` and `augment`.
"""
