"""Hand-computed checks of the slow reference in ``reference.py`` (the test oracle).

These do not touch cypool: they make sure the oracle itself follows the README's API rules.
"""

import math

import numpy as np
import pytest

from reference import ref_avg_pool, ref_geometry, ref_lp_pool, ref_max_pool

nan = np.nan
inf = np.inf


def _eq(a, b):
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "n, k, s, p, expected",
    [
        (6, 1, 2, 0, 3),
        (32, 1, 2, 0, 16),
        (5, 2, 2, 1, 3),
        (5, 3, 3, 1, 2),
        (5, 2, 2, 0, 3),   # ceil keeps the partial last window [4]
        (4, 2, 2, 0, 2),   # exact fit: ceil == floor
    ],
)
def test_ceil_mode_sizes(n, k, s, p, expected):
    geo = ref_geometry((n,), (k,), (s,), p, ceil_mode=True)
    assert geo.out_sizes == (expected,)


@pytest.mark.parametrize(
    "n, k, s, p, expected",
    [(6, 1, 2, 0, 3), (32, 1, 2, 0, 16), (5, 2, 2, 1, 3), (5, 3, 3, 1, 2), (5, 2, 2, 0, 2),
     (7, 3, 1, 1, 7), (7, 3, 2, 0, 3)],
)
def test_floor_mode_sizes(n, k, s, p, expected):
    assert ref_geometry((n,), (k,), (s,), p).out_sizes == (expected,)


@pytest.mark.parametrize(
    "n, k, s, d, pads, out",
    [
        (5, 3, 2, 1, (1, 1), 3),   # out = ceil(5/2) = 3, total = 2*2 + 3 - 5 = 2
        (6, 3, 2, 1, (0, 1), 3),   # total = 2*2 + 3 - 6 = 1 -> odd pad after
        (4, 4, 1, 1, (1, 2), 4),   # total = 3
        (7, 2, 3, 1, (0, 1), 3),   # total = max(2*3 + 2 - 7, 0) = 1
        (2, 1, 2, 1, (0, 0), 1),   # total = max(0 + 1 - 2, 0) = 0
        (5, 2, 1, 2, (1, 1), 5),   # extent 3, total = 4 + 3 - 5 = 2
    ],
)
def test_same_padding(n, k, s, d, pads, out):
    geo = ref_geometry((n,), (k,), (s,), "same", (d,))
    assert (geo.pad_before[0], geo.pad_after[0]) == pads
    assert geo.out_sizes == (out,)
    assert geo.out_sizes[0] == math.ceil(n / s)


def test_valid_padding_is_zero():
    geo = ref_geometry((7,), (3,), (2,), "valid")
    assert (geo.pad_before, geo.pad_after, geo.out_sizes) == ((0,), (0,), (3,))


def test_padding_forms_and_axis_order():
    # axes given as (2, 0): per-axis params follow that order, and get sorted with the axes
    geo = ref_geometry((5, 3, 9), (3, 2), (2, 1), ((1, 0), (1, 1)), (1, 1), axes=(2, 0))
    assert geo.axes == (0, 2)
    assert geo.kernel == (2, 3)
    assert geo.stride == (1, 2)
    assert geo.pad_before == (1, 1) and geo.pad_after == (1, 0)
    # axis 0: n=5, pads 1+1, k=2, s=1 -> 6 ; axis 2: n=9, pads 1+0, k=3, s=2 -> 4
    assert geo.out_shape == (6, 3, 4)
    geo = ref_geometry((5, 3, 9), (3, 2), (2, 1), (1, 0), axes=(-1, 0))
    assert geo.pad_before == (0, 1) and geo.pad_after == (0, 1)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((5,), dict(kernel_size=(3,), padding=2)),                     # pad > extent/2
        ((5,), dict(kernel_size=(2,), padding=(0, 2))),                # after pad too big
        ((1,), dict(kernel_size=(2,), padding=((1, 2),), dilation=3)),  # window of padding only
        ((2,), dict(kernel_size=(3,))),                                # output size 0
        ((2, 2), dict(kernel_size=(1, 1), axes=(0, -2))),                # duplicate axes
        ((2, 2), dict(kernel_size=(1,), axes=(2,))),                   # out of range
        ((2, 2), dict(kernel_size=1)),                                 # int kernel, axes None
        ((4,), dict(kernel_size=(0,))),
        ((4,), dict(kernel_size=(2,), stride=(0,))),
        ((4,), dict(kernel_size=(2,), dilation=(0,))),
        ((4,), dict(kernel_size=(2,), padding=-1)),
        ((4,), dict(kernel_size=(2,), padding="full")),
    ],
)
def test_geometry_errors(shape, kwargs):
    with pytest.raises(ValueError):
        ref_geometry(shape, **kwargs)


