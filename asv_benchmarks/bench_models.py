"""The pooling calls of well-known models, at their real shapes, by layout, dtype and thread
count: ResNet's stem (max 3x3 stride 2 padding 1 on 112x112 maps) and head (global average of
7x7x2048 maps), ViT's token pooling (197 tokens, class token or mean) and a BERT batch (128
tokens with a padding mask, mean and max, forward and backward).

Self-contained (no cypool._bench import) so the suite also runs against older commits; an op
the benchmarked cypool lacks is skipped (NotImplementedError).
"""

import numpy as np

import cypool

from .common import make_input, require

THREADS = [1, 2]
DTYPES = ["float32", "float64"]

RESNET_STEM = {"NCHW": ((8, 64, 112, 112), (2, 3)), "NHWC": ((8, 112, 112, 64), (1, 2))}
RESNET_HEAD = {"NCHW": ((32, 2048, 7, 7), (2, 3)), "NHWC": ((32, 7, 7, 2048), (1, 2))}
VIT_TOKENS = (32, 197, 768)
BERT_BATCH = (32, 128, 768)


def padding_mask(batch, tokens, seed=0):
    """A right-padded int64 attention mask keeping 40-100% of each row (70% on average)."""
    lengths = np.random.default_rng(seed).integers(int(0.4 * tokens), tokens, size=batch,
                                                   endpoint=True)
    return (np.arange(tokens) < lengths[:, None]).astype(np.int64)


class _Timed:
    """time_ and peakmem_ of self.call, made by setup."""

    def teardown(self, *params):
        self.call = None

    def time_call(self, *params):
        self.call()

    def peakmem_call(self, *params):
        self.call()


class ResNetStem(_Timed):
    params = (["NCHW", "NHWC"], DTYPES, THREADS)
    param_names = ["layout", "dtype", "threads"]

    def setup(self, layout, dtype, threads):
        shape, axes = RESNET_STEM[layout]
        x = make_input(shape, dtype)
        self.call = lambda: cypool.max_pool(x, (3, 3), 2, 1, axes=axes, num_threads=threads)
        self.call()  # warm-up: first-call imports and page faults stay out of the timings


class ResNetHead(_Timed):
    params = (["NCHW", "NHWC"], DTYPES, THREADS)
    param_names = ["layout", "dtype", "threads"]

    def setup(self, layout, dtype, threads):
        require("global_avg_pool")
        shape, axes = RESNET_HEAD[layout]
        x = make_input(shape, dtype)
        self.call = lambda: cypool.global_avg_pool(x, axes=axes, num_threads=threads)
        self.call()


class ViTTokens(_Timed):
    params = (["cls", "mean"], DTYPES, THREADS)
    param_names = ["mode", "dtype", "threads"]

    def setup(self, mode, dtype, threads):
        require("sequence_pool")
        h = make_input(VIT_TOKENS, dtype)
        self.call = lambda: cypool.sequence_pool(h, mode=mode, num_threads=threads)
        self.call()


class BertBatch(_Timed):
    params = (["mean", "max"], ["forward", "backward"], DTYPES, THREADS)
    param_names = ["mode", "direction", "dtype", "threads"]

    def setup(self, mode, direction, dtype, threads):
        require("sequence_pool", "sequence_pool_backward")
        h = make_input(BERT_BATCH, dtype)
        mask = padding_mask(BERT_BATCH[0], BERT_BATCH[1])
        if direction == "forward":
            self.call = lambda: cypool.sequence_pool(h, mask, mode, num_threads=threads)
        else:
            g = make_input((BERT_BATCH[0], BERT_BATCH[2]), dtype, seed=1)
            self.call = lambda: cypool.sequence_pool_backward(g, h, mask, mode, num_threads=threads)
        self.call()
