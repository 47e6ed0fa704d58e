"""Memory and sizes: no leaks over many calls (RSS and tracemalloc), none on errors
raised mid-call, 64-bit index arithmetic on broadcast inputs of more than 2**31 elements, and
no hidden full-size temporaries in any forward op (peak memory within the output plus a small
scratch).

Bounds (see each test):
- leaks: RSS growth over 95,000 calls after a 5,000-call warm-up < RSS_BOUND (4 MiB, about
  44 bytes per call); then traced (Python and NumPy) memory growth over three 3,000-call
  windows < TRACED_BOUND (8 KiB, under 3 bytes per call) in the median window, so a one-off table
  growth inside the interpreter does not fail the test. The same for 20,000 failing calls.
- peakmem: tracemalloc's peak during a forward call on a ~32 MB input minus the memory traced
  before it is at most the returned arrays' bytes + SCRATCH (1 MiB); with ``out=`` just
  SCRATCH. The same bound holds for the process's peak RSS (VmHWM, which also sees the
  kernels' own malloc scratch) in a subprocess that makes glibc return freed memory at once.
  Known exceptions, asserted with their own bound: float16 inputs are computed from a float32
  copy (plus a float32 result temporary), and integer inputs to averaging ops from a float64
  copy of the input.
- 64-bit sizes: broadcast (zero-stride) inputs of R * C = 2**31 + 229,382 elements, never
  allocated (traced peak < 16 MiB): values, flat indices beyond 2**31 and divisors above 2**31.
  Global pooling reads inputs whose reduced axes do not merge into one view (non-adjacent axes,
  transposed, flipped, broadcast) in place too (known bug on NumPy < 2.1: a full copy).
"""

import gc
import json
import os
import platform
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import cypool

MIB = 1 << 20
RSS_BOUND = 4 * MIB
TRACED_BOUND = 8 * 1024
SCRATCH = MIB

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="reads /proc/self (Linux)")


