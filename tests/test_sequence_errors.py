"""Every error rule of sequence and segment pooling (API.md, "Conventions" and "Sequence pooling";
shared/notes/sequence_semantics.md): one table row per bad call of sequence_pool,
sequence_pool_backward, segment_pool and segment_pool_backward, with the error type and the
words the message must contain (the parameter, and the value received where there is one).

Every row is also run to check that a failing call modifies none of its arguments, and the
valid calls the rows are derived from are checked to succeed, so that each row fails for the
reason it names."""

import re

import numpy as np
import pytest

import cypool
from support import arrays_in, assert_message

B, T, D = 2, 5, 3
N = 7
RNG = np.random.default_rng(20240611)

# sequence inputs: h (B, T, D), mask / scores (B, T), lengths (B,), grad_output / indices (B, D)
H = RNG.standard_normal((B, T, D)).astype(np.float32)
MASK = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=bool)
LENGTHS = np.array([3, 5], dtype=np.int64)
SCORES = RNG.standard_normal((B, T)).astype(np.float32)
G = RNG.standard_normal((B, D)).astype(np.float32)
IDX = np.array([[0, 1, 2], [4, -1, 3]], dtype=np.int64)

# segment inputs: values (N, D), offsets (B + 1,) with an empty segment, scores (N,),
# grad_output / indices (3, D); indices are absolute rows inside their own segment or -1
V = RNG.standard_normal((N, D)).astype(np.float32)
OFFSETS = np.array([0, 3, 3, 7], dtype=np.int64)
SEG_IDS = np.array([0, 0, 0, 2, 2, 2, 2], dtype=np.int64)     # the segments of OFFSETS
VSCORES = RNG.standard_normal(N).astype(np.float32)
VG = RNG.standard_normal((3, D)).astype(np.float32)
VIDX = np.array([[0, 1, 2], [-1, -1, -1], [3, 6, 5]], dtype=np.int64)

SEQ_MODES = ["sum", "mean", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
             "attention"]
SEG_MODES = ["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention"]
NON_ORDER_SEQ = [m for m in SEQ_MODES if m not in ("max", "min")]
NON_ORDER_SEG = [m for m in SEG_MODES if m not in ("max", "min")]

# dtypes refused for h / values / scores / grad_output, with the name the message must hold
BAD_FLOAT_DTYPES = [(np.bool_, "bool"), (np.int32, "int32"), (np.int64, "int64"),
                    (np.uint8, "uint8"), (np.complex64, "complex64"),
                    (np.complex128, "complex128"), (object, "object")]

# parameter names as regexes (`h` is a single letter: a whole word)
P_H = r"\bh\b"


def v(x):
    """A regex for a value as a message would print it (a whole number, not part of one)."""
    return r"(?<![\w.])" + re.escape(str(x)) + r"(?![\w.])"


