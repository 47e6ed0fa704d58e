"""Window pooling forward: max_pool, avg_pool, lp_pool and the PyTorch-habit aliases.

Each op validates its arguments, resolves the geometry (``_geometry``), then runs one kernel
over the 5-d folded views of its input and results (``_call``).
"""

# The helpers of _call and _geometry called here are not annotated yet:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, cast, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cypool._call import (
    INDEX_DTYPE,
    check_bool,
    kernel_input,
    refuse_out_overlap,
    result_arrays,
    run_kernel,
    stream_averages,
)
from cypool._dtypes import ORDER_DTYPES, average_dtypes, as_array, order_compute_dtype
from cypool._facade import public
from cypool._geometry import (
    WindowGeometry,
    check_divisor_override,
    check_norm_type,
    window_geometry,
)
from cypool._kernels import window as _window_kernels
from cypool._parallel import check_num_threads
from cypool._typing import ArrayPair, Padding


def max_over(
    x: NDArray[Any],
    geometry: WindowGeometry,
    return_indices: bool,
    out: NDArray[Any] | ArrayPair | None,
    num_threads: int | None,
) -> NDArray[Any] | ArrayPair:
    """Max (and argmax) of x over the windows or bins of a checked geometry."""
    compute = order_compute_dtype(x.dtype)
    xk = kernel_input(x, compute)
    shape = geometry.out_shape
    values: NDArray[Any]
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


def avg_over(
    x: NDArray[Any],
    geometry: WindowGeometry,
    inverse_divisors: tuple[NDArray[np.float64], ...],
    out: NDArray[Any] | None,
    num_threads: int | None,
) -> NDArray[Any]:
    """Averages of x over the windows or bins of a checked geometry, with per-axis inverse
    divisor factors."""
    compute, result = average_dtypes(x.dtype)
    xk = kernel_input(x, compute)
    values: NDArray[Any]
    (values,) = result_arrays(x, out, [(geometry.out_shape, result)], ["out"])
    run_kernel(_window_kernels.avg_pool, geometry, xk, [values], [compute], num_threads,
               *inverse_divisors, *stream_averages(out, values))
    return values


def lp_over(
    x: NDArray[Any],
    geometry: WindowGeometry,
    p: float,
    out: NDArray[Any] | None,
    num_threads: int | None,
) -> NDArray[Any]:
    """p-norms of x over the windows of a checked geometry."""
    compute, result = average_dtypes(x.dtype)
    xk = kernel_input(x, compute)
    values: NDArray[Any]
    (values,) = result_arrays(x, out, [(geometry.out_shape, result)], ["out"])
    run_kernel(_window_kernels.lp_pool, geometry, xk, [values], [compute], num_threads, p)
    return values


