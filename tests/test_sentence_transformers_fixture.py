"""cypool.sequence_pool against sentence-transformers' ``Pooling`` on real transformer outputs.

The fixture ``data/sentence_transformers_minilm.npz`` holds the ``token_embeddings``
(6, 11, 384) float32 and ``attention_mask`` (6, 11) int64 that all-MiniLM-L6-v2 produced for
six right-padded sentences, and the ``sentence_embedding`` that sentence-transformers'
``Pooling`` computed from them in each pooling mode (see ``data/make_sentence_transformers_fixture.py``
for how it was made and with which versions).  Nothing here needs torch, transformers or
sentence-transformers.

Tolerance: sentence-transformers sums in float32, cypool in float64 and rounds once, so the
sum-based modes differ by a few float32 ulps.  On this fixture the largest absolute
difference is 1.2e-7 (mean, weighted_mean) and 2.4e-7 (mean_sqrt_len), i.e. about one ulp of
the largest outputs (|x| <= 3.2); max, cls and last pick stored values and agree exactly.
Relative differences reach ~1e-4 only on outputs near zero after cancellation, and two
feature dimensions of MiniLM (127 and 223) are ~1e-32 in every token, so the bound that holds
is the absolute one: atol=1e-6 (4x the worst observed) with rtol=1e-5.
"""

from pathlib import Path

import numpy as np
import pytest

import cypool

FIXTURE = Path(__file__).resolve().parent / "data" / "sentence_transformers_minilm.npz"

# sentence-transformers pooling mode -> cypool mode
MODES = {
    "mean": "mean",
    "max": "max",
    "cls": "cls",
    "lasttoken": "last",
    "weightedmean": "weighted_mean",
    "mean_sqrt_len_tokens": "mean_sqrt_len",
}
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def data():
    with np.load(FIXTURE) as z:  # plain arrays and unicode strings: no pickle
        return {k: z[k] for k in z.files}


def _left_padded(data):
    """The same hidden states with the padding moved to the left (row b rotated by left_shift[b])."""
    h = data["token_embeddings"]
    return np.stack([np.roll(h[b], int(s), axis=0) for b, s in enumerate(data["left_shift"])])


def _check(got, want):
    assert got.dtype == np.float32
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, **TOL)


def test_fixture_contents(data):
    h, mask, lengths = data["token_embeddings"], data["attention_mask"], data["lengths"]
    B, T, D = h.shape
    assert (B, D) == (6, 384) and h.dtype == np.float32
    assert mask.shape == (B, T) and mask.dtype == np.int64
    # right padding: ones then zeros, lengths all different, the longest one fills T
    np.testing.assert_array_equal(mask, (np.arange(T) < lengths[:, None]).astype(np.int64))
    assert len(set(lengths.tolist())) == B and lengths.max() == T and lengths.min() <= 3
    # the padding positions hold real (non-zero) hidden states, so ignoring the mask would show
    assert np.abs(h[mask == 0]).max() > 1
    for st_mode in MODES:
        out = data[f"pooled_{st_mode}"]
        assert out.shape == (B, D) and out.dtype == np.float32 and np.all(np.isfinite(out))
    # left-padded variant
    shift, mask_left = data["left_shift"], data["attention_mask_left"]
    np.testing.assert_array_equal(shift, T - lengths)
    np.testing.assert_array_equal(mask_left, (np.arange(T) >= shift[:, None]).astype(np.int64))
    np.testing.assert_array_equal(
        mask_left, np.stack([np.roll(mask[b], int(s)) for b, s in enumerate(shift)]))
    assert data["pooled_lasttoken_left"].shape == (B, D)
    assert str(data["model_name"]) == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["sentences"].shape == (B,) and "sentence-transformers=" in str(data["versions"])


@pytest.mark.parametrize("st_mode", list(MODES))
def test_matches_sentence_transformers(data, st_mode):
    got = cypool.sequence_pool(data["token_embeddings"], data["attention_mask"], mode=MODES[st_mode])
    _check(got, data[f"pooled_{st_mode}"])


@pytest.mark.parametrize("st_mode", list(MODES))
@pytest.mark.parametrize("form", ["bool", "lengths"])
def test_mask_forms(data, st_mode, form):
    h, mask, mode = data["token_embeddings"], data["attention_mask"], MODES[st_mode]
    if form == "bool":
        got = cypool.sequence_pool(h, mask.astype(bool), mode=mode)
    else:
        got = cypool.sequence_pool(h, mode=mode, lengths=data["lengths"])
    _check(got, data[f"pooled_{st_mode}"])
    # the same weights as the int64 mask, so the same result up to a float32 ulp or two
    np.testing.assert_allclose(got, cypool.sequence_pool(h, mask, mode=mode), rtol=2.4e-7, atol=1e-12)


@pytest.mark.parametrize("mask_dtype", [np.int64, np.bool_])
def test_lasttoken_left_padded(data, mask_dtype):
    h_left = _left_padded(data)
    mask_left = data["attention_mask_left"].astype(mask_dtype)
    got = cypool.sequence_pool(h_left, mask_left, mode="last")
    _check(got, data["pooled_lasttoken_left"])
    np.testing.assert_array_equal(got, data["pooled_lasttoken_left"])  # a copy of a stored token


def test_max_indices_point_at_valid_tokens(data):
    h, mask, lengths = data["token_embeddings"], data["attention_mask"], data["lengths"]
    values, idx = cypool.sequence_pool(h, mask, mode="max", return_indices=True)
    _check(values, data["pooled_max"])
    assert idx.dtype == np.int64 and idx.shape == values.shape
    assert np.all((idx >= 0) & (idx < lengths[:, None]))
    np.testing.assert_array_equal(np.take_along_axis(h, idx[:, None, :], axis=1)[:, 0], values)
