"""Property and edge-case tests of cypool's window pooling forward (max, avg, lp) against the
slow reference in ``reference.py``."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cypool
from reference import (
    MAX_DTYPES,
    avg_result_dtype,
    ref_avg_pool,
    ref_lp_pool,
    ref_max_pool,
)
from support import (
    FLOAT_DTYPES,
    INT_DTYPES,
    ROW_PAIRING_CASES,
    SETTINGS,
    add_window_kwargs,
    draw_window,
    geometry_or_none,
    make_values,
    make_view,
    ref_kwargs,
    seeds,
    trailing_axes,
    examples,
)

# float16 to 1e-3 here (support.RTOL, for the backward and adaptive ops, allows 1e-2)
RTOL = {np.dtype("float16"): 1e-3, np.dtype("float32"): 1e-6, np.dtype("float64"): 1e-12}
MAX_ELEMENTS = 2000


# ================================================================================ strategies


@st.composite
def geometries(draw):
    """A random valid-looking geometry: (shape, call kwargs), the pooled axes in any order."""
    w = draw_window(draw, max_ndim=5, max_stride=4, max_batch=4, spans={1: 12, 2: 6, 3: 3},
                    max_elements=MAX_ELEMENTS)
    kwargs = {}
    # axes: given when they are not the trailing ones, else as drawn
    if draw(st.booleans()) or not trailing_axes(w["axes"], w["ndim"]):
        kwargs["axes"] = tuple(w["axes"])
    add_window_kwargs(draw, kwargs, w)
    kwargs["ceil_mode"] = draw(st.booleans())
    return w["shape"], kwargs


def _geometry_or_expect_error(shape, kwargs, call):
    """True when the reference accepts the geometry; else check that cypool refuses it too
    (``call(x)`` runs the op under test) and return False."""
    if geometry_or_none(shape, kwargs) is not None:
        return True
    with pytest.raises(ValueError):
        call(np.zeros(shape, dtype=np.float64))
    return False


def _make_values(rng, shape, dtype, mode, for_average):
    """Values of the given dtype; mode picks ties / random / special values. For averages: no
    float specials, and integers within +-2**40 (exact in float64 whatever the summation
    order), whose 64-bit special values keep to that range."""
    return make_values(rng, shape, dtype, mode, scale=10, float_specials=not for_average,
                       int_bound=2 ** 40 if for_average else None, int_special_bounds=True,
                       int_special_limits=not for_average or np.dtype(dtype).itemsize <= 4)


views = st.lists(st.sampled_from(["flip", "transpose", "step", "broadcast"]), max_size=2)
large_views = st.lists(st.sampled_from(["flip", "transpose", "step"]), max_size=1)
value_modes = st.sampled_from(["random", "ties", "special"])


def _check_float_close(got, want, dtype, x):
    rtol = RTOL.get(np.dtype(dtype), 1e-12)
    scale = float(np.max(np.abs(x.astype(np.float64)))) if x.size else 1.0
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=rtol * max(scale, 1e-30))


# ================================================================================ properties


@settings(max_examples=examples(1500), **SETTINGS)
@given(geometries(), st.sampled_from(MAX_DTYPES), value_modes, views, seeds)
def test_max_pool_matches_reference(geom, dtype, mode, transforms, seed):
    shape, kwargs = geom
    if not _geometry_or_expect_error(shape, kwargs, lambda x: cypool.max_pool(x, **kwargs)):
        return
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode, False), transforms, rng)
    before = x.copy()
    want_v, want_i = ref_max_pool(x, **ref_kwargs(kwargs))

    got_v, got_i = cypool.max_pool(x, **kwargs, return_indices=True)
    assert got_v.dtype == x.dtype and got_i.dtype == np.int64
    assert got_v.shape == want_v.shape and got_i.shape == want_i.shape
    np.testing.assert_array_equal(got_v, want_v)
    np.testing.assert_array_equal(got_i, want_i)
    # NaN windows: the index must point at a NaN; max without indices gives the same values
    got_only = cypool.max_pool(x, **kwargs)
    np.testing.assert_array_equal(got_only, want_v)
    np.testing.assert_array_equal(x, before)


@settings(max_examples=examples(1200), **SETTINGS)
@given(geometries(), st.sampled_from(MAX_DTYPES), value_modes, views, seeds,
       st.booleans(), st.sampled_from([None, None, 1, 2, 3, 7, -2]))
def test_avg_pool_matches_reference(geom, dtype, mode, transforms, seed, cip, divisor):
    shape, kwargs = geom
    if not _geometry_or_expect_error(shape, kwargs, lambda x: cypool.avg_pool(x, **kwargs)):
        return
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode, True), transforms, rng)
    before = x.copy()
    want = ref_avg_pool(x, **ref_kwargs(kwargs), count_include_pad=cip,
                        divisor_override=divisor)
    got = cypool.avg_pool(x, **kwargs, count_include_pad=cip, divisor_override=divisor)
    assert got.dtype == avg_result_dtype(x.dtype)
    assert got.shape == want.shape
    _check_float_close(got, want, x.dtype, x)
    np.testing.assert_array_equal(x, before)


@settings(max_examples=examples(800), **SETTINGS)
@given(geometries(), st.sampled_from(MAX_DTYPES), st.sampled_from(["random", "ties"]), views,
       seeds, st.sampled_from([1, 2, 3, 4, 0.5, 1.5, 2.5, np.float32(3.0)]))
def test_lp_pool_matches_reference(geom, dtype, mode, transforms, seed, p):
    shape, kwargs = geom
    if not _geometry_or_expect_error(shape, kwargs, lambda x: cypool.lp_pool(x, p, **kwargs)):
        return
    rng = np.random.default_rng(seed)
    x = _make_values(rng, shape, dtype, mode, True)
    if x.dtype.kind in "iu":
        x = np.clip(x, max(np.iinfo(x.dtype).min, -1000), 1000).astype(x.dtype)
    x = make_view(x, transforms, rng)
    before = x.copy()
    want = ref_lp_pool(x, p, **ref_kwargs(kwargs))
    got = cypool.lp_pool(x, p, **kwargs)
    assert got.dtype == avg_result_dtype(x.dtype)
    assert got.shape == want.shape
    assert not np.isnan(got).any()
    _check_float_close(got, want, x.dtype, x)
    np.testing.assert_array_equal(x, before)


# ================================================================================ larger arrays
# Bigger arrays reach the kernels' chunked (long pooled rows), blocked (wide channels-last inner
# axis) and multi-threaded paths; the slow reference then checks a few sampled batch positions.


@st.composite
def large_cases(draw):
    layout = draw(st.sampled_from(["long1d", "channels_first", "channels_last"]))
    if layout == "long1d":
        rank, lead = 1, [draw(st.one_of(st.integers(1, 3), st.integers(16, 60)))]
        spatial_hi, inner = 5000, None
    elif layout == "channels_first":
        rank = draw(st.integers(1, 3))
        lead = [draw(st.integers(1, 4)), draw(st.one_of(st.integers(1, 8), st.integers(16, 64)))]
        spatial_hi, inner = {1: 3000, 2: 70, 3: 16}[rank], None
    else:
        rank = draw(st.integers(1, 3))
        lead = [draw(st.one_of(st.integers(1, 2), st.integers(4, 16)))]
        spatial_hi = {1: 12, 2: 8, 3: 4}[rank]
        inner = draw(st.one_of(st.integers(1, 40), st.sampled_from([64, 100, 257, 1030, 2500])))
    ks, ss, ds, pads, sizes = [], [], [], [], []
    for _ in range(rank):
        k = draw(st.integers(1, 4))
        d = draw(st.integers(1, 3)) if draw(st.integers(0, 2)) == 0 else 1
        e = d * (k - 1) + 1
        pb, pa = draw(st.integers(0, e // 2)), draw(st.integers(0, e // 2))
        lo = max(1, e - pb - pa)
        hi = max(lo, spatial_hi)
        sizes.append(draw(st.one_of(st.integers(lo, lo + 8), st.integers(max(lo, hi // 3), hi))))
        ks.append(k), ss.append(draw(st.integers(1, 4))), ds.append(d), pads.append((pb, pa))
    shape = lead + sizes + ([inner] if inner else [])
    assume(math.prod(shape) <= 300_000)
    axes = tuple(range(len(lead), len(lead) + rank))
    kwargs = dict(kernel_size=tuple(ks), stride=tuple(ss), padding=tuple(pads),
                  dilation=tuple(ds), axes=axes, ceil_mode=draw(st.booleans()))
    return tuple(shape), kwargs


def _sampled_batch_check(x, got, kwargs, ref_fn, compare, rng, samples=3):
    """Compare ``got`` with the reference on a few batch positions of ``x``."""
    axes = kwargs["axes"]
    batch_axes = [a for a in range(x.ndim) if a not in axes]
    sub_kwargs = {k: v for k, v in kwargs.items() if k != "axes"}
    for _ in range(samples):
        idx = [slice(None)] * x.ndim
        for a in batch_axes:
            idx[a] = int(rng.integers(x.shape[a]))
        idx = tuple(idx)
        compare(got, ref_fn(x[idx], **sub_kwargs), idx)


@settings(max_examples=examples(150), **SETTINGS)
@given(large_cases(), st.sampled_from(MAX_DTYPES), value_modes, large_views, seeds)
def test_max_pool_large_arrays(case, dtype, mode, transforms, seed):
    shape, kwargs = case
    if not _geometry_or_expect_error(shape, kwargs, lambda x: cypool.max_pool(x, **kwargs)):
        return
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode, False), transforms, rng)
    v2, i2 = cypool.max_pool(x, **kwargs, return_indices=True, num_threads=2)
    v1 = cypool.max_pool(x, **kwargs, num_threads=1)
    np.testing.assert_array_equal(v1, v2)
    vn = cypool.max_pool(x, **kwargs)
    np.testing.assert_array_equal(vn, v2)

    def compare(got, want, idx):
        np.testing.assert_array_equal(got[0][idx], want[0])
        np.testing.assert_array_equal(got[1][idx], want[1])
    _sampled_batch_check(x, (v2, i2), kwargs, ref_max_pool, compare, rng)


@settings(max_examples=examples(150), **SETTINGS)
@given(large_cases(), st.sampled_from(MAX_DTYPES), st.booleans(),
       st.sampled_from([None, None, 3]), st.sampled_from([None, 1, 1.5, 2]),
       large_views, seeds)
def test_avg_lp_pool_large_arrays(case, dtype, cip, divisor, p, transforms, seed):
    shape, kwargs = case
    op = (lambda x, **kw: cypool.avg_pool(x, **kw, count_include_pad=cip,
                                          divisor_override=divisor)) if p is None else \
        (lambda x, **kw: cypool.lp_pool(x, p, **kw))
    if not _geometry_or_expect_error(shape, kwargs, lambda x: op(x, **kwargs)):
        return
    rng = np.random.default_rng(seed)
    x = _make_values(rng, shape, dtype, "random", True)
    if x.dtype.kind in "iu":
        x = np.clip(x, max(np.iinfo(x.dtype).min, -1000), 1000).astype(x.dtype)
    x = make_view(x, transforms, rng)
    got = op(x, **kwargs, num_threads=2)
    np.testing.assert_array_equal(op(x, **kwargs, num_threads=1), got)
    assert got.dtype == avg_result_dtype(x.dtype)
    if p is None:
        def ref(xs, **kw):
            return ref_avg_pool(xs, **kw, count_include_pad=cip, divisor_override=divisor)
    else:
        def ref(xs, **kw):
            return ref_lp_pool(xs, p, **kw)

    def compare(got, want, idx):
        _check_float_close(got[idx], want, x.dtype, x)
    _sampled_batch_check(x, got, kwargs, ref, compare, rng)


# ================================================================================ edge cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16])
@pytest.mark.parametrize("kernel, stride, padding, dilation", [
    (3, 2, 1, 1), (2, 2, 1, 1), (3, 1, 1, 1), (2, 1, 0, 1), (4, 3, 2, 1), (3, 2, 2, 2),
])
@pytest.mark.parametrize("fill", ["lowest", "two values"])
def test_channels_first_argmax_ties_pick_the_first_tap(dtype, kernel, stride, padding, dilation,
                                                       fill):
    """Channels-first windows reduce their rows first and break ties along axis 2 by flat
    offset: with every tap equal (the lowest value, which padding also holds: -inf for
    floats) or two values, the index is the first maximal in-bounds tap in row-major order."""
    lowest = -np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min
    shape = (2, 3, 9, 11)
    if fill == "lowest":
        x = np.full(shape, lowest, dtype)
    else:
        x = np.random.default_rng(kernel * 10 + stride).integers(0, 2, shape).astype(dtype)
    args = ((kernel, kernel), stride, padding, dilation)
    v, i = cypool.max_pool(x, *args, return_indices=True)
    want_v, want_i = ref_max_pool(x, *args)
    np.testing.assert_array_equal(v, want_v)
    np.testing.assert_array_equal(i, want_i)


@pytest.mark.parametrize(
    "n, k, s, p, expected",
    [(6, 1, 2, 0, 3), (32, 1, 2, 0, 16), (5, 2, 2, 1, 3), (5, 3, 3, 1, 2)],
)
@pytest.mark.parametrize("op", ["max", "avg", "lp"])
def test_ceil_mode_output_size(n, k, s, p, expected, op):
    x = np.arange(n, dtype=np.float64)[None, :]
    if op == "max":
        r = cypool.max_pool(x, (k,), (s,), p, ceil_mode=True)
        np.testing.assert_array_equal(r, ref_max_pool(x, (k,), (s,), p, ceil_mode=True)[0])
    elif op == "avg":
        r = cypool.avg_pool(x, (k,), (s,), p, ceil_mode=True)
        np.testing.assert_allclose(r, ref_avg_pool(x, (k,), (s,), p, ceil_mode=True))
    else:
        r = cypool.lp_pool(x, 2, (k,), (s,), p, ceil_mode=True)
        np.testing.assert_allclose(r, ref_lp_pool(x, 2, (k,), (s,), p, ceil_mode=True))
    assert r.shape == (1, expected)


def test_ceil_mode_avg_divisor_excludes_overhang():
    x = np.array([1, 2, 3, 4, 5], dtype=np.float32)
    np.testing.assert_array_equal(cypool.avg_pool(x, (2,), ceil_mode=True), [1.5, 3.5, 5])
    x = np.array([1, 2, 3, 4, 5, 6], dtype=np.float64)
    # windows start at -1, 1, 3, 5; the last covers 5 (input), 6 (pad), 7 (past the padding)
    np.testing.assert_array_equal(
        cypool.avg_pool(x, (3,), (2,), 1, ceil_mode=True), [1, 3, 5, 3])
    np.testing.assert_array_equal(
        cypool.avg_pool(x, (3,), (2,), 1, ceil_mode=True, count_include_pad=False),
        [1.5, 3, 5, 6])
    np.testing.assert_array_equal(
        cypool.avg_pool(x, (3,), (2,), 1, ceil_mode=True, divisor_override=2), [1.5, 4.5, 7.5, 3])
    # 2-d: the corner window of a 3x3 image pooled 2x2 stride 2 in ceil mode holds one element
    x = np.arange(9, dtype=np.float64).reshape(3, 3)
    np.testing.assert_array_equal(cypool.avg_pool(x, (2, 2), ceil_mode=True),
                                  [[2, 3.5], [6.5, 8]])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_nan_and_neg_inf(dtype):
    nan, inf = np.nan, np.inf
    x = np.array([[1, nan, 3, nan, -inf, -inf, -inf, 0],
                  [-inf, -inf, -inf, -inf, nan, -inf, 2, nan]], dtype=dtype)
    v, i = cypool.max_pool(x, (4,), return_indices=True)
    np.testing.assert_array_equal(v, np.array([[nan, 0], [-inf, nan]], dtype=dtype))
    np.testing.assert_array_equal(i, [[1, 7], [0, 4]])
    v, i = cypool.max_pool(x, (3,), (1,), 1, return_indices=True)
    wv, wi = ref_max_pool(x, (3,), (1,), 1)
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    assert np.isnan(x[0, i[0][np.isnan(v[0])]]).all()
    # 2-d NaN after a larger value in scan order, and a window entirely -inf with padding
    x = np.array([[5, -inf], [nan, -inf]], dtype=dtype)
    v, i = cypool.max_pool(x, (2, 2), return_indices=True)
    np.testing.assert_array_equal(v, np.array([[nan]], dtype=dtype))
    np.testing.assert_array_equal(i, [[2]])
    x = np.full((2, 2), -inf, dtype=dtype)
    v, i = cypool.max_pool(x, (3, 3), (1, 1), 1, return_indices=True)
    np.testing.assert_array_equal(v, np.full((2, 2), -inf, dtype=dtype))
    np.testing.assert_array_equal(i, [[0, 0], [0, 0]])
    v, i = cypool.max_pool(x, (2, 2), (1, 1), ((1, 0), (0, 1)), return_indices=True)
    np.testing.assert_array_equal(i, [[0, 1], [0, 1]])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", [
    ((2, 3, 4, 6), (2, 2, 2), None, (1, 2, 3)),        # 4 rows per window: two pairs
    ((2, 5, 6), (3, 3), None, (1, 2)),                 # 3 rows: a pair and a leftover row
    ((2, 5, 6, 3), (3, 3), (1, 1), (1, 2)),            # channels-last (position, channel) rows
    ((2, 5, 6), (2, 3), (1, 2), (1, 2)),               # 2 rows, stride 2 along the row
])
def test_max_values_nan_in_every_row_position(dtype, case):
    """A NaN in any input row of a window, whichever row of the pairs the values-only kernel
    maxes together, and the leftover row, makes that window NaN (and no other)."""
    shape, kernel, stride, axes = case
    rng = np.random.default_rng(7)
    base = rng.standard_normal(shape).astype(dtype)
    for flat in range(0, base.size, 5):
        x = base.copy()
        x.flat[flat] = np.nan
        got = cypool.max_pool(x, kernel, stride, axes=axes)
        want, _ = ref_max_pool(x, kernel, stride, axes=axes)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", ROW_PAIRING_CASES)
def test_max_indices_nan_in_every_row_position(dtype, case):
    """The argmax kernel reduces contiguous window rows two at a time: a NaN in any row of a
    pair, or in the leftover row, gives that window NaN and the NaN's index."""
    shape, kernel, stride, dilation, axes = case
    base = np.random.default_rng(8).standard_normal(shape).astype(dtype)
    for flat in range(0, base.size, 5):
        x = base.copy()
        x.flat[flat] = np.nan
        got, got_i = cypool.max_pool(x, kernel, stride, 0, dilation, axes=axes, return_indices=True)
        want, want_i = ref_max_pool(x, kernel, stride, 0, dilation, axes)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_i, want_i)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint8])
