"""LP pooling is the true p-norm of each window at every magnitude, forward and backward: no
|x| ** p overflows or underflows into the result (1e200 ** 2, 1e-200 ** 2, 3 ** 1000).

The oracle is the decimal arithmetic of ``reference.ref_lp_pool_exact`` and
``reference_backward.ref_lp_pool_backward_exact`` (60 digits, no overflow), which shares
nothing with the kernels' scaling by the window's largest |x|.
"""

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cypool import _backward, _window, _window_kernels
from reference import ref_lp_pool_exact
from reference_backward import ref_lp_pool_backward_exact
from support import SETTINGS, examples, geometry_or_none, ref_kwargs, seeds, window_cases

P_VALUES = [0.5, 1, 2, 3, 1000]

# Powers of ten of the magnitudes drawn per element: each set puts whole windows, or parts of
# them, where float64 sums of |x| ** p leave the floats.
SCALES = {
    np.float64: {
        "huge": (200, 300),
        "tiny": (-200, -300),
        "subnormal": (-310, -318),
        "mixed": (200, -200),
        "spread": (300, 0, -300, -316),
    },
    np.float32: {
        "huge": (36, 37),
        "tiny": (-36, -37),
        "subnormal": (-40, -43),
        "mixed": (36, -36),
    },
}
SCALE_CASES = [(dt, name) for dt, sets in SCALES.items() for name in sets]

# Result tolerances: a few roundings of the scaled sums (p = 0.5 squares the sum's error), and
# the spacing of the subnormal results of subnormal windows.
RTOL = {np.float64: 1e-13, np.float32: 1e-6}
ATOL = {np.float64: 1e-321, np.float32: 1e-44}

GEOMETRIES = [
    ((2, 3, 7, 8), dict(kernel_size=(3, 2), stride=(2, 1), padding=1, dilation=(1, 2))),
    ((2, 3, 6, 7), dict(kernel_size=(2, 3), stride=1, padding=(1, 1), ceil_mode=True)),
    ((3, 2, 11), dict(kernel_size=(3,), stride=2, padding=1)),
    ((2, 2, 4, 4, 5), dict(kernel_size=(2, 2, 3), stride=(1, 2, 1), dilation=(1, 1, 2))),
]


def case_rng(*key):
    """A generator seeded by the test case (str hashes change from run to run)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def extreme_values(rng, shape, dtype, scales):
    """Random signs and mantissas in [1, 10), times 10 ** s with s drawn per element."""
    mantissa = rng.uniform(1.0, 10.0, shape) * rng.choice([-1.0, 1.0], shape)
    return (mantissa * 10.0 ** rng.choice(scales, shape)).astype(dtype)


def channels_last(x, kwargs):
    """x with axis 1 (channels) moved last, and the call's pooled axes to match."""
    npooled = len(kwargs["kernel_size"])
    axes = tuple(range(x.ndim - 1 - npooled, x.ndim - 1))
    return np.moveaxis(x, 1, -1), dict(kwargs, axes=axes)


def layout(x, kwargs, name):
    return channels_last(x, kwargs) if name == "channels_last" else (x, kwargs)


def assert_norms(got, want, dtype):
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=ATOL[dtype])


def assert_gradient(got, want, mag, dtype, p):
    """|got - want| within the tolerance of the gradient's magnitude (sum of |g| times the pair
    factors): a sum of pairs of both signs may cancel below its terms' rounding. A factor
    (|x| / y) ** (p - 1) carries the rounding of |x| / y (and of y) times |p - 1|. Gradients
    within a factor 8 of the float64 range are not checked: their pairs' float64 sum may
    overflow where the exact one does not (p < 1, 1e-316 beside 1e300)."""
    assert got.dtype == want.dtype
    got, want = got.astype(np.float64), want.astype(np.float64)
    mag = mag.astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.where(got == want, 0.0, np.abs(got - want))  # equal infinities agree
    bound = RTOL[dtype] * max(1.0, abs(p - 1)) * mag + ATOL[dtype]
    checked = mag < np.finfo(np.float64).max / 8
    assert (err <= bound)[checked].all(), (got, want)


# ================================================================================ regressions


def test_lp_pool_regression_examples():
    np.testing.assert_allclose(cypool.lp_pool(np.array([[1e200, 1e200]]), 2, (2,)),
                               [[math.hypot(1e200, 1e200)]], rtol=2e-16)
    np.testing.assert_allclose(cypool.lp_pool(np.array([[1e-200, 1e-200]]), 2, (2,)),
                               [[math.hypot(1e-200, 1e-200)]], rtol=2e-16)
    np.testing.assert_allclose(cypool.lp_pool(np.array([2.0, 3.0]), 1000, (2,)), [3.0],
                               rtol=2e-16)


