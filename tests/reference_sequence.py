"""Slow, obviously correct NumPy references for sequence pooling and segment pooling (forward and
backward), following ``shared/notes/sequence_semantics.md`` (binding) and ``API.md``
("Sequence pooling").

Like ``reference.py`` and ``reference_backward.py`` this shares no code with ``cypool``: every
function is a plain Python loop over rows (or segments), tokens and features, accumulating in
Python floats (float64) in token order, and returns float64 results (indices int64); callers
cast / compare with tolerances. Inputs are validated as the semantics ask (``TypeError`` for a
bad dtype, ``ValueError`` for a bad shape / value / mode), so the tests can also compare error
kinds.

Functions (argument names follow the API; no ``out`` / ``num_threads``)
------------------------------------------------------------------------
ref_token_weights(h_shape, mask=None, lengths=None) -> w (float64, shape h_shape[:-1])
ref_sequence_pool(h, mask=None, mode="mean", lengths=None, scores=None)
    -> (values float64 of shape h.shape[:-2] + (D,), indices int64 or None)
ref_sequence_coefficients(h_shape, mask=None, mode="mean", lengths=None, scores=None)
    -> c (float64, shape h_shape[:-1]): the coefficient of h[..., t, :] in the (linear) result of
       the modes sum, mean, mean_sqrt_len, weighted_mean, cls, last, attention
ref_sequence_pool_backward(g, h, mask=None, mode="mean", lengths=None, scores=None,
                           indices=None) -> grad_h, or (grad_h, grad_scores) for "attention"
ref_segment_pool(values, offsets=None, mode="mean", scores=None, *, segment_ids=None,
                 num_segments=None) -> (values float64 (B, D), indices int64 or None)
ref_segment_pool_backward(g, values, offsets=None, mode="mean", scores=None, indices=None, *,
                          segment_ids=None, num_segments=None)
    -> grad_values, or (grad_values, grad_scores) for "attention"
    Segments come from exactly one of ``offsets`` (B + 1 positions from 0 to N: segment b is
    rows offsets[b] .. offsets[b + 1] - 1) and ``segment_ids`` (segment b is the rows whose id
    is b, found by a loop over the rows: group by id, not through offsets).

Conventions (see ``test_reference_sequence.py`` for hand-computed cases):

* ``w_t`` is the mask value as a float64 number (1 without a mask; 1 for ``t < lengths``, else
  0 with ``lengths``); token ``t`` is valid iff ``w_t != 0``. Sums run over the valid tokens
  only, so an invalid token never contributes, not even a NaN / inf (``0 * inf`` never arises).
* max / min: the first NaN met wins and stays; otherwise only a strictly greater (smaller)
  value replaces the current best, so ties keep the first token. No valid token: 0, index -1.
* attention: ``a_t = exp(s_t - m) / sum_valid exp(s_u - m)`` with ``m`` the max over the valid
  scores; invalid tokens get ``a_t = 0``; the mask value does not weight.
* A row (segment) with no valid token gives zeros in every mode but "cls", and a zero gradient.
* Backward of the linear modes: ``grad_h[t] = c_t * g`` for the tokens that enter the result,
  exactly 0 for the others (invalid tokens, rows that gave zeros). "cls" is one-hot at token 0
  whatever the mask (its forward ignores the mask).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "SEQUENCE_MODES",
    "SEGMENT_MODES",
    "LINEAR_SEQUENCE_MODES",
    "ref_token_weights",
    "ref_sequence_pool",
    "ref_sequence_coefficients",
    "ref_sequence_pool_backward",
    "ref_segment_pool",
    "ref_segment_pool_backward",
]

FLOAT_DTYPES = tuple(np.dtype(d) for d in ("float16", "float32", "float64"))
SEQUENCE_MODES = ("sum", "mean", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
                  "attention")
SEGMENT_MODES = ("sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention")
LINEAR_SEQUENCE_MODES = ("sum", "mean", "mean_sqrt_len", "weighted_mean", "cls", "last",
                         "attention")


# ================================================================================ validation


def _check_float(a: np.ndarray, name: str) -> None:
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has unsupported dtype {a.dtype}")


def _check_mode(mode, modes) -> None:
    if not isinstance(mode, str) or mode not in modes:
        raise ValueError(f"unknown mode {mode!r}")


def _check_int_array(a: np.ndarray, name: str) -> None:
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")


def _check_sequence_args(h, mask, mode, lengths, scores):
    """Validated (h, mask, lengths, scores) as arrays (mask / lengths / scores may be None)."""
    h = np.asarray(h)
    if h.ndim < 2:
        raise ValueError(f"h must have at least 2 dims (..., T, D), got shape {h.shape}")
    _check_float(h, "h")
    _check_mode(mode, SEQUENCE_MODES)
    if mask is not None and lengths is not None:
        raise ValueError("give mask or lengths, not both")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype.kind not in "biuf":
            raise TypeError(f"mask has unsupported dtype {mask.dtype}")
        if mask.shape != h.shape[:-1]:
            raise ValueError(f"mask has shape {mask.shape}, expected {h.shape[:-1]}")
    if lengths is not None:
        lengths = np.asarray(lengths)
        _check_int_array(lengths, "lengths")
        if lengths.shape != h.shape[:-2]:
            raise ValueError(f"lengths has shape {lengths.shape}, expected {h.shape[:-2]}")
        T = h.shape[-2]
        for b in np.ndindex(*lengths.shape):
            v = int(lengths[b])
            if not 0 <= v <= T:
                raise ValueError(f"lengths value {v} outside [0, {T}]")
    if mode == "attention":
        if scores is None:
            raise ValueError("mode 'attention' needs scores")
        scores = np.asarray(scores)
        if scores.shape != h.shape[:-1]:
            raise ValueError(f"scores has shape {scores.shape}, expected {h.shape[:-1]}")
        if scores.dtype != h.dtype:
            raise TypeError(f"scores has dtype {scores.dtype}, expected {h.dtype}")
    elif scores is not None:
        raise ValueError(f"scores are only for mode 'attention', not {mode!r}")
    if mode == "cls" and h.shape[-2] == 0:
        raise ValueError("mode 'cls' needs T >= 1")
    return h, mask, lengths, scores


def _check_offsets(offsets, n: int) -> np.ndarray:
    offsets = np.asarray(offsets)
    _check_int_array(offsets, "offsets")
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be 1-D with at least 1 entry, got shape {offsets.shape}")
    prev = None
    for i in range(offsets.shape[0]):
        v = int(offsets[i])
        if v < 0 or v > n:
            raise ValueError(f"offsets value {v} outside [0, {n}]")
        if prev is not None and v < prev:
            raise ValueError(f"offsets must be non-decreasing, {v} follows {prev}")
        prev = v
    if int(offsets[0]) != 0 or int(offsets[-1]) != n:
        raise ValueError(f"offsets must run from 0 to N={n}, got {int(offsets[0])} to "
                         f"{int(offsets[-1])}")
    return offsets


def _check_segment_ids(segment_ids, n: int, num_segments):
    """(ids as a list of ints, B): ids non-decreasing in [0, B), B = num_segments or the
    last id + 1 (0 without rows)."""
    ids = np.asarray(segment_ids)
    _check_int_array(ids, "segment_ids")
    if ids.shape != (n,):
        raise ValueError(f"segment_ids must have shape ({n},), got {ids.shape}")
    if num_segments is not None:
        if isinstance(num_segments, (bool, np.bool_)) or not isinstance(num_segments,
                                                                       (int, np.integer)):
            raise TypeError(f"num_segments must be an int, got {num_segments!r}")
        if not 0 <= int(num_segments) < 2 ** 63:
            raise ValueError(f"num_segments {num_segments} outside [0, 2**63)")
    out = [int(x) for x in ids]
    for i, x in enumerate(out):
        if x < 0:
            raise ValueError(f"segment_ids value {x} is negative")
        if i and x < out[i - 1]:
            raise ValueError(f"segment_ids must be non-decreasing, {x} follows {out[i - 1]}")
        if num_segments is not None and x >= int(num_segments):
            raise ValueError(f"segment_ids value {x} not below num_segments={num_segments}")
    B = int(num_segments) if num_segments is not None else (out[-1] + 1 if out else 0)
    return out, B


def _segment_members(values, offsets, segment_ids, num_segments):
    """The rows of every segment, as a list of B lists of positions in values (in order)."""
    n = values.shape[0]
    if (offsets is None) == (segment_ids is None):
        raise ValueError("give exactly one of offsets and segment_ids")
    if segment_ids is None:
        if num_segments is not None:
            raise ValueError("num_segments goes with segment_ids")
        offsets = _check_offsets(offsets, n)
        return [list(range(int(offsets[b]), int(offsets[b + 1])))
                for b in range(offsets.shape[0] - 1)]
    ids, B = _check_segment_ids(segment_ids, n, num_segments)
    members = [[] for _ in range(B)]
    for row, b in enumerate(ids):
        members[b].append(row)
    return members


def _check_segment_args(values, offsets, mode, scores, segment_ids=None, num_segments=None):
    """(values, the rows of every segment, scores)."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (N, D), got shape {values.shape}")
    _check_float(values, "values")
    members = _segment_members(values, offsets, segment_ids, num_segments)
    _check_mode(mode, SEGMENT_MODES)
    if mode == "attention":
        if scores is None:
            raise ValueError("mode 'attention' needs scores")
        scores = np.asarray(scores)
        if scores.shape != (values.shape[0],):
            raise ValueError(f"scores has shape {scores.shape}, expected {(values.shape[0],)}")
        if scores.dtype != values.dtype:
            raise TypeError(f"scores has dtype {scores.dtype}, expected {values.dtype}")
    elif scores is not None:
        raise ValueError(f"scores are only for mode 'attention', not {mode!r}")
    return values, members, scores