# --------------------------------------------------------------------------- max


def test_max_1d_basic_and_ceil():
    x = np.array([1, 3, 2, 5, 4], dtype=np.float32)
    v, i = ref_max_pool(x, (2,))
    _eq(v, [3, 5]); _eq(i, [1, 3])
    assert v.dtype == np.float32 and i.dtype == np.int64
    v, i = ref_max_pool(x, (2,), ceil_mode=True)
    _eq(v, [3, 5, 4]); _eq(i, [1, 3, 4])
    v, i = ref_max_pool(x, (3,), (2,), 1)
    _eq(v, [3, 5, 5]); _eq(i, [1, 3, 3])


def test_max_ties_first_position():
    x = np.array([2, 2, 1, 2], dtype=np.int16)
    v, i = ref_max_pool(x, (2,), (1,))
    _eq(v, [2, 2, 2]); _eq(i, [0, 1, 3])
    # 2-d ties: row-major scan over the window, so (0, 1) beats (1, 0)
    x = np.array([[0, 7], [7, 7]], dtype=np.uint8)
    v, i = ref_max_pool(x, (2, 2))
    _eq(v, [[7]]); _eq(i, [[1]])


def test_max_nan_and_inf():
    x = np.array([1, nan, 3, nan, -inf, -inf, -inf, 0], dtype=np.float64)
    v, i = ref_max_pool(x, (4,))
    _eq(v, [nan, 0]); _eq(i, [1, 7])
    v, i = ref_max_pool(x, (3,), (1,))
    _eq(v, [nan, nan, nan, nan, -inf, 0]); _eq(i, [1, 1, 3, 3, 4, 7])
    x = np.array([-inf, -inf, -inf], dtype=np.float16)
    v, i = ref_max_pool(x, (3,), (1,), 1)
    _eq(v, [-inf, -inf, -inf]); _eq(i, [0, 0, 1])


def test_max_padding_never_wins_int_min():
    x = np.full((2, 3), -128, dtype=np.int8)
    v, i = ref_max_pool(x, (3, 3), (1, 1), 1)
    assert v.dtype == np.int8
    _eq(v, np.full((2, 3), -128))
    _eq(i, [[0, 0, 1], [0, 0, 1]])


def test_max_2d_and_permuted_axes():
    x = np.arange(16).reshape(4, 4)
    v, i = ref_max_pool(x, (2, 2))
    _eq(v, [[5, 7], [13, 15]]); _eq(i, [[5, 7], [13, 15]])
    x = np.arange(12).reshape(3, 4)
    # axes (1, 0): kernel 2 along axis 1, kernel 3 along axis 0
    v, i = ref_max_pool(x, (2, 3), axes=(1, 0))
    _eq(v, [[9, 11]]); _eq(i, [[9, 11]])
    # indices are flat over the pooled axes only, ignoring batch axes
    x = np.arange(24).reshape(2, 3, 4)[:, ::-1, :]
    v, i = ref_max_pool(x, (2,), axes=(0,))
    _eq(v, x[1:2]); _eq(i, np.ones((1, 3, 4)))
    v, i = ref_max_pool(x, (3, 2), axes=(1, 2))
    # x[b] rows are [8..11],[4..7],[0..3] (+12 b): max is row 0 -> flat 0*4 + 1, 0*4 + 3
    _eq(v, [[[9, 11]], [[21, 23]]]); _eq(i, [[[1, 3]], [[1, 3]]])


