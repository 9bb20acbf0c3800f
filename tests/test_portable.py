"""The portable path: the kernels compiled for a generic x86-64 CPU (no AVX2, no AVX-512) pass
the equivalence and determinism suites too, as they must on a machine without those
instructions. It runs in the background of a whole-suite run (see conftest.py) and this test,
which the run takes last, reports it. By hand:

    NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=/tmp/generic python -m pytest TESTS SELECTION

with TESTS and SELECTION the PORTABLE_TESTS and PORTABLE_SELECTION of conftest.py (the tests
of one dtype pair, PORTABLE_PAIR: compiling is nearly all of the run's time).
"""

import os

import pytest
from conftest import PORTABLE_PAIR


def test_the_equivalence_and_determinism_suites_pass_on_the_portable_path(background):
    if background is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs the whole suite, which starts the portable run in the background")
        pytest.skip("the portable path runs in the background of a whole-suite run only")
    background.check("portable")


def test_the_portable_run_compiled_one_pair():
    """In the portable run, last: its selection compiled the kernels for PORTABLE_PAIR alone.
    A test added to its files with another pair is for PORTABLE_SELECTION to leave out."""
    if os.environ.get("NUMBA_CPU_NAME") != "generic":
        pytest.skip("a check of the portable run, which runs it last")
    from fastnn.kernels.epoch import forward, train_batches

    # (team, layout, net, data, ...): the inputs' dtype is data.X's, the parameters' net.theta's.
    pairs = {(str(s[3].types[0].dtype), str(s[2].types[0].dtype)) for s in train_batches.signatures}
    pairs |= {(str(s[3].dtype), str(s[2].types[0].dtype)) for s in forward.signatures}
    assert pairs == {PORTABLE_PAIR}, f"the portable run compiled {sorted(pairs)}"
