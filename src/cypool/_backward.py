"""Backward passes of window, adaptive and global pooling, and max_unpool.

Sum-type gradients (avg, LP, adaptive avg) run the ``spread`` kernel: every grad_input element
gathers, in float64, the weighted gradients of the outputs whose windows hold it. Max-type
gradients and ``max_unpool`` run the ``scatter`` kernels over whole pooled planes. User indices
are checked here, before any kernel writes.
"""

# The helpers of _call, _geometry and _layout called here are not annotated yet:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cypool._adaptive import adaptive_max_pool, global_max_pool
from cypool._global_call import GlobalCall
from cypool._call import (
    INDEX_DTYPE,
    check_bool,
    check_grad_output,
    kernel_input,
    refuse_out_overlap,
    result_arrays,
    run_folded,
    write_past_caches,
)
from cypool._dtypes import FLOAT_DTYPES, ORDER_DTYPES, as_array, order_compute_dtype
from cypool._errors import ParameterTypeError
from cypool._facade import public
from cypool._geometry import (
    MAX_POOLED_AXES,
    WindowGeometry,
    adaptive_geometry,
    check_allocatable,
    check_divisor_override,
    check_norm_type,
    normalize_axes,
    per_axis_ints,
    window_geometry,
)
from cypool._kernels import window as _kernels
from cypool._layout import allocate_like, merge_trailing_axes
from cypool._parallel import check_num_threads, resolve_num_threads
from cypool._typing import Padding
from cypool._window import lp_over, max_over

def _input_shape(input_shape: object) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) for n in input_shape
    ):
        raise ParameterTypeError(f"input_shape must be a tuple of ints, got input_shape={input_shape!r}")
    if any(n < 0 for n in input_shape):
        raise ValueError(f"input_shape must hold sizes >= 0, got input_shape={tuple(input_shape)!r}")
    shape = tuple(int(n) for n in input_shape)
    check_allocatable(shape, "input_shape", input_shape)
    return shape


def check_indices(
    indices: ArrayLike, shape: Sequence[int], plane: int, name: str = "indices",
    num_threads: int | None = None,
) -> NDArray[np.int64]:
    """User indices as int64, of `shape`, every one a valid flat position in [0, plane)."""
    arr = np.asarray(indices)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)}")
    if arr.size:
        lo, hi = index_bounds(arr, num_threads)
        if lo < 0 or hi >= plane:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name} holds {bad}, outside the pooled plane's flat positions [0, {plane})"
            )
    return arr.astype(INDEX_DTYPE, copy=False)


def index_bounds(arr: NDArray[Any], num_threads: int | None) -> tuple[int, int]:
    """The smallest and largest value of a non-empty integer array: the index_bounds kernel
    for C-contiguous int64 (the forward's indices), NumPy's min and max otherwise."""
    if arr.dtype != INDEX_DTYPE or not arr.flags.c_contiguous:
        return int(arr.min()), int(arr.max())
    threads = resolve_num_threads(num_threads, arr.nbytes)
    bounds = np.empty((4 * threads, 2), INDEX_DTYPE)
    _kernels.index_bounds(arr.reshape(-1), bounds, threads)
    return int(bounds[:, 0].min()), int(bounds[:, 1].max())


def _plane(shape: Sequence[int], axes: Sequence[int]) -> int:
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _spread(
    g: NDArray[Any],
    geometry: WindowGeometry,
    input_shape: tuple[int, ...],
    weights: tuple[NDArray[Any], ...],
    out: NDArray[Any] | None,
    num_threads: int | None,
) -> NDArray[Any]:
    """grad_input of a sum-type pool: the spread kernel with per-axis output weights."""
    compute = order_compute_dtype(g.dtype)
    gk = g if g.dtype == compute else g.astype(compute)
    grad_input: NDArray[Any]
    (grad_input,) = result_arrays(g, out, [(input_shape, g.dtype)], ["out"])
    taps = geometry.taps()
    run_folded(_kernels.spread, geometry.axes, [gk], [grad_input], [compute], num_threads,
               *geometry.covers(), taps[2], geometry.windows(), *weights)
    return grad_input


