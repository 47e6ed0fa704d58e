"""Differential tests of sequence_pool / segment_pool and their backward against torch.

The torch side is sentence-transformers' pooling formulas (mean, max, cls, lasttoken,
weightedmean, mean_sqrt_len; ``h`` masked with -1e9 for max), a masked softmax for attention
(``masked_fill(-inf)`` then ``torch.softmax``), and loops over segments / ``index_add`` /
``scatter_reduce`` / ``torch.segment_reduce`` for packed sequences, given to cypool as offsets
and as segment ids; gradients come from torch autograd in float64.

Per shared/notes/sequence_semantics.md, a row without a valid token gives zeros (and a zero
gradient, index -1) in every mode but "cls"; sentence-transformers gives -1e9 (max) or NaN
(softmax) there, so those rows are compared with zeros instead of with torch. Values are
distinct, so torch's max/min gradient (to one argmax) is the contract's (first argmax).
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cypool  # noqa: E402
from support import TORCH_TOL  # noqa: E402

DTYPES = [np.float32, np.float64]
SEQ_MODES = ["sum", "mean", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
             "attention"]
SEG_MODES = ["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention"]
ORDER = ("max", "min")
MASK_DTYPES = [np.bool_, np.int64, np.float32]
MASK_KINDS = ["random", "zeros", "left", "right", "ones", "single", "random", "zeros"]


def rng_for(*parts):
    """A generator seeded reproducibly by the test's parameters."""
    return np.random.default_rng([sum(map(ord, str(p))) * (i + 1) for i, p in enumerate(parts)])


def distinct(rng, shape, dtype):
    """Distinct values (no ties for max/min), exactly representable in float32 and float64."""
    n = math.prod(shape)
    x = (rng.permutation(n) + np.round(rng.random(n) * 64) / 128 - n / 2) / 4
    return x.reshape(shape).astype(dtype)


def make_mask(rng, b, t):
    """0/1 masks of (b, t), cycling through row kinds: random, all zero, left padded (zeros
    then ones), right padded, all one, a single valid token."""
    m = np.zeros((b, t), np.int64)
    for i in range(b):
        kind = MASK_KINDS[i % len(MASK_KINDS)]
        n = int(rng.integers(1, t + 1))
        if kind == "random":
            m[i] = rng.integers(0, 2, t)
        elif kind == "left":
            m[i, t - n:] = 1
        elif kind == "right":
            m[i, :n] = 1
        elif kind == "ones":
            m[i] = 1
        elif kind == "single":
            m[i, rng.integers(t)] = 1
    return m


def tol(dtype, want):
    """assert_allclose kwargs for cypool's ``dtype`` against torch's float64 ``want``: TORCH_TOL
    with the absolute part scaled by the magnitude (sums of several terms cancel)."""
    t = TORCH_TOL[dtype]
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    return dict(rtol=t["rtol"], atol=t["atol"] * scale)


