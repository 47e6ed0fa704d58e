"""Argument rules shared by every cypool.dask function."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from cypool._dtypes import as_array
from cypool._errors import ParameterTypeError
from cypool._parallel import check_num_threads


def as_dask_array(x: Any, name: str = "x") -> da.Array:
    """x as a dask array (NumPy input becomes one chunk) of known shape."""
    arr = x if isinstance(x, da.Array) else da.asarray(x)
    if any(np.isnan(n) for n in arr.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {arr.shape}); call compute_chunk_sizes() first"
        )
    return arr


def checked_dtype(dtype: np.dtype[Any], name: str, supported: tuple[np.dtype[Any], ...]
                  ) -> np.dtype[Any]:
    """The dtype chunk tasks hand to the kernels: as_array's rules (supported dtypes, native
    byte order), applied once to the dtype alone."""
    return as_array(np.empty(0, dtype), name, supported).dtype


def check_no_out(out: object) -> None:
    """cypool.dask functions build new lazy arrays: there is nothing to write into."""
    if out is not None:
        raise ParameterTypeError(
            f"out is not supported by cypool.dask (results are new lazy dask arrays; store them "
            f"with dask.array.store or to_zarr), got out={type(out).__name__}"
        )


def chunk_threads(num_threads: object) -> int:
    """OpenMP threads per chunk task: dask already runs chunks in parallel, so None means 1."""
    checked = check_num_threads(num_threads)
    return 1 if checked is None else checked