def _check_grad(g, shape) -> np.ndarray:
    g = np.asarray(g)
    _check_float(g, "grad_output")
    if g.shape != tuple(shape):
        raise ValueError(f"grad_output has shape {g.shape}, expected {tuple(shape)}")
    return g


def _check_indices_array(indices, shape) -> np.ndarray:
    indices = np.asarray(indices)
    _check_int_array(indices, "indices")
    if indices.shape != tuple(shape):
        raise ValueError(f"indices has shape {indices.shape}, expected {tuple(shape)}")
    return indices


# ================================================================================ rows


def ref_token_weights(h_shape, mask=None, lengths=None) -> np.ndarray:
    """w_t of every token (shape h_shape[:-1], float64), by a loop over rows and tokens."""
    h_shape = tuple(h_shape)
    batch, T = h_shape[:-2], h_shape[-2]
    w = np.zeros(batch + (T,), dtype=np.float64)
    mask = None if mask is None else np.asarray(mask)
    lengths = None if lengths is None else np.asarray(lengths)
    for b in np.ndindex(*batch):
        for t in range(T):
            if mask is not None:
                w[b + (t,)] = float(mask[b + (t,)])
            elif lengths is not None:
                w[b + (t,)] = 1.0 if t < int(lengths[b]) else 0.0
            else:
                w[b + (t,)] = 1.0
    return w


