"""cypool.dask global pooling (tree reductions) against in-memory cypool: random shapes,
reduced axes, chunkings, dtypes and tree widths; exact for max (ties and NaN across chunks
included), to rounding for avg."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import MAX_DTYPES
from support import SETTINGS, draw_chunks, examples, make_values, seeds

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import cypool  # noqa: E402
import cypool.dask as cd  # noqa: E402



@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@st.composite
def reductions(draw):
    """(shape, chunks, axes, split_every): any axes of a 1-4 d array (None needs 3 dims)."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    if ndim >= 3 and draw(st.booleans()):
        axes = None
    else:
        axes = tuple(draw(st.permutations(range(ndim)))[: draw(st.integers(1, ndim))])
        axes = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    return shape, draw_chunks(draw, shape), axes, draw(st.sampled_from([2, 3, 4]))


@settings(max_examples=examples(300), **SETTINGS)
@given(reductions(), st.sampled_from(MAX_DTYPES), st.sampled_from(["random", "ties", "special"]),
       st.booleans(), seeds)
def test_global_max_pool_equals_in_memory(case, dtype, mode, keepdims, seed):
    shape, chunks, axes, split_every = case
    x = make_values(np.random.default_rng(seed), shape, dtype, mode, int_special_limits=True)
    dx = da.from_array(x, chunks=chunks)
    with dask.config.set({"split_every": split_every}):
        values, indices = cd.global_max_pool(dx, axes=axes, keepdims=keepdims,
                                             return_indices=True)
        got_values, got_indices = dask.compute(values, indices)
        only_values = cd.global_max_pool(dx, axes=axes, keepdims=keepdims).compute()
    want_values, want_indices = cypool.global_max_pool(x, axes=axes, keepdims=keepdims,
                                                       return_indices=True)
    np.testing.assert_array_equal(got_values, want_values)
    np.testing.assert_array_equal(got_indices, want_indices)
    np.testing.assert_array_equal(only_values, want_values)
    assert got_values.dtype == want_values.dtype and got_indices.dtype == np.int64


@settings(max_examples=examples(300), **SETTINGS)
@given(reductions(), st.sampled_from(MAX_DTYPES), st.booleans(), seeds)
def test_global_avg_pool_equals_in_memory(case, dtype, keepdims, seed):
    shape, chunks, axes, split_every = case
    x = make_values(np.random.default_rng(seed), shape, dtype, "random", int_bound=2 ** 40)
    with dask.config.set({"split_every": split_every}):
        got = cd.global_avg_pool(da.from_array(x, chunks=chunks), axes=axes,
                                 keepdims=keepdims).compute()
    want = cypool.global_avg_pool(x, axes=axes, keepdims=keepdims)
    assert got.dtype == want.dtype and got.shape == want.shape
    rtol = {np.dtype("float16"): 1e-3, np.dtype("float32"): 1e-6}.get(want.dtype, 1e-12)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=rtol * float(np.abs(x.astype(np.float64)).max()))


def test_partial_sums_are_float64():
    """Chunks that cancel: float32 partial sums would lose the small total entirely."""
    x = np.zeros((1, 1, 4), np.float32)
    x[0, 0] = [1e8, 1.0, -1e8, 3.0]
    got = cd.global_avg_pool(da.from_array(x, chunks=(1, 1, 1))).compute()
    np.testing.assert_array_equal(got, np.array([[1.0]], np.float32))
    np.testing.assert_array_equal(got, cypool.global_avg_pool(x))


def test_ties_and_nan_pick_the_first_position_across_chunks():
    x = np.array([[[1.0, 5.0, 2.0, 5.0, np.nan, 0.0, np.nan]]])
    for chunks in [1, 2, 3, 7]:
        values, indices = cd.global_max_pool(da.from_array(x, chunks=chunks), return_indices=True)
        assert np.isnan(values.compute()[0, 0]) and indices.compute()[0, 0] == 4
    ties = np.array([[[1, 5, 2, 5, 5]]], np.int8)
    _, indices = cd.global_max_pool(da.from_array(ties, chunks=1), return_indices=True)
    assert indices.compute()[0, 0] == 1


def test_empty_chunks_of_reduced_axes_are_skipped():
    x = np.arange(24.0).reshape(1, 2, 12)
    dx = da.from_array(x, chunks=((1,), (2,), (5, 0, 7, 0)))
    np.testing.assert_array_equal(cd.global_avg_pool(dx).compute(), cypool.global_avg_pool(x))
    values, indices = cd.global_max_pool(dx, return_indices=True)
    np.testing.assert_array_equal(indices.compute(), [[11, 11]])
