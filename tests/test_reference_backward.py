"""Checks of the slow references in ``reference_backward.py`` (the oracle of the backward, unpool,
adaptive and global tests): hand-computed tiny cases, finite differences / adjoint identities of
the forward references, and (when torch is importable) torch autograd.

These do not touch cypool.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import ref_avg_pool, ref_lp_pool, ref_max_pool
from reference_backward import (
    ref_adaptive_avg_pool,
    ref_adaptive_avg_pool_backward,
    ref_adaptive_bins,
    ref_adaptive_geometry,
    ref_adaptive_max_pool,
    ref_adaptive_max_pool_backward,
    ref_avg_pool_backward,
    ref_global_avg_pool,
    ref_global_avg_pool_backward,
    ref_global_axes,
    ref_global_max_pool,
    ref_global_max_pool_backward,
    ref_lp_pool_backward,
    ref_max_pool_backward,
    ref_max_unpool,
)
from support import (
    SETTINGS,
    draw_torch_window,
    numgrad,
    seeds,
    torch_avg_pool,
    torch_grad,
    torch_lp_pool,
    examples,
)

nan = np.nan


def _eq(a, b):
    np.testing.assert_array_equal(a, b)


def _close(a, b, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=rtol, atol=atol)


# ================================================================================ max backward


def test_max_backward_1d_hand():
    x = np.array([1, 3, 2, 5, 4], dtype=np.float64)
    g = np.array([10.0, 20.0])
    _eq(ref_max_pool_backward(g, x, (2,)), [0, 10, 0, 20, 0])
    # overlapping windows [1 3 2] [3 2 5] [2 5 4]: argmax 1, 3, 3 -> the last two add up
    g = np.array([1.0, 2.0, 4.0])
    _eq(ref_max_pool_backward(g, x, (3,), (1,)), [0, 1, 0, 6, 0])
    # ceil mode: the partial last window [4] gets its own gradient
    g = np.array([1.0, 2.0, 4.0])
    _eq(ref_max_pool_backward(g, x, (2,), ceil_mode=True), [0, 1, 0, 2, 4])
    # padding never wins: windows (-1, 0), (1, 2), (3, 4) -> argmax 0, 1, 3
    _eq(ref_max_pool_backward(g, x, (2,), (2,), 1), [1, 2, 0, 4, 0])


def test_max_backward_dtype_and_ties_nan():
    x = np.array([2, 2, 1, 2], dtype=np.int16)
    g = np.array([1, 2, 4], dtype=np.float32)
    r = ref_max_pool_backward(g, x, (2,), (1,))
    assert r.dtype == np.float32 and r.shape == (4,)
    _eq(r, [1, 2, 0, 4])          # ties: first position of each window
    x = np.array([1, nan, 3, nan, 0], dtype=np.float16)
    g = np.array([1, 2, 4], dtype=np.float16)
    r = ref_max_pool_backward(g, x, (3,), (1,))
    assert r.dtype == np.float16
    _eq(r, [0, 3, 0, 4, 0])       # windows: [1 nan 3] -> 1, [nan 3 nan] -> 1, [3 nan 0] -> 3


def test_max_backward_2d_hand_and_given_indices():
    x = np.array([[1, 2, 0],
                  [4, 3, 9],
                  [5, 8, 7]], dtype=np.float64)
    g = np.array([[1.0, 10.0], [100.0, 1000.0]])
    # 2x2 windows stride 1: argmax (1,0), (1,2), (2,1), (1,2)
    _eq(ref_max_pool_backward(g, x, (2, 2), (1, 1)),
        [[0, 0, 0], [1, 0, 1010], [0, 100, 0]])
    # given indices are used as they are (even ones the forward would not pick)
    idx = np.array([[0, 2], [8, 8]])
    _eq(ref_max_pool_backward(g, x, (2, 2), (1, 1), indices=idx),
        [[1, 0, 10], [0, 0, 0], [0, 0, 1100]])
    # recomputed == the forward's indices
    _, fi = ref_max_pool(x, (2, 2), (1, 1))
    _eq(ref_max_pool_backward(g, x, (2, 2), (1, 1), indices=fi),
        ref_max_pool_backward(g, x, (2, 2), (1, 1)))


def test_max_backward_batch_axes_and_permuted_axes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5))
    kw = dict(kernel_size=(2, 3), stride=(1, 2), padding=((1, 0), (1, 1)), axes=(2, 0))
    v, i = ref_max_pool(x, **kw)
    g = rng.standard_normal(v.shape)
    r = ref_max_pool_backward(g, x, **kw)
    # adjoint identity of the gather x -> x[argmax]: <grad, y> == <g, y[argmax]>
    y = rng.standard_normal(x.shape)
    yv = np.empty_like(v)
    for idx in np.ndindex(*v.shape):
        a0, a2 = divmod(int(i[idx]), x.shape[2])       # pooled axes (0, 2), row-major
        yv[idx] = y[a0, idx[1], a2]
    _close(np.sum(r * y), np.sum(g * yv))
    # independent of the batch axis: slices pooled alone agree
    for c in range(3):
        _close(r[:, c, :], ref_max_pool_backward(g[:, c, :], x[:, c, :], (3, 2), (2, 1),
                                                 ((1, 1), (1, 0))))


def test_max_backward_rejects_bad_indices_and_shapes():
    x = np.arange(6.0)
    g = np.ones(3)
    with pytest.raises(ValueError, match="indices"):
        ref_max_pool_backward(g, x, (2,), indices=np.array([0, 6, 2]))
    with pytest.raises(ValueError, match="indices"):
        ref_max_pool_backward(g, x, (2,), indices=np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="grad_output"):
        ref_max_pool_backward(np.ones(4), x, (2,))
    with pytest.raises(TypeError):
        ref_max_pool_backward(np.ones(3, dtype=np.int32), x, (2,))


# ================================================================================ avg backward


def test_avg_backward_hand():
    g = np.array([1.0, 1.0])
    _eq(ref_avg_pool_backward(g, (3,), (2,), (1,)), [0.5, 1, 0.5])
    # n=6, k=3, s=2, p=1, ceil: windows start at -1, 1, 3, 5; the last covers 5, 6 (pad) and
    # 7 (past the padding): include-pad divisors 3, 3, 3, 2
    g = np.full(4, 6.0)
    kw = dict(kernel_size=(3,), stride=(2,), padding=1, ceil_mode=True)
    _eq(ref_avg_pool_backward(g, (6,), **kw), [2, 4, 2, 4, 2, 5])
    _eq(ref_avg_pool_backward(g, (6,), **kw, count_include_pad=False), [3, 5, 2, 4, 2, 8])
    _eq(ref_avg_pool_backward(g, (6,), **kw, divisor_override=2), [3, 6, 3, 6, 3, 6])
    _eq(ref_avg_pool_backward(g, (6,), **kw, divisor_override=-3), [-2, -4, -2, -4, -2, -4])
    # 2-d corner window of a 3x3 image pooled 2x2 in ceil mode holds one element
    r = ref_avg_pool_backward(np.ones((2, 2), np.float32), (3, 3), (2, 2), ceil_mode=True)
    assert r.dtype == np.float32
    _eq(r, [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1]])
    # dilation: taps 0 and 2 of each window
    _eq(ref_avg_pool_backward(np.array([2.0, 4.0]), (4,), (2,), (1,), 0, (2,)),
        [1, 2, 1, 2])


AVG_CASES = [
    ((7,), dict(kernel_size=(3,), stride=(2,), padding=1)),
    ((6,), dict(kernel_size=(3,), stride=(2,), padding=1, ceil_mode=True)),
    ((6,), dict(kernel_size=(3,), stride=(2,), padding=1, ceil_mode=True,
                count_include_pad=False)),
    ((5,), dict(kernel_size=(2,), stride=(2,), padding=1, ceil_mode=True,
                divisor_override=3)),
    ((2, 5, 4), dict(kernel_size=(3, 2), stride=(2, 1), padding=((1, 0), (1, 1)),
                     axes=(1, 2), ceil_mode=True)),
    ((4, 2, 5), dict(kernel_size=(2, 3), stride=(1, 2), padding=((0, 1), 1), dilation=(2, 1),
                     axes=(-1, 0), count_include_pad=False)),
    ((3, 3, 4), dict(kernel_size=(2, 2, 3), stride=(2, 1, 2), padding="same",
                     count_include_pad=False)),
    ((9,), dict(kernel_size=(4,), stride=(3,), padding=((2, 1),), dilation=(1,),
                ceil_mode=True)),
]


@pytest.mark.parametrize("shape, kw", AVG_CASES)
def test_avg_backward_finite_differences(shape, kw):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    geo_kw = {k: v for k, v in kw.items() if k not in ("count_include_pad", "divisor_override")}
    g = rng.standard_normal(ref_avg_pool(x, **geo_kw).shape)
    want = numgrad(lambda xx: ref_avg_pool(xx, **kw), x, g, 1e-3)   # linear: exact up to round-off
    got = ref_avg_pool_backward(g, shape, **kw)
    _close(got, want, rtol=1e-9, atol=1e-9)
    # adjoint identity
    _close(np.sum(got * x), np.sum(g * ref_avg_pool(x, **kw)))


# ================================================================================ lp backward


def test_lp_backward_hand():
    g = np.array([2.0])
    _close(ref_lp_pool_backward(g, np.array([3.0, 4.0]), 2, (2,)), [1.2, 1.6])
    _close(ref_lp_pool_backward(g, np.array([3.0, -4.0]), 2, (2,)), [1.2, -1.6])
    _eq(ref_lp_pool_backward(g, np.array([-1.0, 2.0]), 1, (2,)), [-2, 2])
    _eq(ref_lp_pool_backward(g, np.array([0.0, 0.0]), 2, (2,)), [0, 0])       # zero norm
    _eq(ref_lp_pool_backward(g, np.array([0.0, 0.0]), 0.5, (2,)), [0, 0])
    # p = 3: d/dx1 of (1 + 8) ** (1/3) = x1^2 * 9 ** (-2/3)
    _close(ref_lp_pool_backward(np.array([1.0]), np.array([1.0, 2.0]), 3, (2,)),
           [9 ** (-2 / 3), 4 * 9 ** (-2 / 3)])
    # padding contributes nothing; zero windows next to non-zero ones
    r = ref_lp_pool_backward(np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 3.0, 4.0]), 2,
                             (2,), (2,), 1, ceil_mode=False)
    _close(r, [0, 0, 1, 1])   # windows (-1,0): zero, (1,2): [0,3] -> [0,1], (3,4): [4] -> [1]
    r = ref_lp_pool_backward(np.array([1.0], np.float32), np.array([3.0, 4.0], np.float32), 2,
                             (2,))
    assert r.dtype == np.float32


LP_CASES = [
    ((7,), 2, dict(kernel_size=(3,), stride=(2,), padding=1)),
    ((6,), 3, dict(kernel_size=(3,), stride=(2,), padding=1, ceil_mode=True)),
    ((6,), 1.5, dict(kernel_size=(2,), stride=(1,))),
    ((5,), 0.5, dict(kernel_size=(2,), stride=(2,), ceil_mode=True)),
    ((5,), 1, dict(kernel_size=(3,), stride=(1,), padding=1)),
    ((2, 5, 4), 2.5, dict(kernel_size=(3, 2), stride=(2, 1), padding=((1, 0), (1, 1)),
                          axes=(1, 2), ceil_mode=True)),
    ((4, 2, 5), 4, dict(kernel_size=(2, 3), stride=(1, 2), padding=((0, 1), 1),
                        dilation=(2, 1), axes=(-1, 0))),
]


@pytest.mark.parametrize("shape, p, kw", LP_CASES)
def test_lp_backward_finite_differences(shape, p, kw):
    rng = np.random.default_rng(2)
    # values away from 0 (the norm is not differentiable there for p <= 1)
    x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    g = rng.standard_normal(ref_lp_pool(x, p, **kw).shape)
    want = numgrad(lambda xx: ref_lp_pool(xx, p, **kw), x, g, 1e-6)
    got = ref_lp_pool_backward(g, x, p, **kw)
    _close(got, want, rtol=1e-6, atol=1e-7)


# ================================================================================ max_unpool


def test_max_unpool_hand():
    x = np.array([[5, 7]], dtype=np.int8)
    r = ref_max_unpool(x, np.array([[1, 3]]), (4,))
    assert r.dtype == np.int8 and r.shape == (1, 4)
    _eq(r, [[0, 5, 0, 7]])
    x = np.array([[[1.5, 2.5]]])
    r = ref_max_unpool(x, np.array([[[4, 2]]]), (2, 3))
    _eq(r, [[[0, 0, 2.5], [0, 1.5, 0]]])
    # axes given: pool axis 0 of a (2, 3) array, batch axis 1
    x = np.array([[1, 2, 3], [4, 5, 6]])
    idx = np.array([[0, 3, 1], [2, 1, 0]])
    r = ref_max_unpool(x, idx, (4,), axes=(0,))
    _eq(r, [[1, 0, 6], [0, 5, 3], [4, 0, 0], [0, 2, 0]])
    with pytest.raises(ValueError, match="indices"):
        ref_max_unpool(x, idx, (3,), axes=(0,))
    with pytest.raises(ValueError, match="indices"):
        ref_max_unpool(x, -idx, (4,), axes=(0,))


def test_max_unpool_inverts_max_pool_positions():
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 3 * 6 * 5).reshape(2, 3, 6, 5).astype(np.float32)
    v, i = ref_max_pool(x, (2, 2))
    r = ref_max_unpool(v, i, (6, 5))
    mask = r != 0
    _eq(r[mask], x[mask])                         # every written value is where it came from
    assert mask.sum() == v.size


# ================================================================================ adaptive


def test_adaptive_bins():
    assert ref_adaptive_bins(10, 3) == [(0, 4), (3, 7), (6, 10)]
    assert ref_adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert ref_adaptive_bins(7, 7) == [(i, i + 1) for i in range(7)]
    assert ref_adaptive_bins(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert ref_adaptive_bins(4, 1) == [(0, 4)]
    bins = ref_adaptive_bins(224, 13)
    assert bins[0] == (0, 18) and bins[1] == (17, 35) and bins[-1] == (206, 224)
    for i, (a, b) in enumerate(bins):
        assert a == math.floor(i * 224 / 13) and b == math.ceil((i + 1) * 224 / 13)


def test_adaptive_geometry_forms():
    geo = ref_adaptive_geometry((2, 5, 10), (3, None))
    assert geo.axes == (1, 2) and geo.out_sizes == (3, 10) and geo.out_shape == (2, 3, 10)
    geo = ref_adaptive_geometry((2, 5, 10), (4, 2), axes=(2, 0))
    assert geo.axes == (0, 2) and geo.out_sizes == (2, 4) and geo.out_shape == (2, 5, 4)
    geo = ref_adaptive_geometry((2, 5, 10), 1, axes=(-1, -2))
    assert geo.out_shape == (2, 1, 1)
    for bad in [dict(output_size=3), dict(output_size=(0,)), dict(output_size=(-2, 1)),
                dict(output_size=(2, 2), axes=(1,)), dict(output_size=(1, 1, 1, 1))]:
        with pytest.raises(ValueError):
            ref_adaptive_geometry((2, 5, 10), **bad)


def test_adaptive_hand():
    x = np.arange(5.0)
    _eq(ref_adaptive_avg_pool(x, (3,)), [0.5, 2, 3.5])
    x = np.array([3, 1, 3, 2, 0], dtype=np.uint8)
    v, i = ref_adaptive_max_pool(x, (3,))
    assert v.dtype == np.uint8 and i.dtype == np.int64
    _eq(v, [3, 3, 2]); _eq(i, [0, 2, 3])            # bins [0,2) [1,4) [3,5); tie -> first
    r = ref_adaptive_avg_pool(np.array([1, 2, 3], dtype=np.int32), (1,))
    assert r.dtype == np.float64
    _eq(r, [2])
    x = np.array([[1, nan], [nan, 5]], dtype=np.float32)
    v, i = ref_adaptive_max_pool(x, (1, 1))
    assert np.isnan(v[0, 0]) and i[0, 0] == 1
    # 2-d flat indices: h * W + w
    x = np.array([[0, 1, 2], [9, 4, 5], [6, 7, 8]], dtype=np.int64)
    v, i = ref_adaptive_max_pool(x, (2, 1))      # rows [0,2) and [1,3)
    _eq(v, [[9], [9]]); _eq(i, [[3], [3]])
    # backward
    g = np.array([3.0, 6.0, 9.0])
    _eq(ref_adaptive_avg_pool_backward(g, (5,)), [1.5, 3.5, 2, 6.5, 4.5])
    _eq(ref_adaptive_max_pool_backward(np.array([1.0, 2.0, 4.0]),
                                       np.array([3, 1, 3, 2, 0], np.uint8), (3,)),
        [1, 0, 2, 4, 0])
    _eq(ref_adaptive_max_pool_backward(np.array([[1.0], [2.0]]), x, (2, 1)),
        [[0, 0, 0], [3, 0, 0], [0, 0, 0]])


def test_adaptive_avg_backward_axes():
    g = np.ones((2, 3, 4))
    # axes None: the axes where the shapes differ (axis 1); an identity axis needs no axes
    r = ref_adaptive_avg_pool_backward(g, (2, 5, 4))
    _close(r, ref_adaptive_avg_pool_backward(g, (2, 5, 4), axes=(1, 2)))
    _close(r, ref_adaptive_avg_pool_backward(g, (2, 5, 4), axes=(1,)))
    _close(r[0, :, 0], [1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2])
    _eq(ref_adaptive_avg_pool_backward(g, (2, 3, 4)), g)   # nothing pooled: identity
    with pytest.raises(ValueError):
        ref_adaptive_avg_pool_backward(g, (2, 5, 4), axes=(2,))   # axis 1 differs, not pooled
    with pytest.raises(ValueError):
        ref_adaptive_avg_pool_backward(g, (5, 4))


ADAPTIVE_CASES = [((10,), (3,)), ((5,), (3,)), ((7,), (7,)), ((3,), (5,)), ((2, 7, 5), (3, 2)),
                  ((4, 3, 2), (2, None, 1)), ((1, 11), (4,))]


@pytest.mark.parametrize("shape, osize", ADAPTIVE_CASES)
def test_adaptive_avg_backward_finite_differences(shape, osize):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    out = ref_adaptive_avg_pool(x, osize)
    g = rng.standard_normal(out.shape)
    want = numgrad(lambda xx: ref_adaptive_avg_pool(xx, osize), x, g, 1e-3)
    _close(ref_adaptive_avg_pool_backward(g, shape), want, rtol=1e-9, atol=1e-9)
    pooled = tuple(range(len(shape) - len(osize), len(shape)))
    _close(ref_adaptive_avg_pool_backward(g, shape, axes=pooled), want, rtol=1e-9, atol=1e-9)


def test_adaptive_max_backward_given_indices():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 7, 5))
    v, i = ref_adaptive_max_pool(x, (3, 2), axes=(2, 1))
    assert v.shape == (3, 2, 3)
    g = rng.standard_normal(v.shape)
    r = ref_adaptive_max_pool_backward(g, x, (3, 2), axes=(2, 1))
    _eq(r, ref_adaptive_max_pool_backward(g, x, (3, 2), axes=(2, 1), indices=i))
    for idx in np.ndindex(*v.shape):       # values sit at their indices
        h, w = divmod(int(i[idx]), 5)
        assert x[idx[0], h, w] == v[idx]
    with pytest.raises(ValueError, match="indices"):
        ref_adaptive_max_pool_backward(g, x, (3, 2), axes=(2, 1), indices=i + 35)


# ================================================================================ global


def test_global_axes():
    assert ref_global_axes(4) == (2, 3)
    assert ref_global_axes(4, (2, 1)) == (1, 2)
    assert ref_global_axes(3, -1) == (2,)
    with pytest.raises(ValueError):
        ref_global_axes(2)
    with pytest.raises(ValueError):
        ref_global_axes(3, (1, -2))


def test_global_hand():
    x = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    r = ref_global_avg_pool(x)
    assert r.dtype == np.float64 and r.shape == (2, 3)
    _eq(r, x.astype(np.float64).mean(axis=2))
    _eq(ref_global_avg_pool(x, keepdims=True), x.astype(np.float64).mean(axis=2, keepdims=True))
    _eq(ref_global_avg_pool(x, axes=(0, 2)), x.astype(np.float64).mean(axis=(0, 2)))
    v, i = ref_global_max_pool(x, axes=(0, 2))
    _eq(v, [15, 19, 23]); _eq(i, [7, 7, 7])       # flat over (axis0, axis2): 1 * 4 + 3
    # channels-last image (N, H, W, C), axes=(1, 2): h * W + w
    x = np.zeros((1, 2, 3, 2), dtype=np.float32)
    x[0, 1, 2, 0] = 5
    x[0, 0, 1, 1] = 7
    x[0, 1, 0, 1] = 7
    v, i = ref_global_max_pool(x, axes=(1, 2))
    _eq(v, [[5, 7]]); _eq(i, [[5, 1]])
    v, i = ref_global_max_pool(x, axes=(1, 2), keepdims=True)
    assert v.shape == i.shape == (1, 1, 1, 2)
    x = np.array([[[1, nan, 2, nan]]])
    v, i = ref_global_max_pool(x)
    assert np.isnan(v[0, 0]) and i[0, 0] == 1
    # backward
    g = np.array([[4.0, 8.0]])
    r = ref_global_avg_pool_backward(g, (1, 2, 2, 2))
    _eq(r, [[[[1, 1], [1, 1]], [[2, 2], [2, 2]]]])
    _eq(ref_global_avg_pool_backward(g[..., None, None], (1, 2, 2, 2), keepdims=True), r)
    x = np.zeros((1, 2, 3, 2), dtype=np.float32)
    x[0, 1, 2, 0] = 5
    x[0, 0, 1, 1] = 7
    r = ref_global_max_pool_backward(np.array([[1.0, 2.0]], np.float32), x, axes=(1, 2))
    assert r.dtype == np.float32
    want = np.zeros_like(x)
    want[0, 1, 2, 0] = 1
    want[0, 0, 1, 1] = 2
    _eq(r, want)
    with pytest.raises(ValueError, match="indices"):
        ref_global_max_pool_backward(np.array([[1.0, 2.0]]), x, axes=(1, 2),
                                     indices=np.array([[6, 0]]))
    with pytest.raises(ValueError, match="grad_output"):
        ref_global_max_pool_backward(np.array([[1.0, 2.0]]), x, axes=(1, 2), keepdims=True)


def test_global_finite_differences_and_empty_batch():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 2, 2))
    for axes, keep in [(None, False), ((1, 2), True), ((0, 3), False), ((0, 1, 2, 3), False)]:
        out = ref_global_avg_pool(x, axes, keep)
        g = rng.standard_normal(out.shape)
        want = numgrad(lambda xx: ref_global_avg_pool(xx, axes, keep), x, g, 1e-3)
        _close(ref_global_avg_pool_backward(g, x.shape, axes, keep), want, rtol=1e-9,
               atol=1e-9)
        v, i = ref_global_max_pool(x, axes, keep)
        want = numgrad(lambda xx: ref_global_max_pool(xx, axes, keep)[0], x, g, 1e-6)
        _close(ref_global_max_pool_backward(g, x, axes, keep), want, rtol=1e-6, atol=1e-7)
        _close(ref_global_max_pool_backward(g, x, axes, keep, indices=i), want, rtol=1e-6,
               atol=1e-7)
    x = np.zeros((0, 3, 4))
    assert ref_global_avg_pool(x).shape == (0, 3)
    assert ref_global_max_pool(x)[1].shape == (0, 3)
    assert ref_global_avg_pool_backward(np.zeros((0, 3)), (0, 3, 4)).shape == (0, 3, 4)


# ================================================================================ versus torch


@st.composite
def torch_window_cases(draw, op):
    return draw_torch_window(draw, op, max_kernel=3, extra={1: 9, 2: 6}, max_channels=2)


@settings(max_examples=examples(60), **SETTINGS)
@given(torch_window_cases("max"), seeds, st.booleans())
def test_max_backward_vs_torch(case, seed, ties):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    shape, k, s, p, d, ceil_mode, geo = case
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-2, 3, shape).astype(np.float64)
    else:
        x = rng.permutation(math.prod(shape)).reshape(shape).astype(np.float64)
    g = rng.standard_normal(geo.out_shape)
    tf = F.max_pool1d if len(k) == 1 else F.max_pool2d
    tv, tgrad = torch_grad(lambda t: tf(t, k, s, p, d, ceil_mode=ceil_mode), x, g)
    axes = tuple(range(2, 2 + len(k)))
    _eq(ref_max_pool(x, k, s, p, d, axes, ceil_mode)[0], tv)
    _close(ref_max_pool_backward(g, x, k, s, p, d, axes, ceil_mode), tgrad)


@settings(max_examples=examples(60), **SETTINGS)
@given(torch_window_cases("avg"), st.booleans(), st.sampled_from([None, None, 1, 2, 5, -3]),
       seeds)
def test_avg_backward_vs_torch(case, cip, divisor, seed):
    pytest.importorskip("torch")
    shape, k, s, p, d, ceil_mode, geo = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(geo.out_shape)
    fn = torch_avg_pool(k, s, p, ceil_mode, cip, divisor)
    _, tgrad = torch_grad(fn, x, g)
    axes = tuple(range(2, 2 + len(k)))
    got = ref_avg_pool_backward(g, shape, k, s, p, d, axes, ceil_mode, cip, divisor)
    _close(got, tgrad)


@settings(max_examples=examples(40), **SETTINGS)
@given(torch_window_cases("lp"), st.sampled_from([1, 2, 3, 1.5, 0.75]), seeds)
def test_lp_backward_vs_torch(case, p, seed):
    pytest.importorskip("torch")
    shape, k, s, _, _, ceil_mode, geo = case
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 2.0, shape)           # torch's lp_pool is the p-norm for x > 0
    g = rng.standard_normal(geo.out_shape)
    fn = torch_lp_pool(p, k, s, ceil_mode)
    tv, tgrad = torch_grad(fn, x, g)
    axes = tuple(range(2, 2 + len(k)))
    _close(ref_lp_pool(x, p, k, s, 0, 1, axes, ceil_mode), tv, rtol=1e-10)
    _close(ref_lp_pool_backward(g, x, p, k, s, 0, 1, axes, ceil_mode), tgrad, rtol=1e-9,
           atol=1e-12)


@pytest.mark.parametrize("shape, k, s, p", [((2, 3, 6, 5), 2, 2, 0), ((1, 2, 7, 7), 3, 2, 1),
                                            ((2, 1, 5, 8), (2, 3), (2, 2), (1, 0))])
def test_max_unpool_vs_torch(shape, k, s, p):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    tv, ti = F.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    want = F.max_unpool2d(tv, ti, k, s, p, output_size=shape[2:]).numpy()
    _eq(ref_max_unpool(tv.numpy(), ti.numpy(), shape[2:]), want)
    # also through the reference's own max indices
    v, i = ref_max_pool(x, (k, k) if isinstance(k, int) else k,
                        (s, s) if isinstance(s, int) else s, p)
    _eq(i, ti.numpy())
    _eq(ref_max_unpool(v, i, shape[2:], axes=(2, 3)), want)
    # distinct random indices, unpooled to a bigger size than the pool would give
    idx = np.stack([rng.permutation(40)[:12] for _ in range(6)]).reshape(2, 3, 3, 4)
    vals = rng.standard_normal((2, 3, 3, 4))
    want = F.max_unpool2d(torch.tensor(vals), torch.tensor(idx), 2, output_size=(5, 8)).numpy()
    _eq(ref_max_unpool(vals, idx, (5, 8)), want)


@pytest.mark.parametrize("in_hw, out_hw", [((10, 5), (3, 3)), ((224, 9), (13, 2)),
                                           ((5, 7), (3, 7)), ((7, 4), (7, 5)),
                                           ((6, 6), (None, 4)), ((3, 2), (1, 1))])
def test_adaptive_vs_torch(in_hw, out_hw):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    shape = (2, 2) + in_hw
    x = rng.permutation(math.prod(shape)).reshape(shape).astype(np.float64)
    ref_v = ref_adaptive_avg_pool(x, out_hw)
    g = rng.standard_normal(ref_v.shape)
    tv, tgrad = torch_grad(lambda t: F.adaptive_avg_pool2d(t, out_hw), x, g)
    _close(ref_v, tv)
    _close(ref_adaptive_avg_pool_backward(g, shape), tgrad)
    tv, ti = F.adaptive_max_pool2d(torch.tensor(x), out_hw, return_indices=True)
    v, i = ref_adaptive_max_pool(x, out_hw)
    _eq(v, tv.numpy())
    _eq(i, ti.numpy())
    _, tgrad = torch_grad(lambda t: F.adaptive_max_pool2d(t, out_hw), x, g)
    _close(ref_adaptive_max_pool_backward(g, x, out_hw), tgrad)


@pytest.mark.parametrize("n, o", [(10, 3), (224, 13), (5, 3), (7, 7), (3, 5)])
def test_adaptive_1d_vs_torch(n, o):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    x = rng.integers(-3, 4, (2, 3, n)).astype(np.float64)      # ties: first position wins
    g = rng.standard_normal((2, 3, o))
    tv, tgrad = torch_grad(lambda t: F.adaptive_avg_pool1d(t, o), x, g)
    _close(ref_adaptive_avg_pool(x, (o,)), tv)
    _close(ref_adaptive_avg_pool_backward(g, x.shape), tgrad)
    tv, ti = F.adaptive_max_pool1d(torch.tensor(x), o, return_indices=True)
    v, i = ref_adaptive_max_pool(x, o, axes=-1)
    _eq(v, tv.numpy())
    _eq(i, ti.numpy())
    _, tgrad = torch_grad(lambda t: F.adaptive_max_pool1d(t, o), x, g)
    _close(ref_adaptive_max_pool_backward(g, x, o, axes=(2,)), tgrad)


def test_global_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x = rng.permutation(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(np.float64)
    g = rng.standard_normal((2, 3))
    tv, tgrad = torch_grad(lambda t: t.mean(dim=(2, 3)), x, g)
    _close(ref_global_avg_pool(x), tv)
    _close(ref_global_avg_pool_backward(g, x.shape), tgrad)
    tv, tgrad = torch_grad(lambda t: t.amax(dim=(2, 3)), x, g)
    _eq(ref_global_max_pool(x)[0], tv)
    _close(ref_global_max_pool_backward(g, x), tgrad)
    _, ti = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), 1, return_indices=True)
    _eq(ref_global_max_pool(x, keepdims=True)[1], ti.numpy())