def test_lp_pool_backward_regression_example():
    got = cypool.lp_pool_backward(np.ones((1, 1)), np.array([[1e200, 1e200]]), 2, (2,))
    np.testing.assert_allclose(got, [[1 / math.sqrt(2), 1 / math.sqrt(2)]], rtol=2e-16)


# ================================================================================ forward


@pytest.mark.parametrize("dtype, scales", SCALE_CASES)
@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("geometry", range(len(GEOMETRIES)))
@pytest.mark.parametrize("order", ["channels_first", "channels_last"])
def test_lp_pool_extremes_match_exact_reference(dtype, scales, p, geometry, order):
    shape, kwargs = GEOMETRIES[geometry]
    rng = case_rng(scales, p, geometry)
    x, kw = layout(extreme_values(rng, shape, dtype, SCALES[dtype][scales]), kwargs, order)
    assert_norms(cypool.lp_pool(x, p, **kw), ref_lp_pool_exact(x, p, **kw), dtype)


@pytest.mark.parametrize("p", P_VALUES)
def test_lp_pool_nan_and_inf_beside_extremes(p):
    """NaN still propagates and an inf still gives inf where |x| ** p would overflow."""
    x = np.array([[1e200, np.nan, 1e-200, 1e300, np.inf, 1e-310]])
    got = cypool.lp_pool(x, p, (2,), 1)
    assert np.isnan(got[0, :2]).all()
    np.testing.assert_allclose(got[0, 2], float(ref_lp_pool_exact(x[:, 2:4], p, (2,))[0, 0]),
                               rtol=1e-13)
    assert np.isposinf(got[0, 3:]).all()


@pytest.mark.parametrize("p", P_VALUES)
def test_lp_pool_zero_windows_beside_tiny_ones(p):
    """A window of zeros is 0; one whose |x| ** p all underflow is not."""
    x = np.array([0.0, 0.0, 0.0, 5e-324, -1e-300, 0.0])
    got = cypool.lp_pool(x, p, (2,))
    np.testing.assert_allclose(got, ref_lp_pool_exact(x, p, (2,)), rtol=1e-13, atol=1e-323)
    assert got[0] == 0 and got[1] > 0 and got[2] > 0


# ================================================================================ backward


@pytest.mark.parametrize("dtype, scales", SCALE_CASES)
@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("geometry", [0, 2, 3])
@pytest.mark.parametrize("order", ["channels_first", "channels_last"])
def test_lp_pool_backward_extremes_match_exact_reference(dtype, scales, p, geometry, order):
    shape, kwargs = GEOMETRIES[geometry]
    rng = case_rng(scales, p, geometry, "backward")
    x, kw = layout(extreme_values(rng, shape, dtype, SCALES[dtype][scales]), kwargs, order)
    g = rng.standard_normal(cypool.lp_pool(x, p, **kw).shape).astype(dtype)
    got = cypool.lp_pool_backward(g, x, p, **kw)
    want = ref_lp_pool_backward_exact(g, x, p, **kw)
    mag = ref_lp_pool_backward_exact(np.abs(g), np.abs(x), p, **kw)
    assert_gradient(got, want, mag, dtype, p)


@pytest.mark.parametrize("p", [0.5, 1.5, 3])
def test_lp_pool_backward_mixed_magnitudes_in_one_window(p):
    """1e-200 beside 1e200: the pair factor (|x| / y) ** (p - 1) of the small element comes
    from a ratio (1e-400) below the floats, and is 1e200 for p = 0.5."""
    x = np.array([[1e200, -1e-200, 3e-310, 2e200]])
    g = np.array([[1.5]])
    got = cypool.lp_pool_backward(g, x, p, (4,))
    want = ref_lp_pool_backward_exact(g, x, p, (4,))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def relative_numgrad(f, x, g, rel):
    """Central differences of sum(g * f(x)), each element stepped by rel * |x|."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        h = rel * abs(old)
        x[i] = old + h
        fp = math.fsum((g * f(x)).ravel())
        x[i] = old - h
        fm = math.fsum((g * f(x)).ravel())
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300, 1e-300, 1e-310])
@pytest.mark.parametrize("p", [0.5, 1, 2, 3])
def test_lp_pool_backward_finite_differences_at_extreme_scales(scale, p):
    """The gradient against central differences with steps at the values' own scale (1e-5 of
    each: at 1e-310 the norms' subnormal rounding is then 1e-7 of the differences)."""
    rng = np.random.default_rng(21)
    shape, kw = (2, 7), dict(kernel_size=(3,), stride=(2,), padding=1)
    x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape) * scale
    g = rng.standard_normal(cypool.lp_pool(x, p, **kw).shape)
    want = relative_numgrad(lambda xx: cypool.lp_pool(xx, p, **kw), x, g, 1e-5)
    got = cypool.lp_pool_backward(g, x, p, **kw)
    mag = ref_lp_pool_backward_exact(np.abs(g), np.abs(x), p, **kw)
    assert (np.abs(got - want) <= 1e-6 * mag).all(), (got, want)


