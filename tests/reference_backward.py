"""Slow, obviously correct NumPy references for the window backward ops, ``max_unpool``, and
adaptive / global pooling (forward and backward), following the README's API rules.

Like ``reference.py`` this shares no code with ``cypool``: every function is a plain Python loop
over output positions (windows or bins) and their input taps, accumulating in float64 (Python
floats), and only then casting to the result dtype. Window geometry (sizes, padding, output
shape, validation) comes from ``reference.ref_geometry`` and the window max (tie and NaN rules)
from ``reference.ref_max_pool``, both checked by ``test_reference.py``.

Functions (argument names and order follow the README's API rules; no ``out`` / ``num_threads``)
---------------------------------------------------------------------------------
ref_max_pool_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                      axes=None, ceil_mode=False, indices=None) -> grad_input
ref_avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                      dilation=1, axes=None, ceil_mode=False, count_include_pad=True,
                      divisor_override=None) -> grad_input
ref_lp_pool_backward(grad_output, x, norm_type, kernel_size, stride=None, padding=0,
                     dilation=1, axes=None, ceil_mode=False) -> grad_input
ref_lp_pool_backward_exact(grad_output, x, norm_type, kernel_size, ...) -> grad_input
    as ref_lp_pool_backward, in decimal arithmetic (reference.EXACT): right for any finite x
ref_max_unpool(x, indices, output_size, axes=None) -> array
ref_adaptive_bins(n, o) -> [(start, stop), ...]
ref_adaptive_geometry(shape, output_size, axes=None) -> AdaptiveGeometry
ref_adaptive_avg_pool(x, output_size, axes=None) -> values
ref_adaptive_max_pool(x, output_size, axes=None) -> (values, indices)
ref_adaptive_avg_pool_backward(grad_output, input_shape, axes=None) -> grad_input
ref_adaptive_max_pool_backward(grad_output, x, output_size, axes=None, indices=None)
ref_global_axes(ndim, axes=None) -> sorted tuple of reduced axes
ref_global_avg_pool(x, axes=None, keepdims=False) -> values
ref_global_max_pool(x, axes=None, keepdims=False) -> (values, indices)
ref_global_avg_pool_backward(grad_output, input_shape, axes=None, keepdims=False)
ref_global_max_pool_backward(grad_output, x, axes=None, keepdims=False, indices=None)

Conventions used here (see the module tests for hand-computed cases):

* Gradients have the dtype of ``grad_output`` (float16/32/64 only, else ``TypeError``).
* Max indices (window, adaptive, global) are flat positions over the pooled/reduced axes,
  row-major in increasing axis order; ties go to the first position of the row-major scan and
  the first NaN met wins (the rule of ``reference.ref_max_pool``).
* A user-given index outside ``[0, prod(pooled sizes))`` is a ``ValueError`` naming ``indices``.
* LP backward: the gradient of ``(sum |x_t|**p) ** (1/p)`` over the in-bounds taps is
  ``g * sign(x_t) * |x_t|**(p-1) * y**(1-p)``, written as ``g * sign(x_t) * (|x_t|/y)**(p-1)``
  (the same number, without overflowing intermediate powers); windows with ``y == 0`` and taps
  with ``x_t == 0`` contribute 0 (``sign(0) == 0``).
"""

from __future__ import annotations

import decimal
import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from reference import (EXACT, MAX_DTYPES, avg_result_dtype, exact, ref_geometry,
                       ref_lp_norm_exact, ref_max_pool)

__all__ = [
    "GRAD_DTYPES",
    "AdaptiveGeometry",
    "ref_max_pool_backward",
    "ref_avg_pool_backward",
    "ref_lp_pool_backward",
    "ref_lp_pool_backward_exact",
    "ref_max_unpool",
    "ref_adaptive_bins",
    "ref_adaptive_geometry",
    "ref_adaptive_avg_pool",
    "ref_adaptive_max_pool",
    "ref_adaptive_avg_pool_backward",
    "ref_adaptive_max_pool_backward",
    "ref_global_axes",
    "ref_global_avg_pool",
    "ref_global_max_pool",
    "ref_global_avg_pool_backward",
    "ref_global_max_pool_backward",
]

