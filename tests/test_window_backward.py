"""Tests of cypool's window-pooling backward ops (max_pool_backward, avg_pool_backward,
lp_pool_backward) and max_unpool against the slow references in ``reference_backward.py``,
finite differences of cypool's own forward ops, and torch autograd."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cypool
from reference import MAX_DTYPES, ref_geometry, ref_max_pool
from reference_backward import (
    ref_avg_pool_backward,
    ref_lp_pool_backward,
    ref_max_pool_backward,
    ref_max_unpool,
)
from support import (
    BAD_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    ROW_PAIRING_CASES,
    RTOL,
    SETTINGS,
    TORCH_TOL,
    assert_grad_close,
    assert_message,
    draw_torch_window,
    geometry_or_none,
    layout_axes,
    make_grad,
    make_values,
    make_view,
    numgrad,
    ref_kwargs,
    seeds,
    to_layout,
    torch_avg_pool,
    torch_grad,
    torch_lp_pool,
    views,
    views_no_bcast,
    window_cases,
    examples,
)


# ================================================================================ helpers


def _unchanged(*pairs):
    for a, before in pairs:
        np.testing.assert_array_equal(a, before)


# ================================================================================ max backward


@settings(max_examples=examples(300), **SETTINGS)
@given(window_cases(), st.sampled_from(FLOAT_DTYPES), st.sampled_from(["random", "ties",
       "special"]), views_no_bcast, views, seeds, st.booleans())
def test_max_pool_backward_matches_reference(case, dtype, mode, xviews, gviews, seed,
                                             pass_indices):
    shape, kwargs = case
    geo = geometry_or_none(shape, kwargs)
    if geo is None:
        with pytest.raises(ValueError):
            cypool.max_pool_backward(np.zeros(shape, dtype), np.zeros(shape, dtype), **kwargs)
        return
    rng = np.random.default_rng(seed)
    x = make_view(make_values(rng, shape, dtype, mode), xviews, rng)
    g = make_grad(rng, geo.out_shape, dtype, gviews)
    x0, g0 = x.copy(), g.copy()
    g64 = g.astype(np.float64)
    want = ref_max_pool_backward(g64, x, **ref_kwargs(kwargs))
    mag = ref_max_pool_backward(np.abs(g64), x, **ref_kwargs(kwargs))
    got = cypool.max_pool_backward(g, x, **kwargs)
    assert_grad_close(got, want, mag, dtype)
    if pass_indices:
        _, idx = ref_max_pool(x, **ref_kwargs(kwargs))
        idx = make_view(idx, xviews, rng)
        i0 = idx.copy()
        got_i = cypool.max_pool_backward(g, x, **kwargs, indices=idx)
        assert_grad_close(got_i, want, mag, dtype)
        # the given indices lead to the same result as recomputing them
        np.testing.assert_allclose(got_i.astype(np.float64), got.astype(np.float64),
                                   rtol=RTOL[np.dtype(dtype)], atol=1e-300)
        _unchanged((idx, i0))
    _unchanged((x, x0), (g, g0))


@settings(max_examples=examples(60), **SETTINGS)
@given(window_cases(), st.sampled_from(FLOAT_DTYPES), seeds)
def test_max_pool_backward_with_cypool_indices(case, dtype, seed):
    """Indices from cypool.max_pool fed back to max_pool_backward: same as recomputing."""
    shape, kwargs = case
    geo = geometry_or_none(shape, kwargs)
    assume(geo is not None)
    rng = np.random.default_rng(seed)
    x = make_values(rng, shape, dtype, "ties")
    g = make_grad(rng, geo.out_shape, dtype, [])
    _, idx = cypool.max_pool(x, **kwargs, return_indices=True)
    a = cypool.max_pool_backward(g, x, **kwargs)
    b = cypool.max_pool_backward(g, x, **kwargs, indices=idx)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64),
                               rtol=RTOL[np.dtype(dtype)], atol=1e-300)


def test_max_pool_backward_given_indices_are_used_as_given():
    """User indices need not be the argmax: the gradient goes where they point."""
    x = np.array([[1, 2, 0], [4, 3, 9], [5, 8, 7]], dtype=np.float64)
    g = np.array([[1.0, 10.0], [100.0, 1000.0]])
    idx = np.array([[0, 2], [8, 8]], dtype=np.int64)
    got = cypool.max_pool_backward(g, x, (2, 2), (1, 1), indices=idx)
    np.testing.assert_array_equal(got, [[1, 0, 10], [0, 0, 0], [0, 0, 1100]])
    np.testing.assert_array_equal(cypool.max_pool_backward(g, x, (2, 2), (1, 1)),
                                  [[0, 0, 0], [1, 0, 1010], [0, 100, 0]])


@pytest.mark.parametrize("shape, kw", [
    # channels-last: kernel blocks of the forward smaller than the scatter's plane blocks
    ((1, 5, 40, 700), dict(kernel_size=(1, 40), stride=(1, 3), axes=(1, 2))),
    # a long axis 2: the forward splits each output row into chunks
    ((2, 3, 9000), dict(kernel_size=3, stride=2, padding=1, axes=2)),
    # 3-d windows, several rows per window, dilation and ceil_mode overhang
    ((2, 3, 7, 8, 9), dict(kernel_size=(2, 3, 3), stride=(2, 2, 2), padding=(1, 1, 1),
                           dilation=(1, 2, 1), ceil_mode=True, axes=(2, 3, 4))),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [1, 3])
def test_max_pool_backward_recomputed_equals_given_indices(shape, kw, dtype, num_threads):
    """Without indices the argmax is recomputed inside the scatter kernel, item by item: bit
    for bit the result of scattering the forward's indices, across block and chunk splits, with
    ties, and with NaN in some windows (the exact rescan) but not others."""
    rng = np.random.default_rng(13)
    x = make_values(rng, shape, dtype, "ties")
    x.reshape(-1)[rng.integers(0, x.size, 5)] = np.nan
    _, idx = cypool.max_pool(x, **kw, return_indices=True)
    g = rng.standard_normal(idx.shape).astype(dtype)
    got = cypool.max_pool_backward(g, x, **kw, num_threads=num_threads)
    np.testing.assert_array_equal(got, cypool.max_pool_backward(g, x, **kw, indices=idx))
    want = ref_max_pool_backward(g.astype(np.float64), x, **kw)
    assert_grad_close(got, want, ref_max_pool_backward(np.abs(g.astype(np.float64)), x, **kw),
                      dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, kw", [
    ("avg", dict(kernel_size=3, stride=1, padding=1)),   # the stride-1 gather
    ("avg", dict(kernel_size=3, stride=2, padding=1)),   # the column spread
    ("max", dict(kernel_size=3, stride=2, padding=1)),
    ("max_indices", dict(kernel_size=2, stride=2)),
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_backward_results_past_the_caches_are_the_same(dtype, op, kw, channels_last):
    """Max backward writes a user's out= of 16 MiB or more with non-temporal stores (whole
    cache lines only): bit for bit what the two halves of the batch, allocating their results
    and small enough for plain stores either way, give. Avg backward (plain stores) is held to
    the same check."""
    rng = np.random.default_rng(14)
    shape = ((16 << 20) // (8 * 257 * 255 * np.dtype(dtype).itemsize) + 2, 8, 257, 255)
    x = rng.standard_normal(shape).astype(dtype)
    axes = (2, 3)
    if channels_last:
        x, axes = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), (1, 2)
    assert x.nbytes >= 16 << 20 > x[: len(x) // 2].nbytes

    values, idx = cypool.max_pool(x, **kw, axes=axes, return_indices=True)
    g = rng.standard_normal(values.shape).astype(dtype)

    def grad(part, out=None):
        if op == "avg":
            return cypool.avg_pool_backward(g[part], x[part].shape, **kw, axes=axes, out=out)
        return cypool.max_pool_backward(g[part], x[part], **kw, axes=axes, out=out,
                                        indices=idx[part] if op == "max_indices" else None)

    half = len(x) // 2
    whole = np.full_like(x, np.nan)
    assert grad(slice(None), out=whole) is whole
    np.testing.assert_array_equal(whole, np.concatenate(
        [grad(slice(None, half)), grad(slice(half, None))]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ROW_PAIRING_CASES)
def test_max_pool_backward_recomputed_nan_and_ties_in_row_pairs(dtype, case):
    """The recomputed argmax reduces contiguous window rows two at a time: a NaN in any row
    position, or ties from values in {0, 1, 2}, send each gradient where the reference's
    first-in-row-major-order argmax does."""
    shape, kernel, stride, dilation, axes = case
    rng = np.random.default_rng(10)
    base = rng.standard_normal(shape).astype(dtype)
    inputs = []
    for flat in range(0, base.size, 7):
        x = base.copy()
        x.flat[flat] = np.nan
        inputs.append(x)
    inputs += [rng.integers(0, 3, shape).astype(dtype) for _ in range(10)]
    for x in inputs:
        y = cypool.max_pool(x, kernel, stride, 0, dilation, axes=axes)
        g = rng.standard_normal(y.shape).astype(dtype)
        got = cypool.max_pool_backward(g, x, kernel, stride, 0, dilation, axes=axes)
        want = ref_max_pool_backward(g, x, kernel, stride, 0, dilation, axes)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("xdtype", INT_DTYPES)
def test_max_pool_backward_integer_input(xdtype):
    """x of an integer dtype (max_pool accepts them); the gradient has grad_output's dtype."""
    rng = np.random.default_rng(11)
    x = make_values(rng, (2, 7, 6), xdtype, "ties")
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=1, axes=(1, 2), ceil_mode=True)
    g = rng.standard_normal(ref_geometry(x.shape, **kw).out_shape).astype(np.float32)
    got = cypool.max_pool_backward(g, x, **kw)
    want = ref_max_pool_backward(g.astype(np.float64), x, **kw)
    mag = ref_max_pool_backward(np.abs(g.astype(np.float64)), x, **kw)
    assert_grad_close(got, want, mag, np.float32)


