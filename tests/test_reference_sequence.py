"""Checks of the slow references in ``reference_sequence.py`` (the oracle of ``test_sequence.py``):
hand-computed tiny cases for every mode, argument validation, finite differences of the forward
references against the backward references, segment pooling against padded sequence pooling,
and (when torch is importable) the sentence-transformers pooling formulas written in torch and
torch autograd.

These do not touch cypool.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_sequence import (
    LINEAR_SEQUENCE_MODES,
    SEQUENCE_MODES,
    ref_segment_pool,
    ref_segment_pool_backward,
    ref_sequence_coefficients,
    ref_sequence_pool,
    ref_sequence_pool_backward,
    ref_token_weights,
)
from support import SETTINGS, examples, ids_of, numgrad, random_offsets, seeds

nan, inf = np.nan, np.inf


def _eq(a, b):
    np.testing.assert_array_equal(a, b)


def _close(a, b, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=rtol, atol=atol)


def _v(*args, **kw):
    """Values only."""
    return ref_sequence_pool(*args, **kw)[0]


# h of one row: three tokens of two features
H = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])


# ================================================================================ forward, hand


def test_every_mode_bool_mask_hand():
    m = np.array([[True, False, True]])
    _eq(_v(H, m, "sum"), [[6, 8]])
    _eq(_v(H, m, "mean"), [[3, 4]])
    _close(_v(H, m, "mean_sqrt_len"), [[6 / math.sqrt(2), 8 / math.sqrt(2)]])
    # weights (t + 1) * w_t = 1, 0, 3
    _close(_v(H, m, "weighted_mean"), [[(1 + 15) / 4, (2 + 18) / 4]])
    v, i = ref_sequence_pool(H, m, "max")
    _eq(v, [[5, 6]]), _eq(i, [[2, 2]])
    v, i = ref_sequence_pool(H, m, "min")
    _eq(v, [[1, 2]]), _eq(i, [[0, 0]])
    assert i.dtype == np.int64 and v.dtype == np.float64
    _eq(_v(H, m, "cls"), [[1, 2]])
    _eq(_v(H, m, "last"), [[5, 6]])
    # valid scores exp: 1, 3 (the masked one, 100, is ignored) -> a = 1/4, 0, 3/4
    s = np.array([[0.0, 100.0, math.log(3.0)]])
    _close(_v(H, m, "attention", scores=s), [[0.25 * 1 + 0.75 * 5, 0.25 * 2 + 0.75 * 6]])
    # mode without indices
    assert ref_sequence_pool(H, m, "mean")[1] is None


def test_no_mask_and_lengths_hand():
    _eq(_v(H, None, "sum"), [[9, 12]])
    _eq(_v(H, None, "mean"), [[3, 4]])
    _close(_v(H, None, "weighted_mean"), [[(1 + 6 + 15) / 6, (2 + 8 + 18) / 6]])
    _eq(_v(H, None, "last"), [[5, 6]])
    # lengths: first L tokens valid
    _eq(_v(H, mode="mean", lengths=np.array([2])), [[2, 3]])
    _eq(_v(H, mode="last", lengths=np.array([1])), [[1, 2]])
    _eq(_v(H, mode="sum", lengths=np.array([0])), [[0, 0]])
    # 2-D h: lengths is a scalar / 0-d
    _eq(_v(H[0], mode="sum", lengths=2), [4, 6])
    _eq(_v(H[0], mode="max", lengths=np.array(1)), [1, 2])
    _eq(_v(H[0], np.array([0, 1, 1]), "min"), [3, 4])
    assert _v(H[0], None, "mean").shape == (2,)


def test_float_mask_weights_hand():
    m = np.array([[0.5, 0.0, 2.0]])
    _eq(_v(H, m, "sum"), [[10.5, 13]])
    _close(_v(H, m, "mean"), [[10.5 / 2.5, 13 / 2.5]])
    _close(_v(H, m, "mean_sqrt_len"), [[10.5 / math.sqrt(2.5), 13 / math.sqrt(2.5)]])
    # weights (t + 1) * w_t = 0.5, 0, 6
    _close(_v(H, m, "weighted_mean"), [[(0.5 + 30) / 6.5, (1 + 36) / 6.5]])
    # validity only for max / min / last / attention
    _eq(_v(H, m, "max"), [[5, 6]])
    _eq(_v(H, m, "min"), [[1, 2]])
    _eq(_v(H, m, "last"), [[5, 6]])
    s = np.array([[0.0, 0.0, 0.0]])
    _close(_v(H, m, "attention", scores=s), [[3, 4]])      # not weighted by 0.5 / 2
    # float16 mask values taken as they are
    _close(_v(H, m.astype(np.float16), "mean"), [[4.2, 5.2]])


def test_integer_mask_values_are_weights():
    m = np.array([[2, 0, 1]], dtype=np.int8)
    _eq(_v(H, m, "sum"), [[7, 10]])
    _close(_v(H, m, "mean"), [[7 / 3, 10 / 3]])
    _eq(_v(H, m.astype(np.uint8), "max"), [[5, 6]])
    # signed weights summing to 0: mean, mean_sqrt_len give zeros; sum does not
    m = np.array([[1, -1, 0]], dtype=np.int64)
    _eq(_v(H, m, "sum"), [[-2, -2]])
    _eq(_v(H, m, "mean"), [[0, 0]])
    _eq(_v(H, m, "mean_sqrt_len"), [[0, 0]])
    # W < 0: mean divides, mean_sqrt_len gives zeros
    m = np.array([[0, -1, 0]], dtype=np.int64)
    _eq(_v(H, m, "mean"), [[3, 4]])
    _eq(_v(H, m, "mean_sqrt_len"), [[0, 0]])
    # weighted_mean denominator 1*2 + 2*(-1) == 0 -> zeros
    m = np.array([[2, -1, 0]], dtype=np.int64)
    _eq(_v(H, m, "weighted_mean"), [[0, 0]])
    _eq(_v(H, m, "last"), [[3, 4]])


def test_empty_rows_every_mode():
    h = np.array([[[nan, inf], [1.0, -2.0]], [[3.0, 4.0], [5.0, 6.0]]])
    m = np.array([[0, 0], [1, 1]], dtype=bool)
    s = np.array([[1.0, 2.0], [0.0, 0.0]])
    for mode in SEQUENCE_MODES:
        v, i = ref_sequence_pool(h, m, mode, scores=s if mode == "attention" else None)
        if mode == "cls":
            _eq(v[0], [nan, inf])                               # the mask does not matter
        else:
            _eq(v[0], [0, 0])
            assert not np.signbit(v[0]).any()
        if mode in ("max", "min"):
            _eq(i[0], [-1, -1])
    # T == 0: every row is empty
    for mode in SEQUENCE_MODES:
        if mode == "cls":
            continue
        s0 = np.zeros((2, 0)) if mode == "attention" else None
        v, i = ref_sequence_pool(np.zeros((2, 0, 3)), mode=mode, scores=s0)
        _eq(v, np.zeros((2, 3)))
        if i is not None:
            _eq(i, -np.ones((2, 3)))
    # D == 0 and empty batch
    assert _v(np.zeros((2, 4, 0)), None, "max").shape == (2, 0)
    assert _v(np.zeros((0, 4, 3)), None, "mean").shape == (0, 3)
    assert _v(np.zeros((3, 0, 4, 3)), None, "cls").shape == (3, 0, 3)


def test_invalid_tokens_never_contribute():
    """A NaN / inf in a padded token does not leak into any mode."""
    h = np.array([[[1.0, 2.0], [nan, inf], [3.0, -inf]]])
    m = np.array([[1, 0, 1]])
    _eq(_v(h, m, "sum"), [[4, -inf]])
    _eq(_v(h, m, "mean"), [[2, -inf]])
    _eq(_v(h, lengths=np.array([1]), mode="mean"), [[1, 2]])
    _eq(_v(h, m, "max"), [[3, 2]])
    s = np.array([[0.0, nan, 0.0]])
    _eq(_v(h, m, "attention", scores=s), [[2, -inf]])


def test_max_min_nan_and_ties():
    col = lambda vals: np.array(vals, dtype=np.float64).reshape(1, -1, 1)  # noqa: E731
    v, i = ref_sequence_pool(col([1, nan, 3, nan]), None, "max")
    assert np.isnan(v[0, 0]) and i[0, 0] == 1
    v, i = ref_sequence_pool(col([1, 3, nan]), None, "min")
    assert np.isnan(v[0, 0]) and i[0, 0] == 2
    v, i = ref_sequence_pool(col([nan, 2, 1]), np.array([[0, 1, 1]]), "max")
    assert v[0, 0] == 2 and i[0, 0] == 1                     # a masked NaN is ignored
    v, i = ref_sequence_pool(col([2, 5, 5, 1]), None, "max")
    assert v[0, 0] == 5 and i[0, 0] == 1                     # ties: the first
    v, i = ref_sequence_pool(col([3, 1, 4, 1]), None, "min")
    assert v[0, 0] == 1 and i[0, 0] == 1
    v, i = ref_sequence_pool(col([-inf, -inf]), None, "max")
    assert v[0, 0] == -inf and i[0, 0] == 0
    v, i = ref_sequence_pool(col([-0.0, 0.0]), None, "max")
    assert i[0, 0] == 0 and np.signbit(v[0, 0])              # -0 == 0: the first stays
    v, i = ref_sequence_pool(col([5, 7, 9]), np.array([[0, 1, 0]]), "min")
    assert v[0, 0] == 7 and i[0, 0] == 1
    # per feature
    h = np.array([[[1.0, 9.0], [4.0, 9.0], [4.0, nan]]])
    v, i = ref_sequence_pool(h, None, "max")
    _eq(v, [[4, nan]]), _eq(i, [[1, 2]])
    v, i = ref_sequence_pool(h, None, "min")
    _eq(v, [[1, nan]]), _eq(i, [[0, 2]])


def test_last_left_right_padded_and_cls():
    h = np.arange(5.0).reshape(1, 5, 1) * 10
    for mask, t in [([0, 0, 1, 1, 1], 4), ([1, 1, 0, 0, 0], 1), ([0, 1, 0, 1, 0], 3),
                    ([1, 0, 0, 0, 0], 0), ([0, 0, 0, 0, 0.5], 4)]:
        _eq(_v(h, np.array([mask]), "last"), [[10 * t]])
    _eq(_v(h, np.array([[0, 0, 0, 0, 0]]), "last"), [[0]])
    # cls: token 0 whatever the mask (even masked, even with lengths 0)
    _eq(_v(h + 1, np.array([[0, 1, 1, 1, 1]]), "cls"), [[1]])
    _eq(_v(h + 1, mode="cls", lengths=np.array([0])), [[1]])


def test_attention_stable_large_scores():
    h = np.array([[[1.0, -1.0], [3.0, 2.0], [7.0, 5.0]]])
    s = np.array([[1000.0, 999.0, -1000.0]])
    e = math.exp(-1.0)
    a = [1 / (1 + e), e / (1 + e), 0.0]
    v = _v(h, None, "attention", scores=s)
    assert np.isfinite(v).all()
    _close(v, [[a[0] * 1 + a[1] * 3, a[0] * -1 + a[1] * 2]])
    _close(_v(h, None, "attention", scores=np.array([[1000.0, 1000.0, 1000.0]])),
           [[11 / 3, 2]])
    # only one valid token: it gets all the weight, whatever its score
    _close(_v(h, np.array([[0, 0, 1]]), "attention", scores=s), [[7, 5]])
    _close(_v(h, np.array([[0, 1, 0]]), "attention", scores=np.array([[0.0, -1e300, 1e300]])),
           [[3, 2]])
    # float16 scores of 60000 (exp would overflow without the shift)
    s16 = np.array([[60000, 60000, 0]], dtype=np.float16)
    _close(_v(h.astype(np.float16), None, "attention", scores=s16), [[2, 0.5]])


def test_batch_axes_agree_with_rows():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((2, 3, 4, 5))
    m = rng.random((2, 3, 4)) < 0.6
    s = rng.standard_normal((2, 3, 4))
    for mode in SEQUENCE_MODES:
        sc = s if mode == "attention" else None
        v, i = ref_sequence_pool(h, m, mode, scores=sc)
        for b in np.ndindex(2, 3):
            vb, ib = ref_sequence_pool(h[b][None], m[b][None], mode,
                                       scores=None if sc is None else sc[b][None])
            _eq(v[b], vb[0])
            if i is not None:
                _eq(i[b], ib[0])


def test_token_weights_and_coefficients():
    _eq(ref_token_weights((2, 3, 1), lengths=np.array([0, 2])), [[0, 0, 0], [1, 1, 0]])
    _eq(ref_token_weights((3, 4)), [1, 1, 1])
    _eq(ref_token_weights((1, 2, 4), mask=np.array([[True, False]])), [[1, 0]])
    m = np.array([[0.5, 0.0, 2.0]])
    _close(ref_sequence_coefficients(H.shape, m, "mean"), [[0.2, 0, 0.8]])
    _close(ref_sequence_coefficients(H.shape, m, "weighted_mean"), [[0.5 / 6.5, 0, 6 / 6.5]])
    _eq(ref_sequence_coefficients(H.shape, m, "cls"), [[1, 0, 0]])
    _eq(ref_sequence_coefficients(H.shape, np.array([[0, 1, 0]]), "cls"), [[1, 0, 0]])
    _eq(ref_sequence_coefficients(H.shape, m, "last"), [[0, 0, 1]])
    # the coefficients reproduce the forward of every linear mode
    rng = np.random.default_rng(2)
    h = rng.standard_normal((3, 5, 2))
    m = rng.random((3, 5)) * (rng.random((3, 5)) < 0.7)
    s = rng.standard_normal((3, 5)) * 3
    for mode in LINEAR_SEQUENCE_MODES:
        sc = s if mode == "attention" else None
        c = ref_sequence_coefficients(h.shape, m, mode, scores=sc)
        _close(np.einsum("bt,btd->bd", c, h), _v(h, m, mode, scores=sc))


# ================================================================================ validation


@pytest.mark.parametrize("call, exc", [
    (lambda: ref_sequence_pool(np.zeros((2, 3), np.int32)), TypeError),
    (lambda: ref_sequence_pool(np.zeros((2, 3), np.complex128)), TypeError),
    (lambda: ref_sequence_pool(np.zeros((2, 3), bool)), TypeError),
    (lambda: ref_sequence_pool(np.zeros(3)), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3)), mode="median"), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3)), mode="first"), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), np.ones((2, 4))), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), np.ones((2, 3), np.complex64)), TypeError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), np.ones((2, 3)), lengths=np.ones(2, int)),
     ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), lengths=np.ones(2)), TypeError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), lengths=np.ones(2, bool)), TypeError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), lengths=np.array([1, 4])), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), lengths=np.array([-1, 0])), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), lengths=np.array([1, 2, 3])), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 0, 4)), mode="cls"), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), mode="attention"), ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), mode="mean", scores=np.zeros((2, 3))),
     ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), mode="attention", scores=np.zeros((2, 4))),
     ValueError),
    (lambda: ref_sequence_pool(np.zeros((2, 3, 4)), mode="attention",
                               scores=np.zeros((2, 3), np.float32)), TypeError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 3)), np.zeros((2, 3, 4))), ValueError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 4), int), np.zeros((2, 3, 4))), TypeError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 4)), np.zeros((2, 3, 4)), mode="mean",
                                        indices=np.zeros((2, 4), int)), ValueError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 4)), np.zeros((2, 3, 4)), mode="max",
                                        indices=np.zeros((2, 4))), TypeError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 4)), np.zeros((2, 3, 4)), mode="max",
                                        indices=np.full((2, 4), 3)), ValueError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 4)), np.zeros((2, 3, 4)), mode="max",
                                        indices=np.full((2, 4), -2)), ValueError),
    (lambda: ref_sequence_pool_backward(np.zeros((2, 4)), np.zeros((2, 3, 4)), mode="max",
                                        indices=np.zeros((2, 3), int)), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 5])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([2, 1])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([-1, 1])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([], int)), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0.0, 1.0])), TypeError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([False, True])), TypeError),
    (lambda: ref_segment_pool(np.zeros((4, 2, 1)), np.array([0, 4])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2), np.int64), np.array([0, 4])), TypeError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]), "cls"), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]), "weighted_mean"), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]), "attention"), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]), "attention",
                              scores=np.zeros(3)), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]), "attention",
                              scores=np.zeros(4, np.float32)), TypeError),
    # offsets run from 0 to N
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 1])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([1, 4])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([4])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 0, 1, 1])), ValueError),
    # segment_ids (one per row, non-decreasing, in [0, num_segments)), not with offsets
    (lambda: ref_segment_pool(np.zeros((4, 2))), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]),
                              segment_ids=np.array([0, 0, 1, 1])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), np.array([0, 4]), num_segments=1), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0, 0, 1])), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0, 1, 0, 1])),
     ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([-1, 0, 0, 1])),
     ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0, 0, 1, 1]),
                              num_segments=1), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0, 0, 1, 1]),
                              num_segments=-1), ValueError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0, 0, 1, 1]),
                              num_segments=True), TypeError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0, 0, 1, 1]),
                              num_segments=2.0), TypeError),
    (lambda: ref_segment_pool(np.zeros((4, 2)), segment_ids=np.array([0.0, 0, 1, 1])),
     TypeError),
    (lambda: ref_segment_pool_backward(np.zeros((1, 2)), np.zeros((4, 2)), np.array([0, 2, 4])),
     ValueError),
    (lambda: ref_segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)), np.array([0, 2, 4]),
                                       "max", indices=np.array([[0, 2], [2, 3]])), ValueError),
    (lambda: ref_segment_pool_backward(np.zeros((2, 2)), np.zeros((4, 2)), np.array([0, 0, 4]),
                                       "max", indices=np.array([[0, -1], [2, 3]])), ValueError),
])
def test_reference_validation(call, exc):
    with pytest.raises(exc):
        call()


def test_reference_validation_accepts():
    """Argument forms that are valid: offsets [0] (B == 0, N == 0), empty segment ids with and
    without num_segments, index -1 and in-range user indices, uint lengths."""
    v, i = ref_segment_pool(np.ones((0, 2)), np.array([0]), "max")
    assert v.shape == (0, 2) and i.shape == (0, 2)
    v, i = ref_segment_pool(np.ones((0, 2)), segment_ids=np.zeros(0, int), mode="max")
    assert v.shape == (0, 2) and i.shape == (0, 2)
    v, i = ref_segment_pool(np.ones((0, 2)), segment_ids=np.zeros(0, int), num_segments=2,
                            mode="max")
    _eq(v, np.zeros((2, 2))), _eq(i, np.full((2, 2), -1))
    ref_segment_pool_backward(np.zeros((3, 2)), np.zeros((4, 2)), np.array([0, 1, 1, 4]), "max",
                              indices=np.array([[-1, -1], [-1, -1], [1, 2]]))
    ref_sequence_pool_backward(np.zeros((2, 4)), np.zeros((2, 3, 4)), mode="min",
                               indices=np.array([[-1, 0, 1, 2]] * 2, np.int8))
    _eq(_v(np.ones((2, 3, 1)), mode="sum", lengths=np.array([3, 1], np.uint8)), [[3], [1]])


# ================================================================================ backward, hand


def test_backward_linear_modes_hand():
    m = np.array([[1, 0, 1]])
    g = np.array([[10.0, 20.0]])
    _eq(ref_sequence_pool_backward(g, H, m, "sum"), [[[10, 20], [0, 0], [10, 20]]])
    _eq(ref_sequence_pool_backward(g, H, m, "mean"), [[[5, 10], [0, 0], [5, 10]]])
    _close(ref_sequence_pool_backward(g, H, m, "mean_sqrt_len"),
           np.array([[[10, 20], [0, 0], [10, 20]]]) / math.sqrt(2))
    _close(ref_sequence_pool_backward(g, H, m, "weighted_mean"),
           [[[2.5, 5], [0, 0], [7.5, 15]]])
    _eq(ref_sequence_pool_backward(g, H, m, "cls"), [[[10, 20], [0, 0], [0, 0]]])
    _eq(ref_sequence_pool_backward(g, H, np.array([[0, 1, 1]]), "cls"),
        [[[10, 20], [0, 0], [0, 0]]])
    _eq(ref_sequence_pool_backward(g, H, np.array([[0, 1, 0]]), "last"),
        [[[0, 0], [10, 20], [0, 0]]])
    # empty rows: zero gradient, even for an infinite g
    for mode in ("sum", "mean", "mean_sqrt_len", "weighted_mean", "last"):
        r = ref_sequence_pool_backward(np.array([[inf, nan]]), H, np.array([[0, 0, 0]]), mode)
        _eq(r, np.zeros_like(H))
    # float weights
    _close(ref_sequence_pool_backward(g, H, np.array([[0.5, 0.0, 2.0]]), "mean"),
           [[[2, 4], [0, 0], [8, 16]]])


def test_backward_max_min_hand():
    h = np.array([[[1.0, 9.0], [4.0, 9.0], [4.0, nan]]])
    g = np.array([[10.0, 20.0]])
    _eq(ref_sequence_pool_backward(g, h, None, "max"), [[[0, 0], [10, 0], [0, 20]]])
    _eq(ref_sequence_pool_backward(g, h, None, "min"), [[[10, 0], [0, 0], [0, 20]]])
    _eq(ref_sequence_pool_backward(g, h, np.array([[1, 0, 0]]), "max"),
        [[[10, 20], [0, 0], [0, 0]]])
    _eq(ref_sequence_pool_backward(g, h, np.array([[0, 0, 0]]), "max"), np.zeros_like(h))
    # user indices are used as given; -1 means no gradient
    _eq(ref_sequence_pool_backward(g, h, None, "max", indices=np.array([[2, -1]])),
        [[[0, 0], [0, 0], [10, 0]]])
    _eq(ref_sequence_pool_backward(g, h, np.array([[0, 0, 0]]), "min",
                                   indices=np.array([[0, 1]], np.int32)),
        [[[10, 0], [0, 20], [0, 0]]])


def test_backward_attention_hand():
    h = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    s = np.array([[0.0, math.log(3.0), 7.0]])
    m = np.array([[1, 1, 0]])
    g = np.array([[2.0, 4.0]])
    gh, gs = ref_sequence_pool_backward(g, h, m, "attention", scores=s)
    _close(gh, [[[0.5, 1.0], [1.5, 3.0], [0, 0]]])
    # dots g.h_t = 2, 4; mean dot = 0.25*2 + 0.75*4 = 3.5
    _close(gs, [[0.25 * (2 - 3.5), 0.75 * (4 - 3.5), 0.0]])
    gh, gs = ref_sequence_pool_backward(g, h, np.array([[0, 0, 0]]), "attention", scores=s)
    _eq(gh, np.zeros_like(h)), _eq(gs, np.zeros_like(s))


# ============================================================================ finite differences


def _random_case(rng, shape, mask_kind):
    T = shape[-2]
    bshape = shape[:-1]
    if mask_kind == "none":
        return dict()
    if mask_kind == "bool":
        return dict(mask=rng.random(bshape) < 0.6)
    if mask_kind == "float":
        return dict(mask=rng.uniform(0.1, 2, bshape) * (rng.random(bshape) < 0.7))
    return dict(lengths=rng.integers(0, T + 1, shape[:-2]))


@settings(max_examples=examples(60), **SETTINGS)
@given(st.sampled_from(["sum", "mean", "mean_sqrt_len", "weighted_mean", "attention"]),
       st.sampled_from(["none", "bool", "float", "lengths"]),
       st.lists(st.integers(1, 2), max_size=2), st.integers(1, 4), st.integers(1, 3), seeds)
def test_sequence_backward_finite_differences(mode, mask_kind, batch, T, D, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(batch) + (T, D)
    h = rng.standard_normal(shape)
    kw = _random_case(rng, shape, mask_kind)
    g = rng.standard_normal(shape[:-2] + (D,))
    if mode == "attention":
        s = rng.standard_normal(shape[:-1]) * 2
        gh, gs = ref_sequence_pool_backward(g, h, mode=mode, scores=s, **kw)
        _close(gh, numgrad(lambda x: _v(x, mode=mode, scores=s, **kw), h, g, 1e-6),
               rtol=1e-6, atol=1e-7)
        _close(gs, numgrad(lambda x: _v(h, mode=mode, scores=x, **kw), s, g, 1e-6),
               rtol=1e-6, atol=1e-7)
    else:
        gh = ref_sequence_pool_backward(g, h, mode=mode, **kw)
        _close(gh, numgrad(lambda x: _v(x, mode=mode, **kw), h, g, 1e-6), rtol=1e-6, atol=1e-7)


@settings(max_examples=examples(40), **SETTINGS)
@given(st.sampled_from(["max", "min", "cls", "last", "first"]),
       st.sampled_from(["none", "bool", "lengths"]), st.integers(1, 4), st.integers(1, 3), seeds)
def test_piecewise_backward_finite_differences(mode, mask_kind, T, D, seed):
    """Away from ties the gather modes are differentiable too (distinct values)."""
    rng = np.random.default_rng(seed)
    shape = (2, T, D)
    h = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape)
    g = rng.standard_normal((2, D))
    if mode == "first":   # segment mode: values (N, D) with offsets
        vals = h.reshape(-1, D)
        offs = random_offsets(rng, vals.shape[0], 3)
        got = ref_segment_pool_backward(g[:1].repeat(3, 0), vals, offs, mode)
        want = numgrad(lambda x: ref_segment_pool(x, offs, mode)[0], vals, g[:1].repeat(3, 0),
                       1e-3)
        _close(got, want, rtol=1e-9, atol=1e-9)
        return
    kw = _random_case(rng, shape, mask_kind)
    got = ref_sequence_pool_backward(g, h, mode=mode, **kw)
    _close(got, numgrad(lambda x: _v(x, mode=mode, **kw), h, g, 1e-3), rtol=1e-9, atol=1e-9)


@settings(max_examples=examples(60), **SETTINGS)
@given(st.sampled_from(["sum", "mean", "mean_sqrt_len", "attention"]),
       st.integers(0, 8), st.integers(1, 3), st.integers(0, 4), seeds)
def test_segment_backward_finite_differences(mode, N, D, B, seed):
    rng = np.random.default_rng(seed)
    N = N if B else 0
    v = rng.standard_normal((N, D))
    offs = random_offsets(rng, N, B)
    g = rng.standard_normal((B, D))
    if mode == "attention":
        s = rng.standard_normal(N) * 2
        gv, gs = ref_segment_pool_backward(g, v, offs, mode, scores=s)
        _close(gv, numgrad(lambda x: ref_segment_pool(x, offs, mode, s)[0], v, g, 1e-6),
               rtol=1e-6, atol=1e-7)
        _close(gs, numgrad(lambda x: ref_segment_pool(v, offs, mode, x)[0], s, g, 1e-6),
               rtol=1e-6, atol=1e-7)
    else:
        gv = ref_segment_pool_backward(g, v, offs, mode)
        _close(gv, numgrad(lambda x: ref_segment_pool(x, offs, mode)[0], v, g, 1e-6),
               rtol=1e-6, atol=1e-7)


# ================================================================================ segments


def test_segment_hand():
    v = np.array([[3.0, 2.0], [5.0, 2.0], [7.0, nan]])
    offs = np.array([0, 0, 2, 3])          # [] [rows 0, 1] [row 2]
    _eq(ref_segment_pool(v, offs, "sum")[0], [[0, 0], [8, 4], [7, nan]])
    _eq(ref_segment_pool(v, offs, "mean")[0], [[0, 0], [4, 2], [7, nan]])
    _close(ref_segment_pool(v[:2], offs[:3], "mean_sqrt_len")[0],
           [[0, 0], [8 / math.sqrt(2), 4 / math.sqrt(2)]])
    val, idx = ref_segment_pool(v, offs, "max")
    _eq(val, [[0, 0], [5, 2], [7, nan]]), _eq(idx, [[-1, -1], [1, 0], [2, 2]])
    val, idx = ref_segment_pool(v, offs, "min")
    _eq(val, [[0, 0], [3, 2], [7, nan]]), _eq(idx, [[-1, -1], [0, 0], [2, 2]])
    _eq(ref_segment_pool(v, offs, "first")[0], [[0, 0], [3, 2], [7, nan]])
    _eq(ref_segment_pool(v, offs, "last")[0], [[0, 0], [5, 2], [7, nan]])
    s = np.array([0.0, math.log(3.0), 5.0])
    _close(ref_segment_pool(v[:2], offs[:3], "attention", s[:2])[0],
           [[0, 0], [0.25 * 3 + 0.75 * 5, 2]])
    assert ref_segment_pool(v, offs, "sum")[1] is None
    g = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    _eq(ref_segment_pool_backward(g, v, offs, "sum"), [[3, 4], [3, 4], [5, 6]])
    _eq(ref_segment_pool_backward(g, v, offs, "mean"), [[1.5, 2], [1.5, 2], [5, 6]])
    _eq(ref_segment_pool_backward(g, v, offs, "max"), [[0, 4], [3, 0], [5, 6]])
    _eq(ref_segment_pool_backward(g, v, offs, "first"), [[3, 4], [0, 0], [5, 6]])
    _eq(ref_segment_pool_backward(g, v, offs, "last"), [[0, 0], [3, 4], [5, 6]])
    _eq(ref_segment_pool_backward(g, v, offs, "min", indices=np.array([[-1, -1], [1, -1],
                                                                       [2, 2]])),
        [[0, 0], [3, 0], [5, 6]])
    gv, gs = ref_segment_pool_backward(g[:2], v[:2], offs[:3], "attention", s[:2])
    _close(gv, [[0.75, 1.0], [2.25, 3.0]])
    # dots: g1.v0 = 3*3 + 4*2 = 17, g1.v1 = 15 + 8 = 23; mean 0.25*17 + 0.75*23 = 21.5
    _close(gs, [0.25 * (17 - 21.5), 0.75 * (23 - 21.5)])


def test_segment_hand_by_ids():
    """The segments of test_segment_hand by id, one more empty segment through num_segments."""
    v = np.array([[3.0, 2.0], [5.0, 2.0], [7.0, nan]])
    ids = np.array([1, 1, 2])
    _eq(ref_segment_pool(v, segment_ids=ids, mode="sum")[0], [[0, 0], [8, 4], [7, nan]])
    val, idx = ref_segment_pool(v, segment_ids=ids, num_segments=4, mode="max")
    _eq(val, [[0, 0], [5, 2], [7, nan], [0, 0]]), _eq(idx, [[-1, -1], [1, 0], [2, 2], [-1, -1]])
    g = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    _eq(ref_segment_pool_backward(g, v, segment_ids=ids, num_segments=4, mode="mean"),
        [[1.5, 2], [1.5, 2], [5, 6]])
    _eq(ref_segment_pool(v[:0], segment_ids=ids[:0], mode="sum")[0], np.zeros((0, 2)))


@settings(max_examples=examples(60), **SETTINGS)
@given(st.sampled_from(["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last",
                        "attention"]), st.lists(st.integers(0, 3), max_size=5),
       st.integers(0, 2), st.integers(0, 3), seeds)
def test_segment_by_ids_matches_by_offsets(mode, lengths, trailing, D, seed):
    """The group-by-id loop and the offsets loop of the reference agree (forward and
    backward), num_segments adding empty segments at the end."""
    rng = np.random.default_rng(seed)
    offs = np.concatenate([[0], np.cumsum(lengths + [0] * trailing, dtype=np.int64)])
    N, B = int(offs[-1]), len(offs) - 1
    v = rng.integers(-3, 4, (N, D)).astype(np.float64)      # ties on purpose
    s = rng.standard_normal(N) * 3 if mode == "attention" else None
    by_ids = dict(segment_ids=ids_of(offs), num_segments=B)
    want, want_i = ref_segment_pool(v, offs, mode, s)
    got, got_i = ref_segment_pool(v, mode=mode, scores=s, **by_ids)
    _eq(got, want), _eq(got_i, want_i)
    g = rng.standard_normal((B, D))
    want = ref_segment_pool_backward(g, v, offs, mode, s)
    got = ref_segment_pool_backward(g, v, mode=mode, scores=s, **by_ids)
    for a, b in zip(*(r if mode == "attention" else (r,) for r in (got, want))):
        _eq(a, b)


@settings(max_examples=examples(60), **SETTINGS)
@given(st.sampled_from(["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last",
                        "attention"]), st.integers(0, 10), st.integers(0, 3), st.integers(0, 4),
       seeds)
def test_segment_matches_padded_sequence(mode, N, D, B, seed):
    """segment_pool == sequence_pool of the segments padded to one batch with lengths (first ==
    cls where the segment is not empty), indices shifted by each segment's start."""
    rng = np.random.default_rng(seed)
    N = N if B else 0
    v = rng.integers(-3, 4, (N, D)).astype(np.float64)      # ties on purpose
    offs = random_offsets(rng, N, B)
    s = rng.standard_normal(N) * 3 if mode == "attention" else None
    got, gi = ref_segment_pool(v, offs, mode, s)
    lens = np.diff(offs)
    T = int(lens.max()) if B else 0
    h = np.full((B, T, D), np.nan)                          # padding must not matter
    sc = np.full((B, T), np.nan) if s is not None else None
    for b in range(B):
        h[b, :lens[b]] = v[offs[b]:offs[b + 1]]
        if s is not None:
            sc[b, :lens[b]] = s[offs[b]:offs[b + 1]]
    seq_mode = "cls" if mode == "first" else mode
    if seq_mode == "cls" and T == 0:
        _eq(got, np.zeros((B, D)))
        return
    want, wi = ref_sequence_pool(h, mode=seq_mode, lengths=lens, scores=sc)
    if mode == "first":
        want[lens == 0] = 0.0
    _close(got, want)
    if gi is not None:
        _eq(gi, np.where(wi >= 0, wi + offs[:-1, None], -1))
    g = rng.standard_normal((B, D))
    gb = ref_segment_pool_backward(g, v, offs, mode, s)
    if seq_mode == "cls":
        return
    hb = ref_sequence_pool_backward(g, np.nan_to_num(h), mode=seq_mode, lengths=lens, scores=sc)
    if mode == "attention":
        gb, gsb = gb
        hb, hsb = hb
    for b in range(B):
        _close(gb[offs[b]:offs[b + 1]], hb[b, :lens[b]])
        if mode == "attention":
            _close(gsb[offs[b]:offs[b + 1]], hsb[b, :lens[b]])