@pytest.mark.parametrize("case", ROW_PAIRING_CASES)
def test_max_indices_ties_within_row_pairs(dtype, case):
    """Values from {0, 1, 2}: most windows hold their max in several rows, including both rows
    of a pair; the index is always the first in row-major order."""
    shape, kernel, stride, dilation, axes = case
    rng = np.random.default_rng(9)
    for _ in range(20):
        x = rng.integers(0, 3, shape).astype(dtype)
        got, got_i = cypool.max_pool(x, kernel, stride, 0, dilation, axes=axes, return_indices=True)
        want, want_i = ref_max_pool(x, kernel, stride, 0, dilation, axes)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_i, want_i)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_max_integer_padding_with_dtype_min(dtype):
    lo = np.iinfo(dtype).min
    x = np.full((2, 3), lo, dtype=dtype)
    v, i = cypool.max_pool(x, (3, 3), (1, 1), 1, return_indices=True)
    assert v.dtype == dtype
    np.testing.assert_array_equal(v, np.full((2, 3), lo, dtype=dtype))
    np.testing.assert_array_equal(i, [[0, 0, 1], [0, 0, 1]])
    assert ((i >= 0) & (i < x.size)).all()
    x = np.full((1, 4), lo, dtype=dtype)
    v, i = cypool.max_pool(x, (3,), (2,), "same", ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(v, [[lo, lo]])
    np.testing.assert_array_equal(i, ref_max_pool(x, (3,), (2,), "same", ceil_mode=True)[1])


@pytest.mark.parametrize("op", ["max", "avg", "lp"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_empty_batch(op, dtype):
    x = np.zeros((0, 3, 5, 2), dtype=dtype)
    kw = dict(axes=(1, 2), padding=1)
    if op == "max":
        v, i = cypool.max_pool(x, (2, 3), return_indices=True, **kw)
        assert v.shape == i.shape == (0, 2, 2, 2)
        assert v.dtype == dtype and i.dtype == np.int64
        r = cypool.max_pool(x, (2, 3), **kw)
    elif op == "avg":
        r = cypool.avg_pool(x, (2, 3), **kw)
    else:
        r = cypool.lp_pool(x, 2, (2, 3), **kw)
    assert r.shape == (0, 2, 2, 2)
    assert r.dtype == (dtype if op == "max" else avg_result_dtype(dtype))
    # zero-size batch axis after the pooled ones, through an alias
    x = np.zeros((2, 4, 0), dtype=dtype)
    r = cypool.max_pool1d(x, 2, channels_last=True) if op == "max" else \
        cypool.avg_pool1d(x, 2, channels_last=True)
    assert r.shape == (2, 2, 0)


def test_averages_stream_large_results():
    """Non-temporal stores for large averages: 2x2 taps into any result of 16 MiB or more,
    3-tap rows only into the user's out= (a fresh result is zeroed by the OS on first touch)."""
    from cypool._call import STREAM_BYTES, stream_averages

    big, small = np.empty(STREAM_BYTES, np.uint8), np.empty(STREAM_BYTES - 1, np.uint8)
    assert stream_averages(None, big) == (True, False)
    assert stream_averages(big, big) == (True, True)
    assert stream_averages(None, small) == (False, False)
    assert stream_averages(small, small) == (False, False)


def test_read_only_input_is_never_modified():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 6)).astype(np.float32)
    x.setflags(write=False)
    keep = x.copy()
    v, i = cypool.max_pool(x, (3, 2), (2, 2), 1, return_indices=True, axes=(1, 2))
    wv, wi = ref_max_pool(x, (3, 2), (2, 2), 1, axes=(1, 2))
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    np.testing.assert_allclose(cypool.avg_pool(x, (3, 2), axes=(2, 1)),
                               ref_avg_pool(x, (3, 2), axes=(2, 1)), rtol=1e-6)
    np.testing.assert_allclose(cypool.lp_pool(x, 3, (3, 2), axes=(2, 1)),
                               ref_lp_pool(x, 3, (3, 2), axes=(2, 1)), rtol=1e-6)
    np.testing.assert_array_equal(x, keep)
    # float16 and int inputs go through conversions: still untouched
    for arr in (x.astype(np.float16), (x * 10).astype(np.int8)):
        arr.setflags(write=False)
        keep = arr.copy()
        cypool.max_pool(arr, (2, 2))
        cypool.avg_pool(arr, (2, 2))
        cypool.lp_pool(arr, 2, (2, 2))
        np.testing.assert_array_equal(arr, keep)


def test_list_input_is_accepted():
    v = cypool.max_pool([[1, 5, 2, 0]], (2,))
    np.testing.assert_array_equal(v, [[5, 2]])
    np.testing.assert_array_equal(cypool.avg_pool([[1.0, 5, 2, 0]], (2,)), [[3, 1]])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.uint8])
