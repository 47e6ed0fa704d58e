# The only place in cypool that touches omp.h. Without OpenMP the same kernels compile against
# serial stand-ins, so `prange` runs serially and thread queries answer as one thread.

cdef extern from *:
    """
    #ifdef _OPENMP
        #include <omp.h>
        #define CYPOOL_OPENMP_ENABLED 1
    #else
        #define CYPOOL_OPENMP_ENABLED 0
        #define omp_get_max_threads() 1
        #define omp_get_thread_num() 0
        #define omp_get_num_procs() 1
        #define omp_get_thread_limit() 1
    #endif
    #if defined(__clang__)
        #define CYPOOL_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
        #define CYPOOL_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
        #define CYPOOL_STR2(x) #x
        #define CYPOOL_STR(x) CYPOOL_STR2(x)
        #define CYPOOL_COMPILER "msvc " CYPOOL_STR(_MSC_VER)
    #else
        #define CYPOOL_COMPILER "unknown"
    #endif
    """
    const bint CYPOOL_OPENMP_ENABLED
    const char* CYPOOL_COMPILER
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int omp_get_thread_limit() noexcept nogil
