"""Slow, obviously correct NumPy reference for window pooling (forward).

This module re-implements the rules of the README's API rules ("Conventions" and "Window pooling") with
plain Python loops over output positions and window taps. It deliberately shares no code with
``cypool`` (in particular not ``cypool._geometry``) so that it can serve as an independent oracle
in the tests.

Functions
---------
ref_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, axes=None, ceil_mode=False)
    -> (values, indices)
ref_avg_pool(x, kernel_size, stride=None, padding=0, dilation=1, axes=None, ceil_mode=False,
             count_include_pad=True, divisor_override=None) -> values
ref_lp_pool(x, norm_type, kernel_size, stride=None, padding=0, dilation=1, axes=None,
            ceil_mode=False) -> values
ref_lp_pool_exact(x, norm_type, kernel_size, ...) -> values
    as ref_lp_pool, in 60-digit decimal arithmetic: right for any finite input and p (the
    float64 sums of ref_lp_pool overflow or underflow at extreme magnitudes)
ref_lp_norm_exact(values, p) -> decimal.Decimal
ref_geometry(shape, kernel_size, stride=None, padding=0, dilation=1, axes=None,
             ceil_mode=False) -> Geometry

Every function raises ``ValueError`` for a geometry that the API rejects.
"""

from __future__ import annotations

import decimal
import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Geometry",
    "ref_geometry",
    "ref_max_pool",
    "ref_avg_pool",
    "ref_lp_pool",
    "ref_lp_pool_exact",
    "ref_lp_norm_exact",
    "EXACT",
    "exact",
    "MAX_DTYPES",
    "AVG_DTYPES",
    "avg_result_dtype",
]

MAX_DTYPES = tuple(
    np.dtype(d)
    for d in (
        "float16", "float32", "float64",
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
    )
)
AVG_DTYPES = MAX_DTYPES  # ints are accepted and computed/returned as float64


def avg_result_dtype(dtype) -> np.dtype:
    """Result dtype of an averaging op (avg, lp) for an input dtype."""
    dtype = np.dtype(dtype)
    if dtype in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        return dtype
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    raise TypeError(f"unsupported dtype {dtype}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _per_axis(value, naxes: int, name: str) -> list[int]:
    """An int for every axis, or a sequence with one int per axis."""
    if _is_int(value):
        vals = [int(value)] * naxes
    else:
        vals = list(value)
        if len(vals) != naxes:
            raise ValueError(f"{name} has {len(vals)} entries for {naxes} pooled axes")
        if not all(_is_int(v) for v in vals):
            raise ValueError(f"{name} must hold ints, got {value!r}")
        vals = [int(v) for v in vals]
    if any(v <= 0 for v in vals):
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return vals


@dataclass(frozen=True)
class Geometry:
    """Per pooled axis (in increasing axis order) everything the loops need."""

    axes: tuple[int, ...]          # sorted, non-negative
    in_sizes: tuple[int, ...]      # n per pooled axis
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]
    out_sizes: tuple[int, ...]
    out_shape: tuple[int, ...]     # full result shape

    def taps(self, axis_pos: int, o: int) -> list[int]:
        """All tap coordinates (padded ones included) of output ``o`` along pooled axis
        ``axis_pos``, in scan order."""
        start = o * self.stride[axis_pos] - self.pad_before[axis_pos]
        return [start + j * self.dilation[axis_pos] for j in range(self.kernel[axis_pos])]


