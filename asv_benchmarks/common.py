"""Helpers shared by the benchmark modules (inputs, layouts, optional ops, timing).

Self-contained (no cypool._bench import) so the suite also runs against older commits.
"""

import statistics
import time

import numpy as np

import cypool

# Moderately sized (16, 32, 64, 64) images, 8 MB in float32, so the whole suite runs in a few
# minutes; roofline tracks use the `python -m cypool bench` sizes instead.
IMAGE = {"NCHW": ((16, 32, 64, 64), (2, 3)), "NHWC": ((16, 64, 64, 32), (1, 2))}

# One window geometry for every window op: ResNet's stem pooling, 3x3, stride 2, padding 1.
KERNEL, STRIDE, PADDING = (3, 3), 2, 1
NORM_TYPE = 2.0


def make_input(shape, dtype, seed=0):
    """Standard normal floats, or integers in [0, 256) for integer dtypes."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    return rng.integers(0, 256, size=shape, dtype=dtype)


def require(*names):
    """Skip (NotImplementedError, as asv expects) when the benchmarked cypool lacks an op."""
    missing = [n for n in names if not hasattr(cypool, n)]
    if missing:
        raise NotImplementedError(f"this cypool has no {', '.join(missing)}")


def median_time(fn, repeats):
    """Median seconds of fn() over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