def _softmax_valid(s_list, valid):
    """Attention weights over ``valid`` token positions (others 0), stable: shift by the max."""
    a = [0.0] * len(s_list)
    if not valid:
        return a
    m = max(s_list[t] for t in valid)
    e = {t: math.exp(s_list[t] - m) for t in valid}
    z = 0.0
    for t in valid:
        z += e[t]
    for t in valid:
        a[t] = e[t] / z
    return a


def _extreme(column, rows, greater: bool):
    """(value, index) of the max (``greater``) or min of ``column[t]`` over ``rows`` (in order):
    the first NaN wins and stays, ties keep the first; (0.0, -1) when ``rows`` is empty."""
    best, best_t = None, -1
    for t in rows:
        v = column[t]
        if best is None:
            best, best_t = v, t
        elif math.isnan(best):
            pass
        elif math.isnan(v):
            best, best_t = v, t
        elif (v > best) if greater else (v < best):
            best, best_t = v, t
    if best is None:
        return 0.0, -1
    return best, best_t


def _pool_rows(x, w, s, mode):
    """One row: x a list of T token vectors (lists of D Python floats), w the T weights, s the T
    scores or None. Returns (values list of D floats, indices list of D ints or None).

    ``mode`` names the row rule: the sequence modes, plus "first" (segments)."""
    T = len(x)
    D = len(x[0]) if T else None
    valid = [t for t in range(T) if w[t] != 0.0]
    indices = None

    def zeros(n):
        return [0.0] * n

    if mode in ("sum", "mean", "mean_sqrt_len"):
        W = 0.0
        for t in valid:
            W += w[t]
        S = None
        if D is not None:
            S = zeros(D)
            for d in range(D):
                for t in valid:
                    S[d] += w[t] * x[t][d]
        out = S
        if mode == "mean":
            out = None if S is None else ([v / W for v in S] if W != 0.0 else zeros(D))
        elif mode == "mean_sqrt_len":
            out = None if S is None else ([v / math.sqrt(W) for v in S] if W > 0.0 else zeros(D))
        return out, indices
    if mode == "weighted_mean":
        den = 0.0
        for t in valid:
            den += (t + 1) * w[t]
        if D is None:
            return None, None
        num = zeros(D)
        for d in range(D):
            for t in valid:
                num[d] += (t + 1) * w[t] * x[t][d]
        return ([v / den for v in num] if den != 0.0 else zeros(D)), None
    if mode in ("max", "min"):
        if D is None:
            return None, None
        vals, indices = [], []
        for d in range(D):
            column = [x[t][d] for t in range(T)]
            v, i = _extreme(column, valid, mode == "max")
            vals.append(v)
            indices.append(i)
        return vals, indices
    if mode in ("cls", "first"):
        if mode == "first" and not valid:
            return None, None
        return list(x[0]), None
    if mode == "last":
        if not valid:
            return None, None
        return list(x[valid[-1]]), None
    if mode == "attention":
        if not valid or D is None:
            return None, None
        a = _softmax_valid(s, valid)
        out = zeros(D)
        for d in range(D):
            for t in valid:
                out[d] += a[t] * x[t][d]
        return out, None
    raise AssertionError(mode)


