"""Window pooling backward: max (from indices and recomputed), avg and lp pool backward and
max_unpool, by layout and dtype.

Inputs are the moderately sized images of bench_window ((16, 32, 64, 64), 8 MB in float32), with
the same ResNet-stem geometry (3x3 windows, stride 2, padding 1), so the whole suite runs in a
few minutes. The roofline track uses the `python -m cypool bench` image size (100 MB), where the
working set is far out of cache. Self-contained (no cypool._bench import) so the suite also runs
against older commits; an op the benchmarked cypool lacks is skipped (NotImplementedError).
"""

import numpy as np

import cypool

from .common import IMAGE as LAYOUT
from .common import KERNEL, NORM_TYPE, PADDING, STRIDE, make_input, median_time, require




def backward_call(op, x, axes, dtype):
    """A zero-argument callable running one backward call on input x (grad_output and indices
    made here, outside the timed region)."""
    if op in ("max", "max_recompute"):
        require("max_pool_backward")
        _, idx = cypool.max_pool(x, KERNEL, STRIDE, PADDING, axes=axes, return_indices=True)
        g = make_input(idx.shape, dtype, seed=1)
        indices = idx if op == "max" else None
        return lambda: cypool.max_pool_backward(g, x, KERNEL, STRIDE, PADDING, axes=axes,
                                                indices=indices)
    if op == "avg":
        require("avg_pool_backward")
        g = make_input(cypool.avg_pool(x, KERNEL, STRIDE, PADDING, axes=axes).shape, dtype, 1)
        shape = x.shape
        return lambda: cypool.avg_pool_backward(g, shape, KERNEL, STRIDE, PADDING, axes=axes)
    if op == "lp":
        require("lp_pool", "lp_pool_backward")
        g = make_input(cypool.lp_pool(x, NORM_TYPE, KERNEL, STRIDE, PADDING, axes=axes).shape,
                       dtype, 1)
        return lambda: cypool.lp_pool_backward(g, x, NORM_TYPE, KERNEL, STRIDE, PADDING,
                                               axes=axes)
    if op == "unpool":
        require("max_unpool")
        values, idx = cypool.max_pool(x, KERNEL, STRIDE, PADDING, axes=axes, return_indices=True)
        size = tuple(x.shape[a] for a in axes)
        return lambda: cypool.max_unpool(values, idx, size, axes=axes)
    raise ValueError(op)


class WindowBackward:
    params = (["max", "max_recompute", "avg", "lp", "unpool"], ["NCHW", "NHWC"],
              ["float32", "float64"])
    param_names = ["op", "layout", "dtype"]

    def setup(self, op, layout, dtype):
        shape, axes = LAYOUT[layout]
        self.x = make_input(shape, dtype)
        self.call = backward_call(op, self.x, axes, dtype)
        self.call()  # warm-up: first-call imports and page faults stay out of the timings

    def teardown(self, op, layout, dtype):
        self.x = self.call = None

    def time_backward(self, op, layout, dtype):
        self.call()

    def peakmem_backward(self, op, layout, dtype):
        self.call()



class BackwardRoofline:
    """cypool time / roofline time for avg backward 3x3 stride 1 padding 1 on NCHW float32
    (32, 64, 112, 112), the `python -m cypool bench` row.

    Roofline: the bytes the op must move (read grad_output, write grad_input; x is not read) at
    the bandwidth of np.copyto, 2*nbytes / median copy time on an array of grad_input's size,
    measured in the same process. cypool writes into a preallocated out= (the kernel alone, as
    the bench's cy/roof column; a fresh 100 MB result adds page faults). 1 means the kernel runs
    at memory-copy speed; a multi-threaded kernel may come in under 1 (the copy is one thread).
    """

    timeout = 300

    def setup(self):
        require("avg_pool_backward")
        shape = (32, 64, 112, 112)
        self.shape = shape
        self.g = make_input(shape, "float32", seed=1)  # 3x3/1 p1: output shape == input shape
        self.out = np.empty(shape, dtype=np.float32)
        self.dst = np.empty_like(self.g)
        np.copyto(self.dst, self.g)  # touch the pages
        self.out.fill(0)

    def teardown(self):
        self.g = self.out = self.dst = None

    def track_avg_backward3x3s1_nchw_roofline_ratio(self):
        g, out = self.g, self.out
        t_copy = median_time(lambda: np.copyto(self.dst, g), 15)
        t_op = median_time(lambda: cypool.avg_pool_backward(g, self.shape, (3, 3), 1, 1,
                                                             out=out), 15)
        bandwidth = 2 * g.nbytes / t_copy
        roofline = (g.nbytes + out.nbytes) / bandwidth
        return t_op / roofline

    track_avg_backward3x3s1_nchw_roofline_ratio.unit = "ratio"
