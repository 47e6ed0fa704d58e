"""`python -m cypool bench`: time cypool against NumPy, PyTorch and the memory roofline.

Each row of the table is one :class:`Case`: an input builder and, per implementation, a *builder*
``(inputs, threads) -> thunk`` that does the set-up (views, tensors, parameters) outside the
timed region and returns a zero-argument callable that runs the operation once. New benchmark
rows are new entries in :data:`CASES`, usually made by a
small factory like :func:`window_case`.

Roofline: the time to read every input byte and write every result byte once at the bandwidth of
``np.copyto(dst, src)`` (``2 * nbytes / median time``, single-threaded, on an array of the case's
input size), timed alternately with the kernel's ``out=`` calls so that both see the same load
on a shared machine. ``cy/roof`` is how far cypool is from that floor; since the copy runs on
one thread, a multi-threaded kernel can come in under 1.

Every time is the median over repeats after a warm-up call; each implementation's calls
allocate their result, as a user's call does, and cypool is timed again writing into a
preallocated ``out=`` (the kernel alone), which is what ``cy/roof`` compares with the roofline.
cypool's allocating calls and torch's are timed alternately too, so ``torch/cy`` compares the
two at the same moment.
A cypool builder's thunk therefore takes an optional ``out`` keyword. NumPy baselines are slow, so they get fewer
repeats (one, without warm-up, under ``--quick``).
"""

from __future__ import annotations

import functools
import gc
import itertools
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from cypool._bench_case import Case, Inputs, Thunk, _nbytes
from cypool._bench_sequence import sequence_cases

# Pooled axes of each layout (the shape is given in memory order).
LAYOUT_AXES = {
    "NCL": (2,),
    "NLC": (1,),
    "NCHW": (2, 3),
    "NHWC": (1, 2),
    "NCDHW": (2, 3, 4),
    "NDHWC": (1, 2, 3),
}


def is_channels_last(layout: str) -> bool:
    return layout.endswith("C") and layout[1] != "C"


# ---------------------------------------------------------------------------------------------
# The registry


def random_input(shape, dtype="float32") -> Callable[[np.random.Generator], Inputs]:
    """An input builder: one array of standard normal values (random integers for int dtypes)."""

    def make(rng: np.random.Generator) -> Inputs:
        dt = np.dtype(dtype)
        if dt.kind == "f":
            if dt in (np.float32, np.float64):
                x = rng.standard_normal(shape, dtype=dt)
            else:
                x = rng.standard_normal(shape, dtype=np.float32).astype(dt)
        else:
            info = np.iinfo(dt)
            x = rng.integers(max(info.min, -100), min(info.max, 100), size=shape, dtype=dt, endpoint=True)
        return (x,)

    make.key = ("random", tuple(shape), np.dtype(dtype).str)  # equal keys: rows may share inputs
    return make


# ---------------------------------------------------------------------------------------------
# Window pooling rows


def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def numpy_window(x, op, kernel, stride, padding, axes, norm_type=None):
    """Straightforward NumPy window pooling: reshape when windows tile the axes exactly, else
    ``np.pad`` + ``sliding_window_view`` with the stride as a slice, reduced over the window
    axes. Avg counts padded taps (``count_include_pad=True``)."""
    nd = len(axes)
    kernel, stride, padding = _tuple(kernel, nd), _tuple(stride, nd), _tuple(padding, nd)
    if op == "max":
        pad_value = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    else:
        pad_value = 0
    tiles = all(p == 0 and k == s and x.shape[a] % k == 0 for a, k, s, p in zip(axes, kernel, stride, padding))
    if tiles:
        shape, red = [], []
        for a, n in enumerate(x.shape):
            if a in axes:
                k = kernel[axes.index(a)]
                shape += [n // k, k]
                red.append(len(shape) - 1)
            else:
                shape.append(n)
        v, red = x.reshape(shape), tuple(red)
    else:
        if any(padding):
            pads = [(0, 0)] * x.ndim
            for a, p in zip(axes, padding):
                pads[a] = (p, p)
            x = np.pad(x, pads, constant_values=pad_value)
        v = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=axes)
        sl = [slice(None)] * v.ndim
        for a, s in zip(axes, stride):
            sl[a] = slice(None, None, s)
        v = v[tuple(sl)]
        red = tuple(range(x.ndim, x.ndim + nd))
    if op == "max":
        return v.max(axis=red)
    if op == "avg":
        return v.mean(axis=red)
    if op == "lp":
        if norm_type == 2:
            return np.sqrt(np.square(v).sum(axis=red))
        return (np.abs(v) ** norm_type).sum(axis=red) ** (1.0 / norm_type)
    raise ValueError(f"op must be 'max', 'avg' or 'lp', got op={op!r}")


