"""Tests of cypool's adaptive and global pooling (forward and backward) against the slow
references in ``reference_backward.py``, finite differences and torch."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cypool
from reference import MAX_DTYPES, avg_result_dtype
from reference_backward import (
    ref_adaptive_avg_pool,
    ref_adaptive_avg_pool_backward,
    ref_adaptive_bins,
    ref_adaptive_geometry,
    ref_adaptive_max_pool,
    ref_adaptive_max_pool_backward,
    ref_global_avg_pool,
    ref_global_avg_pool_backward,
    ref_global_max_pool,
    ref_global_max_pool_backward,
)
from support import (
    BAD_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    RTOL,
    SETTINGS,
    TORCH_TOL,
    assert_close,
    assert_message,
    draw_pooled_axes,
    layout_axes,
    make_grad,
    make_values,
    make_view,
    numgrad,
    seeds,
    to_layout,
    torch_grad,
    trailing_axes,
    views,
    examples,
)

MAX_ELEMENTS = 400


# ================================================================================ helpers


def _make_values(rng, shape, dtype, mode, for_average=False):
    """support.make_values; for averages, integers within +-1000 and no integer specials."""
    return make_values(rng, shape, dtype, mode, int_bound=1000 if for_average else None,
                       int_special_limits=not for_average)


# ================================================================================ adaptive


@st.composite
def adaptive_cases(draw):
    """(shape, output_size, axes) with 1-3 pooled axes anywhere; output sizes below, equal to
    and above the input size, None entries; int output_size when axes are given."""
    ndim, axes = draw_pooled_axes(draw, 4)
    naxes = len(axes)
    span = {1: 14, 2: 8, 3: 5}[naxes]
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    osizes = []
    for a in axes:
        n = draw(st.integers(1, span))
        shape[a] = n
        osizes.append(None if draw(st.integers(0, 6)) == 0 else draw(st.integers(1, n + 2)))
    assume(math.prod(shape) <= MAX_ELEMENTS)
    use_axes = not trailing_axes(axes, ndim) or draw(st.booleans())
    if use_axes and None not in osizes and len(set(osizes)) == 1 and draw(st.booleans()):
        output_size = osizes[0]
    else:
        output_size = tuple(osizes)
    return tuple(shape), output_size, (tuple(axes) if use_axes else None)


@settings(max_examples=examples(250), **SETTINGS)
@given(adaptive_cases(), st.sampled_from(MAX_DTYPES), views, seeds)
def test_adaptive_avg_pool_matches_reference(case, dtype, xviews, seed):
    shape, output_size, axes = case
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, "random", True), xviews, rng)
    x0 = x.copy()
    want = ref_adaptive_avg_pool(x.astype(np.float64), output_size, axes)
    mag = ref_adaptive_avg_pool(np.abs(x.astype(np.float64)), output_size, axes)
    got = cypool.adaptive_avg_pool(x, output_size, axes=axes)
    assert_close(got, want, mag, avg_result_dtype(x.dtype))
    np.testing.assert_array_equal(x, x0)


@settings(max_examples=examples(250), **SETTINGS)
@given(adaptive_cases(), st.sampled_from(MAX_DTYPES),
       st.sampled_from(["random", "ties", "special"]), views, seeds)
def test_adaptive_max_pool_matches_reference(case, dtype, mode, xviews, seed):
    shape, output_size, axes = case
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode), xviews, rng)
    x0 = x.copy()
    wv, wi = ref_adaptive_max_pool(x, output_size, axes)
    v, i = cypool.adaptive_max_pool(x, output_size, axes=axes, return_indices=True)
    assert v.dtype == x.dtype and i.dtype == np.int64
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    v_only = cypool.adaptive_max_pool(x, output_size, axes=axes)
    assert isinstance(v_only, np.ndarray)
    np.testing.assert_array_equal(v_only, wv)
    np.testing.assert_array_equal(x, x0)


@settings(max_examples=examples(250), **SETTINGS)
@given(adaptive_cases(), st.sampled_from(FLOAT_DTYPES), views, seeds,
       st.sampled_from(["none", "as_given", "sorted"]))
def test_adaptive_avg_pool_backward_matches_reference(case, dtype, gviews, seed, axes_mode):
    shape, output_size, axes = case
    geo = ref_adaptive_geometry(shape, output_size, axes)
    rng = np.random.default_rng(seed)
    g = make_grad(rng, geo.out_shape, dtype, gviews)
    g0 = g.copy()
    if axes_mode == "none":
        bw_axes = None                    # the axes where the shapes differ
    elif axes_mode == "as_given":
        bw_axes = axes if axes is not None else geo.axes
    else:
        bw_axes = geo.axes
    g64 = g.astype(np.float64)
    want = ref_adaptive_avg_pool_backward(g64, shape, geo.axes)
    mag = ref_adaptive_avg_pool_backward(np.abs(g64), shape, geo.axes)
    got = cypool.adaptive_avg_pool_backward(g, shape, axes=bw_axes)
    assert_close(got, want, mag, dtype)
    np.testing.assert_array_equal(g, g0)


@settings(max_examples=examples(250), **SETTINGS)
@given(adaptive_cases(), st.sampled_from(FLOAT_DTYPES),
       st.sampled_from(["random", "ties", "special"]), views, views, seeds, st.booleans())
def test_adaptive_max_pool_backward_matches_reference(case, dtype, mode, xviews, gviews, seed,
                                                      pass_indices):
    shape, output_size, axes = case
    geo = ref_adaptive_geometry(shape, output_size, axes)
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode), [t for t in xviews
                                                          if t != "broadcast"], rng)
    g = make_grad(rng, geo.out_shape, dtype, gviews)
    x0, g0 = x.copy(), g.copy()
    g64 = g.astype(np.float64)
    want = ref_adaptive_max_pool_backward(g64, x, output_size, axes)
    mag = ref_adaptive_max_pool_backward(np.abs(g64), x, output_size, axes)
    got = cypool.adaptive_max_pool_backward(g, x, output_size, axes=axes)
    assert_close(got, want, mag, dtype)
    if pass_indices:
        _, idx = ref_adaptive_max_pool(x, output_size, axes)
        got_i = cypool.adaptive_max_pool_backward(g, x, output_size, axes=axes, indices=idx)
        assert_close(got_i, want, mag, dtype)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("xdtype", INT_DTYPES)
def test_adaptive_max_pool_backward_integer_input(xdtype):
    rng = np.random.default_rng(20)
    x = _make_values(rng, (2, 7, 5), xdtype, "ties")
    g = rng.standard_normal((2, 3, 2)).astype(np.float32)
    got = cypool.adaptive_max_pool_backward(g, x, (3, 2))
    g64 = g.astype(np.float64)
    assert_close(got, ref_adaptive_max_pool_backward(g64, x, (3, 2)),
                 ref_adaptive_max_pool_backward(np.abs(g64), x, (3, 2)), np.float32)


BIN_CASES = [(10, 3), (224, 13), (5, 3), (7, 7)]


@pytest.mark.parametrize("n, o", BIN_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_explicit_bins(n, o, dtype):
    bins = ref_adaptive_bins(n, o)
    assert bins == [(math.floor(i * n / o), math.ceil((i + 1) * n / o)) for i in range(o)]
    # on arange, the max of a bin is its last element, the mean the middle of its ends
    x = np.tile(np.arange(n, dtype=dtype), (2, 3, 1))
    v, i = cypool.adaptive_max_pool(x, (o,), return_indices=True)
    np.testing.assert_array_equal(i[1, 2], [b - 1 for _, b in bins])
    np.testing.assert_array_equal(v[0, 0], [b - 1 for _, b in bins])
    a = cypool.adaptive_avg_pool(x, (o,))
    np.testing.assert_allclose(a[1, 1], [(s + b - 1) / 2 for s, b in bins], rtol=RTOL[
        np.dtype(dtype)])
    # reversed: the max is the first element of each bin
    v, i = cypool.adaptive_max_pool(x[..., ::-1], o, axes=(-1,), return_indices=True)
    np.testing.assert_array_equal(i[0, 1], [s for s, _ in bins])
    # backward: a unit gradient spreads 1/binsize over each bin
    g = np.ones((2, 3, o), dtype=dtype)
    want = np.zeros(n)
    for s, b in bins:
        want[s:b] += 1.0 / (b - s)
    got = cypool.adaptive_avg_pool_backward(g, (2, 3, n))
    np.testing.assert_allclose(got[1, 0], want, rtol=RTOL[np.dtype(dtype)])
    got = cypool.adaptive_max_pool_backward(g, x, (o,))
    want = np.zeros(n)
    for _, b in bins:
        want[b - 1] += 1
    np.testing.assert_array_equal(got[0, 2], want)
    # 2-d, channels-last, against the references
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, n, 5, 3)).astype(dtype)
    kw = dict(axes=(1, 2))
    assert_close(cypool.adaptive_avg_pool(x, (o, 2), **kw),
                 ref_adaptive_avg_pool(x.astype(np.float64), (o, 2), **kw),
                 ref_adaptive_avg_pool(np.abs(x.astype(np.float64)), (o, 2), **kw), dtype)
    v, i = cypool.adaptive_max_pool(x, (o, 2), **kw, return_indices=True)
    wv, wi = ref_adaptive_max_pool(x, (o, 2), **kw)
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    g = rng.standard_normal(wv.shape).astype(dtype)
    g64 = g.astype(np.float64)
    assert_close(cypool.adaptive_avg_pool_backward(g, x.shape, **kw),
                 ref_adaptive_avg_pool_backward(g64, x.shape, **kw),
                 ref_adaptive_avg_pool_backward(np.abs(g64), x.shape, **kw), dtype)
    assert_close(cypool.adaptive_max_pool_backward(g, x, (o, 2), **kw),
                 ref_adaptive_max_pool_backward(g64, x, (o, 2), **kw),
                 ref_adaptive_max_pool_backward(np.abs(g64), x, (o, 2), **kw), dtype)


def test_adaptive_output_size_none_and_int():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 6, 5))
    np.testing.assert_allclose(cypool.adaptive_avg_pool(x, (None, 2)),
                               ref_adaptive_avg_pool(x, (None, 2)), rtol=1e-12)
    np.testing.assert_allclose(cypool.adaptive_avg_pool(x, 3, axes=(1, 2)),
                               ref_adaptive_avg_pool(x, (3, 3)), rtol=1e-12)
    v = cypool.adaptive_max_pool(x, 1, axes=(0,))
    np.testing.assert_array_equal(v, x.max(axis=0, keepdims=True))
    # pooling an axis to its own size is the identity
    np.testing.assert_array_equal(cypool.adaptive_avg_pool(x, (6, 5)), x)
    g = rng.standard_normal((2, 6, 5))
    np.testing.assert_array_equal(cypool.adaptive_avg_pool_backward(g, (2, 6, 5)), g)


@pytest.mark.parametrize("shape, osize, axes", [
    ((10,), (3,), None), ((5,), (3,), None), ((7,), (7,), None), ((3,), (5,), None),
    ((2, 7, 5), (3, 2), None), ((4, 3, 2), (2, None, 1), None), ((5, 2, 4), (2, 3), (2, 0)),
    ((3, 3, 3), 2, (0, 1, 2)),
])
def test_adaptive_avg_pool_backward_finite_differences(shape, osize, axes):
    rng = np.random.default_rng(22)
    x = rng.standard_normal(shape)
    out = cypool.adaptive_avg_pool(x, osize, axes=axes)
    g = rng.standard_normal(out.shape)
    want = numgrad(lambda xx: cypool.adaptive_avg_pool(xx, osize, axes=axes), x, g, 1e-3)
    np.testing.assert_allclose(cypool.adaptive_avg_pool_backward(g, shape), want, rtol=1e-8,
                               atol=1e-9)
    geo = ref_adaptive_geometry(shape, osize, axes)
    np.testing.assert_allclose(cypool.adaptive_avg_pool_backward(g, shape, axes=geo.axes), want,
                               rtol=1e-8, atol=1e-9)


# ================================================================================ adaptive vs torch


def _check_vs_torch(x, out_hw, cl, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    dtype = x.dtype.type
    rng = np.random.default_rng(seed)
    axes = layout_axes(2, cl)
    xv = to_layout(x, cl)
    t = torch.tensor(x.astype(np.float64))          # float32 values, exact float64 results
    ta = F.adaptive_avg_pool2d(t, out_hw).numpy()
    got = cypool.adaptive_avg_pool(xv, out_hw, axes=axes)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, to_layout(ta, cl), **TORCH_TOL[dtype])
    tv, ti = F.adaptive_max_pool2d(t, out_hw, return_indices=True)
    v, i = cypool.adaptive_max_pool(xv, out_hw, axes=axes, return_indices=True)
    np.testing.assert_array_equal(v, to_layout(tv.numpy(), cl))
    np.testing.assert_array_equal(i, to_layout(ti.numpy(), cl))
    g = rng.standard_normal(ta.shape).astype(dtype)
    _, want = torch_grad(lambda tt: F.adaptive_avg_pool2d(tt, out_hw), x, g)
    got = cypool.adaptive_avg_pool_backward(to_layout(g, cl), xv.shape, axes=axes)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])
    got = cypool.adaptive_avg_pool_backward(to_layout(g, cl), xv.shape)   # axes from the shapes
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])
    _, want = torch_grad(lambda tt: F.adaptive_max_pool2d(tt, out_hw), x, g)
    got = cypool.adaptive_max_pool_backward(to_layout(g, cl), xv, out_hw, axes=axes)
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])
    got = cypool.adaptive_max_pool_backward(to_layout(g, cl), xv, out_hw, axes=axes,
                                            indices=to_layout(ti.numpy(), cl))
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])


@settings(max_examples=examples(120), **SETTINGS)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 14), st.integers(1, 14),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans(), seeds)
def test_adaptive_2d_vs_torch(h, w, oh, ow, dtype, cl, ties, seed):
    rng = np.random.default_rng(seed)
    shape = (rng.integers(1, 3), rng.integers(1, 4), h, w)
    if ties:
        x = rng.integers(-2, 3, shape).astype(dtype)       # torch: first position wins too
    else:
        x = rng.permutation(math.prod(shape)).reshape(shape).astype(dtype)
    _check_vs_torch(x, (oh, ow), cl, seed)


@pytest.mark.parametrize("n, o", BIN_CASES)
@pytest.mark.parametrize("cl", [False, True])
def test_adaptive_bins_vs_torch(n, o, cl):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, 3, n, 7)).astype(np.float32)
    _check_vs_torch(x, (o, 3), cl, 24)
    _check_vs_torch(x.astype(np.float64), (o, 7), cl, 25)


def test_adaptive_1d_vs_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(26)
    for n, o in BIN_CASES + [(3, 5)]:
        x = rng.standard_normal((2, 3, n))
        np.testing.assert_allclose(cypool.adaptive_avg_pool(x, (o,)),
                                   F.adaptive_avg_pool1d(torch.tensor(x), o).numpy(),
                                   rtol=1e-12)
        tv, ti = F.adaptive_max_pool1d(torch.tensor(x), o, return_indices=True)
        v, i = cypool.adaptive_max_pool(x, (o,), return_indices=True)
        np.testing.assert_array_equal(v, tv.numpy())
        np.testing.assert_array_equal(i, ti.numpy())


# ================================================================================ global


@st.composite
def global_cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 5)) for _ in range(ndim)]
    assume(math.prod(shape) <= 300)
    if ndim >= 3 and draw(st.booleans()):
        axes = None
    else:
        k = draw(st.integers(1, ndim))
        axes = list(draw(st.permutations(range(ndim)))[:k])
        axes = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    return tuple(shape), axes, draw(st.booleans())


@settings(max_examples=examples(250), **SETTINGS)
@given(global_cases(), st.sampled_from(MAX_DTYPES), views, seeds)
def test_global_avg_pool_matches_reference(case, dtype, xviews, seed):
    shape, axes, keepdims = case
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, "random", True), xviews, rng)
    x0 = x.copy()
    want = ref_global_avg_pool(x.astype(np.float64), axes, keepdims)
    mag = ref_global_avg_pool(np.abs(x.astype(np.float64)), axes, keepdims)
    got = cypool.global_avg_pool(x, axes=axes, keepdims=keepdims)
    assert_close(got, want, mag, avg_result_dtype(x.dtype))
    np.testing.assert_array_equal(x, x0)


@settings(max_examples=examples(250), **SETTINGS)
@given(global_cases(), st.sampled_from(MAX_DTYPES),
       st.sampled_from(["random", "ties", "special"]), views, seeds)
def test_global_max_pool_matches_reference(case, dtype, mode, xviews, seed):
    shape, axes, keepdims = case
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode), xviews, rng)
    wv, wi = ref_global_max_pool(x, axes, keepdims)
    v, i = cypool.global_max_pool(x, axes=axes, keepdims=keepdims, return_indices=True)
    v, i = np.asarray(v), np.asarray(i)
    assert v.dtype == x.dtype and i.dtype == np.int64
    assert v.shape == wv.shape and i.shape == wi.shape
    np.testing.assert_array_equal(v, wv)
    np.testing.assert_array_equal(i, wi)
    np.testing.assert_array_equal(cypool.global_max_pool(x, axes=axes, keepdims=keepdims), wv)


@settings(max_examples=examples(200), **SETTINGS)
@given(global_cases(), st.sampled_from(FLOAT_DTYPES),
       st.sampled_from(["random", "ties", "special"]), views, views, seeds, st.booleans())
def test_global_backward_matches_reference(case, dtype, mode, xviews, gviews, seed,
                                           pass_indices):
    shape, axes, keepdims = case
    rng = np.random.default_rng(seed)
    x = make_view(_make_values(rng, shape, dtype, mode), [t for t in xviews
                                                          if t != "broadcast"], rng)
    out_shape = ref_global_max_pool(x, axes, keepdims)[0].shape
    g = make_grad(rng, out_shape, dtype, gviews)
    x0, g0 = x.copy(), g.copy()
    g64 = g.astype(np.float64)
    want = ref_global_avg_pool_backward(g64, shape, axes, keepdims)
    mag = ref_global_avg_pool_backward(np.abs(g64), shape, axes, keepdims)
    got = cypool.global_avg_pool_backward(g, shape, axes=axes, keepdims=keepdims)
    assert_close(got, want, mag, dtype)
    want = ref_global_max_pool_backward(g64, x, axes, keepdims)
    mag = ref_global_max_pool_backward(np.abs(g64), x, axes, keepdims)
    got = cypool.global_max_pool_backward(g, x, axes=axes, keepdims=keepdims)
    assert_close(got, want, mag, dtype)
    if pass_indices:
        _, idx = ref_global_max_pool(x, axes, keepdims)
        got = cypool.global_max_pool_backward(g, x, axes=axes, keepdims=keepdims, indices=idx)
        assert_close(got, want, mag, dtype)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


def test_global_float32_accuracy():
    """float32 sums accumulate in float64: agree with a float64 reference to 1e-6 relative."""
    rng = np.random.default_rng(27)
    x = (1000 + rng.random((2, 3, 300, 300))).astype(np.float32)
    want = x.astype(np.float64).mean(axis=(2, 3))
    got = cypool.global_avg_pool(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    xt = x.transpose(0, 2, 3, 1)                     # channels-last view, axes=(1, 2)
    np.testing.assert_allclose(cypool.global_avg_pool(xt, axes=(1, 2)), want, rtol=1e-6)
    small = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(cypool.global_avg_pool(small, axes=(0, 2, 3)),
                               ref_global_avg_pool(small.astype(np.float64), (0, 2, 3)),
                               rtol=1e-6, atol=1e-6 * np.abs(small).max())
    h = x[:, :, :100, :100].astype(np.float16)
    np.testing.assert_allclose(cypool.global_avg_pool(h).astype(np.float64),
                               h.astype(np.float64).mean(axis=(2, 3)), rtol=1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool_every_line_length(dtype):
    """Contiguous lines of 1 to 40 values: every split of the SIMD line sums into sixteen-value
    blocks, an eight-value block and a scalar tail, against the loop reference."""
    rng = np.random.default_rng(29)
    for n in range(1, 41):
        x = (rng.standard_normal((2, 3, n)) * 10.0 ** rng.integers(-3, 4, (2, 3, n))).astype(dtype)
        want = ref_global_avg_pool(x.astype(np.float64), None)
        mag = ref_global_avg_pool(np.abs(x.astype(np.float64)), None)
        assert_close(cypool.global_avg_pool(x), want, mag, dtype)


def test_global_keepdims():
    rng = np.random.default_rng(28)
    x = rng.standard_normal((2, 3, 4, 5))
    r = cypool.global_avg_pool(x, keepdims=True)
    assert r.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(r, x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    r = cypool.global_avg_pool(x, axes=(0, 2), keepdims=True)
    assert r.shape == (1, 3, 1, 5)
    np.testing.assert_allclose(r, x.mean(axis=(0, 2), keepdims=True), rtol=1e-12)
    v, i = cypool.global_max_pool(x, axes=(-1,), keepdims=True, return_indices=True)
    assert v.shape == i.shape == (2, 3, 4, 1)
    np.testing.assert_array_equal(v, x.max(axis=-1, keepdims=True))
    np.testing.assert_array_equal(i, x.argmax(axis=-1)[..., None])
    assert cypool.global_max_pool(x).shape == (2, 3)
    g = rng.standard_normal((2, 3, 1, 1))
    np.testing.assert_allclose(cypool.global_avg_pool_backward(g, x.shape, keepdims=True),
                               np.broadcast_to(g / 20, x.shape), rtol=1e-12)
    np.testing.assert_allclose(cypool.global_avg_pool_backward(g[:, :, 0, 0], x.shape),
                               np.broadcast_to(g / 20, x.shape), rtol=1e-12)
    got = cypool.global_max_pool_backward(g, x, keepdims=True)
    np.testing.assert_allclose(got, ref_global_max_pool_backward(g, x, keepdims=True),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.float16])
def test_global_max_indices_channels_last(dtype):
    rng = np.random.default_rng(29)
    n, h, w, c = 2, 5, 7, 3
    x = _make_values(rng, (n, h, w, c), dtype, "ties")
    v, i = cypool.global_max_pool(x, axes=(1, 2), return_indices=True)
    assert v.shape == i.shape == (n, c)
    flat = x.reshape(n, h * w, c)
    np.testing.assert_array_equal(i, flat.argmax(axis=1))          # argmax: first of the ties
    np.testing.assert_array_equal(v, flat.max(axis=1))
    # i = h * W + w
    for b in range(n):
        for ch in range(c):
            hh, ww = divmod(int(i[b, ch]), w)
            assert x[b, hh, ww, ch] == v[b, ch]
    # a channels-last view of an NCHW array
    xc = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    v2, i2 = cypool.global_max_pool(np.moveaxis(xc, 1, -1), axes=(1, 2), return_indices=True)
    np.testing.assert_array_equal(i2, i)
    v3, i3 = cypool.global_max_pool(xc, return_indices=True)
    np.testing.assert_array_equal(i3, i)
    np.testing.assert_array_equal(v3, v)
    if np.dtype(dtype).kind == "f":
        g = rng.standard_normal((n, c)).astype(dtype)
        got = cypool.global_max_pool_backward(g, x, axes=(1, 2))
        np.testing.assert_array_equal(got, ref_global_max_pool_backward(g, x, axes=(1, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 96])  # one region per work item, or batches of regions
def test_global_max_pool_signed_zero_max_keeps_the_first(dtype, channels_last, num_threads,
                                                          batch):
    """A region whose max is zero returns the first zero's sign, as the row-major scan does
    (the channels-first values path reduces ordered integer keys, where -0 < +0)."""
    x = np.full((batch, 4, 3, 3), -1.0, dtype)
    x[:, 0::2, 0, 1], x[:, 0::2, 2, 2] = -0.0, 0.0
    x[:, 1::2, 0, 1], x[:, 1::2, 2, 2] = 0.0, -0.0
    axes = (2, 3)
    if channels_last:
        x, axes = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), (1, 2)
    values = cypool.global_max_pool(x, axes=axes, num_threads=num_threads)
    pair = cypool.global_max_pool(x, axes=axes, return_indices=True, num_threads=num_threads)
    for v in (values, pair[0]):
        assert (v == 0).all()
        np.testing.assert_array_equal(np.signbit(v), np.tile([True, False], (batch, 2)))
    np.testing.assert_array_equal(pair[1], 1)


def test_global_vs_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(30)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
        t = torch.tensor(x)
        np.testing.assert_allclose(cypool.global_avg_pool(x),
                                   F.adaptive_avg_pool2d(t, 1).numpy()[:, :, 0, 0],
                                   **TORCH_TOL[dtype])
        tv, ti = F.adaptive_max_pool2d(t, 1, return_indices=True)
        v, i = cypool.global_max_pool(x, keepdims=True, return_indices=True)
        np.testing.assert_array_equal(v, tv.numpy())
        np.testing.assert_array_equal(i, ti.numpy())
        g = rng.standard_normal((2, 3)).astype(dtype)
        _, want = torch_grad(lambda tt: tt.mean(dim=(2, 3)), x, g)
        np.testing.assert_allclose(cypool.global_avg_pool_backward(g, x.shape), want,
                                   **TORCH_TOL[dtype])
        _, want = torch_grad(lambda tt: tt.amax(dim=(2, 3)), x, g)
        np.testing.assert_allclose(cypool.global_max_pool_backward(g, x), want, **TORCH_TOL[dtype])


# ================================================================================ threads, empty


BIG = (4, 8, 64, 64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_num_threads_bit_identical(dtype):
    rng = np.random.default_rng(31)
    x = rng.integers(-3, 4, BIG).astype(dtype)
    osize = (7, 5)
    ga = rng.standard_normal((4, 8, 7, 5)).astype(dtype)
    gg = rng.standard_normal((4, 8)).astype(dtype)
    res = {}
    for nt in (1, 2, None):
        res[nt] = [
            cypool.adaptive_avg_pool(x, osize, num_threads=nt),
            *cypool.adaptive_max_pool(x, osize, return_indices=True, num_threads=nt),
            cypool.adaptive_avg_pool_backward(ga, BIG, num_threads=nt),
            cypool.adaptive_max_pool_backward(ga, x, osize, num_threads=nt),
            cypool.global_avg_pool(x, num_threads=nt),
            *cypool.global_max_pool(x, return_indices=True, num_threads=nt),
            cypool.global_avg_pool_backward(gg, BIG, num_threads=nt),
            cypool.global_max_pool_backward(gg, x, num_threads=nt),
        ]
    for a, b, c in zip(res[1], res[2], res[None]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # spot-check one (batch, channel) slice against the references
    s = (2, 5)
    avg, mv, mi, avg_bw, max_bw, gavg, gmv, gmi, gavg_bw, gmax_bw = res[1]
    x64 = x[s].astype(np.float64)
    assert_close(avg[s], ref_adaptive_avg_pool(x64, osize), ref_adaptive_avg_pool(
        np.abs(x64), osize), dtype)
    wv, wi = ref_adaptive_max_pool(x[s], osize)
    np.testing.assert_array_equal(mv[s], wv)
    np.testing.assert_array_equal(mi[s], wi)
    g64 = ga[s].astype(np.float64)
    assert_close(avg_bw[s], ref_adaptive_avg_pool_backward(g64, (64, 64)),
                 ref_adaptive_avg_pool_backward(np.abs(g64), (64, 64)), dtype)
    assert_close(max_bw[s], ref_adaptive_max_pool_backward(g64, x[s], osize),
                 ref_adaptive_max_pool_backward(np.abs(g64), x[s], osize), dtype)
    assert_close(gavg, x.astype(np.float64).mean(axis=(2, 3)),
                 np.abs(x.astype(np.float64)).mean(axis=(2, 3)), dtype)
    flat = x.reshape(4, 8, -1)
    np.testing.assert_array_equal(gmi, flat.argmax(axis=-1))
    np.testing.assert_array_equal(gmv, flat.max(axis=-1))


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_empty_batch(dtype):
    x = np.zeros((0, 3, 5, 5), dtype=dtype)
    r = cypool.adaptive_avg_pool(x, (2, 2))
    assert r.shape == (0, 3, 2, 2) and r.dtype == avg_result_dtype(dtype)
    v, i = cypool.adaptive_max_pool(x, (2, 3), return_indices=True)
    assert v.shape == i.shape == (0, 3, 2, 3) and v.dtype == dtype and i.dtype == np.int64
    r = cypool.global_avg_pool(x)
    assert r.shape == (0, 3) and r.dtype == avg_result_dtype(dtype)
    v, i = cypool.global_max_pool(x, return_indices=True, keepdims=True)
    assert v.shape == i.shape == (0, 3, 1, 1) and v.dtype == dtype
    assert cypool.global_max_pool(np.zeros((2, 0, 4), dtype)).shape == (2, 0)
    if np.dtype(dtype).kind == "f":
        g = np.zeros((0, 3, 2, 3), dtype)
        assert cypool.adaptive_avg_pool_backward(g, x.shape).shape == x.shape
        r = cypool.adaptive_max_pool_backward(g, x, (2, 3))
        assert r.shape == x.shape and r.dtype == dtype
        g = np.zeros((0, 3), dtype)
        assert cypool.global_avg_pool_backward(g, x.shape).shape == x.shape
        assert cypool.global_max_pool_backward(g, x).shape == x.shape
        assert cypool.global_max_pool_backward(g, x, indices=np.zeros((0, 3), np.int64)).shape \
            == x.shape


# ================================================================================ out=


def test_out_argument():
    rng = np.random.default_rng(32)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    out = np.full((3, 2, 2, 4), 7, np.float32).transpose(1, 0, 2, 3)
    assert cypool.adaptive_avg_pool(x, (2, 4), out=out) is out
    np.testing.assert_allclose(out, ref_adaptive_avg_pool(x.astype(np.float64), (2, 4)),
                               rtol=1e-6, atol=1e-6)
    vals = np.empty((2, 3, 2, 4), np.float32)
    idx = np.empty((2, 3, 2, 8), np.int64)[..., ::2]
    rv, ri = cypool.adaptive_max_pool(x, (2, 4), return_indices=True, out=(vals, idx))
    assert rv is vals and ri is idx
    wv, wi = ref_adaptive_max_pool(x, (2, 4))
    np.testing.assert_array_equal(vals, wv)
    np.testing.assert_array_equal(idx, wi)
    g = rng.standard_normal((2, 3, 2, 4)).astype(np.float32)
    out = np.full((2, 3, 9, 8), 7, np.float32)[:, :, ::-1]
    assert cypool.adaptive_avg_pool_backward(g, x.shape, out=out) is out
    np.testing.assert_allclose(out, ref_adaptive_avg_pool_backward(g.astype(np.float64),
                                                                   x.shape), rtol=1e-6,
                               atol=1e-7)
    out = np.full((2, 3, 9, 8), 7, np.float32)
    assert cypool.adaptive_max_pool_backward(g, x, (2, 4), out=out) is out
    np.testing.assert_array_equal(out, ref_adaptive_max_pool_backward(g, x, (2, 4)))
    out = np.full((3, 2), 7, np.float32).T
    assert cypool.global_avg_pool(x, out=out) is out
    np.testing.assert_allclose(out, x.astype(np.float64).mean(axis=(2, 3)), rtol=1e-6)
    vals, idx = np.empty((2, 3), np.float32), np.empty((2, 3), np.int64)
    rv, ri = cypool.global_max_pool(x, return_indices=True, out=(vals, idx))
    assert rv is vals and ri is idx
    np.testing.assert_array_equal(idx, x.reshape(2, 3, -1).argmax(-1))
    gg = rng.standard_normal((2, 3)).astype(np.float32)
    out = np.full((2, 3, 9, 8), 7, np.float32)
    assert cypool.global_avg_pool_backward(gg, x.shape, out=out) is out
    assert cypool.global_max_pool_backward(gg, x, out=out) is out
    np.testing.assert_array_equal(out, ref_global_max_pool_backward(gg, x))
    with pytest.raises(ValueError, match="out"):
        cypool.global_avg_pool(x, out=np.empty((2, 3), np.float64))
    with pytest.raises(ValueError, match="out"):
        cypool.adaptive_avg_pool(x, (2, 4), out=np.empty((2, 3, 4, 2), np.float32))


# ================================================================================ errors

X = np.zeros((2, 3, 8, 8), dtype=np.float32)
GA = np.zeros((2, 3, 3, 2), dtype=np.float32)      # X adaptively pooled to (3, 2)
GG = np.zeros((2, 3), dtype=np.float32)            # X globally pooled


@pytest.mark.parametrize("output_size", [(0, 2), (3, 0), (-1, 2), (3, -4), 0, -2])
def test_adaptive_output_size_non_positive(output_size):
    for call in (lambda: cypool.adaptive_avg_pool(X, output_size, axes=(2, 3)),
                 lambda: cypool.adaptive_max_pool(X, output_size, axes=(2, 3)),
                 lambda: cypool.adaptive_max_pool_backward(GA, X, output_size, axes=(2, 3))):
        with pytest.raises(ValueError) as e:
            call()
        assert_message(e, r"output_size")


@pytest.mark.parametrize("output_size, axes", [((3, 2, 2), (2, 3)), ((3,), (2, 3)),
                                               ((1, 1, 1, 1, 1), None), ((), None)])
def test_adaptive_output_size_wrong_length(output_size, axes):
    for call in (lambda: cypool.adaptive_avg_pool(X, output_size, axes=axes),
                 lambda: cypool.adaptive_max_pool(X, output_size, axes=axes),
                 lambda: cypool.adaptive_max_pool_backward(GA, X, output_size, axes=axes)):
        with pytest.raises(ValueError) as e:
            call()
        assert_message(e, r"output_size|axes")


def test_adaptive_int_output_size_needs_axes():
    with pytest.raises(ValueError) as e:
        cypool.adaptive_avg_pool(X, 3)
    assert_message(e, r"output_size|axes")
    with pytest.raises(ValueError) as e:
        cypool.adaptive_max_pool(X, 3)
    assert_message(e, r"output_size|axes")


@pytest.mark.parametrize("bad", [64, 100, -1, -48])
def test_adaptive_max_pool_backward_indices_out_of_range(bad):
    idx = np.zeros(GA.shape, np.int64)
    idx[1, 2, 0, 1] = bad
    with pytest.raises(ValueError) as e:
        cypool.adaptive_max_pool_backward(GA, X, (3, 2), indices=idx)
    assert_message(e, r"indices")


@pytest.mark.parametrize("bad", [20, 2 ** 40, -1])
def test_global_max_pool_backward_indices_out_of_range(bad):
    x = np.zeros((2, 3, 4, 5), np.float32)
    idx = np.zeros(GG.shape, np.int64)
    idx[1, 1] = bad
    with pytest.raises(ValueError) as e:
        cypool.global_max_pool_backward(GG, x, indices=idx)
    assert_message(e, r"indices")


@pytest.mark.parametrize("gshape", [(2, 3, 3, 3), (2, 3, 2, 2), (2, 2, 3, 2), (3, 3, 2)])
def test_adaptive_max_pool_backward_grad_output_wrong_shape(gshape):
    with pytest.raises(ValueError) as e:
        cypool.adaptive_max_pool_backward(np.zeros(gshape, np.float32), X, (3, 2))
    assert_message(e, r"grad_output", r"\(" + ", ".join(map(str, gshape)) + r"\)")


def test_adaptive_avg_pool_backward_shape_errors():
    with pytest.raises(ValueError) as e:               # dims differ
        cypool.adaptive_avg_pool_backward(GA, (3, 8, 8))
    assert_message(e, r"grad_output|input_shape")
    with pytest.raises(ValueError) as e:               # a non-pooled axis differs
        cypool.adaptive_avg_pool_backward(np.zeros((2, 4, 3, 2), np.float32), X.shape,
                                          axes=(2, 3))
    assert_message(e, r"grad_output|input_shape")
    with pytest.raises(ValueError) as e:               # axis 2 differs but is not pooled
        cypool.adaptive_avg_pool_backward(GA, X.shape, axes=(3,))
    assert_message(e, r"grad_output|input_shape|axes")
    with pytest.raises(ValueError) as e:
        cypool.adaptive_avg_pool_backward(GA, (2, 3, -8, 8))
    assert_message(e, r"input_shape")
    with pytest.raises(ValueError) as e:               # a zero-size pooled output
        cypool.adaptive_avg_pool_backward(np.zeros((2, 3, 0, 2), np.float32), X.shape)
    assert_message(e, r"grad_output|output")


@pytest.mark.parametrize("gshape, keepdims", [((2, 3, 1, 1), False), ((2, 3), True),
                                              ((2, 4), False), ((3,), False),
                                              ((2, 3, 1), True)])
def test_global_backward_grad_output_wrong_shape(gshape, keepdims):
    g = np.zeros(gshape, np.float32)
    with pytest.raises(ValueError) as e:
        cypool.global_max_pool_backward(g, X, keepdims=keepdims)
    assert_message(e, r"grad_output")
    with pytest.raises(ValueError) as e:
        cypool.global_avg_pool_backward(g, X.shape, keepdims=keepdims)
    assert_message(e, r"grad_output|input_shape")


def test_global_input_shape_and_axes_errors():
    with pytest.raises(ValueError) as e:
        cypool.global_avg_pool_backward(GG, (2, 3, -8, 8))
    assert_message(e, r"input_shape")
    for axes in [(4,), (1, -3), (-5,)]:
        with pytest.raises(ValueError) as e:
            cypool.global_avg_pool(X, axes=axes)
        assert_message(e, r"axes")
        with pytest.raises(ValueError) as e:
            cypool.global_max_pool(X, axes=axes)
        assert_message(e, r"axes")


@pytest.mark.parametrize("bad", BAD_DTYPES)
def test_bad_dtype_input(bad):
    xb = X.astype(bad)
    for call in (lambda: cypool.adaptive_avg_pool(xb, (3, 2)),
                 lambda: cypool.adaptive_max_pool(xb, (3, 2)),
                 lambda: cypool.adaptive_max_pool_backward(GA, xb, (3, 2)),
                 lambda: cypool.global_avg_pool(xb),
                 lambda: cypool.global_max_pool(xb),
                 lambda: cypool.global_max_pool_backward(GG, xb)):
        with pytest.raises(TypeError) as e:
            call()
        assert_message(e, np.dtype(bad).name, r"float32")


@pytest.mark.parametrize("bad", BAD_DTYPES + [np.int32, np.int64, np.uint8])
def test_bad_dtype_grad_output(bad):
    for call in (lambda: cypool.adaptive_avg_pool_backward(GA.astype(bad), X.shape),
                 lambda: cypool.adaptive_max_pool_backward(GA.astype(bad), X, (3, 2)),
                 lambda: cypool.global_avg_pool_backward(GG.astype(bad), X.shape),
                 lambda: cypool.global_max_pool_backward(GG.astype(bad), X)):
        with pytest.raises(TypeError) as e:
            call()
        assert_message(e, np.dtype(bad).name)