def test_out_argument(dtype):
    rng = np.random.default_rng(1)
    x = _make_values(rng, (2, 9, 8), dtype, "random", True)
    kw = dict(kernel_size=(3, 2), stride=(2, 3), padding=((1, 1), (1, 0)), axes=(1, 2))
    shape = (2, 5, 3)

    # max, values only: a transposed out
    out = np.empty(shape[::-1], dtype=dtype).T
    r = cypool.max_pool(x, **kw, out=out)
    assert r is out
    wv, wi = ref_max_pool(x, **kw)
    np.testing.assert_array_equal(out, wv)

    # max with indices: a (values, indices) pair of strided arrays
    vals = np.empty((2, 10, 3), dtype=dtype)[:, ::2, :]
    idx = np.full((2, 5, 6), -7, dtype=np.int64)[:, :, ::-2]
    rv, ri = cypool.max_pool(x, **kw, return_indices=True, out=(vals, idx))
    assert rv is vals and ri is idx
    np.testing.assert_array_equal(vals, wv)
    np.testing.assert_array_equal(idx, wi)

    # avg / lp into a transposed out of the result dtype
    rdt = avg_result_dtype(dtype)
    out = np.empty((3, 2, 5), dtype=rdt).transpose(1, 2, 0)
    r = cypool.avg_pool(x, **kw, count_include_pad=False, out=out)
    assert r is out
    _check_float_close(out, ref_avg_pool(x, **kw, count_include_pad=False), dtype, x)
    out = np.empty((3, 5, 2), dtype=rdt).T
    r = cypool.lp_pool(x, 2, **kw, out=out)
    assert r is out
    _check_float_close(out, ref_lp_pool(x, 2, **kw), dtype, x)

    # out given to an alias
    out = np.empty((2, 5, 3), dtype=rdt)
    r = cypool.avg_pool2d(x, (3, 2), (2, 3), ((1, 1), (1, 0)), out=out)
    assert r is out


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64, np.uint16])
def test_num_threads_identical(dtype):
    rng = np.random.default_rng(2)
    x = _make_values(rng, (8, 4, 64, 64), dtype, "ties", True)   # >= 256 kB: threaded
    kw = dict(kernel_size=(3, 3), stride=(2, 1), padding=1, ceil_mode=True)
    r1 = cypool.max_pool(x, **kw, return_indices=True, num_threads=1)
    r2 = cypool.max_pool(x, **kw, return_indices=True, num_threads=2)
    rn = cypool.max_pool(x, **kw, return_indices=True)
    for a, b, c in zip(r1, r2, rn):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    a1 = cypool.avg_pool(x, **kw, count_include_pad=False, num_threads=1)
    a2 = cypool.avg_pool(x, **kw, count_include_pad=False, num_threads=2)
    np.testing.assert_array_equal(a1, a2)
    l1 = cypool.lp_pool(x, 2, **kw, num_threads=1)
    l2 = cypool.lp_pool(x, 2, **kw, num_threads=2)
    np.testing.assert_array_equal(l1, l2)
    # spot-check against the reference on one (batch, channel) slice
    wv, wi = ref_max_pool(x[1, 2], **kw)
    np.testing.assert_array_equal(r1[0][1, 2], wv)
    np.testing.assert_array_equal(r1[1][1, 2], wi)


