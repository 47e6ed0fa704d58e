# Stubs of the compiled pooling kernels (the AVX2 build, _window_kernels_avx2, has the same API). Arrays are 5-d views (outer, n0, n1, n2, inner) made by
# cypool._layout.fold; tables come from cypool._geometry. Dtypes are checked by Cython's fused
# dispatch: order kernels take float32/float64/(u)int8-64, sum kernels float32/float64.
import numpy as np
from numpy.typing import NDArray

OPENMP_ENABLED: bool

def max_pool(
    x: NDArray[np.generic],
    out: NDArray[np.generic],
    taps0: NDArray[np.int64],
    taps1: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    num_threads: int,
) -> None: ...
def max_pool_with_indices(
    x: NDArray[np.generic],
    out: NDArray[np.generic],
    indices: NDArray[np.int64],
    taps0: NDArray[np.int64],
    taps1: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    num_threads: int,
) -> None: ...
def avg_pool(
    x: NDArray[np.floating],
    out: NDArray[np.floating],
    taps0: NDArray[np.int64],
    taps1: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    inv0: NDArray[np.float64],
    inv1: NDArray[np.float64],
    inv2: NDArray[np.float64],
    stream_taps: bool,
    stream_rows: bool,
    num_threads: int,
) -> None: ...
def lp_pool(
    x: NDArray[np.floating],
    out: NDArray[np.floating],
    taps0: NDArray[np.int64],
    taps1: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    norm_type: float,
    num_threads: int,
) -> None: ...
def spread(
    grad_output: NDArray[np.floating],
    grad_input: NDArray[np.floating],
    cover0_ptr: NDArray[np.int64],
    cover0_out: NDArray[np.int64],
    cover1_ptr: NDArray[np.int64],
    cover1_out: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    w0: NDArray[np.float64],
    w1: NDArray[np.float64],
    w2: NDArray[np.float64],
    num_threads: int,
) -> None: ...
def lp_spread(
    x: NDArray[np.floating],
    grad_output: NDArray[np.floating],
    norms: NDArray[np.float64],
    grad_input: NDArray[np.floating],
    weights: NDArray[np.float64],
    cover0_ptr: NDArray[np.int64],
    cover0_out: NDArray[np.int64],
    cover1_ptr: NDArray[np.int64],
    cover1_out: NDArray[np.int64],
    taps0: NDArray[np.int64],
    taps1: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    norm_type: float,
    num_threads: int,
) -> None: ...
def scatter_add(
    grad_output: NDArray[np.floating],
    indices: NDArray[np.int64],
    grad_input: NDArray[np.floating],
    stream: bool,
    num_threads: int,
) -> None: ...
def max_scatter_recomputed(
    x: NDArray[np.floating],
    grad_output: NDArray[np.floating],
    grad_input: NDArray[np.floating],
    taps0: NDArray[np.int64],
    taps1: NDArray[np.int64],
    taps2: NDArray[np.int64],
    windows: NDArray[np.int64],
    stream: bool,
    num_threads: int,
) -> None: ...
def scatter_set(
    x: NDArray[np.generic],
    indices: NDArray[np.int64],
    out: NDArray[np.generic],
    num_threads: int,
) -> None: ...
def index_bounds(
    indices: NDArray[np.int64],
    bounds: NDArray[np.int64],
    num_threads: int,
) -> None: ...
def global_sum(
    x: NDArray[np.floating],
    out: NDArray[np.floating],
    scale: float,
    num_threads: int,
) -> None: ...
def global_max(
    x: NDArray[np.generic],
    out: NDArray[np.generic],
    indices: NDArray[np.int64] | None,
    num_threads: int,
) -> None: ...

# Sequence and segment kernels (_sequence_impl.pxi): token tables are the first plane
# (tokens, features) plus per-row element offsets; per-row tables the first row plus offsets.
def weighted_sum(
    h: NDArray[np.floating],
    h_at: NDArray[np.int64],
    coef: NDArray[np.float64],
    coef_at: NDArray[np.int64],
    start: NDArray[np.int64],
    stop: NDArray[np.int64],
    scale: NDArray[np.float64],
    out: NDArray[np.floating],
    out_at: NDArray[np.int64],
    num_threads: int,
) -> None: ...
def extreme(
    h: NDArray[np.floating],
    h_at: NDArray[np.int64],
    coef: NDArray[np.float64],
    coef_at: NDArray[np.int64],
    start: NDArray[np.int64],
    stop: NDArray[np.int64],
    out: NDArray[np.floating],
    out_at: NDArray[np.int64],
    indices: NDArray[np.int64] | None,
    indices_at: NDArray[np.int64],
    is_min: bool,
    num_threads: int,
) -> None: ...
def spread_weighted(
    grad: NDArray[np.floating],
    grad_at: NDArray[np.int64],
    coef: NDArray[np.float64],
    coef_at: NDArray[np.int64],
    start: NDArray[np.int64],
    stop: NDArray[np.int64],
    scale: NDArray[np.float64],
    grad_h: NDArray[np.floating],
    grad_h_at: NDArray[np.int64],
    num_threads: int,
) -> None: ...
def spread_picked(
    grad: NDArray[np.floating],
    grad_at: NDArray[np.int64],
    indices: NDArray[np.int64],
    indices_at: NDArray[np.int64],
    start: NDArray[np.int64],
    stop: NDArray[np.int64],
    grad_h: NDArray[np.floating],
    grad_h_at: NDArray[np.int64],
    num_threads: int,
) -> None: ...
def token_dots(
    grad: NDArray[np.floating],
    grad_at: NDArray[np.int64],
    h: NDArray[np.floating],
    h_at: NDArray[np.int64],
    coef: NDArray[np.float64],
    coef_at: NDArray[np.int64],
    start: NDArray[np.int64],
    stop: NDArray[np.int64],
    dots: NDArray[np.float64],
    num_threads: int,
) -> None: ...