@pytest.mark.parametrize("xdtype, gdtype", [(np.float32, np.float64), (np.float64, np.float32),
                                            (np.float16, np.float32), (np.float32, np.float16)])
def test_backward_mixed_dtypes_follow_grad_output(xdtype, gdtype):
    """API: gradients have the dtype of grad_output, whatever x's dtype."""
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((2, 9, 8)) * 3).astype(xdtype)
    kw = dict(kernel_size=(3, 2), stride=(2, 2), padding=(1, 0), axes=(1, 2))
    g = rng.standard_normal(ref_geometry(x.shape, **kw).out_shape).astype(gdtype)
    g64 = g.astype(np.float64)
    got = cypool.max_pool_backward(g, x, **kw)
    assert_grad_close(got, ref_max_pool_backward(g64, x, **kw),
                      ref_max_pool_backward(np.abs(g64), x, **kw), gdtype)
    got = cypool.lp_pool_backward(g, x, 2, **kw)
    # x's own precision bounds the result: compare at the coarser of the two tolerances
    coarse = max(RTOL[np.dtype(xdtype)], RTOL[np.dtype(gdtype)])
    want = ref_lp_pool_backward(g64, x, 2, **kw)
    mag = ref_lp_pool_backward(np.abs(g64), np.abs(x), 2, **kw)
    assert got.dtype == gdtype
    assert (np.abs(got.astype(np.float64) - want) <= coarse * (np.abs(want) + mag) + 1e-6).all()