# ================================================================================ aliases


def _alias_input(rank, channels_last, dtype=np.float32, seed=3):
    rng = np.random.default_rng(seed)
    spatial = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}[rank]
    shape = (2, 3) + spatial
    x = _make_values(rng, shape, dtype, "ties", False)
    if channels_last:
        x = np.moveaxis(x, 1, -1)           # N, *spatial, C (a non-contiguous view)
        axes = tuple(range(1, rank + 1))
    else:
        axes = tuple(range(2, rank + 2))
    return x, axes


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_aliases(rank, channels_last):
    fn = getattr(cypool, f"max_pool{rank}d")
    x, axes = _alias_input(rank, channels_last)
    # int kernel_size, default stride
    v = fn(x, 2, channels_last=channels_last)
    np.testing.assert_array_equal(v, ref_max_pool(x, (2,) * rank, axes=axes)[0])
    # every positional argument: stride, padding, dilation, ceil_mode, return_indices
    k = (3, 2, 2)[:rank]
    v, i = fn(x, k, 2, 1, 1, True, True, channels_last=channels_last)
    wv, wi = ref_max_pool(x, k, 2, 1, 1, axes=axes, ceil_mode=True)
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    v, i = fn(x, 2, 1, 0, 2, return_indices=True, channels_last=channels_last)
    wv, wi = ref_max_pool(x, 2, 1, 0, 2, axes=axes)
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    # same as the generic function with explicit axes
    np.testing.assert_array_equal(fn(x, 2, channels_last=channels_last),
                                  cypool.max_pool(x, 2, axes=axes))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_pool_aliases(rank, channels_last):
    fn = getattr(cypool, f"avg_pool{rank}d")
    x, axes = _alias_input(rank, channels_last, np.float64)
    r = fn(x, 2, channels_last=channels_last)
    np.testing.assert_allclose(r, ref_avg_pool(x, (2,) * rank, axes=axes), rtol=1e-12)
    k = (3, 2, 3)[:rank]
    # positional: stride, padding, ceil_mode, count_include_pad, divisor_override
    r = fn(x, k, 2, 1, True, False, None, channels_last=channels_last)
    np.testing.assert_allclose(
        r, ref_avg_pool(x, k, 2, 1, axes=axes, ceil_mode=True, count_include_pad=False),
        rtol=1e-12)
    r = fn(x, k, 2, 1, True, True, 5, channels_last=channels_last)
    np.testing.assert_allclose(
        r, ref_avg_pool(x, k, 2, 1, axes=axes, ceil_mode=True, divisor_override=5), rtol=1e-12)
    r = fn(x, 3, 1, 1, channels_last=channels_last)
    np.testing.assert_allclose(r, ref_avg_pool(x, 3, 1, 1, axes=axes), rtol=1e-12)


