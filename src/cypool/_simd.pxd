# The only place in cypool that uses x86 intrinsics. Elsewhere (no SSE2 or AVX, or another
# architecture) the same calls are plain loops that give the same results.
# - Non-temporal stores: a result much larger than the caches is written past them, so the
#   store does not first read each cache line it fills: 30% off a read-and-write stream of
#   100 MB on the reference machine.
# - Line sums in float64 for global pooling: gcc's vectorisation of an eight-accumulator loop
#   kept two dependent add chains and a scalar horizontal sum, 14 ns per 49-float line against
#   5 ns here (four independent chains, a vector horizontal sum).
# - Three float32 rows added in float64 (the row pass of avg pooling): converting four floats
#   straight from memory, where gcc loads eight and splits them, takes 0.17 instead of 0.26 ns
#   per element; and a software prefetch of the row read from memory.
# - k float32 rows added in float64 in registers (channels-last global sums): one pass over the
#   accumulators per eight positions instead of per three.
# - Four float32 taps averaged in float64 (channels-last 2x2 windows), converted straight from
#   memory as above: (4,112,112,64) 2x2/2 in L3, one thread, 0.63 -> 0.43 ms (torch 0.49-0.56).
# - The column pass of 3-tap stride-1 averages into float32, for its non-temporal stores: a
#   non-temporal store needs the intrinsic, which gcc never emits for a plain loop.

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

    /* Sums of n contiguous floats in float64, in one fixed order whichever branch runs: sixteen
       lanes (lane = i mod 16) over the first n - n mod 16 values, then eight of them over the
       next n mod 16 / 8 * 8, the rest in a scalar total t; lanes are combined as
       ((l + l+4) + (l+8 + l+12)) for l < 4, then ((l0 + l2) + (l1 + l3)) + t. */
    static inline double cypool_sum_f32(const float* s, Py_ssize_t n) {
        Py_ssize_t i = 0;
        double t = 0.0;
    #if defined(__AVX__)
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        __m128d h;
        /* Four-float loads converted straight from memory: no 128-bit extracts. */
        for (; i + 16 <= n; i += 16) {
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(s + i)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(s + i + 4)));
            a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm_loadu_ps(s + i + 8)));
            a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm_loadu_ps(s + i + 12)));
        }
        for (; i + 8 <= n; i += 8) {
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(s + i)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(s + i + 4)));
        }
        for (; i < n; i++) t += (double)s[i];
        a0 = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
        h = _mm_add_pd(_mm256_castpd256_pd128(a0), _mm256_extractf128_pd(a0, 1));
        return (_mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h))) + t;
    #else
        double a[16] = {0.0};
        int j;
        for (; i + 16 <= n; i += 16)
            for (j = 0; j < 16; j++) a[j] += (double)s[i + j];
        for (; i + 8 <= n; i += 8)
            for (j = 0; j < 8; j++) a[j] += (double)s[i + j];
        for (; i < n; i++) t += (double)s[i];
        for (j = 0; j < 4; j++) a[j] = (a[j] + a[j + 4]) + (a[j + 8] + a[j + 12]);
        return ((a[0] + a[2]) + (a[1] + a[3])) + t;
    #endif
    }

    /* dst[i] = (a[i] + b[i]) + c[i], or dst[i] += that when accumulate, in float64.
       Long rows prefetch c 4 KB ahead: in a 3-row window pass c is the row read for the first
       time (a and b were read for the previous output rows and sit in L2). Channels-last avg
       3x3/1 waited on it a third of its time, and went from 12.7 to 10.4-12 ms (2 threads).
       A prefetch never faults, so it may run past the row. Short rows (channels-first lines)
       gained nothing and lost 10%.
       Never inlined: inside the sum kernel's large loop gcc kept too few registers for it and
       reloaded its pointers from the stack every 4 elements. Out of line, in one process:
       (2,64,112,112) avg 3x3/1 NCHW, one thread, 1.27 -> 1.13 ms; NHWC 0.88 -> 0.78 ms;
       (32,64,112,112) NCHW, 2 threads, 10.4 -> 8.1 ms. */
    #define CYPOOL_PREFETCH_AHEAD 1024
    #define CYPOOL_PREFETCH_MIN_ROW 512
    #if defined(__GNUC__)
    __attribute__((noinline))
    #endif
    static void cypool_add3_f32(double* dst, const float* a, const float* b,
                                const float* c, Py_ssize_t n, int accumulate) {
        Py_ssize_t i = 0;
    #if defined(__AVX__)
        if (accumulate) {
            for (; i + 4 <= n; i += 4) {
                __m256d t = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)),
                                          _mm256_cvtps_pd(_mm_loadu_ps(b + i)));
                t = _mm256_add_pd(t, _mm256_cvtps_pd(_mm_loadu_ps(c + i)));
                _mm256_storeu_pd(dst + i, _mm256_add_pd(_mm256_loadu_pd(dst + i), t));
            }
        } else if (n >= CYPOOL_PREFETCH_MIN_ROW) {
            for (; i + 4 <= n; i += 4) {
                __m256d t = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)),
                                          _mm256_cvtps_pd(_mm_loadu_ps(b + i)));
                if ((i & 15) == 0)  /* once per cache line; integer arithmetic past the row */
                    _mm_prefetch((const char*)((size_t)(c + i) + 4 * CYPOOL_PREFETCH_AHEAD),
                                 _MM_HINT_T0);
                _mm256_storeu_pd(dst + i, _mm256_add_pd(t, _mm256_cvtps_pd(_mm_loadu_ps(c + i))));
            }
        } else {
            for (; i + 4 <= n; i += 4) {
                __m256d t = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)),
                                          _mm256_cvtps_pd(_mm_loadu_ps(b + i)));
                _mm256_storeu_pd(dst + i, _mm256_add_pd(t, _mm256_cvtps_pd(_mm_loadu_ps(c + i))));
            }
        }
    #endif
        if (accumulate)
            for (; i < n; i++) dst[i] += ((double)a[i] + (double)b[i]) + (double)c[i];
        else
            for (; i < n; i++) dst[i] = ((double)a[i] + (double)b[i]) + (double)c[i];
    }

    /* dst[i] (= or +=) the sum of k rows src[r * stride + i], r < k, in float64, added in row
       order ((r0 + r1) + r2) + ...: the same additions as cypool_add3_f32 for k = 3. */
    static inline void cypool_add_rows_f32(double* dst, const float* src, Py_ssize_t stride,
                                           Py_ssize_t k, Py_ssize_t n, int accumulate) {
        Py_ssize_t i = 0, r;
        double t;
    #if defined(__AVX__)
        for (; i + 8 <= n; i += 8) {
            const float* s = src + i;
            __m256d u = _mm256_cvtps_pd(_mm_loadu_ps(s)), v = _mm256_cvtps_pd(_mm_loadu_ps(s + 4));
            for (r = 1; r < k; r++) {
                s += stride;
                u = _mm256_add_pd(u, _mm256_cvtps_pd(_mm_loadu_ps(s)));
                v = _mm256_add_pd(v, _mm256_cvtps_pd(_mm_loadu_ps(s + 4)));
            }
            if (accumulate) {
                u = _mm256_add_pd(_mm256_loadu_pd(dst + i), u);
                v = _mm256_add_pd(_mm256_loadu_pd(dst + i + 4), v);
            }
            _mm256_storeu_pd(dst + i, u);
            _mm256_storeu_pd(dst + i + 4, v);
        }
    #endif
        for (; i < n; i++) {
            t = (double)src[i];
            for (r = 1; r < k; r++) t += (double)src[r * stride + i];
            dst[i] = accumulate ? dst[i] + t : t;
        }
    }

    #if defined(__AVX__)
    /* o[0:4] = lo, o[4:8] = hi: with `stream` (o 16-byte aligned), past the caches. */
    static inline void cypool_store8_f32(float* o, __m128 lo, __m128 hi, int stream) {
        if (stream) {
            _mm_stream_ps(o, lo);
            _mm_stream_ps(o + 4, hi);
        } else {
            _mm256_storeu_ps(o, _mm256_set_m128(hi, lo));
        }
    }
    #endif

    /* o[i] = (float)(((a[i] + b[i]) + (c[i] + d[i])) * f) in float64: the four taps of a
       channels-last 2x2 window, the same additions and rounding as the plain loop. With
       `stream` and a 16-byte aligned o, the vector part is stored past the caches (16 bytes
       at a time: numpy's large buffers start 16 bytes past a cache line); a run of calls over
       consecutive lines then fills each line with streaming stores alone. */
    static inline void cypool_avg4_f32(float* o, const float* a, const float* b, const float* c,
                                       const float* d, Py_ssize_t n, double f, int stream) {
        Py_ssize_t i = 0;
    #if defined(__AVX__)
        __m256d vf = _mm256_set1_pd(f);
        stream = stream && ((size_t)o & 15) == 0;
        for (; i + 8 <= n; i += 8) {
            __m256d u = _mm256_add_pd(
                _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)), _mm256_cvtps_pd(_mm_loadu_ps(b + i))),
                _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(c + i)), _mm256_cvtps_pd(_mm_loadu_ps(d + i))));
            __m256d v = _mm256_add_pd(
                _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)),
                              _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4))),
                _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(c + i + 4)),
                              _mm256_cvtps_pd(_mm_loadu_ps(d + i + 4))));
            cypool_store8_f32(o + i, _mm256_cvtpd_ps(_mm256_mul_pd(u, vf)),
                              _mm256_cvtpd_ps(_mm256_mul_pd(v, vf)), stream);
        }
    #endif
        for (; i < n; i++)
            o[i] = (float)((((double)a[i] + (double)b[i]) + ((double)c[i] + (double)d[i])) * f);
    }

    /* o[i] = (float)(((b[i] + b[i + d]) + b[i + 2d]) * f): the column pass of a 3-tap,
       stride-1 average over float64 row sums, the same additions and rounding as the plain
       loop; with `stream` and a 16-byte aligned o, stored past the caches as above. */
    static inline void cypool_avg3_f32(float* o, const double* b, Py_ssize_t n, Py_ssize_t d,
                                       double f, int stream) {
        Py_ssize_t i = 0;
    #if defined(__AVX__)
        __m256d vf = _mm256_set1_pd(f);
        stream = stream && ((size_t)o & 15) == 0;
        for (; i + 8 <= n; i += 8) {
            __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_add_pd(_mm256_add_pd(
                _mm256_loadu_pd(b + i), _mm256_loadu_pd(b + i + d)), _mm256_loadu_pd(b + i + 2 * d)), vf));
            __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_add_pd(_mm256_add_pd(
                _mm256_loadu_pd(b + i + 4), _mm256_loadu_pd(b + i + 4 + d)),
                _mm256_loadu_pd(b + i + 4 + 2 * d)), vf));
            cypool_store8_f32(o + i, lo, hi, stream);
        }
    #endif
        for (; i < n; i++)
            o[i] = (float)(((b[i] + b[i + d]) + b[i + 2 * d]) * f);
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
    void cypool_add_rows_f32(double* dst, const float* src, Py_ssize_t stride, Py_ssize_t k,
                             Py_ssize_t n, int accumulate) noexcept nogil
    double cypool_sum_f32(const float* s, Py_ssize_t n) noexcept nogil
    void cypool_avg4_f32(float* o, const float* a, const float* b, const float* c, const float* d,
                         Py_ssize_t n, double f, int stream) noexcept nogil
    void cypool_avg3_f32(float* o, const double* b, Py_ssize_t n, Py_ssize_t d, double f,
                         int stream) noexcept nogil
    void cypool_add3_f32(double* dst, const float* a, const float* b, const float* c,
                         Py_ssize_t n, int accumulate) noexcept nogil