def _torch_nc_view(torch, x: np.ndarray, layout: str):
    """x as a torch tensor indexed N, C, *spatial (channels-last memory kept, no copy)."""
    t = torch.from_numpy(x)
    if is_channels_last(layout):
        t = t.permute(0, t.ndim - 1, *range(1, t.ndim - 1))
        fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(t.ndim)
        if fmt is not None:
            t = t.contiguous(memory_format=fmt)
    return t


def window_case(op, kernel, stride, padding, layout, shape, dtype="float32", norm_type=2):
    """A forward window pooling row: cypool.{op}_pool over the layout's spatial axes, the NumPy
    baseline of :func:`numpy_window` and ``torch.nn.functional.{op}_pool{d}d``."""
    axes = LAYOUT_AXES[layout]
    nd = len(axes)
    k, s, p = _tuple(kernel, nd), _tuple(stride, nd), _tuple(padding, nd)
    geom = "x".join(map(str, k)) + ("/" + "x".join(map(str, s)) if len(set(s)) > 1 else f"/{s[0]}")
    if any(p):
        geom += f" p{p[0]}" if len(set(p)) == 1 else " p" + "x".join(map(str, p))
    name = f"{op}{'' if op != 'lp' else norm_type} {geom}"

    def cy(inputs, threads):
        import cypool

        (x,) = inputs
        if op == "lp":
            return lambda out=None: cypool.lp_pool(x, norm_type, k, s, p, axes=axes, out=out,
                                                   num_threads=threads)
        fn = cypool.max_pool if op == "max" else cypool.avg_pool
        return lambda out=None: fn(x, k, s, p, axes=axes, out=out, num_threads=threads)

    def npy(inputs, threads):
        (x,) = inputs
        return lambda: numpy_window(x, op, k, s, p, axes, norm_type)

    def tch(inputs, threads):
        import torch
        import torch.nn.functional as F

        t = _torch_nc_view(torch, inputs[0], layout)
        if op == "lp":
            if any(p):
                return None  # torch's lp_pool has no padding
            fn = getattr(F, f"lp_pool{nd}d", None)
            if fn is None:
                return None
            return lambda: fn(t, norm_type, k, s)
        fn = getattr(F, f"{op}_pool{nd}d")
        return lambda: fn(t, k, s, p)

    torch_ok = np.dtype(dtype) != np.float16 or op == "max"
    return Case(
        name=name,
        shape=tuple(shape),
        layout=layout,
        make_inputs=random_input(shape, dtype),
        cypool=cy,
        numpy=npy,
        torch=tch if torch_ok else None,
        dtype=dtype,
        tags=("window", "forward", op),
    )


IMAGE_NCHW = (32, 64, 112, 112)
IMAGE_NHWC = (32, 112, 112, 64)
VOLUME_NCDHW = (8, 32, 32, 56, 56)


def _window_cases() -> list[Case]:
    rows = []
    for layout, shape in (("NCHW", IMAGE_NCHW), ("NHWC", IMAGE_NHWC)):
        rows += [
            window_case("max", 3, 2, 1, layout, shape),
            window_case("max", 2, 2, 0, layout, shape),
            window_case("avg", 3, 1, 1, layout, shape),
            window_case("avg", 2, 2, 0, layout, shape),
        ]
    rows.append(window_case("max", 2, 2, 0, "NCDHW", VOLUME_NCDHW))
    return rows


# ---------------------------------------------------------------------------------------------
# Backward, global and adaptive rows
#
# These rows pool the trailing axes of NCHW images or axes (1, 2) of channels-last ones. Their
# inputs can be several arrays (x, grad_output, indices); ``traffic`` then counts only the bytes
# the op itself must read and write, so an input the op does not touch (x for avg backward, kept
# for torch, which wants the input tensor) does not enter the roofline.


