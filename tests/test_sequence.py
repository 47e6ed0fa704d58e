"""Differential tests of cypool's sequence pooling (``sequence_pool``, ``sequence_pool_backward``)
and segment pooling (``segment_pool``, ``segment_pool_backward``) against the slow references in
``reference_sequence.py`` (checked by ``test_reference_sequence.py``), central finite differences
of cypool's own forward ops, thread-count determinism, argument errors.

The binding semantics are ``shared/notes/sequence_semantics.md``.
"""

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from reference_sequence import (
    SEGMENT_MODES,
    SEQUENCE_MODES,
    ref_segment_pool,
    ref_segment_pool_backward,
    ref_sequence_coefficients,
    ref_sequence_pool,
    ref_sequence_pool_backward,
)
from support import (
    FLOAT_DTYPES,
    SETTINGS,
    assert_close,
    assert_message,
    make_grad,
    make_values,
    make_view,
    numgrad,
    random_offsets,
    ids_of,
    seeds,
    views,
    views_no_bcast,
    examples,
)

EXACT_MODES = ("max", "min", "cls", "last", "first")   # results are copies of input elements
SMOOTH_SEQUENCE_MODES = ("sum", "mean", "mean_sqrt_len", "weighted_mean", "attention")
SMOOTH_SEGMENT_MODES = ("sum", "mean", "mean_sqrt_len", "attention")
MASK_KINDS = ("none", "bool", "int8", "int64", "uint8", "int16_weights", "float16", "float32",
              "float64", "lengths")
VALUE_MODES = ("random", "ties", "zeros", "special", "nans")
OUT_VIEWS = ("contig", "flip", "step", "transpose")
INDEX_DTYPES = (np.int64, np.int32, np.int16, np.int8, np.uint8)


# ================================================================================ helpers


def _view(x, transforms, rng):
    """make_view for any dtype (bool through a uint8 view, 'step' garbage 255)."""
    if x.dtype == np.bool_:
        return make_view(x.view(np.uint8), transforms, rng).view(np.bool_)
    return make_view(x, transforms, rng)


def _values(rng, shape, dtype, mode):
    """make_values, plus 'nans': ties (integers in [-3, 3]) with about a quarter NaN."""
    if mode != "nans":
        return make_values(rng, shape, dtype, mode)
    v = make_values(rng, shape, dtype, "ties")
    v[rng.random(shape) < 0.25] = np.nan
    return v


def _snapshot(*arrays):
    return [(a, None if a is None else np.array(a, copy=True)) for a in arrays]


def _unchanged(snaps):
    for a, before in snaps:
        if a is not None:
            np.testing.assert_array_equal(a, before)
            assert np.asarray(a).dtype == before.dtype


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.dtype, a.shape, a.tobytes()


def _assert_same_bits(a, b):
    assert _bits(a) == _bits(b), "results differ between thread counts"


