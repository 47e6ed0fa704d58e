"""Backward passes of window, adaptive and global pooling, and max_unpool.

Sum-type gradients (avg, LP, adaptive avg) run the ``spread`` kernel: every grad_input element
gathers, in float64, the weighted gradients of the outputs whose windows hold it. Max-type
gradients and ``max_unpool`` run the ``scatter`` kernels over whole pooled planes. User indices
are checked here, before any kernel writes.
"""

from __future__ import annotations

import numpy as np

from cypool._adaptive import _GlobalCall, adaptive_max_pool, global_max_pool
from cypool._call import INDEX_DTYPE, result_arrays, run_folded
from cypool._dtypes import FLOAT_DTYPES, ORDER_DTYPES, as_array, order_compute_dtype
from cypool._errors import ParameterTypeError
from cypool._geometry import (
    WindowGeometry,
    adaptive_geometry,
    check_divisor_override,
    check_norm_type,
    normalize_axes,
    per_axis_ints,
    window_geometry,
)
from cypool._kernels import window as _kernels
from cypool._layout import allocate_like
from cypool._parallel import check_num_threads
from cypool._window import check_bool, lp_pool, max_pool


def _grad_output(grad_output, expected_shape) -> np.ndarray:
    g = as_array(grad_output, "grad_output", FLOAT_DTYPES)
    if g.shape != tuple(expected_shape):
        raise ValueError(
            f"grad_output has shape {g.shape}, expected the forward's output shape {tuple(expected_shape)}"
        )
    return g


def _input_shape(input_shape) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) for n in input_shape
    ):
        raise ParameterTypeError(f"input_shape must be a tuple of ints, got input_shape={input_shape!r}")
    if any(n < 0 for n in input_shape):
        raise ValueError(f"input_shape must hold sizes >= 0, got input_shape={tuple(input_shape)!r}")
    return tuple(int(n) for n in input_shape)


def check_indices(indices, shape, plane: int, name: str = "indices") -> np.ndarray:
    """User indices as int64, of `shape`, every one a valid flat position in [0, plane)."""
    arr = np.asarray(indices)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= plane:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name} holds {bad}, outside the pooled plane's flat positions [0, {plane})"
            )
    return arr.astype(INDEX_DTYPE, copy=False)


def _plane(shape, axes) -> int:
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _spread(g, geometry: WindowGeometry, input_shape, weights, out, num_threads):
    """grad_input of a sum-type pool: the spread kernel with per-axis output weights."""
    compute = order_compute_dtype(g.dtype)
    gk = g if g.dtype == compute else g.astype(compute)
    (grad_input,) = result_arrays(g, out, [(input_shape, g.dtype)], ["out"])
    taps = geometry.taps()
    run_folded(_kernels.spread, geometry.axes, [gk], [grad_input], [compute], num_threads,
               *geometry.covers(), taps[2], geometry.windows(), *weights)
    return grad_input


def _scatter(g, idx, geometry_axes, input_shape, out, num_threads, like):
    compute = order_compute_dtype(g.dtype)
    gk = g if g.dtype == compute else g.astype(compute)
    (grad_input,) = result_arrays(like, out, [(input_shape, g.dtype)], ["out"], [g, idx])
    run_folded(_kernels.scatter_add, geometry_axes, [gk, idx], [grad_input], [compute],
               num_threads)
    return grad_input


# ------------------------------------------------------------------------------------------------
# Window pooling


def max_pool_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1, *,
                      axes=None, ceil_mode=False, indices=None, out=None, num_threads=None):
    """Gradient of max_pool: each output gradient goes to its argmax (summed where windows
    overlap). Uses `indices` when given, else recomputes them from x."""
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    check_num_threads(num_threads)
    g = _grad_output(grad_output, geometry.out_shape)
    if indices is None:
        _, idx = max_pool(x, kernel_size, stride, padding, dilation, axes=axes,
                          ceil_mode=ceil_mode, return_indices=True, num_threads=num_threads)
    else:
        idx = check_indices(indices, geometry.out_shape, _plane(x.shape, geometry.axes))
    return _scatter(g, idx, geometry.axes, x.shape, out, num_threads, x)


def avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, dilation=1,
                      *, axes=None, ceil_mode=False, count_include_pad=True,
                      divisor_override=None, out=None, num_threads=None):
    """Gradient of avg_pool: each output gradient spread over its window's input taps, divided
    by the forward's divisor."""
    input_shape = _input_shape(input_shape)
    geometry = window_geometry(input_shape, kernel_size, stride, padding, dilation, axes,
                               ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor_override = check_divisor_override(divisor_override)
    check_num_threads(num_threads)
    g = _grad_output(grad_output, geometry.out_shape)
    weights = geometry.inverse_divisors(count_include_pad, divisor_override)
    return _spread(g, geometry, input_shape, weights, out, num_threads)


def lp_pool_backward(grad_output, x, norm_type, kernel_size, stride=None, padding=0, dilation=1,
                     *, axes=None, ceil_mode=False, out=None, num_threads=None):
    """Gradient of the true p-norm of each window: g * sign(x) |x|^(p-1) / y^(p-1) summed over
    the windows holding x, where y is the window's norm; a window with y == 0 gives 0."""
    x = as_array(x, "x", ORDER_DTYPES)
    p = check_norm_type(norm_type)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    check_num_threads(num_threads)
    g = _grad_output(grad_output, geometry.out_shape)
    x64 = x.astype(np.float64)
    y = lp_pool(x64, p, kernel_size, stride, padding, dilation, axes=axes, ceil_mode=ceil_mode,
                num_threads=num_threads)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(y > 0, g.astype(np.float64) * y ** (1.0 - p), 0.0)
        ones = tuple(np.ones(a.out) for a in geometry.padded())
        spread = _spread(scaled, geometry, x.shape, ones, None, num_threads)
        factor = np.where(x64 != 0, np.sign(x64) * np.abs(x64) ** (p - 1.0), 0.0)
    grad = spread * factor
    (grad_input,) = result_arrays(x, out, [(x.shape, g.dtype)], ["out"], [g])
    np.copyto(grad_input, grad, casting="unsafe")
    return grad_input


def max_unpool(x, indices, output_size, *, axes=None, out=None, num_threads=None):
    """Zeros with the pooled axes resized to output_size, and x written at indices (PyTorch's
    max_unpool); indices are flat positions over the pooled axes of the result."""
    x = as_array(x, "x", ORDER_DTYPES)
    if not isinstance(output_size, (tuple, list)):
        raise ParameterTypeError(f"output_size must be a tuple of ints, got output_size={output_size!r}")
    pooled = normalize_axes(axes, x.ndim, len(output_size))
    shape = list(x.shape)
    for a, n in zip(pooled, per_axis_ints(output_size, "output_size", len(pooled), 1)):
        shape[a] = n
    check_num_threads(num_threads)
    order = sorted(pooled)
    idx = check_indices(indices, x.shape, _plane(shape, order))
    compute = order_compute_dtype(x.dtype)
    xk = x if x.dtype == compute else x.astype(compute)
    (result,) = result_arrays(x, out, [(tuple(shape), x.dtype)], ["out"], [idx])
    run_folded(_kernels.scatter_set, tuple(order), [xk, idx], [result], [compute], num_threads)
    return result


# ------------------------------------------------------------------------------------------------
# Adaptive and global pooling


def adaptive_avg_pool_backward(grad_output, input_shape, *, axes=None, out=None, num_threads=None):
    """Gradient of adaptive_avg_pool: each bin's gradient spread over the bin, divided by its
    size. axes=None: the axes where input_shape and grad_output.shape differ."""
    input_shape = _input_shape(input_shape)
    g = as_array(grad_output, "grad_output", FLOAT_DTYPES)
    if g.ndim != len(input_shape):
        raise ValueError(
            f"grad_output has {g.ndim} dimensions and input_shape {len(input_shape)}; they must match"
        )
    if axes is None:
        axes = tuple(a for a in range(g.ndim) if g.shape[a] != input_shape[a])
        if not axes:  # every axis pooled to its own size: the identity
            (grad_input,) = result_arrays(g, out, [(input_shape, g.dtype)], ["out"])
            np.copyto(grad_input, g)
            return grad_input
    pooled = normalize_axes(axes, g.ndim, None)
    geometry = adaptive_geometry(input_shape, tuple(g.shape[a] for a in pooled), pooled)
    check_num_threads(num_threads)
    g = _grad_output(g, geometry.out_shape)
    weights = geometry.inverse_divisors(False, None)
    return _spread(g, geometry, input_shape, weights, out, num_threads)


def adaptive_max_pool_backward(grad_output, x, output_size, *, axes=None, indices=None, out=None,
                               num_threads=None):
    """Gradient of adaptive_max_pool: each bin's gradient goes to its argmax."""
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = adaptive_geometry(x.shape, output_size, axes)
    check_num_threads(num_threads)
    g = _grad_output(grad_output, geometry.out_shape)
    if indices is None:
        _, idx = adaptive_max_pool(x, output_size, axes=axes, return_indices=True,
                                   num_threads=num_threads)
    else:
        idx = check_indices(indices, geometry.out_shape, _plane(x.shape, geometry.axes))
    return _scatter(g, idx, geometry.axes, x.shape, out, num_threads, x)


def global_avg_pool_backward(grad_output, input_shape, *, axes=None, keepdims=False, out=None,
                             num_threads=None):
    """Gradient of global_avg_pool: grad_output / count broadcast over the reduced axes."""
    input_shape = _input_shape(input_shape)
    probe = np.broadcast_to(np.zeros((), np.float32), input_shape)
    call = _GlobalCall(probe, axes, keepdims)
    check_num_threads(num_threads)
    g = _grad_output(grad_output, call.shape)
    count = _plane(input_shape, call.reduced)
    (grad_input,) = result_arrays(probe, out, [(input_shape, g.dtype)], ["out"], [g])
    kept = g if keepdims else np.expand_dims(g, call.reduced)
    np.multiply(kept.astype(np.float64, copy=False), 1.0 / count, out=grad_input, casting="unsafe")
    return grad_input


def global_max_pool_backward(grad_output, x, *, axes=None, keepdims=False, indices=None, out=None,
                             num_threads=None):
    """Gradient of global_max_pool: each gradient goes to the argmax of its reduced region."""
    call = _GlobalCall(x, axes, keepdims)
    check_num_threads(num_threads)
    g = _grad_output(grad_output, call.shape)
    if indices is None:
        _, idx = global_max_pool(call.x, axes=call.reduced, keepdims=keepdims,
                                 return_indices=True, num_threads=num_threads)
    else:
        idx = check_indices(indices, call.shape, _plane(call.x.shape, call.reduced))
    internal_shape = call.geometry.out_shape
    g_in = g.reshape(internal_shape)
    idx_in = idx.reshape(internal_shape)
    if out is None:
        grad_input = allocate_like(call.x, call.x.shape, g.dtype)
    else:
        (grad_input,) = result_arrays(call.x, out, [(call.x.shape, g.dtype)], ["out"], [g, idx])
    moved = np.moveaxis(grad_input, call.reduced,
                        range(call.x.ndim - len(call.reduced), call.x.ndim))
    folded = moved.view()
    try:
        folded.shape = call.folded.shape
        target = folded
    except AttributeError:
        target = np.empty(call.folded.shape, g.dtype)
    _scatter(g_in, idx_in, call.folded_axes, call.folded.shape, target, num_threads, call.folded)
    if target is not folded:
        np.copyto(moved, target.reshape(moved.shape))
    return grad_input
