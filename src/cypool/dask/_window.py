"""Window pooling of dask arrays: max_pool, avg_pool, lp_pool and the aliases.

The whole array's geometry is checked once, exactly as in memory. Each pooled axis is then
rechunked to window-aligned boundaries (``_plan``), every chunk borrows its right halo from
its neighbour (``dask.array.overlap``), and one task per chunk runs the ordinary kernels with
that chunk's slice of the geometry. So every window is computed from the same taps with the
same divisor as in memory: max (and its indices) is exact, avg and LP agree to rounding.
"""

# The helpers of _call and _geometry called here are not annotated yet:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from cypool._call import check_bool
from cypool._dtypes import ORDER_DTYPES, as_array, average_dtypes
from cypool._geometry import (
    WindowGeometry,
    check_divisor_override,
    check_norm_type,
    window_geometry,
)
from cypool._typing import Padding
from cypool._window import avg_over, lp_over, max_over
from cypool.dask._blocks import as_records, global_flat_indices, record_dtype
from cypool.dask._args import as_dask_array, check_no_out, checked_dtype, chunk_threads
from cypool.dask._plan import AxisPlan, plan_axis


class _ChunkedWindows:
    """A checked window geometry of a dask array and its window-aligned chunking.

    Every chunk task holds this object, so it holds only shapes and tables: never the dask
    array (whose graph grows with the number of chunks).
    """

    def __init__(self, x: da.Array, geometry: WindowGeometry) -> None:
        self.geometry = geometry
        self.plans: dict[int, AxisPlan] = {
            axis: plan_axis(g, x.chunks[axis])  # type: ignore[arg-type]
            for axis, g in zip(geometry.axes, geometry.per_axis)
        }
        out_chunks = list(x.chunks)
        for axis, plan in self.plans.items():
            out_chunks[axis] = plan.out_chunks
        self.out_chunks = tuple(out_chunks)

    def aligned(self, x: da.Array) -> da.Array:
        """x rechunked to the planned boundaries, each chunk with its right halo."""
        chunks = list(x.chunks)
        for axis, plan in self.plans.items():
            chunks[axis] = plan.in_chunks
        aligned = x.rechunk(tuple(chunks))
        depth = {axis: (0, plan.halo) for axis, plan in self.plans.items()
                 if plan.halo and len(plan.in_chunks) > 1}
        return da.overlap.overlap(aligned, depth, "none", allow_rechunk=False) if depth else aligned

    def block(self, block: np.ndarray, block_id: tuple[int, ...]) -> WindowGeometry:
        """The geometry of one chunk (its data, halo included, is `block`)."""
        per_axis = tuple(
            self.plans[axis].block(block_id[axis], block.shape[axis]) for axis in self.geometry.axes
        )
        return WindowGeometry(block.shape, self.geometry.axes, per_axis)

    def output_rows(self, block_id: tuple[int, ...]) -> tuple[tuple[int, int] | None, ...]:
        """The chunk's output positions (first, stop) on each padded pooled axis (None for the
        unit axes in front)."""
        unit: tuple[tuple[int, int] | None, ...] = (None,) * (3 - len(self.geometry.axes))
        return unit + tuple(self.plans[a].rows(block_id[a]) for a in self.geometry.axes)

    def global_indices(self, indices: np.ndarray, block: np.ndarray,
                       block_id: tuple[int, ...]) -> None:
        """Turn a chunk's flat argmax positions (over its own pooled axes) into positions over
        the whole array's pooled axes, in place."""
        axes = self.geometry.axes
        global_flat_indices(indices, tuple(block.shape[a] for a in axes),
                            tuple(self.plans[a].in_starts[block_id[a]] for a in axes),
                            tuple(self.geometry.shape[a] for a in axes))