# ================================================================================ avg backward


@settings(max_examples=examples(300), **SETTINGS)
@given(window_cases(), st.sampled_from(FLOAT_DTYPES), views, seeds, st.booleans(),
       st.sampled_from([None, None, 1, 2, 3, 7, -2]))
def test_avg_pool_backward_matches_reference(case, dtype, gviews, seed, cip, divisor):
    shape, kwargs = case
    geo = geometry_or_none(shape, kwargs)
    if geo is None:
        with pytest.raises(ValueError):
            cypool.avg_pool_backward(np.zeros(shape, dtype), shape, **kwargs)
        return
    rng = np.random.default_rng(seed)
    g = make_grad(rng, geo.out_shape, dtype, gviews)
    g0 = g.copy()
    g64 = g.astype(np.float64)
    rk = ref_kwargs(kwargs)
    want = ref_avg_pool_backward(g64, shape, **rk, count_include_pad=cip,
                                 divisor_override=divisor)
    mag = np.abs(ref_avg_pool_backward(np.abs(g64), shape, **rk, count_include_pad=cip,
                                       divisor_override=divisor))
    got = cypool.avg_pool_backward(g, shape, **kwargs, count_include_pad=cip,
                                   divisor_override=divisor)
    assert_grad_close(got, want, mag, dtype)
    _unchanged((g, g0))


# ================================================================================ lp backward


@settings(max_examples=examples(250), **SETTINGS)
@given(window_cases(), st.sampled_from(FLOAT_DTYPES), st.sampled_from(["random", "ties",
       "zeros"]), views_no_bcast, views, seeds,
       st.sampled_from([1, 2, 3, 4, 0.5, 1.5, 2.5, np.float32(3.0)]))
def test_lp_pool_backward_matches_reference(case, dtype, mode, xviews, gviews, seed, p):
    shape, kwargs = case
    geo = geometry_or_none(shape, kwargs)
    if geo is None:
        with pytest.raises(ValueError):
            cypool.lp_pool_backward(np.zeros(shape, dtype), np.zeros(shape, dtype), p, **kwargs)
        return
    if p <= 1:
        mode = "random"     # the p-norm has no derivative at x_t == 0 for p <= 1
    rng = np.random.default_rng(seed)
    x = make_view(make_values(rng, shape, dtype, mode), xviews, rng)
    g = make_grad(rng, geo.out_shape, dtype, gviews)
    x0, g0 = x.copy(), g.copy()
    g64 = g.astype(np.float64)
    rk = ref_kwargs(kwargs)
    want = ref_lp_pool_backward(g64, x, p, **rk)
    mag = ref_lp_pool_backward(np.abs(g64), np.abs(x), p, **rk)
    got = cypool.lp_pool_backward(g, x, p, **kwargs)
    assert not np.isnan(got).any()
    assert_grad_close(got, want, mag, dtype)
    _unchanged((x, x0), (g, g0))


def test_lp_pool_backward_zero_windows_and_negative_inputs():
    x = np.array([[0.0, 0.0, 3.0, -4.0, 0.0, 0.0]])
    g = np.array([[5.0, 5.0, 5.0]])
    got = cypool.lp_pool_backward(g, x, 2, (2,))
    np.testing.assert_allclose(got, [[0, 0, 3, -4, 0, 0]], rtol=1e-12)
    got = cypool.lp_pool_backward(g, x, 1, (2,))
    np.testing.assert_allclose(got, [[0, 0, 5, -5, 0, 0]], rtol=1e-12)
    x = np.zeros((1, 4), np.float32)
    got = cypool.lp_pool_backward(np.ones((1, 2), np.float32), x, 0.5, (2,))
    np.testing.assert_array_equal(got, np.zeros((1, 4), np.float32))


