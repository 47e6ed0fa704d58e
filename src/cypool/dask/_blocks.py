"""Positions of a chunk inside the whole array."""

from __future__ import annotations

import numpy as np


def global_flat_indices(indices: np.ndarray, local_shape: tuple[int, ...],
                        starts: tuple[int, ...], shape: tuple[int, ...]) -> None:
    """Turn flat row-major positions over a chunk's axes (sizes `local_shape`, starting at
    `starts` in the whole array) into flat positions over the whole array's axes (sizes
    `shape`), in place. Negative entries (no position) stay as they are."""
    valid = indices >= 0
    local = np.unravel_index(np.where(valid, indices, 0), local_shape)
    total = np.zeros_like(indices)
    for position, start, size in zip(local, starts, shape):
        total *= size
        total += position + start
    np.copyto(indices, total, where=valid)


def record_dtype(dtype: np.dtype) -> np.dtype:
    """Values and indices of one task travel as the two fields of one record array, so a
    single task computes both and dask can still hand them out as two arrays."""
    return np.dtype([("values", dtype), ("indices", np.int64)], align=True)


def as_records(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    records = np.empty(values.shape, record_dtype(values.dtype))
    records["values"], records["indices"] = values, indices
    return records