@overload
def max_pool(
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = ...,
    padding: Padding = ...,
    dilation: int | Sequence[int] = ...,
    *,
    axes: int | Sequence[int] | None = ...,
    ceil_mode: bool = ...,
    return_indices: Literal[False] = ...,
    out: NDArray[Any] | None = ...,
    num_threads: int | None = ...,
) -> NDArray[Any]: ...
@overload
def max_pool(
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = ...,
    padding: Padding = ...,
    dilation: int | Sequence[int] = ...,
    *,
    axes: int | Sequence[int] | None = ...,
    ceil_mode: bool = ...,
    return_indices: Literal[True],
    out: ArrayPair | None = ...,
    num_threads: int | None = ...,
) -> ArrayPair: ...
@overload
def max_pool(
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = ...,
    padding: Padding = ...,
    dilation: int | Sequence[int] = ...,
    *,
    axes: int | Sequence[int] | None = ...,
    ceil_mode: bool = ...,
    return_indices: bool = ...,
    out: NDArray[Any] | ArrayPair | None = ...,
    num_threads: int | None = ...,
) -> NDArray[Any] | ArrayPair: ...
@public("x")
def max_pool(
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    return_indices: bool = False,
    out: NDArray[Any] | ArrayPair | None = None,
    num_threads: int | None = None,
) -> NDArray[Any] | ArrayPair:
    """Max pooling over 1 to 3 axes of an N-d array.

    Parameters
    ----------
    x : array_like
        Input of any shape and strides (read in place); float16, float32, float64 or any
        signed or unsigned integer dtype.
    kernel_size : int or sequence of int
        Window size: one int for every pooled axis, or one int per pooled axis. With
        ``axes=None`` it must be a sequence, whose length sets how many trailing axes are
        pooled.
    stride : int or sequence of int, optional
        Step between windows; None means ``kernel_size``.
    padding : int, sequence of int, sequence of (before, after) pairs, "same" or "valid"
        Implicit padding of each pooled axis, at most half the dilated window extent
        ``dilation * (kernel_size - 1) + 1`` per side; it never wins the max. "same": output
        size ``ceil(n / stride)`` (TensorFlow's rule), "valid": no padding.
    dilation : int or sequence of int
        Spacing between the taps of a window.
    axes : int or sequence of int, optional
        The 1 to 3 distinct pooled axes (negative allowed); every other axis is a batch axis.
        None: the last ``len(kernel_size)`` axes.
    ceil_mode : bool
        Round output sizes up instead of down (the last window must still start inside the
        input or its leading padding).
    return_indices : bool
        Also return the argmax of every window: int64 flat positions over the pooled axes,
        row-major in increasing axis order (``h * W + w`` for NCHW, as PyTorch returns).
    out : ndarray, or (ndarray, ndarray) with ``return_indices``, optional
        Preallocated result(s): exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray of x's dtype, or (values, indices) with ``return_indices``
        x's shape with each pooled axis resized to its output size. NaN propagates (its index
        points at a NaN); ties go to the first position in the window's row-major scan.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind (e.g. a float kernel_size: this
        error is a ValueError too).
    ValueError
        Bad axes, sizes, padding or out=; an output size below 1; a window holding no input
        element.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.max_pool(x, (2, 2))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> values, indices = cypool.max_pool(x, (2, 2), return_indices=True)
    >>> indices
    array([[[[ 5,  7],
             [13, 15]]]])
    >>> cypool.max_pool(np.array([3, 1, 4, 1, 5, 9]), 2, axes=0)
    array([3, 4, 9])
    """
    refuse_out_overlap(out, x)
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    return_indices = check_bool(return_indices, "return_indices")
    check_num_threads(num_threads)
    return max_over(x, geometry, return_indices, out, num_threads)