def _taps(kernel):
    """Window offsets in row-major scan order (the order ties are broken in)."""
    return list(itertools.product(*(range(k) for k in kernel)))


def _tap_view(a: np.ndarray, offsets, stride, out_spatial):
    """The strided view of a padded array holding tap `offsets` of every window: element
    ``[..., i, j]`` is tap `offsets` of output window ``(i, j)`` (trailing pooled axes)."""
    sl = tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offsets, stride, out_spatial))
    return a[(Ellipsis,) + sl]


def _pad_trailing(shape, padding):
    nd = len(padding)
    spatial = shape[len(shape) - nd:]
    return tuple(shape[: len(shape) - nd]) + tuple(n + 2 * p for n, p in zip(spatial, padding))


def _unpad_trailing(a: np.ndarray, padding):
    return a[(Ellipsis,) + tuple(slice(p, a.shape[a.ndim - len(padding) + i] - p)
                                 for i, p in enumerate(padding))]


def numpy_max_backward_indices(g, idx, input_shape):
    """max pool backward from indices (N, C, *pooled): ``np.add.at`` of g at the flat positions
    ``plane_number * plane_size + index`` of a zeroed grad_input (the 1-d index form, which is
    NumPy's fast ``add.at`` path: about 2x faster than a (row, column) index pair)."""
    planes = g.shape[0] * g.shape[1]
    plane = math.prod(input_shape[2:])
    gi = np.zeros(planes * plane, dtype=g.dtype)
    flat = idx.reshape(planes, -1) + (np.arange(planes, dtype=idx.dtype) * plane)[:, None]
    np.add.at(gi, flat.ravel(), g.ravel())
    return gi.reshape(input_shape)


def numpy_max_backward_recomputed(g, x, kernel, stride, padding):
    """max pool backward recomputing the argmax: the window max over the tap views of the
    -inf-padded input, then each tap in scan order takes g where it equals the max and no
    earlier tap did (ties to the first position, as cypool and PyTorch)."""
    pads = [(0, 0)] * (x.ndim - len(kernel)) + [(p, p) for p in padding]
    xp = np.pad(x, pads, constant_values=-np.inf)
    out_spatial = g.shape[g.ndim - len(kernel):]
    taps = _taps(kernel)
    best = _tap_view(xp, taps[0], stride, out_spatial).copy()
    for t in taps[1:]:
        np.maximum(best, _tap_view(xp, t, stride, out_spatial), out=best)
    gip = np.zeros(xp.shape, dtype=g.dtype)
    done = np.zeros(g.shape, dtype=bool)
    for t in taps:
        hit = _tap_view(xp, t, stride, out_spatial) == best
        hit &= ~done
        done |= hit
        _tap_view(gip, t, stride, out_spatial)[...] += np.where(hit, g, 0)
    return _unpad_trailing(gip, padding)


def numpy_avg_backward(g, input_shape, kernel, stride, padding):
    """avg pool backward, count_include_pad=True without ceil mode (every divisor is the window
    size): g / window size added into each tap view of a zero-padded gradient."""
    gs = g / math.prod(kernel)
    gip = np.zeros(_pad_trailing(input_shape, padding), dtype=g.dtype)
    out_spatial = g.shape[g.ndim - len(kernel):]
    for t in _taps(kernel):
        _tap_view(gip, t, stride, out_spatial)[...] += gs
    return _unpad_trailing(gip, padding)


def _geometry_name(kernel, stride, padding) -> str:
    geom = "x".join(map(str, kernel)) + (
        "/" + "x".join(map(str, stride)) if len(set(stride)) > 1 else f"/{stride[0]}"
    )
    if any(padding):
        geom += f" p{padding[0]}" if len(set(padding)) == 1 else " p" + "x".join(map(str, padding))
    return geom