def test_alias_on_minimal_ndim():
    x = np.arange(10.0)
    np.testing.assert_array_equal(cypool.max_pool1d(x, 2), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(cypool.avg_pool1d(x, 5), [2, 7])
    x = np.arange(12.0).reshape(6, 2)               # (L, C)
    np.testing.assert_array_equal(cypool.max_pool1d(x, 3, channels_last=True),
                                  [[4, 5], [10, 11]])
    x = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(cypool.max_pool2d(x, 2), [[5, 7], [13, 15]])


# ================================================================================ misc conventions


def test_non_native_byte_order_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 9, 7))
    xs = x.astype(">f8" if np.little_endian else "<f8")
    v, i = cypool.max_pool(xs, (3, 2), (2, 1), 1, return_indices=True)
    wv, wi = ref_max_pool(x, (3, 2), (2, 1), 1)
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    np.testing.assert_allclose(cypool.avg_pool(xs, (3, 2)), ref_avg_pool(x, (3, 2)), rtol=1e-12)
    np.testing.assert_allclose(cypool.lp_pool(xs, 2, (3, 2)), ref_lp_pool(x, 2, (3, 2)),
                               rtol=1e-12)


def test_concurrent_calls_from_python_threads():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((2, 3, 30, 31)).astype(np.float32) for _ in range(8)]
    kw = dict(kernel_size=(3, 3), stride=(2, 2), padding=1)
    serial = [cypool.max_pool(x, **kw, return_indices=True) for x in xs]
    serial_avg = [cypool.avg_pool(x, **kw) for x in xs]
    with ThreadPoolExecutor(4) as ex:
        par = list(ex.map(lambda x: cypool.max_pool(x, **kw, return_indices=True), xs))
        par_avg = list(ex.map(lambda x: cypool.avg_pool(x, **kw), xs))
    for (a, b), (c, d) in zip(serial, par):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    for a, c in zip(serial_avg, par_avg):
        np.testing.assert_array_equal(a, c)


