"""Threads: kernels release the GIL (two Python threads pool in parallel; other
Python threads keep running during a kernel: wall-clock tests, marked ``timing`` and run only
with CYPOOL_TIMING_TESTS=1, see conftest.py), concurrent calls on shared inputs give the
results of a serial run, and every op gives bit-identical results for num_threads 1 to 4
(inputs above the 256 kB parallel threshold of cypool/_parallel.py, so the kernels really
split the work)."""

import os
import random
import statistics
import threading
import time

import numpy as np
import pytest

import cypool
from cypool._parallel import PARALLEL_MIN_BYTES


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _bits(r):
    """A result (array or tuple of arrays) as comparable (dtype, shape, bytes) tuples: equal
    exactly when the results are bit-identical (NaN payloads and signed zeros included)."""
    return [(a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()) for a in _as_tuple(r)]


def _assert_bit_identical(got, want, what):
    g, w = _bits(got), _bits(want)
    assert len(g) == len(w), what
    for k, (a, b) in enumerate(zip(g, w)):
        assert a[:2] == b[:2], f"{what}: result {k} is {a[:2]}, expected {b[:2]}"
        if a[2] != b[2]:
            x = np.asarray(_as_tuple(got)[k])
            y = np.asarray(_as_tuple(want)[k])
            same = x == y
            if x.dtype.kind == "f":
                same |= np.isnan(x) & np.isnan(y)
            n = int((~same).sum())
            raise AssertionError(f"{what}: result {k} differs in its bits "
                                 f"({n} of {x.size} elements differ in value)")


# ================================================================================ the GIL

GIL_SHAPE = (6, 64, 64, 64)  # LP 3x3 stride 1 on it: ~85 ms on one thread (compute-bound)


def _gil_call():
    x = np.random.default_rng(0).standard_normal(GIL_SHAPE, dtype=np.float32)
    out = [np.empty_like(x), np.empty_like(x)]

    def call(k=0):
        cypool.lp_pool(x, 3.0, (3, 3), 1, 1, out=out[k], num_threads=1)
    return call


def _serial_and_parallel(call):
    """(serial, parallel) wall times of call(0); call(1) one after the other, and in two
    threads started together."""
    t = time.perf_counter()
    call(0)
    call(1)
    serial = time.perf_counter() - t
    barrier = threading.Barrier(3)

    def work(k):
        barrier.wait()
        call(k)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    barrier.wait()
    t = time.perf_counter()
    for th in threads:
        th.join()
    return serial, time.perf_counter() - t


def _numpy_control():
    """NumPy's np.sin, which runs without the GIL, on ~the work of one cypool call."""
    x = np.random.default_rng(1).random(3_000_000)
    out = [np.empty_like(x), np.empty_like(x)]

    def call(k=0):
        np.sin(x, out=out[k])
    return call


def _pair_ratios(call, control, repeats=5):
    """(ratio, base, summary): two threads' wall time over the serial time, as medians of
    `repeats` interleaved measurements, for call (ratio) and for the np.sin control (base),
    and a line that reports them."""
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_serial_and_parallel(call))
        theirs.append(_serial_and_parallel(control))
    ratio = statistics.median(p for _, p in ours) / statistics.median(s for s, _ in ours)
    base = statistics.median(p for _, p in theirs) / statistics.median(s for s, _ in theirs)
    summary = (f"one call {statistics.median(s for s, _ in ours) / 2 * 1e3:.1f} ms; two threads "
               f"/ serial = {ratio:.2f} (parallel {[round(p * 1e3) for _, p in ours]} ms, serial "
               f"{[round(s * 1e3) for s, _ in ours]} ms); np.sin control {base:.2f}")
    return ratio, base, summary


PAIR_BOUND = 0.8  # 1.0 when the GIL is held, 0.5 at best
PAIR_ATTEMPTS = 3