def _scatter(
    g: NDArray[Any],
    idx: NDArray[np.int64],
    geometry_axes: tuple[int, ...],
    input_shape: tuple[int, ...],
    out: NDArray[Any] | None,
    num_threads: int | None,
    like: NDArray[Any],
    stream: bool | None = None,
) -> NDArray[Any]:
    """grad_input of a max-type pool: g scattered to idx; `stream` as write_past_caches."""
    compute = order_compute_dtype(g.dtype)
    gk = g if g.dtype == compute else g.astype(compute)
    grad_input: NDArray[Any]
    (grad_input,) = result_arrays(like, out, [(input_shape, g.dtype)], ["out"], [g, idx])
    run_folded(_kernels.scatter_add, geometry_axes, [gk, idx], [grad_input], [compute],
               num_threads, write_past_caches(out, grad_input) if stream is None else stream)
    return grad_input


# ------------------------------------------------------------------------------------------------
# Window pooling


@public("x")
def max_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    indices: ArrayLike | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`max_pool` with respect to x: each output gradient goes to its
    window's argmax, summed where windows overlap.

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result (the forward's output shape).
    x : array_like
        The forward's input.
    kernel_size, stride, padding, dilation, axes, ceil_mode
        The forward call's arguments (see :func:`max_pool`).
    indices : array_like of ints, optional
        The forward's indices (``return_indices=True``), each a flat position over the pooled
        axes; recomputed from x when not given.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping any input.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: x's shape and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtypes of grad_output, x or indices; a parameter of the wrong kind (this
        error is a ValueError too).
    ValueError
        As :func:`max_pool`, plus a grad_output of the wrong shape and indices of the wrong
        shape or outside the pooled plane.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.max_pool_backward(np.ones((1, 1, 2, 2)), x, (2, 2))
    array([[[[0., 0., 0., 0.],
             [0., 1., 0., 1.],
             [0., 0., 0., 0.],
             [0., 1., 0., 1.]]]])
    >>> cypool.max_pool_backward(np.ones(3), np.array([1., 3., 2., 0.]), 2, 1, axes=0)
    array([0., 2., 1., 0.])
    """
    refuse_out_overlap(out, grad_output, x, indices)
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    check_num_threads(num_threads)
    g = check_grad_output(grad_output, geometry.out_shape)
    if indices is not None:
        idx = check_indices(indices, geometry.out_shape, _plane(x.shape, geometry.axes),
                            num_threads=num_threads)
        return _scatter(g, idx, geometry.axes, x.shape, out, num_threads, x)
    compute = order_compute_dtype(g.dtype)
    if order_compute_dtype(x.dtype) != compute:
        # An x of another dtype than the gradient's: its argmax first, then the scatter.
        _, idx = max_over(x, geometry, True, None, num_threads)
        return _scatter(g, idx, geometry.axes, x.shape, out, num_threads, x)
    grad_input: NDArray[Any]
    (grad_input,) = result_arrays(x, out, [(x.shape, g.dtype)], ["out"], [g])
    run_folded(_kernels.max_scatter_recomputed, geometry.axes,
               [kernel_input(x, compute), kernel_input(g, compute)], [grad_input], [compute],
               num_threads, *geometry.taps(), geometry.windows(),
               write_past_caches(out, grad_input))
    return grad_input


@public("input_shape")
def avg_pool_backward(
    grad_output: ArrayLike,
    input_shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`avg_pool` with respect to its input: each output gradient spread
    over its window's input taps, divided by the forward's divisor.

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result (the forward's output shape).
    input_shape : tuple of int
        Shape of the forward's input (a tuple or list of sizes >= 0).
    kernel_size, stride, padding, dilation, axes, ceil_mode, count_include_pad, divisor_override
        The forward call's arguments (see :func:`avg_pool`).
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping grad_output.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: ``input_shape`` and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtype of grad_output; input_shape not a tuple of ints, or another
        parameter of the wrong kind (this error is a ValueError too).
    ValueError
        As :func:`avg_pool`, plus negative input_shape sizes and a grad_output of the wrong
        shape.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.avg_pool_backward(np.ones((1, 1, 2, 2)), (1, 1, 4, 4), (2, 2))[0, 0]
    array([[0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25]])
    >>> cypool.avg_pool_backward(np.array([1., 2.]), (4,), (2,))
    array([0.5, 0.5, 1. , 1. ])
    """
    refuse_out_overlap(out, grad_output)
    input_shape = _input_shape(input_shape)
    geometry = window_geometry(input_shape, kernel_size, stride, padding, dilation, axes,
                               ceil_mode, source="input_shape")
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor_override = check_divisor_override(divisor_override)
    check_num_threads(num_threads)
    g = check_grad_output(grad_output, geometry.out_shape)
    weights = geometry.inverse_divisors(count_include_pad, divisor_override)
    return _spread(g, geometry, input_shape, weights, out, num_threads)


