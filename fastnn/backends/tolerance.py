"""How closely the numba backend agrees with the NumPy reference: stated here once, and checked
tensor by tensor by the equivalence tests (tests/test_numba_equivalence.py and every other test
that compares the two backends takes its bounds from here).

The two compute the same sums in different orders and roundings: NumPy's BLAS blocks and
vectorises them; the kernels add a sparse first layer's terms feature by feature, skipping
zeros, and every dense product's terms in ascending order fused into their sums (one rounding
per multiply-add where the CPU has FMA, see fastnn.kernels.dense). A difference is measured
relative to the largest magnitude in the tensor (elementwise relative error means nothing for
entries that cancel to nearly zero).

- float64: a dot product of n terms carries about sqrt(n) roundings of 2**-53 (1.1e-16) of the
  sum of its terms' magnitudes; n <= 800 here gives a few 1e-15, and each side has its own, so
  one pass (each layer's Z and A, P, the loss, every gradient of one batch) is within 1e-12.
  Training feeds each step's differences into the next: after a few epochs (a few hundred
  steps) losses, parameters and the optimizer's state are within 1e-9. Float64 predictions
  (the argmax) are the same.
- float32: the same with roundings of 2**-24 (6e-8): n = 784 terms give about 2e-6 typically,
  n units (4.7e-5) at worst; 2e-5 for one pass, 5e-5 after a few dozen steps. Adam and RMSprop
  divide each step by sqrt(s) + eps, so a weight whose gradient is tiny moves by lr * g / |g|
  whatever its size, and float32 rounding in g reaches such weights undamped: 1e-4 after their
  steps. A float32 near-tie between two logits may go either way: predictions may differ where
  the two top probabilities are within float32 rounding.

What is exact whatever the tolerance: the numba backend gives the same bits on any number of
threads and run after run (each number is computed by one job in a fixed order).
"""

from __future__ import annotations

# Each forward tensor, the loss and every gradient of one batch.
ONE_PASS = {"float64": 1e-12, "float32": 2e-5}
# Losses, parameters and optimizer state after a few epochs of plain SGD or momentum.
TRAINED = {"float64": 1e-9, "float32": 5e-5}
# The same after steps of Adam or RMSprop (see above).
TRAINED_ADAPTIVE = {"float64": 1e-9, "float32": 1e-4}
