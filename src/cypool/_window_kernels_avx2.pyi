# The same kernels as cypool._window_kernels, compiled for AVX2.
from cypool._window_kernels import *  # noqa: F403
from cypool._window_kernels import OPENMP_ENABLED as OPENMP_ENABLED