# ============================================================================ finite differences


FD_CASES = [
    ((2, 7), dict(kernel_size=(3,), stride=(2,), padding=1)),
    ((6,), dict(kernel_size=(3,), stride=(2,), padding=1, ceil_mode=True)),
    ((2, 5, 4), dict(kernel_size=(3, 2), stride=(2, 1), padding=((1, 0), (1, 1)), axes=(1, 2),
                     ceil_mode=True)),
    ((4, 2, 5), dict(kernel_size=(2, 3), stride=(1, 2), padding=((0, 1), 1), dilation=(2, 1),
                     axes=(-1, 0))),
    ((3, 3, 4), dict(kernel_size=(2, 2, 3), stride=(2, 1, 2), padding="same")),
    ((9, 2), dict(kernel_size=4, stride=3, padding=((2, 1),), axes=(0,), ceil_mode=True)),
]


@pytest.mark.parametrize("shape, kw", FD_CASES)
@pytest.mark.parametrize("cip, divisor", [(True, None), (False, None), (True, 3)])
def test_avg_pool_backward_finite_differences(shape, kw, cip, divisor):
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape)
    opts = dict(kw, count_include_pad=cip, divisor_override=divisor)
    g = rng.standard_normal(cypool.avg_pool(x, **opts).shape)
    want = numgrad(lambda xx: cypool.avg_pool(xx, **opts), x, g, 1e-3)
    got = cypool.avg_pool_backward(g, shape, **opts)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("shape, kw", FD_CASES)
@pytest.mark.parametrize("p", [1, 2, 3.5, 0.75])
def test_lp_pool_backward_finite_differences(shape, kw, p):
    rng = np.random.default_rng(14)
    x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    g = rng.standard_normal(cypool.lp_pool(x, p, **kw).shape)
    want = numgrad(lambda xx: cypool.lp_pool(xx, p, **kw), x, g, 1e-6)
    got = cypool.lp_pool_backward(g, x, p, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# ================================================================================ max_unpool


@settings(max_examples=examples(250), **SETTINGS)
@given(window_cases(), st.sampled_from(MAX_DTYPES), st.sampled_from(["random", "ties",
       "special"]), views_no_bcast, seeds, st.booleans())
def test_max_unpool_matches_reference(case, dtype, mode, vviews, seed, same_view):
    """Unpool what max_pool produced (duplicate indices then carry equal values)."""
    shape, kwargs = case
    geo = geometry_or_none(shape, kwargs)
    assume(geo is not None)
    rng = np.random.default_rng(seed)
    x = make_values(rng, shape, dtype, mode)
    v, i = ref_max_pool(x, **ref_kwargs(kwargs))
    v = make_view(v, vviews, rng)
    i = make_view(i, vviews if same_view else [], rng)
    v0, i0 = v.copy(), i.copy()
    axes = kwargs.get("axes")
    if axes is None:
        output_size = geo.in_sizes
    else:   # output_size follows the order of the axes as given
        output_size = tuple(shape[a] for a in axes)
    want = ref_max_unpool(v, i, output_size, axes)
    got = cypool.max_unpool(v, i, output_size, axes=axes)
    assert got.dtype == v.dtype and got.shape == tuple(shape)
    np.testing.assert_array_equal(got, want)
    _unchanged((v, v0), (i, i0))


@settings(max_examples=examples(150), **SETTINGS)
@given(st.integers(1, 3), st.sampled_from(MAX_DTYPES), st.integers(1, 3), st.data(), seeds)
def test_max_unpool_random_distinct_indices(naxes, dtype, nbatch, data, seed):
    """Arbitrary distinct indices per batch row into a bigger output, pooled axes anywhere."""
    rng = np.random.default_rng(seed)
    ndim = naxes + data.draw(st.integers(0, 2))
    axes = data.draw(st.permutations(range(ndim)))[:naxes]
    in_pooled = [data.draw(st.integers(1, 3)) for _ in range(naxes)]
    out_pooled = [n + data.draw(st.integers(0, 3)) for n in in_pooled]
    shape = [nbatch] * ndim
    for a, n in zip(axes, in_pooled):
        shape[a] = n
    x = make_values(rng, shape, dtype, "random")
    idx = np.empty(shape, dtype=np.int64)
    batch_axes = [a for a in range(ndim) if a not in axes]
    total_out = math.prod(out_pooled)
    order = sorted(range(naxes), key=lambda j: axes[j])
    for b in np.ndindex(*[shape[a] for a in batch_axes]):
        sl = [slice(None)] * ndim
        for a, v in zip(batch_axes, b):
            sl[a] = v
        sub_shape = [in_pooled[j] for j in order]
        idx[tuple(sl)] = rng.permutation(total_out)[:math.prod(in_pooled)].reshape(sub_shape)
    transforms = data.draw(views_no_bcast)
    xv, iv = make_view(x, transforms, np.random.default_rng(seed)), \
        make_view(idx, transforms, np.random.default_rng(seed))
    want = ref_max_unpool(xv, iv, tuple(out_pooled), tuple(axes))
    got = cypool.max_unpool(xv, iv, tuple(out_pooled), axes=tuple(axes))
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, want)


