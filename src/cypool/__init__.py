"""cypool: fast N-d pooling for NumPy, in Cython with OpenMP.

Window pooling (max, avg, LP) over 1 to 3 axes of any array, in any layout; adaptive and
global pooling; sequence pooling of token embeddings and segment pooling of packed sequences;
and the gradients of all of them. The rules every function follows are in the README's "API
rules" section; each function's docstring gives its parameters.
"""

from cypool._adaptive import (
    adaptive_avg_pool,
    adaptive_max_pool,
    global_avg_pool,
    global_max_pool,
)
from cypool._backward import (
    adaptive_avg_pool_backward,
    adaptive_max_pool_backward,
    avg_pool_backward,
    global_avg_pool_backward,
    global_max_pool_backward,
    lp_pool_backward,
    max_pool_backward,
    max_unpool,
)
from cypool._sequence import segment_pool, sequence_pool
from cypool._sequence_backward import segment_pool_backward, sequence_pool_backward
from cypool._version import __version__
from cypool._window import (
    avg_pool,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    lp_pool,
    max_pool,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)

__all__ = [
    "__version__",
    "adaptive_avg_pool",
    "adaptive_avg_pool_backward",
    "adaptive_max_pool",
    "adaptive_max_pool_backward",
    "avg_pool_backward",
    "global_avg_pool_backward",
    "global_max_pool_backward",
    "lp_pool_backward",
    "max_pool_backward",
    "max_unpool",
    "global_avg_pool",
    "global_max_pool",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "lp_pool",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "segment_pool",
    "segment_pool_backward",
    "sequence_pool",
    "sequence_pool_backward",
]
