"""Dtype rules: what each op family accepts and computes in."""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = tuple(np.dtype(t) for t in ("float16", "float32", "float64"))
INT_DTYPES = tuple(
    np.dtype(t)
    for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
)
# Max/min-type ops keep the input dtype.
ORDER_DTYPES = FLOAT_DTYPES + INT_DTYPES
# Averaging ops accept integers too and return float64 for them.
AVERAGE_DTYPES = ORDER_DTYPES


def _names(dtypes) -> str:
    return ", ".join(d.name for d in dtypes)


def as_array(x, name: str, supported=ORDER_DTYPES) -> np.ndarray:
    """``np.asarray(x)`` with a supported dtype in native byte order (no copy when it already is)."""
    arr = np.asarray(x)
    dtype = arr.dtype
    if dtype.kind in "iuf" and not dtype.isnative:
        dtype = dtype.newbyteorder("=")
        arr = arr.astype(dtype)
    if dtype not in supported:
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which is not supported; supported dtypes: {_names(supported)}"
        )
    return arr


def order_compute_dtype(dtype: np.dtype) -> np.dtype:
    """Max/min kernels compute float16 in float32 and everything else as is."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def average_dtypes(dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(compute dtype, result dtype) of an averaging op for an input dtype."""
    if dtype == np.float16:
        return np.dtype(np.float32), dtype
    if dtype.kind in "iu":
        return np.dtype(np.float64), np.dtype(np.float64)
    return dtype, dtype


def lowest(dtype: np.dtype):
    """The value that loses every max comparison (padding never wins anyway; used for fills)."""
    if dtype.kind == "f":
        return -np.inf
    return np.iinfo(dtype).min