def test_max_unpool_hand():
    x = np.array([[5, 7]], dtype=np.int8)
    np.testing.assert_array_equal(cypool.max_unpool(x, np.array([[1, 3]]), (4,)),
                                  [[0, 5, 0, 7]])
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint16)
    idx = np.array([[0, 3, 1], [2, 1, 0]], dtype=np.int64)
    got = cypool.max_unpool(x, idx, (4,), axes=(0,))
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, [[1, 0, 6], [0, 5, 3], [4, 0, 0], [0, 2, 0]])


# ================================================================================ torch


@st.composite
def torch_cases(draw, op):
    case = draw_torch_window(draw, op, max_kernel=4, extra={1: 12, 2: 7}, max_channels=3)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    channels_last = draw(st.booleans())
    return (*case, dtype, channels_last)


@settings(max_examples=examples(150), **SETTINGS)
@given(torch_cases("max"), seeds, st.booleans())
def test_max_pool_backward_vs_torch(case, seed, ties):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    shape, k, s, p, d, ceil_mode, geo, dtype, cl = case
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-2, 3, shape).astype(dtype)
    else:
        x = (rng.permutation(math.prod(shape)).reshape(shape) - 3.5).astype(dtype)
    g = rng.standard_normal(geo.out_shape).astype(dtype)
    tf = F.max_pool1d if len(k) == 1 else F.max_pool2d
    _, want = torch_grad(lambda t: tf(t, k, s, p, d, ceil_mode=ceil_mode), x, g)
    rank = len(k)
    got = cypool.max_pool_backward(to_layout(g, cl), to_layout(x, cl), k, s, p, d,
                                   axes=layout_axes(rank, cl), ceil_mode=ceil_mode)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])
    _, ti = tf(torch.tensor(x), k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    got = cypool.max_pool_backward(to_layout(g, cl), to_layout(x, cl), k, s, p, d,
                                   axes=layout_axes(rank, cl), ceil_mode=ceil_mode,
                                   indices=to_layout(ti.numpy(), cl))
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])


@settings(max_examples=examples(150), **SETTINGS)
@given(torch_cases("avg"), st.booleans(), st.sampled_from([None, None, 1, 2, 5, -3]), seeds)
def test_avg_pool_backward_vs_torch(case, cip, divisor, seed):
    pytest.importorskip("torch")
    shape, k, s, p, d, ceil_mode, geo, dtype, cl = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(geo.out_shape).astype(dtype)
    fn = torch_avg_pool(k, s, p, ceil_mode, cip, divisor)
    _, want = torch_grad(fn, x, g)
    in_shape = to_layout(x, cl).shape
    got = cypool.avg_pool_backward(to_layout(g, cl), in_shape, k, s, p,
                                   axes=layout_axes(len(k), cl), ceil_mode=ceil_mode,
                                   count_include_pad=cip, divisor_override=divisor)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, to_layout(want, cl), **TORCH_TOL[dtype])


@settings(max_examples=examples(100), **SETTINGS)
@given(torch_cases("lp"), st.sampled_from([1, 2, 3, 1.5, 0.75]), seeds)
def test_lp_pool_backward_vs_torch(case, p, seed):
    pytest.importorskip("torch")
    shape, k, s, _, _, ceil_mode, geo, dtype, cl = case
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 2.0, shape).astype(dtype)       # torch's lp_pool: the p-norm for x > 0
    g = rng.standard_normal(geo.out_shape).astype(dtype)
    fn = torch_lp_pool(p, k, s, ceil_mode)
    _, want = torch_grad(fn, x, g)
    got = cypool.lp_pool_backward(to_layout(g, cl), to_layout(x, cl), p, k, s,
                                  axes=layout_axes(len(k), cl), ceil_mode=ceil_mode)
    assert got.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got, to_layout(want, cl), **tol)


