"""Adaptive and global pooling, forward and backward, by layout and dtype.

Adaptive ops pool the (16, 32, 64, 64) images of bench_window (8 MB in float32) to 7x7 bins
(64 is not a multiple of 7: uneven, overlapping bins, the general case). Global ops reduce the
7x7 spatial axes of (32, 512, 7, 7) feature maps (3.2 MB in float32), the shape at the end of a
ResNet; NHWC uses axes=(1, 2). Backward benchmarks take grad_output (and, for max, the forward's
indices) made in setup. Self-contained (no cypool._bench import) so the suite also runs against
older commits; an op the benchmarked cypool lacks is skipped (NotImplementedError).
"""

import cypool

from .common import IMAGE, make_input, require
FEATURES = {"NCHW": ((32, 512, 7, 7), (2, 3)), "NHWC": ((32, 7, 7, 512), (1, 2))}
OUTPUT_SIZE = (7, 7)




def adaptive_call(op, x, axes, dtype):
    if op == "avg":
        require("adaptive_avg_pool")
        return lambda: cypool.adaptive_avg_pool(x, OUTPUT_SIZE, axes=axes)
    if op == "max":
        require("adaptive_max_pool")
        return lambda: cypool.adaptive_max_pool(x, OUTPUT_SIZE, axes=axes)
    if op == "avg_backward":
        require("adaptive_avg_pool", "adaptive_avg_pool_backward")
        g = make_input(cypool.adaptive_avg_pool(x, OUTPUT_SIZE, axes=axes).shape, dtype, 1)
        shape = x.shape
        return lambda: cypool.adaptive_avg_pool_backward(g, shape, axes=axes)
    if op == "max_backward":
        require("adaptive_max_pool", "adaptive_max_pool_backward")
        _, idx = cypool.adaptive_max_pool(x, OUTPUT_SIZE, axes=axes, return_indices=True)
        g = make_input(idx.shape, dtype, 1)
        return lambda: cypool.adaptive_max_pool_backward(g, x, OUTPUT_SIZE, axes=axes,
                                                         indices=idx)
    raise ValueError(op)


def global_call(op, x, axes, dtype):
    if op == "avg":
        require("global_avg_pool")
        return lambda: cypool.global_avg_pool(x, axes=axes)
    if op == "max":
        require("global_max_pool")
        return lambda: cypool.global_max_pool(x, axes=axes)
    if op == "avg_backward":
        require("global_avg_pool", "global_avg_pool_backward")
        g = make_input(cypool.global_avg_pool(x, axes=axes).shape, dtype, 1)
        shape = x.shape
        return lambda: cypool.global_avg_pool_backward(g, shape, axes=axes)
    if op == "max_backward":
        require("global_max_pool", "global_max_pool_backward")
        _, idx = cypool.global_max_pool(x, axes=axes, return_indices=True)
        g = make_input(idx.shape, dtype, 1)
        return lambda: cypool.global_max_pool_backward(g, x, axes=axes, indices=idx)
    raise ValueError(op)


OPS = ["avg", "max", "avg_backward", "max_backward"]


class Adaptive:
    params = (OPS, ["NCHW", "NHWC"], ["float32", "float64"])
    param_names = ["op", "layout", "dtype"]

    def setup(self, op, layout, dtype):
        shape, axes = IMAGE[layout]
        self.x = make_input(shape, dtype)
        self.call = adaptive_call(op, self.x, axes, dtype)
        self.call()  # warm-up: first-call imports and page faults stay out of the timings

    def teardown(self, op, layout, dtype):
        self.x = self.call = None

    def time_adaptive(self, op, layout, dtype):
        self.call()

    def peakmem_adaptive(self, op, layout, dtype):
        self.call()


class Global:
    params = (OPS, ["NCHW", "NHWC"], ["float32", "float64"])
    param_names = ["op", "layout", "dtype"]

    def setup(self, op, layout, dtype):
        shape, axes = FEATURES[layout]
        self.x = make_input(shape, dtype)
        self.call = global_call(op, self.x, axes, dtype)
        self.call()

    def teardown(self, op, layout, dtype):
        self.x = self.call = None

    def time_global(self, op, layout, dtype):
        self.call()

    def peakmem_global(self, op, layout, dtype):
        self.call()
