"""Thread-count resolution, read at call time so OMP_NUM_THREADS and threadpoolctl apply."""

from __future__ import annotations

import numpy as np

from cypool import _runtime
from cypool._errors import ParameterTypeError

# Below this many bytes touched a call runs on one thread: on a 2-core machine OpenMP's start-up
# and wake-up made a 4 ms pool twice as slow with 2 threads as with 1.
PARALLEL_MIN_BYTES = 1 << 21


def check_num_threads(num_threads) -> int | None:
    if num_threads is None:
        return None
    if not isinstance(num_threads, (int, np.integer)) or isinstance(num_threads, (bool, np.bool_)):
        raise ParameterTypeError(f"num_threads must be None or an int >= 1, got num_threads={num_threads!r}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be None or an int >= 1, got num_threads={num_threads!r}")
    return int(num_threads)


def resolve_num_threads(num_threads, work_bytes: int) -> int:
    """Threads for one kernel call: the caller's request, else OpenMP's current maximum,
    then one thread for small work."""
    requested = check_num_threads(num_threads)
    threads = _runtime.max_threads() if requested is None else requested
    if work_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, threads)
