"""Every public cypool function, called as a user would: `mypy --strict` must accept this file
(tests/test_stubs.py runs it), so the package's type information covers the whole API."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

import cypool


def image_pooling(x: NDArray[np.float32]) -> list[NDArray[np.generic]]:
    y = cypool.max_pool(x, (3, 3), 2, 1)
    values, indices = cypool.max_pool(x, (3, 3), 2, 1, return_indices=True)
    results = [
        y,
        values,
        indices,
        cypool.avg_pool(x, (2, 2), count_include_pad=False),
        cypool.lp_pool(x, 2.0, (2, 2)),
        cypool.max_pool1d(x[:, :, 0], 2),
        cypool.max_pool2d(x, 3, stride=2, padding=1),
        cypool.max_pool3d(x[None], 2),
        cypool.avg_pool1d(x[:, :, 0], 2),
        cypool.avg_pool2d(x, 2),
        cypool.avg_pool3d(x[None], 2),
        cypool.max_pool2d(np.moveaxis(x, 1, -1), 2, channels_last=True),
        cypool.max_pool_backward(np.ones_like(values), x, (3, 3), 2, 1, indices=indices),
        cypool.avg_pool_backward(np.ones_like(y), x.shape, (3, 3), 2, 1),
        cypool.lp_pool_backward(np.ones_like(y), x, 2.0, (3, 3), 2, 1),
        cypool.max_unpool(values, indices, x.shape[2:]),
    ]
    return results


def adaptive_and_global(x: NDArray[np.float32]) -> list[NDArray[np.generic]]:
    a = cypool.adaptive_avg_pool(x, (2, 2))
    m, m_idx = cypool.adaptive_max_pool(x, (2, 2), return_indices=True)
    g = cypool.global_avg_pool(x)
    gm, gm_idx = cypool.global_max_pool(x, return_indices=True)
    return [
        a,
        m,
        cypool.adaptive_max_pool(x, (2, 2)),
        cypool.adaptive_avg_pool_backward(np.ones_like(a), x.shape),
        cypool.adaptive_max_pool_backward(np.ones_like(m), x, (2, 2), indices=m_idx),
        g,
        cypool.global_max_pool(x, keepdims=True),
        cypool.global_avg_pool_backward(np.ones_like(g), x.shape),
        cypool.global_max_pool_backward(np.ones_like(gm), x, indices=gm_idx),
    ]


def sentence_embeddings(h: NDArray[np.float32], mask: NDArray[np.int64]) -> list[NDArray[np.generic]]:
    scores = np.zeros(mask.shape, dtype=np.float32)
    mean = cypool.sequence_pool(h, mask, "mean")
    top, top_idx = cypool.sequence_pool(h, mask, "max", return_indices=True)
    grad_h = cypool.sequence_pool_backward(np.ones_like(mean), h, mask, "mean")
    grad_h2, grad_scores = cypool.sequence_pool_backward(np.ones_like(mean), h, mask, "attention",
                                                         scores=scores)
    values = h[mask.astype(bool)]
    offsets = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
    seg = cypool.segment_pool(values, offsets, "mean")
    seg_top, seg_idx = cypool.segment_pool(values, offsets, "max", return_indices=True)
    grad_values = cypool.segment_pool_backward(np.ones_like(seg), values, offsets, "max",
                                               indices=seg_idx)
    grad_v2, grad_s2 = cypool.segment_pool_backward(np.ones_like(seg), values, offsets,
                                                    "attention", scores=scores[mask.astype(bool)])
    # The same segments by id (torch_scatter / PyG style): one id per row of values.
    ids = np.repeat(np.arange(mask.shape[0]), mask.sum(axis=1))
    by_id, by_id_idx = cypool.segment_pool(values, segment_ids=ids, num_segments=mask.shape[0],
                                           mode="max", return_indices=True)
    grad_v3, grad_s3 = cypool.segment_pool_backward(np.ones_like(seg), values, segment_ids=ids,
                                                    mode="attention",
                                                    scores=scores[mask.astype(bool)])
    return [mean, top, top_idx, grad_h, grad_h2, grad_scores, seg, seg_top, grad_values, grad_v2,
            grad_s2, by_id, by_id_idx, grad_v3, grad_s3]


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
    tokens = rng.standard_normal((2, 5, 4), dtype=np.float32)
    attention_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)
    total = image_pooling(image) + adaptive_and_global(image) + sentence_embeddings(tokens, attention_mask)
    print(f"{len(total)} results, cypool {cypool.__version__}")