def _traced_peak(f):
    """(peak traced bytes during f() above those traced before it, f's result)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        r = f()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, r


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ================================================================================ leaks


def _leak_calls():
    """Small calls of every public op family, forward and backward, with return_indices and
    out= variants, other dtypes and layouts."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    x64 = x.astype(np.float64)
    x16 = x.astype(np.float16)
    xi = (x * 10).astype(np.int16)
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    y, idx = cypool.max_pool(x, (2, 2), return_indices=True)
    g = np.ones_like(y)
    out_y, out_i, gx = np.empty_like(y), np.empty_like(idx), np.empty_like(x)
    ga = np.ones((2, 3, 4, 4), np.float32)
    gg = np.ones((2, 3), np.float32)
    out_g, out_gi = np.empty((2, 3), np.float32), np.empty((2, 3), np.int64)
    h = rng.standard_normal((2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    sc = rng.standard_normal((2, 5)).astype(np.float32)
    gh = np.ones((2, 4), np.float32)
    out_h, out_hi = np.empty((2, 4), np.float32), np.empty((2, 4), np.int64)
    vals = h.reshape(10, 4)
    vsc = np.ascontiguousarray(vals[:, 0])
    offs = np.array([0, 3, 3, 10])
    gs = np.ones((3, 4), np.float32)
    _, sidx = cypool.segment_pool(vals, offs, "max", return_indices=True)
    return [
        lambda: cypool.max_pool(x, (2, 2)),
        lambda: cypool.max_pool(x64, (3, 3), 2, 1, return_indices=True),
        lambda: cypool.max_pool(x, (2, 2), return_indices=True, out=(out_y, out_i)),
        lambda: cypool.max_pool2d(xi, 2, ceil_mode=True),
        lambda: cypool.max_pool(xl, (2, 2), axes=(1, 2)),
        lambda: cypool.avg_pool(x16, (2, 2)),
        lambda: cypool.avg_pool(x, (3, 3), 1, 1, count_include_pad=False, out=gx),
        lambda: cypool.avg_pool(xi, (2, 2), padding="same"),
        lambda: cypool.lp_pool(x, 2.0, (2, 2)),
        lambda: cypool.max_pool_backward(g, x, (2, 2), indices=idx),
        lambda: cypool.max_pool_backward(g, x, (2, 2), out=gx),
        lambda: cypool.avg_pool_backward(g, x.shape, (2, 2), out=gx),
        lambda: cypool.lp_pool_backward(g, x, 2.0, (2, 2)),
        lambda: cypool.max_unpool(y, idx, (6, 6)),
        lambda: cypool.adaptive_avg_pool(x, (4, 4)),
        lambda: cypool.adaptive_max_pool(x, (4, 4), return_indices=True),
        lambda: cypool.adaptive_avg_pool_backward(ga, x.shape),
        lambda: cypool.adaptive_max_pool_backward(ga, x, (4, 4)),
        lambda: cypool.global_avg_pool(x),
        lambda: cypool.global_max_pool(x, return_indices=True, out=(out_g, out_gi)),
        lambda: cypool.global_max_pool(xl, axes=(1, 2), keepdims=True),
        lambda: cypool.global_avg_pool_backward(gg, x.shape),
        lambda: cypool.global_max_pool_backward(gg, x),
        lambda: cypool.sequence_pool(h, mask, "mean"),
        lambda: cypool.sequence_pool(h, mask, "max", return_indices=True, out=(out_h, out_hi)),
        lambda: cypool.sequence_pool(h, mask, "attention", scores=sc),
        lambda: cypool.sequence_pool(h, lengths=[2, 5], mode="last"),
        lambda: cypool.sequence_pool_backward(gh, h, mask, "attention", scores=sc),
        lambda: cypool.sequence_pool_backward(gh, h, None, "max", lengths=[2, 5]),
        lambda: cypool.segment_pool(vals, offs, "mean"),
        lambda: cypool.segment_pool(vals, offs, "max", return_indices=True),
        lambda: cypool.segment_pool_backward(gs, vals, offs, "last"),
        lambda: cypool.segment_pool_backward(gs, vals, offs, "min", indices=sidx),
        lambda: cypool.segment_pool_backward(gs, vals, offs, "attention", scores=vsc),
    ]


def _error_calls():
    """(call, exception type) pairs that fail mid-call: after the inputs were converted and
    the geometry or row tables built, at the out= check, the indices check, the offsets check."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    xbig = x.astype(">f4")  # converted (a copy) before the failing check
    y, idx = cypool.max_pool(x, (2, 2), return_indices=True)
    g = np.ones_like(y)
    bad_idx = idx.copy()
    bad_idx[1, 2, 0, 0] = 36
    neg_idx = idx.copy()
    neg_idx[0, 0, 1, 1] = -1
    readonly = np.empty_like(y)
    readonly.flags.writeable = False
    h = rng.standard_normal((2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    gh = np.ones((2, 4), np.float32)
    vals = h.reshape(10, 4)
    gs = np.ones((3, 4), np.float32)
    bad_tok = np.zeros((2, 4), np.int64)
    bad_tok[1, 3] = 7  # outside its row's tokens [0, 5)
    return [
        (lambda: cypool.max_pool(x, (2, 2), out=np.empty((2, 3, 3, 4), np.float32)), ValueError),
        (lambda: cypool.max_pool(xbig, (2, 2), return_indices=True,
                                 out=(np.empty_like(y), np.empty(y.shape, np.int32))), ValueError),
        (lambda: cypool.avg_pool(x, (2, 2), out=readonly), ValueError),
        (lambda: cypool.avg_pool(x, (2, 2), out=x[:, :, :3, :3]), ValueError),
        (lambda: cypool.lp_pool(x, -1.0, (2, 2)), ValueError),
        (lambda: cypool.max_pool(x, (2, 2), num_threads=0), ValueError),
        (lambda: cypool.avg_pool(x.astype(bool), (2, 2)), TypeError),
        (lambda: cypool.max_unpool(y, bad_idx, (6, 6)), ValueError),
        (lambda: cypool.max_unpool(y, neg_idx, (6, 6)), ValueError),
        (lambda: cypool.max_pool_backward(g, xbig, (2, 2), indices=bad_idx), ValueError),
        (lambda: cypool.global_max_pool(x, out=np.empty((2, 3), np.float64)), ValueError),
        (lambda: cypool.adaptive_max_pool_backward(np.ones((2, 3, 4, 4), np.float32), x, (4, 4),
                                                   indices=np.full((2, 3, 4, 4), 99)), ValueError),
        (lambda: cypool.sequence_pool(h, mask[:, :4], "mean"), ValueError),
        (lambda: cypool.sequence_pool(h, lengths=[7, 1], mode="sum"), ValueError),
        (lambda: cypool.sequence_pool(h, mask, "attention"), ValueError),
        (lambda: cypool.sequence_pool(h, mask, "mean", out=np.empty((2, 4), np.float64)),
         ValueError),
        (lambda: cypool.sequence_pool_backward(gh, h, mask, "max", indices=bad_tok), ValueError),
        (lambda: cypool.segment_pool(vals, [0, 5, 3, 10], "mean"), ValueError),
        (lambda: cypool.segment_pool(vals, [0, 3, 11], "max"), ValueError),
        (lambda: cypool.segment_pool(vals, [-1, 3, 10], "sum"), ValueError),
        (lambda: cypool.segment_pool_backward(gs, vals, [0, 3, 3, 10], "max",
                                              indices=np.full((3, 4), 5)), ValueError),
    ]


def _run(calls, n, start=0):
    k = len(calls)
    for i in range(start, start + n):
        calls[i % k]()


def _traced_growth(calls, window, windows=3):
    """Traced memory growth over consecutive windows of calls, after a traced warm-up (caches
    and free lists refill with traced blocks for a few thousand calls after tracing starts)."""
    tracemalloc.start()
    try:
        _run(calls, 3_000)
        gc.collect()
        marks = [tracemalloc.get_traced_memory()[0]]
        for w in range(windows):
            _run(calls, window, w * window)
            gc.collect()
            marks.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    return [b - a for a, b in zip(marks, marks[1:])]


@linux_only
def test_100k_calls_leak_nothing():
    """RSS over 100,000 calls, then traced memory over 3 windows of 3,000 more. A leak grows
    every window; the median window is checked, as the interpreter may grow a table (e.g. its
    interned strings) once."""
    calls = _leak_calls()
    _run(calls, 5_000)
    gc.collect()
    before = _rss()
    _run(calls, 95_000, 5_000)
    gc.collect()
    growth = _rss() - before
    traced = _traced_growth(calls, 3_000)
    print(f"\nRSS growth over 95,000 calls after a 5,000-call warm-up: {growth / 1024:.0f} KiB; "
          f"traced growth of three 3,000-call windows: {traced} bytes")
    assert growth < RSS_BOUND, f"RSS grew by {growth / MIB:.2f} MiB over 95,000 calls"
    assert sorted(traced)[1] < TRACED_BOUND, f"traced memory grew by {traced} bytes"


def _raise_all(calls, n, start=0):
    k = len(calls)
    for i in range(start, start + n):
        call, exc = calls[i % k]
        try:
            call()
        except exc:
            continue
        raise AssertionError(f"error call {i % k} did not raise {exc.__name__}")


@linux_only
def test_errors_raised_mid_call_leak_nothing():
    calls = _error_calls()
    errors = [(lambda c=c: _raise_all([c], 1)) for c in calls]
    _raise_all(calls, 2_000)
    gc.collect()
    before = _rss()
    _raise_all(calls, 18_000, 2_000)
    gc.collect()
    rss_growth = _rss() - before
    traced = _traced_growth(errors, 3_000)
    print(f"\n20,000 failing calls: RSS growth {rss_growth / 1024:.0f} KiB; then traced growth "
          f"of three 3,000-call windows {traced} bytes")
    assert rss_growth < RSS_BOUND, \
        f"RSS grew by {rss_growth / MIB:.2f} MiB over 18,000 failing calls"
    assert sorted(traced)[1] < TRACED_BOUND, f"traced memory grew by {traced} bytes"


# ================================================================================ 64-bit sizes

# R * C > 2**31 elements, never allocated: broadcast (zero-stride) views of a column or a row.
R, C = 2 ** 15 + 2, 2 ** 16 + 3
assert R * C > 2 ** 31 and (R - 2) * C > 2 ** 31


def _column(dtype, top=5):
    """(R, C) view of a column: 0, except 1 in row 3 and `top` in rows R-2 and R-1 (a tie:
    the first maximum is row R-2, at flat index (R-2)*C > 2**31)."""
    col = np.zeros((R, 1), dtype)
    col[-2:] = top
    col[3] = 1
    return np.broadcast_to(col, (R, C))


def _row(dtype, top=3):
    """(R, C) view of a row with its maximum at the last column: the first maximum is in row
    0, at flat index C-1."""
    row = np.zeros(C, dtype)
    row[-1] = top
    row[7] = -2
    return np.broadcast_to(row, (R, C))


# The big inputs below are never allocated; a call may allocate its result and small tables.
NO_COPY = 16 * MIB

# Global pooling merges the reduced axes into one when their strides allow it, else reads
# them as they are, never copying. It once copied unmergeable views (NumPy's .shape setter
# builds the copy before it refuses): 2 GiB for the broadcast input below, so the big test
# first checks for that regression on a small input and fails without making the copy.
COPY_BUG = "global pooling copies inputs whose reduced axes do not merge"


def _global_pool_copies_unmergeable_input() -> bool:
    x = np.zeros((4, 256, 256), np.float32).transpose(0, 2, 1)
    peak, _ = _traced_peak(lambda: cypool.global_max_pool(x, axes=(1, 2)))
    return peak > x.nbytes // 2


def test_global_max_argmax_beyond_2_31():
    assert not _global_pool_copies_unmergeable_input(), COPY_BUG
    b = _column(np.int8)
    assert b.strides == (1, 0) and b.size > 2 ** 31
    peak, (values, indices) = _traced_peak(
        lambda: cypool.global_max_pool(b, axes=(0, 1), return_indices=True))
    assert values.dtype == np.int8 and values.shape == ()
    assert int(values) == 5
    assert indices.dtype == np.int64 and int(indices) == (R - 2) * C
    assert peak < NO_COPY
    # values only (another kernel path), N, C, H, W with keepdims
    peak, v = _traced_peak(lambda: cypool.global_max_pool(b[None, None], keepdims=True))
    assert v.shape == (1, 1, 1, 1) and int(v[0, 0, 0, 0]) == 5
    assert peak < NO_COPY


@pytest.mark.parametrize("view", ["transposed", "flipped", "broadcast", "axes (1, 3)"])
@pytest.mark.parametrize("op", ["max", "avg", "max backward"])
def test_global_pool_reads_unmergeable_views_in_place(op, view):
    """4 MiB input; a global pool of it (or the gradient of one, which is as big as the input)
    allocates under 64 kB more than its result (COPY_BUG, fixed)."""
    x = np.ones((4, 16, 128, 128), np.float32)
    if op == "max backward":
        g = np.ones((4, 128) if view == "axes (1, 3)" else (4, 16), np.float32)

        def f(v, **kw):
            return cypool.global_max_pool_backward(g, v, **kw)
    else:
        f = cypool.global_max_pool if op == "max" else cypool.global_avg_pool
    call = {"transposed": lambda: f(x.transpose(0, 1, 3, 2)),
            "flipped": lambda: f(x[:, :, ::-1]),
            "broadcast": lambda: f(np.broadcast_to(x[:, :, :1], x.shape)),
            "axes (1, 3)": lambda: f(x, axes=(1, 3))}[view]
    peak, r = _traced_peak(call)
    if op == "max backward":
        assert r.shape == x.shape and r.sum() == g.size
    else:
        assert (r == 1).all()
    assert peak < r.nbytes + 64 * 1024, f"peak {peak} bytes for a {x.nbytes}-byte input"


@pytest.mark.parametrize("dtype", [np.int8, np.float32])
def test_window_max_over_2_31_elements(dtype):
    """One window covering the whole broadcast input (the window kernels' argmax): values and
    flat indices h * W + w beyond 2**31, without copying the input."""
    peak, (v, i) = _traced_peak(lambda: cypool.max_pool(_column(dtype), (R, C),
                                                        return_indices=True))
    assert v.shape == i.shape == (1, 1)
    assert v[0, 0] == 5 and i[0, 0] == (R - 2) * C
    assert peak < NO_COPY
    v, i = cypool.max_pool(_row(dtype), (R, C), return_indices=True)
    assert v[0, 0] == 3 and i[0, 0] == C - 1
    peak, (v, i) = _traced_peak(lambda: cypool.adaptive_max_pool(_column(dtype), (1, 1),
                                                                 return_indices=True))
    assert v[0, 0] == 5 and i[0, 0] == (R - 2) * C
    assert peak < NO_COPY
    # two windows, each of more than 2**30 elements
    v, i = cypool.max_pool(_column(dtype), (R // 2, C), return_indices=True)
    assert v[:, 0].tolist() == [1, 5]
    assert i[:, 0].tolist() == [3 * C, (R - 2) * C]


def test_window_avg_divisor_over_2_31():
    """The divisor R * C (> 2**31) and the float64 sum of > 2**31 elements."""
    b = _column(np.float32)
    want = (5 + 5 + 1) / R
    peak, got = _traced_peak(lambda: cypool.avg_pool(b, (R, C)))
    assert got.dtype == np.float32 and got.shape == (1, 1)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-6)
    assert peak < NO_COPY
    got = cypool.adaptive_avg_pool(b, (1, 1))
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-6)


def test_sequence_and_segment_pool_over_2_31_elements():
    """Broadcast (N, D) token tables of more than 2**31 elements: values (N, D) = column
    values (token t holds col[t] in every feature)."""
    N, D = R, C
    col = np.zeros((N, 1), np.float32)
    col[-2:] = 5
    col[3] = 1
    col[10] = -4
    values = np.broadcast_to(col, (N, D))
    assert values.size > 2 ** 31
    offsets = [0, 7, N]
    peak, (v, i) = _traced_peak(lambda: cypool.segment_pool(values, offsets, "max",
                                                            return_indices=True))
    assert v.shape == (2, D) and (v[0] == 1).all() and (v[1] == 5).all()
    assert (i[0] == 3).all() and (i[1] == N - 2).all()
    assert peak < NO_COPY
    v, i = cypool.segment_pool(values, offsets, "min", return_indices=True)
    assert (v[0] == 0).all() and (i[0] == 0).all()
    assert (v[1] == -4).all() and (i[1] == 10).all()
    s = cypool.segment_pool(values, offsets, "sum")
    assert (s[0] == 1).all() and (s[1] == 6).all()
    m = cypool.segment_pool(values, offsets, "mean")
    np.testing.assert_allclose(m[1], 6 / (N - 7), rtol=1e-6)
    h = values[None]
    peak, (v, i) = _traced_peak(lambda: cypool.sequence_pool(h, None, "max",
                                                             return_indices=True))
    assert v.shape == (1, D) and (v == 5).all() and (i == N - 2).all()
    assert peak < NO_COPY
    m = cypool.sequence_pool(h, None, "mean")
    np.testing.assert_allclose(m, 7 / N, rtol=1e-6)
    last = cypool.sequence_pool(h, lengths=[11], mode="last")
    assert (last == -4).all()


# ================================================================================ peakmem


def _inputs():
    """~32 MB inputs (2**23 float32 elements), built once per process."""
    if not hasattr(_inputs, "cache"):
        rng = np.random.default_rng(2)
        x = rng.standard_normal((8, 64, 128, 128), dtype=np.float32)
        y, idx = cypool.max_pool(x, (2, 2), return_indices=True)
        h = x.reshape(64, 128, 1024)
        _inputs.cache = dict(
            x=x,
            xl=np.ascontiguousarray(np.moveaxis(x, 1, -1)),
            x3=x.reshape(8, 64, 32, 32, 16),
            x64=x.reshape(2, -1)[:1].reshape(4, 64, 128, 128).astype(np.float64),
            xi8=rng.integers(-100, 100, (32, 64, 128, 128), dtype=np.int8),
            y=y, idx=idx, h=h,
            mask=rng.random((64, 128)) < 0.8,
            lengths=rng.integers(0, 129, 64),
            scores=rng.standard_normal((64, 128), dtype=np.float32),
            values=h.reshape(8192, 1024),
            offsets=np.concatenate([[0], np.sort(rng.integers(0, 8193, 63)), [8192]]),
            vscores=rng.standard_normal(8192, dtype=np.float32),
        )
    return _inputs.cache


SEQUENCE_MODES = ["mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
                  "attention"]
SEGMENT_MODES = ["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention"]


def _forward_ops():
    """name -> f(inputs): every forward op on ~32 MB inputs, in several layouts and dtypes."""
    ops = {
        "max 3x3/2 p1": lambda a: cypool.max_pool(a["x"], (3, 3), 2, 1),
        "max 3x3/2 p1 idx": lambda a: cypool.max_pool(a["x"], (3, 3), 2, 1, return_indices=True),
        "max 2x2 NHWC": lambda a: cypool.max_pool(a["xl"], (2, 2), axes=(1, 2)),
        "max 3x3/1 flipped view": lambda a: cypool.max_pool(a["x"][:, ::-1, ::-1], (3, 3), 1, 1),
        "max 2x2x2 3-d idx": lambda a: cypool.max_pool(a["x3"], (2, 2, 2), return_indices=True),
        "max 3x3/2 int8 idx": lambda a: cypool.max_pool(a["xi8"], (3, 3), 2, return_indices=True),
        "max_pool2d NHWC ceil": lambda a: cypool.max_pool2d(a["xl"], 3, 2, 1, ceil_mode=True,
                                                            channels_last=True),
        "avg 3x3/1 p1": lambda a: cypool.avg_pool(a["x"], (3, 3), 1, 1),
        "avg 3x3/2 p1 NHWC no-pad-count": lambda a: cypool.avg_pool(
            a["xl"], (3, 3), 2, 1, axes=(1, 2), count_include_pad=False),
        "avg 2x2 float64": lambda a: cypool.avg_pool(a["x64"], (2, 2)),
        "avg 2x2x2 3-d dilated": lambda a: cypool.avg_pool(a["x3"], (2, 2, 2), 2, 0, 2),
        "lp2 2x2": lambda a: cypool.lp_pool(a["x"], 2.0, (2, 2)),
        "lp3 3x3/1 p1": lambda a: cypool.lp_pool(a["x"], 3.0, (3, 3), 1, 1),
        "lp1.5 NHWC": lambda a: cypool.lp_pool(a["xl"], 1.5, (2, 2), axes=(1, 2)),
        "adaptive avg 7x7": lambda a: cypool.adaptive_avg_pool(a["x"], (7, 7)),
        "adaptive avg NHWC": lambda a: cypool.adaptive_avg_pool(a["xl"], (5, 9), axes=(1, 2)),
        "adaptive max 7x7 idx": lambda a: cypool.adaptive_max_pool(a["x"], (7, 7),
                                                                   return_indices=True),
        "adaptive max int8": lambda a: cypool.adaptive_max_pool(a["xi8"], (3, 3)),
        "global avg": lambda a: cypool.global_avg_pool(a["x"]),
        "global avg NHWC": lambda a: cypool.global_avg_pool(a["xl"], axes=(1, 2)),
        "global max idx": lambda a: cypool.global_max_pool(a["x"], return_indices=True),
        "global max NHWC": lambda a: cypool.global_max_pool(a["xl"], axes=(1, 2), keepdims=True),
        "global max int8": lambda a: cypool.global_max_pool(a["xi8"], axes=(2, 3)),
        "max_unpool": lambda a: cypool.max_unpool(a["y"], a["idx"], (128, 128)),
    }
    for mode in SEQUENCE_MODES:
        ops[f"sequence {mode}"] = lambda a, m=mode: cypool.sequence_pool(
            a["h"], a["mask"], m, scores=a["scores"] if m == "attention" else None,
            return_indices=m in ("max", "min"))
    ops["sequence mean lengths"] = lambda a: cypool.sequence_pool(a["h"], lengths=a["lengths"])
    ops["sequence max batch view"] = lambda a: cypool.sequence_pool(
        a["h"].reshape(8, 8, 128, 1024)[:, ::-1], None, "max")
    for mode in SEGMENT_MODES:
        ops[f"segment {mode}"] = lambda a, m=mode: cypool.segment_pool(
            a["values"], a["offsets"], m, scores=a["vscores"] if m == "attention" else None,
            return_indices=m in ("max", "min"))
    return ops


def _out_ops():
    """name -> (f(inputs, out), out shapes and dtypes): forward ops writing into out=."""
    return {
        "max 3x3/2 p1 out=": (lambda a, o: cypool.max_pool(a["x"], (3, 3), 2, 1, out=o[0]),
                              [((8, 64, 64, 64), np.float32)]),
        "max idx out=": (lambda a, o: cypool.max_pool(a["x"], (2, 2), return_indices=True,
                                                      out=tuple(o)),
                         [((8, 64, 64, 64), np.float32), ((8, 64, 64, 64), np.int64)]),
        "avg 3x3/1 p1 out=": (lambda a, o: cypool.avg_pool(a["x"], (3, 3), 1, 1, out=o[0]),
                              [((8, 64, 128, 128), np.float32)]),
        "lp2 out=": (lambda a, o: cypool.lp_pool(a["x"], 2.0, (2, 2), out=o[0]),
                     [((8, 64, 64, 64), np.float32)]),
        "global avg out=": (lambda a, o: cypool.global_avg_pool(a["x"], out=o[0]),
                            [((8, 64), np.float32)]),
        "max_unpool out=": (lambda a, o: cypool.max_unpool(a["y"], a["idx"], (128, 128),
                                                           out=o[0]),
                            [((8, 64, 128, 128), np.float32)]),
        "sequence mean out=": (lambda a, o: cypool.sequence_pool(a["h"], a["mask"], out=o[0]),
                               [((64, 1024), np.float32)]),
        "segment max out=": (lambda a, o: cypool.segment_pool(a["values"], a["offsets"], "max",
                                                              return_indices=True, out=tuple(o)),
                             [((64, 1024), np.float32), ((64, 1024), np.int64)]),
    }


def _result_bytes(r):
    return sum(a.nbytes for a in (r if isinstance(r, tuple) else (r,)))


@pytest.mark.parametrize("name", list(_forward_ops()))
def test_peakmem_forward_within_output_plus_scratch(name):
    a = _inputs()
    f = _forward_ops()[name]
    f(a)  # warm-up
    peak, r = _traced_peak(lambda: f(a))
    out = _result_bytes(r)
    print(f"\n{name}: peak {peak / MIB:.3f} MiB, output {out / MIB:.3f} MiB, "
          f"extra {(peak - out) / 1024:.1f} KiB")
    assert peak <= out + SCRATCH, (f"{name}: peak {peak} bytes above the {out} bytes of the "
                                   f"result + {SCRATCH} bytes of scratch")


@pytest.mark.parametrize("name", list(_out_ops()))
def test_peakmem_forward_into_out_is_scratch_only(name):
    a = _inputs()
    f, specs = _out_ops()[name]
    outs = [np.empty(shape, dtype) for shape, dtype in specs]
    f(a, outs)
    peak, r = _traced_peak(lambda: f(a, outs))
    assert all(x is o for x, o in zip(r if isinstance(r, tuple) else (r,), outs))
    print(f"\n{name}: peak {peak / 1024:.1f} KiB")
    assert peak <= SCRATCH, f"{name}: peak {peak} bytes with out= given"


# Known limits: float16 is computed in float32 (a float32 copy of the input, and of the result
# when the kernel writes float32), integer input to an averaging op in float64 (a float64 copy).
def _known_copy_ops():
    def f16(a):
        if "x16" not in a:
            a["x16"] = a["x"].astype(np.float16)
            a["h16"] = a["x16"].reshape(64, 128, 1024)
        return a["x16"]

    def int16(a):
        if "xi16" not in a:
            a["xi16"] = (a["x"] * 100).astype(np.int16)
        return a["xi16"]

    return {
        # name: (f(inputs), input getter, compute itemsize)
        "float16 max idx": (lambda a: cypool.max_pool(f16(a), (3, 3), 2, 1, return_indices=True),
                            f16, 4),
        "float16 avg": (lambda a: cypool.avg_pool(f16(a), (2, 2)), f16, 4),
        "float16 lp": (lambda a: cypool.lp_pool(f16(a), 2.0, (2, 2)), f16, 4),
        "float16 adaptive avg": (lambda a: cypool.adaptive_avg_pool(f16(a), (7, 7)), f16, 4),
        "float16 global max": (lambda a: cypool.global_max_pool(f16(a)), f16, 4),
        "float16 sequence mean": (lambda a: (f16(a), cypool.sequence_pool(a["h16"]))[1], f16, 4),
        "float16 segment max": (lambda a: (f16(a), cypool.segment_pool(
            a["h16"].reshape(-1, 1024), [0, 100, 8192], "max"))[1], f16, 4),
        "int16 avg": (lambda a: cypool.avg_pool(int16(a), (2, 2)), int16, 8),
        "int16 lp": (lambda a: cypool.lp_pool(int16(a), 2.0, (2, 2)), int16, 8),
        "int16 adaptive avg": (lambda a: cypool.adaptive_avg_pool(int16(a), (7, 7)), int16, 8),
        "int16 global avg": (lambda a: cypool.global_avg_pool(int16(a)), int16, 8),
    }


@pytest.mark.parametrize("name", list(_known_copy_ops()))
def test_peakmem_known_compute_dtype_copies(name):
    """Bound: the result + a copy of the input in the compute dtype + the values result in
    the compute dtype (float16 only) + SCRATCH."""
    a = _inputs()
    f, get_input, compute_itemsize = _known_copy_ops()[name]
    f(a)
    x = get_input(a)
    peak, r = _traced_peak(lambda: f(a))
    out = _result_bytes(r)
    values = r[0] if isinstance(r, tuple) else r
    copy = x.size * compute_itemsize
    temp = values.size * compute_itemsize if values.dtype == np.float16 else 0
    print(f"\n{name}: peak {peak / MIB:.3f} MiB = output {out / MIB:.3f} MiB + "
          f"{(peak - out) / x.nbytes:.2f} x the input's {x.nbytes / MIB:.1f} MiB")
    assert peak <= out + copy + temp + SCRATCH


_HWM_SCRIPT = """
import gc, json, sys
sys.path.insert(0, {tests!r})
import numpy as np
import test_memory as tm

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

a = tm._inputs()
found = {{}}
for name, f in tm._forward_ops().items():
    f(a)  # warm-up (OpenMP threads, caches)
    gc.collect()
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    r = f(a)
    found[name] = (status("VmHWM:") - base, tm._result_bytes(r))
    del r
print(json.dumps(found))
"""


@linux_only
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc tunables")
def test_peak_rss_forward_within_output_plus_scratch():
    """Peak RSS (which also counts the kernels' malloc scratch, invisible to tracemalloc) in
    a subprocess where glibc maps every block above 64 kB separately and returns freed memory
    at once, so the peak is not hidden by reused heap pages."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("cannot reset VmHWM")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0",
           "MALLOC_TOP_PAD_": "0"}
    script = _HWM_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(found) == set(_forward_ops())
    bad = {}
    for name, (peak, out) in found.items():
        print(f"{name}: peak RSS +{peak / MIB:.3f} MiB, output {out / MIB:.3f} MiB")
        if peak > out + SCRATCH:
            bad[name] = (peak, out)
    assert not bad, f"peak RSS above the result + {SCRATCH} bytes: {bad}"
    # the measurement sees the results themselves
    big = found["avg 3x3/1 p1"]
    assert big[0] >= big[1] * 0.9