GRAD_DTYPES = tuple(np.dtype(d) for d in ("float16", "float32", "float64"))


# ================================================================================ helpers


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_grad(g: np.ndarray) -> None:
    if g.dtype not in GRAD_DTYPES:
        raise TypeError(f"grad_output has unsupported dtype {g.dtype}")


def _check_max_dtype(x: np.ndarray, name: str = "x") -> None:
    if x.dtype not in MAX_DTYPES:
        raise TypeError(f"{name} has unsupported dtype {x.dtype}")


def _check_indices(indices, shape) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got {indices.dtype}")
    if indices.shape != tuple(shape):
        raise ValueError(f"indices has shape {indices.shape}, expected {tuple(shape)}")
    return indices


def _normalize_axes(axes, ndim: int) -> list[int]:
    """Axes as given (order kept), made non-negative; ValueError when out of range or repeated."""
    given = [axes] if _is_int(axes) else list(axes)
    out = []
    for a in given:
        if not _is_int(a) or not -ndim <= a < ndim:
            raise ValueError(f"axes {axes!r} out of range for {ndim} dims")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axes must be distinct, got {axes!r}")
    return out


def _batch_axes(ndim: int, axes) -> list[int]:
    return [a for a in range(ndim) if a not in axes]


def _full_index(ndim, batch_axes, b, axes, coords) -> tuple:
    """The index tuple of the element with batch position ``b`` and pooled coords ``coords``."""
    idx = [0] * ndim
    for a, v in zip(batch_axes, b):
        idx[a] = v
    for a, v in zip(axes, coords):
        idx[a] = v
    return tuple(idx)


def _pooled_loops(shape, axes, sizes):
    """For every batch position of an array of ``shape`` pooled over ``axes`` (sorted), and
    every position ``o`` of an array of shape ``sizes``, in row-major order (batch outer):
    yield ``(at, o)``, where ``at(coords)`` is the full index of pooled coords ``coords`` at
    that batch position (the batch axes are the same in the input and the output)."""
    ndim = len(shape)
    batch_axes = _batch_axes(ndim, axes)
    for b in np.ndindex(*[shape[a] for a in batch_axes]):
        at = functools.partial(_full_index, ndim, batch_axes, b, axes)
        for o in np.ndindex(*sizes):
            yield at, o


def _flat(coords, sizes) -> int:
    """Row-major flat position of ``coords`` in an array of shape ``sizes``."""
    f = 0
    for c, n in zip(coords, sizes):
        f = f * n + c
    return f


def _unflat(flat: int, sizes) -> tuple:
    """Inverse of ``_flat``; ValueError naming ``indices`` outside ``[0, prod(sizes))``."""
    total = math.prod(sizes)
    if not 0 <= flat < total:
        raise ValueError(f"indices value {flat} out of range [0, {total})")
    coords = []
    for n in reversed(sizes):
        coords.append(flat % n)
        flat //= n
    return tuple(reversed(coords))


def _greater(v, best, is_float: bool) -> bool:
    """Max rule shared with ``reference.ref_max_pool``: the first NaN wins and stays, a NaN beats
    any number, otherwise only a strictly greater value replaces the current best."""
    if is_float:
        if math.isnan(float(best)):
            return False
        if math.isnan(float(v)):
            return True
        return float(v) > float(best)
    return int(v) > int(best)


# ================================================================================ window backward


def _window_taps(geo, o):
    """Every tap of the window at output coords ``o`` (pooled axes in increasing order), in
    row-major scan order, as (coords, inside_input, inside_padded_extent)."""
    per_axis = [geo.taps(ap, o[ap]) for ap in range(len(geo.axes))]
    for coords in itertools.product(*per_axis):
        inside = all(0 <= c < n for c, n in zip(coords, geo.in_sizes))
        padded = all(-pb <= c < n + pa for c, n, pb, pa in
                     zip(coords, geo.in_sizes, geo.pad_before, geo.pad_after))
        yield coords, inside, padded


def _check_grad_shape(g: np.ndarray, shape) -> None:
    if g.shape != tuple(shape):
        raise ValueError(f"grad_output has shape {g.shape}, expected {tuple(shape)}")


