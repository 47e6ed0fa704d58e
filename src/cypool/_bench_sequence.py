"""Benchmark rows of sequence and segment pooling (see cypool._bench for the table).

A sentence-embedding batch: float32 token embeddings (256, 128, 768) with a right-padded
attention mask that keeps about 70% of the tokens, attention scores, a gradient of the pooled
result, and the same valid tokens packed for segment pooling. The baselines are the
sentence-transformers formulas written in torch (mean: ``sum(h * mask) / clamp(sum(mask))``;
max: fill -1e9, then max) and NumPy einsum / reduceat.

Roofline traffic: the forward reads h once and writes the result (the issue's floor; cypool
skips masked tokens, so it can beat it); the backward writes grad_h once and reads the
gradient.
"""

from __future__ import annotations

import numpy as np

from cypool._bench_case import Case

SEQUENCE_SHAPE = (256, 128, 768)
VALID_FRACTION = 0.7


def sequence_inputs(shape=SEQUENCE_SHAPE, dtype="float32"):
    """(h, mask, scores, g, values, offsets): lengths uniform in [0.4 T, T] (70% valid on
    average), an int64 mask as tokenizers give it, and the valid tokens packed."""

    def make(rng: np.random.Generator):
        nb, nt, nd = shape
        h = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
        lengths = rng.integers(int(0.4 * nt), nt, size=nb, endpoint=True)
        mask = (np.arange(nt) < lengths[:, None]).astype(np.int64)
        scores = rng.standard_normal((nb, nt), dtype=np.float32).astype(dtype, copy=False)
        g = rng.standard_normal((nb, nd), dtype=np.float32).astype(dtype, copy=False)
        values = np.ascontiguousarray(h[mask.astype(bool)])
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return h, mask, scores, g, values, offsets

    make.key = ("sequence", tuple(shape), np.dtype(dtype).str)
    return make


def _h_read(inputs, result) -> int:
    return inputs[0].nbytes + result.nbytes


def _torch_inputs(inputs):
    import torch

    h, mask, scores, g = (torch.from_numpy(a) for a in inputs[:4])
    return torch, h, mask, scores, g


def sequence_case(mode: str) -> Case:
    """sequence_pool forward in `mode` ("mean", "max" or "attention")."""

    def cy(inputs, threads):
        import cypool

        h, mask, scores = inputs[:3]
        kw = {"scores": scores} if mode == "attention" else {}
        return lambda out=None: cypool.sequence_pool(h, mask, mode, out=out, num_threads=threads, **kw)

    def npy(inputs, threads):
        h, mask, scores = inputs[:3]
        valid = mask.astype(bool)
        if mode == "mean":
            w = mask.astype(h.dtype)
            return lambda: np.einsum("btd,bt->bd", h, w) / np.maximum(w.sum(1, keepdims=True), 1e-9)
        if mode == "max":
            return lambda: np.where(valid[:, :, None], h, np.float32(-1e9)).max(axis=1)

        def attention():
            s = np.where(valid, scores, -np.inf)
            e = np.exp(s - s.max(axis=1, keepdims=True))
            return np.einsum("btd,bt->bd", h, e / e.sum(axis=1, keepdims=True))

        return attention

    def tch(inputs, threads):
        torch, h, mask, scores, g = _torch_inputs(inputs)
        if mode == "mean":
            def mean():
                m = mask.unsqueeze(-1).expand(h.size()).to(h.dtype)
                return torch.sum(h * m, 1) / torch.clamp(m.sum(1), min=1e-9)
            return mean
        if mode == "max":
            def top():
                hh = h.clone()
                hh[mask.unsqueeze(-1).expand(h.size()) == 0] = -1e9
                return torch.max(hh, 1)[0]
            return top

        def attention():
            a = torch.softmax(scores.masked_fill(mask == 0, float("-inf")), dim=1)
            return (a.unsqueeze(-1) * h).sum(1)

        return attention

    return Case(
        name=f"seq {mode}",
        shape=SEQUENCE_SHAPE,
        layout="BTD",
        make_inputs=sequence_inputs(),
        cypool=cy,
        numpy=npy,
        torch=tch,
        traffic=_h_read,
        tags=("sequence", "forward", mode),
    )


def sequence_mean_backward_case() -> Case:
    """sequence_pool_backward of the masked mean: writes grad_h, reads g."""

    def cy(inputs, threads):
        import cypool

        h, mask, _, g = inputs[:4]
        return lambda out=None: cypool.sequence_pool_backward(g, h, mask, "mean", out=out,
                                                              num_threads=threads)

    def npy(inputs, threads):
        _, mask, _, g = inputs[:4]
        w = mask / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return lambda: (w.astype(g.dtype)[:, :, None] * g[:, None, :])

    def tch(inputs, threads):
        torch, h, mask, _, g = _torch_inputs(inputs)

        def grad():  # what autograd computes for the sentence-transformers mean
            m = mask.unsqueeze(-1).expand(h.size()).to(h.dtype)
            return m / torch.clamp(m.sum(1, keepdim=True), min=1e-9) * g.unsqueeze(1)

        return grad

    return Case(
        name="seq mean bwd",
        shape=SEQUENCE_SHAPE,
        layout="BTD",
        make_inputs=sequence_inputs(),
        cypool=cy,
        numpy=npy,
        torch=tch,
        traffic=lambda inputs, result: result.nbytes + inputs[3].nbytes,
        tags=("sequence", "backward", "mean"),
    )


def segment_mean_case() -> Case:
    """segment_pool mean of the same valid tokens, packed; roofline: read them once."""

    def cy(inputs, threads):
        import cypool

        values, offsets = inputs[4:]
        return lambda out=None: cypool.segment_pool(values, offsets, "mean", out=out,
                                                    num_threads=threads)

    def npy(inputs, threads):
        values, offsets = inputs[4:]
        sizes = np.diff(offsets)[:, None]
        return lambda: np.add.reduceat(values, offsets[:-1], axis=0) / sizes

    def tch(inputs, threads):
        import torch

        values, offsets = (torch.from_numpy(a) for a in inputs[4:])
        return lambda: torch.segment_reduce(values, "mean", offsets=offsets)

    return Case(
        name="segment mean",
        shape=SEQUENCE_SHAPE,
        layout="packed",
        make_inputs=sequence_inputs(),
        cypool=cy,
        numpy=npy,
        torch=tch,
        traffic=lambda inputs, result: inputs[4].nbytes + result.nbytes,
        tags=("segment", "forward", "mean"),
    )


def sequence_cases() -> list[Case]:
    return [
        sequence_case("mean"),
        sequence_case("max"),
        sequence_case("attention"),
        sequence_mean_backward_case(),
        segment_mean_case(),
    ]
