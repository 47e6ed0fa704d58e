"""Adaptive and global pooling forward.

Adaptive bins come from ``_geometry.adaptive_geometry`` as taps tables and run on the window
kernels ("table mode"). Global pooling reduces whole regions with its own kernels, after merging
the reduced axes into one where their strides allow it.
"""

from __future__ import annotations

import numpy as np

from cypool._call import (
    INDEX_DTYPE,
    check_bool,
    kernel_input,
    result_arrays,
    run_folded,
)
from cypool._dtypes import ORDER_DTYPES, as_array, average_dtypes, order_compute_dtype
from cypool._geometry import adaptive_geometry, global_axes
from cypool._kernels import window as _window_kernels
from cypool._errors import ParameterTypeError
from cypool._layout import check_out
from cypool._parallel import check_num_threads
from cypool._window import avg_over, max_over


def adaptive_avg_pool(x, output_size, *, axes=None, out=None, num_threads=None):
    """Adaptive average pooling: each axis split into `output_size` bins, as PyTorch does."""
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = adaptive_geometry(x.shape, output_size, axes)
    check_num_threads(num_threads)
    return avg_over(x, geometry, geometry.inverse_divisors(False, None), out, num_threads)


def adaptive_max_pool(x, output_size, *, axes=None, return_indices=False, out=None,
                      num_threads=None):
    """Adaptive max pooling; indices are flat positions over the pooled axes."""
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = adaptive_geometry(x.shape, output_size, axes)
    return_indices = check_bool(return_indices, "return_indices")
    check_num_threads(num_threads)
    return max_over(x, geometry, return_indices, out, num_threads)


def merge_reduced_axes(x: np.ndarray, axes):
    """x with the reduced axes moved last and merged into one when strides allow it (a view),
    else moved last as they are; returns (array, reduced axes of that array)."""
    moved = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim))
    keep = moved.shape[: x.ndim - len(axes)]
    merged = moved.view()
    try:
        merged.shape = keep + (int(np.prod(moved.shape[len(keep):], dtype=np.int64)),)
        return merged, (len(keep),)
    except AttributeError:
        pass
    if len(axes) <= 3:
        return moved, tuple(range(len(keep), x.ndim))
    copied = np.ascontiguousarray(moved).reshape(keep + (-1,))
    return copied, (len(keep),)


class _GlobalCall:
    """Global pooling as adaptive pooling to one bin of x's reduced axes, merged when they fold.

    Results are computed in the internal shape (the folded array's, reduced axes of size 1) and
    shown in the user's shape; both differ only by size-1 axes, so each is a view of the other.
    """

    def __init__(self, x, axes, keepdims):
        self.x = as_array(x, "x", ORDER_DTYPES)
        self.reduced = global_axes(self.x.ndim, axes)
        self.keepdims = check_bool(keepdims, "keepdims")
        self.folded, self.folded_axes = merge_reduced_axes(self.x, self.reduced)
        self.geometry = adaptive_geometry(self.folded.shape, (1,) * len(self.folded_axes),
                                          self.folded_axes)
        kept = tuple(n for a, n in enumerate(self.x.shape) if a not in self.reduced)
        self.shape = (
            tuple(1 if a in self.reduced else n for a, n in enumerate(self.x.shape))
            if self.keepdims else kept
        )

    def to_user(self, arr):
        squeezed = arr.reshape(arr.shape[: arr.ndim - len(self.folded_axes)])
        return np.expand_dims(squeezed, self.reduced) if self.keepdims else squeezed

    def to_internal(self, arr, dtype, name):
        arr = check_out(arr, self.shape, dtype, [self.x], name)
        kept = np.squeeze(arr, self.reduced) if self.keepdims else arr
        return np.expand_dims(kept, tuple(range(kept.ndim, kept.ndim + len(self.folded_axes))))


def global_avg_pool(x, *, axes=None, keepdims=False, out=None, num_threads=None):
    """Mean over the reduced axes (default: every axis after N, C), summed in float64."""
    call = _GlobalCall(x, axes, keepdims)
    check_num_threads(num_threads)
    compute, result = average_dtypes(call.x.dtype)
    user_out = out
    if out is not None:
        out = call.to_internal(out, result, "out")
    xk = kernel_input(call.folded, compute)
    (values,) = result_arrays(call.folded, out, [(call.geometry.out_shape, result)], ["out"])
    count = int(np.prod([call.folded.shape[a] for a in call.folded_axes]))
    run_folded(_window_kernels.global_sum, call.folded_axes, [xk], [values], [compute],
               num_threads, 1.0 / count)
    return call.to_user(values) if user_out is None else user_out


def global_max_pool(x, *, axes=None, keepdims=False, return_indices=False, out=None,
                    num_threads=None):
    """Max over the reduced axes; indices are flat positions over them, row-major."""
    call = _GlobalCall(x, axes, keepdims)
    return_indices = check_bool(return_indices, "return_indices")
    check_num_threads(num_threads)
    user_out = out
    if out is not None and return_indices:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ParameterTypeError(
                f"out must be a pair (values, indices) when return_indices=True, got {type(out).__name__}"
            )
        out = (call.to_internal(out[0], call.x.dtype, "out[0]"),
               call.to_internal(out[1], INDEX_DTYPE, "out[1]"))
    elif out is not None:
        out = call.to_internal(out, call.x.dtype, "out")
    compute = order_compute_dtype(call.x.dtype)
    xk = kernel_input(call.folded, compute)
    shape = call.geometry.out_shape
    if return_indices:
        values, indices = result_arrays(call.folded, out, [(shape, call.x.dtype),
                                                           (shape, INDEX_DTYPE)],
                                        ["out[0]", "out[1]"])
        run_folded(_window_kernels.global_max, call.folded_axes, [xk], [values, indices],
                   [compute, INDEX_DTYPE], num_threads)
        if user_out is not None:
            return user_out[0], user_out[1]
        return call.to_user(values), call.to_user(indices)
    (values,) = result_arrays(call.folded, out, [(shape, call.x.dtype)], ["out"])
    run_folded(_window_kernels.global_max, call.folded_axes, [xk], [values], [compute],
               num_threads, None)
    return call.to_user(values) if user_out is None else user_out