def _max_backward(g, indices, shape, axes, in_sizes, out_sizes):
    """Max backward (window and adaptive): every element of ``g`` added to the input element
    its flat index (over the pooled ``in_sizes``) points at."""
    grad = np.zeros(shape, dtype=np.float64)
    for at, o in _pooled_loops(shape, axes, out_sizes):
        coords = _unflat(int(indices[at(o)]), in_sizes)
        grad[at(coords)] += float(g[at(o)])
    return grad.astype(g.dtype)


def ref_max_pool_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                          axes=None, ceil_mode=False, indices=None):
    g = np.asarray(grad_output)
    x = np.asarray(x)
    _check_grad(g)
    _check_max_dtype(x)
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    _check_grad_shape(g, geo.out_shape)
    if indices is None:
        _, indices = ref_max_pool(x, kernel_size, stride, padding, dilation, axes, ceil_mode)
    indices = _check_indices(indices, geo.out_shape)
    return _max_backward(g, indices, x.shape, geo.axes, geo.in_sizes, geo.out_sizes)


def ref_avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                          dilation=1, axes=None, ceil_mode=False, count_include_pad=True,
                          divisor_override=None):
    g = np.asarray(grad_output)
    _check_grad(g)
    input_shape = tuple(int(s) for s in input_shape)
    if any(s < 0 for s in input_shape):
        raise ValueError(f"input_shape must not hold negative sizes, got {input_shape}")
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor_override must not be 0")
    geo = ref_geometry(input_shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    _check_grad_shape(g, geo.out_shape)

    grad = np.zeros(input_shape, dtype=np.float64)
    for at, o in _pooled_loops(input_shape, geo.axes, geo.out_sizes):
        taps = list(_window_taps(geo, o))
        if divisor_override is not None:
            div = divisor_override
        elif count_include_pad:
            div = sum(1 for _, _, padded in taps if padded)
        else:
            div = sum(1 for _, inside, _ in taps if inside)
        share = float(g[at(o)]) / div
        for coords, inside, _ in taps:
            if inside:
                grad[at(coords)] += share
    return grad.astype(g.dtype)


def ref_lp_pool_backward(grad_output, x, norm_type, kernel_size, stride=None, padding=0,
                         dilation=1, axes=None, ceil_mode=False):
    g = np.asarray(grad_output)
    x = np.asarray(x)
    _check_grad(g)
    _check_max_dtype(x)
    p = float(norm_type)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"norm_type must be a finite number > 0, got {norm_type!r}")
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    _check_grad_shape(g, geo.out_shape)

    grad = np.zeros(x.shape, dtype=np.float64)
    for at, o in _pooled_loops(x.shape, geo.axes, geo.out_sizes):
        gv = float(g[at(o)])
        members = []
        for coords, inside, _ in _window_taps(geo, o):
            if inside:
                members.append((at(coords), float(x[at(coords)])))
        y = sum(abs(v) ** p for _, v in members) ** (1.0 / p)
        if y == 0.0:
            continue                       # a zero-norm window has a zero gradient
        for idx, v in members:
            if v == 0.0:
                continue                   # sign(0) == 0
            sign = 1.0 if v > 0 else -1.0
            grad[idx] += gv * sign * (abs(v) / y) ** (p - 1.0)
    return grad.astype(g.dtype)


def ref_lp_pool_backward_exact(grad_output, x, norm_type, kernel_size, stride=None, padding=0,
                               dilation=1, axes=None, ceil_mode=False):
    """ref_lp_pool_backward for finite x, each window's norm from ref_lp_norm_exact and each
    pair's g * sign(x) * (|x| / y) ** (p - 1) summed in decimal, rounded once."""
    g = np.asarray(grad_output)
    x = np.asarray(x)
    p = float(norm_type)
    geo = ref_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    _check_grad_shape(g, geo.out_shape)
    exponent = EXACT.subtract(decimal.Decimal(p), 1)
    grad = {}
    for at, o in _pooled_loops(x.shape, geo.axes, geo.out_sizes):
        gv = exact(g[at(o)])
        members = [(at(c), float(x[at(c)])) for c, inside, _ in _window_taps(geo, o) if inside]
        y = ref_lp_norm_exact([v for _, v in members], p)
        for idx, v in members:
            if y == 0 or v == 0.0:
                continue
            ratio = EXACT.divide(exact(abs(v)), y)
            share = EXACT.multiply(gv, EXACT.power(ratio, exponent))
            grad[idx] = EXACT.add(grad.get(idx, decimal.Decimal(0)),
                                  share if v > 0 else EXACT.minus(share))
    out = np.zeros(x.shape, dtype=np.float64)
    for idx, total in grad.items():
        out[idx] = float(total)
    with np.errstate(over="ignore"):  # float32 results beyond float32's range round to inf
        return out.astype(g.dtype)


