"""Sequence and segment pooling geometry: checked masks, lengths, scores, offsets (or segment ids,
turned into offsets) and indices, turned into the row tables every sequence kernel reads (see
_sequence_impl.pxi).

Output row r reduces tokens ``[start[r], stop[r])``, token t weighted by
``coef[coef_at[r] + t]`` (0: not valid, never read), and its sum is scaled by ``scale[r]``. Every
mode is a choice of coefficients and scales: mask weights for sum and mean, position weights
for weighted_mean, a softmax for attention, a one-hot pick for cls, first and last. Pure Python
and NumPy on arrays of one value per token or per row, never per feature.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from cypool._call import INDEX_DTYPE
from cypool._geometry import MAX_ELEMENTS
from cypool._errors import ParameterTypeError

SEQUENCE_MODES = ("mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
                  "attention")
SEGMENT_MODES = ("sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention")
EXTREME_MODES = ("max", "min")


@dataclass(frozen=True)
class Rows:
    """Row tables of one call: int64 start/stop/coef_at and float64 scale per row, and the
    float64 coefficient table."""

    start: np.ndarray
    stop: np.ndarray
    coef: np.ndarray
    coef_at: np.ndarray
    scale: np.ndarray

    @property
    def count(self) -> int:
        return self.start.shape[0]


# ------------------------------------------------------------------------------------ checks

def check_mode(mode, modes, function: str) -> str:
    if not isinstance(mode, str) or mode not in modes:
        raise ValueError(f"mode must be one of {', '.join(map(repr, modes))} for {function}, "
                         f"got mode={mode!r}")
    return mode


def check_indices_mode(mode: str, wants_indices: bool, name: str) -> None:
    if wants_indices and mode not in EXTREME_MODES:
        raise ValueError(f"{name} is only for mode 'max' or 'min', got mode={mode!r}")


def token_weights(mask, lengths, batch_shape, ntokens: int) -> np.ndarray:
    """Per-token weights w (float64, batch_shape + (ntokens,)) from a mask or lengths; ones
    when neither is given. Token t is valid where w != 0."""
    shape = tuple(batch_shape) + (ntokens,)
    if mask is not None and lengths is not None:
        raise ValueError("give mask or lengths, not both (got both mask= and lengths=)")
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype.kind not in "biuf":
            raise TypeError(f"mask has dtype {m.dtype}, which is not supported; "
                            "supported: bool, integer and float dtypes")
        if m.shape != shape:
            raise ValueError(f"mask has shape {m.shape}, expected {shape} (h.shape[:-1])")
        return m.astype(np.float64)
    if lengths is not None:
        n = _integer_array(lengths, "lengths")
        if n.shape != tuple(batch_shape):
            raise ValueError(f"lengths has shape {n.shape}, expected {tuple(batch_shape)} "
                             "(h.shape[:-2])")
        if n.size and (n.min() < 0 or n.max() > ntokens):
            bad = n.min() if n.min() < 0 else n.max()
            raise ValueError(f"lengths holds {int(bad)}, outside [0, {ntokens}] (the number of "
                             "tokens, h.shape[-2])")
        return (np.arange(ntokens) < n[..., None]).astype(np.float64)
    return np.ones(shape, dtype=np.float64)


def check_scores(scores, mode: str, shape, dtype, like: str) -> np.ndarray | None:
    """Attention scores as float64: required for mode 'attention', refused otherwise."""
    if mode != "attention":
        if scores is not None:
            raise ValueError(f"scores is only for mode 'attention', got mode={mode!r}")
        return None
    if scores is None:
        raise ValueError("mode 'attention' needs scores=, got scores=None")
    s = np.asarray(scores)
    if s.dtype.newbyteorder("=") != dtype:
        raise TypeError(f"scores has dtype {s.dtype}; it must have the dtype of {like}, {dtype}")
    if s.shape != tuple(shape):
        raise ValueError(f"scores has shape {s.shape}, expected {tuple(shape)}")
    return s.astype(np.float64)


def check_offsets(offsets, ntokens: int) -> np.ndarray:
    """Segment offsets as int64: 1-D, at least one, non-decreasing, from 0 to ntokens (N)."""
    off = _integer_array(offsets, "offsets")
    if off.ndim != 1 or off.size == 0:
        raise ValueError(f"offsets must be a 1-D array of B + 1 >= 1 positions, got shape {off.shape}")
    b = _first_decrease(off)
    if b is not None:
        raise ValueError(f"offsets must be non-decreasing, got offsets[{b}]={int(off[b])} > "
                         f"offsets[{b + 1}]={int(off[b + 1])}")
    if off[0] != 0 or off[-1] != ntokens:
        # Segment ids passed as offsets are non-decreasing too, but end at B - 1, not at N.
        hint = "; one segment id per row goes to segment_ids=" if off.shape[0] == ntokens else ""
        raise ValueError(f"offsets must start at 0 and end at N={ntokens} (values.shape[0]), "
                         f"got offsets[0]={int(off[0])}, offsets[-1]={int(off[-1])}{hint}")
    return off


def segment_offsets(offsets, segment_ids, num_segments, values_shape) -> np.ndarray:
    """The checked int64 offsets (B + 1,) of a segment call on values of ``values_shape``
    (N, D), given as ``offsets`` or as ``segment_ids``: one non-decreasing id in
    [0, num_segments) per row, num_segments defaulting to the last id + 1 (0 without rows)."""
    if (offsets is None) == (segment_ids is None):
        got = "both" if offsets is not None else "neither"
        raise ValueError(f"give exactly one of offsets and segment_ids, got {got}")
    ntokens, nfeat = values_shape
    if segment_ids is None:
        if num_segments is not None:
            raise ValueError("num_segments goes with segment_ids, not with offsets (whose length "
                             f"gives B), got num_segments={num_segments!r}")
        return check_offsets(offsets, ntokens)
    ids = _integer_array(segment_ids, "segment_ids")
    if ids.shape != (ntokens,):
        raise ValueError(f"segment_ids must be 1-D of length N={ntokens} (values.shape[0]), got "
                         f"shape {ids.shape}")
    count = _check_num_segments(num_segments, nfeat)
    n = _first_decrease(ids)
    if n is not None:
        raise ValueError(f"segment_ids must be non-decreasing (rows sorted by segment), got "
                         f"segment_ids[{n}]={int(ids[n])} > segment_ids[{n + 1}]={int(ids[n + 1])}")
    if ntokens and ids[0] < 0:
        raise ValueError(f"segment_ids must be >= 0, got segment_ids[0]={int(ids[0])}")
    if count is None:
        count = int(ids[-1]) + 1 if ntokens else 0
        if count > _max_segments(nfeat):
            raise ValueError(f"segment_ids holds {count - 1}: {count} segments (the default "
                             f"num_segments) and the result ({count}, {nfeat}) do not fit an "
                             f"array of at most {MAX_ELEMENTS} elements")
    elif ntokens and ids[-1] >= count:
        raise ValueError(f"segment_ids must be below num_segments={count}, got "
                         f"segment_ids[{ntokens - 1}]={int(ids[-1])}")
    # offsets[b]: the first row whose id is >= b (the ids are sorted)
    return np.searchsorted(ids, np.arange(count + 1, dtype=INDEX_DTYPE)).astype(
        INDEX_DTYPE, copy=False)


def _check_num_segments(value, nfeat: int) -> int | None:
    """num_segments as an int >= 0 whose result (num_segments, D) and offsets table
    (num_segments + 1,) fit an array, or None. bool, floats and strings are refused."""
    if value is None:
        return None
    count = None
    if not isinstance(value, (bool, np.bool_)):
        try:
            count = operator.index(value)
        except TypeError:
            pass
    if count is None:
        raise ParameterTypeError(f"num_segments must be an int >= 0, got num_segments={value!r} "
                                 f"({type(value).__name__})")
    if count < 0:
        raise ValueError(f"num_segments must be an int >= 0, got num_segments={count}")
    if count > _max_segments(nfeat):
        raise ValueError(f"num_segments={count} is too large: the result ({count}, {nfeat}) and "
                         f"the num_segments + 1 offsets must each fit an array of at most "
                         f"{MAX_ELEMENTS} elements")
    return count


def _max_segments(nfeat: int) -> int:
    """The most segments whose result (B, nfeat) and offsets (B + 1,) fit an array."""
    return MAX_ELEMENTS // max(nfeat, 1) - 1


def _first_decrease(arr: np.ndarray) -> int | None:
    """The first i with arr[i] > arr[i + 1] (1-D), or None."""
    down = arr[1:] < arr[:-1]
    return int(np.argmax(down)) if down.any() else None


def check_token_indices(indices, shape, rows: Rows) -> np.ndarray:
    """User max/min indices as int64 of `shape` (rows, then features): each -1 (no gradient) or
    a token of its own row's range [start, stop)."""
    idx = _integer_array(indices, "indices")
    if idx.shape != tuple(shape):
        raise ValueError(f"indices has shape {idx.shape}, expected {tuple(shape)}")
    if idx.size:
        flat = idx.reshape(rows.count, -1)
        lo, hi = rows.start[:, None], rows.stop[:, None]
        bad = ~((flat == -1) | ((flat >= lo) & (flat < hi)))
        if bad.any():
            r, d = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise ValueError(
                f"indices holds {int(flat[r, d])} for row {r}, outside its tokens "
                f"[{int(rows.start[r])}, {int(rows.stop[r])}) and not -1"
            )
    return idx