def test_max_3_axes_dilation():
    x = np.arange(16).reshape(2, 2, 2, 2)
    v, i = ref_max_pool(x, (2, 2, 2), axes=(1, 2, 3))
    _eq(v.ravel(), [7, 15]); _eq(i.ravel(), [7, 7])
    x = np.array([5, 1, 0, 9, 2, 8, 3], dtype=np.int64)
    # dilation 2, k 2: taps (0,2),(1,3),(2,4),(3,5),(4,6)
    v, i = ref_max_pool(x, (2,), (1,), 0, (2,))
    _eq(v, [5, 9, 2, 9, 3]); _eq(i, [0, 3, 4, 3, 6])


def test_max_uint64_extremes():
    big = np.iinfo(np.uint64).max
    x = np.array([big - 1, big, 0], dtype=np.uint64)
    v, i = ref_max_pool(x, (2,), (1,))
    _eq(v, np.array([big, big], dtype=np.uint64)); _eq(i, [1, 1])


# --------------------------------------------------------------------------- avg


def test_avg_count_include_pad():
    x = np.array([1, 2, 3, 4], dtype=np.float64)
    _eq(ref_avg_pool(x, (3,), (1,), 1), [1, 2, 3, 7 / 3])
    _eq(ref_avg_pool(x, (3,), (1,), 1, count_include_pad=False), [1.5, 2, 3, 3.5])
    _eq(ref_avg_pool(x, (2,), divisor_override=3), [1, 7 / 3])


def test_avg_ceil_mode_overhang_divisor():
    x = np.array([1, 2, 3, 4, 5], dtype=np.float32)
    r = ref_avg_pool(x, (2,), ceil_mode=True)
    assert r.dtype == np.float32
    _eq(r, [1.5, 3.5, 5])
    x = np.array([1, 2, 3, 4, 5, 6], dtype=np.float64)
    # windows start at -1, 1, 3, 5; the last one covers 5 (input), 6 (pad), 7 (overhang)
    _eq(ref_avg_pool(x, (3,), (2,), 1, ceil_mode=True), [1, 3, 5, 3])
    _eq(ref_avg_pool(x, (3,), (2,), 1, ceil_mode=True, count_include_pad=False),
        [1.5, 3, 5, 6])


def test_avg_2d_dtypes():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    r = ref_avg_pool(x, (2, 3), axes=(1, 0))
    assert r.dtype == np.float64
    _eq(r, [[4.5, 6.5]])
    r = ref_avg_pool(x.astype(np.float16), (2, 2), (1, 2), padding=((0, 1), (1, 0)),
                     count_include_pad=False)
    assert r.dtype == np.float16
    # rows (0,1),(1,2),(2,pad) ; cols (pad,0),(1,2)
    _eq(r, [[2, 3.5], [6, 7.5], [8, 9.5]])
    r = ref_avg_pool(x.astype(np.uint8), (2, 2), (1, 2), padding=((0, 1), (1, 0)))
    _eq(r, [[1, 3.5], [3, 7.5], [2, 19 / 4]])


def test_avg_dilation():
    x = np.array([1, 2, 3, 4, 5], dtype=np.float64)
    # k 2, d 2, p 1: extent 3, taps (-1,1),(0,2),(1,3),(2,4),(3,5)
    _eq(ref_avg_pool(x, (2,), (1,), 1, (2,)), [1, 2, 3, 4, 2])
    _eq(ref_avg_pool(x, (2,), (1,), 1, (2,), count_include_pad=False), [2, 2, 3, 4, 4])


# --------------------------------------------------------------------------- lp


def test_lp():
    x = np.array([3, -4, 0, 5, 12], dtype=np.float64)
    _eq(ref_lp_pool(x, 2, (2,)), [5, 5])
    _eq(ref_lp_pool(x, 2, (2,), (2,), 1), [3, 4, 13])
    _eq(ref_lp_pool(x, 1, (3,), (1,)), [7, 9, 17])
    r = ref_lp_pool(x.astype(np.int8), 2, (2,), (3,), ceil_mode=True)
    assert r.dtype == np.float64
    _eq(r, [5, 13])
    np.testing.assert_allclose(ref_lp_pool(np.array([1.0, 4.0]), 0.5, (2,)), [9.0])
    with pytest.raises(ValueError):
        ref_lp_pool(x, 0, (2,))
    with pytest.raises(ValueError):
        ref_lp_pool(x, np.inf, (2,))
