"""Gradients of sequence and segment pooling.

Sum-type modes (sum, means, cls, first, last, attention) run ``spread_weighted``: every token
of a row gets the row's gradient times the token's forward coefficient, and exactly 0 when that
is 0. Max and min run ``spread_picked``: each feature's gradient goes to its argmax token, from
the user's indices (checked first) or recomputed by the forward kernel. Attention also needs
``d loss / d a_t = g . h_t`` (the ``token_dots`` kernel), from which the softmax backward,
one value per token, is done in NumPy. Rows never share tokens, so no two threads write the same
gradient element.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cypool._call import (
    INDEX_DTYPE,
    check_grad_output,
    copy_back,
    kernel_input,
    refuse_out_overlap,
    result_arrays,
)
from cypool._dtypes import order_compute_dtype
from cypool._facade import public
from cypool._kernels import window as _kernels
from cypool._parallel import check_num_threads, resolve_num_threads
from cypool._sequence import (
    kernel_target,
    pool_rows,
    row_table,
    token_array,
    token_table,
)
from cypool._sequence_rows import (
    EXTREME_MODES,
    SEGMENT_MODES,
    SEQUENCE_MODES,
    Rows,
    check_indices_mode,
    check_mode,
    check_scores,
    check_token_indices,
    segment_offsets,
    segment_rows,
    sequence_rows,
    token_weights,
)
from cypool._typing import ArrayPair, SegmentGradMode, SequenceGradMode


@overload
def sequence_pool_backward(grad_output: ArrayLike, h: ArrayLike, mask: ArrayLike | None = ...,
                           mode: SequenceGradMode = ..., *, lengths: ArrayLike | None = ...,
                           scores: ArrayLike | None = ..., indices: ArrayLike | None = ...,
                           out: NDArray[Any] | None = ...,
                           num_threads: int | None = ...) -> NDArray[Any]: ...
@overload
def sequence_pool_backward(grad_output: ArrayLike, h: ArrayLike, mask: ArrayLike | None,
                           mode: Literal["attention"], *, lengths: ArrayLike | None = ...,
                           scores: ArrayLike | None = ..., indices: ArrayLike | None = ...,
                           out: ArrayPair | None = ..., num_threads: int | None = ...) -> ArrayPair: ...
@overload
def sequence_pool_backward(grad_output: ArrayLike, h: ArrayLike, mask: ArrayLike | None = ..., *,
                           mode: Literal["attention"], lengths: ArrayLike | None = ...,
                           scores: ArrayLike | None = ..., indices: ArrayLike | None = ...,
                           out: ArrayPair | None = ..., num_threads: int | None = ...) -> ArrayPair: ...
@overload
def sequence_pool_backward(grad_output: ArrayLike, h: ArrayLike, mask: ArrayLike | None = ...,
                           mode: str = ..., *, lengths: ArrayLike | None = ...,
                           scores: ArrayLike | None = ..., indices: ArrayLike | None = ...,
                           out: NDArray[Any] | ArrayPair | None = ...,
                           num_threads: int | None = ...) -> NDArray[Any] | ArrayPair: ...
@public("h")
def sequence_pool_backward(grad_output: ArrayLike, h: ArrayLike, mask: ArrayLike | None = None,
                           mode: str = "mean", *, lengths: ArrayLike | None = None,
                           scores: ArrayLike | None = None, indices: ArrayLike | None = None,
                           out: NDArray[Any] | ArrayPair | None = None,
                           num_threads: int | None = None) -> NDArray[Any] | ArrayPair:
    """Gradient of :func:`sequence_pool` with respect to ``h`` (and ``scores`` for attention).

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64, shape (..., D)
        Gradient of the loss with respect to the pooled result.
    h, mask, mode, lengths, scores
        The forward call's arguments.
    indices : array_like of ints, shape (..., D), optional
        For "max" and "min": the forward's indices (-1: no gradient); recomputed from h when
        not given.
    out : ndarray, or (ndarray, ndarray) for "attention", optional
    num_threads : int, optional

    Returns
    -------
    grad_h : ndarray of h's shape and grad_output's dtype, or (grad_h, grad_scores) for
    mode "attention" (grad_scores of scores' shape). Invalid tokens get 0.

    Raises
    ------
    TypeError, ValueError
        As :func:`sequence_pool`, plus a grad_output of the wrong shape and indices of the
        wrong shape or outside [-1, T).

    Examples
    --------
    >>> import numpy as np, cypool
    >>> h = np.zeros((1, 3, 2))
    >>> cypool.sequence_pool_backward(np.ones((1, 2)), h, np.array([[1, 1, 0]]), mode="mean")
    array([[[0.5, 0.5],
            [0.5, 0.5],
            [0. , 0. ]]])
    """
    refuse_out_overlap(out, grad_output, h, mask, lengths, scores, indices)
    h = token_array(h, "h")
    mode = check_mode(mode, SEQUENCE_MODES, "sequence_pool_backward")
    check_indices_mode(mode, indices is not None, "indices")
    check_num_threads(num_threads)
    batch, ntokens, nfeat = h.shape[:-2], h.shape[-2], h.shape[-1]
    g = check_grad_output(grad_output, batch + (nfeat,))
    w = token_weights(mask, lengths, batch, ntokens)
    s = check_scores(scores, mode, h.shape[:-1], h.dtype, "h")
    if mode == "cls" and ntokens == 0:
        raise ValueError(f"mode 'cls' takes token 0, but h has shape {h.shape}: no tokens")
    rows = sequence_rows(w, mode, s)
    idx = None if indices is None else check_token_indices(indices, g.shape, rows)
    results = _results(g, h, h.shape[:-1], mode, out, [g, mask, lengths, scores, indices])
    dots = _spread(g, h, len(batch), rows, mode, idx, results[0], num_threads)
    if dots is None:  # every mode but attention
        return results[0]
    a = rows.coef.reshape(h.shape[:-1])
    d = dots.reshape(h.shape[:-1])
    np.copyto(results[1], a * (d - (a * d).sum(axis=-1, keepdims=True)), casting="unsafe")
    return results[0], results[1]


@overload
def segment_pool_backward(grad_output: ArrayLike, values: ArrayLike,
                          offsets: ArrayLike | None = ...,
                          mode: SegmentGradMode = ..., *, segment_ids: ArrayLike | None = ...,
                          num_segments: int | None = ..., scores: ArrayLike | None = ...,
                          indices: ArrayLike | None = ..., out: NDArray[Any] | None = ...,
                          num_threads: int | None = ...) -> NDArray[Any]: ...
@overload
def segment_pool_backward(grad_output: ArrayLike, values: ArrayLike, offsets: ArrayLike | None,
                          mode: Literal["attention"], *, segment_ids: ArrayLike | None = ...,
                          num_segments: int | None = ..., scores: ArrayLike | None = ...,
                          indices: ArrayLike | None = ..., out: ArrayPair | None = ...,
                          num_threads: int | None = ...) -> ArrayPair: ...
@overload
def segment_pool_backward(grad_output: ArrayLike, values: ArrayLike,
                          offsets: ArrayLike | None = ...,
                          *, mode: Literal["attention"], segment_ids: ArrayLike | None = ...,
                          num_segments: int | None = ..., scores: ArrayLike | None = ...,
                          indices: ArrayLike | None = ..., out: ArrayPair | None = ...,
                          num_threads: int | None = ...) -> ArrayPair: ...
@overload
def segment_pool_backward(grad_output: ArrayLike, values: ArrayLike,
                          offsets: ArrayLike | None = ...,
                          mode: str = ..., *, segment_ids: ArrayLike | None = ...,
                          num_segments: int | None = ..., scores: ArrayLike | None = ...,
                          indices: ArrayLike | None = ..., out: NDArray[Any] | ArrayPair | None = ...,
                          num_threads: int | None = ...) -> NDArray[Any] | ArrayPair: ...
@public("num_segments", "values")
def segment_pool_backward(grad_output: ArrayLike, values: ArrayLike,
                          offsets: ArrayLike | None = None,
                          mode: str = "mean", *, segment_ids: ArrayLike | None = None,
                          num_segments: int | None = None, scores: ArrayLike | None = None,
                          indices: ArrayLike | None = None,
                          out: NDArray[Any] | ArrayPair | None = None,
                          num_threads: int | None = None) -> NDArray[Any] | ArrayPair:
    """Gradient of :func:`segment_pool` with respect to ``values`` (and ``scores`` for
    attention).

    Parameters
    ----------
    grad_output : array_like, float16, float32 or float64, shape (B, D)
    values, offsets, mode, segment_ids, num_segments, scores
        The forward call's arguments: exactly one of ``offsets`` (B + 1 positions from 0 to N)
        and ``segment_ids`` (one non-decreasing id in [0, num_segments) per row).
    indices : array_like of ints, shape (B, D), optional
        For "max" and "min": the forward's indices, each -1 or a position of its own segment;
        recomputed from values when not given.
    out : ndarray, or (ndarray, ndarray) for "attention", optional
    num_threads : int, optional

    Returns
    -------
    grad_values : ndarray of values' shape and grad_output's dtype, or (grad_values,
    grad_scores) for mode "attention" (grad_scores of shape (N,)).

    Raises
    ------
    TypeError, ValueError
        As :func:`segment_pool`, plus a grad_output of the wrong shape and indices outside
        their segment.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> values = np.array([[1.0], [5.0], [3.0]])
    >>> cypool.segment_pool_backward(np.array([[1.0], [2.0]]), values, [0, 2, 3], mode="max")
    array([[0.],
           [1.],
           [2.]])
    >>> cypool.segment_pool_backward(np.array([[1.0], [2.0]]), values, mode="max",
    ...                              segment_ids=[0, 0, 1])
    array([[0.],
           [1.],
           [2.]])
    """
    refuse_out_overlap(out, grad_output, values, offsets, segment_ids, scores, indices)
    values = token_array(values, "values", exact_ndim=True)
    mode = check_mode(mode, SEGMENT_MODES, "segment_pool_backward")
    check_indices_mode(mode, indices is not None, "indices")
    check_num_threads(num_threads)
    ntokens, nfeat = values.shape
    off = segment_offsets(offsets, segment_ids, num_segments, values.shape)
    g = check_grad_output(grad_output, (off.shape[0] - 1, nfeat))
    s = check_scores(scores, mode, (ntokens,), values.dtype, "values")
    rows = segment_rows(off, ntokens, mode, s)
    idx = None if indices is None else check_token_indices(indices, g.shape, rows)
    results = _results(g, values, (ntokens,), mode, out,
                       [g, offsets, segment_ids, scores, indices])
    dots = _spread(g, values, 0, rows, mode, idx, results[0], num_threads)
    if dots is None:  # every mode but attention
        return results[0]
    # The segments tile [0, N): softmax backward per segment, a_t (dot_t - sum_u a_u dot_u).
    a = rows.coef
    nonempty = rows.stop > rows.start
    row_of = np.repeat(np.arange(rows.count)[nonempty], (rows.stop - rows.start)[nonempty])
    totals = np.zeros(rows.count)
    if ntokens:
        totals[nonempty] = np.add.reduceat(a * dots, rows.start[nonempty])
    np.copyto(results[1], a * (dots - totals[row_of]), casting="unsafe")
    return results[0], results[1]


# ---------------------------------------------------------------------------------- plumbing

def _results(g: NDArray[Any], tokens: NDArray[Any], weights_shape: tuple[int, ...], mode: str,
             out: NDArray[Any] | ArrayPair | None, others: list[Any]) -> list[NDArray[Any]]:
    """grad_tokens (tokens' shape, g's dtype), plus grad_scores for attention."""
    shapes = [(tokens.shape, g.dtype)]
    names = ["out"]
    if mode == "attention":
        shapes.append((tuple(weights_shape), g.dtype))
        names = ["out[0]", "out[1]"]
    return result_arrays(tokens, out, shapes, names, [o for o in others if o is not None],
                         pair="(grad, grad_scores) for mode='attention'")


def _spread(g: NDArray[Any], tokens: NDArray[Any], nbatch: int, rows: Rows, mode: str,
            indices: NDArray[Any] | None, grad_tokens: NDArray[Any],
            num_threads: int | None) -> NDArray[np.float64] | None:
    """Write the tokens' gradient into grad_tokens; return the float64 dots g . h_t (in the
    coefficient table's layout) for attention, else None. Max/min `indices` are the user's,
    already checked, or None (recomputed here)."""
    compute = order_compute_dtype(g.dtype)
    gk = kernel_input(g, compute)
    target = kernel_target(grad_tokens, compute)
    dots = np.zeros(rows.coef.shape[0]) if mode == "attention" else None
    nfeat = tokens.shape[-1]
    if rows.count and nfeat:
        threads = resolve_num_threads(num_threads, 2 * target.nbytes)
        grad_row, grad_at = row_table(gk)
        plane, plane_at = token_table(target, nbatch, rows.count)
        if mode in EXTREME_MODES:
            if indices is None:
                _, indices = pool_rows(tokens, nbatch, rows, mode, gk.shape, True, None,
                                       num_threads, [])
            idx_row, idx_at = row_table(kernel_input(indices, INDEX_DTYPE))
            _kernels.spread_picked(grad_row, grad_at, idx_row, idx_at, rows.start, rows.stop,
                                   plane, plane_at, threads)
        else:
            _kernels.spread_weighted(grad_row, grad_at, rows.coef, rows.coef_at, rows.start,
                                     rows.stop, rows.scale, plane, plane_at, threads)
        if dots is not None:
            hk = kernel_input(tokens, compute)
            h_plane, h_at = token_table(hk, nbatch, rows.count)
            _kernels.token_dots(grad_row, grad_at, h_plane, h_at, rows.coef, rows.coef_at,
                                rows.start, rows.stop, dots, threads)
    else:
        target[...] = 0
    copy_back([grad_tokens], [target])
    return dots