def _row_coefficients(w, s, mode):
    """The coefficient c_t of each token of a row in a linear mode, and whether token t enters
    the result at all (``uses[t]``; a token that does not enter gets exactly 0 gradient)."""
    T = len(w)
    valid = [t for t in range(T) if w[t] != 0.0]
    c = [0.0] * T
    uses = [False] * T
    if mode == "sum":
        for t in valid:
            c[t], uses[t] = w[t], True
    elif mode in ("mean", "mean_sqrt_len"):
        W = 0.0
        for t in valid:
            W += w[t]
        if (W != 0.0) if mode == "mean" else (W > 0.0):
            div = W if mode == "mean" else math.sqrt(W)
            for t in valid:
                c[t], uses[t] = w[t] / div, True
    elif mode == "weighted_mean":
        den = 0.0
        for t in valid:
            den += (t + 1) * w[t]
        if den != 0.0:
            for t in valid:
                c[t], uses[t] = (t + 1) * w[t] / den, True
    elif mode in ("cls", "first"):
        if T and (mode == "cls" or valid):
            c[0], uses[0] = 1.0, True
    elif mode == "last":
        if valid:
            c[valid[-1]], uses[valid[-1]] = 1.0, True
    elif mode == "attention":
        a = _softmax_valid(s, valid)
        for t in valid:
            c[t], uses[t] = a[t], True
    else:
        raise AssertionError(mode)
    return c, uses