@pytest.mark.timing
@pytest.mark.skipif(_usable_cpus() < 2, reason="needs 2 CPUs")
def test_two_python_threads_pool_in_parallel():
    """Two threads each make one call (num_threads=1); the pair takes well under the time of
    the same two calls one after the other: medians of 5 interleaved repeats, bound 0.8 (1.0
    when the GIL is held, 0.5 at best). np.sin, which releases the GIL, is measured the same
    way alongside; the bound is loosened to the control's ratio + 0.1 when that is higher.
    A shared host can slow one of the two vCPUs for a while (seen in CI: 0.80 against np.sin's
    0.67), so a measurement that misses the bound is taken again, up to 3 in all: the test
    passes on the first one under its bound. With the GIL held no measurement gets near 0.8,
    so the retries do not let a serial kernel pass. When the control misses 0.8 in every
    attempt, the machine has no two free CPUs and the test is skipped."""
    call, control = _gil_call(), _numpy_control()
    call()
    control()
    summaries, busy = [], 0
    for _ in range(PAIR_ATTEMPTS):
        ratio, base, summary = _pair_ratios(call, control)
        summaries.append(summary)
        print("\n" + summary)
        if base > PAIR_BOUND:
            busy += 1
        elif ratio < max(PAIR_BOUND, base + 0.1):
            return
    if busy == PAIR_ATTEMPTS:
        pytest.skip(f"no two free CPUs: np.sin in two threads missed {PAIR_BOUND} of its serial "
                    f"time in all {PAIR_ATTEMPTS} attempts")
    raise AssertionError(f"two threads took {ratio:.2f} of the serial time in the last of "
                         f"{PAIR_ATTEMPTS} attempts: " + "; ".join(summaries))


@pytest.mark.timing
def test_other_python_threads_run_during_a_kernel():
    """While a thread is inside one long kernel call, the main thread keeps running Python:
    its longest pause is a small part of the call (with the GIL held it would be all of it).
    Needs no second CPU: the OS time-slices the two threads."""
    call = _gil_call()
    call()
    t = time.perf_counter()
    call()
    one = time.perf_counter() - t
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        call()
        call()
        done.set()
    th = threading.Thread(target=work)
    th.start()
    started.wait()
    ticks = [time.perf_counter()]
    while not done.is_set():
        ticks.append(time.perf_counter())
    th.join()
    gap = max(b - a for a, b in zip(ticks, ticks[1:]))
    span = ticks[-1] - ticks[0]
    print(f"\none call {one * 1e3:.1f} ms; main thread's longest pause {gap * 1e3:.1f} ms over "
          f"{span * 1e3:.0f} ms ({len(ticks)} ticks)")
    assert span > one, "the calls finished before the main thread started"
    assert gap < 0.5 * one, f"the main thread stopped for {gap * 1e3:.1f} ms during a kernel"


# ================================================================================ shared inputs


