"""Window pooling forward: max_pool (values, and with indices), avg_pool, lp_pool by layout
and dtype.

Inputs are moderately sized (16, 32, 64, 64) images, 8 MB in float32, so the whole suite runs in
a few minutes; the roofline track uses the `python -m cypool bench` image size (100 MB), where
the working set is far out of cache. Self-contained (no cypool._bench import) so the suite also
runs against older commits.
"""

import numpy as np

import cypool

from .common import IMAGE as LAYOUT
from .common import KERNEL, NORM_TYPE, PADDING, STRIDE, make_input, median_time



def pool_call(op, x, axes, **kwargs):
    """A zero-argument callable running one forward pooling call."""
    if op == "max":
        return lambda: cypool.max_pool(x, KERNEL, STRIDE, PADDING, axes=axes, **kwargs)
    if op == "max_indices":
        return lambda: cypool.max_pool(x, KERNEL, STRIDE, PADDING, axes=axes,
                                       return_indices=True, **kwargs)
    if op == "avg":
        return lambda: cypool.avg_pool(x, KERNEL, STRIDE, PADDING, axes=axes, **kwargs)
    if op == "lp":
        if not hasattr(cypool, "lp_pool"):
            raise NotImplementedError("this cypool has no lp_pool")
        return lambda: cypool.lp_pool(x, NORM_TYPE, KERNEL, STRIDE, PADDING, axes=axes, **kwargs)
    raise ValueError(op)


class WindowForward:
    params = (["max", "max_indices", "avg", "lp"], ["NCHW", "NHWC"],
              ["float32", "float64", "uint8"])
    param_names = ["op", "layout", "dtype"]

    def setup(self, op, layout, dtype):
        if dtype == "uint8" and not op.startswith("max"):
            raise NotImplementedError("integer input is benchmarked for max pooling only")
        shape, axes = LAYOUT[layout]
        self.x = make_input(shape, dtype)
        self.call = pool_call(op, self.x, axes)
        self.call()  # warm-up: first-call imports and page faults stay out of the timings

    def teardown(self, op, layout, dtype):
        self.x = self.call = None

    def time_forward(self, op, layout, dtype):
        self.call()

    def peakmem_forward(self, op, layout, dtype):
        self.call()



class Roofline:
    """cypool time / roofline time for max 3x3 stride 2 padding 1 on NCHW float32.

    Roofline: (input bytes + output bytes) at the bandwidth of np.copyto, 2*nbytes / median copy
    time on an array of the input's size, measured in the same process. 1 means the kernel runs
    at memory-copy speed; a multi-threaded kernel may come in under 1 (the copy is one thread).
    """

    timeout = 300

    def setup(self):
        self.x = make_input((32, 64, 112, 112), "float32")
        self.dst = np.empty_like(self.x)
        np.copyto(self.dst, self.x)  # touch the pages

    def teardown(self):
        self.x = self.dst = None

    def track_max3x3s2_nchw_roofline_ratio(self):
        x = self.x
        out = cypool.max_pool(x, KERNEL, STRIDE, PADDING, axes=(2, 3))
        t_copy = median_time(lambda: np.copyto(self.dst, x), 15)
        t_pool = median_time(lambda: cypool.max_pool(x, KERNEL, STRIDE, PADDING, axes=(2, 3)), 15)
        bandwidth = 2 * x.nbytes / t_copy
        roofline = (x.nbytes + out.nbytes) / bandwidth
        return t_pool / roofline

    track_max3x3s2_nchw_roofline_ratio.unit = "ratio"