def _row_lists(h, b):
    """Row ``b`` of h as a list of T lists of D Python floats."""
    T, D = h.shape[-2], h.shape[-1]
    return [[float(h[b + (t, d)]) for d in range(D)] for t in range(T)]


# ================================================================================ sequence


def ref_sequence_pool(h, mask=None, mode="mean", lengths=None, scores=None):
    h, mask, lengths, scores = _check_sequence_args(h, mask, mode, lengths, scores)
    batch, T, D = h.shape[:-2], h.shape[-2], h.shape[-1]
    w_all = ref_token_weights(h.shape, mask, lengths)
    values = np.zeros(batch + (D,), dtype=np.float64)
    want_idx = mode in ("max", "min")
    indices = np.full(batch + (D,), -1, dtype=np.int64) if want_idx else None
    for b in np.ndindex(*batch):
        x = _row_lists(h, b)
        w = [float(w_all[b + (t,)]) for t in range(T)]
        s = None if scores is None else [float(scores[b + (t,)]) for t in range(T)]
        if D == 0:
            continue
        vals, idx = _pool_rows(x, w, s, mode)
        if vals is None:
            continue                        # no valid token: zeros (and -1)
        for d in range(D):
            values[b + (d,)] = vals[d]
            if want_idx:
                indices[b + (d,)] = idx[d]
    return values, indices


def ref_sequence_coefficients(h_shape, mask=None, mode="mean", lengths=None, scores=None):
    """c_t of every token for a linear mode (0 for tokens that do not enter the result)."""
    if mode not in LINEAR_SEQUENCE_MODES:
        raise ValueError(f"mode {mode!r} is not linear")
    h_shape = tuple(h_shape)
    batch, T = h_shape[:-2], h_shape[-2]
    w_all = ref_token_weights(h_shape, mask, lengths)
    c_all = np.zeros(batch + (T,), dtype=np.float64)
    for b in np.ndindex(*batch):
        w = [float(w_all[b + (t,)]) for t in range(T)]
        s = None if scores is None else [float(np.asarray(scores)[b + (t,)]) for t in range(T)]
        c, _ = _row_coefficients(w, s, mode)
        for t in range(T):
            c_all[b + (t,)] = c[t]
    return c_all


def ref_sequence_pool_backward(g, h, mask=None, mode="mean", lengths=None, scores=None,
                               indices=None):
    h, mask, lengths, scores = _check_sequence_args(h, mask, mode, lengths, scores)
    batch, T, D = h.shape[:-2], h.shape[-2], h.shape[-1]
    g = _check_grad(g, batch + (D,))
    grad = np.zeros(h.shape, dtype=np.float64)

    if mode in ("max", "min"):
        if indices is None:
            _, indices = ref_sequence_pool(h, mask, mode, lengths, None)
        indices = _check_indices_array(indices, batch + (D,))
        for b in np.ndindex(*batch):
            for d in range(D):
                t = int(indices[b + (d,)])
                if not -1 <= t < T:
                    raise ValueError(f"indices value {t} outside [-1, {T})")
                if t != -1:
                    grad[b + (t, d)] += float(g[b + (d,)])
        return grad
    if indices is not None:
        raise ValueError(f"indices are only for modes 'max' and 'min', not {mode!r}")

    w_all = ref_token_weights(h.shape, mask, lengths)
    grad_scores = np.zeros(batch + (T,), dtype=np.float64) if mode == "attention" else None
    for b in np.ndindex(*batch):
        w = [float(w_all[b + (t,)]) for t in range(T)]
        s = None if scores is None else [float(scores[b + (t,)]) for t in range(T)]
        c, uses = _row_coefficients(w, s, mode)
        gv = [float(g[b + (d,)]) for d in range(D)]
        for t in range(T):
            if uses[t]:
                for d in range(D):
                    grad[b + (t, d)] = c[t] * gv[d]
        if mode == "attention":
            x = _row_lists(h, b)
            dots = [0.0] * T
            for t in range(T):
                if uses[t]:
                    for d in range(D):
                        dots[t] += gv[d] * x[t][d]
            mean_dot = 0.0
            for t in range(T):
                if uses[t]:
                    mean_dot += c[t] * dots[t]
            for t in range(T):
                if uses[t]:
                    grad_scores[b + (t,)] = c[t] * (dots[t] - mean_dot)
    if mode == "attention":
        return grad, grad_scores
    return grad