def ref_geometry(shape, kernel_size, stride=None, padding=0, dilation=1, axes=None,
                 ceil_mode=False) -> Geometry:
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)

    # ---- axes ---------------------------------------------------------------------------
    if axes is None:
        if _is_int(kernel_size):
            raise ValueError("kernel_size must be a tuple when axes is None")
        naxes = len(tuple(kernel_size))
        if not 1 <= naxes <= 3:
            raise ValueError(f"kernel_size must have 1 to 3 entries, got {kernel_size!r}")
        if naxes > ndim:
            raise ValueError(f"kernel_size {kernel_size!r} has more entries than x has axes")
        given_axes = list(range(ndim - naxes, ndim))
    else:
        given_axes = [axes] if _is_int(axes) else list(axes)
        naxes = len(given_axes)
        if not 1 <= naxes <= 3:
            raise ValueError(f"axes must hold 1 to 3 axes, got {axes!r}")
        for a in given_axes:
            if not _is_int(a):
                raise ValueError(f"axes must hold ints, got {axes!r}")
            if not -ndim <= a < ndim:
                raise ValueError(f"axes {axes!r} out of range for {ndim} dims")
        given_axes = [int(a) % ndim for a in given_axes]
        if len(set(given_axes)) != naxes:
            raise ValueError(f"axes must be distinct, got {axes!r}")

    # ---- per-axis params, in the order of the axes as given ----------------------------
    k = _per_axis(kernel_size, naxes, "kernel_size")
    s = k if stride is None else _per_axis(stride, naxes, "stride")
    d = _per_axis(dilation, naxes, "dilation")
    n = [shape[a] for a in given_axes]
    ext = [d[i] * (k[i] - 1) + 1 for i in range(naxes)]

    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * naxes
        elif padding == "same":
            pads = []
            for i in range(naxes):
                out = -(-n[i] // s[i])  # ceil(n / s)
                total = max((out - 1) * s[i] + ext[i] - n[i], 0)
                before = total // 2
                pads.append((before, total - before))
        else:
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    elif _is_int(padding):
        pads = [(int(padding), int(padding))] * naxes
    else:
        entries = list(padding)
        if len(entries) != naxes:
            raise ValueError(f"padding has {len(entries)} entries for {naxes} pooled axes")
        pads = []
        for p in entries:
            if _is_int(p):
                pads.append((int(p), int(p)))
            else:
                pair = tuple(p)
                if len(pair) != 2 or not all(_is_int(v) for v in pair):
                    raise ValueError(f"bad padding entry {p!r}")
                pads.append((int(pair[0]), int(pair[1])))
    for i, (pb, pa) in enumerate(pads):
        if pb < 0 or pa < 0:
            raise ValueError(f"padding must be >= 0, got {padding!r}")
        if 2 * pb > ext[i] or 2 * pa > ext[i]:
            raise ValueError(f"padding {padding!r} exceeds half the kernel extent {ext[i]}")

    # ---- output sizes -----------------------------------------------------------------------
    outs = []
    for i in range(naxes):
        pb, pa = pads[i]
        num = n[i] + pb + pa - ext[i]
        if ceil_mode:
            o = -(-num // s[i]) + 1      # ceil division (exact for negatives too)
            if (o - 1) * s[i] >= n[i] + pb:
                o -= 1
        else:
            o = num // s[i] + 1          # floor division
        if o < 1:
            raise ValueError(f"output size {o} < 1 along axis {given_axes[i]}")
        outs.append(o)

    # ---- sort axes increasingly, reorder the params alongside ---------------------------
    order = sorted(range(naxes), key=lambda i: given_axes[i])
    pick = lambda seq: tuple(seq[i] for i in order)  # noqa: E731
    out_shape = list(shape)
    for i in range(naxes):
        out_shape[given_axes[i]] = outs[i]
    geo = Geometry(
        axes=pick(given_axes), in_sizes=pick(n), kernel=pick(k), stride=pick(s),
        dilation=pick(d), pad_before=pick([p[0] for p in pads]),
        pad_after=pick([p[1] for p in pads]), out_sizes=pick(outs), out_shape=tuple(out_shape),
    )

    # ---- every window must hold at least one input element ------------------------------
    for ap in range(naxes):
        for o in range(geo.out_sizes[ap]):
            if not any(0 <= t < geo.in_sizes[ap] for t in geo.taps(ap, o)):
                raise ValueError(
                    f"window {o} along axis {geo.axes[ap]} holds only padding "
                    f"(dilation={dilation!r}, padding={padding!r})"
                )
    return geo


def _windows(x: np.ndarray, geo: Geometry):
    """Yield (out_index, taps) for every output element; ``taps`` lists, in row-major window
    scan order (pooled axes in increasing order), each tap as (input_index, flat_position,
    in_input, in_padded_extent)."""
    naxes = len(geo.axes)
    batch_axes = [a for a in range(x.ndim) if a not in geo.axes]
    batch_shape = tuple(x.shape[a] for a in batch_axes)
    # strides of the flat position over the pooled axes (row-major, increasing axis order)
    flat_mul = [math.prod(geo.in_sizes[i + 1:]) for i in range(naxes)]
    for b in np.ndindex(*batch_shape):
        for o in np.ndindex(*geo.out_sizes):
            out_idx = [0] * x.ndim
            for a, v in zip(batch_axes, b):
                out_idx[a] = v
            for ap, v in enumerate(o):
                out_idx[geo.axes[ap]] = v
            per_axis = [geo.taps(ap, o[ap]) for ap in range(naxes)]
            taps = []
            for coords in itertools.product(*per_axis):
                in_input = all(0 <= c < n for c, n in zip(coords, geo.in_sizes))
                in_padded = all(
                    -pb <= c < n + pa
                    for c, n, pb, pa in zip(coords, geo.in_sizes, geo.pad_before, geo.pad_after)
                )
                if in_input:
                    idx = list(out_idx)
                    for ap, c in enumerate(coords):
                        idx[geo.axes[ap]] = c
                    flat = sum(c * m for c, m in zip(coords, flat_mul))
                    taps.append((tuple(idx), flat, True, True))
                else:
                    taps.append((None, None, False, in_padded))
            yield tuple(out_idx), taps


def _check_dtype(x: np.ndarray):
    if x.dtype not in MAX_DTYPES:
        raise TypeError(f"unsupported dtype {x.dtype}")


def ref_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, axes=None,
                 ceil_mode=False):
    x = np.asarray(x)
    _check_dtype(x)
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    values = np.empty(geo.out_shape, dtype=x.dtype)
    indices = np.empty(geo.out_shape, dtype=np.int64)
    is_float = x.dtype.kind == "f"
    for out_idx, taps in _windows(x, geo):
        best = None
        best_flat = None
        for idx, flat, in_input, _ in taps:
            if not in_input:
                continue  # padding never wins
            v = x[idx]
            if best is None:
                best, best_flat = v, flat
            elif is_float and math.isnan(best):
                pass  # the first NaN wins and stays
            elif is_float and math.isnan(v):
                best, best_flat = v, flat
            elif (float(v) > float(best)) if is_float else (int(v) > int(best)):
                best, best_flat = v, flat  # strictly greater: ties keep the first
        assert best is not None, "window without input element slipped through"
        values[out_idx] = best
        indices[out_idx] = best_flat
    return values, indices


def ref_avg_pool(x, kernel_size, stride=None, padding=0, dilation=1, axes=None,
                 ceil_mode=False, count_include_pad=True, divisor_override=None):
    x = np.asarray(x)
    _check_dtype(x)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor_override must not be 0")
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    acc = np.empty(geo.out_shape, dtype=np.float64)
    for out_idx, taps in _windows(x, geo):
        total = 0.0
        n_input = 0
        n_padded = 0
        for idx, _, in_input, in_padded in taps:
            if in_input:
                total += float(x[idx])
                n_input += 1
            if in_padded:
                n_padded += 1
        if divisor_override is not None:
            div = divisor_override
        elif count_include_pad:
            div = n_padded
        else:
            div = n_input
        acc[out_idx] = total / div
    return acc.astype(avg_result_dtype(x.dtype))


def ref_lp_pool(x, norm_type, kernel_size, stride=None, padding=0, dilation=1, axes=None,
                ceil_mode=False):
    x = np.asarray(x)
    _check_dtype(x)
    p = float(norm_type)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"norm_type must be a finite number > 0, got {norm_type!r}")
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    acc = np.empty(geo.out_shape, dtype=np.float64)
    for out_idx, taps in _windows(x, geo):
        total = 0.0
        for idx, _, in_input, _ in taps:
            if in_input:
                total += abs(float(x[idx])) ** p
        acc[out_idx] = total ** (1.0 / p)
    return acc.astype(avg_result_dtype(x.dtype))


