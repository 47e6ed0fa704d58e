"""Adaptive and global pooling forward.

Adaptive bins come from ``_geometry.adaptive_geometry`` as taps tables and run on the window
kernels ("table mode"). Global pooling reduces whole regions with its own kernels, through
``_global_call``.
"""

# The helpers of _call and _layout called here are not annotated yet:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cypool._call import INDEX_DTYPE, check_bool, refuse_out_overlap
from cypool._dtypes import ORDER_DTYPES, as_array, average_dtypes, order_compute_dtype
from cypool._geometry import adaptive_geometry
from cypool._global_call import GlobalCall, Result
from cypool._kernels import window as _window_kernels
from cypool._errors import ParameterTypeError
from cypool._facade import public
from cypool._parallel import check_num_threads
from cypool._typing import ArrayPair
from cypool._window import avg_over, max_over


@public("output_size")
def adaptive_avg_pool(
    x: ArrayLike,
    output_size: int | Sequence[int | None],
    *,
    axes: int | Sequence[int] | None = None,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Adaptive average pooling: each pooled axis split into ``output_size`` bins, as PyTorch.

    Bin ``i`` of an axis of size ``n`` pooled to ``o`` bins covers
    ``[floor(i * n / o), ceil((i + 1) * n / o))``.

    Parameters
    ----------
    x : array_like
        Input of any shape and strides; float16, float32 or float64, or an integer dtype
        (computed and returned as float64).
    output_size : int or sequence of (int or None)
        Bins per pooled axis, each >= 1: one int for every pooled axis (then ``axes`` is
        required) or one entry per pooled axis, None keeping that axis's size.
    axes : int or sequence of int, optional
        The 1 to 3 distinct pooled axes (negative allowed); None: the last
        ``len(output_size)`` axes.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        x's shape with the pooled axes resized to ``output_size``; x's float dtype, float64
        for integer x.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind (this error is a ValueError too).
    ValueError
        Bad axes, output_size entries below 1, an empty pooled axis, or a bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.adaptive_avg_pool(x, (2, 2))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> cypool.adaptive_avg_pool(x, (None, 1))
    array([[[[ 1.5],
             [ 5.5],
             [ 9.5],
             [13.5]]]])
    >>> cypool.adaptive_avg_pool(np.arange(5.), 3, axes=0)
    array([0.5, 2. , 3.5])
    """
    refuse_out_overlap(out, x)
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = adaptive_geometry(x.shape, output_size, axes)
    check_num_threads(num_threads)
    return avg_over(x, geometry, geometry.inverse_divisors(False, None), out, num_threads)


@overload
def adaptive_max_pool(
    x: ArrayLike,
    output_size: int | Sequence[int | None],
    *,
    axes: int | Sequence[int] | None = ...,
    return_indices: Literal[False] = ...,
    out: NDArray[Any] | None = ...,
    num_threads: int | None = ...,
) -> NDArray[Any]: ...
@overload
def adaptive_max_pool(
    x: ArrayLike,
    output_size: int | Sequence[int | None],
    *,
    axes: int | Sequence[int] | None = ...,
    return_indices: Literal[True],
    out: ArrayPair | None = ...,
    num_threads: int | None = ...,
) -> ArrayPair: ...
@overload
def adaptive_max_pool(
    x: ArrayLike,
    output_size: int | Sequence[int | None],
    *,
    axes: int | Sequence[int] | None = ...,
    return_indices: bool = ...,
    out: NDArray[Any] | ArrayPair | None = ...,
    num_threads: int | None = ...,
) -> NDArray[Any] | ArrayPair: ...
@public("output_size")
def adaptive_max_pool(
    x: ArrayLike,
    output_size: int | Sequence[int | None],
    *,
    axes: int | Sequence[int] | None = None,
    return_indices: bool = False,
    out: NDArray[Any] | ArrayPair | None = None,
    num_threads: int | None = None,
) -> NDArray[Any] | ArrayPair:
    """Adaptive max pooling: the max of each of ``output_size`` bins per pooled axis, as
    PyTorch.

    Bins are those of :func:`adaptive_avg_pool`.

    Parameters
    ----------
    x : array_like
        Input of any shape and strides; float16, float32, float64 or any signed or unsigned
        integer dtype.
    output_size, axes
        As for :func:`adaptive_avg_pool`.
    return_indices : bool
        Also return the argmax of every bin: int64 flat positions over the pooled axes,
        row-major in increasing axis order.
    out : ndarray, or (ndarray, ndarray) with ``return_indices``, optional
        Preallocated result(s): exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray of x's dtype, or (values, indices) with ``return_indices``
        x's shape with the pooled axes resized to ``output_size``. NaN propagates; ties go to
        the first position.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind (this error is a ValueError too).
    ValueError
        Bad axes, output_size entries below 1, an empty pooled axis, or a bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.adaptive_max_pool(x, (2, 2))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> values, indices = cypool.adaptive_max_pool(np.array([3., 1., 4., 1., 5.]), 3, axes=0,
    ...                                            return_indices=True)
    >>> values, indices
    (array([3., 4., 5.]), array([0, 2, 4]))
    """
    refuse_out_overlap(out, x)
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = adaptive_geometry(x.shape, output_size, axes)
    return_indices = check_bool(return_indices, "return_indices")
    check_num_threads(num_threads)
    return max_over(x, geometry, return_indices, out, num_threads)


@public("x")
def global_avg_pool(
    x: ArrayLike,
    *,
    axes: int | Sequence[int] | None = None,
    keepdims: bool = False,
    out: NDArray[Any] | None = None,
    num_threads: int | None = None,
) -> NDArray[Any]:
    """Global average pooling: the mean over the reduced axes, summed in float64.

    Parameters
    ----------
    x : array_like
        Input of any shape and strides; float16, float32 or float64, or an integer dtype
        (computed and returned as float64).
    axes : int or sequence of int, optional
        The reduced axes, any number of distinct axes (negative allowed). None: every axis
        after the first two (``N, C, *spatial``); pass ``axes=(1, 2)`` for channels-last
        images.
    keepdims : bool
        Keep the reduced axes with size 1.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        x's shape without the reduced axes (size 1 with ``keepdims``); x's float dtype,
        float64 for integer x.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind (this error is a ValueError too).
    ValueError
        Bad axes (with axes=None, x needs at least 3 dimensions), an empty reduced axis, or a
        bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(8.).reshape(1, 2, 2, 2)
    >>> cypool.global_avg_pool(x)
    array([[1.5, 5.5]])
    >>> cypool.global_avg_pool(x, axes=(1, 2))
    array([[3., 4.]])
    >>> cypool.global_avg_pool(x, keepdims=True).shape
    (1, 2, 1, 1)
    """
    refuse_out_overlap(out, x)
    call = GlobalCall(x, axes, keepdims)
    check_num_threads(num_threads)
    compute, result = average_dtypes(call.x.dtype)
    (values,) = call.run(_window_kernels.global_sum, compute, [Result(result, compute, "out")],
                         None if out is None else [out], num_threads, 1.0 / call.count)
    return values


@overload
def global_max_pool(
    x: ArrayLike,
    *,
    axes: int | Sequence[int] | None = ...,
    keepdims: bool = ...,
    return_indices: Literal[False] = ...,
    out: NDArray[Any] | None = ...,
    num_threads: int | None = ...,
) -> NDArray[Any]: ...
@overload
def global_max_pool(
    x: ArrayLike,
    *,
    axes: int | Sequence[int] | None = ...,
    keepdims: bool = ...,
    return_indices: Literal[True],
    out: ArrayPair | None = ...,
    num_threads: int | None = ...,
) -> ArrayPair: ...
@overload
def global_max_pool(
    x: ArrayLike,
    *,
    axes: int | Sequence[int] | None = ...,
    keepdims: bool = ...,
    return_indices: bool = ...,
    out: NDArray[Any] | ArrayPair | None = ...,
    num_threads: int | None = ...,
) -> NDArray[Any] | ArrayPair: ...
@public("x")
def global_max_pool(
    x: ArrayLike,
    *,
    axes: int | Sequence[int] | None = None,
    keepdims: bool = False,
    return_indices: bool = False,
    out: NDArray[Any] | ArrayPair | None = None,
    num_threads: int | None = None,
) -> NDArray[Any] | ArrayPair:
    """Global max pooling: the max over the reduced axes.

    Parameters
    ----------
    x : array_like
        Input of any shape and strides; float16, float32, float64 or any signed or unsigned
        integer dtype.
    axes, keepdims
        As for :func:`global_avg_pool`.
    return_indices : bool
        Also return the argmax: int64 flat positions over the reduced axes, row-major in
        increasing axis order.
    out : ndarray, or (ndarray, ndarray) with ``return_indices``, optional
        Preallocated result(s): exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray of x's dtype, or (values, indices) with ``return_indices``
        x's shape without the reduced axes (size 1 with ``keepdims``). NaN propagates; ties
        go to the first position.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind, e.g. ``out`` not a pair with
        ``return_indices`` (this error is a ValueError too).
    ValueError
        Bad axes (with axes=None, x needs at least 3 dimensions), an empty reduced axis, or a
        bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[[3., 1.], [4., 1.]], [[5., 9.], [2., 6.]]]])
    >>> cypool.global_max_pool(x)
    array([[4., 9.]])
    >>> values, indices = cypool.global_max_pool(x, return_indices=True)
    >>> indices
    array([[2, 1]])
    """
    refuse_out_overlap(out, x)
    call = GlobalCall(x, axes, keepdims)
    return_indices = check_bool(return_indices, "return_indices")
    check_num_threads(num_threads)
    compute = order_compute_dtype(call.x.dtype)
    if not return_indices:
        (result,) = call.run(_window_kernels.global_max, compute,
                             [Result(call.x.dtype, compute, "out")],
                             None if out is None else [out], num_threads, None)
        return result
    if out is not None and (not isinstance(out, (tuple, list)) or len(out) != 2):
        raise ParameterTypeError(
            f"out must be a pair (values, indices) when return_indices=True, got {type(out).__name__}"
        )
    results = [Result(call.x.dtype, compute, "out[0]"), Result(INDEX_DTYPE, INDEX_DTYPE, "out[1]")]
    maxima, indices = call.run(_window_kernels.global_max, compute, results,
                               None if out is None else list(out), num_threads)
    return maxima, indices


def global_partial_sums(
    x: NDArray[Any], axes: tuple[int, ...], num_threads: int | None
) -> NDArray[np.float64]:
    """float64 sums of x over `axes`, kept as size-1 axes: the partial sums that chunked
    global average pooling (cypool.dask) combines, with no rounding to x's dtype between."""
    call = GlobalCall(x, axes, keepdims=True)
    compute, _ = average_dtypes(call.x.dtype)
    float64 = np.dtype(np.float64)
    (sums,) = call.run(_window_kernels.global_sum, compute, [Result(float64, float64, "out")],
                       None, num_threads, 1.0)
    return sums
