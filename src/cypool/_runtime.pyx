"""Build and runtime facts: OpenMP, thread counts (read at call time), compiler, CPU features;
and the thread count each call may use: never more than the process can run, one after fork."""

import os
import threading

from cypool._openmp cimport (
    CYPOOL_COMPILER,
    CYPOOL_OPENMP_ENABLED,
    omp_get_max_threads,
    omp_get_num_procs,
    omp_get_thread_limit,
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

    /* How many of n threads (the caller's included) the OS lets this process start now: it
       starts n - 1 threads with default attributes, as libgomp creates its workers unless
       OMP_STACKSIZE is set, and joins them. libgomp aborts the process when it cannot create a
       worker, so this asks first. */
    #if defined(_OPENMP) && !defined(_WIN32)
        #include <pthread.h>
        #include <stdlib.h>
        static void* cypool_idle_thread(void* arg) { return arg; }
        static int cypool_startable_threads(int n) {
            int started = 0, i;
            pthread_t* threads;
            if (n <= 1) return 1;
            threads = (pthread_t*)malloc(sizeof(pthread_t) * (size_t)(n - 1));
            if (threads == NULL) return 1;
            while (started < n - 1
                   && pthread_create(&threads[started], NULL, cypool_idle_thread, NULL) == 0)
                started++;
            for (i = 0; i < started; i++) pthread_join(threads[i], NULL);
            free(threads);
            return started + 1;
        }
    #else
        static int cypool_startable_threads(int n) { return n; }
    #endif
    """
    int cypool_cpu_has_avx2() noexcept nogil
    int cypool_startable_threads(int n) noexcept nogil

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


# ------------------------------------------------------------------------------------- fork

cdef bint _forked = False


def _after_fork_in_child():
    # libgomp's worker threads do not exist in a forked child, yet its pool still counts them:
    # the child's first parallel region with more than one thread waits for them forever. One
    # thread never touches the pool (PyTorch does the same), and the results are bit-identical
    # for every thread count.
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_child():
    """Whether this process was forked from one that had loaded cypool (its calls then run on
    one thread)."""
    return _forked


# ---------------------------------------------------------------------------------- threads


def usable_cpus():
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# The most threads each calling thread has started (libgomp keeps a pool per calling thread):
# up to that count no new thread is created, so only a larger request is tried first.
_started = threading.local()


def runnable_threads(int requested):
    """`requested` reduced to what the process can run: one in a forked child; at most its
    usable CPUs and OpenMP's thread limit (more threads than CPUs never speed a kernel up, and
    each costs a stack); and at most the threads the OS lets it start now."""
    if _forked or not CYPOOL_OPENMP_ENABLED or requested <= 1:
        return 1
    cdef int n = min(requested, usable_cpus(), omp_get_thread_limit())
    cdef int high = getattr(_started, "high", 1)
    if n > high:
        with nogil:
            n = cypool_startable_threads(n)
        _started.high = n
    return max(1, n)
