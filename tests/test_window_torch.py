"""Differential tests of cypool's window pooling forward against torch.nn.functional."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

import cypool  # noqa: E402
from reference import ref_geometry  # noqa: E402
from support import SETTINGS, TORCH_TOL, examples, layout_axes, to_layout  # noqa: E402


@st.composite
def torch_cases(draw, op):
    """(x NC*spatial, kernel, stride, padding, dilation, ceil_mode, dtype, channels_last)."""
    rank = draw(st.integers(1, 3))
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 3))
    ks, ss, ps, ds, sizes = [], [], [], [], []
    for _ in range(rank):
        k = draw(st.integers(1, 4 if rank < 3 else 3))
        d = draw(st.integers(1, 3)) if op == "max" and draw(st.booleans()) else 1
        s = draw(st.integers(1, 3))
        p = 0 if op == "lp" else draw(st.integers(0, k // 2))   # torch: pad <= k // 2
        e = d * (k - 1) + 1
        lo = max(1, e - 2 * p)
        if op == "avg" and rank == 3:
            lo = max(lo, k)  # torch's avg_pool3d refuses inputs smaller than the kernel
        size = draw(st.integers(lo, lo + {1: 10, 2: 6, 3: 3}[rank]))
        ks.append(k), ss.append(s), ps.append(p), ds.append(d), sizes.append(size)
    ceil_mode = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    channels_last = draw(st.booleans()) and rank >= 1
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    shape = (n, c, *sizes)
    mode = draw(st.sampled_from(["distinct", "ties"]))
    if op == "lp":
        x = np.abs(rng.standard_normal(shape)) + (0.0 if mode == "distinct" else 0.5)
    elif mode == "distinct":
        x = rng.permutation(np.prod(shape)).reshape(shape) - 7.5 + rng.random(shape) * 0.5
    else:
        x = rng.integers(-2, 3, shape).astype(np.float64)
    x = x.astype(dtype)
    # every option as tuple or int, like a user would pass them
    def pick(vals):
        return vals[0] if len(set(vals)) == 1 and draw(st.booleans()) else tuple(vals)
    geo = dict(kernel=pick(ks), stride=pick(ss) if ss != ks or draw(st.booleans()) else None,
               padding=pick(ps), dilation=pick(ds))
    # cypool refuses windows made only of padding (torch returns -inf there)
    try:
        ref = ref_geometry(shape, tuple(ks), tuple(ss) if geo["stride"] is not None else None,
                           tuple(ps), tuple(ds), tuple(range(2, 2 + rank)), ceil_mode)
    except ValueError:
        assume(False)
    if op == "lp" and ceil_mode:
        # torch's lp_pool divides partial windows wrongly: only compare full windows
        floor = ref_geometry(shape, tuple(ks), tuple(ss) if geo["stride"] is not None else None,
                             0, 1, tuple(range(2, 2 + rank)), False)
        assume(floor.out_sizes == ref.out_sizes)
    return x, rank, geo, ceil_mode, channels_last


@settings(max_examples=examples(500), **SETTINGS)
@given(torch_cases("max"))
def test_max_pool_vs_torch(case):
    x, rank, g, ceil_mode, cl = case
    tf = getattr(F, f"max_pool{rank}d")
    stride = g["stride"] if g["stride"] is not None else g["kernel"]
    tv, ti = tf(torch.from_numpy(x), g["kernel"], stride, g["padding"], g["dilation"],
                ceil_mode=ceil_mode, return_indices=True)
    xv = to_layout(x, cl)
    v, i = cypool.max_pool(xv, g["kernel"], g["stride"], g["padding"], g["dilation"],
                           axes=layout_axes(rank, cl), ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(v, to_layout(tv.numpy(), cl))
    np.testing.assert_array_equal(i, to_layout(ti.numpy(), cl))
    # the alias, with the same positional order as torch
    alias = getattr(cypool, f"max_pool{rank}d")
    av, ai = alias(xv, g["kernel"], g["stride"], g["padding"], g["dilation"], ceil_mode, True,
                   channels_last=cl)
    np.testing.assert_array_equal(av, v)
    np.testing.assert_array_equal(ai, i)


@settings(max_examples=examples(500), **SETTINGS)
@given(torch_cases("avg"), st.booleans(), st.sampled_from([None, None, 1, 2, 5, -3]))
def test_avg_pool_vs_torch(case, count_include_pad, divisor):
    x, rank, g, ceil_mode, cl = case
    assume(g["dilation"] in (1, (1,) * rank))
    t = torch.from_numpy(x)
    if rank == 1:
        # avg_pool1d has no divisor_override: go through avg_pool2d on a unit axis
        def as2(v, unit=1):
            v = v if isinstance(v, int) else v[0]
            return (unit, v)
        stride = None if g["stride"] is None else as2(g["stride"])
        want = F.avg_pool2d(t[:, :, None, :], as2(g["kernel"]), stride, as2(g["padding"], 0),
                            ceil_mode, count_include_pad, divisor)[:, :, 0, :]
    else:
        tf = getattr(F, f"avg_pool{rank}d")
        want = tf(t, g["kernel"], g["stride"], g["padding"], ceil_mode, count_include_pad,
                  divisor)
    xv = to_layout(x, cl)
    got = cypool.avg_pool(xv, g["kernel"], g["stride"], g["padding"], axes=layout_axes(rank, cl),
                          ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                          divisor_override=divisor)
    assert got.dtype == x.dtype
    np.testing.assert_allclose(got, to_layout(want.numpy(), cl), **TORCH_TOL[x.dtype.type])
    alias = getattr(cypool, f"avg_pool{rank}d")
    got2 = alias(xv, g["kernel"], g["stride"], g["padding"], ceil_mode, count_include_pad,
                 divisor, channels_last=cl)
    np.testing.assert_array_equal(got2, got)


@settings(max_examples=examples(300), **SETTINGS)
@given(torch_cases("lp"), st.sampled_from([1, 2, 3, 1.5, 0.75]))
def test_lp_pool_vs_torch(case, p):
    x, rank, g, ceil_mode, cl = case
    tf = getattr(F, f"lp_pool{rank}d", None)
    if tf is None:  # pragma: no cover - old torch without lp_pool3d
        assume(False)
    def torch_arg(v):  # lp_pool1d wants plain ints
        return v[0] if rank == 1 and isinstance(v, tuple) else v
    want = tf(torch.from_numpy(x), p, torch_arg(g["kernel"]), torch_arg(g["stride"]), ceil_mode)
    xv = to_layout(x, cl)
    got = cypool.lp_pool(xv, p, g["kernel"], g["stride"], axes=layout_axes(rank, cl),
                         ceil_mode=ceil_mode)
    tol = dict(rtol=2e-5, atol=1e-6) if x.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, to_layout(want.numpy(), cl), **tol)


def test_channels_last_image_vs_torch():
    """The typical use: an NHWC image batch pooled with axes=(1, 2)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 17, 12)).astype(np.float32)
    xt = x.transpose(0, 2, 3, 1)
    tv, ti = F.max_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    v, i = cypool.max_pool(xt, 3, 2, 1, axes=(1, 2), ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(v, tv.numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(i, ti.numpy().transpose(0, 2, 3, 1))
    ta = F.avg_pool2d(torch.from_numpy(x), (3, 2), (2, 1), (1, 1), True, False)
    a = cypool.avg_pool(xt, (3, 2), (2, 1), (1, 1), axes=(1, 2), ceil_mode=True,
                        count_include_pad=False)
    np.testing.assert_allclose(a, ta.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
