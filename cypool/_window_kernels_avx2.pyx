"""Window pooling forward kernels compiled with AVX2 (see _window_impl.pxi).

Imported only when cypool._runtime.cpu_has_avx2() says the CPU runs AVX2. Compiled without FMA
contraction, so its results are bit-identical to the baseline module's.
"""

include "_window_impl.pxi"