def max_backward_inputs(shape, kernel, stride, padding, dtype="float32"):
    """(x, g, idx): random x, random g of the forward output's shape and the forward's indices
    from ``cypool.max_pool`` (pooling the trailing axes)."""

    def make(rng: np.random.Generator) -> Inputs:
        import cypool

        (x,) = random_input(shape, dtype)(rng)
        _, idx = cypool.max_pool(x, kernel, stride, padding, return_indices=True)
        g = rng.standard_normal(idx.shape, dtype=np.float32).astype(dtype, copy=False)
        return (x, g, idx)

    make.key = ("max_backward", tuple(shape), kernel, stride, padding, np.dtype(dtype).str)
    return make


def avg_backward_inputs(shape, kernel, stride, padding, dtype="float32"):
    """(x, g): random x (only torch's backward op reads it, for its shape) and random g of the
    forward output's shape (pooling the trailing axes)."""
    nd = len(kernel)
    out_spatial = tuple((n + 2 * p - k) // s + 1
                        for n, k, s, p in zip(shape[len(shape) - nd:], kernel, stride, padding))
    g_shape = tuple(shape[: len(shape) - nd]) + out_spatial

    def make(rng: np.random.Generator) -> Inputs:
        (x,) = random_input(shape, dtype)(rng)
        g = rng.standard_normal(g_shape, dtype=np.float32).astype(dtype, copy=False)
        return (x, g)

    make.key = ("avg_backward", tuple(shape), kernel, stride, padding, np.dtype(dtype).str)
    return make


def max_backward_case(kernel, stride, padding, shape, *, with_indices: bool, dtype="float32"):
    """max_pool_backward over the trailing two axes of an NCHW image, from the forward's indices
    (reads g and indices) or recomputing them (reads g and x); writes grad_input."""
    k, s, p = _tuple(kernel, 2), _tuple(stride, 2), _tuple(padding, 2)
    name = f"max bwd {_geometry_name(k, s, p)} {'idx' if with_indices else 'recomp'}"

    def cy(inputs, threads):
        import cypool

        x, g, idx = inputs
        indices = idx if with_indices else None
        return lambda out=None: cypool.max_pool_backward(g, x, k, s, p, indices=indices, out=out,
                                                         num_threads=threads)

    def npy(inputs, threads):
        x, g, idx = inputs
        if with_indices:
            return lambda: numpy_max_backward_indices(g, idx, x.shape)
        return lambda: numpy_max_backward_recomputed(g, x, k, s, p)

    def tch(inputs, threads):
        import torch
        import torch.nn.functional as F

        x, g, idx = (torch.from_numpy(a) for a in inputs)
        backward = torch.ops.aten.max_pool2d_with_indices_backward
        kl, sl, pl, dl = list(k), list(s), list(p), [1, 1]
        if with_indices:
            return lambda: backward(g, x, kl, sl, pl, dl, False, idx)
        return lambda: backward(g, x, kl, sl, pl, dl, False,
                                F.max_pool2d(x, kl, sl, pl, return_indices=True)[1])

    def traffic(inputs, result):
        x, g, idx = inputs
        return g.nbytes + (idx.nbytes if with_indices else x.nbytes) + _nbytes(result)

    return Case(
        name=name,
        shape=tuple(shape),
        layout="NCHW",
        make_inputs=max_backward_inputs(tuple(shape), k, s, p, dtype),
        cypool=cy,
        numpy=npy,
        torch=tch,
        traffic=traffic,
        dtype=dtype,
        tags=("window", "backward", "max"),
    )


def avg_backward_case(kernel, stride, padding, shape, dtype="float32"):
    """avg_pool_backward (count_include_pad=True) over the trailing two axes of an NCHW image:
    reads g, writes grad_input."""
    k, s, p = _tuple(kernel, 2), _tuple(stride, 2), _tuple(padding, 2)

    def cy(inputs, threads):
        import cypool

        x, g = inputs
        return lambda out=None: cypool.avg_pool_backward(g, x.shape, k, s, p, out=out,
                                                         num_threads=threads)

    def npy(inputs, threads):
        x, g = inputs
        return lambda: numpy_avg_backward(g, x.shape, k, s, p)

    def tch(inputs, threads):
        import torch

        x, g = (torch.from_numpy(a) for a in inputs)
        backward = torch.ops.aten.avg_pool2d_backward
        kl, sl, pl = list(k), list(s), list(p)
        return lambda: backward(g, x, kl, sl, pl, False, True, None)

    return Case(
        name=f"avg bwd {_geometry_name(k, s, p)}",
        shape=tuple(shape),
        layout="NCHW",
        make_inputs=avg_backward_inputs(tuple(shape), k, s, p, dtype),
        cypool=cy,
        numpy=npy,
        torch=tch,
        traffic=lambda inputs, result: inputs[1].nbytes + _nbytes(result),
        dtype=dtype,
        tags=("window", "backward", "avg"),
    )


