"""cypool.dask window pooling against in-memory cypool: random geometries, chunkings and
dtypes (hypothesis), exact for max (values and indices) and to rounding for avg and LP."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import MAX_DTYPES
from support import (
    SETTINGS,
    add_window_kwargs,
    draw_chunks,
    draw_window,
    examples,
    geometry_or_none,
    make_values,
    seeds,
)

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import cypool  # noqa: E402
import cypool.dask as cd  # noqa: E402

RTOL = {np.dtype("float16"): 1e-3, np.dtype("float32"): 1e-6}


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@st.composite
def chunked_geometries(draw):
    """(shape, chunks, call kwargs) of a geometry cypool accepts."""
    w = draw_window(draw, max_ndim=4, max_stride=4, max_batch=3, spans={1: 20, 2: 8, 3: 4},
                    max_elements=1500)
    kwargs = {"axes": tuple(w["axes"])}
    add_window_kwargs(draw, kwargs, w)
    kwargs["ceil_mode"] = draw(st.booleans())
    if geometry_or_none(w["shape"], kwargs) is None:
        kwargs = {"axes": tuple(w["axes"]), "kernel_size": 1}
    return w["shape"], draw_chunks(draw, w["shape"]), kwargs


def _assert_close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    rtol = RTOL.get(want.dtype, 1e-12)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=rtol * max(1.0, float(np.nanmax(np.abs(want), initial=0))))


@settings(max_examples=examples(250), **SETTINGS)
@given(chunked_geometries(), st.sampled_from(MAX_DTYPES), st.sampled_from(["random", "ties",
       "special"]), seeds)
def test_max_pool_equals_in_memory(case, dtype, mode, seed):
    shape, chunks, kwargs = case
    x = make_values(np.random.default_rng(seed), shape, dtype, mode, int_special_limits=True)
    dx = da.from_array(x, chunks=chunks)
    values, indices = cd.max_pool(dx, return_indices=True, **kwargs)
    got_values, got_indices = dask.compute(values, indices)
    want_values, want_indices = cypool.max_pool(x, return_indices=True, **kwargs)
    np.testing.assert_array_equal(got_values, want_values)
    np.testing.assert_array_equal(got_indices, want_indices)
    assert got_values.dtype == want_values.dtype and got_indices.dtype == np.int64
    np.testing.assert_array_equal(cd.max_pool(dx, **kwargs).compute(), want_values)


@settings(max_examples=examples(250), **SETTINGS)
@given(chunked_geometries(), st.sampled_from(MAX_DTYPES), seeds, st.booleans(),
       st.sampled_from([None, 1, 3, -2]))
def test_avg_pool_equals_in_memory(case, dtype, seed, count_include_pad, divisor_override):
    shape, chunks, kwargs = case
    x = make_values(np.random.default_rng(seed), shape, dtype, "random", int_bound=2 ** 20)
    dx = da.from_array(x, chunks=chunks)
    got = cd.avg_pool(dx, count_include_pad=count_include_pad,
                      divisor_override=divisor_override, **kwargs).compute()
    want = cypool.avg_pool(x, count_include_pad=count_include_pad,
                           divisor_override=divisor_override, **kwargs)
    _assert_close(got, want)


@settings(max_examples=examples(150), **SETTINGS)
@given(chunked_geometries(), st.sampled_from(MAX_DTYPES), seeds,
       st.sampled_from([1, 2, 2.5, 7]))
def test_lp_pool_equals_in_memory(case, dtype, seed, p):
    shape, chunks, kwargs = case
    x = make_values(np.random.default_rng(seed), shape, dtype, "random", int_bound=100)
    got = cd.lp_pool(da.from_array(x, chunks=chunks), p, **kwargs).compute()
    _assert_close(got, cypool.lp_pool(x, p, **kwargs))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_aliases_equal_in_memory(rank, channels_last):
    x = np.random.default_rng(rank).standard_normal((2, 3) + (9,) * rank).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 2) + (4,) * rank)
    for name in ("max_pool", "avg_pool"):
        alias = f"{name}{rank}d"
        got = getattr(cd, alias)(dx, 3, 2, 1, channels_last=channels_last).compute()
        want = getattr(cypool, alias)(x, 3, 2, 1, channels_last=channels_last)
        np.testing.assert_array_equal(got, want)
    alias = f"max_pool{rank}d"
    _, indices = getattr(cd, alias)(dx, 2, return_indices=True, channels_last=channels_last)
    _, want_indices = getattr(cypool, alias)(x, 2, return_indices=True,
                                             channels_last=channels_last)
    np.testing.assert_array_equal(indices.compute(), want_indices)


def test_results_stay_lazy_and_keep_their_chunks():
    """Nothing runs until compute; a 2x2 pyramid step on even chunks needs no rechunk or halo."""
    calls = []

    def counted(block):
        calls.append(block.shape)
        return block

    x = da.ones((64, 64), chunks=16, dtype=np.float32).map_blocks(
        counted, meta=np.empty((0, 0), np.float32))
    y = cd.avg_pool(x, (2, 2))
    assert isinstance(y, da.Array) and not calls
    assert y.chunks == ((8,) * 4, (8,) * 4)
    np.testing.assert_array_equal(y.compute(), np.ones((32, 32), np.float32))
    assert len(calls) == 16


def test_pyramid_levels_equal_in_memory():
    x = np.random.default_rng(7).random((96, 80), dtype=np.float32)
    level, want = da.from_array(x, chunks=(40, 24)), x
    for _ in range(3):
        level, want = cd.avg_pool(level, (2, 2)), cypool.avg_pool(want, (2, 2))
        np.testing.assert_array_equal(level.compute(), want)


def test_non_native_byte_order_and_numpy_input():
    x = np.arange(60, dtype=">f8").reshape(6, 10)
    got = cd.max_pool(da.from_array(x, chunks=4), (3, 3), 2, 1).compute()
    np.testing.assert_array_equal(got, cypool.max_pool(x, (3, 3), 2, 1))
    np.testing.assert_array_equal(cd.avg_pool(x, (2, 2)).compute(), cypool.avg_pool(x, (2, 2)))


def test_empty_chunks_are_merged():
    x = np.arange(24.0).reshape(2, 12)
    dx = da.from_array(x, chunks=((1, 0, 1), (5, 0, 7, 0)))
    np.testing.assert_array_equal(cd.max_pool(dx, 3, 2, 1, axes=1).compute(),
                                  cypool.max_pool(x, 3, 2, 1, axes=1))
    np.testing.assert_array_equal(cd.avg_pool(dx, 2, axes=1).compute(), cypool.avg_pool(x, 2, axes=1))


def test_empty_batches_give_empty_results():
    x = np.zeros((0, 3, 8, 8), np.float32)
    dx = da.from_array(x)
    assert cd.max_pool(dx, (2, 2)).compute().shape == (0, 3, 4, 4)
    assert cd.avg_pool(dx, (3, 3), 2, 1).compute().shape == (0, 3, 4, 4)
    _, indices = cd.max_pool(dx, (2, 2), return_indices=True)
    assert indices.compute().shape == (0, 3, 4, 4)
    assert cd.global_avg_pool(dx).compute().shape == (0, 3)
    _, indices = cd.global_max_pool(dx, return_indices=True)
    assert indices.compute().shape == (0, 3)
    assert cd.sequence_pool(da.zeros((0, 5, 4))).compute().shape == (0, 4)


def test_tasks_do_not_grow_with_the_number_of_chunks():
    """A chunk task carries its geometry, never the input's graph or whole-axis tables."""
    cloudpickle = pytest.importorskip("cloudpickle")

    def largest_task(chunks):
        x = da.zeros((8192, 8192), chunks=chunks, dtype=np.float32)
        pooled = cd.avg_pool(x, (3, 3), 2, 1, axes=(0, 1))
        graph = dict(pooled.__dask_graph__())
        return max(len(cloudpickle.dumps(task)) for key, task in graph.items()
                   if isinstance(key, tuple) and key[0].startswith("pool_avg"))

    few, many = largest_task(4096), largest_task(128)  # 4 and 4096 chunks
    assert many < 2 * few + 2048, (few, many)