def check(got, want, dtype, rows=None, what=""):
    """cypool's ``got`` (dtype ``dtype``) against torch's ``want`` on the batch ``rows``."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if rows is not None:
        got, want = got[rows], want[rows]
    np.testing.assert_allclose(got.astype(np.float64), want, err_msg=what, **tol(dtype, want))


def check_zero(got, rows, what=""):
    """Rows without a valid token: exact zeros (no NaN, inf, -1e9)."""
    got = np.asarray(got)[rows]
    assert np.all(got == 0), f"{what}: rows without a valid token are not zero: {got}"


# ================================================================================ torch side


def st_pool(mode, h, w, s=None):
    """sentence-transformers' pooling of h (B, T, D) with mask weights w (B, T), in torch;
    "max"/"min" return (values, indices). Validity is w != 0; the weights weight the
    mean-type modes only, as in sentence-transformers (whose masks are 0/1)."""
    T = h.shape[1]
    valid = w != 0
    me = w.unsqueeze(-1).expand(h.size()).to(h.dtype)
    if mode == "sum":
        return torch.sum(h * me, 1)
    if mode in ("mean", "mean_sqrt_len"):
        sum_embeddings = torch.sum(h * me, 1)
        sum_mask = torch.clamp(me.sum(1), min=1e-9)
        if mode == "mean":
            return sum_embeddings / sum_mask
        return sum_embeddings / torch.sqrt(sum_mask)
    if mode == "weighted_mean":
        weights = (torch.arange(1, T + 1, dtype=h.dtype).unsqueeze(0).unsqueeze(-1)
                   .expand(h.size()))
        me = me * weights
        sum_embeddings = torch.sum(h * me, 1)
        sum_mask = torch.clamp(me.sum(1), min=1e-9)
        return sum_embeddings / sum_mask
    vexp = valid.unsqueeze(-1).expand(h.size())
    if mode == "max":
        return torch.max(h.masked_fill(~vexp, -1e9), 1)
    if mode == "min":
        return torch.min(h.masked_fill(~vexp, 1e9), 1)
    if mode == "cls":
        return h[:, 0]
    if mode == "last":
        # sentence-transformers' lasttoken (left- and right-padded alike)
        attention_mask = valid.to(h.dtype)
        bs, seq_len, hidden_dim = h.shape
        values, indices = attention_mask.flip(1).max(1)
        indices = torch.where(values == 0, seq_len - 1, indices)
        gather_indices = seq_len - indices - 1
        gather_indices = gather_indices.unsqueeze(-1).repeat(1, hidden_dim).unsqueeze(1)
        return torch.gather(h * attention_mask.unsqueeze(-1), 1, gather_indices).squeeze(dim=1)
    if mode == "attention":
        a = torch.softmax(s.masked_fill(~valid, float("-inf")), dim=1)
        return torch.sum(a.unsqueeze(-1) * h, 1)
    raise AssertionError(mode)


def torch_sequence(mode, h, w, s, g):
    """(values, indices or None, grad_h, grad_scores or None) of st_pool, in float64."""
    ht = torch.tensor(np.asarray(h, np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, np.float64))
    st = None if s is None else torch.tensor(np.asarray(s, np.float64), requires_grad=True)
    out = st_pool(mode, ht, wt, st)
    idx = None
    if mode in ORDER:
        out, idx = out
        idx = idx.numpy()
    out.backward(torch.tensor(np.asarray(g, np.float64)))
    return (out.detach().numpy(), idx, ht.grad.numpy(),
            None if st is None else st.grad.numpy())


def torch_segment(mode, v, offsets, s=None):
    """Segment pooling by a loop over segments: (values (B, D), absolute indices or None)."""
    D = v.shape[1]
    outs, idxs = [], []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        lo, hi = int(lo), int(hi)
        if hi == lo:
            outs.append(v.new_zeros(D))
            idxs.append(np.full(D, -1))
            continue
        seg = v[lo:hi]
        if mode == "sum":
            outs.append(seg.sum(0))
        elif mode == "mean":
            outs.append(seg.mean(0))
        elif mode == "mean_sqrt_len":
            outs.append(seg.sum(0) / math.sqrt(hi - lo))
        elif mode in ORDER:
            val, i = seg.max(0) if mode == "max" else seg.min(0)
            outs.append(val)
            idxs.append(i.numpy() + lo)
        elif mode == "first":
            outs.append(seg[0])
        elif mode == "last":
            outs.append(seg[-1])
        elif mode == "attention":
            a = torch.softmax(s[lo:hi], 0)
            outs.append((a.unsqueeze(-1) * seg).sum(0))
        else:
            raise AssertionError(mode)
    out = torch.stack(outs) if outs else v.new_zeros((0, D))
    return out, (np.array(idxs).reshape(len(outs), D) if mode in ORDER else None)


def torch_segment_scatter(mode, v, offsets):
    """sum / mean / mean_sqrt_len by index_add and max / min by scatter_reduce (torch_scatter
    style) over the rows inside the segments."""
    offsets = np.asarray(offsets, np.int64)
    lengths = torch.tensor(np.diff(offsets))
    B, D = len(lengths), v.shape[1]
    seg_ids = torch.repeat_interleave(torch.arange(B), lengths)
    rows = v[int(offsets[0]):int(offsets[-1])]
    if mode in ORDER:
        index = seg_ids.unsqueeze(-1).expand(-1, D)
        return v.new_zeros((B, D)).scatter_reduce(0, index, rows, "amax" if mode == "max"
                                                  else "amin", include_self=False)
    total = v.new_zeros((B, D)).index_add(0, seg_ids, rows)
    n = torch.clamp(lengths, min=1).to(v.dtype).unsqueeze(-1)
    if mode == "sum":
        return total
    if mode == "mean":
        return total / n
    return total / torch.sqrt(n)


def torch_grads(fn, g, *arrays):
    """fn(*tensors) (its first result when a pair) and the gradient of sum(g * it) with respect
    to each array (None for None), in float64."""
    ts = [None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=True)
          for a in arrays]
    out = fn(*ts)
    extra = None
    if isinstance(out, tuple):
        out, extra = out
    if out.requires_grad:                           # not when every segment is empty
        out.backward(torch.tensor(np.asarray(g, np.float64)))
    return (out.detach().numpy(), extra,
            *[None if t is None else (t.grad.numpy() if t.grad is not None
                                      else np.zeros(t.shape)) for t in ts])


# ================================================================================ sequence


def seq_inputs(key, dtype, shape=(8, 7, 5)):
    rng = rng_for(*key)
    b, t, d = shape
    h = distinct(rng, shape, dtype)
    m = make_mask(rng, b, t)
    s = (rng.standard_normal((b, t)) * 2).astype(dtype)
    g = (rng.standard_normal((b, d)) * 2).astype(dtype)
    return h, m, s, g


def compare_sequence(mode, dtype, h, mask_arg, w, s, g, *, lengths=None):
    """cypool forward (with indices for max/min) and backward (recomputed and given indices)
    against torch, for h (B, T, D); ``mask_arg`` is what cypool gets, ``w`` the weights torch
    uses."""
    sc = s if mode == "attention" else None
    kw = dict(scores=sc, lengths=lengths)
    want, want_idx, want_gh, want_gs = torch_sequence(mode, h, w, sc, g)
    empty = ~np.any(np.asarray(w) != 0, axis=-1)
    rows = np.ones_like(empty) if mode == "cls" else ~empty
    z = ~rows

    got = cypool.sequence_pool(h, mask_arg, mode, **kw)
    check(got, want, dtype, rows, f"{mode} forward")
    check_zero(got, z, f"{mode} forward")

    if mode in ORDER:
        vals, idx = cypool.sequence_pool(h, mask_arg, mode, return_indices=True, **kw)
        np.testing.assert_array_equal(vals, got)
        assert idx.dtype == np.int64 and idx.shape == got.shape
        np.testing.assert_array_equal(idx[rows], want_idx[rows])
        assert np.all(idx[z] == -1)

    grads = cypool.sequence_pool_backward(g, h, mask_arg, mode, **kw)
    if mode == "attention":
        assert isinstance(grads, tuple) and len(grads) == 2
        gh, gs = grads
        check(gs, want_gs, dtype, rows, "attention grad_scores")
        check_zero(gs, z, "attention grad_scores")
    else:
        gh = grads
    assert isinstance(gh, np.ndarray) and gh.shape == h.shape
    check(gh, want_gh, dtype, rows, f"{mode} grad_h")
    check_zero(gh, z, f"{mode} grad_h")

    if mode in ORDER:
        gh2 = cypool.sequence_pool_backward(g, h, mask_arg, mode, indices=idx, **kw)
        np.testing.assert_array_equal(gh2, gh)
        # torch's argmax indices give the same gradient
        ti = np.where(z[:, None], -1, want_idx)
        gh3 = cypool.sequence_pool_backward(g, h, mask_arg, mode, indices=ti, **kw)
        check(gh3, want_gh, dtype, rows, f"{mode} grad_h from torch's indices")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_dtype", MASK_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", SEQ_MODES)
def test_sequence_vs_torch(mode, mask_dtype, dtype):
    """0/1 masks of several dtypes, with all-zero, left- and right-padded rows."""
    h, m, s, g = seq_inputs(("seq", mode, np.dtype(mask_dtype).name, np.dtype(dtype).name),
                            dtype)
    compare_sequence(mode, dtype, h, m.astype(mask_dtype), m, s, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", SEQ_MODES)
def test_sequence_no_mask_vs_torch(mode, dtype):
    h, m, s, g = seq_inputs(("nomask", mode, np.dtype(dtype).name), dtype, (3, 6, 4))
    compare_sequence(mode, dtype, h, None, np.ones(m.shape), s, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", SEQ_MODES)
def test_sequence_lengths_vs_torch(mode, dtype):
    """lengths= against torch on the equivalent right-padded 0/1 mask."""
    h, _, s, g = seq_inputs(("lengths", mode, np.dtype(dtype).name), dtype)
    b, t = h.shape[:2]
    lengths = np.array([0, t, 1, 3, t - 1, 0, 2, t][:b], np.int64)
    w = (np.arange(t) < lengths[:, None]).astype(np.int64)
    compare_sequence(mode, dtype, h, None, w, s, g, lengths=lengths)


@pytest.mark.parametrize("mask_dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("mode", SEQ_MODES)
def test_sequence_weighted_mask_vs_torch(mode, mask_dtype):
    """Mask values other than 0/1 weight sum/mean/mean_sqrt_len/weighted_mean, as in
    sentence-transformers' formulas, and only decide validity for the other modes."""
    h, m, s, g = seq_inputs(("weights", mode, np.dtype(mask_dtype).name), np.float64)
    rng = rng_for("weights-values", mode, np.dtype(mask_dtype).name)
    choices = [0.5, 1.0, 2.0, 3.25] if np.dtype(mask_dtype).kind == "f" else [1, 2, 3, 7]
    w = (m * rng.choice(choices, m.shape)).astype(mask_dtype)
    compare_sequence(mode, np.float64, h, w, w.astype(np.float64), s, g)


