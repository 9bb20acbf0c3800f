"""The benchmarks' tests (BESIDE_FILES of conftest.py) run in a pytest of their own in the
background of a whole-suite run, on the core the suite leaves idle, and this test, which the run
takes last, reports them. Run alone or in a few files, they run in the run itself as usual."""

import os

import pytest


def test_the_tests_run_beside_the_suite_pass(background):
    if background is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs the whole suite, which starts the background jobs")
        pytest.skip("the tests run beside the suite in the background of a whole-suite run only")
    if "beside" not in background.names:
        pytest.skip("no test of those files was chosen")
    background.check("beside")