def max_pool(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    return_indices: bool = False,
    out: None = None,
    num_threads: int | None = None,
) -> da.Array | tuple[da.Array, da.Array]:
    """Lazy :func:`cypool.max_pool` of a dask array, equal to it for any chunking.

    Arguments as for :func:`cypool.max_pool`, except that ``out=`` is refused and
    ``num_threads`` counts threads per chunk task (None: one, as dask runs chunks in parallel).
    Indices are flat positions over the whole array's pooled axes, as in memory.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> x = da.from_array(np.arange(12.).reshape(1, 12), chunks=5)
    >>> cypool.dask.max_pool(x, 3, axes=1).compute()
    array([[ 2.,  5.,  8., 11.]])
    """
    check_no_out(out)
    x = as_dask_array(x)
    dtype = checked_dtype(x.dtype, "x", ORDER_DTYPES)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    return_indices = check_bool(return_indices, "return_indices")
    threads = chunk_threads(num_threads)
    chunked = _ChunkedWindows(x, geometry)

    if not return_indices:
        def pool_max(block: np.ndarray, block_id: tuple[int, ...]) -> np.ndarray:
            local = as_array(block, "x", ORDER_DTYPES)
            return max_over(local, chunked.block(local, block_id), False, None, threads)

        return chunked.aligned(x).map_blocks(pool_max, chunks=chunked.out_chunks, dtype=dtype,
                                             meta=np.empty((0,) * x.ndim, dtype))

    def pool_max_indices(block: np.ndarray, block_id: tuple[int, ...]) -> np.ndarray:
        local = as_array(block, "x", ORDER_DTYPES)
        values, indices = max_over(local, chunked.block(local, block_id), True, None, threads)
        chunked.global_indices(indices, local, block_id)
        return as_records(values, indices)

    pair = record_dtype(dtype)
    records = chunked.aligned(x).map_blocks(pool_max_indices, chunks=chunked.out_chunks,
                                            dtype=pair, meta=np.empty((0,) * x.ndim, pair))
    return records["values"], records["indices"]


def avg_pool(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    out: None = None,
    num_threads: int | None = None,
) -> da.Array:
    """Lazy :func:`cypool.avg_pool` of a dask array, equal to it for any chunking.

    Arguments as for :func:`cypool.avg_pool`, except that ``out=`` is refused and
    ``num_threads`` counts threads per chunk task (None: one). Each window's divisor is the
    whole array's (padding at the array's edges, ceil-mode overhang), whatever chunk holds it.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> x = da.from_array(np.arange(8.).reshape(1, 8), chunks=3)
    >>> cypool.dask.avg_pool(x, 3, 2, 1, axes=1, count_include_pad=False).compute()
    array([[0.5, 2. , 4. , 6. ]])
    """
    check_no_out(out)
    x = as_dask_array(x)
    _, result_dtype = average_dtypes(checked_dtype(x.dtype, "x", ORDER_DTYPES))
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor_override = check_divisor_override(divisor_override)
    threads = chunk_threads(num_threads)
    chunked = _ChunkedWindows(x, geometry)

    def pool_avg(block: np.ndarray, block_id: tuple[int, ...]) -> np.ndarray:
        local = as_array(block, "x", ORDER_DTYPES)
        # The whole array's divisors of this chunk's windows, computed for them alone.
        inverse = geometry.inverse_divisors(count_include_pad, divisor_override,
                                            chunked.output_rows(block_id))
        return avg_over(local, chunked.block(local, block_id), inverse, None, threads)

    return chunked.aligned(x).map_blocks(pool_avg, chunks=chunked.out_chunks, dtype=result_dtype,
                                         meta=np.empty((0,) * x.ndim, result_dtype))


def lp_pool(
    x: Any,
    norm_type: float,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    *,
    axes: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    out: None = None,
    num_threads: int | None = None,
) -> da.Array:
    """Lazy :func:`cypool.lp_pool` of a dask array, equal to it for any chunking.

    Arguments as for :func:`cypool.lp_pool`, except that ``out=`` is refused and
    ``num_threads`` counts threads per chunk task (None: one).

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> x = da.from_array(np.array([[3., -4., 0., 5., 12., 1.]]), chunks=4)
    >>> cypool.dask.lp_pool(x, 2, 2, axes=1).compute()
    array([[ 5.        ,  5.        , 12.04159458]])
    """
    check_no_out(out)
    x = as_dask_array(x)
    _, result_dtype = average_dtypes(checked_dtype(x.dtype, "x", ORDER_DTYPES))
    p = check_norm_type(norm_type)
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation, axes, ceil_mode)
    threads = chunk_threads(num_threads)
    chunked = _ChunkedWindows(x, geometry)

    def pool_lp(block: np.ndarray, block_id: tuple[int, ...]) -> np.ndarray:
        local = as_array(block, "x", ORDER_DTYPES)
        return lp_over(local, chunked.block(local, block_id), p, None, threads)

    return chunked.aligned(x).map_blocks(pool_lp, chunks=chunked.out_chunks, dtype=result_dtype,
                                         meta=np.empty((0,) * x.ndim, result_dtype))
