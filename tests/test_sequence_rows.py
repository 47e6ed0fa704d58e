"""cypool._sequence_rows: the row tables (start, stop, coefficients, scales) every sequence and
segment kernel reads, checked directly, without any kernel."""

import numpy as np
import pytest

from cypool._sequence_rows import (
    check_offsets,
    check_token_indices,
    segment_offsets,
    segment_rows,
    sequence_rows,
    token_weights,
)


def coef_table(rows, ntokens):
    """The coefficients of each row as a (rows, ntokens) table."""
    return np.stack([rows.coef[a:a + ntokens] for a in rows.coef_at])


W = np.array([[1.0, 1.0, 0.0, 0.0],
              [0.0, 2.0, 0.0, 1.0],
              [0.0, 0.0, 0.0, 0.0]])


def test_sequence_rows_span_every_token_of_their_plane():
    rows = sequence_rows(W, "sum", None)
    assert rows.start.tolist() == [0, 0, 0]
    assert rows.stop.tolist() == [4, 4, 4]
    assert rows.coef_at.tolist() == [0, 4, 8]
    assert rows.coef.dtype == np.float64 and rows.coef.flags.c_contiguous
    assert rows.start.dtype == rows.stop.dtype == rows.coef_at.dtype == np.int64


@pytest.mark.parametrize("mode, coef, scale", [
    ("sum", W, [1, 1, 1]),
    ("max", W, [1, 1, 1]),
    ("mean", W, [1 / 2, 1 / 3, 0]),
    ("mean_sqrt_len", W, [1 / np.sqrt(2), 1 / np.sqrt(3), 0]),
    ("weighted_mean", W * [1, 2, 3, 4], [1 / 3, 1 / 8, 0]),
    ("cls", [[1, 0, 0, 0]] * 3, [1, 1, 1]),
    ("last", [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [1, 1, 1]),
])
def test_sequence_coefficients_and_scales(mode, coef, scale):
    rows = sequence_rows(W, mode, None)
    np.testing.assert_allclose(coef_table(rows, 4), coef, rtol=1e-15)
    np.testing.assert_allclose(rows.scale, scale, rtol=1e-15)


def test_mean_of_weights_summing_to_zero_gives_zero_scale():
    rows = sequence_rows(np.array([[1.0, -1.0]]), "mean", None)
    assert rows.scale.tolist() == [0.0]
    rows = sequence_rows(np.array([[1.0, -2.0]]), "mean_sqrt_len", None)
    assert rows.scale.tolist() == [0.0]


def test_attention_is_a_stable_softmax_over_valid_tokens():
    scores = np.array([[1000.0, 1001.0, 5000.0, 0.0],
                       [1.0, 2.0, 3.0, 4.0],
                       [0.0, 0.0, 0.0, 0.0]])
    rows = sequence_rows(W, "attention", scores)
    a = coef_table(rows, 4)
    e = np.exp([0.0, 1.0])
    np.testing.assert_allclose(a[0], [e[0] / e.sum(), e[1] / e.sum(), 0, 0], rtol=1e-14)
    e = np.exp([2.0, 4.0])
    np.testing.assert_allclose(a[1], [0, e[0] / e.sum(), 0, e[1] / e.sum()], rtol=1e-14)
    assert a[2].tolist() == [0, 0, 0, 0]
    assert np.isfinite(a).all()


def test_zero_tokens():
    w = np.zeros((2, 0))
    for mode in ("sum", "mean", "last", "max"):
        rows = sequence_rows(w, mode, None)
        assert rows.stop.tolist() == [0, 0] and rows.coef.size == 0


OFFSETS = np.array([1, 3, 3, 6])


@pytest.mark.parametrize("mode, coef, scale", [
    ("sum", [1] * 7, [1, 1, 1]),
    ("mean", [1] * 7, [1 / 2, 0, 1 / 3]),
    ("mean_sqrt_len", [1] * 7, [1 / np.sqrt(2), 0, 1 / np.sqrt(3)]),
    ("first", [0, 1, 0, 1, 0, 0, 0], [1, 1, 1]),
    ("last", [0, 0, 1, 0, 0, 1, 0], [1, 1, 1]),
])
def test_segment_coefficients_and_scales(mode, coef, scale):
    rows = segment_rows(OFFSETS, 7, mode, None)
    assert rows.start.tolist() == [1, 3, 3] and rows.stop.tolist() == [3, 3, 6]
    assert rows.coef_at.tolist() == [0, 0, 0]
    np.testing.assert_allclose(rows.coef, coef, rtol=1e-15)
    np.testing.assert_allclose(rows.scale, scale, rtol=1e-15)


def test_segment_attention_softmax_within_each_segment():
    scores = np.array([9.0, 0.0, 1.0, 2.0, 2.0, 2.0, 9.0])
    rows = segment_rows(OFFSETS, 7, "attention", scores)
    e = np.exp([0.0, 1.0])
    np.testing.assert_allclose(rows.coef, [0, *(e / e.sum()), 1 / 3, 1 / 3, 1 / 3, 0], rtol=1e-14)


def test_token_weights_from_mask_lengths_or_nothing():
    assert token_weights(None, None, (2,), 3).tolist() == [[1, 1, 1], [1, 1, 1]]
    assert token_weights(None, np.array([0, 2]), (2,), 3).tolist() == [[0, 0, 0], [1, 1, 0]]
    mask = np.array([[True, False, True]])
    w = token_weights(mask, None, (1,), 3)
    assert w.dtype == np.float64 and w.tolist() == [[1, 0, 1]]
    assert token_weights(None, 2, (), 3).tolist() == [1, 1, 0]


def test_offsets_and_indices_checks():
    assert check_offsets([0, 2, 2], 2).dtype == np.int64
    with pytest.raises(ValueError, match="non-decreasing"):
        check_offsets([0, 2, 1], 2)
    rows = segment_rows(OFFSETS, 7, "max", None)
    ok = np.array([[1], [-1], [5]])
    assert check_token_indices(ok, (3, 1), rows).tolist() == ok.tolist()
    with pytest.raises(ValueError, match="holds 3 for row 0"):
        check_token_indices(np.array([[3], [-1], [5]]), (3, 1), rows)
    with pytest.raises(ValueError, match="holds 3 for row 1"):
        check_token_indices(np.array([[1], [3], [5]]), (3, 1), rows)


@pytest.mark.parametrize("ids, num_segments, offsets", [
    ([0, 0, 1, 1, 1], None, [0, 2, 5]),
    ([1, 1, 3], None, [0, 0, 2, 2, 3]),                  # empty segments 0 and 2
    ([0, 2], 5, [0, 1, 1, 2, 2, 2]),                     # and 3, 4 past the last id
    ([], None, [0]),
    ([], 3, [0, 0, 0, 0]),
])
def test_segment_ids_become_offsets(ids, num_segments, offsets):
    values_shape = (len(ids), 2)
    got = segment_offsets(None, np.array(ids, np.int64), num_segments, values_shape)
    assert got.dtype == np.int64 and got.tolist() == offsets
    assert segment_offsets(np.array(offsets), None, None, values_shape).tolist() == offsets


def test_offsets_of_segment_ids_point_there():
    """Segment ids passed as offsets: the message says where they go."""
    with pytest.raises(ValueError, match="segment_ids="):
        check_offsets(np.array([0, 0, 1, 1, 1]), 5)
    with pytest.raises(ValueError) as info:
        check_offsets(np.array([0, 5, 5]), 6)
    assert "segment_ids" not in str(info.value)
