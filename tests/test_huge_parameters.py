"""Window pooling with parameters up to 2**63 - 1: valid geometries whose windows, strides or
padding dwarf the input compute the right values, in time and memory that grow with the input,
never with the window's extent; the invalid ones raise ValueError (the bad-input matrix has
their messages).

The cases run in a child interpreter (this file as a script), so that a crash shows up as a
failed test rather than killing the test run. The reference finds each window's input elements
by testing every input position with Python's integers, never by walking the window's taps.
"""

import math
import os
import resource
import subprocess
import sys

import numpy as np

import cypool

INT64_MAX = 2 ** 63 - 1


# ============================================================================== the reference


def axis_windows(n, k, s, d, pb, pa, ceil_mode):
    """For one axis: a list, per output position, of (input positions of its taps, number of
    its taps inside the padded extent); None when the geometry is invalid (padding above half
    the extent, no output, or a window without an input element)."""
    extent = d * (k - 1) + 1
    if 2 * max(pb, pa) > extent:
        return None
    span = n + pb + pa - extent
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + pb:
        out -= 1
    if out < 1:
        return None
    windows = []
    for i in range(out):
        start = i * s - pb
        inside = [p for p in range(n) if (p - start) % d == 0 and 0 <= (p - start) // d < k]
        if not inside:
            return None
        # taps start + j * d, 0 <= j < k, within [-pb, n + pa)
        jlo = max(0, -((start + pb) // d))
        jhi = min(k, -(-(n + pa - start) // d))
        windows.append((inside, max(0, jhi - jlo)))
    return windows


def reference(x, axes_params, ceil_mode, g):
    """max, argmax, avg (count_include_pad True and False), 2-norm, and the avg, max and
    2-norm gradients of grad_output g, pooling the last len(axes_params) axes of x (float64)."""
    per_axis = [axis_windows(x.shape[x.ndim - len(axes_params) + a], *p, ceil_mode)
                for a, p in enumerate(axes_params)]
    if any(w is None for w in per_axis):
        return None
    nb = x.ndim - len(axes_params)
    pooled_shape = x.shape[nb:]
    out_shape = x.shape[:nb] + tuple(len(w) for w in per_axis)
    res = {key: np.zeros(out_shape) for key in ("max", "avg_pad", "avg", "lp")}
    res["idx"] = np.zeros(out_shape, np.int64)
    res["avg_bwd"] = np.zeros(x.shape)
    res["max_bwd"] = np.zeros(x.shape)
    res["lp_bwd"] = np.zeros(x.shape)
    for b in np.ndindex(*x.shape[:nb]):
        for o in np.ndindex(*out_shape[nb:]):
            wins = [per_axis[a][o[a]] for a in range(len(o))]
            taps = [tuple(t) for t in np.ndindex(*(len(w[0]) for w in wins))]
            positions = [tuple(w[0][j] for w, j in zip(wins, t)) for t in taps]
            values = [x[b + p] for p in positions]
            best = int(np.argmax(values))  # the first maximum in row-major order
            padded = math.prod(w[1] for w in wins)
            res["max"][b + o] = values[best]
            res["idx"][b + o] = np.ravel_multi_index(positions[best], pooled_shape)
            res["avg_pad"][b + o] = sum(values) / padded
            res["avg"][b + o] = sum(values) / len(values)
            res["lp"][b + o] = math.sqrt(sum(v * v for v in values))
            for p in positions:
                res["avg_bwd"][b + p] += g[b + o] / padded
            res["max_bwd"][b + positions[best]] += g[b + o]
            norm = math.sqrt(sum(v * v for v in values))
            for p, v in zip(positions, values):
                res["lp_bwd"][b + p] += g[b + o] * v / norm if norm else 0.0
    return res


# ============================================================================== the cases


def draw_axis(rng):
    """One pooled axis (n, k, s, d, pb, pa) with parameters up to 2**63 - 1, most of them
    valid: the padding near half of a window far longer than the input."""
    n = int(rng.integers(1, 7))
    k = int(rng.choice([1, 2, 3, 5, 2 ** 28, 2 ** 40 + 1, 2 ** 61, 2 ** 62 + 3, INT64_MAX]))
    d = int(rng.choice([1, 1, 1, 1, 2, 3, 2 ** 20, 2 ** 61, INT64_MAX]))
    s = int(rng.choice([1, 1, 2, 3, 7, 2 ** 33, 2 ** 62, INT64_MAX]))
    half = min((d * (k - 1) + 1) // 2, INT64_MAX)
    near = min(half, INT64_MAX)
    pads = [near, near, near, max(near - int(rng.integers(0, 4)), 0), int(rng.integers(0, 3)),
            int(rng.integers(0, near + 1))]
    return n, k, s, d, int(rng.choice(pads)), int(rng.choice(pads))


def cases(count=1500, seed=2026):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        naxes = int(rng.integers(1, 3))
        yield [draw_axis(rng) for _ in range(naxes)], bool(rng.integers(0, 2))


def check_case(axes_params, ceil_mode, rng):
    """None when cypool agrees with the reference, else a description of the difference."""
    naxes = len(axes_params)
    shape = (2,) + tuple(p[0] for p in axes_params)
    x = rng.standard_normal(shape)
    kw = dict(kernel_size=tuple(p[1] for p in axes_params),
              stride=tuple(p[2] for p in axes_params),
              dilation=tuple(p[3] for p in axes_params),
              padding=tuple((p[4], p[5]) for p in axes_params),
              axes=tuple(range(1, 1 + naxes)), ceil_mode=ceil_mode)
    per_axis = [axis_windows(*p, ceil_mode) for p in axes_params]
    if any(w is None for w in per_axis):
        try:
            cypool.max_pool(x, **kw)
        except ValueError:
            return None
        return f"{axes_params} ceil_mode={ceil_mode}: accepted an invalid geometry"
    g = rng.standard_normal((2,) + tuple(len(w) for w in per_axis))
    want = reference(x, [p[1:] for p in axes_params], ceil_mode, g)
    values, idx = cypool.max_pool(x, **kw, return_indices=True)
    got = {
        "max": values, "idx": idx,
        "avg_pad": cypool.avg_pool(x, **kw),
        "avg": cypool.avg_pool(x, **kw, count_include_pad=False),
        "lp": cypool.lp_pool(x, 2, **kw),
        "avg_bwd": cypool.avg_pool_backward(g, x.shape, **kw),
        "max_bwd": cypool.max_pool_backward(g, x, **kw),
        "lp_bwd": cypool.lp_pool_backward(g, x, 2, **kw),
    }
    for key, w in want.items():
        if got[key].shape != w.shape or not np.allclose(got[key], w, rtol=1e-12, atol=1e-12):
            return f"{axes_params} ceil_mode={ceil_mode}: {key} {got[key]} != {w}"
    return None


def run_cases():
    """Every case, and the explicit ones: prints one line per failure and a summary."""
    rng = np.random.default_rng(7)
    explicit = [
        ([(5, 2 ** 61, 1, 1, 2 ** 60, 2 ** 60)], False),        # once a SIGSEGV (scratch size)
        ([(3, 2 ** 28, 1, 1, 2 ** 27, 2 ** 27)] * 2, False),     # once 21 s and 2 GB
        ([(5, 2 ** 62, 1, 2, 2 ** 62 - 1, 2 ** 62 - 1)], False),  # extent 2**63 - 1
        ([(5, INT64_MAX, 1, INT64_MAX, INT64_MAX, INT64_MAX)], False),  # extent beyond int64
        ([(5, 3, INT64_MAX, 1, 1, 1)], True),                   # one window: a huge stride
        ([(4, 2, 2 ** 62, 1, 0, 0), (6, 2 ** 40, 1, 1, 2 ** 39, 2 ** 39)], False),
    ]
    failures = valid = total = 0
    for params, ceil_mode in explicit + list(cases()):
        total += 1
        valid += all(axis_windows(*p, ceil_mode) is not None for p in params)
        problem = check_case(params, ceil_mode, rng)
        if problem:
            failures += 1
            print("FAILED", problem, flush=True)
    print(f"checked {total} geometries ({valid} valid), {failures} failed", flush=True)
    return failures


def limit_address_space(extra):
    """Cap this process's address space at what it maps now plus `extra` bytes."""
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, mapped + extra))


def run_in_little_memory():
    """A 2**28 x 2**28 window over a 3 x 3 array, with 256 MiB to spare: it once took 21 s
    and 2 GB of scratch (sized by the window's extent, padding included)."""
    x = np.arange(9.0).reshape(3, 3)
    cypool.max_pool(x, (1, 1))  # every import and first-call allocation before the cap
    limit_address_space(256 << 20)
    for call in (lambda: cypool.max_pool(x, (2 ** 28, 2 ** 28), 1, 2 ** 27),
                 lambda: cypool.avg_pool(x, (2 ** 28, 2 ** 28), 1, 2 ** 27),
                 lambda: cypool.lp_pool(x, 2, (2 ** 28, 2 ** 28), 1, 2 ** 27)):
        y = call()
        assert y.shape == (4, 4), y.shape
    print("little memory: ok", flush=True)


# ============================================================================== the tests


def run_child(mode):
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run([sys.executable, "-X", "faulthandler", os.path.abspath(__file__), mode],
                          cwd=here, capture_output=True, text=True, timeout=600)


def test_huge_geometries_against_the_reference_in_a_child():
    proc = run_child("cases")
    assert proc.returncode == 0, (f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n"
                                  f"{proc.stderr[-3000:]}")
    assert proc.stdout.strip().endswith("0 failed"), proc.stdout[-3000:]


def test_work_and_memory_do_not_grow_with_the_window_in_a_child():
    if not sys.platform.startswith("linux"):
        import pytest

        pytest.skip("reads /proc/self/statm")
    proc = run_child("memory")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "little memory: ok" in proc.stdout


def test_reference_axis_windows():
    # kernel 3, stride 2, padding 1 on 5: windows [-1, 2), [1, 4), [3, 6)
    assert axis_windows(5, 3, 2, 1, 1, 1, False) == [([0, 1], 3), ([1, 2, 3], 3), ([3, 4], 3)]
    # dilation 2: taps at -1, 1 / 1, 3 / 3, 5
    assert axis_windows(5, 2, 2, 2, 1, 1, False) == [([1], 2), ([1, 3], 2), ([3], 2)]
    # padding above half the extent, and a window of padding alone
    assert axis_windows(5, 3, 1, 1, 2, 0, False) is None
    assert axis_windows(1, 2, 1, 3, 1, 2, False) is None


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "cases"
    sys.exit(run_cases() if mode == "cases" else run_in_little_memory())
