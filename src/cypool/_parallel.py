"""Thread-count resolution, read at call time so OMP_NUM_THREADS and threadpoolctl apply."""

from __future__ import annotations

import numpy as np

from cypool import _runtime
from cypool._errors import ParameterTypeError

# Below this many bytes touched a call runs on one thread, where waking a second thread costs
# more than it saves. Measured on the 2-core reference machine (max 3x3/2 on (1, C, 56, 56)
# float32): 2 threads lose below ~50 kB of input, break even near 200 kB and win from 800 kB.
PARALLEL_MIN_BYTES = 1 << 18


# More threads than any machine runs: OpenMP would try to create them all (and abort when it
# cannot), and a C int holds the count.
MAX_THREADS = 1 << 12


def check_num_threads(num_threads) -> int | None:
    if num_threads is None:
        return None
    if not isinstance(num_threads, (int, np.integer)) or isinstance(num_threads, (bool, np.bool_)):
        raise ParameterTypeError(f"num_threads must be None or an int >= 1, got num_threads={num_threads!r}")
    if not 1 <= num_threads <= MAX_THREADS:
        raise ValueError(
            f"num_threads must be None or an int in [1, {MAX_THREADS}], got num_threads={num_threads!r}"
        )
    return int(num_threads)


def resolve_num_threads(num_threads, work_bytes: int) -> int:
    """Threads for one kernel call: the caller's request, else OpenMP's current maximum; one
    thread for small work; never more than the process can run (_runtime.runnable_threads:
    its CPUs, OpenMP's thread limit, the threads the OS lets it start, one after fork)."""
    requested = check_num_threads(num_threads)
    if work_bytes < PARALLEL_MIN_BYTES:
        return 1
    threads = _runtime.max_threads() if requested is None else requested
    return _runtime.runnable_threads(threads)