def global_case(op, layout, shape, dtype="float32"):
    """global_{op}_pool over the spatial axes: the default axes for NCHW, axes=(1, 2) for NHWC;
    NumPy x.mean / x.max over the same axes; torch adaptive_{op}_pool2d(t, 1) on the NCHW or
    channels_last tensor."""
    spatial = LAYOUT_AXES[layout]
    axes = None if layout == "NCHW" else spatial

    def cy(inputs, threads):
        import cypool

        (x,) = inputs
        fn = cypool.global_avg_pool if op == "avg" else cypool.global_max_pool
        return lambda out=None: fn(x, axes=axes, out=out, num_threads=threads)

    def npy(inputs, threads):
        (x,) = inputs
        return (lambda: x.mean(axis=spatial)) if op == "avg" else (lambda: x.max(axis=spatial))

    def tch(inputs, threads):
        import torch
        import torch.nn.functional as F

        t = _torch_nc_view(torch, inputs[0], layout)
        fn = F.adaptive_avg_pool2d if op == "avg" else F.adaptive_max_pool2d
        return lambda: fn(t, 1)

    return Case(
        name=f"global {op}",
        shape=tuple(shape),
        layout=layout,
        make_inputs=random_input(shape, dtype),
        cypool=cy,
        numpy=npy,
        torch=tch,
        dtype=dtype,
        tags=("global", "forward", op),
    )


