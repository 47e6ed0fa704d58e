"""Build and runtime facts: OpenMP, thread counts (read at call time), compiler, CPU features."""

from cypool._openmp cimport (
    CYPOOL_COMPILER,
    CYPOOL_OPENMP_ENABLED,
    omp_get_max_threads,
    omp_get_num_procs,
)

cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        static int cypool_cpu_has_avx2(void) {
            __builtin_cpu_init();
            return __builtin_cpu_supports("avx2");
        }
    #else
        static int cypool_cpu_has_avx2(void) { return 0; }
    #endif
    """
    int cypool_cpu_has_avx2() noexcept nogil

OPENMP_ENABLED = bool(CYPOOL_OPENMP_ENABLED)
COMPILER = CYPOOL_COMPILER.decode("ascii", "replace")


def max_threads():
    """Threads a parallel region would use now: honours OMP_NUM_THREADS and threadpoolctl."""
    return omp_get_max_threads()


def num_procs():
    """Processors OpenMP sees (1 in a serial build)."""
    return omp_get_num_procs()


def cpu_has_avx2():
    """Whether this CPU runs AVX2 code (checked here, in a module compiled without it)."""
    return bool(cypool_cpu_has_avx2())