def ro(a):
    """A read-only copy of ``a``."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def fresh(a):
    return np.array(a, copy=True)


class Case:
    """One bad call: ``fn(*args, **kwargs)`` raises ``exc`` with every regex of ``patterns``."""

    def __init__(self, id, exc, patterns, fn, args, kwargs):
        self.id, self.exc, self.patterns = id, exc, patterns
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)


CASES = []


def case(id, exc, patterns, fn, *args, **kwargs):
    CASES.append(Case(id, exc, list(patterns), fn, args, kwargs))


def grad_for_h(h):
    """A zero grad_output of the right shape for ``h`` (or G when h has no such shape)."""
    h = np.asarray(h)
    if h.ndim < 2:
        return G
    return np.zeros(h.shape[:-2] + (h.shape[-1],), np.float32)


def grad_for_offsets(offsets):
    n = max(np.size(offsets) - 1, 0)
    return np.zeros((n, D), np.float32)


def seq_both(id, exc, patterns, h=H, mode="mean", **kwargs):
    """The same bad arguments to sequence_pool and to sequence_pool_backward."""
    case(f"sequence_pool-{id}", exc, patterns, cypool.sequence_pool, h, mode=mode, **kwargs)
    case(f"sequence_pool_backward-{id}", exc, patterns, cypool.sequence_pool_backward,
         grad_for_h(h), h, mode=mode, **kwargs)


def seg_both(id, exc, patterns, values=V, offsets=OFFSETS, mode="mean", **kwargs):
    """The same bad arguments to segment_pool and to segment_pool_backward."""
    case(f"segment_pool-{id}", exc, patterns, cypool.segment_pool, values, offsets, mode=mode,
         **kwargs)
    case(f"segment_pool_backward-{id}", exc, patterns, cypool.segment_pool_backward,
         grad_for_offsets(offsets), values, offsets, mode=mode, **kwargs)


# ============================================================================== dtypes

for _dt, _name in BAD_FLOAT_DTYPES:
    seq_both(f"h-{_name}", TypeError, [_name, P_H], h=H.astype(_dt))
    case(f"sequence_pool-h-{_name}-max", TypeError, [_name, P_H], cypool.sequence_pool,
         H.astype(_dt), mode="max")
    seg_both(f"values-{_name}", TypeError, [_name, "values"], values=V.astype(_dt))
    case(f"sequence_pool_backward-grad_output-{_name}", TypeError, [_name, "grad_output"],
         cypool.sequence_pool_backward, G.astype(_dt), H)
    case(f"segment_pool_backward-grad_output-{_name}", TypeError, [_name, "grad_output"],
         cypool.segment_pool_backward, VG.astype(_dt), V, OFFSETS)
    seq_both(f"scores-{_name}", TypeError, [_name, "scores"], mode="attention",
             scores=SCORES.astype(_dt))
    seg_both(f"scores-{_name}", TypeError, [_name, "scores"], mode="attention",
             scores=VSCORES.astype(_dt))

# scores must have exactly h's / values' dtype, not merely a float one
seq_both("scores-float64-for-float32", TypeError, ["scores", "float64"], mode="attention",
         scores=SCORES.astype(np.float64))
seq_both("scores-float32-for-float64", TypeError, ["scores", "float32"], h=H.astype(np.float64),
         mode="attention", scores=SCORES)
seq_both("scores-float16-for-float32", TypeError, ["scores", "float16"], mode="attention",
         scores=SCORES.astype(np.float16))
seg_both("scores-float64-for-float32", TypeError, ["scores", "float64"], mode="attention",
         scores=VSCORES.astype(np.float64))

# mask: bool / int / float only
for _dt, _name in [(np.complex64, "complex64"), (np.complex128, "complex128"),
                   (object, "object"), ("U1", "U1|str")]:
    seq_both(f"mask-{_name}", TypeError, ["mask", _name], mask=MASK.astype(_dt))

# ============================================================================== shapes

seq_both("h-1d", ValueError, [P_H], h=np.zeros(5, np.float32))
seq_both("h-0d", ValueError, [P_H], h=np.float32(1.0))
for _bad in [np.zeros((N,), np.float32), np.zeros((N, D, 1), np.float32),
             np.zeros((1, N, D), np.float32)]:
    seg_both(f"values-shape-{_bad.shape}", ValueError, ["values"], values=_bad)

# mask: exactly h.shape[:-1] (no broadcasting)
for _shape in [(2, 4), (2, 6), (2, 5, 1), (5,), (1, 5), (2, 5, 3)]:
    seq_both(f"mask-shape-{_shape}", ValueError, ["mask", re.escape(str(_shape))],
             mask=np.ones(_shape, bool))

# lengths: exactly h.shape[:-2], int, in [0, T]
for _shape in [(3,), (2, 1), (1,), ()]:
    seq_both(f"lengths-shape-{_shape}", ValueError, ["lengths"],
             lengths=np.full(_shape, 2, np.int64))
seq_both("lengths-shape-2d-h", ValueError, ["lengths"], h=H[0], lengths=np.array([2]))
seq_both("lengths-shape-4d-h", ValueError, ["lengths"], h=np.zeros((2, 3, T, D), np.float32),
         lengths=LENGTHS)
seq_both("lengths-float", TypeError, ["lengths", "float64"], lengths=LENGTHS.astype(np.float64))
seq_both("lengths-float-2d-h", TypeError, ["lengths", "float"], h=H[0], lengths=3.0)
seq_both("lengths-bool", TypeError, ["lengths", "bool"], lengths=np.array([True, False]))
seq_both("lengths-complex", TypeError, ["lengths", "complex"],
         lengths=LENGTHS.astype(np.complex128))
seq_both("lengths-negative", ValueError, ["lengths", v(-1)], lengths=np.array([3, -1]))
seq_both("lengths-above-T", ValueError, ["lengths", v(6)], lengths=np.array([6, 5]))
seq_both("lengths-above-T-2d-h", ValueError, ["lengths", v(9)], h=H[0], lengths=9)
seq_both("mask-and-lengths", ValueError, ["mask", "lengths"], mask=MASK, lengths=LENGTHS)

# ============================================================================== modes

for _mode in ["median", "MEAN", "", "lasttoken"]:
    _pats = ["mode", re.escape(_mode)] if _mode else ["mode"]
    seq_both(f"mode-{_mode or 'empty'}", ValueError, _pats, mode=_mode)
    seg_both(f"mode-{_mode or 'empty'}", ValueError, _pats, mode=_mode)
seq_both("mode-first", ValueError, ["mode", "first"], mode="first")
seg_both("mode-cls", ValueError, ["mode", "cls"], mode="cls")
seg_both("mode-weighted_mean", ValueError, ["mode", "weighted_mean"], mode="weighted_mean")
seq_both("mode-None", (TypeError, ValueError), ["mode"], mode=None)
seg_both("mode-None", (TypeError, ValueError), ["mode"], mode=None)

# cls needs a token at position 0
_H0 = np.zeros((B, 0, D), np.float32)
seq_both("cls-T0", ValueError, [r"cls|\bT\b|token"], h=_H0, mode="cls")
seq_both("cls-T0-mask", ValueError, [r"cls|\bT\b|token"], h=_H0, mode="cls",
         mask=np.zeros((B, 0), bool))

# ============================================================================== scores

seq_both("scores-missing", ValueError, ["scores"], mode="attention")
seg_both("scores-missing", ValueError, ["scores"], mode="attention")
for _mode in NON_ORDER_SEQ + ["max", "min"]:
    if _mode != "attention":
        seq_both(f"scores-given-{_mode}", ValueError, ["scores"], mode=_mode, scores=SCORES)
for _mode in SEG_MODES:
    if _mode != "attention":
        seg_both(f"scores-given-{_mode}", ValueError, ["scores"], mode=_mode, scores=VSCORES)
for _shape in [(2, 4), (2, 5, 1), (5,), (1, 5), (2, 5, 3)]:
    seq_both(f"scores-shape-{_shape}", ValueError, ["scores", re.escape(str(_shape))],
             mode="attention", scores=np.zeros(_shape, np.float32))
for _shape in [(6,), (8,), (7, 1), (1, 7), ()]:
    seg_both(f"scores-shape-{_shape}", ValueError, ["scores"], mode="attention",
             scores=np.zeros(_shape, np.float32))

# ============================================================================== return_indices

for _mode in NON_ORDER_SEQ:
    kw = dict(scores=SCORES) if _mode == "attention" else {}
    case(f"sequence_pool-return_indices-{_mode}", ValueError, ["return_indices"],
         cypool.sequence_pool, H, mode=_mode, return_indices=True, **kw)
for _mode in NON_ORDER_SEG:
    kw = dict(scores=VSCORES) if _mode == "attention" else {}
    case(f"segment_pool-return_indices-{_mode}", ValueError, ["return_indices"],
         cypool.segment_pool, V, OFFSETS, mode=_mode, return_indices=True, **kw)
for _bad in [1, 0, "yes", None, 1.0]:
    case(f"sequence_pool-return_indices-{_bad!r}", (TypeError, ValueError), ["return_indices"],
         cypool.sequence_pool, H, mode="max", return_indices=_bad)
    case(f"segment_pool-return_indices-{_bad!r}", (TypeError, ValueError), ["return_indices"],
         cypool.segment_pool, V, OFFSETS, mode="max", return_indices=_bad)

# ============================================================================== indices

for _mode in NON_ORDER_SEQ:
    kw = dict(scores=SCORES) if _mode == "attention" else {}
    case(f"sequence_pool_backward-indices-{_mode}", ValueError, ["indices"],
         cypool.sequence_pool_backward, G, H, mode=_mode, indices=IDX, **kw)
for _mode in NON_ORDER_SEG:
    kw = dict(scores=VSCORES) if _mode == "attention" else {}
    case(f"segment_pool_backward-indices-{_mode}", ValueError, ["indices"],
         cypool.segment_pool_backward, VG, V, OFFSETS, mode=_mode, indices=VIDX, **kw)
for _mode in ["max", "min"]:
    for _shape in [(2, 2), (2, 4), (2, 3, 1), (3,), (2, 5)]:
        case(f"sequence_pool_backward-indices-shape-{_shape}-{_mode}", ValueError,
             ["indices", re.escape(str(_shape))], cypool.sequence_pool_backward, G, H,
             mode=_mode, indices=np.zeros(_shape, np.int64))
    for _shape in [(2, 3), (4, 3), (3, 2), (7,), (3, 3, 1)]:
        case(f"segment_pool_backward-indices-shape-{_shape}-{_mode}", ValueError,
             ["indices", re.escape(str(_shape))], cypool.segment_pool_backward, VG, V, OFFSETS,
             mode=_mode, indices=np.zeros(_shape, np.int64))
    for _dt, _name in [(np.float64, "float64"), (np.float32, "float32"), (np.bool_, "bool"),
                       (np.complex128, "complex128")]:
        case(f"sequence_pool_backward-indices-{_name}-{_mode}", TypeError, ["indices", _name],
             cypool.sequence_pool_backward, G, H, mode=_mode,
             indices=np.zeros((B, D)).astype(_dt))
        case(f"segment_pool_backward-indices-{_name}-{_mode}", TypeError, ["indices", _name],
             cypool.segment_pool_backward, VG, V, OFFSETS, mode=_mode,
             indices=np.zeros((3, D)).astype(_dt) if _name != "bool" else VIDX < 0)
    # sequence: values in [-1, T)
    for _bad in [T, -2, 9, -7]:
        idx = IDX.copy()
        idx[1, 2] = _bad
        case(f"sequence_pool_backward-indices-value-{_bad}-{_mode}", ValueError,
             ["indices", v(_bad)], cypool.sequence_pool_backward, G, H, mode=_mode,
             indices=idx)
        case(f"sequence_pool_backward-indices-value-{_bad}-mask-{_mode}", ValueError,
             ["indices", v(_bad)], cypool.sequence_pool_backward, G, H, mode=_mode, mask=MASK,
             indices=idx)
    # segment: inside its own segment [offsets[b], offsets[b+1]) or -1
    for (_b, _d, _bad) in [(0, 1, 3), (0, 0, 6), (2, 0, 2), (2, 1, 0), (1, 2, 0), (1, 0, 3),
                           (2, 2, N), (0, 2, -2), (2, 1, 100)]:
        idx = VIDX.copy()
        idx[_b, _d] = _bad
        case(f"segment_pool_backward-indices-seg{_b}-value-{_bad}-{_mode}", ValueError,
             ["indices", v(_bad)], cypool.segment_pool_backward, VG, V, OFFSETS, mode=_mode,
             indices=idx)

# ============================================================================== offsets

seg_both("offsets-float", TypeError, ["offsets", "float64"], offsets=OFFSETS.astype(np.float64))
seg_both("offsets-float32", TypeError, ["offsets", "float32"], offsets=OFFSETS.astype(np.float32))
seg_both("offsets-bool", TypeError, ["offsets", "bool"], offsets=np.array([False, True, True]))
seg_both("offsets-complex", TypeError, ["offsets", "complex"],
         offsets=OFFSETS.astype(np.complex128))
seg_both("offsets-2d", ValueError, ["offsets"], offsets=OFFSETS[None, :])
seg_both("offsets-2d-column", ValueError, ["offsets"], offsets=OFFSETS[:, None])
seg_both("offsets-0d", ValueError, ["offsets"], offsets=np.int64(3))
seg_both("offsets-empty", ValueError, ["offsets"], offsets=np.zeros(0, np.int64))
seg_both("offsets-decreasing", ValueError, ["offsets", r"(?<![\w.])[25](?![\w.])"],
         offsets=np.array([0, 5, 2, 7]))
seg_both("offsets-decreasing-end", ValueError, ["offsets", r"(?<![\w.])[46](?![\w.])"],
         offsets=np.array([0, 6, 4]))
seg_both("offsets-negative-first", ValueError, ["offsets", v(-1)], offsets=np.array([-1, 3, 7]))
seg_both("offsets-negative-only", ValueError, ["offsets", v(-3)], offsets=np.array([-3]))
seg_both("offsets-last-above-N", ValueError, ["offsets", v(8)], offsets=np.array([0, 3, 8]))
seg_both("offsets-single-above-N", ValueError, ["offsets", v(12)], offsets=np.array([12]))
# offsets run from 0 to N: a segment never starts before row 0 or stops short of row N
for _off, _first, _last in [([1, 3, 7], 1, 7), ([0, 3, 6], 0, 6), ([1, 1, 6], 1, 6),
                            ([N, N], N, N), ([4], 4, 4), ([0], 0, 0), ([0, 0], 0, 0),
                            ([2, 2, 2], 2, 2)]:
    seg_both(f"offsets-not-0-to-N-{_off}", ValueError,
             [r"\boffsets\b", f"N={N}", rf"offsets\[0\]={_first}(?!\d)",
              rf"offsets\[-1\]={_last}(?!\d)"], offsets=np.array(_off))
# segment ids passed as offsets by mistake (non-decreasing, but ending at B - 1, not N): the
# reported bug, which pooled N "segments" without an error
seg_both("offsets-are-segment-ids", ValueError,
         [r"\boffsets\b", f"N={N}", r"offsets\[-1\]=2(?!\d)", "segment_ids"], offsets=SEG_IDS)
_lens = np.array([3, 5, 0, 7])
_V15 = RNG.standard_normal((15, 16))
case("segment_pool-offsets-are-segment-ids-reported", ValueError,
     [r"\boffsets\b", "N=15", r"offsets\[0\]=0(?!\d)", r"offsets\[-1\]=3(?!\d)"],
     cypool.segment_pool, _V15, np.repeat(np.arange(4), _lens), "mean")

# ============================================================================== segment_ids


def seg_ids_both(id, exc, patterns, mode="mean", **kwargs):
    """The same bad segment arguments (keywords, no positional offsets) to segment_pool and to
    segment_pool_backward (grad_output of the valid call's shape: the segments fail first)."""
    case(f"segment_pool-{id}", exc, patterns, cypool.segment_pool, V, mode=mode, **kwargs)
    case(f"segment_pool_backward-{id}", exc, patterns, cypool.segment_pool_backward, VG, V,
         mode=mode, **kwargs)


P_IDS, P_NUM, P_OFF = r"\bsegment_ids\b", r"\bnum_segments\b", r"\boffsets\b"
# exactly one of offsets and segment_ids; num_segments only with segment_ids
seg_ids_both("offsets-and-segment_ids", ValueError, [P_OFF, P_IDS, "both"], offsets=OFFSETS,
             segment_ids=SEG_IDS)
seg_ids_both("offsets-and-segment_ids-num_segments", ValueError, [P_OFF, P_IDS, "both"],
             offsets=OFFSETS, segment_ids=SEG_IDS, num_segments=3)
seg_ids_both("neither-offsets-nor-segment_ids", ValueError, [P_OFF, P_IDS, "neither"])
seg_ids_both("neither-with-num_segments", ValueError, [P_OFF, P_IDS, "neither"],
             num_segments=3)
for _num in [3, 0, np.int64(3)]:
    seg_ids_both(f"num_segments-with-offsets-{type(_num).__name__}-{_num}", ValueError,
                 [P_NUM, v(_num), P_OFF],
                 offsets=OFFSETS, num_segments=_num)
# segment_ids: integers, shape (N,)
for _dt, _name in [(np.float64, "float64"), (np.float32, "float32"), (np.bool_, "bool"),
                   (np.complex128, "complex128"), (object, "object"), ("U1", "<U1")]:
    seg_ids_both(f"segment_ids-{_name}", TypeError, [P_IDS, re.escape(_name)],
                 segment_ids=SEG_IDS.astype(_dt))
seg_ids_both("segment_ids-python-floats", TypeError, [P_IDS, "float64"],
             segment_ids=[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
for _ids in [SEG_IDS[:-1], np.append(SEG_IDS, 2), SEG_IDS[None, :], SEG_IDS[:, None], np.int64(0),
             np.zeros(0, np.int64)]:
    seg_ids_both(f"segment_ids-shape-{np.shape(_ids)}", ValueError,
                 [P_IDS, re.escape(str(np.shape(_ids))), f"N={N}"], segment_ids=_ids)
# non-decreasing, >= 0, < num_segments
for _ids, _i, _a, _b in [([0, 0, 1, 0, 2, 2, 2], 2, 1, 0), ([2, 2, 2, 0, 0, 0, 0], 2, 2, 0),
                         ([0, 0, 0, 2, 2, 2, 1], 5, 2, 1)]:
    seg_ids_both(f"segment_ids-decreasing-{_ids}", ValueError,
                 [P_IDS, "non-decreasing", rf"segment_ids\[{_i}\]={_a}(?!\d)",
                  rf"segment_ids\[{_i + 1}\]={_b}(?!\d)"], segment_ids=np.array(_ids))
for _ids, _bad in [([-1, 0, 0, 1, 1, 1, 1], -1), ([-5, -5, -5, -5, -5, -5, -5], -5),
                   ([-2 ** 40, 0, 0, 0, 0, 0, 0], -2 ** 40)]:
    seg_ids_both(f"segment_ids-negative-{_bad}", ValueError, [P_IDS, v(_bad)],
                 segment_ids=np.array(_ids))
for _num, _ids in [(2, SEG_IDS), (0, SEG_IDS), (3, SEG_IDS + 1), (1, np.zeros(N, np.int64) + 1)]:
    seg_ids_both(f"segment_ids-not-below-num_segments-{_num}-{int(_ids[-1])}", ValueError,
                 [P_IDS, P_NUM, rf"num_segments={_num}(?!\d)", v(int(_ids[-1]))],
                 segment_ids=_ids, num_segments=_num)
seg_ids_both("segment_ids-uint64-huge", ValueError, [P_IDS, v(2 ** 64 - 1)],
             segment_ids=np.array([0, 0, 0, 0, 0, 0, 2 ** 64 - 1], np.uint64))
seg_ids_both("segment_ids-default-num_segments-too-large", ValueError, [P_IDS, v(2 ** 62)],
             segment_ids=np.array([0, 0, 0, 0, 0, 0, 2 ** 62], np.int64))
# num_segments: an int >= 0 (not bool, float or str) with a result that fits an array
for _num in [-1, -2 ** 70, 2 ** 63, 2 ** 64, 2 ** 100, 2 ** 62, 2 ** 60]:
    seg_ids_both(f"num_segments-{_num}", ValueError, [P_NUM, v(_num)], segment_ids=SEG_IDS,
                 num_segments=_num)
for _num in [True, False, np.True_, 3.0, np.float64(3.0), "3", [3], np.array([3]), 2.5]:
    seg_ids_both(f"num_segments-{type(_num).__name__}-{_num!r}", ValueError,
                 [P_NUM, re.escape(repr(_num))], segment_ids=SEG_IDS, num_segments=_num)
# N == 0: ids must still be integers of shape (0,)
case("segment_pool-N0-segment_ids-shape", ValueError, [P_IDS, re.escape("(1,)")],
     cypool.segment_pool, V[:0], segment_ids=np.zeros(1, np.int64))
case("segment_pool-N0-num_segments-negative", ValueError, [P_NUM, v(-1)],
     cypool.segment_pool, V[:0], segment_ids=np.zeros(0, np.int64), num_segments=-1)
# the result's shape follows num_segments: grad_output and indices must match it
case("segment_pool_backward-segment_ids-grad_output-shape", ValueError,
     ["grad_output", re.escape("(3, 3)"), re.escape("(5, 3)")], cypool.segment_pool_backward,
     VG, V, segment_ids=SEG_IDS, num_segments=5)
case("segment_pool_backward-segment_ids-indices-outside", ValueError, ["indices", v(0)],
     cypool.segment_pool_backward, VG, V, mode="max", segment_ids=SEG_IDS,
     indices=np.array([[0, 1, 2], [0, -1, -1], [3, 6, 5]]))
# out: shape (num_segments, D), and it may not overlap segment_ids
case("segment_pool-segment_ids-out-shape", ValueError, ["out", re.escape("(4, 3)")],
     cypool.segment_pool, V, segment_ids=SEG_IDS, num_segments=4, out=np.zeros((3, D), np.float32))
_ids = np.zeros(N * 2, np.int64)
_ids[N:] = [0, 0, 0, 2, 2, 2, 2]
case("segment_pool-out-overlaps-segment_ids", ValueError, ["out"], cypool.segment_pool,
     V.astype(np.float64), segment_ids=_ids[N:], mode="sum",
     out=_ids[:9].view(np.float64).reshape(3, D))

# ============================================================================== grad_output

for _shape in [(2, 4), (3, 3), (3,), (2, 3, 1), (1, 2, 3), (2, 5, 3)]:
    case(f"sequence_pool_backward-grad_output-shape-{_shape}", ValueError,
         ["grad_output", re.escape(str(_shape))], cypool.sequence_pool_backward,
         np.zeros(_shape, np.float32), H)
for _shape in [(2, 3), (4, 3), (3, 2), (3,), (3, 3, 1), (7, 3)]:
    case(f"segment_pool_backward-grad_output-shape-{_shape}", ValueError,
         ["grad_output", re.escape(str(_shape))], cypool.segment_pool_backward,
         np.zeros(_shape, np.float32), V, OFFSETS)
for _mode in ["max", "attention", "cls"]:
    kw = dict(scores=SCORES) if _mode == "attention" else {}
    case(f"sequence_pool_backward-grad_output-shape-{_mode}", ValueError, ["grad_output"],
         cypool.sequence_pool_backward, np.zeros((B, D + 1), np.float32), H, mode=_mode, **kw)
    kw = dict(scores=VSCORES) if _mode == "attention" else {}
    if _mode != "cls":
        case(f"segment_pool_backward-grad_output-shape-{_mode}", ValueError, ["grad_output"],
             cypool.segment_pool_backward, np.zeros((4, D), np.float32), V, OFFSETS,
             mode=_mode, **kw)

# ============================================================================== out

_RO = ro(np.zeros((B, D), np.float32))
_BC = np.broadcast_to(np.float32(0), (B, D))

# sequence_pool
case("sequence_pool-out-shape", ValueError, ["out", re.escape("(2, 4)")], cypool.sequence_pool,
     H, out=np.zeros((B, D + 1), np.float32))
case("sequence_pool-out-shape-keepdims", ValueError, ["out"], cypool.sequence_pool, H,
     out=np.zeros((B, 1, D), np.float32))
case("sequence_pool-out-dtype", ValueError, ["out", "float64"], cypool.sequence_pool, H,
     out=np.zeros((B, D), np.float64))
case("sequence_pool-out-dtype-float16", ValueError, ["out", "float32|float16"],
     cypool.sequence_pool, H.astype(np.float16), out=np.zeros((B, D), np.float32))
case("sequence_pool-out-read-only", ValueError, ["out"], cypool.sequence_pool, H, out=_RO)
case("sequence_pool-out-broadcast", ValueError, ["out"], cypool.sequence_pool, H, out=_BC)
_h = fresh(H)
case("sequence_pool-out-overlaps-h", ValueError, ["out"], cypool.sequence_pool, _h,
     out=_h[:, 0, :])
_h = fresh(H)
case("sequence_pool-out-overlaps-h-max", ValueError, ["out"], cypool.sequence_pool, _h,
     mode="max", out=_h[:, 2, :])
_s = np.zeros((B, T + 1), np.float32)
case("sequence_pool-out-overlaps-scores", ValueError, ["out"], cypool.sequence_pool, H,
     mode="attention", scores=_s[:, :T], out=_s[:, :D])
_m = np.ones((B, T + 1), np.float32)
case("sequence_pool-out-overlaps-mask", ValueError, ["out"], cypool.sequence_pool, H,
     mask=_m[:, :T], out=_m[:, T - D + 1:])
case("sequence_pool-out-not-pair", (TypeError, ValueError), ["out"], cypool.sequence_pool, H,
     mode="max", return_indices=True, out=np.zeros((B, D), np.float32))
case("sequence_pool-out-pair-of-three", (TypeError, ValueError), ["out"], cypool.sequence_pool,
     H, mode="max", return_indices=True,
     out=(np.zeros((B, D), np.float32), np.zeros((B, D), np.int64), np.zeros((B, D))))
case("sequence_pool-out-pair-index-dtype", ValueError, ["out", "int32"], cypool.sequence_pool,
     H, mode="min", return_indices=True,
     out=(np.zeros((B, D), np.float32), np.zeros((B, D), np.int32)))
case("sequence_pool-out-pair-index-shape", ValueError, ["out"], cypool.sequence_pool, H,
     mode="max", return_indices=True,
     out=(np.zeros((B, D), np.float32), np.zeros((B, D + 1), np.int64)))
case("sequence_pool-out-pair-values-dtype", ValueError, ["out"], cypool.sequence_pool, H,
     mode="max", return_indices=True,
     out=(np.zeros((B, D), np.float64), np.zeros((B, D), np.int64)))
_h = fresh(H)
case("sequence_pool-out-pair-overlaps-h", ValueError, ["out"], cypool.sequence_pool, _h,
     mode="max", return_indices=True, out=(_h[:, 1, :], np.zeros((B, D), np.int64)))
_pair = np.zeros((B, D), np.int64)
case("sequence_pool-out-pair-same-array", ValueError, ["out"], cypool.sequence_pool,
     H.astype(np.float64), mode="max", return_indices=True,
     out=(_pair.view(np.float64), _pair))
case("sequence_pool-out-pair-no-indices", (TypeError, ValueError), ["out"],
     cypool.sequence_pool, H, mode="max",
     out=(np.zeros((B, D), np.float32), np.zeros((B, D), np.int64)))

# sequence_pool_backward
case("sequence_pool_backward-out-shape", ValueError, ["out", re.escape("(2, 5, 4)")],
     cypool.sequence_pool_backward, G, H, out=np.zeros((B, T, D + 1), np.float32))
case("sequence_pool_backward-out-dtype", ValueError, ["out", "float64"],
     cypool.sequence_pool_backward, G, H, out=np.zeros((B, T, D), np.float64))
case("sequence_pool_backward-out-dtype-of-h", ValueError, ["out", "float32"],
     cypool.sequence_pool_backward, G.astype(np.float64), H, out=np.zeros((B, T, D), np.float32))
case("sequence_pool_backward-out-read-only", ValueError, ["out"],
     cypool.sequence_pool_backward, G, H, out=ro(np.zeros((B, T, D), np.float32)))
_h = fresh(H)
case("sequence_pool_backward-out-is-h", ValueError, ["out"], cypool.sequence_pool_backward, G,
     _h, out=_h)
_h = fresh(H)
case("sequence_pool_backward-out-is-h-max", ValueError, ["out"], cypool.sequence_pool_backward,
     G, _h, mode="max", out=_h)
_buf = np.zeros((B, T + 2, D), np.float32)
case("sequence_pool_backward-out-overlaps-grad_output", ValueError, ["out"],
     cypool.sequence_pool_backward, _buf[:, 2, :], H, out=_buf[:, :T, :])
_s = fresh(SCORES)
case("sequence_pool_backward-out-overlaps-scores", ValueError, ["out"],
     cypool.sequence_pool_backward, G, H, mode="attention", scores=_s,
     out=(np.zeros((B, T, D), np.float32), _s))
case("sequence_pool_backward-attention-out-not-pair", (TypeError, ValueError), ["out"],
     cypool.sequence_pool_backward, G, H, mode="attention", scores=SCORES,
     out=np.zeros((B, T, D), np.float32))
case("sequence_pool_backward-attention-out-scores-shape", ValueError, ["out"],
     cypool.sequence_pool_backward, G, H, mode="attention", scores=SCORES,
     out=(np.zeros((B, T, D), np.float32), np.zeros((B, T - 1), np.float32)))
case("sequence_pool_backward-attention-out-scores-dtype", ValueError, ["out", "float64"],
     cypool.sequence_pool_backward, G, H, mode="attention", scores=SCORES,
     out=(np.zeros((B, T, D), np.float32), np.zeros((B, T), np.float64)))
_gh = np.zeros((B, T, D), np.float32)
case("sequence_pool_backward-attention-out-pair-overlap", ValueError, ["out"],
     cypool.sequence_pool_backward, G, H, mode="attention", scores=SCORES,
     out=(_gh, _gh[:, :, 0]))
case("sequence_pool_backward-out-pair-not-attention", (TypeError, ValueError), ["out"],
     cypool.sequence_pool_backward, G, H, mode="mean",
     out=(np.zeros((B, T, D), np.float32), np.zeros((B, T), np.float32)))

# segment_pool
case("segment_pool-out-shape", ValueError, ["out", re.escape("(2, 3)")], cypool.segment_pool, V,
     OFFSETS, out=np.zeros((2, D), np.float32))
case("segment_pool-out-dtype", ValueError, ["out", "float64"], cypool.segment_pool, V, OFFSETS,
     out=np.zeros((3, D), np.float64))
case("segment_pool-out-read-only", ValueError, ["out"], cypool.segment_pool, V, OFFSETS,
     out=ro(np.zeros((3, D), np.float32)))
_v = fresh(V)
case("segment_pool-out-overlaps-values", ValueError, ["out"], cypool.segment_pool, _v, OFFSETS,
     out=_v[4:])
_v = fresh(V)
case("segment_pool-out-overlaps-values-strided", ValueError, ["out"], cypool.segment_pool, _v,
     OFFSETS, out=_v[::3])
_s = np.zeros(N + D * 3, np.float32)
case("segment_pool-out-overlaps-scores", ValueError, ["out"], cypool.segment_pool, V, OFFSETS,
     mode="attention", scores=_s[:N], out=_s[:9].reshape(3, D))
case("segment_pool-out-not-pair", (TypeError, ValueError), ["out"], cypool.segment_pool, V,
     OFFSETS, mode="max", return_indices=True, out=np.zeros((3, D), np.float32))
case("segment_pool-out-pair-index-dtype", ValueError, ["out", "float32"], cypool.segment_pool, V,
     OFFSETS, mode="max", return_indices=True,
     out=(np.zeros((3, D), np.float32), np.zeros((3, D), np.float32)))
case("segment_pool-out-pair-index-shape", ValueError, ["out"], cypool.segment_pool, V, OFFSETS,
     mode="min", return_indices=True,
     out=(np.zeros((3, D), np.float32), np.zeros((2, D), np.int64)))

# segment_pool_backward
case("segment_pool_backward-out-shape", ValueError, ["out", re.escape("(7, 4)")],
     cypool.segment_pool_backward, VG, V, OFFSETS, out=np.zeros((N, D + 1), np.float32))
case("segment_pool_backward-out-dtype", ValueError, ["out", "float16"],
     cypool.segment_pool_backward, VG, V, OFFSETS, out=np.zeros((N, D), np.float16))
case("segment_pool_backward-out-read-only", ValueError, ["out"],
     cypool.segment_pool_backward, VG, V, OFFSETS, out=ro(np.zeros((N, D), np.float32)))
_v = fresh(V)
case("segment_pool_backward-out-is-values", ValueError, ["out"], cypool.segment_pool_backward,
     VG, _v, OFFSETS, out=_v)
_buf = np.zeros((N + 3, D), np.float32)
case("segment_pool_backward-out-overlaps-grad_output", ValueError, ["out"],
     cypool.segment_pool_backward, _buf[N - 1:N + 2], V, OFFSETS, out=_buf[:N])
_o = np.zeros(N * D, np.int64)
case("segment_pool_backward-out-overlaps-offsets", ValueError, ["out"],
     cypool.segment_pool_backward, VG.astype(np.float64), V, _o[:4], mode="sum",
     out=_o.view(np.float64).reshape(N, D))
case("segment_pool_backward-attention-out-not-pair", (TypeError, ValueError), ["out"],
     cypool.segment_pool_backward, VG, V, OFFSETS, mode="attention", scores=VSCORES,
     out=np.zeros((N, D), np.float32))
case("segment_pool_backward-attention-out-scores-shape", ValueError, ["out"],
     cypool.segment_pool_backward, VG, V, OFFSETS, mode="attention", scores=VSCORES,
     out=(np.zeros((N, D), np.float32), np.zeros(N - 1, np.float32)))
_s = fresh(VSCORES)
case("segment_pool_backward-attention-out-overlaps-scores", ValueError, ["out"],
     cypool.segment_pool_backward, VG, V, OFFSETS, mode="attention", scores=_s,
     out=(np.zeros((N, D), np.float32), _s))

# ============================================================================== num_threads

_CALLS = {
    "sequence_pool": (cypool.sequence_pool, (H,), {}),
    "sequence_pool_backward": (cypool.sequence_pool_backward, (G, H), {}),
    "segment_pool": (cypool.segment_pool, (V, OFFSETS), {}),
    "segment_pool_backward": (cypool.segment_pool_backward, (VG, V, OFFSETS), {}),
}
for _fname, (_fn, _args, _kw) in _CALLS.items():
    for _n in [0, -1, -8]:
        case(f"{_fname}-num_threads-{_n}", ValueError, ["num_threads", v(_n)], _fn, *_args,
             num_threads=_n)
    for _n in [1.5, 2.0, True, False, "2", np.float64(1.0)]:
        case(f"{_fname}-num_threads-{_n!r}", (TypeError, ValueError), ["num_threads"], _fn,
             *_args, num_threads=_n)

IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS), [i for i in IDS if IDS.count(i) > 1]


# ============================================================================== the tests


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_error(c):
    with pytest.raises(c.exc) as excinfo:
        c()
    assert_message(excinfo, *c.patterns)


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_failing_call_modifies_nothing(c):
    args = list(arrays_in((c.args, c.kwargs)))
    before = [(a.copy(), a.flags.writeable) for a in args]
    with pytest.raises(c.exc):
        c()
    for a, (copy, writeable) in zip(args, before):
        assert a.flags.writeable == writeable
        if a.dtype == object:
            assert np.array_equal(a, copy)
        else:
            np.testing.assert_array_equal(a, copy, strict=True)


# The valid calls the rows above spoil one argument of: each must succeed, so every row fails
# for the reason it names and not for a mistake in the shared inputs.

def _valid_calls():
    calls = []
    for mode in SEQ_MODES:
        kw = dict(scores=SCORES) if mode == "attention" else {}
        for extra in [{}, dict(mask=MASK), dict(lengths=LENGTHS)]:
            calls.append((f"sequence_pool-{mode}-{list(extra)}", cypool.sequence_pool, (H,),
                          dict(mode=mode, **kw, **extra)))
            calls.append((f"sequence_pool_backward-{mode}-{list(extra)}",
                          cypool.sequence_pool_backward, (G, H), dict(mode=mode, **kw, **extra)))
    for mode in SEG_MODES:
        kw = dict(scores=VSCORES) if mode == "attention" else {}
        calls.append((f"segment_pool-{mode}", cypool.segment_pool, (V, OFFSETS),
                      dict(mode=mode, **kw)))
        calls.append((f"segment_pool_backward-{mode}", cypool.segment_pool_backward,
                      (VG, V, OFFSETS), dict(mode=mode, **kw)))
    for mode in ["max", "min"]:
        calls += [
            (f"sequence_pool-{mode}-indices", cypool.sequence_pool, (H,),
             dict(mode=mode, return_indices=True)),
            (f"sequence_pool-{mode}-indices-np-bool", cypool.sequence_pool, (H,),
             dict(mode=mode, return_indices=np.True_)),
            (f"sequence_pool-{mode}-out-pair", cypool.sequence_pool, (H,),
             dict(mode=mode, return_indices=True,
                  out=(np.zeros((B, D), np.float32), np.zeros((B, D), np.int64)))),
            (f"sequence_pool_backward-{mode}-indices", cypool.sequence_pool_backward, (G, H),
             dict(mode=mode, mask=MASK, indices=IDX)),
            (f"sequence_pool_backward-{mode}-indices-int32", cypool.sequence_pool_backward,
             (G, H), dict(mode=mode, indices=IDX.astype(np.int32))),
            (f"sequence_pool_backward-{mode}-indices-bounds", cypool.sequence_pool_backward,
             (G, H), dict(mode=mode, indices=np.array([[-1, T - 1, 0], [T - 1, -1, 0]]))),
            (f"segment_pool-{mode}-indices", cypool.segment_pool, (V, OFFSETS),
             dict(mode=mode, return_indices=True)),
            (f"segment_pool_backward-{mode}-indices", cypool.segment_pool_backward,
             (VG, V, OFFSETS), dict(mode=mode, indices=VIDX)),
            (f"segment_pool_backward-{mode}-indices-int8", cypool.segment_pool_backward,
             (VG, V, OFFSETS),
             dict(mode=mode, indices=np.array([[2, 0, 1], [-1, -1, -1], [6, 3, 4]], np.int8))),
        ]
    calls += [
        ("sequence_pool-lengths-bounds", cypool.sequence_pool, (H,),
         dict(lengths=np.array([0, T]))),
        ("sequence_pool-lengths-int8", cypool.sequence_pool, (H,),
         dict(lengths=LENGTHS.astype(np.uint8))),
        ("sequence_pool-lengths-scalar-2d-h", cypool.sequence_pool, (H[0],), dict(lengths=3)),
        ("sequence_pool-lengths-0d-2d-h", cypool.sequence_pool, (H[0],),
         dict(lengths=np.array(T))),
        ("sequence_pool-mask-int", cypool.sequence_pool, (H,), dict(mask=MASK.astype(np.int8))),
        ("sequence_pool-mask-float", cypool.sequence_pool, (H,),
         dict(mask=MASK.astype(np.float16))),
        ("sequence_pool-float64-scores", cypool.sequence_pool, (H.astype(np.float64),),
         dict(mode="attention", scores=SCORES.astype(np.float64))),
        ("sequence_pool-out", cypool.sequence_pool, (H,), dict(out=np.zeros((B, D), np.float32))),
        ("sequence_pool-num_threads", cypool.sequence_pool, (H,), dict(num_threads=1)),
        ("sequence_pool-num_threads-np", cypool.sequence_pool, (H,),
         dict(num_threads=np.int64(2))),
        ("sequence_pool_backward-attention-out", cypool.sequence_pool_backward, (G, H),
         dict(mode="attention", scores=SCORES,
              out=(np.zeros((B, T, D), np.float32), np.zeros((B, T), np.float32)))),
        ("sequence_pool_backward-grad-float64", cypool.sequence_pool_backward,
         (G.astype(np.float64), H), dict(out=np.zeros((B, T, D), np.float64))),
        ("segment_pool-offsets-list", cypool.segment_pool, (V, [0, 3, 3, 7]), {}),
        ("segment_pool-offsets-int32", cypool.segment_pool, (V, OFFSETS.astype(np.int32)), {}),
        ("segment_pool-offsets-no-rows", cypool.segment_pool, (V[:0], np.array([0])), {}),
        ("segment_pool-offsets-no-rows-2", cypool.segment_pool, (V[:0], np.array([0, 0])), {}),
        ("segment_pool-offsets-empty-ends", cypool.segment_pool, (V, np.array([0, 0, N, N])),
         {}),
        ("segment_pool-segment_ids", cypool.segment_pool, (V,), dict(segment_ids=SEG_IDS)),
        ("segment_pool-segment_ids-positional-offsets-None", cypool.segment_pool, (V, None),
         dict(segment_ids=SEG_IDS)),
        ("segment_pool-segment_ids-list", cypool.segment_pool, (V,),
         dict(segment_ids=SEG_IDS.tolist())),
        ("segment_pool-segment_ids-uint8", cypool.segment_pool, (V,),
         dict(segment_ids=SEG_IDS.astype(np.uint8))),
        ("segment_pool-segment_ids-num_segments", cypool.segment_pool, (V,),
         dict(segment_ids=SEG_IDS, num_segments=3)),
        ("segment_pool-segment_ids-num_segments-more", cypool.segment_pool, (V,),
         dict(segment_ids=SEG_IDS, num_segments=np.int32(9))),
        ("segment_pool-segment_ids-num_segments-0d", cypool.segment_pool, (V,),
         dict(segment_ids=SEG_IDS, num_segments=np.array(3))),
        ("segment_pool-segment_ids-no-rows", cypool.segment_pool, (V[:0],),
         dict(segment_ids=np.zeros(0, np.int64))),
        ("segment_pool-segment_ids-no-rows-num_segments", cypool.segment_pool, (V[:0],),
         dict(segment_ids=np.zeros(0, np.uint8), num_segments=4)),
        ("segment_pool_backward-segment_ids", cypool.segment_pool_backward, (VG, V),
         dict(segment_ids=SEG_IDS)),
        ("segment_pool_backward-segment_ids-max-indices", cypool.segment_pool_backward,
         (VG, V), dict(mode="max", segment_ids=SEG_IDS, indices=VIDX)),
        ("segment_pool_backward-segment_ids-attention", cypool.segment_pool_backward,
         (VG, V), dict(mode="attention", segment_ids=SEG_IDS, num_segments=3, scores=VSCORES)),
        ("segment_pool-out", cypool.segment_pool, (V, OFFSETS),
         dict(out=np.zeros((3, D), np.float32))),
        ("segment_pool_backward-attention-out", cypool.segment_pool_backward, (VG, V, OFFSETS),
         dict(mode="attention", scores=VSCORES,
              out=(np.zeros((N, D), np.float32), np.zeros(N, np.float32)))),
        ("segment_pool_backward-num_threads", cypool.segment_pool_backward, (VG, V, OFFSETS),
         dict(num_threads=3)),
    ]
    return calls


VALID = _valid_calls()


@pytest.mark.parametrize("fn, args, kwargs", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_baseline(fn, args, kwargs):
    fn(*args, **kwargs)


@pytest.mark.parametrize("mode", [m for m in SEQ_MODES if m != "cls"])
@pytest.mark.parametrize("how", ["none", "mask", "lengths", "2d"])
def test_zero_tokens_refused_only_for_cls(mode, how):
    """T == 0 is an error for "cls" alone: in the other modes every row has no valid token, so
    the result is zeros (index -1) and the gradient is empty."""
    batch = () if how == "2d" else (B,)
    h = np.zeros(batch + (0, D), np.float32)
    kw = dict(scores=np.zeros(batch + (0,), np.float32)) if mode == "attention" else {}
    if how == "mask":
        kw["mask"] = np.zeros(batch + (0,), bool)
    elif how == "lengths":
        kw["lengths"] = np.zeros(batch, np.int64)
    got = cypool.sequence_pool(h, mode=mode, **kw)
    np.testing.assert_array_equal(got, np.zeros(batch + (D,), np.float32), strict=True)
    if mode in ("max", "min"):
        _, idx = cypool.sequence_pool(h, mode=mode, return_indices=True, **kw)
        np.testing.assert_array_equal(idx, np.full(batch + (D,), -1, np.int64), strict=True)
    g = np.ones(batch + (D,), np.float64)
    grads = cypool.sequence_pool_backward(g, h, mode=mode, **kw)
    gh = grads[0] if mode == "attention" else grads
    assert gh.shape == h.shape and gh.dtype == np.float64
    if mode == "attention":
        assert grads[1].shape == batch + (0,) and grads[1].dtype == np.float64