@pytest.mark.parametrize("mode", SEQ_MODES)
def test_sequence_batch_axes_and_views_vs_torch(mode):
    """h (2, 3, T, D) seen through a token-major transposed view, mask through a flipped view:
    the same results as torch on the flattened (6, T, D) batch."""
    rng = rng_for("views", mode)
    dtype = np.float64
    h = distinct(rng, (2, 3, 6, 4), dtype)
    m = make_mask(rng, 6, 6).reshape(2, 3, 6).astype(bool)
    s = rng.standard_normal((2, 3, 6)).astype(dtype)
    g = rng.standard_normal((2, 3, 4)).astype(dtype)
    hv = np.ascontiguousarray(h.transpose(2, 0, 1, 3)).transpose(1, 2, 0, 3)
    mv = np.flip(np.flip(m, 1).copy(), 1)
    sv = np.asfortranarray(s)
    sc = sv if mode == "attention" else None
    want, want_idx, want_gh, want_gs = torch_sequence(
        mode, h.reshape(6, 6, 4), m.reshape(6, 6), None if sc is None else s.reshape(6, 6),
        g.reshape(6, 4))
    empty = ~m.reshape(6, 6).any(-1)
    rows = np.ones_like(empty) if mode == "cls" else ~empty

    got = cypool.sequence_pool(hv, mv, mode, scores=sc)
    assert got.shape == (2, 3, 4)
    check(got.reshape(6, 4), want, dtype, rows, "forward")
    check_zero(got.reshape(6, 4), ~rows, "forward")
    grads = cypool.sequence_pool_backward(g, hv, mv, mode, scores=sc)
    gh = grads[0] if mode == "attention" else grads
    assert gh.shape == h.shape
    check(gh.reshape(6, 6, 4), want_gh, dtype, rows, "grad_h")
    check_zero(gh.reshape(6, 6, 4), ~rows, "grad_h")
    if mode == "attention":
        check(grads[1].reshape(6, 6), want_gs, dtype, rows, "grad_scores")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_attention_large_scores_vs_torch(dtype):
    """Scores far beyond exp's range: a stable softmax, as torch's."""
    h, m, _, g = seq_inputs(("bigscores", np.dtype(dtype).name), dtype)
    rng = rng_for("bigscores-s", np.dtype(dtype).name)
    big = 3e4 if dtype == np.float32 else 1e300
    s = (rng.choice([-1.0, 1.0], m.shape) * big * rng.random(m.shape)).astype(dtype)
    s[:, 0] = big                                   # a large score on an often masked token
    compare_sequence("attention", dtype, h, m.astype(bool), m, s, g)