# ================================================================================ torch


def _torch_case(rng, B, T, D, kind):
    """h, mask (float 0/1, or weights for kind == 'float'), at least one valid token per row."""
    h = rng.standard_normal((B, T, D))
    if kind == "float":
        m = rng.uniform(0.1, 2.0, (B, T)) * (rng.random((B, T)) < 0.6)
    else:
        m = (rng.random((B, T)) < 0.6).astype(np.float64)
    m[np.arange(B), rng.integers(0, T, B)] = 1.0
    return h, m


def _st_mean(torch, h, m):
    me = m.unsqueeze(-1).expand(h.size()).to(h.dtype)
    return torch.sum(h * me, 1) / torch.clamp(me.sum(1), min=1e-9)


def _st_max(torch, h, m, sign=1):
    me = m.unsqueeze(-1).expand(h.size())
    x = h.clone() * sign
    x[me == 0] = -1e9
    return torch.max(x, 1)[0] * sign


def _st_weightedmean(torch, h, m):
    me = m.unsqueeze(-1).expand(h.size()).to(h.dtype)
    w = torch.arange(1, h.shape[1] + 1, dtype=h.dtype).unsqueeze(0).unsqueeze(-1)
    w = w.expand(h.size()) * me
    return torch.sum(h * w, 1) / torch.clamp(w.sum(1), min=1e-9)


