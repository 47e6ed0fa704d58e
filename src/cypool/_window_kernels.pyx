"""Pooling kernels (window forward and backward, global, sequence and segment) for the baseline instruction set."""

include "_window_impl.pxi"
include "_backward_impl.pxi"
include "_global_impl.pxi"
include "_sequence_impl.pxi"
