"""cypool.dask.sequence_pool against in-memory cypool: batch (and feature) chunkings, every
mode, masks, lengths and scores given as NumPy or dask arrays."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import SETTINGS, draw_chunks, examples, seeds

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import cypool  # noqa: E402
import cypool.dask as cd  # noqa: E402


MODES = ["mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
         "attention"]


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@st.composite
def sequence_cases(draw):
    nb = draw(st.integers(0, 2))
    batch = tuple(draw(st.integers(1, 4)) for _ in range(nb))
    shape = batch + (draw(st.integers(1, 6)), draw(st.integers(1, 5)))
    return shape, draw_chunks(draw, shape)


@settings(max_examples=examples(300), **SETTINGS)
@given(sequence_cases(), st.sampled_from(MODES), st.sampled_from(["none", "bool", "float",
       "lengths"]), st.sampled_from([np.float16, np.float32, np.float64]), st.booleans(), seeds)
def test_sequence_pool_equals_in_memory(case, mode, masking, dtype, lazy_extras, seed):
    shape, chunks = case
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(shape).astype(dtype)
    kwargs = {}
    if masking == "bool":
        kwargs["mask"] = rng.random(shape[:-1]) < 0.7
    elif masking == "float":
        kwargs["mask"] = rng.random(shape[:-1]) * (rng.random(shape[:-1]) < 0.7)
    elif masking == "lengths":
        kwargs["lengths"] = rng.integers(0, shape[-2] + 1, shape[:-2])
    if mode == "attention":
        kwargs["scores"] = rng.standard_normal(shape[:-1]).astype(dtype)
    extreme = mode in ("max", "min")
    want = cypool.sequence_pool(h, mode=mode, return_indices=extreme, **kwargs)
    if lazy_extras:
        kwargs = {k: da.from_array(v, chunks=1) for k, v in kwargs.items()}
    got = cd.sequence_pool(da.from_array(h, chunks=chunks), mode=mode, return_indices=extreme,
                           **kwargs)
    if extreme:
        got_values, got_indices = dask.compute(*got)
        np.testing.assert_array_equal(got_values, want[0])
        np.testing.assert_array_equal(got_indices, want[1])
    else:
        got = got.compute()
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_lengths_out_of_range_raise_when_computed():
    h = da.zeros((4, 3, 2), chunks=(2, 3, 2))
    pooled = cd.sequence_pool(h, lengths=np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="lengths"):
        pooled.compute()