def test_sequence_single_token():
    """T == 1: every mode is the token itself (or zeros when masked)."""
    rng = rng_for("single-token")
    h = distinct(rng, (4, 1, 3), np.float64)
    m = np.array([[1], [0], [1], [0]])
    s = rng.standard_normal((4, 1))
    g = rng.standard_normal((4, 3))
    for mode in SEQ_MODES:
        compare_sequence(mode, np.float64, h, m, m, s, g)


# ================================================================================ segments


def seg_inputs(key, dtype, n=23, b=7, d=4):
    rng = rng_for(*key)
    values = distinct(rng, (n, d), dtype)
    cuts = np.sort(rng.integers(0, n + 1, b + 1))
    cuts[0], cuts[-1] = 0, n                        # offsets run from 0 to N
    cuts[2] = cuts[1]                               # an empty segment
    scores = (rng.standard_normal(n) * 2).astype(dtype)
    g = (rng.standard_normal((b, d)) * 2).astype(dtype)
    return values, cuts.astype(np.int64), scores, g


def compare_segment(mode, dtype, values, offsets, scores, g):
    sc = scores if mode == "attention" else None
    want, want_idx, want_gv, want_gs = torch_grads(
        lambda v, s: torch_segment(mode, v, offsets, s), g, values, sc)
    lengths = np.diff(np.asarray(offsets))
    rows = lengths > 0
    z = ~rows

    got = cypool.segment_pool(values, offsets, mode, scores=sc)
    check(got, want, dtype, rows, f"segment {mode} forward")
    check_zero(got, z, f"segment {mode} forward")
    if mode in ORDER:
        vals, idx = cypool.segment_pool(values, offsets, mode, return_indices=True)
        np.testing.assert_array_equal(vals, got)
        assert idx.dtype == np.int64 and idx.shape == got.shape
        np.testing.assert_array_equal(idx, want_idx)

    grads = cypool.segment_pool_backward(g, values, offsets, mode, scores=sc)
    if mode == "attention":
        assert isinstance(grads, tuple) and len(grads) == 2
        gv, gs = grads
        check(gs, want_gs, dtype, None, "segment attention grad_scores")
    else:
        gv = grads
    check(gv, want_gv, dtype, None, f"segment {mode} grad_values")
    if mode in ORDER:
        gv2 = cypool.segment_pool_backward(g, values, offsets, mode, indices=idx)
        np.testing.assert_array_equal(gv2, gv)

    # the same segments by id (num_segments keeps empty segments at the end)
    by_ids = dict(segment_ids=segment_ids(offsets), num_segments=len(offsets) - 1)
    np.testing.assert_array_equal(cypool.segment_pool(values, **by_ids, mode=mode, scores=sc),
                                  got)
    if mode in ORDER:
        _, idx3 = cypool.segment_pool(values, **by_ids, mode=mode, return_indices=True)
        np.testing.assert_array_equal(idx3, want_idx)
    grads3 = cypool.segment_pool_backward(g, values, **by_ids, mode=mode, scores=sc)
    for a, b in zip(*(r if mode == "attention" else (r,) for r in (grads3, grads))):
        np.testing.assert_array_equal(a, b)


