"""The portable path: the kernels compiled for a generic x86-64 CPU (no AVX2, no AVX-512) pass
the equivalence and determinism suites too, as they must on a machine without those
instructions. It runs in the background of a whole-suite run (see conftest.py) and this test,
which the run takes last, reports it. By hand:

    NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=/tmp/generic python -m pytest TESTS SELECTION

with TESTS and SELECTION the PORTABLE_TESTS and PORTABLE_SELECTION of conftest.py (uint8
inputs only, to halve its compiling).
"""

import os

import pytest


def test_the_equivalence_and_determinism_suites_pass_on_the_portable_path(background):
    if background is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs the whole suite, which starts the portable run in the background")
        pytest.skip("the portable path runs in the background of a whole-suite run only")
    background.check("portable")