def assert_exact(got, want, dtype):
    """``got`` (of ``dtype``) equals the float64 reference cast to ``dtype``: same NaNs, same
    values, same sign of non-NaN values (a copied -0.0 stays -0.0; empty rows give +0.0)."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"dtype {got.dtype}, expected {np.dtype(dtype)}"
    assert got.shape == np.shape(want), f"shape {got.shape}, expected {np.shape(want)}"
    want = np.asarray(want).astype(dtype)
    np.testing.assert_array_equal(got, want)
    notnan = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[notnan]), np.signbit(want[notnan]))


def assert_values_close(got, want, mag, dtype):
    """``support.assert_close`` with non-finite reference values required exactly (NaN where the
    reference has NaN, the same infinities)."""
    got = np.asarray(got)
    dtype = np.dtype(dtype)
    assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    assert got.shape == np.shape(want), f"shape {got.shape}, expected {np.shape(want)}"
    want = np.asarray(want, dtype=np.float64)
    mag = np.asarray(mag, dtype=np.float64)
    special = ~np.isfinite(want)
    g64 = got.astype(np.float64)
    np.testing.assert_array_equal(g64[special], want[special])
    assert_close(np.where(special, 0, got).astype(dtype), np.where(special, 0.0, want),
                 np.where(special | ~np.isfinite(mag), 0.0, mag), dtype)
    # a finite reference with an infinite bound (inf cancelling) cannot happen for our inputs
    assert np.isfinite(g64[~special]).all()


def _mask_arrays(rng, kind, pattern, bshape, T, lengths_form):
    """(mask, lengths) for a mask kind; validity follows ``pattern``."""
    full = bshape + (T,)
    L = rng.integers(0, T + 1, bshape)
    if kind == "lengths":
        dt = rng.choice([np.int64, np.int32, np.int16, np.uint8])
        lengths = np.asarray(L, dtype=dt)
        if lengths.ndim == 0:
            if lengths_form == "int":
                lengths = int(lengths)
            elif lengths_form == "scalar":
                lengths = lengths[()]
        return None, lengths
    if kind == "none":
        return None, None
    if pattern == "random":
        valid = rng.random(full) < rng.choice([0.3, 0.7])
    elif pattern == "right":
        valid = np.arange(T) < np.asarray(L)[..., None]
    elif pattern == "left":
        valid = np.arange(T) >= T - np.asarray(L)[..., None]
    elif pattern == "all":
        valid = np.ones(full, bool)
    else:
        valid = np.zeros(full, bool)
    valid = np.asarray(valid).reshape(full)
    if kind == "bool":
        return valid, None
    if kind in ("int8", "int64", "uint8"):
        return valid.astype(kind), None
    if kind == "int16_weights":
        return (valid * rng.integers(1, 4, full)).astype(np.int16), None
    w = np.where(rng.random(full) < 0.5, 1.0, rng.uniform(0.25, 2.0, full))
    return (valid * w).astype(kind), None


@st.composite
def seq_cases(draw, modes=SEQUENCE_MODES, value_modes=VALUE_MODES):
    """One sequence pooling case: everything but the arrays, which ``_build`` makes from a seed."""
    nbatch = draw(st.integers(0, 2))
    return dict(
        batch=tuple(draw(st.integers(0, 3)) for _ in range(nbatch)),
        T=draw(st.integers(0, 9)),
        D=draw(st.integers(0, 9)),
        mode=draw(st.sampled_from(modes)),
        mask_kind=draw(st.sampled_from(MASK_KINDS)),
        pattern=draw(st.sampled_from(["random", "random", "right", "left", "all", "none"])),
        lengths_form=draw(st.sampled_from(["array", "int", "scalar"])),
        dtype=np.dtype(draw(st.sampled_from(FLOAT_DTYPES))),
        values=draw(st.sampled_from(value_modes)),
        hviews=draw(views),
        mviews=draw(views),
        sviews=draw(views),
        score_shift=draw(st.sampled_from([0.0, 0.0, 1000.0, -1000.0])),
        mask_positional=draw(st.booleans()),
    )


def _build(case, rng, finite=False):
    """(h, mask, lengths, scores) of a case, seen through its views."""
    bshape, T, D, dtype = case["batch"], case["T"], case["D"], case["dtype"]
    vmode = case["values"]
    if finite and vmode in ("special", "nans"):
        vmode = "random"
    h = _view(_values(rng, bshape + (T, D), dtype, vmode), case["hviews"], rng)
    mask, lengths = _mask_arrays(rng, case["mask_kind"], case["pattern"], bshape, T,
                                 case["lengths_form"])
    if mask is not None:
        mask = _view(mask, case["mviews"], rng)
    scores = None
    if case["mode"] == "attention":
        s = rng.standard_normal(bshape + (T,)) * 3 + case["score_shift"]
        scores = _view(s.astype(dtype), case["sviews"], rng)
    return h, mask, lengths, scores


def _seq_kwargs(case, mask, lengths, scores):
    kw = dict(mode=case["mode"])
    if mask is not None:
        kw["mask"] = mask
    if lengths is not None:
        kw["lengths"] = lengths
    if scores is not None:
        kw["scores"] = scores
    return kw


def _cls_without_tokens(case):
    """mode 'cls' with T == 0: a ValueError where the call has work to do; the empty batch /
    D == 0 corner is left open (not asserted)."""
    return case["mode"] == "cls" and case["T"] == 0


def _make_out(rng, shape, dtype, kind):
    """A garbage-filled writable array of ``shape`` / ``dtype`` seen as ``kind``."""
    dtype = np.dtype(dtype)
    fill = np.nan if dtype.kind == "f" else -7
    if kind == "contig" or len(shape) == 0:
        return np.full(shape, fill, dtype)
    if kind == "flip":
        return np.flip(np.full(shape, fill, dtype), -1)
    if kind == "step":
        big = np.full(shape[:-1] + (2 * shape[-1] + 1,), fill, dtype)
        return big[..., 1::2]
    big = np.full(shape[::-1], fill, dtype)
    return big.T                                      # transposed (F-order) view


def _linear_mag(h, kw):
    """Bound of the sum of |terms| of the linear modes / attention: the reference on |h| and
    |mask|."""
    kw = dict(kw)
    if "mask" in kw:
        kw["mask"] = np.abs(np.asarray(kw["mask"]))
    return ref_sequence_pool(np.abs(np.asarray(h)), **kw)[0]


def _ref_kw(kw):
    return {k: v for k, v in kw.items() if k != "mode"}


# ================================================================================ sequence forward


@settings(max_examples=examples(150), **SETTINGS)
@given(seq_cases(), seeds, st.booleans(), st.sampled_from((None,) + OUT_VIEWS))
def test_sequence_pool_matches_reference(case, seed, return_indices, out_kind):
    rng = np.random.default_rng(seed)
    h, mask, lengths, scores = _build(case, rng)
    kw = _seq_kwargs(case, mask, lengths, scores)
    mode, dtype = case["mode"], case["dtype"]
    snaps = _snapshot(h, mask, scores, None if lengths is None else np.asarray(lengths))
    if _cls_without_tokens(case):
        if case["D"] > 0 and math.prod(case["batch"]) > 0:
            with pytest.raises(ValueError):
                cypool.sequence_pool(h, **kw)
        return
    ri = return_indices and mode in ("max", "min")
    want, want_idx = ref_sequence_pool(h, mode=mode, **_ref_kw(kw))

    if case["mask_positional"] and "mask" in kw:
        m = kw.pop("mask")
        got = cypool.sequence_pool(h, m, **kw, return_indices=ri)
        kw["mask"] = m
    else:
        got = cypool.sequence_pool(h, **kw, return_indices=ri)
    if ri:
        assert isinstance(got, tuple) and len(got) == 2
        got, got_idx = got
        assert got_idx.dtype == np.int64 and got_idx.shape == want.shape
        np.testing.assert_array_equal(got_idx, want_idx)
    assert isinstance(got, np.ndarray)

    if mode in EXACT_MODES:
        assert_exact(got, want, dtype)
    else:
        assert_values_close(got, want, _linear_mag(h, _ref_kw(kw) | {"mode": mode}), dtype)

    # threads: bit-identical
    r1 = cypool.sequence_pool(h, **kw, return_indices=ri, num_threads=1)
    r2 = cypool.sequence_pool(h, **kw, return_indices=ri, num_threads=2)
    for a, b in zip(r1 if ri else (r1,), r2 if ri else (r2,)):
        _assert_same_bits(a, b)
    _assert_same_bits(r1[0] if ri else r1, got)

    # out=: the same object back, same values
    if out_kind is not None:
        out_v = _make_out(rng, want.shape, dtype, out_kind)
        if ri:
            out_i = _make_out(rng, want.shape, np.int64, out_kind)
            res = cypool.sequence_pool(h, **kw, return_indices=True, out=(out_v, out_i))
            assert res[0] is out_v and res[1] is out_i
            np.testing.assert_array_equal(out_i, want_idx)
        else:
            res = cypool.sequence_pool(h, **kw, out=out_v)
            assert res is out_v
        _assert_same_bits(out_v, got)
    _unchanged(snaps)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sequence_pool_signed_integer_weights(dtype):
    """Integer masks are weights, signs included: W == 0 -> zeros for mean, W <= 0 -> zeros for
    mean_sqrt_len, zero denominator -> zeros for weighted_mean; other modes use validity only."""
    rng = np.random.default_rng(7)
    h = rng.integers(-4, 5, (6, 5, 3)).astype(dtype)
    m = np.array([[1, -1, 0, 0, 0], [0, -1, 0, 0, 0], [2, 0, 3, -2, 1], [2, -1, 0, 0, 0],
                  [0, 0, 0, 0, 0], [-1, 1, 2, 0, -1]], dtype=np.int16)
    for mode in ("sum", "mean", "mean_sqrt_len", "weighted_mean", "max", "min", "last"):
        want, _ = ref_sequence_pool(h, m, mode)
        got = cypool.sequence_pool(h, m, mode)
        if mode in EXACT_MODES:
            assert_exact(got, want, dtype)
        else:
            assert_close(got, want, np.abs(want), dtype)
    np.testing.assert_array_equal(cypool.sequence_pool(h, m, "mean")[0], 0)
    np.testing.assert_array_equal(cypool.sequence_pool(h, m, "mean_sqrt_len")[1], 0)
    np.testing.assert_array_equal(cypool.sequence_pool(h, m, "weighted_mean")[3], 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sequence_pool_small_hand_cases(dtype):
    """A few hand-computed values (independent of the reference)."""
    h = np.array([[[1, 2], [3, 4], [5, 6]], [[1, 1], [9, 9], [2, 2]]], dtype=dtype)
    m = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    sp = cypool.sequence_pool
    np.testing.assert_array_equal(sp(h, m, "sum"), np.array([[6, 8], [0, 0]], dtype))
    np.testing.assert_array_equal(sp(h, m, "mean"), np.array([[3, 4], [0, 0]], dtype))
    np.testing.assert_array_equal(sp(h, m, "cls"), np.array([[1, 2], [1, 1]], dtype))
    np.testing.assert_array_equal(sp(h, m, "last"), np.array([[5, 6], [0, 0]], dtype))
    v, i = sp(h, m, "max", return_indices=True)
    np.testing.assert_array_equal(v, np.array([[5, 6], [0, 0]], dtype))
    np.testing.assert_array_equal(i, [[2, 2], [-1, -1]])
    v, i = sp(h, None, "min", return_indices=True)
    np.testing.assert_array_equal(i, [[0, 0], [0, 0]])
    np.testing.assert_array_equal(sp(h, lengths=np.array([2, 3]), mode="last"),
                                  np.array([[3, 4], [2, 2]], dtype))
    np.testing.assert_array_equal(sp(h, np.array([[0, 1, 1], [1, 1, 0]]), "last"),
                                  np.array([[5, 6], [9, 9]], dtype))
    np.testing.assert_array_equal(sp(h, np.array([[0, 0, 1], [1, 0, 0]]), "last"),
                                  np.array([[5, 6], [1, 1]], dtype))
    # weighted_mean: weights 1, 0, 3 -> (1*[1,2] + 3*[5,6]) / 4
    np.testing.assert_array_equal(sp(h, m, "weighted_mean"), np.array([[4, 5], [0, 0]], dtype))
    # attention, stable at large scores; a masked huge score is ignored
    s = np.array([[1000, 5000 if dtype != np.float16 else 60000, 1000], [3, 3, 3]], dtype)
    got = sp(h, m, "attention", scores=s)
    np.testing.assert_array_equal(got, np.array([[3, 4], [0, 0]], dtype))
    assert np.isfinite(got).all()
    # NaN propagation (first NaN's index) and ties (first index)
    x = np.array([[[1, 5], [np.nan, 5], [3, 5], [np.nan, 1]]], dtype=dtype)
    v, i = sp(x, None, "max", return_indices=True)
    assert np.isnan(v[0, 0]) and v[0, 1] == 5
    np.testing.assert_array_equal(i, [[1, 0]])
    v, i = sp(x, np.array([[1, 0, 1, 0]]), "min", return_indices=True)
    np.testing.assert_array_equal(v, np.array([[1, 5]], dtype))
    np.testing.assert_array_equal(i, [[0, 0]])
    # NaN in padded tokens stays out of every mode but cls
    for mode in ("sum", "mean", "mean_sqrt_len", "weighted_mean", "max", "min", "last"):
        assert not np.isnan(sp(x, np.array([[1, 0, 1, 0]]), mode)).any(), mode


# ================================================================================ sequence backward


@settings(max_examples=examples(150), **SETTINGS)
@given(seq_cases(), seeds, st.sampled_from(["same", "same", "other"]),
       st.sampled_from(FLOAT_DTYPES), views,
       st.sampled_from([None, "forward", "random", "cypool"]), st.sampled_from(INDEX_DTYPES),
       st.sampled_from((None,) + OUT_VIEWS))
def test_sequence_pool_backward_matches_reference(case, seed, gkind, other_dtype, gviews,
                                                  idx_kind, idx_dtype, out_kind):
    rng = np.random.default_rng(seed)
    mode = case["mode"]
    h, mask, lengths, scores = _build(case, rng, finite=(mode == "attention"))
    kw = _seq_kwargs(case, mask, lengths, scores)
    gdtype = case["dtype"] if gkind == "same" else np.dtype(other_dtype)
    bshape, T, D = case["batch"], case["T"], case["D"]
    g = make_grad(rng, bshape + (D,), gdtype, gviews)
    if _cls_without_tokens(case):
        if D > 0 and math.prod(bshape) > 0:
            with pytest.raises(ValueError):
                cypool.sequence_pool_backward(g, h, **kw)
        return

    indices = None
    if mode in ("max", "min") and idx_kind is not None:
        if idx_kind == "forward":
            indices = ref_sequence_pool(h, mode=mode, **_ref_kw(kw))[1]
        elif idx_kind == "cypool":
            indices = plain_indices = cypool.sequence_pool(h, **kw, return_indices=True)[1]
        else:
            indices = rng.integers(-1, T, bshape + (D,))
        if idx_kind != "cypool":
            # unsigned index dtypes only where no -1 occurs
            unsigned_ok = np.dtype(idx_dtype).kind == "i" or indices.size == 0 or \
                indices.min() >= 0
            indices = indices.astype(idx_dtype if unsigned_ok else np.int8)
        indices = _view(indices, case["mviews"], rng)
    if indices is not None:
        kw["indices"] = indices
    snaps = _snapshot(h, mask, scores, g, indices,
                      None if lengths is None else np.asarray(lengths))

    want = ref_sequence_pool_backward(g, h, mode=mode, **_ref_kw(kw))
    got = cypool.sequence_pool_backward(g, h, **kw)
    if mode == "attention":
        assert isinstance(got, tuple) and len(got) == 2
        want_h, want_s = want
        got_h, got_s = got
        assert isinstance(got_h, np.ndarray) and isinstance(got_s, np.ndarray)
        a = ref_sequence_coefficients(h.shape, mask, mode, lengths, scores)
        assert_close(got_h, want_h, np.abs(want_h), gdtype)
        # bound of |terms| of a_t (g.h_t - sum_u a_u g.h_u)
        gh = np.einsum("...d,...td->...t", np.abs(g.astype(np.float64)),
                       np.abs(h.astype(np.float64)))
        mag_s = a * (gh + np.sum(a * gh, axis=-1, keepdims=True))
        assert_close(got_s, want_s, mag_s, gdtype)
    elif mode in EXACT_MODES:
        assert_exact(got, want, gdtype)
    else:
        assert_close(got, want, np.abs(want), gdtype)
    if mode in ("max", "min") and idx_kind == "cypool":
        # the forward's own indices (before any view) give the same as recomputing them
        plain_kw = {k: v for k, v in kw.items() if k != "indices"}
        _assert_same_bits(cypool.sequence_pool_backward(g, h, **plain_kw),
                          cypool.sequence_pool_backward(g, h, **plain_kw,
                                                        indices=plain_indices))

    r1 = cypool.sequence_pool_backward(g, h, **kw, num_threads=1)
    r2 = cypool.sequence_pool_backward(g, h, **kw, num_threads=2)
    for a_, b_ in zip(r1 if mode == "attention" else (r1,), r2 if mode == "attention" else (r2,)):
        _assert_same_bits(a_, b_)

    if out_kind is not None:
        out_h = _make_out(rng, h.shape, gdtype, out_kind)
        if mode == "attention":
            out_s = _make_out(rng, h.shape[:-1], gdtype, out_kind)
            res = cypool.sequence_pool_backward(g, h, **kw, out=(out_h, out_s))
            assert res[0] is out_h and res[1] is out_s
            _assert_same_bits(out_h, got[0])
            _assert_same_bits(out_s, got[1])
        else:
            res = cypool.sequence_pool_backward(g, h, **kw, out=out_h)
            assert res is out_h
            _assert_same_bits(out_h, got)
    _unchanged(snaps)


@settings(max_examples=examples(60), **SETTINGS)
@given(st.sampled_from(SMOOTH_SEQUENCE_MODES),
       st.sampled_from(["none", "bool", "float64", "float32", "lengths", "int16_weights"]),
       st.lists(st.integers(1, 2), max_size=2), st.integers(1, 4), st.integers(1, 3), seeds)
def test_sequence_backward_finite_differences(mode, mask_kind, batch, T, D, seed):
    """cypool's backward against central differences of cypool's forward (float64)."""
    rng = np.random.default_rng(seed)
    bshape = tuple(batch)
    h = rng.standard_normal(bshape + (T, D))
    mask, lengths = _mask_arrays(rng, mask_kind, "random", bshape, T, "array")
    kw = dict(mask=mask, lengths=lengths)
    g = rng.standard_normal(bshape + (D,))
    if mode == "attention":
        s = rng.standard_normal(bshape + (T,)) * 2
        gh, gs = cypool.sequence_pool_backward(g, h, mode=mode, scores=s, **kw)
        nh = numgrad(lambda x: cypool.sequence_pool(x, mode=mode, scores=s, **kw), h, g, 1e-6)
        ns = numgrad(lambda x: cypool.sequence_pool(h, mode=mode, scores=x, **kw), s, g, 1e-6)
        np.testing.assert_allclose(gh, nh, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gs, ns, rtol=1e-6, atol=1e-7)
    else:
        gh = cypool.sequence_pool_backward(g, h, mode=mode, **kw)
        nh = numgrad(lambda x: cypool.sequence_pool(x, mode=mode, **kw), h, g, 1e-6)
        np.testing.assert_allclose(gh, nh, rtol=1e-6, atol=1e-7)


def test_sequence_backward_hand_cases():
    h = np.array([[[1.0, 9.0], [4.0, 9.0], [4.0, np.nan]]])
    g = np.array([[10.0, 20.0]])
    bw = cypool.sequence_pool_backward
    np.testing.assert_array_equal(bw(g, h, None, "max"), [[[0, 0], [10, 0], [0, 20]]])
    np.testing.assert_array_equal(bw(g, h, None, "min"), [[[10, 0], [0, 0], [0, 20]]])
    np.testing.assert_array_equal(bw(g, h, None, "max", indices=np.array([[2, -1]])),
                                  [[[0, 0], [0, 0], [10, 0]]])
    np.testing.assert_array_equal(bw(g, h, np.array([[0, 0, 0]]), "max"), np.zeros_like(h))
    m = np.array([[1, 0, 1]])
    np.testing.assert_array_equal(bw(g, h, m, "mean"), [[[5, 10], [0, 0], [5, 10]]])
    np.testing.assert_array_equal(bw(g, h, m, "last"), [[[0, 0], [0, 0], [10, 20]]])
    np.testing.assert_array_equal(bw(g, h, m, "weighted_mean"),
                                  [[[2.5, 5], [0, 0], [7.5, 15]]])
    # empty row: zero gradient, even for an infinite grad_output
    for mode in ("sum", "mean", "mean_sqrt_len", "weighted_mean", "last"):
        r = bw(np.array([[np.inf, np.nan]]), h, np.array([[0, 0, 0]]), mode)
        np.testing.assert_array_equal(r, np.zeros_like(h))
    gh, gs = bw(g, h, np.array([[0, 0, 0]]), "attention", scores=np.zeros((1, 3)))
    np.testing.assert_array_equal(gh, np.zeros_like(h))
    np.testing.assert_array_equal(gs, np.zeros((1, 3)))
    # grad dtype follows grad_output
    r = bw(g.astype(np.float16), h.astype(np.float64), m, "sum")
    assert r.dtype == np.float16 and r.shape == h.shape


# ================================================================================ segments


@st.composite
def seg_cases(draw, modes=SEGMENT_MODES, value_modes=VALUE_MODES):
    B = draw(st.integers(0, 5))
    N = draw(st.integers(0, 12)) if B else 0         # no segment holds no row
    return dict(
        N=N, B=B, D=draw(st.integers(0, 7)),
        mode=draw(st.sampled_from(modes)),
        dtype=np.dtype(draw(st.sampled_from(FLOAT_DTYPES))),
        values=draw(st.sampled_from(value_modes)),
        offsets_form=draw(st.sampled_from(["random", "ends"])),
        offsets_dtype=draw(st.sampled_from([np.int64, np.int32, np.uint16, np.int8, np.uint64])),
        vviews=draw(views),
        oviews=draw(views_no_bcast),
        sviews=draw(views),
        score_shift=draw(st.sampled_from([0.0, 0.0, 1000.0])),
    )


def _build_segments(case, rng, finite=False):
    N, B, D, dtype = case["N"], case["B"], case["D"], case["dtype"]
    vmode = case["values"]
    if finite and vmode in ("special", "nans"):
        vmode = "random"
    values = _view(_values(rng, (N, D), dtype, vmode), case["vviews"], rng)
    offs = random_offsets(rng, N, B)
    if case["offsets_form"] == "ends" and B >= 3:
        offs[1], offs[-2] = 0, N                           # empty first and last segments
    offs = _view(offs.astype(case["offsets_dtype"]), case["oviews"], rng)
    scores = None
    if case["mode"] == "attention":
        s = rng.standard_normal(N) * 3 + case["score_shift"]
        scores = _view(s.astype(dtype), case["sviews"], rng)
    return values, offs, scores


@settings(max_examples=examples(150), **SETTINGS)
@given(seg_cases(), seeds, st.booleans(), st.sampled_from((None,) + OUT_VIEWS))
def test_segment_pool_matches_reference(case, seed, return_indices, out_kind):
    rng = np.random.default_rng(seed)
    values, offs, scores = _build_segments(case, rng)
    mode, dtype = case["mode"], case["dtype"]
    snaps = _snapshot(values, offs, scores)
    ri = return_indices and mode in ("max", "min")
    kw = dict(scores=scores) if scores is not None else {}
    want, want_idx = ref_segment_pool(values, offs, mode, scores)
    got = cypool.segment_pool(values, offs, mode, **kw, return_indices=ri)
    if ri:
        assert isinstance(got, tuple) and len(got) == 2
        got, got_idx = got
        assert got_idx.dtype == np.int64 and got_idx.shape == want.shape
        np.testing.assert_array_equal(got_idx, want_idx)
    assert isinstance(got, np.ndarray)
    if mode in EXACT_MODES:
        assert_exact(got, want, dtype)
    else:
        mag = ref_segment_pool(np.abs(values), offs, mode, scores)[0]
        assert_values_close(got, want, mag, dtype)

    r1 = cypool.segment_pool(values, offs, mode, **kw, return_indices=ri, num_threads=1)
    r2 = cypool.segment_pool(values, offs, mode, **kw, return_indices=ri, num_threads=2)
    for a, b in zip(r1 if ri else (r1,), r2 if ri else (r2,)):
        _assert_same_bits(a, b)

    if out_kind is not None:
        out_v = _make_out(rng, want.shape, dtype, out_kind)
        if ri:
            out_i = _make_out(rng, want.shape, np.int64, out_kind)
            res = cypool.segment_pool(values, offs, mode, return_indices=True, out=(out_v, out_i))
            assert res[0] is out_v and res[1] is out_i
            np.testing.assert_array_equal(out_i, want_idx)
        else:
            res = cypool.segment_pool(values, offs, mode, **kw, out=out_v)
            assert res is out_v
        _assert_same_bits(out_v, got)
    _unchanged(snaps)


@settings(max_examples=examples(150), **SETTINGS)
@given(seg_cases(), seeds, st.sampled_from(["same", "other"]), st.sampled_from(FLOAT_DTYPES),
       views, st.sampled_from([None, "forward", "random", "cypool"]),
       st.sampled_from(INDEX_DTYPES), st.sampled_from((None,) + OUT_VIEWS))
def test_segment_pool_backward_matches_reference(case, seed, gkind, other_dtype, gviews,
                                                 idx_kind, idx_dtype, out_kind):
    rng = np.random.default_rng(seed)
    mode = case["mode"]
    values, offs, scores = _build_segments(case, rng, finite=(mode == "attention"))
    B, D = case["B"], case["D"]
    gdtype = case["dtype"] if gkind == "same" else np.dtype(other_dtype)
    g = make_grad(rng, (B, D), gdtype, gviews)
    kw = dict(scores=scores) if scores is not None else {}
    indices = None
    if mode in ("max", "min") and idx_kind is not None:
        if idx_kind == "forward":
            indices = ref_segment_pool(values, offs, mode)[1]
        elif idx_kind == "cypool":
            indices = cypool.segment_pool(values, offs, mode, return_indices=True)[1]
        else:                                   # anywhere inside the own segment, or -1
            o = np.asarray(offs).astype(np.int64)
            indices = np.full((B, D), -1, np.int64)
            for b in range(B):
                for d in range(D):
                    if o[b + 1] > o[b] and rng.random() < 0.8:
                        indices[b, d] = rng.integers(o[b], o[b + 1])
        if idx_kind != "cypool" and (indices.size == 0 or indices.max() < 128):
            indices = indices.astype(np.int8 if idx_dtype == np.uint8 else idx_dtype)
        indices = _view(indices, case["oviews"], rng)
        kw["indices"] = indices
    snaps = _snapshot(values, offs, scores, g, indices)

    want = ref_segment_pool_backward(g, values, offs, mode, **kw)
    got = cypool.segment_pool_backward(g, values, offs, mode, **kw)
    if mode == "attention":
        assert isinstance(got, tuple) and len(got) == 2
        want_v, want_s = want
        got_v, got_s = got
        assert_close(got_v, want_v, np.abs(want_v), gdtype)
        assert_close(got_s, want_s, _grad_scores_mag(values, offs, scores, g), gdtype)
    elif mode in EXACT_MODES:
        assert_exact(got, want, gdtype)
    else:
        assert_close(got, want, np.abs(want), gdtype)

    r1 = cypool.segment_pool_backward(g, values, offs, mode, **kw, num_threads=1)
    r2 = cypool.segment_pool_backward(g, values, offs, mode, **kw, num_threads=2)
    for a_, b_ in zip(r1 if mode == "attention" else (r1,), r2 if mode == "attention" else (r2,)):
        _assert_same_bits(a_, b_)

    if out_kind is not None:
        out_v = _make_out(rng, values.shape, gdtype, out_kind)
        if mode == "attention":
            out_s = _make_out(rng, values.shape[:1], gdtype, out_kind)
            res = cypool.segment_pool_backward(g, values, offs, mode, **kw, out=(out_v, out_s))
            assert res[0] is out_v and res[1] is out_s
            _assert_same_bits(out_v, got[0])
            _assert_same_bits(out_s, got[1])
        else:
            res = cypool.segment_pool_backward(g, values, offs, mode, **kw, out=out_v)
            assert res is out_v
            _assert_same_bits(out_v, got)
    _unchanged(snaps)


def _grad_scores_mag(values, offsets, scores, g):
    """The bound of segment attention's grad_scores: a_n (|g|.|v_n| + sum_m a_m |g|.|v_m|)
    over the segment of n."""
    o = np.asarray(offsets).astype(np.int64)
    mag_s = np.zeros(values.shape[0])
    for b in range(o.shape[0] - 1):
        seg = slice(o[b], o[b + 1])
        if o[b + 1] == o[b]:
            continue
        s = np.asarray(scores[seg], np.float64)
        a = np.exp(s - s.max())
        a /= a.sum()
        gv = np.abs(np.asarray(values[seg], np.float64)) @ np.abs(g[b].astype(np.float64))
        mag_s[seg] = a * (gv + np.sum(a * gv))
    return mag_s


@settings(max_examples=examples(50), **SETTINGS)
@given(st.sampled_from(SMOOTH_SEGMENT_MODES), st.integers(0, 7), st.integers(1, 3),
       st.integers(0, 4), seeds)
def test_segment_backward_finite_differences(mode, N, D, B, seed):
    rng = np.random.default_rng(seed)
    N = N if B else 0
    v = rng.standard_normal((N, D))
    offs = random_offsets(rng, N, B)
    g = rng.standard_normal((B, D))
    if mode == "attention":
        s = rng.standard_normal(N) * 2
        gv, gs = cypool.segment_pool_backward(g, v, offs, mode, scores=s)
        nv = numgrad(lambda x: cypool.segment_pool(x, offs, mode, scores=s), v, g, 1e-6)
        ns = numgrad(lambda x: cypool.segment_pool(v, offs, mode, scores=x), s, g, 1e-6)
        np.testing.assert_allclose(gv, nv, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gs, ns, rtol=1e-6, atol=1e-7)
    else:
        gv = cypool.segment_pool_backward(g, v, offs, mode)
        nv = numgrad(lambda x: cypool.segment_pool(x, offs, mode), v, g, 1e-6)
        np.testing.assert_allclose(gv, nv, rtol=1e-6, atol=1e-7)


def test_segment_hand_cases():
    v = np.array([[1.0, 8.0], [3.0, 2.0], [5.0, 2.0], [7.0, np.nan], [9.0, 0.0]])
    offs = np.array([0, 0, 3, 4, 5])                      # [] [rows 0-2] [row 3] [row 4]
    sp = cypool.segment_pool
    np.testing.assert_array_equal(sp(v, offs, "sum"), [[0, 0], [9, 12], [7, np.nan], [9, 0]])
    val, idx = sp(v, offs, "max", return_indices=True)
    np.testing.assert_array_equal(val, [[0, 0], [5, 8], [7, np.nan], [9, 0]])
    np.testing.assert_array_equal(idx, [[-1, -1], [2, 0], [3, 3], [4, 4]])
    np.testing.assert_array_equal(sp(v, offs, "first"), [[0, 0], [1, 8], [7, np.nan], [9, 0]])
    np.testing.assert_array_equal(sp(v, offs, "last"), [[0, 0], [5, 2], [7, np.nan], [9, 0]])
    g = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 6.0], [7.0, 8.0]])
    np.testing.assert_array_equal(cypool.segment_pool_backward(g, v, offs, "mean"),
                                  [[1, 2], [1, 2], [1, 2], [5, 6], [7, 8]])
    assert sp(v[:0], np.array([0]), "mean").shape == (0, 2)
    # the same segments by id: segment 0 has no row, 4 (past the last id) is empty too
    ids = np.array([1, 1, 1, 2, 3])
    np.testing.assert_array_equal(sp(v, segment_ids=ids, mode="sum"), sp(v, offs, "sum"))
    val, idx = sp(v, segment_ids=ids, num_segments=5, mode="max", return_indices=True)
    np.testing.assert_array_equal(val, [[0, 0], [5, 8], [7, np.nan], [9, 0], [0, 0]])
    np.testing.assert_array_equal(idx, [[-1, -1], [2, 0], [3, 3], [4, 4], [-1, -1]])


def test_segment_ids_passed_as_offsets_are_refused():
    """The reported mistake: segment ids given as offsets used to pool 15 "segments" (N, D)
    without an error; they end at B - 1, not at N, so the offsets check refuses them."""
    lens = np.array([3, 5, 0, 7])
    v = np.random.default_rng(0).standard_normal((15, 16))
    with pytest.raises(ValueError) as info:
        cypool.segment_pool(v, np.repeat(np.arange(4), lens), "mean")
    assert_message(info, r"\boffsets\b", "N=15", r"offsets\[-1\]=3\b", "segment_ids")
    with pytest.raises(ValueError, match=r"\boffsets\b"):
        cypool.segment_pool_backward(np.zeros((14, 16)), v, np.repeat(np.arange(4), lens))
    want = cypool.segment_pool(v, np.concatenate([[0], np.cumsum(lens)]), "mean")
    got = cypool.segment_pool(v, segment_ids=np.repeat(np.arange(4), lens), mode="mean")
    assert got.shape == (4, 16)
    _assert_same_bits(got, want)


# ================================================================================ segment ids


def _seg_call_kwargs(mode, scores):
    return dict(mode=mode, scores=scores) if mode == "attention" else dict(mode=mode)


def _assert_ids_equal_offsets(values, offsets, ids, num_segments, mode, scores, g, rng):
    """segment_pool and segment_pool_backward by ``segment_ids`` give the bits they give by
    ``offsets``: values, indices, gradients (with and without the forward's indices), and
    grad_scores for attention. Returns the forward result by ids."""
    kw = _seg_call_kwargs(mode, scores)
    by_ids = dict(segment_ids=ids, num_segments=num_segments)
    ri = mode in ("max", "min")
    want = cypool.segment_pool(values, offsets, **kw, return_indices=ri)
    got = cypool.segment_pool(values, **by_ids, **kw, return_indices=ri)
    for a, b in zip(*(r if ri else (r,) for r in (got, want))):
        _assert_same_bits(a, b)
    want_b = cypool.segment_pool_backward(g, values, offsets, **kw)
    got_b = cypool.segment_pool_backward(g, values, **by_ids, **kw)
    for a, b in zip(*(r if mode == "attention" else (r,) for r in (got_b, want_b))):
        _assert_same_bits(a, b)
    if ri:
        got_b = cypool.segment_pool_backward(g, values, **by_ids, **kw, indices=got[1])
        _assert_same_bits(got_b, want_b)
    return got


@settings(max_examples=examples(150), **SETTINGS)
@given(st.lists(st.integers(0, 4), max_size=7), st.integers(0, 3), st.booleans(),
       st.integers(0, 5), st.sampled_from(SEGMENT_MODES), st.sampled_from(FLOAT_DTYPES),
       st.sampled_from([np.int64, np.int32, np.int8, np.uint8, np.uint64]), views_no_bcast,
       seeds)
def test_segment_ids_equal_offsets(lengths, trailing, give_num, D, mode, dtype, ids_dtype,
                                   ids_views, seed):
    """Random segment lengths (empty ones included), empty segments past the last id through
    num_segments, N == 0: segment_ids and offsets give bit-identical results in every mode,
    forward and backward; num_segments defaults to the last id + 1 (0 without rows)."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    offsets = np.concatenate([offsets, np.repeat(offsets[-1:], trailing)])
    N = int(offsets[-1])
    ids = ids_of(offsets)
    num_segments = len(offsets) - 1 if give_num else None
    if num_segments is None:                   # segments past the last id are not there
        offsets = offsets[:(int(ids[-1]) + 2 if N else 1)]
    values = _view(_values(rng, (N, D), dtype, "ties"), [], rng)
    scores = (rng.standard_normal(N) * 3).astype(dtype) if mode == "attention" else None
    g = make_grad(rng, (len(offsets) - 1, D), dtype, [])
    ids_view = _view(ids.astype(ids_dtype), ids_views, rng)
    snaps = _snapshot(values, ids_view, scores, g)
    got = _assert_ids_equal_offsets(values, offsets, ids_view, num_segments, mode, scores, g,
                                    rng)
    res = got[0] if mode in ("max", "min") else got
    assert res.shape == (len(offsets) - 1, D)
    _unchanged(snaps)


@settings(max_examples=examples(100), **SETTINGS)
@given(st.lists(st.integers(0, 4), max_size=6), st.integers(0, 2), st.integers(0, 4),
       st.sampled_from(SEGMENT_MODES), st.sampled_from(FLOAT_DTYPES),
       st.sampled_from(VALUE_MODES), seeds)
def test_segment_ids_match_reference(lengths, trailing, D, mode, dtype, vmode, seed):
    """segment_pool / segment_pool_backward by segment_ids against the slow reference that
    groups the rows by id in a loop (no offsets)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(len(lengths)), lengths)
    N = ids.shape[0]
    num_segments = len(lengths) + trailing
    if mode == "attention" and vmode in ("special", "nans"):
        vmode = "random"
    values = _values(rng, (N, D), dtype, vmode)
    scores = (rng.standard_normal(N) * 3).astype(dtype) if mode == "attention" else None
    kw = _seg_call_kwargs(mode, scores)
    by_ids = dict(segment_ids=ids, num_segments=num_segments)
    ri = mode in ("max", "min")
    want, want_idx = ref_segment_pool(values, **by_ids, mode=mode, scores=scores)
    got = cypool.segment_pool(values, **by_ids, **kw, return_indices=ri)
    if ri:
        got, got_idx = got
        np.testing.assert_array_equal(got_idx, want_idx)
    if mode in EXACT_MODES:
        assert_exact(got, want, dtype)
    else:
        mag = ref_segment_pool(np.abs(values), **by_ids, mode=mode, scores=scores)[0]
        assert_values_close(got, want, mag, dtype)
    g = make_grad(rng, (num_segments, D), dtype, [])
    want_b = ref_segment_pool_backward(g, values, **by_ids, mode=mode, scores=scores)
    got_b = cypool.segment_pool_backward(g, values, **by_ids, **kw)
    if mode == "attention":
        assert_close(got_b[0], want_b[0], np.abs(want_b[0]), dtype)
        offsets = np.concatenate([[0], np.cumsum(lengths + [0] * trailing, dtype=np.int64)])
        assert_close(got_b[1], want_b[1], _grad_scores_mag(values, offsets, scores, g), dtype)
    elif mode in EXACT_MODES:
        assert_exact(got_b, want_b, dtype)
    else:
        assert_close(got_b, want_b, np.abs(want_b), dtype)


SEG_IDS_CASES = {
    # name: (segment lengths, num_segments or None)
    "inner-empty": ([2, 0, 3, 1], None),
    "leading-empty": ([0, 0, 4, 2], None),
    "trailing-empty": ([3, 0, 2], 6),
    "one-segment": ([5], None),
    "all-empty": ([], 3),
    "no-rows": ([], None),
    "no-rows-no-segments": ([], 0),
}


@pytest.mark.parametrize("case", list(SEG_IDS_CASES))
@pytest.mark.parametrize("mode", SEGMENT_MODES)
def test_segment_ids_every_mode(mode, case):
    """segment_ids with leading, inner and trailing (num_segments) empty segments, and N == 0
    (num_segments defaults to 0 there): the results of the equivalent offsets, zeros and index
    -1 for the empty segments."""
    lengths, num_segments = SEG_IDS_CASES[case]
    rng = np.random.default_rng(len(lengths) * 10 + SEGMENT_MODES.index(mode))
    B = num_segments if num_segments is not None else len(lengths)
    lengths = list(lengths) + [0] * (B - len(lengths))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    N, D = int(offsets[-1]), 3
    ids = ids_of(offsets)
    values = rng.standard_normal((N, D)).astype(np.float32)
    scores = rng.standard_normal(N).astype(np.float32) if mode == "attention" else None
    g = rng.standard_normal((B, D)).astype(np.float32)
    got = _assert_ids_equal_offsets(values, offsets, ids, num_segments, mode, scores, g, rng)
    res = got[0] if mode in ("max", "min") else got
    assert res.shape == (B, D) and res.dtype == np.float32
    empty = np.diff(offsets) == 0
    np.testing.assert_array_equal(res[empty], 0)
    if mode in ("max", "min"):
        np.testing.assert_array_equal(got[1][empty], -1)
    if N == 0:
        grads = cypool.segment_pool_backward(g, values, segment_ids=ids,
                                             num_segments=num_segments,
                                             **_seg_call_kwargs(mode, scores))
        for grad in grads if mode == "attention" else (grads,):
            assert grad.shape[0] == 0 and grad.dtype == np.float32


def test_segment_ids_array_likes():
    """segment_ids as a list and num_segments as a NumPy integer; the inputs stay unchanged."""
    v = np.arange(10.0).reshape(5, 2)
    ids = [0, 0, 2, 2, 2]
    want = cypool.segment_pool(v, [0, 2, 2, 5, 5], "sum")
    np.testing.assert_array_equal(
        cypool.segment_pool(v, segment_ids=ids, num_segments=np.int8(4), mode="sum"), want)
    assert ids == [0, 0, 2, 2, 2]
    out = np.full((4, 2), np.nan)
    assert cypool.segment_pool(v, segment_ids=np.array(ids), num_segments=4, mode="sum",
                               out=out) is out
    np.testing.assert_array_equal(out, want)


# ================================================================================ warnings


def _dirty_small_buffers(nbytes):
    """Leave ``nbytes`` of huge float32 values in NumPy's small-buffer cache, so that the next
    np.empty of that size starts with them (uninitialised memory must never be read)."""
    junk = [np.full(max(1, nbytes // 4), 1e30, np.float32) for _ in range(8)]
    del junk


@pytest.mark.parametrize("mode", SEGMENT_MODES)
def test_segment_no_warnings_on_finite_input(mode):
    """Finite inputs raise no RuntimeWarning (e.g. no cast of uninitialised memory), in float16
    (which goes through float32 temporaries) and float64 alike; empty segments included."""
    rng = np.random.default_rng(5)
    for dtype, offsets in itertools.product((np.float16, np.float64),
                                            ([0, 3], [0, 0, 3], [0, 3, 3], [0, 1, 1, 3])):
        v = rng.standard_normal((3, 2)).astype(dtype)
        offs = np.array(offsets)
        g = rng.standard_normal((len(offsets) - 1, 2)).astype(dtype)
        kw = dict(scores=rng.standard_normal(3).astype(dtype)) if mode == "attention" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _dirty_small_buffers(3 * 2 * 4)
            want = ref_segment_pool_backward(g, v, offs, mode, **kw)
            _dirty_small_buffers(3 * 2 * 4)
            got = cypool.segment_pool_backward(g, v, offs, mode, **kw)
            _dirty_small_buffers(g.size * 4)
            cypool.segment_pool(v, offs, mode, **kw)
        if mode == "attention":
            got, want = got[0], want[0]
        assert_close(got, want, np.abs(want), dtype)


@pytest.mark.parametrize("mode", SEQUENCE_MODES)
def test_sequence_no_warnings_on_finite_input(mode):
    rng = np.random.default_rng(6)
    for dtype in (np.float16, np.float64):
        h = rng.standard_normal((2, 3, 2)).astype(dtype)
        mask = np.array([[0, 0, 0], [0, 1, 0]], bool)
        g = rng.standard_normal((2, 2)).astype(dtype)
        kw = dict(scores=rng.standard_normal((2, 3)).astype(dtype)) if mode == "attention" \
            else {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(3):
                _dirty_small_buffers(h.size * 4)
                cypool.sequence_pool_backward(g, h, mask, mode, **kw)
                _dirty_small_buffers(g.size * 4)
                cypool.sequence_pool(h, mask, mode, **kw)


# ================================================================================ large (threads)


LARGE_MODES = SEQUENCE_MODES


@pytest.mark.parametrize("mode", LARGE_MODES)
def test_sequence_large_multithreaded(mode):
    """(8, 64, 300) float32 is above the parallel threshold: 1 and 2 threads agree bit for bit,
    and two sampled rows agree with the reference (forward and backward)."""
    rng = np.random.default_rng(11)
    h = (rng.standard_normal((8, 64, 300)) * 2).astype(np.float32)
    mask = rng.random((8, 64)) < 0.8
    mask[3] = False                                       # an empty row
    mask[5, :40] = False                                  # left-padded
    scores = (rng.standard_normal((8, 64)) * 3).astype(np.float32) if mode == "attention" \
        else None
    kw = dict(mode=mode, scores=scores) if scores is not None else dict(mode=mode)
    ri = mode in ("max", "min")
    r1 = cypool.sequence_pool(h, mask, **kw, return_indices=ri, num_threads=1)
    r2 = cypool.sequence_pool(h, mask, **kw, return_indices=ri, num_threads=2)
    rn = cypool.sequence_pool(h, mask, **kw, return_indices=ri)
    for a, b, c in zip(*(r if ri else (r,) for r in (r1, r2, rn))):
        _assert_same_bits(a, b)
        _assert_same_bits(a, c)
    g = rng.standard_normal((8, 300)).astype(np.float32)
    b1 = cypool.sequence_pool_backward(g, h, mask, **kw, num_threads=1)
    b2 = cypool.sequence_pool_backward(g, h, mask, **kw, num_threads=2)
    for a, b in zip(*(r if mode == "attention" else (r,) for r in (b1, b2))):
        _assert_same_bits(a, b)

    got = r2[0] if ri else r2
    rows = [0, 3, 5]
    sub = dict(scores=scores[rows]) if scores is not None else {}
    want, want_idx = ref_sequence_pool(h[rows], mask[rows], mode, **sub)
    if mode in EXACT_MODES:
        assert_exact(got[rows], want, np.float32)
    else:
        assert_values_close(got[rows], want,
                            ref_sequence_pool(np.abs(h[rows]), mask[rows], mode, **sub)[0],
                            np.float32)
    if ri:
        np.testing.assert_array_equal(r2[1][rows], want_idx)
    wb = ref_sequence_pool_backward(g[rows], h[rows], mask[rows], mode, **sub)
    gb = b2
    if mode == "attention":
        assert_close(gb[0][rows], wb[0], np.abs(wb[0]), np.float32)
        a = ref_sequence_coefficients(h[rows].shape, mask[rows], mode, scores=scores[rows])
        gh = np.einsum("bd,btd->bt", np.abs(g[rows].astype(np.float64)),
                       np.abs(h[rows].astype(np.float64)))
        assert_close(gb[1][rows], wb[1], a * (gh + np.sum(a * gh, -1, keepdims=True)),
                     np.float32)
    elif mode in EXACT_MODES:
        assert_exact(gb[rows], wb, np.float32)
    else:
        assert_close(gb[rows], wb, np.abs(wb), np.float32)


@pytest.mark.parametrize("mode", SEGMENT_MODES)
def test_segment_large_multithreaded(mode):
    rng = np.random.default_rng(12)
    N, D = 4000, 48
    values = (rng.standard_normal((N, D)) * 2).astype(np.float32)
    offs = random_offsets(rng, N, 40)
    offs[5] = offs[6]                                     # an empty segment
    scores = (rng.standard_normal(N) * 3).astype(np.float32) if mode == "attention" else None
    kw = dict(scores=scores) if scores is not None else {}
    ri = mode in ("max", "min")
    r1 = cypool.segment_pool(values, offs, mode, **kw, return_indices=ri, num_threads=1)
    r2 = cypool.segment_pool(values, offs, mode, **kw, return_indices=ri, num_threads=2)
    for a, b in zip(*(r if ri else (r,) for r in (r1, r2))):
        _assert_same_bits(a, b)
    g = rng.standard_normal((40, D)).astype(np.float32)
    b1 = cypool.segment_pool_backward(g, values, offs, mode, **kw, num_threads=1)
    b2 = cypool.segment_pool_backward(g, values, offs, mode, **kw, num_threads=2)
    for a, b in zip(*(r if mode == "attention" else (r,) for r in (b1, b2))):
        _assert_same_bits(a, b)
    # sampled segments against the reference (sub-offsets shifted to a slice of values)
    got = r2[0] if ri else r2
    for b in (0, 5, 39):
        lo, hi = int(offs[b]), int(offs[b + 1])
        sub_s = None if scores is None else scores[lo:hi]
        want, want_idx = ref_segment_pool(values[lo:hi], np.array([0, hi - lo]), mode, sub_s)
        if mode in EXACT_MODES:
            assert_exact(got[b:b + 1], want, np.float32)
        else:
            mag = ref_segment_pool(np.abs(values[lo:hi]), np.array([0, hi - lo]), mode, sub_s)[0]
            assert_values_close(got[b:b + 1], want, mag, np.float32)
        if ri:
            np.testing.assert_array_equal(r2[1][b], np.where(want_idx[0] >= 0,
                                                             want_idx[0] + lo, -1))
        wb = ref_segment_pool_backward(g[b:b + 1], values[lo:hi], np.array([0, hi - lo]), mode,
                                       sub_s)
        gb = b2[0] if mode == "attention" else b2
        wbv = wb[0] if mode == "attention" else wb
        if mode in EXACT_MODES:
            assert_exact(gb[lo:hi], wbv, np.float32)
        else:
            assert_close(gb[lo:hi], wbv, np.abs(wbv), np.float32)
    # by segment ids: the same bits
    ids = ids_of(offs).astype(np.int32)
    r3 = cypool.segment_pool(values, segment_ids=ids, mode=mode, **kw, return_indices=ri)
    b3 = cypool.segment_pool_backward(g, values, segment_ids=ids, mode=mode, **kw)
    for a, b in zip(*(r if ri else (r,) for r in (r2, r3))):
        _assert_same_bits(a, b)
    for a, b in zip(*(r if mode == "attention" else (r,) for r in (b2, b3))):
        _assert_same_bits(a, b)


# ================================================================================ errors


H3 = np.zeros((2, 3, 4))
G3 = np.zeros((2, 4))


ERROR_CASES = [
    # sequence_pool: dtypes
    (lambda: cypool.sequence_pool(np.zeros((2, 3, 4), np.int32)), TypeError, ["int32"]),
    (lambda: cypool.sequence_pool(np.zeros((2, 3, 4), bool)), TypeError, ["bool"]),
    (lambda: cypool.sequence_pool(np.zeros((2, 3, 4), np.complex128)), TypeError,
     ["complex128"]),
    (lambda: cypool.sequence_pool(np.zeros((2, 3, 4), object)), TypeError, ["object"]),
    (lambda: cypool.sequence_pool(np.zeros(4)), ValueError, []),
    # mask
    (lambda: cypool.sequence_pool(H3, np.ones((2, 4))), ValueError, ["mask"]),
    (lambda: cypool.sequence_pool(H3, np.ones((2, 3, 1))), ValueError, ["mask"]),
    (lambda: cypool.sequence_pool(H3, np.ones((1, 3))), ValueError, ["mask"]),
    (lambda: cypool.sequence_pool(H3, np.ones((2, 3), np.complex64)), TypeError,
     ["complex64"]),
    (lambda: cypool.sequence_pool(H3, np.ones((2, 3), object)), TypeError, ["object"]),
    (lambda: cypool.sequence_pool(H3, np.full((2, 3), "a")), TypeError, []),
    # lengths
    (lambda: cypool.sequence_pool(H3, lengths=np.array([1.0, 2.0])), TypeError, ["float64"]),
    (lambda: cypool.sequence_pool(H3, lengths=np.array([True, False])), TypeError, ["bool"]),
    (lambda: cypool.sequence_pool(H3, lengths=np.array([1, 7])), ValueError, ["lengths", "7"]),
    (lambda: cypool.sequence_pool(H3, lengths=np.array([-1, 2])), ValueError, ["lengths", "-1"]),
    (lambda: cypool.sequence_pool(H3, lengths=np.array([1, 2, 3])), ValueError, ["lengths"]),
    (lambda: cypool.sequence_pool(H3, lengths=np.array([[1, 2]])), ValueError, ["lengths"]),
    (lambda: cypool.sequence_pool(H3, np.ones((2, 3)), lengths=np.array([1, 2])), ValueError,
     []),
    (lambda: cypool.sequence_pool(H3[0], lengths=4), ValueError, ["lengths", "4"]),
    (lambda: cypool.sequence_pool(H3, lengths=np.array([2 ** 63, 1], np.uint64)), ValueError,
     ["lengths", "(?<![-\\d])9223372036854775808"]),
    # modes
    (lambda: cypool.sequence_pool(H3, mode="median"), ValueError, ["median"]),
    (lambda: cypool.sequence_pool(H3, mode="first"), ValueError, ["first"]),
    (lambda: cypool.sequence_pool(np.zeros((2, 0, 4)), mode="cls"), ValueError, []),
    (lambda: cypool.sequence_pool(H3, mode="attention"), ValueError, ["scores"]),
    (lambda: cypool.sequence_pool(H3, mode="mean", scores=np.zeros((2, 3))), ValueError,
     ["scores"]),
    (lambda: cypool.sequence_pool(H3, mode="attention", scores=np.zeros((2, 4))), ValueError,
     ["scores"]),
    (lambda: cypool.sequence_pool(H3, mode="attention", scores=np.zeros((2, 3), np.float32)),
     TypeError, ["float32"]),
    (lambda: cypool.sequence_pool(H3, mode="mean", return_indices=True), ValueError, []),
    (lambda: cypool.sequence_pool(H3, mode="cls", return_indices=True), ValueError, []),
    # out / num_threads
    (lambda: cypool.sequence_pool(H3, out=np.zeros((2, 3))), ValueError, ["out"]),
    (lambda: cypool.sequence_pool(H3, out=np.zeros((2, 4), np.float32)), ValueError, ["out"]),
    (lambda: cypool.sequence_pool(H3, out=np.broadcast_to(np.zeros(4), (2, 4))), ValueError,
     ["out"]),
    (lambda: (lambda h: cypool.sequence_pool(h, out=h[:, 0, :]))(np.zeros((2, 3, 4))),
     ValueError, ["out"]),
    (lambda: cypool.sequence_pool(H3, mode="max", return_indices=True,
                                  out=(np.zeros((2, 4)), np.zeros((2, 4), np.int32))),
     ValueError, []),
    (lambda: cypool.sequence_pool(H3, num_threads=0), ValueError, ["num_threads"]),
    (lambda: cypool.sequence_pool(H3, num_threads="2"), TypeError, ["num_threads"]),
    # sequence_pool_backward
    (lambda: cypool.sequence_pool_backward(np.zeros((2, 3)), H3), ValueError, ["grad_output"]),
    (lambda: cypool.sequence_pool_backward(np.zeros((2, 4), np.int64), H3), TypeError,
     ["int64"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="mean", indices=np.zeros((2, 4), int)),
     ValueError, ["indices"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="max", indices=np.zeros((2, 4))),
     TypeError, ["float64"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="max", indices=np.full((2, 4), 3)),
     ValueError, ["indices", "3"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="min", indices=np.full((2, 4), -2)),
     ValueError, ["indices", "-2"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="max", indices=np.zeros((2, 3), int)),
     ValueError, ["indices"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="max",
                                           indices=np.full((2, 4), 2 ** 63, np.uint64)),
     ValueError, ["indices", "(?<![-\\d])9223372036854775808"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="attention"), ValueError, ["scores"]),
    (lambda: cypool.sequence_pool_backward(G3, np.zeros((2, 3, 4), np.int16)), TypeError,
     ["int16"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, mode="bogus"), ValueError, ["bogus"]),
    (lambda: cypool.sequence_pool_backward(G3, H3, out=np.zeros((2, 4))), ValueError, ["out"]),
    # segment_pool
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0.0, 2.0])), TypeError,
     ["float64"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([False, True])), TypeError,
     ["bool"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 5])), ValueError,
     ["offsets", "5"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([-1, 2])), ValueError,
     ["offsets", "-1"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 2 ** 64 - 1], np.uint64)),
     ValueError, ["offsets", "18446744073709551615"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 3, 2, 4])), ValueError,
     ["offsets"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([], np.int64)), ValueError,
     ["offsets"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([[0, 4]])), ValueError, ["offsets"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2, 1)), np.array([0, 4])), ValueError, []),
    (lambda: cypool.segment_pool(np.zeros(4), np.array([0, 4])), ValueError, []),
    (lambda: cypool.segment_pool(np.zeros((4, 2), np.int32), np.array([0, 4])), TypeError,
     ["int32"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "cls"), ValueError, ["cls"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "weighted_mean"),
     ValueError, ["weighted_mean"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "attention"), ValueError,
     ["scores"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "attention",
                                 scores=np.zeros(3)), ValueError, ["scores"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "attention",
                                 scores=np.zeros(4, np.float32)), TypeError, ["float32"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "sum",
                                 scores=np.zeros(4)), ValueError, ["scores"]),
    (lambda: cypool.segment_pool(np.zeros((4, 2)), np.array([0, 4]), "mean",
                                 return_indices=True), ValueError, []),
    # segment_pool_backward
    (lambda: cypool.segment_pool_backward(np.zeros((1, 2)), np.zeros((4, 2)),
                                          np.array([0, 2, 4])), ValueError, ["grad_output"]),
    (lambda: cypool.segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)),
                                          np.array([0, 2, 4]), "max",
                                          indices=np.array([[0, 2], [2, 3]])), ValueError,
     ["indices"]),
    (lambda: cypool.segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)),
                                          np.array([0, 0, 4]), "min",
                                          indices=np.array([[0, -1], [2, 3]])), ValueError,
     ["indices"]),
    (lambda: cypool.segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)),
                                          np.array([0, 2, 4]), "max",
                                          indices=np.array([[0, 1], [2, -2]])), ValueError,
     ["indices"]),
    (lambda: cypool.segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)),
                                          np.array([0, 2, 4]), "max",
                                          indices=np.zeros((2, 2))), TypeError, ["float64"]),
    (lambda: cypool.segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)),
                                          np.array([0, 2, 4]), "sum",
                                          indices=np.zeros((2, 2), int)), ValueError,
     ["indices"]),
]


@pytest.mark.parametrize("call, exc, patterns", ERROR_CASES,
                         ids=[f"case{i:02d}-{c[1].__name__}" for i, c in enumerate(ERROR_CASES)])
def test_errors(call, exc, patterns):
    with pytest.raises(exc) as info:
        call()
    assert_message(info, *patterns)


def test_valid_argument_forms():
    """Forms the semantics accept: lengths as int / 0-d for 2-D h, uint lengths, empty batch,
    D == 0, offsets of one entry (B == 0), index -1 everywhere, out= on an empty result."""
    h = np.arange(12, dtype=np.float64).reshape(3, 4)
    for L in (2, np.int64(2), np.array(2), np.array(2, np.uint8)):
        np.testing.assert_array_equal(cypool.sequence_pool(h, mode="sum", lengths=L),
                                      [4, 6, 8, 10])
    assert cypool.sequence_pool(np.zeros((0, 3, 2), np.float32)).shape == (0, 2)
    assert cypool.sequence_pool(np.zeros((2, 0, 3, 2)), mode="max").shape == (2, 0, 2)
    assert cypool.sequence_pool(np.zeros((2, 3, 0)), mode="cls").shape == (2, 0)
    v, i = cypool.sequence_pool(np.zeros((2, 0, 3)), mode="max", return_indices=True)
    np.testing.assert_array_equal(v, np.zeros((2, 3)))
    np.testing.assert_array_equal(i, -np.ones((2, 3)))
    assert cypool.segment_pool(np.zeros((0, 2)), np.array([0]), "max").shape == (0, 2)
    g = cypool.segment_pool_backward(np.ones((3, 2)), np.ones((4, 2)), np.array([0, 1, 1, 4]),
                                     "max", indices=np.array([[-1, -1], [-1, -1], [1, 2]]))
    np.testing.assert_array_equal(g, [[0, 0], [1, 0], [0, 1], [0, 0]])
    out = np.empty((0, 2))
    assert cypool.sequence_pool(np.zeros((0, 3, 2)), out=out) is out


def test_array_likes_and_byte_order():
    """Lists and non-native byte order are accepted (np.asarray semantics) with the same values."""
    rng = np.random.default_rng(8)
    h = rng.standard_normal((2, 3, 4))
    m = np.array([[1, 0, 1], [1, 1, 0]])
    s = rng.standard_normal((2, 3))
    for mode in SEQUENCE_MODES:
        kw = dict(scores=s) if mode == "attention" else {}
        want = cypool.sequence_pool(h, m, mode, **kw)
        np.testing.assert_array_equal(cypool.sequence_pool(h.tolist(), m.tolist(), mode, **kw),
                                      want)
        kw_be = dict(scores=s.astype(">f8")) if mode == "attention" else {}
        got = cypool.sequence_pool(h.astype(">f8"), m.astype(">i4"), mode, **kw_be)
        assert got.dtype.kind == "f" and got.dtype.itemsize == 8
        np.testing.assert_array_equal(got, want)
    v = h.reshape(6, 4)
    np.testing.assert_array_equal(cypool.segment_pool(v.tolist(), [0, 2, 2, 6], "max"),
                                  ref_segment_pool(v, np.array([0, 2, 2, 6]), "max")[0])


@pytest.mark.parametrize("mode", ["sum", "mean", "mean_sqrt_len", "weighted_mean", "attention"])
def test_long_float32_rows_accumulate_accurately(mode):
    """Sums over thousands of float32 tokens agree with float64 to ~1e-6 (API.md: float32 sums
    accumulate in float64 or an equally accurate scheme)."""
    rng = np.random.default_rng(9)
    h = (1 + rng.random((2, 6000, 3)) * 1e-3).astype(np.float32)
    mask = np.ones((2, 6000), bool)
    mask[1, 4000:] = False
    kw = dict(scores=(rng.standard_normal((2, 6000)) * 0.1).astype(np.float32)) \
        if mode == "attention" else {}
    want = ref_sequence_pool(h, mask, mode, **kw)[0]
    got = cypool.sequence_pool(h, mask, mode, **kw)
    # positive terms: no cancellation, the bound is 1e-6 * |want| (float32 accumulation over
    # 6000 tokens errs by ~2e-6)
    assert_close(got, want, 0 * want, np.float32)
    v = h.reshape(-1, 3)
    offs = np.array([0, 6000, 10000, 12000])
    if mode != "weighted_mean":
        sv = dict(scores=kw["scores"].reshape(-1)) if kw else {}
        want = ref_segment_pool(v, offs, mode, **sv)[0]
        assert_close(cypool.segment_pool(v, offs, mode, **sv), want, 0 * want, np.float32)
