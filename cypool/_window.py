"""Window pooling forward: max_pool, avg_pool, lp_pool and the PyTorch-habit aliases.

Each op validates its arguments, resolves the geometry (``_geometry``), then runs one kernel
over the 5-d folded views of its input and results (``_call``).
"""

from __future__ import annotations

import numpy as np

from cypool._call import INDEX_DTYPE, check_bool, kernel_input, result_arrays, run_kernel
from cypool._dtypes import ORDER_DTYPES, average_dtypes, as_array, order_compute_dtype
from cypool._geometry import (
    WindowGeometry,
    check_divisor_override,
    check_norm_type,
    window_geometry,
)
from cypool._kernels import window as _window_kernels
from cypool._parallel import check_num_threads


def max_over(x, geometry: WindowGeometry, return_indices: bool, out, num_threads):
    """Max (and argmax) of x over the windows or bins of a checked geometry."""
    compute = order_compute_dtype(x.dtype)
    xk = kernel_input(x, compute)
    shape = geometry.out_shape
    if return_indices:
        values, indices = result_arrays(
            x, out, [(shape, x.dtype), (shape, INDEX_DTYPE)], ["out[0]", "out[1]"]
        )
        run_kernel(_window_kernels.max_pool_with_indices, geometry, xk, [values, indices],
                   [compute, INDEX_DTYPE], num_threads)
        return values, indices
    (values,) = result_arrays(x, out, [(shape, x.dtype)], ["out"])
    run_kernel(_window_kernels.max_pool, geometry, xk, [values], [compute], num_threads)
    return values


def avg_over(x, geometry: WindowGeometry, inverse_divisors, out, num_threads):
    """Averages of x over the windows or bins of a checked geometry, with per-axis inverse
    divisor factors."""
    compute, result = average_dtypes(x.dtype)
    xk = kernel_input(x, compute)
    (values,) = result_arrays(x, out, [(geometry.out_shape, result)], ["out"])
    run_kernel(_window_kernels.avg_pool, geometry, xk, [values], [compute], num_threads,
               *inverse_divisors)
    return values


def max_pool(
    x,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    *,
    axes=None,
    ceil_mode=False,
    return_indices=False,
    out=None,
    num_threads=None,
):
    """Max pooling over 1 to 3 axes of an N-d array (see ``shared/API.md``)."""
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    return_indices = check_bool(return_indices, "return_indices")
    check_num_threads(num_threads)
    return max_over(x, geometry, return_indices, out, num_threads)


def avg_pool(
    x,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    *,
    axes=None,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    out=None,
    num_threads=None,
):
    """Average pooling over 1 to 3 axes of an N-d array (see ``shared/API.md``)."""
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor_override = check_divisor_override(divisor_override)
    check_num_threads(num_threads)
    return avg_over(x, geometry, geometry.inverse_divisors(count_include_pad, divisor_override),
                    out, num_threads)


def lp_pool(
    x,
    norm_type,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    *,
    axes=None,
    ceil_mode=False,
    out=None,
    num_threads=None,
):
    """LP (power-average) pooling: the p-norm of every window (see ``shared/API.md``)."""
    x = as_array(x, "x", ORDER_DTYPES)
    p = check_norm_type(norm_type)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    check_num_threads(num_threads)
    compute, result = average_dtypes(x.dtype)
    xk = kernel_input(x, compute)
    (values,) = result_arrays(x, out, [(geometry.out_shape, result)], ["out"])
    run_kernel(_window_kernels.lp_pool, geometry, xk, [values], [compute], num_threads, p)
    return values


# ------------------------------------------------------------------------------------------------
# PyTorch-habit aliases: pool the trailing `rank` axes, or the `rank` axes before the last with
# channels_last=True; an int kernel_size applies to every pooled axis.

def _alias_axes(x, rank: int, channels_last: bool) -> tuple[int, ...]:
    channels_last = check_bool(channels_last, "channels_last")
    ndim = np.ndim(x)
    needed = rank + (1 if channels_last else 0)
    if ndim < needed:
        raise ValueError(
            f"x must have at least {needed} dimensions for {rank}-d pooling"
            f"{' with channels_last=True' if channels_last else ''}, got x.ndim={ndim}"
        )
    end = ndim - 1 if channels_last else ndim
    return tuple(range(end - rank, end))


def _max_alias(rank):
    def pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False, *, channels_last=False, out=None, num_threads=None):
        return max_pool(x, kernel_size, stride, padding, dilation,
                        axes=_alias_axes(x, rank, channels_last), ceil_mode=ceil_mode,
                        return_indices=return_indices, out=out, num_threads=num_threads)

    pool.__name__ = pool.__qualname__ = f"max_pool{rank}d"
    pool.__doc__ = (
        f"{rank}-d max pooling of the trailing {rank} axes (or, with channels_last=True, the "
        f"{rank} axes before the last), as torch.nn.functional.max_pool{rank}d."
    )
    return pool


def _avg_alias(rank):
    def pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, channels_last=False, out=None, num_threads=None):
        return avg_pool(x, kernel_size, stride, padding, axes=_alias_axes(x, rank, channels_last),
                        ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                        divisor_override=divisor_override, out=out, num_threads=num_threads)

    pool.__name__ = pool.__qualname__ = f"avg_pool{rank}d"
    pool.__doc__ = (
        f"{rank}-d average pooling of the trailing {rank} axes (or, with channels_last=True, the "
        f"{rank} axes before the last), as torch.nn.functional.avg_pool{rank}d."
    )
    return pool


max_pool1d, max_pool2d, max_pool3d = (_max_alias(r) for r in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_avg_alias(r) for r in (1, 2, 3))
