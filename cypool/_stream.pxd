# Non-temporal stores: the only place in cypool that uses x86 intrinsics. A result much larger
# than the caches is written past them, so the store does not first read each cache line it
# fills: 30% off a read-and-write stream of 100 MB on the reference machine. Elsewhere (no
# SSE2, or another architecture) the same calls are plain loops.

cdef extern from *:
    """
    #if defined(__AVX__)
        #include <immintrin.h>
    #elif defined(__SSE2__)
        #include <emmintrin.h>
    #endif

    /* Only whole cache lines are streamed: from the first 64-byte boundary, 64 bytes at a
       time. The partial lines at either end, which a neighbouring call may also write, take
       plain stores: a line written both ways thrashes the write-combining buffers. */
    static inline void cypool_stream_f32_from_f64(float* dst, const double* src, Py_ssize_t n) {
        Py_ssize_t i = 0;
    #if defined(__AVX__)
        for (; i < n && ((size_t)(dst + i) & 63); i++) dst[i] = (float)src[i];
        for (; i + 16 <= n; i += 16) {
            _mm256_stream_ps(dst + i, _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(src + i + 4)),
                                                      _mm256_cvtpd_ps(_mm256_loadu_pd(src + i))));
            _mm256_stream_ps(dst + i + 8,
                             _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(src + i + 12)),
                                             _mm256_cvtpd_ps(_mm256_loadu_pd(src + i + 8))));
        }
    #elif defined(__SSE2__)
        for (; i < n && ((size_t)(dst + i) & 63); i++) dst[i] = (float)src[i];
        for (; i + 16 <= n; i += 16) {
            Py_ssize_t j;
            for (j = i; j < i + 16; j += 4)
                _mm_stream_ps(dst + j, _mm_movelh_ps(_mm_cvtpd_ps(_mm_loadu_pd(src + j)),
                                                     _mm_cvtpd_ps(_mm_loadu_pd(src + j + 2))));
        }
    #endif
        for (; i < n; i++) dst[i] = (float)src[i];
    }

    static inline void cypool_stream_f64(double* dst, const double* src, Py_ssize_t n) {
        Py_ssize_t i = 0;
    #if defined(__AVX__)
        for (; i < n && ((size_t)(dst + i) & 63); i++) dst[i] = src[i];
        for (; i + 8 <= n; i += 8) {
            _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
            _mm256_stream_pd(dst + i + 4, _mm256_loadu_pd(src + i + 4));
        }
    #elif defined(__SSE2__)
        for (; i < n && ((size_t)(dst + i) & 63); i++) dst[i] = src[i];
        for (; i + 8 <= n; i += 8) {
            _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
            _mm_stream_pd(dst + i + 2, _mm_loadu_pd(src + i + 2));
            _mm_stream_pd(dst + i + 4, _mm_loadu_pd(src + i + 4));
            _mm_stream_pd(dst + i + 6, _mm_loadu_pd(src + i + 6));
        }
    #endif
        for (; i < n; i++) dst[i] = src[i];
    }

    /* Non-temporal stores are weakly ordered: each thread fences them before its results
       are read by another. */
    static inline void cypool_stream_fence(void) {
    #if defined(__SSE2__)
        _mm_sfence();
    #endif
    }
    """
    void cypool_stream_f32_from_f64(float* dst, const double* src, Py_ssize_t n) noexcept nogil
    void cypool_stream_f64(double* dst, const double* src, Py_ssize_t n) noexcept nogil
    void cypool_stream_fence() noexcept nogil