# ================================================================================ max_unpool


def ref_max_unpool(x, indices, output_size, axes=None):
    x = np.asarray(x)
    _check_max_dtype(x)
    indices = _check_indices(indices, x.shape)
    sizes = [output_size] if _is_int(output_size) else list(output_size)
    if axes is None:
        if _is_int(output_size):
            raise ValueError("output_size must be a tuple when axes is None")
        if not 1 <= len(sizes) <= x.ndim:
            raise ValueError(f"output_size {output_size!r} does not fit x of {x.ndim} dims")
        given = list(range(x.ndim - len(sizes), x.ndim))
    else:
        given = _normalize_axes(axes, x.ndim)
        if _is_int(output_size):
            sizes = sizes * len(given)
    if len(sizes) != len(given):
        raise ValueError(f"output_size {output_size!r} has {len(sizes)} entries for "
                         f"{len(given)} pooled axes")
    if not all(_is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"output_size must hold ints >= 1, got {output_size!r}")
    order = sorted(range(len(given)), key=lambda i: given[i])
    pooled = [given[i] for i in order]
    out_sizes = [int(sizes[i]) for i in order]
    out_shape = list(x.shape)
    for a, s in zip(pooled, out_sizes):
        out_shape[a] = s

    result = np.zeros(out_shape, dtype=x.dtype)
    for at, c in _pooled_loops(x.shape, pooled, [x.shape[a] for a in pooled]):
        coords = _unflat(int(indices[at(c)]), out_sizes)
        result[at(coords)] = x[at(c)]
    return result


# ================================================================================ adaptive


def ref_adaptive_bins(n: int, o: int) -> list[tuple[int, int]]:
    """Bin ``i`` covers ``[floor(i*n/o), ceil((i+1)*n/o))`` (integer arithmetic)."""
    return [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)]


@dataclass(frozen=True)
class AdaptiveGeometry:
    axes: tuple[int, ...]          # sorted, non-negative
    in_sizes: tuple[int, ...]
    out_sizes: tuple[int, ...]
    out_shape: tuple[int, ...]

    def bins(self, ap: int):
        return ref_adaptive_bins(self.in_sizes[ap], self.out_sizes[ap])


def ref_adaptive_geometry(shape, output_size, axes=None) -> AdaptiveGeometry:
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if output_size is None:
        raise ValueError("output_size must be an int or a tuple")
    if axes is None:
        if _is_int(output_size):
            raise ValueError("output_size must be a tuple when axes is None")
        sizes = list(output_size)
        if not 1 <= len(sizes) <= ndim:
            raise ValueError(f"output_size {output_size!r} does not fit an input of {ndim} dims")
        given = list(range(ndim - len(sizes), ndim))
    else:
        given = _normalize_axes(axes, ndim)
        if not given:
            raise ValueError("axes must not be empty")
        sizes = [output_size] * len(given) if _is_int(output_size) else list(output_size)
        if len(sizes) != len(given):
            raise ValueError(f"output_size {output_size!r} has {len(sizes)} entries for "
                             f"{len(given)} pooled axes")
    resolved = []
    for a, s in zip(given, sizes):
        if s is None:
            s = shape[a]
        elif not _is_int(s) or s < 1:
            raise ValueError(f"output_size entries must be ints >= 1 or None, got "
                             f"{output_size!r}")
        if shape[a] < 1:
            raise ValueError(f"cannot pool axis {a} of size {shape[a]}")
        resolved.append(int(s))
    order = sorted(range(len(given)), key=lambda i: given[i])
    out_shape = list(shape)
    for a, s in zip(given, resolved):
        out_shape[a] = s
    return AdaptiveGeometry(
        axes=tuple(given[i] for i in order),
        in_sizes=tuple(shape[given[i]] for i in order),
        out_sizes=tuple(resolved[i] for i in order),
        out_shape=tuple(out_shape),
    )