# ================================================================================ hypothesis


@st.composite
def extreme_cases(draw):
    """(shape, call kwargs, dtype, scales, p): a random window geometry (maybe invalid), the
    dtype, which SCALES to draw x's magnitudes from, and p."""
    shape, kwargs = draw(window_cases(300))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scales = draw(st.sampled_from(sorted(SCALES[dtype])))
    p = draw(st.sampled_from(P_VALUES) | st.floats(0.25, 40.0))
    return shape, kwargs, dtype, scales, p


@settings(max_examples=examples(120), **SETTINGS)
@given(extreme_cases(), seeds)
def test_lp_pool_and_backward_extremes_hypothesis(case, seed):
    shape, kwargs, dtype, scales, p = case
    if geometry_or_none(shape, kwargs) is None:
        return
    rng = np.random.default_rng(seed)
    x = extreme_values(rng, shape, dtype, SCALES[dtype][scales])
    rk = ref_kwargs(kwargs)
    y = cypool.lp_pool(x, p, **kwargs)
    assert_norms(y, ref_lp_pool_exact(x, p, **rk), dtype)
    g = rng.standard_normal(y.shape).astype(dtype)
    got = cypool.lp_pool_backward(g, x, p, **kwargs)
    assert_gradient(got, ref_lp_pool_backward_exact(g, x, p, **rk),
                    ref_lp_pool_backward_exact(np.abs(g), np.abs(x), p, **rk), dtype, p)


# ================================================================================ invariance


def _extreme_batch(dtype):
    """Arrays big enough for several work items per thread, at mixed extreme scales."""
    rng = np.random.default_rng(5)
    scales = SCALES[dtype]["spread" if dtype == np.float64 else "mixed"] + (0,)
    x = extreme_values(rng, (3, 6, 19, 23), dtype, scales)
    return x, np.moveaxis(x, 1, -1)


def _check_finite(y, dx):
    """Every norm of _extreme_batch and its gradient are finite, and the norms positive (no
    |x| ** p overflowed or underflowed into them)."""
    assert np.isfinite(y).all() and (y > 0).all()
    assert np.isfinite(dx).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_lp_extremes_do_not_depend_on_threads(dtype, p):
    x, xl = _extreme_batch(dtype)
    for arr, axes in ((x, (2, 3)), (xl, (1, 2))):
        kw = dict(kernel_size=(3, 3), stride=(2, 1), padding=1, axes=axes)
        g = np.random.default_rng(6).standard_normal(cypool.lp_pool(arr, p, **kw).shape)
        g = g.astype(dtype)
        first = None
        for threads in (1, 2, 3):
            y = cypool.lp_pool(arr, p, **kw, num_threads=threads)
            dx = cypool.lp_pool_backward(g, arr, p, **kw, num_threads=threads)
            if first is None:
                _check_finite(y, dx)
                first = y.tobytes(), dx.tobytes()
            assert (y.tobytes(), dx.tobytes()) == first


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1, 2, 0.75, 1000])
def test_lp_extremes_avx2_matches_baseline_bit_for_bit(monkeypatch, dtype, p):
    avx2 = pytest.importorskip("cypool._window_kernels_avx2")
    x, xl = _extreme_batch(dtype)
    for arr, axes in ((x, (2, 3)), (xl, (1, 2))):
        kw = dict(kernel_size=(2, 3), stride=1, padding=1, axes=axes)
        g = np.random.default_rng(8).standard_normal(cypool.lp_pool(arr, p, **kw).shape)
        g = g.astype(dtype)
        results = []
        for module in (_window_kernels, avx2):
            monkeypatch.setattr(_window, "_window_kernels", module)
            monkeypatch.setattr(_backward, "_kernels", module)
            y, dx = cypool.lp_pool(arr, p, **kw), cypool.lp_pool_backward(g, arr, p, **kw)
            _check_finite(y, dx)
            results.append((y.tobytes(), dx.tobytes()))
        assert results[0] == results[1]


@pytest.mark.parametrize("p", [2, 3])
def test_dask_lp_pool_extremes_match_in_memory(p):
    da = pytest.importorskip("dask.array")
    import cypool.dask

    x, _ = _extreme_batch(np.float64)
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=1)
    lazy = cypool.dask.lp_pool(da.from_array(x, chunks=(2, 3, 7, 9)), p, **kw)
    want = ref_lp_pool_exact(x[:1, :2], p, **kw)
    got = lazy.compute()
    np.testing.assert_allclose(got, cypool.lp_pool(x, p, **kw), rtol=1e-14, atol=1e-321)
    np.testing.assert_allclose(got[:1, :2], want, rtol=1e-13, atol=1e-321)
