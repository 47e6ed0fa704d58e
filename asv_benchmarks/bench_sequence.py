"""Sequence pooling (every mode, forward and backward) and segment pooling.

A (32, 128, 384) batch of token embeddings (6 MB in float32, a MiniLM-sized batch) with a
right-padded mask keeping about 70% of the tokens; segment pooling runs on the same valid tokens
packed. The roofline track uses the `python -m cypool bench` size (256, 128, 768). Self-contained
(no cypool._bench import) so the suite also runs against older commits; an op the benchmarked
cypool lacks is skipped (NotImplementedError).
"""

import numpy as np

import cypool

from .common import make_input, median_time, require

SHAPE = (32, 128, 384)
SEQUENCE_MODES = ["mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last",
                  "attention"]
SEGMENT_MODES = ["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last", "attention"]


def batch(shape, dtype, seed=0):
    """(h, mask, scores, g): lengths uniform in [0.4 T, T], an int64 mask, random scores and a
    random gradient of the pooled result."""
    rng = np.random.default_rng(seed)
    nb, nt, nd = shape
    h = make_input(shape, dtype, seed)
    lengths = rng.integers(int(0.4 * nt), nt, size=nb, endpoint=True)
    mask = (np.arange(nt) < lengths[:, None]).astype(np.int64)
    scores = make_input((nb, nt), dtype, seed + 1)
    g = make_input((nb, nd), dtype, seed + 2)
    return h, mask, scores, g


class Sequence:
    params = (SEQUENCE_MODES, ["forward", "backward"], ["float32", "float64"])
    param_names = ["mode", "direction", "dtype"]

    def setup(self, mode, direction, dtype):
        require("sequence_pool", "sequence_pool_backward")
        h, mask, scores, g = batch(SHAPE, dtype)
        kw = {"scores": scores} if mode == "attention" else {}
        if direction == "forward":
            self.call = lambda: cypool.sequence_pool(h, mask, mode, **kw)
        else:
            self.call = lambda: cypool.sequence_pool_backward(g, h, mask, mode, **kw)
        self.call()  # warm-up: first-call imports and page faults stay out of the timings

    def teardown(self, mode, direction, dtype):
        self.call = None

    def time_sequence(self, mode, direction, dtype):
        self.call()

    def peakmem_sequence(self, mode, direction, dtype):
        self.call()


class Segment:
    params = (SEGMENT_MODES, ["forward", "backward"], ["float32", "float64"])
    param_names = ["mode", "direction", "dtype"]

    def setup(self, mode, direction, dtype):
        require("segment_pool", "segment_pool_backward")
        h, mask, scores, g = batch(SHAPE, dtype)
        valid = mask.astype(bool)
        values = np.ascontiguousarray(h[valid])
        offsets = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
        kw = {"scores": np.ascontiguousarray(scores[valid])} if mode == "attention" else {}
        if direction == "forward":
            self.call = lambda: cypool.segment_pool(values, offsets, mode, **kw)
        else:
            self.call = lambda: cypool.segment_pool_backward(g, values, offsets, mode, **kw)
        self.call()

    def teardown(self, mode, direction, dtype):
        self.call = None

    def time_segment(self, mode, direction, dtype):
        self.call()

    def peakmem_segment(self, mode, direction, dtype):
        self.call()


class SequenceRoofline:
    """cypool time / roofline time for sequence mean on float32 (256, 128, 768) with a 70% mask,
    the `python -m cypool bench` row: the bytes of h read once at the bandwidth of np.copyto
    (2*nbytes / median copy time, same process). cypool never reads masked tokens, so it can
    come in under 1. Into a preallocated out= (the kernel alone)."""

    timeout = 300

    def setup(self):
        require("sequence_pool")
        self.h, self.mask, _, self.g = batch((256, 128, 768), "float32")
        self.dst = np.empty_like(self.h)
        np.copyto(self.dst, self.h)  # touch the pages
        self.out = np.zeros((256, 768), dtype=np.float32)
        self.grad_h = np.zeros_like(self.h)

    def teardown(self):
        self.h = self.mask = self.g = self.dst = self.out = self.grad_h = None

    def _bandwidth(self):
        return 2 * self.h.nbytes / median_time(lambda: np.copyto(self.dst, self.h), 15)

    def track_sequence_mean_roofline_ratio(self):
        roofline = self.h.nbytes / self._bandwidth()
        t_op = median_time(lambda: cypool.sequence_pool(self.h, self.mask, "mean", out=self.out), 15)
        return t_op / roofline

    track_sequence_mean_roofline_ratio.unit = "ratio"

    def track_sequence_mean_backward_roofline_ratio(self):
        roofline = (self.grad_h.nbytes + self.g.nbytes) / self._bandwidth()
        t_op = median_time(lambda: cypool.sequence_pool_backward(self.g, self.h, self.mask, "mean",
                                                                 out=self.grad_h), 15)
        return t_op / roofline

    track_sequence_mean_backward_roofline_ratio.unit = "ratio"