def segment_ids(offsets):
    """The segment id of every row of the segments given by ``offsets``."""
    offsets = np.asarray(offsets, np.int64)
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", SEG_MODES)
@pytest.mark.parametrize("case", ["random", "empty-ends", "single", "none", "all-empty"])
def test_segment_vs_torch(case, mode, dtype):
    values, offsets, scores, g = seg_inputs(("seg", case, mode, np.dtype(dtype).name), dtype)
    n = len(values)
    if case == "empty-ends":
        offsets = np.array([0, 0, 4, 9, 9, n, n])
    elif case == "single":
        offsets = np.array([0, n])
    elif case in ("none", "all-empty"):                 # no rows: no segment, or empty ones
        values, scores = values[:0], scores[:0]
        offsets = np.array([0]) if case == "none" else np.array([0, 0, 0])
    g = g[:len(offsets) - 1] if len(offsets) - 1 <= len(g) else None
    assert g is not None
    compare_segment(mode, dtype, values, offsets, scores, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["sum", "mean", "mean_sqrt_len", "max", "min"])
def test_segment_vs_torch_scatter(mode, dtype):
    """Against index_add / scatter_reduce, torch_scatter's formulation, forward and backward."""
    values, offsets, _, g = seg_inputs(("scatter", mode, np.dtype(dtype).name), dtype, n=40,
                                       b=9)
    want, _, want_gv = torch_grads(lambda v: torch_segment_scatter(mode, v, offsets), g, values)
    rows = np.diff(offsets) > 0
    got = cypool.segment_pool(values, offsets, mode)
    check(got, want, dtype, rows, f"{mode} forward")
    check_zero(got, ~rows, f"{mode} forward")
    check(cypool.segment_pool_backward(g, values, offsets, mode), want_gv, dtype, None,
          f"{mode} grad_values")
    # the same ids as the scatter formulation, given to cypool as segment_ids
    ids = segment_ids(offsets)
    got = cypool.segment_pool(values, segment_ids=ids, num_segments=len(offsets) - 1, mode=mode)
    check(got, want, dtype, rows, f"{mode} forward by segment_ids")
    check_zero(got, ~rows, f"{mode} forward by segment_ids")
    check(cypool.segment_pool_backward(g, values, segment_ids=ids, num_segments=len(offsets) - 1,
                                       mode=mode), want_gv, dtype, None,
          f"{mode} grad_values by segment_ids")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("given", ["offsets", "segment_ids"])