def _integer_array(value, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ParameterTypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(INDEX_DTYPE).max:
        # Before the cast to int64, which would wrap it negative.
        raise ValueError(f"{name} holds {int(arr.max())}, beyond any valid position")
    return arr.astype(INDEX_DTYPE, copy=False)


# -------------------------------------------------------------------------------------- rows

def sequence_rows(w: np.ndarray, mode: str, scores: np.ndarray | None) -> Rows:
    """Rows of a padded batch: row r is plane r, tokens [0, T), coefficients from w."""
    ntokens = w.shape[-1]
    nrows = math.prod(w.shape[:-1])
    w = w.reshape(nrows, ntokens)  # not (-1, ntokens): T may be 0
    scale = np.ones(nrows)
    if mode in ("sum", "max", "min"):
        coef = w
    elif mode in ("mean", "mean_sqrt_len", "weighted_mean"):
        coef = w * np.arange(1, ntokens + 1) if mode == "weighted_mean" else w
        scale = _inverse_norms(coef.sum(axis=1), sqrt=mode == "mean_sqrt_len")
    elif mode == "cls":
        coef = np.zeros_like(w)
        coef[:, 0] = 1.0
    elif mode == "last":
        valid = w != 0
        rows = np.flatnonzero(valid.any(axis=1))
        coef = np.zeros_like(w)
        if rows.size:
            coef[rows, ntokens - 1 - np.argmax(valid[rows, ::-1], axis=1)] = 1.0
    else:
        assert scores is not None, "mode 'attention' comes with checked scores"
        coef = _softmax_rows(scores.reshape(nrows, ntokens), w != 0)
    return Rows(
        start=np.zeros(nrows, dtype=INDEX_DTYPE),
        stop=np.full(nrows, ntokens, dtype=INDEX_DTYPE),
        coef=np.ascontiguousarray(coef, dtype=np.float64).reshape(-1),
        coef_at=np.arange(nrows, dtype=INDEX_DTYPE) * ntokens,
        scale=scale,
    )


def segment_rows(offsets: np.ndarray, ntokens: int, mode: str, scores: np.ndarray | None) -> Rows:
    """Rows of packed segments: one shared plane, row b is tokens [offsets[b], offsets[b+1])."""
    start, stop = offsets[:-1].copy(), offsets[1:].copy()
    sizes = (stop - start).astype(np.float64)
    nonempty = stop > start
    scale = np.ones(start.shape[0])
    coef = np.ones(ntokens)
    if mode in ("mean", "mean_sqrt_len"):
        scale = _inverse_norms(sizes, sqrt=mode == "mean_sqrt_len")
    elif mode in ("first", "last"):
        coef = np.zeros(ntokens)
        coef[start[nonempty] if mode == "first" else stop[nonempty] - 1] = 1.0
    elif mode == "attention":
        assert scores is not None, "mode 'attention' comes with checked scores"
        coef = np.zeros(ntokens)
        lo, hi = int(offsets[0]), int(offsets[-1])
        coef[lo:hi] = _softmax_segments(scores[lo:hi], start[nonempty] - lo, stop[nonempty] - start[nonempty])
    return Rows(start=start, stop=stop, coef=coef,
                coef_at=np.zeros(start.shape[0], dtype=INDEX_DTYPE), scale=scale)


def _inverse_norms(totals: np.ndarray, sqrt: bool) -> np.ndarray:
    """1 / total (or 1 / sqrt(total)); 0 where that is undefined, so such rows give zeros."""
    ok = totals > 0 if sqrt else totals != 0
    safe = np.where(ok, totals, 1.0)
    return np.where(ok, 1.0 / (np.sqrt(safe) if sqrt else safe), 0.0)


def _softmax_rows(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Softmax of each row over its valid tokens (0 elsewhere), shifted by the row's max."""
    with np.errstate(invalid="ignore", over="ignore"):
        top = np.where(valid, scores, -np.inf).max(axis=1, initial=-np.inf)
        top = np.where(valid.any(axis=1), top, 0.0)[:, None]
        e = np.exp(np.where(valid, scores - top, -np.inf))
        total = e.sum(axis=1, keepdims=True)
        return e / np.where(total > 0, total, 1.0)


def _softmax_segments(scores: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Softmax within each non-empty segment of `scores` (the segments tile it, in order)."""
    if scores.size == 0:
        return scores
    which = np.repeat(np.arange(starts.shape[0]), sizes)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(scores - np.maximum.reduceat(scores, starts)[which])
        return e / np.add.reduceat(e, starts)[which]
