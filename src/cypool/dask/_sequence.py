"""Sequence pooling of dask arrays chunked along their batch (and feature) axes.

Rows are independent, so each chunk of rows is pooled on its own by the in-memory
``sequence_pool``; only the token axis must be whole in every chunk (it is rechunked to one
chunk when it is not). mask, lengths and scores follow h's batch chunks.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from cypool._call import check_bool
from cypool._dtypes import FLOAT_DTYPES
from cypool._sequence import sequence_pool as _sequence_pool_in_memory
from cypool._sequence_rows import SEQUENCE_MODES, check_mode
from cypool.dask._args import as_dask_array, check_no_out, checked_dtype, chunk_threads
from cypool.dask._blocks import as_records, record_dtype

_BATCH_LETTERS = "abcdefghijklmnopqrs"


def _probe(arr: da.Array | None, batch_ndim: int) -> np.ndarray | None:
    """A tiny array with arr's dtype and trailing axes and at most one row per batch axis:
    the in-memory function checks dtypes, modes and trailing sizes on these probes."""
    if arr is None:
        return None
    shape = tuple(min(n, 1) for n in arr.shape[:batch_ndim]) + tuple(arr.shape[batch_ndim:])
    return np.zeros(shape, arr.dtype)


def sequence_pool(
    h: Any,
    mask: Any = None,
    mode: str = "mean",
    *,
    lengths: Any = None,
    scores: Any = None,
    return_indices: bool = False,
    out: None = None,
    num_threads: int | None = None,
) -> da.Array | tuple[da.Array, da.Array]:
    """Lazy :func:`cypool.sequence_pool` of dask arrays chunked along their batch axes.

    Arguments as for :func:`cypool.sequence_pool` (``mask``, ``lengths`` and ``scores`` may be
    dask or NumPy arrays), except that ``out=`` is refused and ``num_threads`` counts threads
    per chunk task (None: one). Shapes, dtypes and the mode are checked at once; the values of
    ``lengths`` are checked chunk by chunk when the result is computed.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> h = da.from_array(np.arange(24.).reshape(2, 3, 4), chunks=(1, 3, 4))
    >>> cypool.dask.sequence_pool(h, lengths=np.array([2, 3]), mode="mean").compute()
    array([[ 2.,  3.,  4.,  5.],
           [16., 17., 18., 19.]])
    """
    check_no_out(out)
    h = as_dask_array(h, "h")
    dtype = checked_dtype(h.dtype, "h", FLOAT_DTYPES)
    if h.ndim < 2:
        raise ValueError(f"h must have shape (..., T, D), got shape {h.shape}")
    mode = check_mode(mode, SEQUENCE_MODES, "sequence_pool")
    return_indices = check_bool(return_indices, "return_indices")
    threads = chunk_threads(num_threads)
    batch = h.shape[:-2]
    nb = len(batch)
    if nb > len(_BATCH_LETTERS):
        raise ValueError(f"h may have at most {len(_BATCH_LETTERS)} batch axes in cypool.dask, "
                         f"got shape {h.shape}")
    extras = {"mask": mask, "lengths": lengths, "scores": scores}
    expected = {"mask": batch + h.shape[-2:-1], "lengths": batch, "scores": batch + h.shape[-2:-1]}
    arrays: dict[str, da.Array] = {}
    for name, value in extras.items():
        if value is None:
            continue
        arr = as_dask_array(value, name)
        if arr.shape != expected[name]:
            raise ValueError(f"{name} has shape {arr.shape}, expected {expected[name]}")
        arrays[name] = arr

    # Every rule but the values of lengths, checked now on row-sized probes.
    _sequence_pool_in_memory(
        _probe(h, nb), _probe(arrays.get("mask"), nb), mode,
        lengths=_probe(arrays.get("lengths"), nb), scores=_probe(arrays.get("scores"), nb),
        return_indices=return_indices, num_threads=threads,
    )

    batch_ind = _BATCH_LETTERS[:nb]
    h = h.rechunk({nb: -1})
    batch_chunks = h.chunks[:nb]
    names = list(arrays)
    operands: list[Any] = [h, batch_ind + "tf"]
    for name in names:
        arr = arrays[name]
        arr = arr.rechunk(batch_chunks + tuple((n,) for n in arr.shape[nb:]))
        operands += [arr, batch_ind + "t" * (arr.ndim - nb)]

    def pool_rows(h_block: np.ndarray, *blocks: np.ndarray) -> np.ndarray:
        given = dict(zip(names, blocks))
        pooled = _sequence_pool_in_memory(
            h_block, given.get("mask"), mode, lengths=given.get("lengths"),
            scores=given.get("scores"), return_indices=return_indices, num_threads=threads,
        )
        return as_records(*pooled) if return_indices else pooled

    record = record_dtype(dtype)
    result_dtype = record if return_indices else dtype
    pooled = da.blockwise(pool_rows, batch_ind + "f", *operands, dtype=result_dtype,
                          concatenate=True, meta=np.empty((0,) * (nb + 1), result_dtype))
    if return_indices:
        return pooled["values"], pooled["indices"]
    return pooled