@public("x")
def lp_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    norm_type: float,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`lp_pool` (the true p-norm of each window) with respect to x.

    Each element gets ``g * sign(x) * (|x| / y) ** (p - 1)`` summed over the windows holding
    it, where ``y`` is the window's norm; a window with ``y == 0`` contributes 0, and so does
    an element ``x == 0``.

    Each pair (element, window) is computed in that form, in float64 with y from
    :func:`lp_pool` in float64, so the gradient is accurate at every magnitude: the ratio
    ``|x| / y`` is at most 1, and no ``|x| ** (p - 1)`` or ``y ** (1 - p)`` overflows or
    underflows (the gradient of the 2-norm of ``[1e200, 1e200]`` is ``1 / sqrt(2)`` each;
    for p other than 1 and 2 the product of ``g * y ** (1 - p)`` and ``|x| ** (p - 1)``
    serves where both are normal floats, the same number to rounding). A ratio below the
    floats (1e-200 beside 1e200) is taken apart into mantissas and exponents, and a window
    whose norm is subnormal (its float64 value lost bits) is rescanned, scaled by its
    largest ``|x|``. A factor ``(|x| / y) ** (p - 1)`` carries the roundings of ``|x| / y``
    times ``|p - 1|`` (1e-13 relative at p = 1000). The sum over the windows is a float64
    sum: its terms' rounding may show where they cancel, and it overflows where a term does,
    even if the sum would not (gradients near 1e308). For p != 1 a window holding a NaN
    gives NaN to all its elements; for p == 1 the gradient, ``sign(x)`` times the sum of the
    covering windows' ``g``, reads no norm (NaN only at a NaN).

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result (the forward's output shape).
    x : array_like
        The forward's input.
    norm_type, kernel_size, stride, padding, dilation, axes, ceil_mode
        The forward call's arguments (see :func:`lp_pool`).
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping any input.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: x's shape and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtypes of grad_output or x; a parameter of the wrong kind (this error is a
        ValueError too).
    ValueError
        As :func:`lp_pool`, plus a grad_output of the wrong shape.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([3., -4., 6., 8.])
    >>> cypool.lp_pool(x, 2, (2,))
    array([ 5., 10.])
    >>> cypool.lp_pool_backward(np.ones(2), x, 2, (2,))
    array([ 0.6, -0.8,  0.6,  0.8])
    >>> cypool.lp_pool_backward(np.ones((1, 1)), np.array([[1e200, 1e200]]), 2, (2,))
    array([[0.70710678, 0.70710678]])
    """
    refuse_out_overlap(out, grad_output, x)
    x = as_array(x, "x", ORDER_DTYPES)
    p = check_norm_type(norm_type)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    check_num_threads(num_threads)
    g = check_grad_output(grad_output, geometry.out_shape)
    # float32 keeps float16 and float32 x in range and exact; other x need float64.
    small = (np.float16, np.float32)
    compute = np.dtype(np.float32 if x.dtype in small and g.dtype in small else np.float64)
    xk = kernel_input(x, compute)
    if p == 1.0:
        # The gradient sign(x) * (sum of g over the covering windows) reads no norm.
        norms = np.broadcast_to(np.zeros((), np.float64), geometry.out_shape)
    else:
        # The norms in float64 whatever the dtypes: each pair's factor (|x| / y) ** (p - 1)
        # carries y's relative error times p - 1 (a float32 y's would be 6e-5 at p = 1000), and
        # a float32 norm overflows where the gradient does not.
        norms = lp_over(xk if compute == np.float64 else x.astype(np.float64), geometry, p,
                        None, num_threads)
    grad_input: NDArray[Any]
    (grad_input,) = result_arrays(x, out, [(x.shape, g.dtype)], ["out"], [g])
    # The kernel's per-window weights g * y ** (1 - p), for p != 1, 2 (left untouched else).
    weights = allocate_like(x, geometry.out_shape, np.float64)
    run_folded(_kernels.lp_spread, geometry.axes, [xk, kernel_input(g, compute), norms],
               [grad_input, weights], [compute, np.dtype(np.float64)], num_threads,
               *geometry.covers(), *geometry.taps(), geometry.windows(), p)
    return grad_input


@public("output_size")
def max_unpool(
    x: ArrayLike,
    indices: ArrayLike,
    output_size: Sequence[int],
    *,
    axes: int | Sequence[int] | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Partial inverse of :func:`max_pool`, as PyTorch's ``max_unpool``: zeros with the pooled
    axes resized to ``output_size``, and x written at ``indices``.

    Parameters
    ----------
    x : array_like
        The pooled values; float16, float32, float64 or any signed or unsigned integer dtype.
    indices : array_like of ints
        x's shape: flat positions over the pooled axes of the result, row-major in increasing
        axis order (as :func:`max_pool` returns them).
    output_size : tuple of int
        Size of each pooled axis of the result (a tuple or list, in the order of ``axes``).
    axes : int or sequence of int, optional
        The pooled axes; None: the last ``len(output_size)`` axes.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping any input.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        x's shape with the pooled axes resized to ``output_size``, and x's dtype.

    Raises
    ------
    TypeError
        Unsupported dtype of x, non-integer indices, output_size not a tuple of ints (this
        error is a ValueError too).
    ValueError
        Bad axes or output_size, indices of the wrong shape or outside the pooled plane, or a
        bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> values, indices = cypool.max_pool(np.array([3., 1., 4., 1., 5., 9.]), (2,),
    ...                                   return_indices=True)
    >>> cypool.max_unpool(values, indices, (6,))
    array([3., 0., 4., 0., 0., 9.])
    """
    refuse_out_overlap(out, x, indices)
    x = as_array(x, "x", ORDER_DTYPES)
    if not isinstance(output_size, (tuple, list)):
        raise ParameterTypeError(f"output_size must be a tuple of ints, got output_size={output_size!r}")
    if not 1 <= len(output_size) <= MAX_POOLED_AXES:
        raise ValueError(f"output_size must have 1 to {MAX_POOLED_AXES} entries (one per pooled "
                         f"axis), got output_size={tuple(output_size)!r}")
    pooled = normalize_axes(axes, x.ndim, len(output_size))
    shape = list(x.shape)
    for a, n in zip(pooled, per_axis_ints(output_size, "output_size", len(pooled), 1)):
        shape[a] = n
    check_allocatable(shape, "output_size", output_size)
    check_num_threads(num_threads)
    order = sorted(pooled)
    idx = check_indices(indices, x.shape, _plane(shape, order), num_threads=num_threads)
    compute = order_compute_dtype(x.dtype)
    xk = x if x.dtype == compute else x.astype(compute)
    result: NDArray[Any]
    (result,) = result_arrays(x, out, [(tuple(shape), x.dtype)], ["out"], [idx])
    run_folded(_kernels.scatter_set, tuple(order), [xk, idx], [result], [compute], num_threads)
    return result