@pytest.mark.parametrize("shape, k, s, p", [((2, 3, 6, 5), 2, 2, 0), ((1, 2, 7, 7), 3, 2, 1),
                                            ((2, 1, 5, 8), (2, 3), (2, 2), (1, 0)),
                                            ((1, 3, 9, 4), 3, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cl", [False, True])
def test_max_unpool_vs_torch(shape, k, s, p, dtype, cl):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(15)
    x = rng.standard_normal(shape).astype(dtype)
    tv, ti = F.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    want = F.max_unpool2d(tv, ti, k, s, p, output_size=shape[2:]).numpy()
    got = cypool.max_unpool(to_layout(tv.numpy(), cl), to_layout(ti.numpy(), cl), shape[2:],
                            axes=layout_axes(2, cl))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, to_layout(want, cl))
    # cypool's own max_pool round trip
    v, i = cypool.max_pool(to_layout(x, cl), k, s, p, axes=layout_axes(2, cl),
                           return_indices=True)
    np.testing.assert_array_equal(cypool.max_unpool(v, i, shape[2:], axes=layout_axes(2, cl)),
                                  to_layout(want, cl))
    # an output bigger than the pooled input
    big = (shape[2] + 1, shape[3] + 2)
    np.testing.assert_array_equal(cypool.max_unpool(tv.numpy(), ti.numpy(), big),
                                  ref_max_unpool(tv.numpy(), ti.numpy(), big))


# ================================================================================ threads, empty


BIG = (4, 8, 64, 64)
BIG_KW = dict(kernel_size=(3, 3), stride=(2, 1), padding=1, ceil_mode=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_num_threads_bit_identical(dtype):
    rng = np.random.default_rng(16)
    x = rng.integers(-3, 4, BIG).astype(dtype)          # ties: overlapping argmaxes
    geo = ref_geometry(BIG, **BIG_KW)
    g = rng.standard_normal(geo.out_shape).astype(dtype)
    results = {}
    for nt in (1, 2, None):
        results[nt] = [
            cypool.max_pool_backward(g, x, **BIG_KW, num_threads=nt),
            cypool.avg_pool_backward(g, BIG, **BIG_KW, count_include_pad=False, num_threads=nt),
            cypool.lp_pool_backward(g, x, 2, **BIG_KW, num_threads=nt),
        ]
    for a, b, c in zip(results[1], results[2], results[None]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # spot-check one (batch, channel) slice against the references
    g64 = g[1, 2].astype(np.float64)
    mx, av, lp = (r[1, 2] for r in results[1])
    assert_grad_close(mx, ref_max_pool_backward(g64, x[1, 2], **BIG_KW),
                      ref_max_pool_backward(np.abs(g64), x[1, 2], **BIG_KW), dtype)
    assert_grad_close(av, ref_avg_pool_backward(g64, (64, 64), **BIG_KW,
                                                count_include_pad=False),
                      ref_avg_pool_backward(np.abs(g64), (64, 64), **BIG_KW,
                                            count_include_pad=False), dtype)
    assert_grad_close(lp, ref_lp_pool_backward(g64, x[1, 2], 2, **BIG_KW),
                      ref_lp_pool_backward(np.abs(g64), np.abs(x[1, 2]), 2, **BIG_KW), dtype)
    # max_unpool
    v, i = cypool.max_pool(x, **BIG_KW, return_indices=True)
    u1 = cypool.max_unpool(v, i, (64, 64), num_threads=1)
    u2 = cypool.max_unpool(v, i, (64, 64), num_threads=2)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(u1[1, 2], ref_max_unpool(v[1, 2], i[1, 2], (64, 64)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch(dtype):
    x = np.zeros((0, 3, 5, 2), dtype=dtype)
    kw = dict(kernel_size=(2, 3), axes=(1, 2), padding=1)
    g = np.zeros((0, 2, 2, 2), dtype=dtype)
    for r in (cypool.max_pool_backward(g, x, **kw),
              cypool.avg_pool_backward(g, x.shape, **kw),
              cypool.lp_pool_backward(g, x, 2, **kw),
              cypool.max_pool_backward(g, x, **kw, indices=np.zeros(g.shape, np.int64))):
        assert r.shape == x.shape and r.dtype == dtype
    u = cypool.max_unpool(g, np.zeros(g.shape, np.int64), (3, 5), axes=(1, 2))
    assert u.shape == (0, 3, 5, 2) and u.dtype == dtype
    # a zero-size batch axis after the pooled ones
    x = np.zeros((2, 4, 0), dtype=dtype)
    g = np.zeros((2, 2, 0), dtype=dtype)
    assert cypool.max_pool_backward(g, x, 2, axes=(1,)).shape == (2, 4, 0)
    assert cypool.avg_pool_backward(g, (2, 4, 0), 2, axes=(1,)).shape == (2, 4, 0)


# ================================================================================ out=


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_out_argument(dtype):
    rng = np.random.default_rng(17)
    x = (rng.standard_normal((2, 9, 8)) * 3).astype(dtype)
    kw = dict(kernel_size=(3, 2), stride=(2, 3), padding=((1, 1), (1, 0)), axes=(1, 2))
    g = rng.standard_normal((2, 5, 3)).astype(dtype)
    g64 = g.astype(np.float64)
    out = np.full((8, 9, 2), 7, dtype=dtype).T                  # transposed, dirty
    r = cypool.max_pool_backward(g, x, **kw, out=out)
    assert r is out
    assert_grad_close(out, ref_max_pool_backward(g64, x, **kw),
                      ref_max_pool_backward(np.abs(g64), x, **kw), dtype)
    out = np.full((2, 18, 8), 7, dtype=dtype)[:, ::2, :]
    r = cypool.avg_pool_backward(g, x.shape, **kw, out=out)
    assert r is out
    assert_grad_close(out, ref_avg_pool_backward(g64, x.shape, **kw),
                      ref_avg_pool_backward(np.abs(g64), x.shape, **kw), dtype)
    out = np.full((2, 9, 8), 7, dtype=dtype)[:, ::-1, :]
    r = cypool.lp_pool_backward(g, x, 3, **kw, out=out)
    assert r is out
    assert_grad_close(out, ref_lp_pool_backward(g64, x, 3, **kw),
                      ref_lp_pool_backward(np.abs(g64), np.abs(x), 3, **kw), dtype)
    v, i = cypool.max_pool(x, **kw, return_indices=True)
    out = np.full((2, 9, 8), 7, dtype=dtype)
    r = cypool.max_unpool(v, i, (9, 8), axes=(1, 2), out=out)
    assert r is out
    np.testing.assert_array_equal(out, ref_max_unpool(v, i, (9, 8), (1, 2)))
    with pytest.raises(ValueError, match="out"):
        cypool.avg_pool_backward(g, x.shape, **kw, out=np.empty((2, 9, 7), dtype))
    other = np.float64 if dtype != np.float64 else np.float32
    with pytest.raises(ValueError, match="out"):
        cypool.max_pool_backward(g, x, **kw, out=np.empty((2, 9, 8), other))


# ================================================================================ errors

X = np.zeros((2, 3, 8, 8), dtype=np.float32)
G = np.zeros((2, 3, 4, 4), dtype=np.float32)          # X pooled 2x2


@pytest.mark.parametrize("bad", [64, 100, 2 ** 40])
def test_max_pool_backward_indices_out_of_range(bad):
    idx = np.zeros(G.shape, np.int64)
    idx[1, 2, 3, 0] = bad
    with pytest.raises(ValueError) as e:
        cypool.max_pool_backward(G, X, (2, 2), indices=idx)
    assert_message(e, r"indices")


@pytest.mark.parametrize("bad", [-1, -64, -(2 ** 62)])
def test_max_pool_backward_indices_negative(bad):
    idx = np.zeros(G.shape, np.int64)
    idx[0, 0, 0, 1] = bad
    with pytest.raises(ValueError) as e:
        cypool.max_pool_backward(G, X, (2, 2), indices=idx)
    assert_message(e, r"indices")


def test_max_gradients_stream_only_into_a_large_out():
    """Non-temporal stores only into a user's out= of 16 MiB or more: a result cypool
    allocates is zeroed by the OS on first touch, which leaves its lines in the cache."""
    from cypool._call import STREAM_BYTES, write_past_caches

    big, small = np.empty(STREAM_BYTES, np.uint8), np.empty(STREAM_BYTES - 1, np.uint8)
    assert write_past_caches(big, big)
    assert not write_past_caches(None, big)
    assert not write_past_caches(small, small)


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("size", [1, 7, 8, 9, 1000, 100_003])
@pytest.mark.parametrize("layout", ["int64", "int64 strided", "int32", "uint64"])
def test_index_bounds_equals_numpy(size, layout, num_threads):
    """The bounds of user indices (the index_bounds kernel for C-contiguous int64, NumPy
    otherwise) are NumPy's min and max, wherever in the array, or in its kernel blocks, the
    extremes lie."""
    from cypool._backward import index_bounds

    rng = np.random.default_rng(size)
    dtype = {"int32": np.int32, "uint64": np.uint64}.get(layout, np.int64)
    base = rng.integers(5, 50, 2 * size).astype(dtype)
    for spot in sorted({0, size // 3, size - 1}):
        for low, high in [(0, 60), (-7, 60), (0, 2 ** 40), (-(2 ** 62), 2 ** 62)]:
            if dtype != np.int64 and (low < 0 or high > 2 ** 31):
                continue
            a = base.copy()[::2] if layout == "int64 strided" else base[:size].copy()
            a[spot], a[size - 1 - spot] = low, high
            assert index_bounds(a, num_threads) == (int(a.min()), int(a.max()))


def test_max_pool_backward_indices_wrong_shape():
    with pytest.raises(ValueError) as e:
        cypool.max_pool_backward(G, X, (2, 2), indices=np.zeros((2, 3, 4, 3), np.int64))
    assert_message(e, r"indices")


@pytest.mark.parametrize("op", ["max", "avg", "lp"])
@pytest.mark.parametrize("gshape", [(2, 3, 4, 3), (2, 3, 5, 4), (2, 2, 4, 4), (3, 4, 4),
                                    (1, 2, 3, 4, 4)])
def test_grad_output_wrong_shape(op, gshape):
    g = np.zeros(gshape, np.float32)
    with pytest.raises(ValueError) as e:
        if op == "max":
            cypool.max_pool_backward(g, X, (2, 2))
        elif op == "avg":
            cypool.avg_pool_backward(g, X.shape, (2, 2))
        else:
            cypool.lp_pool_backward(g, X, 2, (2, 2))
    assert_message(e, r"grad_output", r"\(" + ", ".join(map(str, gshape)) + r"\)")


@pytest.mark.parametrize("input_shape", [(2, 3, -8, 8), (2, 3, 8, -1)])
def test_avg_pool_backward_negative_input_shape(input_shape):
    with pytest.raises(ValueError) as e:
        cypool.avg_pool_backward(G, input_shape, (2, 2))
    assert_message(e, r"input_shape")


@pytest.mark.parametrize("input_shape", [(2, 4, 8, 8), (3, 3, 8, 8), (2, 3, 10, 8),
                                         (3, 8, 8), (1, 2, 3, 8, 8)])
def test_avg_pool_backward_input_shape_mismatch(input_shape):
    with pytest.raises(ValueError) as e:
        cypool.avg_pool_backward(G, input_shape, (2, 2))
    assert_message(e, r"input_shape|grad_output")


def test_avg_pool_backward_input_shape_not_a_shape():
    with pytest.raises((ValueError, TypeError)):
        cypool.avg_pool_backward(G, (2, 3, 8.5, 8), (2, 2))
    with pytest.raises((ValueError, TypeError)):
        cypool.avg_pool_backward(G, "abc", (2, 2))


def test_backward_geometry_errors():
    with pytest.raises(ValueError, match="padding"):
        cypool.avg_pool_backward(G, X.shape, (2, 2), padding=2)
    with pytest.raises(ValueError, match="norm_type"):
        cypool.lp_pool_backward(G, X, 0, (2, 2))
    with pytest.raises(ValueError, match="divisor_override"):
        cypool.avg_pool_backward(G, X.shape, (2, 2), divisor_override=0)
    with pytest.raises(ValueError, match="kernel_size"):
        cypool.max_pool_backward(G, X, 2)              # int kernel with axes=None


def test_max_unpool_indices_negative():
    v = np.ones((2, 3, 4, 4), np.float32)
    idx = np.zeros(v.shape, np.int64)
    idx[1, 1, 1, 1] = -1
    with pytest.raises(ValueError) as e:
        cypool.max_unpool(v, idx, (8, 8))
    assert_message(e, r"indices")


@pytest.mark.parametrize("output_size, bad", [((8, 8), 64), ((4, 4), 16), ((8, 8), 2 ** 40),
                                              ((3, 5), 15)])
def test_max_unpool_output_size_cannot_hold_indices(output_size, bad):
    v = np.ones((2, 3, 4, 4), np.float32)
    idx = np.zeros(v.shape, np.int64)
    idx[0, 2, 3, 3] = bad
    with pytest.raises(ValueError) as e:
        cypool.max_unpool(v, idx, output_size)
    assert_message(e, r"indices|output_size")


@pytest.mark.parametrize("output_size", [(0, 8), (8, -1), (8,) * 3, (8,), (1, 2, 3, 4, 5)])
def test_max_unpool_output_size_invalid(output_size):
    v = np.ones((2, 3, 4, 4), np.float32)
    idx = np.zeros(v.shape, np.int64)
    with pytest.raises(ValueError) as e:
        cypool.max_unpool(v, idx, output_size, axes=(2, 3))
    assert_message(e, r"output_size")


def test_max_unpool_shape_mismatch():
    with pytest.raises(ValueError) as e:
        cypool.max_unpool(np.ones((2, 3, 4, 4)), np.zeros((2, 3, 4, 3), np.int64), (8, 8))
    assert_message(e, r"indices")


@pytest.mark.parametrize("bad", BAD_DTYPES)
def test_bad_dtype_x(bad):
    xb = X.astype(bad)
    for call in (lambda: cypool.max_pool_backward(G, xb, (2, 2)),
                 lambda: cypool.lp_pool_backward(G, xb, 2, (2, 2)),
                 lambda: cypool.max_unpool(G.astype(bad), np.zeros(G.shape, np.int64), (8, 8))):
        with pytest.raises(TypeError) as e:
            call()
        assert_message(e, np.dtype(bad).name, r"float32")


@pytest.mark.parametrize("bad", BAD_DTYPES + [np.int32, np.int64, np.uint8])
def test_bad_dtype_grad_output(bad):
    gb = G.astype(bad)
    for call in (lambda: cypool.max_pool_backward(gb, X, (2, 2)),
                 lambda: cypool.avg_pool_backward(gb, X.shape, (2, 2)),
                 lambda: cypool.lp_pool_backward(gb, X, 2, (2, 2))):
        with pytest.raises(TypeError) as e:
            call()
        assert_message(e, np.dtype(bad).name)


def test_out_overlapping_any_input_is_refused():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    _, idx = cypool.max_pool(x, (2, 2), return_indices=True)
    buf = np.zeros((2, 3, 8, 8))
    g = buf[:, :, :4, :4]  # grad_output living inside the requested out
    g[...] = 1.0
    with pytest.raises(ValueError, match="out"):
        cypool.max_pool_backward(g, x, (2, 2), indices=idx, out=buf)
    with pytest.raises(ValueError, match="out"):
        cypool.lp_pool_backward(g, x, 2.0, (2, 2), out=buf)
    with pytest.raises(ValueError, match="out"):
        cypool.global_avg_pool_backward(buf[:, :, 0, 0], x.shape, out=buf)
    vals = np.zeros((2, 3, 8, 8), np.int64)
    with pytest.raises(ValueError, match="out"):
        cypool.max_unpool(idx.astype(np.int64), vals[:, :, :4, :4], (8, 8), out=vals)
