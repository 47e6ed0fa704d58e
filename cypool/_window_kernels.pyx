"""Window pooling forward kernels for the baseline instruction set (see _window_impl.pxi)."""

include "_window_impl.pxi"
