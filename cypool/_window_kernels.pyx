"""Pooling kernels (window forward and backward, global) for the baseline instruction set."""

include "_window_impl.pxi"
include "_backward_impl.pxi"
include "_global_impl.pxi"