def _shared_ops():
    """name -> f(num_threads) on inputs shared by every call (each above the parallel
    threshold)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 48, 47)).astype(np.float32)  # 578 kB
    xl = np.moveaxis(x, 1, -1)  # a channels-last view of the same memory
    y, idx = cypool.max_pool(x, (3, 3), 2, 1, return_indices=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g1 = rng.standard_normal(x.shape).astype(np.float32)
    ga = rng.standard_normal((4, 16, 7, 5)).astype(np.float32)
    gg = rng.standard_normal((4, 16)).astype(np.float32)
    h = rng.standard_normal((16, 64, 96)).astype(np.float32)  # 393 kB
    mask = rng.random((16, 64)) < 0.7
    scores = rng.standard_normal((16, 64)).astype(np.float32)
    gh = rng.standard_normal((16, 96)).astype(np.float32)
    values = h.reshape(-1, 96)
    offsets = np.array([0, 5, 5, 300, 301, 700, 1024])
    gs = rng.standard_normal((6, 96)).astype(np.float32)
    vs = rng.standard_normal(1024).astype(np.float32)
    assert x.nbytes > PARALLEL_MIN_BYTES and h.nbytes > PARALLEL_MIN_BYTES
    ops = {
        "max idx": lambda nt: cypool.max_pool(x, (3, 3), 2, 1, return_indices=True,
                                              num_threads=nt),
        "max NHWC": lambda nt: cypool.max_pool(xl, (2, 2), axes=(1, 2), num_threads=nt),
        "avg": lambda nt: cypool.avg_pool(x, (3, 3), 1, 1, num_threads=nt),
        "lp": lambda nt: cypool.lp_pool(x, 2.0, (3, 3), 2, num_threads=nt),
        "max bwd idx": lambda nt: cypool.max_pool_backward(g, x, (3, 3), 2, 1, indices=idx,
                                                           num_threads=nt),
        "max bwd": lambda nt: cypool.max_pool_backward(g, x, (3, 3), 2, 1, num_threads=nt),
        "avg bwd": lambda nt: cypool.avg_pool_backward(g1, x.shape, (3, 3), 1, 1,
                                                       num_threads=nt),
        "lp bwd": lambda nt: cypool.lp_pool_backward(g, x, 2.0, (3, 3), 2, 1, num_threads=nt),
        "unpool": lambda nt: cypool.max_unpool(y, idx, (48, 47), num_threads=nt),
        "adaptive avg": lambda nt: cypool.adaptive_avg_pool(x, (7, 5), num_threads=nt),
        "adaptive max": lambda nt: cypool.adaptive_max_pool(x, (7, 5), return_indices=True,
                                                            num_threads=nt),
        "adaptive avg bwd": lambda nt: cypool.adaptive_avg_pool_backward(ga, x.shape,
                                                                         num_threads=nt),
        "adaptive max bwd": lambda nt: cypool.adaptive_max_pool_backward(ga, x, (7, 5),
                                                                         num_threads=nt),
        "global avg": lambda nt: cypool.global_avg_pool(x, num_threads=nt),
        "global max": lambda nt: cypool.global_max_pool(x, return_indices=True, num_threads=nt),
        "global avg bwd": lambda nt: cypool.global_avg_pool_backward(gg, x.shape, num_threads=nt),
        "global max bwd": lambda nt: cypool.global_max_pool_backward(gg, x, num_threads=nt),
        "seq mean": lambda nt: cypool.sequence_pool(h, mask, "mean", num_threads=nt),
        "seq max": lambda nt: cypool.sequence_pool(h, mask, "max", return_indices=True,
                                                   num_threads=nt),
        "seq attention": lambda nt: cypool.sequence_pool(h, mask, "attention", scores=scores,
                                                         num_threads=nt),
        "seq attention bwd": lambda nt: cypool.sequence_pool_backward(
            gh, h, mask, "attention", scores=scores, num_threads=nt),
        "seq min bwd": lambda nt: cypool.sequence_pool_backward(gh, h, mask, "min",
                                                                num_threads=nt),
        "segment sum": lambda nt: cypool.segment_pool(values, offsets, "sum", num_threads=nt),
        "segment max": lambda nt: cypool.segment_pool(values, offsets, "max",
                                                      return_indices=True, num_threads=nt),
        "segment attention bwd": lambda nt: cypool.segment_pool_backward(
            gs, values, offsets, "attention", scores=vs, num_threads=nt),
    }
    inputs = [x, y, idx, g, g1, ga, gg, h, mask, scores, gh, values, offsets, gs, vs]
    return ops, inputs


def test_concurrent_calls_on_shared_inputs_match_a_serial_run():
    """8 Python threads run every op with num_threads 1 and 2, four times each, in their own
    shuffled orders, all reading the same input arrays; each result is bit-identical to the
    serial run's, and the inputs are unchanged."""
    ops, inputs = _shared_ops()
    before = [a.copy() for a in inputs]
    jobs = [(name, nt) for name in ops for nt in (1, 2)]
    want = {job: _bits(ops[job[0]](job[1])) for job in jobs}
    nthreads = 8
    barrier = threading.Barrier(nthreads)
    failures, counts = [], [0] * nthreads

    def work(k):
        order = jobs * 4
        random.Random(k).shuffle(order)
        barrier.wait()
        for job in order:
            try:
                got = _bits(ops[job[0]](job[1]))
            except Exception as e:  # reported below, with the thread and the job
                failures.append((k, job, repr(e)))
                continue
            if got != want[job]:
                failures.append((k, job, "differs from the serial result"))
            counts[k] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures, failures[:10]
    assert counts == [4 * len(jobs)] * nthreads
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)