def _bin_members(geo: AdaptiveGeometry, o):
    """Pooled coords of bin ``o`` in row-major order."""
    ranges = [range(*geo.bins(ap)[o[ap]]) for ap in range(len(geo.axes))]
    return itertools.product(*ranges)


def ref_adaptive_avg_pool(x, output_size, axes=None):
    x = np.asarray(x)
    _check_max_dtype(x)
    geo = ref_adaptive_geometry(x.shape, output_size, axes)
    acc = np.zeros(geo.out_shape, dtype=np.float64)
    for at, o in _pooled_loops(x.shape, geo.axes, geo.out_sizes):
        total, count = 0.0, 0
        for c in _bin_members(geo, o):
            total += float(x[at(c)])
            count += 1
        acc[at(o)] = total / count
    return acc.astype(avg_result_dtype(x.dtype))


def ref_adaptive_max_pool(x, output_size, axes=None):
    x = np.asarray(x)
    _check_max_dtype(x)
    geo = ref_adaptive_geometry(x.shape, output_size, axes)
    values = np.zeros(geo.out_shape, dtype=x.dtype)
    indices = np.zeros(geo.out_shape, dtype=np.int64)
    is_float = x.dtype.kind == "f"
    for at, o in _pooled_loops(x.shape, geo.axes, geo.out_sizes):
        best, best_flat = None, None
        for c in _bin_members(geo, o):
            v = x[at(c)]
            if best is None or _greater(v, best, is_float):
                best, best_flat = v, _flat(c, geo.in_sizes)
        values[at(o)] = best
        indices[at(o)] = best_flat
    return values, indices


def ref_adaptive_avg_pool_backward(grad_output, input_shape, axes=None):
    g = np.asarray(grad_output)
    _check_grad(g)
    input_shape = tuple(int(s) for s in input_shape)
    ndim = len(input_shape)
    if any(s < 0 for s in input_shape):
        raise ValueError(f"input_shape must not hold negative sizes, got {input_shape}")
    if g.ndim != ndim:
        raise ValueError(f"grad_output has {g.ndim} dims, input_shape {ndim}")
    if axes is None:
        pooled = [a for a in range(ndim) if g.shape[a] != input_shape[a]]
    else:
        pooled = sorted(_normalize_axes(axes, ndim))
    for a in range(ndim):
        if a not in pooled and g.shape[a] != input_shape[a]:
            raise ValueError(f"grad_output shape {g.shape} does not match input_shape "
                             f"{input_shape} on the non-pooled axis {a}")
    if not pooled:
        return g.astype(np.float64).astype(g.dtype)       # pooling to the same size: identity
    geo = ref_adaptive_geometry(input_shape, tuple(g.shape[a] for a in pooled), tuple(pooled))

    grad = np.zeros(input_shape, dtype=np.float64)
    for at, o in _pooled_loops(input_shape, geo.axes, geo.out_sizes):
        members = list(_bin_members(geo, o))
        share = float(g[at(o)]) / len(members)
        for c in members:
            grad[at(c)] += share
    return grad.astype(g.dtype)


def ref_adaptive_max_pool_backward(grad_output, x, output_size, axes=None, indices=None):
    g = np.asarray(grad_output)
    x = np.asarray(x)
    _check_grad(g)
    _check_max_dtype(x)
    geo = ref_adaptive_geometry(x.shape, output_size, axes)
    _check_grad_shape(g, geo.out_shape)
    if indices is None:
        _, indices = ref_adaptive_max_pool(x, output_size, axes)
    indices = _check_indices(indices, geo.out_shape)
    return _max_backward(g, indices, x.shape, geo.axes, geo.in_sizes, geo.out_sizes)


# ================================================================================ global