def _st_mean_sqrt_len(torch, h, m):
    me = m.unsqueeze(-1).expand(h.size()).to(h.dtype)
    return torch.sum(h * me, 1) / torch.sqrt(torch.clamp(me.sum(1), min=1e-9))


def _st_lasttoken(torch, h, m):
    bs, seq_len, hidden = h.shape
    values, indices = m.flip(1).max(1)
    indices = torch.where(values == 0, seq_len - 1, indices)
    gather = (seq_len - indices - 1).unsqueeze(-1).repeat(1, hidden).unsqueeze(1)
    me = m.unsqueeze(-1).expand(h.size()).to(h.dtype)
    return torch.gather(h * me, 1, gather).squeeze(dim=1)


def _torch_attention(torch, h, m, s):
    a = torch.softmax(s.masked_fill(m == 0, float("-inf")), dim=1)
    return torch.sum(a.unsqueeze(-1) * h, 1)


@pytest.mark.parametrize("seed", range(4))
def test_sentence_transformers_formulas_in_torch(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    B, T, D = 5, 6, 4
    for kind in ("bool", "float"):
        h, m = _torch_case(rng, B, T, D, kind)
        m[0] = 0.0                                       # an empty row
        th, tm = torch.tensor(h), torch.tensor(m)
        mask = m if kind == "float" else m.astype(bool)
        _close(_v(h, mask, "mean"), _st_mean(torch, th, tm).numpy())
        _close(_v(h, mask, "mean_sqrt_len"), _st_mean_sqrt_len(torch, th, tm).numpy())
        _close(_v(h, mask, "weighted_mean"), _st_weightedmean(torch, th, tm).numpy())
        _close(_v(h, mask, "sum"), torch.sum(th * tm.unsqueeze(-1), 1).numpy())
        _close(_v(h, mask, "cls"), th[:, 0].numpy())
        if kind == "bool":
            _close(_v(h, mask, "last"), _st_lasttoken(torch, th, tm).numpy())
            # max: -1e9 fill (rows with a valid token only; the empty row gives 0, not -1e9)
            _close(_v(h, mask, "max")[1:], _st_max(torch, th, tm).numpy()[1:])
            _close(_v(h, mask, "min")[1:], _st_max(torch, th, tm, -1).numpy()[1:])
            _eq(_v(h, mask, "max")[0], np.zeros(D))
            s = rng.standard_normal((B, T)) * 5
            _close(_v(h, mask, "attention", scores=s)[1:],
                   _torch_attention(torch, th, tm, torch.tensor(s)).numpy()[1:])


def _torch_fn(torch, mode, m, s=None):
    tm = torch.tensor(m)
    if mode == "sum":
        return lambda t: torch.sum(t * tm.unsqueeze(-1), 1)
    if mode == "mean":
        return lambda t: _st_mean(torch, t, tm)
    if mode == "mean_sqrt_len":
        return lambda t: _st_mean_sqrt_len(torch, t, tm)
    if mode == "weighted_mean":
        return lambda t: _st_weightedmean(torch, t, tm)
    if mode == "max":
        return lambda t: torch.max(t.masked_fill(tm.unsqueeze(-1) == 0, float("-inf")), 1)[0]
    if mode == "min":
        return lambda t: torch.min(t.masked_fill(tm.unsqueeze(-1) == 0, float("inf")), 1)[0]
    if mode == "cls":
        return lambda t: t[:, 0]
    if mode == "last":
        return lambda t: _st_lasttoken(torch, t, tm)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", SEQUENCE_MODES)
@pytest.mark.parametrize("seed", range(3))
def test_backward_against_torch_autograd(mode, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 + seed)
    B, T, D = 4, 5, 3
    kind = "float" if mode in ("sum", "mean", "mean_sqrt_len", "weighted_mean") and seed else "b"
    h, m = _torch_case(rng, B, T, D, kind)
    mask = m if kind == "float" else m.astype(bool)
    g = rng.standard_normal((B, D))
    if mode == "attention":
        s = rng.standard_normal((B, T)) * 3
        th = torch.tensor(h, requires_grad=True)
        ts = torch.tensor(s, requires_grad=True)
        out = _torch_attention(torch, th, torch.tensor(m), ts)
        out.backward(torch.tensor(g))
        gh, gs = ref_sequence_pool_backward(g, h, mask, mode, scores=s)
        _close(out.detach().numpy(), _v(h, mask, mode, scores=s))
        _close(gh, th.grad.numpy())
        _close(gs, ts.grad.numpy())
        return
    th = torch.tensor(h, requires_grad=True)
    out = _torch_fn(torch, mode, m)(th)
    out.backward(torch.tensor(g))
    _close(out.detach().numpy(), _v(h, mask, mode))
    _close(ref_sequence_pool_backward(g, h, mask, mode), th.grad.numpy())
