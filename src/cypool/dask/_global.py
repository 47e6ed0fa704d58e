"""Global pooling of dask arrays as tree reductions (``dask.array.reduction``).

Average: each chunk's float64 partial sums (cypool's global-sum kernel, never rounded to the
input's dtype), added in float64 up the tree, scaled by 1 / count at the root. Max: each chunk's
max, and with ``return_indices`` its argmax as a flat position over the whole array's reduced
axes; two candidates combine by the in-memory rule (the first NaN, else the larger value, ties
to the smaller position), which is associative, so the tree's shape never changes the result.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from cypool._adaptive import global_max_pool as _global_max_in_memory
from cypool._adaptive import global_partial_sums
from cypool._global_call import GlobalCall
from cypool._call import check_bool
from cypool._dtypes import ORDER_DTYPES, as_array, average_dtypes
from cypool.dask._args import as_dask_array, check_no_out, chunk_threads
from cypool.dask._blocks import as_records, global_flat_indices, record_dtype


def _checked(x: Any, axes: int | Sequence[int] | None, keepdims: bool,
             num_threads: int | None) -> tuple[da.Array, np.dtype[Any], tuple[int, ...], bool, int]:
    """The in-memory checks, run on a zero-stride probe of x's shape and dtype."""
    arr = as_dask_array(x)
    call = GlobalCall(np.broadcast_to(np.zeros((), arr.dtype), arr.shape), axes, keepdims)
    # Empty chunks of a reduced axis have no sum or max to give: merge them into their neighbours.
    empty = {a: tuple(n for n in arr.chunks[a] if n) for a in call.reduced if 0 in arr.chunks[a]}
    if empty:
        arr = arr.rechunk(empty)
    return arr, call.x.dtype, call.reduced, call.keepdims, chunk_threads(num_threads)


def global_avg_pool(
    x: Any,
    *,
    axes: int | Sequence[int] | None = None,
    keepdims: bool = False,
    out: None = None,
    num_threads: int | None = None,
) -> da.Array:
    """Lazy :func:`cypool.global_avg_pool` of a dask array: a tree of float64 partial sums.

    Arguments as for :func:`cypool.global_avg_pool`, except that ``out=`` is refused and
    ``num_threads`` counts threads per chunk task (None: one).

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> x = da.from_array(np.arange(16.).reshape(1, 1, 4, 4), chunks=(1, 1, 2, 3))
    >>> cypool.dask.global_avg_pool(x).compute()
    array([[7.5]])
    """
    check_no_out(out)
    x, dtype, reduced, keepdims, threads = _checked(x, axes, keepdims, num_threads)
    _, result_dtype = average_dtypes(dtype)
    count = int(np.prod([x.shape[a] for a in reduced]))

    def chunk_sums(block: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return global_partial_sums(as_array(block, "x", ORDER_DTYPES), axis, threads)

    def add(sums: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return np.sum(sums, axis=axis, keepdims=keepdims)

    def mean(sums: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return (add(sums, axis, keepdims) * (1.0 / count)).astype(result_dtype)

    return da.reduction(x, chunk_sums, mean, combine=add, axis=reduced, keepdims=keepdims,
                        dtype=result_dtype, concatenate=True,
                        meta=np.empty((0,) * (x.ndim if keepdims else x.ndim - len(reduced)),
                                      result_dtype))


def _better(value: np.ndarray, index: np.ndarray, best: np.ndarray,
            best_index: np.ndarray) -> np.ndarray:
    """Where (value, index) beats (best, best_index) by the in-memory max rule: NaN first,
    then the larger value, ties (and NaN against NaN) to the smaller flat position."""
    earlier = index < best_index
    if value.dtype.kind != "f":
        return (value > best) | ((value == best) & earlier)
    value_nan, best_nan = np.isnan(value), np.isnan(best)
    return (value_nan & (~best_nan | earlier)) | (
        ~value_nan & ~best_nan & ((value > best) | ((value == best) & earlier))
    )


def _max_records(records: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Combine (values, indices) records over `axis` with _better."""
    moved = np.moveaxis(records, axis, tuple(range(records.ndim - len(axis), records.ndim)))
    kept = records.ndim - len(axis)
    flat = moved.reshape(moved.shape[:kept] + (int(np.prod(moved.shape[kept:])),))
    best = flat[..., 0].copy()
    for j in range(1, flat.shape[-1]):
        candidate = flat[..., j]
        wins = _better(candidate["values"], candidate["indices"], best["values"], best["indices"])
        best[wins] = candidate[wins]
    return np.expand_dims(best, axis) if keepdims else best


def global_max_pool(
    x: Any,
    *,
    axes: int | Sequence[int] | None = None,
    keepdims: bool = False,
    return_indices: bool = False,
    out: None = None,
    num_threads: int | None = None,
) -> da.Array | tuple[da.Array, da.Array]:
    """Lazy :func:`cypool.global_max_pool` of a dask array: a tree of chunk maxima.

    Arguments as for :func:`cypool.global_max_pool`, except that ``out=`` is refused and
    ``num_threads`` counts threads per chunk task (None: one). Indices are flat positions over
    the whole array's reduced axes, as in memory.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> x = da.from_array(np.array([[[3, 9, 1, 9, 4]]]), chunks=2)
    >>> values, indices = cypool.dask.global_max_pool(x, return_indices=True)
    >>> values.compute(), indices.compute()
    (array([[9]]), array([[1]]))
    """
    check_no_out(out)
    x, dtype, reduced, keepdims, threads = _checked(x, axes, keepdims, num_threads)
    return_indices = check_bool(return_indices, "return_indices")
    kept_ndim = x.ndim if keepdims else x.ndim - len(reduced)

    if not return_indices:
        def chunk_max(block: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
            return _global_max_in_memory(block, axes=axis, keepdims=True, num_threads=threads)

        def combine_max(maxima: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
            return np.max(maxima, axis=axis, keepdims=keepdims)  # NaN propagates, as in memory

        return da.reduction(x, chunk_max, combine_max, axis=reduced, keepdims=keepdims,
                            dtype=dtype, concatenate=True,
                            meta=np.empty((0,) * kept_ndim, dtype))

    record = record_dtype(dtype)
    shape = tuple(x.shape[a] for a in reduced)

    def chunk_candidates(block: np.ndarray, block_info: dict[Any, Any]) -> np.ndarray:
        values, indices = _global_max_in_memory(block, axes=reduced, keepdims=True,
                                                return_indices=True, num_threads=threads)
        location = block_info[0]["array-location"]
        global_flat_indices(indices, tuple(block.shape[a] for a in reduced),
                            tuple(location[a][0] for a in reduced), shape)
        return as_records(values, indices)

    candidate_chunks = tuple(
        (1,) * len(c) if a in reduced else c for a, c in enumerate(x.chunks)
    )
    candidates = x.map_blocks(chunk_candidates, chunks=candidate_chunks, dtype=record,
                              meta=np.empty((0,) * x.ndim, record))
    best = da.reduction(candidates, _max_records, _max_records, combine=_max_records,
                        axis=reduced, keepdims=keepdims, dtype=record, concatenate=True,
                        meta=np.empty((0,) * kept_ndim, record))
    return best["values"], best["indices"]
