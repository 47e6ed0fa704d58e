"""Sequence and segment pooling geometry: checked masks, lengths, scores, offsets and indices,
turned into the row tables every sequence kernel reads (see _sequence_impl.pxi).

Output row r reduces tokens ``[start[r], stop[r])``, token t weighted by
``coef[coef_at[r] + t]`` (0: not valid, never read), and its sum is scaled by ``scale[r]``. Every
mode is a choice of coefficients and scales: mask weights for sum and mean, position weights
for weighted_mean, a softmax for attention, a one-hot pick for cls, first and last. Pure Python
and NumPy on arrays of one value per token or per row, never per feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cypool._call import INDEX_DTYPE
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
    """Segment offsets as int64: 1-D, at least one, non-decreasing, within [0, ntokens]."""
    off = _integer_array(offsets, "offsets")
    if off.ndim != 1 or off.size == 0:
        raise ValueError(f"offsets must be a 1-D array of B + 1 >= 1 positions, got shape {off.shape}")
    if off[0] < 0:
        raise ValueError(f"offsets[0] is {int(off[0])}; offsets must be >= 0")
    if off[-1] > ntokens:
        raise ValueError(f"offsets[-1] is {int(off[-1])}, beyond the {ntokens} rows of values")
    steps = np.diff(off)
    if steps.size and steps.min() < 0:
        b = int(np.argmax(steps < 0))
        raise ValueError(f"offsets must be non-decreasing, got offsets[{b}]={int(off[b])} > "
                         f"offsets[{b + 1}]={int(off[b + 1])}")
    return off


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
