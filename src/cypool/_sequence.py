"""Sequence pooling of token embeddings ``(..., T, D)`` and segment pooling of packed ragged
sequences ``(N, D)``: the forward facades.

Both validate in Python, turn the call into row tables (cypool._sequence_rows), allocate the
results, then run one of two kernels: ``weighted_sum`` (sum, means, attention, cls, first,
last) or ``extreme`` (max, min). Arrays with batch axes reach the kernels as their first plane
plus one element offset per row, so every batch layout is read in place.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cypool._call import (
    INDEX_DTYPE,
    check_bool,
    copy_back,
    kernel_input,
    refuse_out_overlap,
    result_arrays,
)
from cypool._dtypes import FLOAT_DTYPES, as_array, order_compute_dtype
from cypool._facade import public
from cypool._kernels import window as _kernels
from cypool._layout import element_strides_ok
from cypool._parallel import check_num_threads, resolve_num_threads
from cypool._sequence_rows import (
    EXTREME_MODES,
    SEGMENT_MODES,
    SEQUENCE_MODES,
    Rows,
    check_indices_mode,
    check_mode,
    check_scores,
    segment_offsets,
    segment_rows,
    sequence_rows,
    token_weights,
)
from cypool._typing import ArrayPair


@overload
def sequence_pool(h: ArrayLike, mask: ArrayLike | None = ..., mode: str = ..., *,
                  lengths: ArrayLike | None = ..., scores: ArrayLike | None = ...,
                  return_indices: Literal[False] = ..., out: NDArray[Any] | None = ...,
                  num_threads: int | None = ...) -> NDArray[Any]: ...
@overload
def sequence_pool(h: ArrayLike, mask: ArrayLike | None = ..., mode: str = ..., *,
                  lengths: ArrayLike | None = ..., scores: ArrayLike | None = ...,
                  return_indices: Literal[True], out: ArrayPair | None = ...,
                  num_threads: int | None = ...) -> ArrayPair: ...
@overload
def sequence_pool(h: ArrayLike, mask: ArrayLike | None = ..., mode: str = ..., *,
                  lengths: ArrayLike | None = ..., scores: ArrayLike | None = ...,
                  return_indices: bool = ..., out: NDArray[Any] | ArrayPair | None = ...,
                  num_threads: int | None = ...) -> NDArray[Any] | ArrayPair: ...
@public("h")
def sequence_pool(h: ArrayLike, mask: ArrayLike | None = None, mode: str = "mean", *,
                  lengths: ArrayLike | None = None, scores: ArrayLike | None = None,
                  return_indices: bool = False, out: NDArray[Any] | ArrayPair | None = None,
                  num_threads: int | None = None) -> NDArray[Any] | ArrayPair:
    """Pool token embeddings ``h`` of shape ``(..., T, D)`` over their tokens into ``(..., D)``.

    Parameters
    ----------
    h : array_like, float16, float32 or float64, shape (..., T, D)
        Token embeddings: any batch axes, then tokens, then features.
    mask : array_like of shape (..., T), optional
        bool, integer or float; token t is valid where it is non-zero, and a float mask weighs
        the tokens of the sum and mean modes. None: every token is valid.
    mode : str
        "mean", "sum", "mean_sqrt_len", "weighted_mean" (weights (t + 1) * mask), "max", "min",
        "cls" (token 0 whatever the mask), "last" (the last valid token) or "attention"
        (softmax of ``scores`` over the valid tokens).
    lengths : array_like of ints, shape (...), optional
        Instead of a mask: the first ``lengths`` tokens of each row are valid.
    scores : array_like of shape (..., T) and h's dtype
        Attention scores; required for mode "attention", refused otherwise.
    return_indices : bool
        For "max" and "min": also return the token index per feature (int64, -1 for a row
        without valid tokens).
    out : ndarray or (ndarray, ndarray), optional
        Preallocated result(s).
    num_threads : int, optional
        Threads to use; None follows OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).

    Returns
    -------
    ndarray of shape (..., D) and h's dtype, or (values, indices) with ``return_indices``.
    A row without a valid token gives zeros (mode "cls" excepted).

    Raises
    ------
    TypeError
        Unsupported dtypes of h, mask, lengths, scores.
    ValueError
        Bad shapes, lengths out of [0, T], mask and lengths together, unknown mode, scores
        missing or not allowed, bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> h = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    >>> cypool.sequence_pool(h, np.array([[1, 1, 0]]), mode="mean")
    array([[2., 3., 4., 5.]], dtype=float32)
    >>> cypool.sequence_pool(h, lengths=np.array([2]), mode="last")
    array([[4., 5., 6., 7.]], dtype=float32)
    """
    refuse_out_overlap(out, h, mask, lengths, scores)
    h = token_array(h, "h")
    mode = check_mode(mode, SEQUENCE_MODES, "sequence_pool")
    return_indices = check_bool(return_indices, "return_indices")
    check_indices_mode(mode, return_indices, "return_indices")
    check_num_threads(num_threads)
    batch, ntokens, nfeat = h.shape[:-2], h.shape[-2], h.shape[-1]
    w = token_weights(mask, lengths, batch, ntokens)
    s = check_scores(scores, mode, h.shape[:-1], h.dtype, "h")
    if mode == "cls" and ntokens == 0:
        raise ValueError(f"mode 'cls' takes token 0, but h has shape {h.shape}: no tokens")
    rows = sequence_rows(w, mode, s)
    return pool_rows(h, len(batch), rows, mode, batch + (nfeat,), return_indices, out,
                     num_threads, [mask, lengths, scores])


@overload
def segment_pool(values: ArrayLike, offsets: ArrayLike | None = ..., mode: str = ..., *,
                 segment_ids: ArrayLike | None = ..., num_segments: int | None = ...,
                 scores: ArrayLike | None = ..., return_indices: Literal[False] = ...,
                 out: NDArray[Any] | None = ..., num_threads: int | None = ...) -> NDArray[Any]: ...
@overload
def segment_pool(values: ArrayLike, offsets: ArrayLike | None = ..., mode: str = ..., *,
                 segment_ids: ArrayLike | None = ..., num_segments: int | None = ...,
                 scores: ArrayLike | None = ..., return_indices: Literal[True],
                 out: ArrayPair | None = ..., num_threads: int | None = ...) -> ArrayPair: ...
@overload
def segment_pool(values: ArrayLike, offsets: ArrayLike | None = ..., mode: str = ..., *,
                 segment_ids: ArrayLike | None = ..., num_segments: int | None = ...,
                 scores: ArrayLike | None = ..., return_indices: bool = ...,
                 out: NDArray[Any] | ArrayPair | None = ...,
                 num_threads: int | None = ...) -> NDArray[Any] | ArrayPair: ...
@public("num_segments", "values")
def segment_pool(values: ArrayLike, offsets: ArrayLike | None = None, mode: str = "mean", *,
                 segment_ids: ArrayLike | None = None, num_segments: int | None = None,
                 scores: ArrayLike | None = None, return_indices: bool = False,
                 out: NDArray[Any] | ArrayPair | None = None,
                 num_threads: int | None = None) -> NDArray[Any] | ArrayPair:
    """Pool packed ragged sequences (no padding): segment b of ``values`` (N, D) is
    ``values[offsets[b]:offsets[b + 1]]``; the result is (B, D).

    The segments are given by ``offsets`` or by ``segment_ids``, exactly one of the two.

    Parameters
    ----------
    values : array_like, float16, float32 or float64, shape (N, D)
    offsets : array_like of ints, shape (B + 1,)
        Non-decreasing positions with ``offsets[0] == 0`` and ``offsets[-1] == N``, as CSR's
        ``indptr`` or FlashAttention's ``cu_seqlens``.
    mode : str
        "sum", "mean", "mean_sqrt_len", "max", "min", "first", "last" or "attention" (softmax
        of ``scores`` within each segment).
    segment_ids : array_like of ints, shape (N,), optional
        Instead of ``offsets``: the segment of each row, non-decreasing, in
        ``[0, num_segments)`` (as torch_scatter, PyG's ``batch``, JAX and TensorFlow give
        them). Segment b is the rows whose id is b.
    num_segments : int, optional
        B, with ``segment_ids`` only; defaults to ``segment_ids[-1] + 1`` (0 when N == 0).
        Segments past the last id are empty.
    scores : array_like of shape (N,) and values' dtype
        Required for mode "attention", refused otherwise.
    return_indices : bool
        For "max" and "min": also return, per feature, the position in ``values`` of the
        extreme (int64, -1 for an empty segment).
    out, num_threads
        As for :func:`sequence_pool`.

    Returns
    -------
    ndarray of shape (B, D) and values' dtype, or (values, indices) with ``return_indices``.
    An empty segment gives zeros.

    Raises
    ------
    TypeError
        Unsupported dtypes of values, offsets, segment_ids, scores.
    ValueError
        values not 2-D; offsets not 1-D, decreasing, or not from 0 to N (segment ids passed as
        offsets end at B - 1); segment_ids not of shape (N,), decreasing, negative or not below
        num_segments; num_segments not an int >= 0; both or neither of offsets and
        segment_ids; num_segments without segment_ids; unknown mode, scores missing or not
        allowed, bad out=.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> values = np.array([[1.0], [2.0], [3.0], [10.0]])
    >>> cypool.segment_pool(values, [0, 3, 3, 4], mode="mean")
    array([[ 2.],
           [ 0.],
           [10.]])
    >>> cypool.segment_pool(values, segment_ids=[0, 0, 0, 2], mode="mean")
    array([[ 2.],
           [ 0.],
           [10.]])
    """
    refuse_out_overlap(out, values, offsets, segment_ids, scores)
    values = token_array(values, "values", exact_ndim=True)
    mode = check_mode(mode, SEGMENT_MODES, "segment_pool")
    return_indices = check_bool(return_indices, "return_indices")
    check_indices_mode(mode, return_indices, "return_indices")
    check_num_threads(num_threads)
    ntokens, nfeat = values.shape
    off = segment_offsets(offsets, segment_ids, num_segments, values.shape)
    s = check_scores(scores, mode, (ntokens,), values.dtype, "values")
    rows = segment_rows(off, ntokens, mode, s)
    return pool_rows(values, 0, rows, mode, (rows.count, nfeat), return_indices, out,
                     num_threads, [offsets, segment_ids, scores])


# ---------------------------------------------------------------------------------- plumbing

def token_array(arr: ArrayLike, name: str, exact_ndim: bool = False) -> NDArray[Any]:
    """A float token table: (N, D) when exact_ndim, else (..., T, D)."""
    a = as_array(arr, name, FLOAT_DTYPES)
    if (a.ndim != 2) if exact_ndim else (a.ndim < 2):
        want = "2-D (N, D)" if exact_ndim else "at least 2-D (..., T, D)"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    return a


def row_offsets(arr: NDArray[Any], nbatch: int) -> NDArray[np.int64]:
    """Element offset of every index of arr's first `nbatch` axes, in C order (int64)."""
    offsets = np.zeros(1, dtype=INDEX_DTYPE)
    for size, stride in zip(arr.shape[:nbatch], arr.strides[:nbatch]):
        steps = np.arange(size, dtype=INDEX_DTYPE) * (stride // arr.itemsize)
        offsets = (offsets[:, None] + steps).reshape(-1)
    return offsets


def token_table(tokens: NDArray[Any], nbatch: int, nrows: int) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """(first token plane, per-row plane offsets): planes per row for a padded batch, one
    shared plane (offset 0) for packed segments (nbatch == 0)."""
    if nbatch == 0:
        return tokens, np.zeros(nrows, dtype=INDEX_DTYPE)
    return tokens[(0,) * nbatch], row_offsets(tokens, nbatch)


def row_table(arr: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """(first row, per-row offsets) of a per-row array (..., D)."""
    nbatch = arr.ndim - 1
    return arr[(0,) * nbatch], row_offsets(arr, nbatch)


def kernel_target(result: NDArray[Any], dtype: Any) -> NDArray[Any]:
    """Where a kernel writes `result`: itself, or a temporary when its dtype or strides do
    not suit the kernels (copied back by copy_back; every kernel writes all of it)."""
    if result.dtype == dtype and element_strides_ok(result):
        return result
    return np.empty(result.shape, dtype=dtype)


def pool_rows(tokens: NDArray[Any], nbatch: int, rows: Rows, mode: str, result_shape: tuple[int, ...],
              return_indices: bool, out: NDArray[Any] | ArrayPair | None, num_threads: int | None,
              others: list[Any]) -> NDArray[Any] | ArrayPair:
    """Run the forward kernel of `mode` over the rows and return the user's result(s)."""
    compute = order_compute_dtype(tokens.dtype)
    shapes = [(result_shape, tokens.dtype)]
    if return_indices:
        shapes.append((result_shape, INDEX_DTYPE))
    results = result_arrays(tokens, out, shapes, ["out[0]", "out[1]"] if return_indices else ["out"],
                            [o for o in others if o is not None])
    tk = kernel_input(tokens, compute)
    targets = [kernel_target(r, dt) for r, dt in zip(results, (compute, INDEX_DTYPE))]
    if rows.count and result_shape[-1]:
        threads = resolve_num_threads(num_threads, tk.nbytes + targets[0].nbytes)
        plane, plane_at = token_table(tk, nbatch, rows.count)
        row, row_at = row_table(targets[0])
        if mode in EXTREME_MODES:
            idx, idx_at = row_table(targets[1]) if return_indices else (None, row_at)
            _kernels.extreme(plane, plane_at, rows.coef, rows.coef_at, rows.start, rows.stop,
                             row, row_at, idx, idx_at, mode == "min", threads)
        else:
            _kernels.weighted_sum(plane, plane_at, rows.coef, rows.coef_at, rows.start, rows.stop,
                                  rows.scale, row, row_at, threads)
    copy_back(results, targets)
    return (results[0], results[1]) if return_indices else results[0]
