"""Pooling kernels (window forward, backward) for the baseline instruction set."""

include "_window_impl.pxi"
include "_backward_impl.pxi"
