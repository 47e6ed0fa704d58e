"""The ``timing`` marker: tests whose assertions are wall-clock ratios (the GIL released, a
thread limit obeyed). A loaded machine can fail them, so they are opt-in: they run only with
``CYPOOL_TIMING_TESTS=1`` (CI runs them as a step of their own, with retries), and are skipped
otherwise. Every other test is deterministic and independent of the machine's speed."""

import os

import pytest

TIMING_ENV = "CYPOOL_TIMING_TESTS"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"timing: asserts on wall-clock time; runs only with {TIMING_ENV}=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get(TIMING_ENV, "") == "1":
        return
    skip = pytest.mark.skip(reason=f"a wall-clock timing test: set {TIMING_ENV}=1 to run it")
    for item in items:
        if "timing" in item.keywords:
            item.add_marker(skip)