# ------------------------------------------------------------------------------------------------
# Adaptive and global pooling


@public("input_shape")
def adaptive_avg_pool_backward(
    grad_output: ArrayLike,
    input_shape: Sequence[int],
    *,
    axes: int | Sequence[int] | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`adaptive_avg_pool` with respect to its input: each bin's gradient
    spread over the bin, divided by its size.

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result; its pooled axes' sizes are the
        forward's ``output_size``.
    input_shape : tuple of int
        Shape of the forward's input (a tuple or list of sizes >= 0, as many as
        grad_output's dimensions).
    axes : int or sequence of int, optional
        The pooled axes; None: the axes where input_shape and grad_output's shape differ
        (an axis pooled to its own size is the identity either way).
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping grad_output.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: ``input_shape`` and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtype of grad_output; input_shape not a tuple of ints, or another
        parameter of the wrong kind (this error is a ValueError too).
    ValueError
        grad_output and input_shape of different ranks, bad axes, a grad_output of the wrong
        shape, or a bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.adaptive_avg_pool_backward(np.ones(3), (5,))
    array([0.5       , 0.83333333, 0.33333333, 0.83333333, 0.5       ])
    """
    refuse_out_overlap(out, grad_output)
    input_shape = _input_shape(input_shape)
    g = as_array(grad_output, "grad_output", FLOAT_DTYPES)
    if g.ndim != len(input_shape):
        raise ValueError(
            f"grad_output has {g.ndim} dimensions and input_shape {len(input_shape)}; they must match"
        )
    if axes is None:
        axes = tuple(a for a in range(g.ndim) if g.shape[a] != input_shape[a])
        if not axes:  # every axis pooled to its own size: the identity
            grad_input: NDArray[Any]
            (grad_input,) = result_arrays(g, out, [(input_shape, g.dtype)], ["out"])
            np.copyto(grad_input, g)
            return grad_input
    pooled = normalize_axes(axes, g.ndim, None)
    if any(g.shape[a] == 0 for a in pooled):
        raise ValueError(f"grad_output has shape {g.shape}: its pooled axes {pooled} are the "
                         f"forward's output sizes, which must be >= 1")
    geometry = adaptive_geometry(input_shape, tuple(g.shape[a] for a in pooled), pooled,
                                 source="input_shape")
    check_num_threads(num_threads)
    g = check_grad_output(g, geometry.out_shape)
    weights = geometry.inverse_divisors(False, None)
    return _spread(g, geometry, input_shape, weights, out, num_threads)


@public("x")
def adaptive_max_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    output_size: int | Sequence[int | None],
    *,
    axes: int | Sequence[int] | None = None,
    indices: ArrayLike | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`adaptive_max_pool` with respect to x: each bin's gradient goes to
    its argmax, summed where bins overlap.

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result (the forward's output shape).
    x : array_like
        The forward's input.
    output_size, axes
        The forward call's arguments (see :func:`adaptive_avg_pool`).
    indices : array_like of ints, optional
        The forward's indices (``return_indices=True``); recomputed from x when not given.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping any input.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: x's shape and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtypes of grad_output, x or indices; a parameter of the wrong kind (this
        error is a ValueError too).
    ValueError
        As :func:`adaptive_max_pool`, plus a grad_output of the wrong shape and indices of the
        wrong shape or outside the pooled plane.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([3., 1., 4., 1., 5.])
    >>> cypool.adaptive_max_pool_backward(np.ones(3), x, 3, axes=0)
    array([1., 0., 1., 0., 1.])
    """
    refuse_out_overlap(out, grad_output, x, indices)
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = adaptive_geometry(x.shape, output_size, axes)
    check_num_threads(num_threads)
    g = check_grad_output(grad_output, geometry.out_shape)
    if indices is None:
        _, idx = adaptive_max_pool(x, output_size, axes=axes, return_indices=True,
                                   num_threads=num_threads)
    else:
        idx = check_indices(indices, geometry.out_shape, _plane(x.shape, geometry.axes),
                            num_threads=num_threads)
    return _scatter(g, idx, geometry.axes, x.shape, out, num_threads, x)


@public("input_shape")
def global_avg_pool_backward(
    grad_output: ArrayLike,
    input_shape: Sequence[int],
    *,
    axes: int | Sequence[int] | None = None,
    keepdims: bool = False,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`global_avg_pool` with respect to its input: grad_output divided by
    the number of reduced elements, broadcast over the reduced axes.

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result (the forward's output shape).
    input_shape : tuple of int
        Shape of the forward's input (a tuple or list of sizes >= 0).
    axes, keepdims
        The forward call's arguments (see :func:`global_avg_pool`).
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping grad_output.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: ``input_shape`` and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtype of grad_output; input_shape not a tuple of ints, or another
        parameter of the wrong kind (this error is a ValueError too).
    ValueError
        As :func:`global_avg_pool`, plus negative input_shape sizes and a grad_output of the
        wrong shape.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.global_avg_pool_backward(np.array([[1., 2.]]), (1, 2, 2))
    array([[[0.5, 0.5],
            [1. , 1. ]]])
    """
    refuse_out_overlap(out, grad_output)
    input_shape = _input_shape(input_shape)
    probe = np.broadcast_to(np.zeros((), np.float32), input_shape)
    call = GlobalCall(probe, axes, keepdims, source="input_shape")
    check_num_threads(num_threads)
    g = check_grad_output(grad_output, call.shape)
    grad_input: NDArray[Any]
    (grad_input,) = result_arrays(probe, out, [(input_shape, g.dtype)], ["out"], [g])
    kept = g if keepdims else np.expand_dims(g, call.reduced)
    np.multiply(kept.astype(np.float64, copy=False), 1.0 / call.count, out=grad_input, casting="unsafe")
    return grad_input


@public("x")
def global_max_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    *,
    axes: int | Sequence[int] | None = None,
    keepdims: bool = False,
    indices: ArrayLike | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Gradient of :func:`global_max_pool` with respect to x: each gradient goes to the argmax
    of its reduced region, zeros elsewhere.

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64
        Gradient of the loss with respect to the pooled result (the forward's output shape).
    x : array_like
        The forward's input.
    axes, keepdims
        The forward call's arguments (see :func:`global_max_pool`).
    indices : array_like of ints, optional
        The forward's indices (``return_indices=True``), flat positions over the reduced axes;
        recomputed from x when not given.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping any input.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        grad_input: x's shape and grad_output's dtype.

    Raises
    ------
    TypeError
        Unsupported dtypes of grad_output, x or indices; a parameter of the wrong kind (this
        error is a ValueError too).
    ValueError
        As :func:`global_max_pool`, plus a grad_output of the wrong shape and indices of the
        wrong shape or outside the reduced region.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[[3., 1.], [4., 1.]], [[5., 9.], [2., 6.]]]])
    >>> cypool.global_max_pool_backward(np.array([[1., 2.]]), x)
    array([[[[0., 0.],
             [1., 0.]],
    <BLANKLINE>
            [[0., 2.],
             [0., 0.]]]])
    """
    refuse_out_overlap(out, grad_output, x, indices)
    call = GlobalCall(x, axes, keepdims)
    check_num_threads(num_threads)
    g = check_grad_output(grad_output, call.shape)
    if indices is None:
        _, idx = global_max_pool(call.x, axes=call.reduced, keepdims=keepdims,
                                 return_indices=True, num_threads=num_threads)
    else:
        idx = check_indices(indices, call.shape, call.count, num_threads=num_threads)
    internal_shape = call.internal_shape
    g_in = g.reshape(internal_shape)
    idx_in = idx.reshape(internal_shape)
    if out is None:
        grad_input = allocate_like(call.x, call.x.shape, g.dtype)
    else:
        (grad_input,) = result_arrays(call.x, out, [(call.x.shape, g.dtype)], ["out"], [g, idx])
    moved = np.moveaxis(grad_input, call.reduced,
                        range(call.x.ndim - len(call.reduced), call.x.ndim))
    folded = (moved if moved.shape == call.folded.shape
              else merge_trailing_axes(moved, len(call.reduced)))
    target = np.empty(call.folded.shape, g.dtype) if folded is None else folded
    _scatter(g_in, idx_in, call.folded_axes, call.folded.shape, target, num_threads, call.folded,
             write_past_caches(out, grad_input))
    if target is not folded:
        np.copyto(moved, target.reshape(moved.shape))
    return grad_input