@public("x")
def avg_pool(
    x: ArrayLike,
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
    """Average pooling over 1 to 3 axes of an N-d array.

    Parameters
    ----------
    x : array_like
        Input of any shape and strides; float16, float32 or float64, or an integer dtype
        (computed and returned as float64).
    kernel_size, stride, padding, dilation, axes, ceil_mode
        As for :func:`max_pool`.
    count_include_pad : bool
        Divide by the number of window taps inside the padded extent (True, PyTorch's
        default; taps that ceil_mode pushes past it never count) or inside the input (False).
    divisor_override : int, optional
        A non-zero divisor used for every window instead.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        x's shape with each pooled axis resized to its output size; x's float dtype, float64
        for integer x. float32 windows are summed in float64.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind (this error is a ValueError too).
    ValueError
        Bad axes, sizes, padding, divisor_override or out=; an output size below 1; a window
        holding no input element.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.avg_pool(x, (2, 2))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> cypool.avg_pool(x, (3, 3), 2, 1, count_include_pad=False)
    array([[[[ 2.5,  4. ],
             [ 8.5, 10. ]]]])
    >>> cypool.avg_pool(np.array([1, 2, 3, 4]), 2, axes=0)
    array([1.5, 3.5])
    """
    refuse_out_overlap(out, x)
    x = as_array(x, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor_override = check_divisor_override(divisor_override)
    check_num_threads(num_threads)
    return avg_over(x, geometry, geometry.inverse_divisors(count_include_pad, divisor_override),
                    out, num_threads)


@public("x")
def lp_pool(
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
    """LP (power-average) pooling: the p-norm ``(sum |x| ** p) ** (1 / p)`` of every window.

    Padding contributes nothing, and negative inputs never give NaN (equal to PyTorch's
    ``lp_pool`` for non-negative inputs without ceil-mode partial windows).

    The result is the true p-norm for every finite input and p, to within a few roundings:
    no ``|x| ** p`` overflows or underflows into it. The
    sums are taken in float64, and a window whose sum left the range where it is accurate
    (it overflowed, or for p != 1 fell below ``2 ** -960``) is recomputed scaled by its
    largest ``|x|`` as ``hypot`` does: the 2-norm of ``[1e200, 1e200]`` is
    ``hypot(1e200, 1e200)``, not inf, and the 1000-norm of ``[2, 3]`` is 3. A window holding
    a NaN gives NaN, one holding an inf (and no NaN) inf; the result is inf also where the
    true norm exceeds the result dtype's range (float32 ``[3e38, 3e38]``).

    Parameters
    ----------
    x : array_like
        Input of any shape and strides; float16, float32 or float64, or an integer dtype
        (computed and returned as float64).
    norm_type : float
        The power p: a finite number > 0.
    kernel_size, stride, padding, dilation, axes, ceil_mode
        As for :func:`max_pool`.
    out : ndarray, optional
        Preallocated result: exact shape and dtype, writable, not overlapping x.
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray
        x's shape with each pooled axis resized to its output size; x's float dtype, float64
        for integer x.

    Raises
    ------
    TypeError
        Unsupported dtype of x; a parameter of the wrong kind, e.g. a non-numeric norm_type
        (this error is a ValueError too).
    ValueError
        norm_type not finite or not > 0; bad axes, sizes, padding or out=; an output size
        below 1; a window holding no input element.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.lp_pool(np.array([3., -4., 6., 8.]), 2, (2,))
    array([ 5., 10.])
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.lp_pool(x, 1, (2, 2))
    array([[[[10., 18.],
             [42., 50.]]]])
    >>> cypool.lp_pool(np.array([1e200, -1e200, 2., 3.]), 2, (2,))
    array([1.41421356e+200, 3.60555128e+000])
    """
    refuse_out_overlap(out, x)
    x = as_array(x, "x", ORDER_DTYPES)
    p = check_norm_type(norm_type)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    check_num_threads(num_threads)
    return lp_over(x, geometry, p, out, num_threads)


# ------------------------------------------------------------------------------------------------
# PyTorch-habit aliases: pool the trailing `rank` axes, or the `rank` axes before the last with
# channels_last=True; an int kernel_size applies to every pooled axis. Made by one factory per
# family; the Protocols give type checkers their (overloaded) signatures.


class MaxPoolNd(Protocol):
    """The type of max_pool1d, max_pool2d and max_pool3d."""

    @overload
    def __call__(self, x: ArrayLike, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None = ..., padding: Padding = ...,
                 dilation: int | Sequence[int] = ..., ceil_mode: bool = ...,
                 return_indices: Literal[False] = ..., *, channels_last: bool = ...,
                 out: NDArray[Any] | None = ..., num_threads: int | None = ...) -> NDArray[Any]: ...
    @overload
    def __call__(self, x: ArrayLike, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None, padding: Padding,
                 dilation: int | Sequence[int], ceil_mode: bool, return_indices: Literal[True], *,
                 channels_last: bool = ..., out: ArrayPair | None = ...,
                 num_threads: int | None = ...) -> ArrayPair: ...
    @overload
    def __call__(self, x: ArrayLike, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None = ..., padding: Padding = ...,
                 dilation: int | Sequence[int] = ..., ceil_mode: bool = ..., *,
                 return_indices: Literal[True], channels_last: bool = ...,
                 out: ArrayPair | None = ..., num_threads: int | None = ...) -> ArrayPair: ...
    @overload
    def __call__(self, x: ArrayLike, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None = ..., padding: Padding = ...,
                 dilation: int | Sequence[int] = ..., ceil_mode: bool = ...,
                 return_indices: bool = ..., *, channels_last: bool = ...,
                 out: NDArray[Any] | ArrayPair | None = ...,
                 num_threads: int | None = ...) -> NDArray[Any] | ArrayPair: ...


class AvgPoolNd(Protocol):
    """The type of avg_pool1d, avg_pool2d and avg_pool3d."""

    def __call__(self, x: ArrayLike, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None = ..., padding: Padding = ...,
                 ceil_mode: bool = ..., count_include_pad: bool = ...,
                 divisor_override: int | None = ..., *, channels_last: bool = ...,
                 out: NDArray[Any] | None = ..., num_threads: int | None = ...) -> NDArray[Any]: ...


def _alias_axes(x: ArrayLike, rank: int, channels_last: bool) -> tuple[int, ...]:
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


_ALIAS_DOC = """{rank}-d {op} pooling of {axes}, as ``torch.nn.functional.{name}``; with
    ``channels_last=True``, of {axes_cl}.

    Parameters
    ----------
    x : array_like
        Input with at least {rank} dimension(s) ({rank_cl} with ``channels_last``), e.g. {shape},
        or {shape_cl} with ``channels_last``; dtypes as for :func:`{base}`.
    kernel_size : int or sequence of int
        Window size: an int applies to every pooled axis.
    {positional}
        As for :func:`{base}`, here positional too, in PyTorch's order.
    channels_last : bool
        Pool the {rank} axes before the last (channels-last data) instead of the last {rank}.
    out, num_threads
        As for :func:`{base}`.

    Returns
    -------
    {returns}
        As :func:`{base}` with ``axes`` the pooled axes above.

    Raises
    ------
    TypeError, ValueError
        As :func:`{base}`, plus a ValueError when x has too few dimensions.

    Examples
    --------
{examples}
    """

_AXES = {1: ("the last axis", "the axis before the last", "(N, C, L)", "(N, L, C)"),
         2: ("the last 2 axes", "the 2 axes before the last", "(N, C, H, W)", "(N, H, W, C)"),
         3: ("the last 3 axes", "the 3 axes before the last", "(N, C, D, H, W)", "(N, D, H, W, C)")}

_EXAMPLES = {
    "max_pool1d": """\
    >>> import numpy as np, cypool
    >>> x = np.array([[3., 1., 4., 1., 5., 9.]])
    >>> cypool.max_pool1d(x, 2)
    array([[3., 4., 9.]])
    >>> values, indices = cypool.max_pool1d(x, 2, return_indices=True)
    >>> indices
    array([[0, 2, 5]])""",
    "max_pool2d": """\
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.max_pool2d(x, 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> cypool.max_pool2d(x, 3, 1, 1)
    array([[[[ 5.,  6.,  7.,  7.],
             [ 9., 10., 11., 11.],
             [13., 14., 15., 15.],
             [13., 14., 15., 15.]]]])
    >>> nhwc = np.arange(8.).reshape(1, 2, 2, 2)
    >>> cypool.max_pool2d(nhwc, 2, channels_last=True)
    array([[[[6., 7.]]]])""",
    "max_pool3d": """\
    >>> import numpy as np, cypool
    >>> x = np.arange(8.).reshape(1, 1, 2, 2, 2)
    >>> values, indices = cypool.max_pool3d(x, 2, return_indices=True)
    >>> values
    array([[[[[7.]]]]])
    >>> indices
    array([[[[[7]]]]])""",
    "avg_pool1d": """\
    >>> import numpy as np, cypool
    >>> x = np.array([[3., 1., 4., 1., 5., 9.]])
    >>> cypool.avg_pool1d(x, 2)
    array([[2. , 2.5, 7. ]])
    >>> cypool.avg_pool1d(x, 3, 1, 1, count_include_pad=False)
    array([[2.        , 2.66666667, 2.        , 3.33333333, 5.        ,
            7.        ]])""",
    "avg_pool2d": """\
    >>> import numpy as np, cypool
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> cypool.avg_pool2d(x, 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> nhwc = np.arange(8.).reshape(1, 2, 2, 2)
    >>> cypool.avg_pool2d(nhwc, 2, channels_last=True)
    array([[[[3., 4.]]]])""",
    "avg_pool3d": """\
    >>> import numpy as np, cypool
    >>> x = np.arange(8.).reshape(1, 1, 2, 2, 2)
    >>> cypool.avg_pool3d(x, 2)
    array([[[[[3.5]]]]])""",
}


def _alias_doc(op: str, rank: int) -> str:
    name = f"{op}_pool{rank}d"
    axes, axes_cl, shape, shape_cl = _AXES[rank]
    if op == "max":
        details = dict(op="max", base="max_pool",
                       positional="stride, padding, dilation, ceil_mode, return_indices",
                       returns="ndarray of x's dtype, or (values, indices) with ``return_indices``")
    else:
        details = dict(op="average", base="avg_pool",
                       positional="stride, padding, ceil_mode, count_include_pad, divisor_override",
                       returns="ndarray")
    return _ALIAS_DOC.format(rank=rank, rank_cl=rank + 1, name=name, axes=axes, axes_cl=axes_cl,
                             shape=shape, shape_cl=shape_cl, examples=_EXAMPLES[name], **details)


def _max_alias(rank: int, base: Callable[..., Any] = max_pool) -> MaxPoolNd:
    """The rank-d max alias calling `base`: max_pool here, its twin in cypool.dask."""

    def pool(x: ArrayLike, kernel_size: int | Sequence[int],
             stride: int | Sequence[int] | None = None, padding: Padding = 0,
             dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
             return_indices: bool = False, *, channels_last: bool = False,
             out: NDArray[Any] | ArrayPair | None = None,
             num_threads: int | None = None) -> NDArray[Any] | ArrayPair:
        return base(x, kernel_size, stride, padding, dilation,
                    axes=_alias_axes(x, rank, channels_last), ceil_mode=ceil_mode,
                    return_indices=return_indices, out=out, num_threads=num_threads)

    pool.__name__ = pool.__qualname__ = f"max_pool{rank}d"
    pool.__doc__ = _alias_doc("max", rank)
    return cast(MaxPoolNd, pool)


def _avg_alias(rank: int, base: Callable[..., Any] = avg_pool) -> AvgPoolNd:
    """The rank-d avg alias calling `base`: avg_pool here, its twin in cypool.dask."""

    def pool(x: ArrayLike, kernel_size: int | Sequence[int],
             stride: int | Sequence[int] | None = None, padding: Padding = 0,
             ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None, *, channels_last: bool = False,
             out: NDArray[Any] | None = None, num_threads: int | None = None) -> NDArray[Any]:
        return base(x, kernel_size, stride, padding, axes=_alias_axes(x, rank, channels_last),
                    ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                    divisor_override=divisor_override, out=out, num_threads=num_threads)

    pool.__name__ = pool.__qualname__ = f"avg_pool{rank}d"
    pool.__doc__ = _alias_doc("avg", rank)
    return pool


max_pool1d: MaxPoolNd = _max_alias(1)
max_pool2d: MaxPoolNd = _max_alias(2)
max_pool3d: MaxPoolNd = _max_alias(3)
avg_pool1d: AvgPoolNd = _avg_alias(1)
avg_pool2d: AvgPoolNd = _avg_alias(2)
avg_pool3d: AvgPoolNd = _avg_alias(3)
