"""Pooling kernels (window forward and backward, global, sequence and segment) compiled with AVX2.

Imported only when cypool._runtime.cpu_has_avx2() says the CPU runs AVX2. Compiled without FMA
contraction, so its results are bit-identical to the baseline module's.
"""

include "_window_impl.pxi"
include "_backward_impl.pxi"
include "_global_impl.pxi"
include "_sequence_impl.pxi"