# 60 digits, and exponents far beyond any float's to any power the tests take (1e-324 ** 1000).
EXACT = decimal.Context(prec=60, Emax=10**7, Emin=-10**7)


def exact(v) -> decimal.Decimal:
    """A float in EXACT's decimal arithmetic: rounded to its 60 digits (a relative 1e-60; the
    exact expansion of a subnormal has 750, which made a power take 10 ms)."""
    return EXACT.plus(decimal.Decimal(float(v)))


def ref_lp_norm_exact(values, p) -> decimal.Decimal:
    """(sum of |v| ** p) ** (1 / p) of floats, in EXACT's decimal arithmetic: no power
    overflows or underflows."""
    power = decimal.Decimal(float(p))
    total = decimal.Decimal(0)
    for v in values:
        if v != 0:
            total = EXACT.add(total, EXACT.power(exact(abs(float(v))), power))
    if total == 0:
        return total
    return EXACT.power(total, EXACT.divide(1, power))


def ref_lp_pool_exact(x, norm_type, kernel_size, stride=None, padding=0, dilation=1, axes=None,
                      ceil_mode=False):
    """ref_lp_pool with each window's norm from ref_lp_norm_exact, rounded once to the result
    dtype (NaN where the window holds a NaN, inf where it holds an inf)."""
    x = np.asarray(x)
    _check_dtype(x)
    p = float(norm_type)
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    acc = np.empty(geo.out_shape, dtype=np.float64)
    for out_idx, taps in _windows(x, geo):
        values = [float(x[idx]) for idx, _, in_input, _ in taps if in_input]
        if any(math.isnan(v) for v in values):
            acc[out_idx] = math.nan
        elif any(math.isinf(v) for v in values):
            acc[out_idx] = math.inf
        else:
            acc[out_idx] = float(ref_lp_norm_exact(values, p))
    with np.errstate(over="ignore"):  # float32 results beyond float32's range round to inf
        return acc.astype(avg_result_dtype(x.dtype))