def adaptive_avg_case(layout, shape, output_size, dtype="float32"):
    """adaptive_avg_pool of the spatial axes to `output_size`; the NumPy baseline is a
    reshape-mean when the bins tile the axes (none otherwise); torch adaptive_avg_pool2d."""
    spatial = LAYOUT_AXES[layout]
    axes = None if layout == "NCHW" else spatial
    sizes = [shape[a] for a in spatial]
    tiles = all(n % o == 0 for n, o in zip(sizes, output_size))
    name = f"adapt avg {'x'.join(map(str, sizes))}->{'x'.join(map(str, output_size))}"

    def cy(inputs, threads):
        import cypool

        (x,) = inputs
        return lambda out=None: cypool.adaptive_avg_pool(x, output_size, axes=axes, out=out,
                                                         num_threads=threads)

    def npy(inputs, threads):
        if not tiles:
            return None
        (x,) = inputs
        shp, red = [], []
        for a, n in enumerate(x.shape):
            if a in spatial:
                o = output_size[spatial.index(a)]
                shp += [o, n // o]
                red.append(len(shp) - 1)
            else:
                shp.append(n)
        v, red = x.reshape(shp), tuple(red)
        return lambda: v.mean(axis=red)

    def tch(inputs, threads):
        import torch
        import torch.nn.functional as F

        t = _torch_nc_view(torch, inputs[0], layout)
        return lambda: F.adaptive_avg_pool2d(t, output_size)

    return Case(
        name=name,
        shape=tuple(shape),
        layout=layout,
        make_inputs=random_input(shape, dtype),
        cypool=cy,
        numpy=npy,
        torch=tch,
        dtype=dtype,
        tags=("adaptive", "forward", "avg"),
    )


GLOBAL_NCHW = (64, 2048, 7, 7)
GLOBAL_NHWC = (64, 7, 7, 2048)


def _backward_cases() -> list[Case]:
    return [
        max_backward_case(3, 2, 1, IMAGE_NCHW, with_indices=True),
        max_backward_case(3, 2, 1, IMAGE_NCHW, with_indices=False),
        avg_backward_case(3, 1, 1, IMAGE_NCHW),
    ]


def _global_adaptive_cases() -> list[Case]:
    rows = []
    for layout, shape in (("NCHW", GLOBAL_NCHW), ("NHWC", GLOBAL_NHWC)):
        rows += [global_case("avg", layout, shape), global_case("max", layout, shape)]
    rows.append(adaptive_avg_case("NCHW", IMAGE_NCHW, (7, 7)))
    return rows


# The table, in order.
CASES: list[Case] = _window_cases() + _backward_cases() + _global_adaptive_cases() + sequence_cases()


# ---------------------------------------------------------------------------------------------
# Timing


def median_times(fns: Sequence[Thunk], repeats: int, warmup: int = 1,
                 budget: float = math.inf) -> list[float]:
    """Median wall time of each of fns, called in turn (`repeats` rounds after `warmup`
    rounds): several functions timed alternately see the same load on a shared machine, so
    their ratio holds where either time alone moves by tens of percent. Stops early (after at
    least one timed round) once the timed calls have used `budget` seconds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    for _ in range(max(1, repeats)):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            result = fn()
            dt = time.perf_counter() - t0
            del result
            ts.append(dt)
            spent += dt
        if spent >= budget:
            break
    return [statistics.median(ts) for ts in times]


def median_time(fn: Thunk, repeats: int, warmup: int = 1, budget: float = math.inf) -> float:
    """Median wall time of fn() over `repeats` calls after `warmup` calls (see median_times)."""
    return median_times([fn], repeats, warmup, budget)[0]


def copy_call(nbytes: int) -> tuple[Thunk, int]:
    """np.copyto between two pre-touched arrays of `nbytes`, and the bytes one call moves."""
    src = np.ones(max(1, nbytes // 8), dtype=np.float64)
    dst = np.zeros_like(src)
    return (lambda: np.copyto(dst, src)), 2 * src.nbytes


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes per second of np.copyto between two pre-touched arrays of `nbytes` (2 * nbytes
    moved per copy)."""
    copy, moved = copy_call(nbytes)
    return moved / median_time(copy, repeats, warmup=2)


@dataclass
class Settings:
    repeats: int
    numpy_repeats: int
    numpy_warmup: int
    budget: float  # seconds of timed calls per measurement before stopping early
    bandwidth_repeats: int

    @classmethod
    def for_mode(cls, quick: bool) -> "Settings":
        if quick:
            return cls(repeats=5, numpy_repeats=1, numpy_warmup=0, budget=1.0, bandwidth_repeats=10)
        return cls(repeats=15, numpy_repeats=5, numpy_warmup=1, budget=15.0, bandwidth_repeats=30)


def _import_torch():
    try:
        import torch
    except Exception:  # missing, or broken install: no torch column
        return None
    return torch


# ---------------------------------------------------------------------------------------------
# Table


COLUMNS = (
    ("case", 23, "<"),
    ("layout", 6, "<"),
    ("shape", 20, "<"),
    ("cypool ms", 10, ">"),
    ("cy out= ms", 10, ">"),
    ("numpy ms", 10, ">"),
    ("torch ms", 10, ">"),
    ("roof ms", 8, ">"),
    ("cy/roof", 8, ">"),
    ("np/cy", 7, ">"),
    ("torch/cy", 8, ">"),
)


def _row(values) -> str:
    return "  ".join(f"{str(v):{align}{width}}" for v, (_, width, align) in zip(values, COLUMNS)).rstrip()


def _ms(t):
    return "-" if t is None else f"{t * 1e3:.2f}"


def _ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def run(quick: bool, threads: int | None, *, cases: Sequence[Case] | None = None) -> int:
    """Print the benchmark table; `threads` goes to cypool's num_threads and torch."""
    import cypool
    from cypool import _kernels
    from cypool import _runtime as runtime

    if threads is not None and threads < 1:
        print(f"bench: --threads must be >= 1, got {threads}")
        return 2
    cases = CASES if cases is None else list(cases)
    settings = Settings.for_mode(quick)
    torch = _import_torch()
    effective_threads = threads if threads is not None else runtime.max_threads()
    rng = np.random.default_rng(0)

    bandwidths: dict[int, float] = {}
    for case in cases:
        nbytes = math.prod(case.shape) * np.dtype(case.dtype).itemsize
        if nbytes not in bandwidths:
            bandwidths[nbytes] = copy_bandwidth(nbytes, settings.bandwidth_repeats)

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    thread_note = f"{threads}" if threads is not None else f"{effective_threads} (OpenMP default)"
    print(f"cypool {cypool.__version__} bench ({'quick' if quick else 'full'})")
    print(
        f"threads: {thread_note}; OpenMP: {runtime.OPENMP_ENABLED}; "
        f"CPUs: {os.cpu_count()} (usable {affinity}, OpenMP procs {runtime.num_procs()})"
    )
    print(f"kernels: {_kernels.ISA}")
    print(f"numpy {np.__version__}; torch {torch.__version__ if torch else 'not available'}")
    for nbytes, bw in bandwidths.items():
        print(f"bandwidth: {bw / 1e9:.1f} GB/s (np.copyto of {nbytes / 1e6:.1f} MB, 2*nbytes/median time; "
              "each row's roofline times the copy again, alternately with the kernel)")
    print(
        f"medians of {settings.repeats} calls after a warm-up (numpy: {settings.numpy_repeats}"
        f"{' without warm-up' if not settings.numpy_warmup else ''}); "
        f"stops early after {settings.budget:g} s of timed calls; times in ms"
    )
    print()
    print(_row([c[0] for c in COLUMNS]))
    print(_row(["-" * c[1] for c in COLUMNS]), flush=True)

    old_torch_threads = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(effective_threads)
    cache_key, inputs = None, None
    try:
        for case in cases:
            key = getattr(case.make_inputs, "key", case.make_inputs)
            if key != cache_key:
                inputs = None
                gc.collect()
                inputs = case.make_inputs(rng)
                cache_key = key
            nbytes = math.prod(case.shape) * np.dtype(case.dtype).itemsize

            cy = case.cypool(inputs, threads)
            result = cy()  # also the warm-up call
            moved = case.bytes_moved(inputs, result)
            # The roofline's copy runs alternately with the kernel, at the same moment's speed.
            copy, copied = copy_call(nbytes)
            t_cy_out, t_copy = median_times([functools.partial(cy, out=result), copy],
                                            settings.repeats, 1, settings.budget)
            del copy

            t_np = None
            if case.numpy is not None:
                fn = case.numpy(inputs, threads)
                if fn is not None:
                    t_np = median_time(fn, settings.numpy_repeats, settings.numpy_warmup, settings.budget)
                del fn

            # The allocating call is timed alternately with torch's, which allocates too: both
            # see the same moment's load and the same allocator state (a fresh result's first
            # touch costs page faults unless the allocator reuses freed memory). Timed one
            # after the other instead, their ratio moved by 30% between runs.
            t_torch = None
            fn = None
            if torch is not None and case.torch is not None:
                fn = case.torch(inputs, effective_threads)
            if fn is not None:
                with torch.inference_mode():
                    t_cy, t_torch = median_times([cy, fn], settings.repeats, 1, settings.budget)
            else:
                t_cy = median_time(cy, settings.repeats, warmup=0, budget=settings.budget)
            del cy, result, fn

            t_roof = moved * t_copy / copied
            print(
                _row(
                    [
                        case.name,
                        case.layout,
                        "(" + ",".join(map(str, case.shape)) + ")",
                        _ms(t_cy),
                        _ms(t_cy_out),
                        _ms(t_np),
                        _ms(t_torch),
                        _ms(t_roof),
                        _ratio(t_cy_out, t_roof),
                        _ratio(t_np, t_cy),
                        _ratio(t_torch, t_cy),
                    ]
                ),
                flush=True,
            )
            gc.collect()
    finally:
        inputs = None
        if torch is not None:
            torch.set_num_threads(old_torch_threads)
    print()
    print(
        "cypool ms: allocating the result, as numpy and torch do; cy out= ms: into a preallocated\n"
        "out= (the kernel alone; a fresh 100 MB result costs page faults on first touch).\n"
        "cy/roof: cy out= time / roofline time (1 = at np.copyto's bandwidth, timed alternately with\n"
        "the kernel); np/cy, torch/cy: speed-up of cypool (allocating) over numpy and torch (cypool\n"
        "and torch timed alternately)"
    )
    return 0