def test_window_sums_do_not_cancel():
    """Each window is summed on its own: a huge value must not leak into later windows (as a
    running add-and-subtract sum would do)."""
    x = np.array([1e20, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    for dtype in (np.float64, np.float32):
        xx = x.astype(dtype)
        for k in (2, 3):
            want = ref_avg_pool(xx, (k,), (1,))
            np.testing.assert_allclose(cypool.avg_pool(xx, (k,), (1,)), want, rtol=1e-6)
            # the same along a batch-inner (channels-last) layout
            y = np.repeat(xx[:, None], 20, axis=1)
            np.testing.assert_allclose(cypool.avg_pool(y, (k,), (1,), axes=(0,)),
                                       np.repeat(want[:, None], 20, axis=1), rtol=1e-6)
            np.testing.assert_allclose(cypool.lp_pool(xx, 1, (k,), (1,)),
                                       ref_lp_pool(xx, 1, (k,), (1,)), rtol=1e-6)
    x = np.array([1e8, 1, -1e8, 1, 3, 5], np.float32)
    np.testing.assert_allclose(cypool.avg_pool(x, (4,), (1,)), [0.5, -24999998, -24999998],
                               rtol=1e-6)


def test_large_window_accuracy():
    """float32 sums accumulate in float64 (float16 at least in float32)."""
    rng = np.random.default_rng(8)
    x = rng.random(100_000).astype(np.float32)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(cypool.avg_pool(x, (x.size,)), [x64.mean()], rtol=1e-6)
    np.testing.assert_allclose(cypool.lp_pool(x, 2, (x.size,)),
                               [np.sqrt((x64 ** 2).sum())], rtol=1e-6)
    np.testing.assert_allclose(cypool.lp_pool(x, 3, (x.size,)),
                               [((x64 ** 3).sum()) ** (1 / 3)], rtol=1e-6)
    h = x.astype(np.float16)
    np.testing.assert_allclose(cypool.avg_pool(h, (h.size,)).astype(np.float64),
                               [h.astype(np.float64).mean()], rtol=1e-3)
    # float32 values too large for a float32 square: the norm is still right
    np.testing.assert_allclose(cypool.lp_pool(np.array([3e30, 4e30], np.float32), 2, (2,)),
                               [5e30], rtol=1e-6)


@pytest.mark.parametrize("op", ["avg", "lp"])
def test_sums_do_not_depend_on_threads_when_the_inner_axis_is_split(op):
    """Regression: contiguous channels-last rows were summed three at a time when a work item
    held the whole inner axis, one at a time when more threads split it into blocks (results
    then differed by an ulp between num_threads=1 and 2)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5, 257))
    kwargs = dict(kernel_size=(3, 2, 3), stride=1, axes=(1, 2, 3))
    pool = cypool.avg_pool if op == "avg" else lambda x, **kw: cypool.lp_pool(x, 2.0, **kw)
    one = pool(x, **kwargs, num_threads=1)
    for threads in (2, 3, 4):
        assert pool(x, **kwargs, num_threads=threads).tobytes() == one.tobytes()