def ref_global_axes(ndim: int, axes=None) -> tuple[int, ...]:
    """The reduced axes, sorted: every axis after the first two when ``axes`` is None."""
    if axes is None:
        reduced = list(range(2, ndim))
    else:
        reduced = _normalize_axes(axes, ndim)
    if not reduced:
        raise ValueError(f"no axis to reduce (ndim={ndim}, axes={axes!r})")
    return tuple(sorted(reduced))


def _global_out_shape(shape, reduced, keepdims):
    if keepdims:
        return tuple(1 if a in reduced else s for a, s in enumerate(shape))
    return tuple(s for a, s in enumerate(shape) if a not in reduced)


def _global_loops(shape, reduced, keepdims):
    """Yield (out_index, [input indices of the reduced block in row-major order])."""
    ndim = len(shape)
    batch_axes = _batch_axes(ndim, reduced)
    red_sizes = [shape[a] for a in reduced]
    if math.prod(red_sizes) == 0:
        raise ValueError(f"cannot reduce empty axes {reduced} of shape {tuple(shape)}")
    for b in np.ndindex(*[shape[a] for a in batch_axes]):
        if keepdims:
            out_idx = _full_index(ndim, batch_axes, b, reduced, [0] * len(reduced))
        else:
            out_idx = tuple(b)
        members = [_full_index(ndim, batch_axes, b, reduced, c) for c in np.ndindex(*red_sizes)]
        yield out_idx, members


def ref_global_avg_pool(x, axes=None, keepdims=False):
    x = np.asarray(x)
    _check_max_dtype(x)
    reduced = ref_global_axes(x.ndim, axes)
    acc = np.zeros(_global_out_shape(x.shape, reduced, keepdims), dtype=np.float64)
    for out_idx, members in _global_loops(x.shape, reduced, keepdims):
        acc[out_idx] = sum(float(x[i]) for i in members) / len(members)
    return acc.astype(avg_result_dtype(x.dtype))


def ref_global_max_pool(x, axes=None, keepdims=False):
    x = np.asarray(x)
    _check_max_dtype(x)
    reduced = ref_global_axes(x.ndim, axes)
    out_shape = _global_out_shape(x.shape, reduced, keepdims)
    values = np.zeros(out_shape, dtype=x.dtype)
    indices = np.zeros(out_shape, dtype=np.int64)
    is_float = x.dtype.kind == "f"
    for out_idx, members in _global_loops(x.shape, reduced, keepdims):
        best, best_flat = None, None
        for flat, i in enumerate(members):          # members are in row-major order
            if best is None or _greater(x[i], best, is_float):
                best, best_flat = x[i], flat
        values[out_idx] = best
        indices[out_idx] = best_flat
    return values, indices


def ref_global_avg_pool_backward(grad_output, input_shape, axes=None, keepdims=False):
    g = np.asarray(grad_output)
    _check_grad(g)
    input_shape = tuple(int(s) for s in input_shape)
    if any(s < 0 for s in input_shape):
        raise ValueError(f"input_shape must not hold negative sizes, got {input_shape}")
    reduced = ref_global_axes(len(input_shape), axes)
    _check_grad_shape(g, _global_out_shape(input_shape, reduced, keepdims))
    grad = np.zeros(input_shape, dtype=np.float64)
    for out_idx, members in _global_loops(input_shape, reduced, keepdims):
        share = float(g[out_idx]) / len(members)
        for i in members:
            grad[i] += share
    return grad.astype(g.dtype)


def ref_global_max_pool_backward(grad_output, x, axes=None, keepdims=False, indices=None):
    g = np.asarray(grad_output)
    x = np.asarray(x)
    _check_grad(g)
    _check_max_dtype(x)
    reduced = ref_global_axes(x.ndim, axes)
    out_shape = _global_out_shape(x.shape, reduced, keepdims)
    _check_grad_shape(g, out_shape)
    if indices is None:
        _, indices = ref_global_max_pool(x, axes, keepdims)
    indices = _check_indices(indices, out_shape)
    red_sizes = [x.shape[a] for a in reduced]
    grad = np.zeros(x.shape, dtype=np.float64)
    for out_idx, members in _global_loops(x.shape, reduced, keepdims):
        _unflat(int(indices[out_idx]), red_sizes)   # range check
        grad[members[int(indices[out_idx])]] += float(g[out_idx])
    return grad.astype(g.dtype)