# ================================================================================ segments


def _segment_rows(values, scores, rows):
    x = [[float(values[n, d]) for d in range(values.shape[1])] for n in rows]
    s = None if scores is None else [float(scores[n]) for n in rows]
    return x, s


def ref_segment_pool(values, offsets=None, mode="mean", scores=None, *, segment_ids=None,
                     num_segments=None):
    values, members, scores = _check_segment_args(values, offsets, mode, scores, segment_ids,
                                                  num_segments)
    N, D = values.shape
    B = len(members)
    out = np.zeros((B, D), dtype=np.float64)
    want_idx = mode in ("max", "min")
    indices = np.full((B, D), -1, dtype=np.int64) if want_idx else None
    for b, rows in enumerate(members):
        if not rows or D == 0:
            continue                        # empty segment: zeros, index -1
        x, s = _segment_rows(values, scores, rows)
        w = [1.0] * len(rows)
        vals, idx = _pool_rows(x, w, s, mode)
        for d in range(D):
            out[b, d] = vals[d]
            if want_idx:
                indices[b, d] = rows[idx[d]]            # absolute row in values
    return out, indices


def ref_segment_pool_backward(g, values, offsets=None, mode="mean", scores=None, indices=None, *,
                              segment_ids=None, num_segments=None):
    values, members, scores = _check_segment_args(values, offsets, mode, scores, segment_ids,
                                                  num_segments)
    N, D = values.shape
    B = len(members)
    g = _check_grad(g, (B, D))
    grad = np.zeros((N, D), dtype=np.float64)

    if mode in ("max", "min"):
        if indices is None:
            _, indices = ref_segment_pool(values, offsets, mode, segment_ids=segment_ids,
                                          num_segments=num_segments)
        indices = _check_indices_array(indices, (B, D))
        for b, rows in enumerate(members):
            for d in range(D):
                n = int(indices[b, d])
                if n == -1:
                    continue
                if n not in rows:
                    raise ValueError(f"indices value {n} outside segment {b} {rows}")
                grad[n, d] += float(g[b, d])
        return grad
    if indices is not None:
        raise ValueError(f"indices are only for modes 'max' and 'min', not {mode!r}")

    grad_scores = np.zeros(N, dtype=np.float64) if mode == "attention" else None
    for b, rows in enumerate(members):
        L = len(rows)
        if L == 0:
            continue
        s = None if scores is None else [float(scores[n]) for n in rows]
        c, uses = _row_coefficients([1.0] * L, s, mode)
        gv = [float(g[b, d]) for d in range(D)]
        for i, n in enumerate(rows):
            if uses[i]:
                for d in range(D):
                    grad[n, d] = c[i] * gv[d]
        if mode == "attention":
            dots = [0.0] * L
            for i, n in enumerate(rows):
                for d in range(D):
                    dots[i] += gv[d] * float(values[n, d])
            mean_dot = 0.0
            for i in range(L):
                mean_dot += c[i] * dots[i]
            for i, n in enumerate(rows):
                grad_scores[n] = c[i] * (dots[i] - mean_dot)
    if mode == "attention":
        return grad, grad_scores
    return grad
