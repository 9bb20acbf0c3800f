"""The benchmarks' tests, the README's and docs' examples and others (BESIDE_FILES of
conftest.py) run in pytests of their own in the background of a whole-suite run, and this test,
which the run takes last, reports them. Run alone or in a few files, they run in the run itself
as usual."""

import os

import pytest


def test_the_tests_run_beside_the_suite_pass(background):
    if background is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs the whole suite, which starts the background jobs")
        pytest.skip("the tests run beside the suite in the background of a whole-suite run only")
    jobs = sorted(name for name in background.names if name.startswith("beside-"))
    if not jobs:
        pytest.skip("no test of those files was chosen")
    for name in jobs:
        background.check(name)