def test_concurrent_calls_into_their_own_out_arrays():
    """Threads writing into their own out= arrays from shared inputs, num_threads=2."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 16, 40, 40)).astype(np.float32)
    want = cypool.avg_pool(x, (3, 3), 1, 1)
    want_i = cypool.max_pool(x, (2, 2), return_indices=True)
    failures = []

    def work(k):
        out = np.full_like(want, np.nan)
        pair = (np.empty_like(want_i[0]), np.empty_like(want_i[1]))
        for _ in range(20):
            cypool.avg_pool(x, (3, 3), 1, 1, out=out, num_threads=2)
            cypool.max_pool(x, (2, 2), return_indices=True, out=pair, num_threads=2)
            if _bits(out) != _bits(want) or _bits(pair) != _bits(want_i):
                failures.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures


# ================================================================================ num_threads


def _thread_ops():
    """name -> f(num_threads): every op family, sums included, forward and backward, on
    random (non-integer) inputs above the parallel threshold, with sizes that split unevenly
    across 1 to 4 threads."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 17, 61, 59)).astype(np.float32)  # 735 kB
    x64 = x.astype(np.float64)
    x16 = x[:, :9].astype(np.float16)  # float16 is computed in float32
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    x3 = rng.standard_normal((2, 6, 15, 33, 31))  # float64, 3 pooled axes
    xi = rng.integers(-50, 50, x.shape).astype(np.int16)
    y, idx = cypool.max_pool(x, (3, 3), 2, 1, return_indices=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g1 = rng.standard_normal(x.shape).astype(np.float32)
    g64 = g1.astype(np.float64)
    gl = rng.standard_normal(cypool.avg_pool(xl, (5, 5), 2, 2, axes=(1, 2)).shape)
    gl = gl.astype(np.float32)
    g3 = rng.standard_normal(cypool.avg_pool(x3, (3, 3, 3), 2, 1).shape)
    ga = rng.standard_normal((3, 17, 7, 5)).astype(np.float32)
    gg = rng.standard_normal((3, 17)).astype(np.float32)
    h = rng.standard_normal((12, 77, 101)).astype(np.float32)  # 373 kB
    h64 = h.astype(np.float64)
    wmask = rng.random((12, 77)) * (rng.random((12, 77)) < 0.8)  # float weights
    mask = wmask != 0
    mask[3] = False  # a row without a valid token
    lengths = rng.integers(0, 78, 12)
    scores = rng.standard_normal((12, 77)).astype(np.float32)
    gh = rng.standard_normal((12, 101)).astype(np.float32)
    values = h.reshape(-1, 101)
    offsets = np.array([0, 1, 1, 200, 201, 555, 924])
    gs = rng.standard_normal((6, 101)).astype(np.float32)
    vs = rng.standard_normal(924).astype(np.float32)
    ops = {
        # window forward
        "max 3x3/2 p1 idx": lambda nt: cypool.max_pool(x, (3, 3), 2, 1, return_indices=True,
                                                       num_threads=nt),
        "max dilated ceil": lambda nt: cypool.max_pool(x, (3, 2), (2, 3), 1, (2, 1),
                                                       ceil_mode=True, num_threads=nt),
        "max int16 NHWC idx": lambda nt: cypool.max_pool(np.moveaxis(xi, 1, -1), (3, 3), 2,
                                                         axes=(1, 2), return_indices=True,
                                                         num_threads=nt),
        "max 3-d": lambda nt: cypool.max_pool(x3, (3, 2, 2), 2, 1, return_indices=True,
                                              num_threads=nt),
        "avg 3x3/1 p1": lambda nt: cypool.avg_pool(x, (3, 3), 1, 1, num_threads=nt),
        "avg no-pad-count ceil": lambda nt: cypool.avg_pool(x, (4, 3), (3, 2), (2, 1),
                                                            ceil_mode=True,
                                                            count_include_pad=False,
                                                            num_threads=nt),
        "avg divisor dilated": lambda nt: cypool.avg_pool(x64, (3, 3), 1, "same", 2,
                                                          divisor_override=5, num_threads=nt),
        "avg NHWC": lambda nt: cypool.avg_pool(xl, (5, 5), 2, 2, axes=(1, 2), num_threads=nt),
        "avg float16": lambda nt: cypool.avg_pool(x16, (3, 3), 1, 1, num_threads=nt),
        "avg int16": lambda nt: cypool.avg_pool(xi, (3, 3), 2, num_threads=nt),
        "avg 3-d": lambda nt: cypool.avg_pool(x3, (3, 3, 3), 1, 1, num_threads=nt),
        "avg_pool2d NHWC": lambda nt: cypool.avg_pool2d(xl, 3, 2, 1, channels_last=True,
                                                        num_threads=nt),
        "lp 2": lambda nt: cypool.lp_pool(x, 2.0, (3, 3), 1, 1, num_threads=nt),
        "lp 3.5 NHWC": lambda nt: cypool.lp_pool(xl, 3.5, (2, 3), 2, axes=(1, 2),
                                                 num_threads=nt),
        "lp 1 float64 3-d": lambda nt: cypool.lp_pool(x3, 1.0, (2, 2, 2), num_threads=nt),
        # window backward
        "max bwd idx": lambda nt: cypool.max_pool_backward(g, x, (3, 3), 2, 1, indices=idx,
                                                           num_threads=nt),
        "max bwd recompute": lambda nt: cypool.max_pool_backward(g, x, (3, 3), 2, 1,
                                                                 num_threads=nt),
        "avg bwd 3x3/1 p1": lambda nt: cypool.avg_pool_backward(g1, x.shape, (3, 3), 1, 1,
                                                                num_threads=nt),
        "avg bwd float64 no-pad-count": lambda nt: cypool.avg_pool_backward(
            g64, x.shape, (3, 3), 1, 1, count_include_pad=False, num_threads=nt),
        "avg bwd NHWC": lambda nt: cypool.avg_pool_backward(gl, xl.shape, (5, 5), 2, 2,
                                                            axes=(1, 2), num_threads=nt),
        "avg bwd 3-d": lambda nt: cypool.avg_pool_backward(g3, x3.shape, (3, 3, 3), 2, 1,
                                                           num_threads=nt),
        "lp bwd": lambda nt: cypool.lp_pool_backward(g, x, 2.5, (3, 3), 2, 1, num_threads=nt),
        "max_unpool": lambda nt: cypool.max_unpool(y, idx, (61, 59), num_threads=nt),
        # adaptive and global
        "adaptive avg": lambda nt: cypool.adaptive_avg_pool(x, (7, 5), num_threads=nt),
        "adaptive avg NHWC": lambda nt: cypool.adaptive_avg_pool(xl, (9, 4), axes=(1, 2),
                                                                 num_threads=nt),
        "adaptive max": lambda nt: cypool.adaptive_max_pool(x, (7, 5), return_indices=True,
                                                            num_threads=nt),
        "adaptive avg bwd": lambda nt: cypool.adaptive_avg_pool_backward(ga, x.shape,
                                                                         num_threads=nt),
        "adaptive max bwd": lambda nt: cypool.adaptive_max_pool_backward(ga, x, (7, 5),
                                                                         num_threads=nt),
        "global avg": lambda nt: cypool.global_avg_pool(x, num_threads=nt),
        "global avg float64 NHWC": lambda nt: cypool.global_avg_pool(
            np.moveaxis(x64, 1, -1), axes=(1, 2), num_threads=nt),
        "global avg float16": lambda nt: cypool.global_avg_pool(x16, num_threads=nt),
        "global max": lambda nt: cypool.global_max_pool(x, return_indices=True, num_threads=nt),
        "global max NHWC": lambda nt: cypool.global_max_pool(xl, axes=(1, 2),
                                                             return_indices=True,
                                                             num_threads=nt),
        "global avg bwd": lambda nt: cypool.global_avg_pool_backward(gg, x.shape,
                                                                     num_threads=nt),
        "global max bwd": lambda nt: cypool.global_max_pool_backward(gg, x, num_threads=nt),
    }
    for mode in ("mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
                 "attention"):
        kw = dict(scores=scores) if mode == "attention" else {}
        ri = dict(return_indices=True) if mode in ("max", "min") else {}
        m = wmask if mode in ("mean", "sum", "mean_sqrt_len", "weighted_mean") else mask
        ops[f"seq {mode}"] = lambda nt, mode=mode, m=m, kw=kw, ri=ri: cypool.sequence_pool(
            h, m, mode, **kw, **ri, num_threads=nt)
        ops[f"seq {mode} bwd"] = lambda nt, mode=mode, m=m, kw=kw: cypool.sequence_pool_backward(
            gh, h, m, mode, **kw, num_threads=nt)
    # Channels-last with few output rows and a wide inner axis: the kernels split the inner
    # axis into more blocks for more threads (so that every thread has work), which must not
    # change any sum. 1 thread: the whole inner axis per work item; 2 to 4: blocks. float64:
    # float32 values sum exactly in float64 whatever the grouping, float64 values do not.
    wide = rng.standard_normal((2, 9, 9, 512))  # 1.3 MB
    wide64 = rng.standard_normal((2, 3, 4, 5, 257))  # 3 pooled axes, 2 output rows
    # windows of 5 rows (4 + 1 with padding): summed in groups of 3, then 2 (or 1)
    gw = rng.standard_normal(cypool.avg_pool(wide, (5, 3), 1, axes=(1, 2)).shape)
    ops.update({
        "avg NHWC split inner": lambda nt: cypool.avg_pool(wide, (5, 3), 1, axes=(1, 2),
                                                           num_threads=nt),
        "avg NHWC split inner padded": lambda nt: cypool.avg_pool(
            wide, (4, 3), 1, (2, 1), axes=(1, 2), count_include_pad=False, num_threads=nt),
        "lp NHWC split inner": lambda nt: cypool.lp_pool(wide, 2.0, (5, 3), 1, axes=(1, 2),
                                                         num_threads=nt),
        "max NHWC split inner": lambda nt: cypool.max_pool(wide, (5, 3), 1, axes=(1, 2),
                                                           return_indices=True, num_threads=nt),
        "avg 3-d split inner": lambda nt: cypool.avg_pool(wide64, (3, 2, 3), 1, axes=(1, 2, 3),
                                                          num_threads=nt),
        "lp 3-d split inner": lambda nt: cypool.lp_pool(wide64, 3.0, (3, 2, 3), 1,
                                                        axes=(1, 2, 3), num_threads=nt),
        "adaptive avg NHWC split inner": lambda nt: cypool.adaptive_avg_pool(
            wide, (2, 3), axes=(1, 2), num_threads=nt),
        "avg bwd NHWC split inner": lambda nt: cypool.avg_pool_backward(
            gw, wide.shape, (5, 3), 1, axes=(1, 2), num_threads=nt),
        "lp bwd NHWC split inner": lambda nt: cypool.lp_pool_backward(
            gw, wide, 2.0, (5, 3), 1, axes=(1, 2), num_threads=nt),
        "global avg NHWC split inner": lambda nt: cypool.global_avg_pool(
            wide[:1], axes=(1, 2), num_threads=nt),
    })
    ops["seq mean lengths float64"] = lambda nt: cypool.sequence_pool(h64, lengths=lengths,
                                                                      num_threads=nt)
    ops["seq mean bwd lengths float64"] = lambda nt: cypool.sequence_pool_backward(
        gh.astype(np.float64), h64, lengths=lengths, num_threads=nt)
    for mode in ("sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention"):
        kw = dict(scores=vs) if mode == "attention" else {}
        ri = dict(return_indices=True) if mode in ("max", "min") else {}
        ops[f"segment {mode}"] = lambda nt, mode=mode, kw=kw, ri=ri: cypool.segment_pool(
            values, offsets, mode, **kw, **ri, num_threads=nt)
        ops[f"segment {mode} bwd"] = lambda nt, mode=mode, kw=kw: cypool.segment_pool_backward(
            gs, values, offsets, mode, **kw, num_threads=nt)
    return ops


THREAD_OPS = _thread_ops()


@pytest.mark.parametrize("name", list(THREAD_OPS))
def test_bit_identical_for_every_num_threads(name):
    f = THREAD_OPS[name]
    want = f(1)
    for a in _as_tuple(want):
        assert a.size > 0
    for nt in (2, 3, 4):
        _assert_bit_identical(f(nt), want, f"{name}, num_threads={nt} against 1")
    _assert_bit_identical(f(None), want, f"{name}, num_threads=None against 1")


@pytest.mark.parametrize("op", ["max", "max indices", "avg"])
@pytest.mark.parametrize("rows", [1, 2, 3, 7])
def test_window_kernels_with_more_threads_than_items(op, rows):
    """The window kernels share their items among threads in contiguous runs: with fewer items
    than threads some runs are empty, and every item is still computed once. The kernels are
    called directly (the facade would run inputs this small on one thread)."""
    from cypool import _geometry
    from cypool._kernels import window as kernels

    x = np.random.default_rng(rows).standard_normal((1, 1, rows + 2, 5)).astype(np.float32)
    geometry = _geometry.window_geometry(x.shape, (3, 3), 1, (0, 1), 1, None, False)
    taps = (*geometry.taps(), geometry.windows())
    n_out = geometry.out_shape[2:]
    view = x.reshape(1, 1, *x.shape[2:], 1)
    results = []
    for threads in (1, 3, 8):
        out = np.full((1, 1, *n_out, 1), np.nan, np.float32)
        if op == "max":
            kernels.max_pool(view, out, *taps, threads)
            results.append(out)
        elif op == "avg":
            inv = [np.ones(n) for n in (1, *n_out)]
            kernels.avg_pool(view, out, *taps, *inv, False, False, threads)
            results.append(out)
        else:
            idx = np.full(out.shape, -1, np.int64)
            kernels.max_pool_with_indices(view, out, idx, *taps, threads)
            results.append(np.concatenate([out.ravel(), idx.ravel().astype(np.float32)]))
    assert not np.isnan(results[0]).any()
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()
    if op != "avg":
        want = cypool.max_pool(x, (3, 3), 1, (0, 1))
        np.testing.assert_array_equal(results[0][: want.size].reshape(want.shape), want)
