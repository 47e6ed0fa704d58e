"""Build and runtime facts about OpenMP, read at call time."""

from cypool._openmp cimport (
    CYPOOL_COMPILER,
    CYPOOL_OPENMP_ENABLED,
    omp_get_max_threads,
    omp_get_num_procs,
)

OPENMP_ENABLED = bool(CYPOOL_OPENMP_ENABLED)
COMPILER = CYPOOL_COMPILER.decode("ascii", "replace")


def max_threads():
    """Threads a parallel region would use now: honours OMP_NUM_THREADS and threadpoolctl."""
    return omp_get_max_threads()


def num_procs():
    """Processors OpenMP sees (1 in a serial build)."""
    return omp_get_num_procs()