def test_segment_vs_torch_segment_reduce(given, mode, dtype):
    """Against torch.segment_reduce (lengths counted from the segment ids by torch.bincount),
    forward and backward; empty segments (torch: -inf or NaN) are zeros in cypool."""
    values, offsets, _, g = seg_inputs(("reduce", mode, given, np.dtype(dtype).name), dtype,
                                       n=31, b=8)
    offsets = np.concatenate([offsets, offsets[-1:]])     # an empty segment at the end
    g = np.concatenate([g, g[:1]])
    ids = segment_ids(offsets)
    B = len(offsets) - 1
    lengths = torch.bincount(torch.from_numpy(ids), minlength=B)
    want, _, want_gv = torch_grads(
        lambda v: torch.segment_reduce(v, mode, lengths=lengths, axis=0), g, values)
    kw = dict(offsets=offsets) if given == "offsets" else dict(segment_ids=ids, num_segments=B)
    rows = lengths.numpy() > 0
    got = cypool.segment_pool(values, mode=mode, **kw)
    check(got, want, dtype, rows, f"{mode} forward")
    check_zero(got, ~rows, f"{mode} forward")
    check(cypool.segment_pool_backward(g, values, mode=mode, **kw), want_gv, dtype, None,
          f"{mode} grad_values")


SEG_TO_SEQ = {"first": "cls", "sum": "sum", "mean": "mean", "mean_sqrt_len": "mean_sqrt_len",
              "max": "max", "min": "min", "last": "last", "attention": "attention"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", SEG_MODES)
def test_segment_packed_vs_torch_padded(mode, dtype):
    """segment_pool of packed sequences against sentence-transformers' formulas on the padded
    batch (right padding; "first" is cls), forward and backward."""
    rng = rng_for("packed", mode, np.dtype(dtype).name)
    lengths = np.array([3, 0, 6, 1, 5, 0])
    t, d = int(lengths.max()), 4
    b = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = distinct(rng, (int(offsets[-1]), d), dtype)
    scores = rng.standard_normal(len(values)).astype(dtype)
    g = rng.standard_normal((b, d)).astype(dtype)
    h = np.zeros((b, t, d), dtype)
    s = np.zeros((b, t), dtype)
    w = np.zeros((b, t))
    for i in range(b):
        lo, hi = offsets[i], offsets[i + 1]
        h[i, :hi - lo] = values[lo:hi]
        s[i, :hi - lo] = scores[lo:hi]
        w[i, :hi - lo] = 1
    sc = s if mode == "attention" else None
    want, want_idx, want_gh, want_gs = torch_sequence(SEG_TO_SEQ[mode], h, w, sc, g)
    rows = lengths > 0

    got = cypool.segment_pool(values, offsets, mode, scores=scores if sc is not None else None)
    check(got, want, dtype, rows, f"{mode} forward")
    check_zero(got, ~rows, f"{mode} forward")
    if mode in ORDER:
        _, idx = cypool.segment_pool(values, offsets, mode, return_indices=True)
        np.testing.assert_array_equal(idx[rows], (want_idx + offsets[:-1, None])[rows])
        assert np.all(idx[~rows] == -1)

    grads = cypool.segment_pool_backward(g, values, offsets, mode,
                                         scores=scores if sc is not None else None)
    gv = grads[0] if mode == "attention" else grads
    packed = np.concatenate([want_gh[i, :lengths[i]] for i in range(b)])
    check(gv, packed, dtype, None, f"{mode} grad_values")
    if mode == "attention":
        packed_s = np.concatenate([want_gs[i, :lengths[i]] for i in range(b)])
        check(grads[1], packed_s, dtype, None, "grad_scores")
