"""The README's Python examples run as written (in order, sharing names, as a reader would)."""

import importlib.util
import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_examples_run():
    if not os.path.exists(README):
        pytest.skip("README.md is not shipped with the tests (installed-wheel run)")
    with open(README) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    has_dask = importlib.util.find_spec("dask") is not None
    for block in blocks:
        if "import dask" in block and not has_dask:
            continue  # the optional extra is not installed (e.g. the installed-wheel runs)
        exec(compile(block, README, "exec"), namespace)
    assert namespace["grad_x"].shape == namespace["x"].shape
    assert namespace["emb"].shape == (32, 384)
    if has_dask:
        assert namespace["level"].shape == (256, 256)
