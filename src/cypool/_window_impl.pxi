# Window pooling forward kernels, included by _window_kernels.pyx (baseline ISA) and
# _window_kernels_avx2.pyx (compiled with -mavx2, chosen at run time by cypool._kernels).
#
# Window pooling forward kernels over the 5-d geometry ``(outer, n0, n1, n2, inner)``.
#
# Shapes, padding and divisors are resolved in Python (``cypool._geometry``): the kernels receive,
# per padded pooled axis, a table of (first in-bounds tap position, in-bounds tap count) for every
# output position, and each axis's (kernel, stride, dilation, leading pad).
#
# A work item is one output row ``(outer, i0, i1)``, one block of the inner axis and one chunk of
# output positions along axis 2. Its row pass reduces the in-bounds input rows ``(p0, p1)``
# elementwise into a thread-local buffer of shape ``(span, block)``: contiguous loops that gcc
# vectorises, for channels-first (``block == 1``, along n2) and channels-last (along inner) alike.
# Its column pass then reduces that buffer along axis 2 with the stride and dilation of axis 2;
# the buffer's positions outside the input (padding, ceil-mode overhang) hold the reduction's
# neutral value, so every window has the same k2 taps and the pass is uniform and vectorised.
#
# Max kernels compare with a plain ``v > m``, which vectorises, and raise a per-item NaN flag
# beside it; an item that read a NaN is redone by the exact scan that also serves
# ``return_indices`` (first maximum wins, a NaN wins and propagates).


from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, fabs, pow, sqrt
from libc.stdint cimport (
    int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from cypool._openmp cimport CYPOOL_OPENMP_ENABLED, omp_get_thread_num
from cypool._simd cimport (cypool_stream_f32_from_f64, cypool_stream_f64, cypool_stream_fence,
                           cypool_sum_f32, cypool_add3_f32, cypool_add_rows_f32, cypool_avg4_f32,
                           cypool_avg3_f32)

# Whether this module was compiled with OpenMP; it must agree with cypool._runtime.
OPENMP_ENABLED = bool(CYPOOL_OPENMP_ENABLED)

ctypedef fused order_t:
    float
    double
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t

ctypedef fused real_t:
    float
    double

# Where sums are stored: real_t for results, double for the partial sums of chunked (dask) pooling.
ctypedef fused total_t:
    float
    double

cdef enum:
    # Thread-local row buffers are kept within this many bytes (L1-sized: an L2-sized buffer
    # made channels-last avg 25% slower) by splitting axis 2 into chunks, and the inner axis into
    # blocks when one window alone would not fit.
    SCRATCH_BYTES = 16384
    CACHE_LINE = 64
    # The code of a buffered position outside the input in _max_index_line_item (2**30).
    PADDING_CODE = 1073741824

cdef enum PowerKind:
    POWER_NONE = 0      # avg: sum x
    POWER_ONE = 1       # lp, p == 1: sum |x|
    POWER_TWO = 2       # lp, p == 2: sum x*x
    POWER_GENERAL = 3   # lp: sum |x|**p

cdef extern from *:
    # Below this, a window's float64 sum of |x|**p may have lost accuracy to underflow: terms
    # under DBL_MIN are subnormal or 0, each off by up to 2**-1075 (half the smallest
    # subnormal), so a sum S of n terms is off by at most n * 2**-1075 / S relatively: from
    # S >= 2**-960 on, n * 2**-115, below float64 rounding for any window of under 2**62 taps.
    """
    #define CYPOOL_LP_TINY 0x1p-960
    """
    double CYPOOL_LP_TINY


cdef struct Plan:
    Py_ssize_t o0, o1, o2
    Py_ssize_t n1, n2
    Py_ssize_t block, nblocks, inner
    Py_ssize_t ochunk, nchunks
    Py_ssize_t nitems
    Py_ssize_t span        # buffered positions along axis 2 of the longest chunk
    Py_ssize_t rows        # the most input rows (p0, p1) of any window
    bint line_argmax       # channels-first argmax by _max_index_line_item
    Py_ssize_t xs0, xs1, xs2, xs3, xs4
    Py_ssize_t os0, os1, os2, os3, os4
    Py_ssize_t is0, is1, is2, is3, is4
    Py_ssize_t d0, d1, d2
    Py_ssize_t k2, s2, pad2  # axis 2's kernel, stride and leading pad; k2 == 0: table mode
    bint direct              # channels-last items read taps straight from the input
    bint stream_taps         # float32 channels-last averages stored past the caches: of 2x2
    bint stream_rows         # taps, and of 3-tap stride-1 rows
    bint uniform2            # averages: every output along axis 2 has the same divisor
    const int64_t* taps0
    const int64_t* taps1
    const int64_t* taps2


cdef struct Item:
    Py_ssize_t b, i0, i1, c0, nc
    Py_ssize_t i2a, i2b    # output positions [i2a, i2b) along axis 2
    Py_ssize_t lo, hi      # the padded input positions [lo, hi) their windows cover
    Py_ssize_t rlo, rhi    # the part of [lo, hi) inside the input


cdef Plan _make_plan(
    Py_ssize_t* xshape, Py_ssize_t* xstrides, Py_ssize_t xitem,
    Py_ssize_t* oshape, Py_ssize_t* ostrides, Py_ssize_t oitem,
    const int64_t[:, ::1] taps0, const int64_t[:, ::1] taps1, const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows, Py_ssize_t buffer_item, int num_threads,
):
    """Per-call constants. `windows` holds (kernel, stride, dilation, pad_before) per axis;
    buffer_item is the byte size of the row buffer's elements."""
    cdef Plan p
    cdef Py_ssize_t nrows, i
    p.o0, p.o1, p.o2 = oshape[1], oshape[2], oshape[3]
    p.n1, p.n2 = xshape[2], xshape[3]
    p.inner = xshape[4]
    p.xs0, p.xs1, p.xs2, p.xs3, p.xs4 = [xstrides[i] // xitem for i in range(5)]
    p.os0, p.os1, p.os2, p.os3, p.os4 = [ostrides[i] // oitem for i in range(5)]
    p.is0 = p.is1 = p.is2 = p.is3 = p.is4 = 0
    p.d0, p.d1, p.d2 = windows[0, 2], windows[1, 2], windows[2, 2]
    p.k2, p.s2, p.pad2 = windows[2, 0], windows[2, 1], windows[2, 3]
    p.taps0, p.taps1, p.taps2 = &taps0[0, 0], &taps1[0, 0], &taps2[0, 0]

    # Inner blocks: a whole window's positions fit the buffer, and every thread has work.
    cdef Py_ssize_t elements = SCRATCH_BYTES // buffer_item
    cdef Py_ssize_t extent2 = (p.k2 - 1) * p.d2 + 1, lo, hi
    if p.k2 == 0:
        # Table mode (adaptive bins): windows of varying size, one chunk spanning them all.
        lo, hi, extent2 = taps2[0, 0], 0, 1
        for i in range(p.o2):
            lo = min(lo, taps2[i, 0])
            hi = max(hi, taps2[i, 0] + (taps2[i, 1] - 1) * p.d2 + 1)
            extent2 = max(extent2, (taps2[i, 1] - 1) * p.d2 + 1)
    cdef Py_ssize_t rows0 = 0, rows1 = 0
    for i in range(p.o0):
        rows0 = max(rows0, taps0[i, 1])
    for i in range(p.o1):
        rows1 = max(rows1, taps1[i, 1])
    p.rows = rows0 * rows1
    nrows = oshape[0] * p.o0 * p.o1
    p.block = p.inner
    if p.block > 1 and p.block * extent2 > elements:
        p.block = max(16, elements // extent2)
    while p.block > 16 and nrows * ((p.inner + p.block - 1) // p.block) < 4 * num_threads:
        p.block = (p.block + 1) // 2
    p.block = min(p.block, p.inner)
    p.nblocks = (p.inner + p.block - 1) // p.block

    # Chunks of axis 2: as many outputs as keep the buffered span within the budget.
    p.ochunk = p.o2
    if p.k2 == 0:
        p.span = hi - lo
    else:
        if ((p.o2 - 1) * p.s2 + extent2) * p.block > elements:
            p.ochunk = max(1, (elements // p.block - extent2) // p.s2 + 1)
        p.span = (p.ochunk - 1) * p.s2 + extent2
    p.nchunks = (p.o2 + p.ochunk - 1) // p.ochunk
    # Its tap codes are a row's offset within the pooled plane plus a tap's offset along axis
    # 2: below the plane's size plus the window's extent, which must stay below PADDING_CODE
    # (so that padding loses every tie) and so below 2**31 with PADDING_CODE added.
    p.line_argmax = (p.k2 > 0 and p.inner == 1
                     and xshape[1] * xshape[2] * xshape[3] + extent2 < PADDING_CODE)
    # Channels-last windows that barely overlap gain nothing from the row buffer: reading each
    # tap's inner line straight from the input skips a write and read of the buffer.
    p.direct = p.inner > 1 and (p.k2 == 0 or p.k2 <= p.s2 + 1)
    p.stream_taps = p.stream_rows = p.uniform2 = False
    p.nitems = nrows * p.nblocks * p.nchunks
    return p


cdef struct Cursor:
    # Work item k as its coordinates: chunk ch varies fastest, then inner block cb, then the
    # output row (b, i0, i1), so neighbouring items touch neighbouring memory.
    Py_ssize_t ch, cb, i1, i0, b


cdef inline Cursor _cursor(const Plan* p, Py_ssize_t k) noexcept nogil:
    """Decode work item k."""
    cdef Cursor c
    c.ch = k % p.nchunks
    k = k // p.nchunks
    c.cb = k % p.nblocks
    k = k // p.nblocks
    c.i1 = k % p.o1
    k = k // p.o1
    c.i0 = k % p.o0
    c.b = k // p.o0
    return c


cdef inline void _advance(const Plan* p, Cursor* c) noexcept nogil:
    """Step to the next work item: counting up instead of decoding, whose four integer
    divisions cost about as much as a small item's work (a 14x14 plane's rows hold 7 outputs)."""
    c.ch += 1
    if c.ch < p.nchunks:
        return
    c.ch = 0
    c.cb += 1
    if c.cb < p.nblocks:
        return
    c.cb = 0
    c.i1 += 1
    if c.i1 < p.o1:
        return
    c.i1 = 0
    c.i0 += 1
    if c.i0 < p.o0:
        return
    c.i0 = 0
    c.b += 1


cdef inline Item _cursor_item(const Plan* p, const Cursor* c) noexcept nogil:
    return _item_at(p, c.b, c.i0, c.i1, c.cb * p.block, min(p.block, p.inner - c.cb * p.block),
                    c.ch)


cdef inline Py_ssize_t _share_start(Py_ssize_t nitems, Py_ssize_t t, int n) noexcept nogil:
    """The first item of share t of n of the items [0, nitems) (share t ends where t + 1
    starts): contiguous shares, as a static schedule gives, so that each thread counts through
    its items with _advance."""
    return nitems * t // n


cdef inline Item _item_at(const Plan* p, Py_ssize_t b, Py_ssize_t i0, Py_ssize_t i1,
                          Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t ch) noexcept nogil:
    """The item of output row (b, i0, i1), lanes [c0, c0 + nc) and chunk ch of axis 2."""
    cdef Item it
    cdef Py_ssize_t i
    it.b, it.i0, it.i1, it.c0, it.nc = b, i0, i1, c0, nc
    it.i2a = ch * p.ochunk
    it.i2b = min(it.i2a + p.ochunk, p.o2)
    if p.k2 == 0:
        it.lo, it.hi = p.taps2[0], 0
        for i in range(p.o2):
            it.lo = min(it.lo, p.taps2[2 * i])
            it.hi = max(it.hi, p.taps2[2 * i] + (p.taps2[2 * i + 1] - 1) * p.d2 + 1)
    else:
        it.lo = it.i2a * p.s2 - p.pad2
        it.hi = (it.i2b - 1) * p.s2 - p.pad2 + (p.k2 - 1) * p.d2 + 1
    it.rlo = max(it.lo, 0)
    it.rhi = min(it.hi, p.n2)
    return it


cdef inline Py_ssize_t _scratch_stride(Py_ssize_t nbytes) noexcept nogil:
    """Per-thread scratch bytes rounded to whole cache lines (no false sharing)."""
    return (nbytes + CACHE_LINE - 1) // CACHE_LINE * CACHE_LINE


cdef inline order_t _lowest(order_t dummy) noexcept nogil:
    """The value no max comparison picks over a real one: the buffer's padding."""
    if order_t is float or order_t is double:
        return -INFINITY
    elif order_t is int8_t:
        return -128
    elif order_t is int16_t:
        return -32768
    elif order_t is int32_t:
        return -2147483647 - 1
    elif order_t is int64_t:
        return -9223372036854775807 - 1
    else:
        return 0


cdef inline void _fill_padding(order_t* buf, const Item* it, order_t value) noexcept nogil:
    """Set the buffer's positions outside the input (padding, ceil overhang) to `value`."""
    cdef Py_ssize_t q
    for q in range((it.rlo - it.lo) * it.nc):
        buf[q] = value
    for q in range((it.rhi - it.lo) * it.nc, (it.hi - it.lo) * it.nc):
        buf[q] = value


# ----------------------------------------------------------------------------------------------
# Elementwise line primitives: dst[i] (contiguous) op= src[i * s]. Strides 1 and 2 get loops of
# their own so that gcc vectorises them; the max primitives return whether they read a NaN
# (never, for integers), an OR kept apart from the compare so the max stays vectorisable.

cdef inline bint _line_copy(order_t* dst, const order_t* src, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t i
    cdef order_t v
    cdef int nan = 0
    if s == 1:
        for i in range(n):
            v = src[i]
            dst[i] = v
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    elif s == 2:
        for i in range(n):
            v = src[2 * i]
            dst[i] = v
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    else:
        for i in range(n):
            v = src[i * s]
            dst[i] = v
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    return nan


cdef inline bint _line_max(order_t* dst, const order_t* src, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t i
    cdef order_t v, m
    cdef int nan = 0
    if s == 1:
        for i in range(n):
            v = src[i]
            m = dst[i]
            dst[i] = v if v > m else m
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    elif s == 2:
        for i in range(n):
            v = src[2 * i]
            m = dst[i]
            dst[i] = v if v > m else m
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    else:
        for i in range(n):
            v = src[i * s]
            m = dst[i]
            dst[i] = v if v > m else m
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    return nan


cdef inline bint _line_max_pair(order_t* dst, const order_t* a, const order_t* b, Py_ssize_t n,
                                bint first) noexcept nogil:
    """dst = max(a, b), or max(dst, a, b) unless first, over contiguous lines: two input rows
    per pass over the row buffer. Returns whether a NaN was read."""
    cdef Py_ssize_t i
    cdef order_t u, v, m
    cdef int nan = 0
    if first:
        for i in range(n):
            u, v = a[i], b[i]
            dst[i] = v if v > u else u
            if order_t is float or order_t is double:
                nan = nan | (u != u) | (v != v)
    else:
        for i in range(n):
            u, v, m = a[i], b[i], dst[i]
            if order_t is float or order_t is double:
                nan = nan | (u != u) | (v != v)
            u = v if v > u else u
            dst[i] = u if u > m else m
    return nan


cdef inline void _line_store(order_t* dst, Py_ssize_t s, const order_t* src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if s == 1:
        for i in range(n):
            dst[i] = src[i]
    else:
        for i in range(n):
            dst[i * s] = src[i]


cdef inline void _line_sum(double* dst, const double* src, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t i
    if s == 1:
        for i in range(n):
            dst[i] += src[i]
    elif s == 2:
        for i in range(n):
            dst[i] += src[2 * i]
    else:
        for i in range(n):
            dst[i] += src[i * s]


cdef inline void _line_add(double* dst, const real_t* src, Py_ssize_t n, Py_ssize_t s,
                           PowerKind kind, double power, bint assign) noexcept nogil:
    """dst[i] (= or +=) f(src[i * s]), f the identity, |.|, square or |.| ** power, in float64."""
    cdef Py_ssize_t i
    cdef double v
    if kind == POWER_NONE and s == 1:
        if assign:
            for i in range(n):
                dst[i] = <double>src[i]
        else:
            for i in range(n):
                dst[i] += <double>src[i]
        return
    if assign:
        for i in range(n):
            dst[i] = 0.0
    # Contiguous lines of p == 1 and 2 have loops of their own: whether gcc versioned the
    # strided loop for s == 1 changed with the code around it (the LP rescan made float32
    # NCHW (8, 64, 56, 56) 3x3/2 p == 2 7% slower, its row pass loading floats one by one;
    # with these loops p == 1 takes 1.1 ms instead of 1.4 and p == 2 1.15 instead of 1.2).
    if kind == POWER_NONE:
        for i in range(n):
            dst[i] += <double>src[i * s]
    elif kind == POWER_ONE and s == 1:
        for i in range(n):
            v = <double>src[i]
            dst[i] += v if v >= 0 else -v
    elif kind == POWER_ONE:
        for i in range(n):
            v = <double>src[i * s]
            dst[i] += v if v >= 0 else -v
    elif kind == POWER_TWO and s == 1:
        for i in range(n):
            v = <double>src[i]
            dst[i] += v * v
    elif kind == POWER_TWO:
        for i in range(n):
            v = <double>src[i * s]
            dst[i] += v * v
    else:
        for i in range(n):
            v = <double>src[i * s]
            dst[i] += pow(v if v >= 0 else -v, power)


cdef inline void _line_add_pair(double* dst, const real_t* a, const real_t* b, Py_ssize_t n,
                                bint assign) noexcept nogil:
    """dst[i] (= or +=) a[i] + b[i] in float64: two contiguous rows per pass over dst."""
    cdef Py_ssize_t i
    if assign:
        for i in range(n):
            dst[i] = <double>a[i] + <double>b[i]
    else:
        for i in range(n):
            dst[i] += <double>a[i] + <double>b[i]


cdef inline void _line_add_triple(double* dst, const real_t* a, const real_t* b, const real_t* c,
                                  Py_ssize_t n, bint assign) noexcept nogil:
    """dst[i] (= or +=) a[i] + b[i] + c[i] in float64: three contiguous rows per pass."""
    cdef Py_ssize_t i
    if real_t is float:
        cypool_add3_f32(dst, a, b, c, n, not assign)
    elif assign:
        for i in range(n):
            dst[i] = <double>a[i] + <double>b[i] + <double>c[i]
    else:
        for i in range(n):
            dst[i] += <double>a[i] + <double>b[i] + <double>c[i]


cdef inline void _rows_add(double* dst, const real_t* a, const real_t* b, const real_t* c,
                           int count, Py_ssize_t n, Py_ssize_t nc, bint flat, Py_ssize_t xs3,
                           bint assign) noexcept nogil:
    """dst (= or +=) the sum of `count` (1 to 3) rows of n positions of nc contiguous values:
    one line of n * nc when the rows are flat, else one line of nc per position (row stride
    xs3), with the same additions per element either way."""
    cdef Py_ssize_t q, lines = 1 if flat else n, width = n * nc if flat else nc
    for q in range(lines):
        if count == 3:
            _line_add_triple(dst + q * nc, a + q * xs3, b + q * xs3, c + q * xs3, width, assign)
        elif count == 2:
            _line_add_pair(dst + q * nc, a + q * xs3, b + q * xs3, width, assign)
        else:
            _line_add(dst + q * nc, a + q * xs3, width, 1, POWER_NONE, 1.0, assign)


cdef inline bint _window_avg(real_t* o, const double* b, Py_ssize_t n, Py_ssize_t k, Py_ssize_t s,
                             Py_ssize_t d, double scale, const double* inv, bint per_element,
                             bint stream=False) noexcept nogil:
    """o[i] = (sum over j < k of b[i * s + j * d]) * scale * (inv[i] or inv[0]), in one pass,
    for contiguous o and 2- or 3-tap windows at strides 1 and 2; False for other windows.
    `stream` stores float32 3-tap results past the caches."""
    cdef Py_ssize_t i
    cdef double f = scale * inv[0]
    if not per_element:
        if k == 3 and s == 1:
            # Only to stream: gcc's own loop is faster with cached stores (avg backward, whose
            # stride-1 gathers come here, went 20% slower).
            if real_t is float and stream:
                cypool_avg3_f32(o, b, n, d, f, stream)
            else:
                for i in range(n):
                    o[i] = <real_t>((b[i] + b[i + d] + b[i + 2 * d]) * f)
        elif k == 2 and s == 1:
            for i in range(n):
                o[i] = <real_t>((b[i] + b[i + d]) * f)
        else:
            return False
    elif k == 3 and s == 1:
        for i in range(n):
            o[i] = <real_t>((b[i] + b[i + d] + b[i + 2 * d]) * (scale * inv[i]))
    elif k == 3 and s == 2:
        for i in range(n):
            o[i] = <real_t>((b[2 * i] + b[2 * i + d] + b[2 * i + 2 * d]) * (scale * inv[i]))
    elif k == 2 and s == 1:
        for i in range(n):
            o[i] = <real_t>((b[i] + b[i + d]) * (scale * inv[i]))
    elif k == 2 and s == 2:
        for i in range(n):
            o[i] = <real_t>((b[2 * i] + b[2 * i + d]) * (scale * inv[i]))
    else:
        return False
    return True


cdef inline bint _window_sum(real_t* o, Py_ssize_t os, const double* b, Py_ssize_t n,
                             Py_ssize_t k, Py_ssize_t s, Py_ssize_t d, PowerKind kind,
                             double power, double scale, const double* inv, bint per_element,
                             double* acc) noexcept nogil:
    """The column pass of the sum kernels: o[i * os] = finish(sum over j < k of b[i * s + j * d])
    with finish the average (inverse divisor inv[i], or inv[0] for every i) or the p-th root.
    The sums stay in acc; returns _finish's flag."""
    cdef Py_ssize_t i, j
    if kind == POWER_NONE and os == 1 and _window_avg(o, b, n, k, s, d, scale, inv, per_element):
        return False
    for i in range(n):
        acc[i] = b[i * s]
    for j in range(1, k):
        _line_sum(acc, b + j * d, n, s)
    return _finish(o, os, acc, n, kind, power, scale, inv, 1 if per_element else 0)


# ----------------------------------------------------------------------------------------------
# Max

cdef inline bint _beats(order_t v, order_t m) noexcept nogil:
    """v replaces the running max m: strictly greater, or the first NaN."""
    if order_t is float or order_t is double:
        return v > m or (v != v and m == m)
    else:
        return v > m


cdef void _max_scan(const order_t* x, const Plan* p, const Item* it, order_t* best,
                    int64_t* best_at, order_t* o, Py_ssize_t os3, Py_ssize_t os4,
                    int64_t* io, Py_ssize_t is3, Py_ssize_t is4) noexcept nogil:
    """Exact max (and, when io is not NULL, argmax) of every window of the item, in row-major
    tap order, into o[i2 * os3 + c * os4] and io[i2 * is3 + c * is4]: o and io point at the
    item's row (i2 = 0) and first lane."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const order_t* xb = x + it.b * p.xs0 + it.c0 * p.xs4
    cdef const order_t* src
    cdef order_t v
    cdef Py_ssize_t i2, a, e, g, c, p0, p1, p2, flat
    cdef bint first
    for i2 in range(it.i2a, it.i2b):
        t2 = p.taps2 + 2 * i2
        first = True
        for a in range(t0[1]):
            p0 = t0[0] + a * p.d0
            for e in range(t1[1]):
                p1 = t1[0] + e * p.d1
                for g in range(t2[1]):
                    p2 = t2[0] + g * p.d2
                    src = xb + p0 * p.xs1 + p1 * p.xs2 + p2 * p.xs3
                    flat = (p0 * p.n1 + p1) * p.n2 + p2
                    if first:
                        for c in range(it.nc):
                            best[c] = src[c * p.xs4]
                            best_at[c] = flat
                        first = False
                    else:
                        for c in range(it.nc):
                            v = src[c * p.xs4]
                            if _beats(v, best[c]):
                                best[c] = v
                                best_at[c] = flat
        _line_store(o + i2 * os3, os4, best, it.nc)
        if io != NULL:
            _line_store(io + i2 * is3, is4, best_at, it.nc)


cdef inline void _window_max(order_t* o, Py_ssize_t os, const order_t* b, Py_ssize_t n,
                             Py_ssize_t k, Py_ssize_t s, Py_ssize_t d, order_t* acc) noexcept nogil:
    """o[i * os] = max over j < k of b[i * s + j * d]: the column pass of the max kernels, in one
    fused pass for contiguous output and 2- or 3-tap windows at strides 1 and 2."""
    cdef Py_ssize_t i, j
    cdef order_t u, v, w
    if os == 1 and k == 3 and s == 1:
        for i in range(n):
            u, v, w = b[i], b[i + d], b[i + 2 * d]
            u = v if v > u else u
            o[i] = w if w > u else u
    elif os == 1 and k == 3 and s == 2:
        for i in range(n):
            u, v, w = b[2 * i], b[2 * i + d], b[2 * i + 2 * d]
            u = v if v > u else u
            o[i] = w if w > u else u
    elif os == 1 and k == 2 and s == 1:
        for i in range(n):
            u, v = b[i], b[i + d]
            o[i] = v if v > u else u
    elif os == 1 and k == 2 and s == 2:
        for i in range(n):
            u, v = b[2 * i], b[2 * i + d]
            o[i] = v if v > u else u
    else:
        _line_copy(acc, b, n, s)
        for j in range(1, k):
            _line_max(acc, b + j * d, n, s)
        _line_store(o, os, acc, n)


cdef bint _max_direct(const order_t* x, order_t* out, const Plan* p, const Item* it,
                      order_t* acc) noexcept nogil:
    """Channels-last max of one item straight from the input, one inner line per tap (the
    window's in-bounds taps from the tables): no row buffer, so each output position costs its
    taps' loads only. Returns whether a NaN was read (the caller then redoes the item)."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const order_t* base = x + it.b * p.xs0 + it.c0 * p.xs4
    cdef const order_t* src
    cdef order_t* o = out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2 + it.c0 * p.os4
    cdef Py_ssize_t i2, a, e, g
    cdef bint first
    cdef int nan = 0
    for i2 in range(it.i2a, it.i2b):
        t2 = p.taps2 + 2 * i2
        first = True
        for a in range(t0[1]):
            for e in range(t1[1]):
                src = base + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                for g in range(t2[1]):
                    if first:
                        nan |= _line_copy(acc, src + (t2[0] + g * p.d2) * p.xs3, it.nc, p.xs4)
                        first = False
                    else:
                        nan |= _line_max(acc, src + (t2[0] + g * p.d2) * p.xs3, it.nc, p.xs4)
        _line_store(o + i2 * p.os3, p.os4, acc, it.nc)
    return nan


cdef void _max_item(const order_t* x, order_t* out, const Plan* p, const Item* it,
                    order_t* buf, order_t* acc, int64_t* best_at) noexcept nogil:
    """Separable max of one item; redone exactly by _max_scan when it read a NaN.

    buf holds the item's padded positions [lo, hi) of axis 2 times nc: the in-bounds part is the
    elementwise max of the window's input rows, the rest the lowest value (padding never wins).
    """
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const order_t* src
    cdef const order_t* row
    cdef order_t* o
    cdef order_t* inside = buf + (it.rlo - it.lo) * it.nc
    cdef Py_ssize_t a, e, q, i2, j, nc = it.nc, n = it.rhi - it.rlo, no = it.i2b - it.i2a
    cdef bint first = True
    cdef bint flat = nc == 1 or (p.xs4 == 1 and p.xs3 == nc)
    # Contiguous rows are maxed two at a time, as the sums group theirs: half the row-buffer
    # passes and NaN reductions. Without a NaN the max does not depend on the order.
    cdef bint paired = flat and (nc > 1 or p.xs3 == 1)
    cdef const order_t* pending = NULL
    cdef int nan = 0
    o = out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2 + it.c0 * p.os4
    if nc > 1 and p.direct:
        if _max_direct(x, out, p, it, acc):
            _max_scan(x, p, it, acc, best_at, o, p.os3, p.os4, NULL, 0, 0)
        return
    _fill_padding(buf, it, _lowest(buf[0]))
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = (x + it.b * p.xs0 + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                   + it.rlo * p.xs3 + it.c0 * p.xs4)
            if paired:
                if pending == NULL:
                    pending = src
                    continue
                nan |= _line_max_pair(inside, pending, src, n * nc, first)
                pending = NULL
            elif flat:
                # A strided channels-first line (every contiguous row is paired above).
                if first:
                    nan |= _line_copy(inside, src, n, p.xs3)
                else:
                    nan |= _line_max(inside, src, n, p.xs3)
            else:
                for q in range(n):
                    if first:
                        nan |= _line_copy(inside + q * nc, src + q * p.xs3, nc, p.xs4)
                    else:
                        nan |= _line_max(inside + q * nc, src + q * p.xs3, nc, p.xs4)
            first = False
    if pending != NULL:
        if first:
            nan |= _line_copy(inside, pending, n * nc, 1)
        else:
            nan |= _line_max(inside, pending, n * nc, 1)
    if nan:
        _max_scan(x, p, it, acc, best_at, o, p.os3, p.os4, NULL, 0, 0)
        return
    o += it.i2a * p.os3
    if p.k2 == 0:
        # Table mode: each output's own window, from the taps table.
        for i2 in range(no):
            t2 = p.taps2 + 2 * (it.i2a + i2)
            _window_max(o + i2 * p.os3, p.os4, buf + (t2[0] - it.lo) * nc, nc, t2[1], 1,
                        p.d2 * nc, acc)
    elif nc == 1:
        # Every window has k2 taps in the padded buffer: a uniform strided pass.
        _window_max(o, p.os3, buf, no, p.k2, p.s2, p.d2, acc)
    else:
        for i2 in range(no):
            _window_max(o + i2 * p.os3, p.os4, buf + i2 * p.s2 * nc, nc, p.k2, 1, p.d2 * nc, acc)


def max_pool(
    const order_t[:, :, :, :, :] x,
    order_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    int num_threads,
):
    """out = max over each window of x (NaN propagates)."""
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(order_t), out.shape, out.strides,
                             sizeof(order_t), taps0, taps1, taps2, windows, sizeof(order_t),
                             num_threads)
    cdef Py_ssize_t t, stop
    cdef Cursor cur
    cdef Py_ssize_t k, buf_bytes = _scratch_stride(p.span * p.block * sizeof(order_t))
    cdef Py_ssize_t acc_bytes = _scratch_stride(max(p.block, p.ochunk) * sizeof(order_t))
    cdef Py_ssize_t stride = buf_bytes + acc_bytes + _scratch_stride(p.block * sizeof(int64_t))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef Item it
    cdef const order_t* xp = &x[0, 0, 0, 0, 0]
    cdef order_t* op = &out[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for t in prange(num_threads, schedule="static"):
                k = _share_start(p.nitems, t, num_threads)
                stop = _share_start(p.nitems, t + 1, num_threads)
                cur = _cursor(&p, k)
                while k < stop:
                    it = _cursor_item(&p, &cur)
                    _max_item(xp, op, &p, &it, <order_t*>mine, <order_t*>(mine + buf_bytes),
                              <int64_t*>(mine + buf_bytes + acc_bytes))
                    _advance(&p, &cur)
                    k = k + 1
    finally:
        free(scratch)


cdef inline int _line_max_sel(order_t* dst, int32_t* sel, const order_t* src, Py_ssize_t n,
                              Py_ssize_t s, int32_t row, bint assign) noexcept nogil:
    """dst[i] = max(dst[i], src[i * s]), remembering in sel[i] the first row that holds it (a
    strictly greater value replaces); returns whether a NaN was read. sel is blended with bit
    masks rather than a select: gcc turned `row if gt else sel[i]` into masked stores, which
    are microcoded and slow on AMD cores."""
    cdef Py_ssize_t i
    cdef order_t v, m
    cdef int32_t r, take
    cdef int nan = 0
    if assign:
        nan = _line_copy(dst, src, n, s)
        for i in range(n):
            sel[i] = row
    elif s == 1:
        for i in range(n):
            v = src[i]
            m = dst[i]
            r = sel[i]
            take = -<int32_t>(v > m)
            dst[i] = v if v > m else m
            sel[i] = r ^ ((r ^ row) & take)
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    else:
        for i in range(n):
            v = src[i * s]
            m = dst[i]
            r = sel[i]
            take = -<int32_t>(v > m)
            dst[i] = v if v > m else m
            sel[i] = r ^ ((r ^ row) & take)
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    return nan


cdef inline int _line_max_sel_pair(order_t* dst, int32_t* sel, const order_t* a,
                                   const order_t* b, Py_ssize_t n, int32_t row_a, int32_t row_b,
                                   bint assign) noexcept nogil:
    """_line_max_sel of the contiguous rows a (row_a), then b (row_b), in one pass over dst
    and sel: the same maxima and first rows, half the row-buffer passes."""
    cdef Py_ssize_t i
    cdef order_t u, v, m
    cdef int32_t r, take
    cdef int nan = 0
    if assign:
        for i in range(n):
            u, v = a[i], b[i]
            take = -<int32_t>(v > u)
            dst[i] = v if v > u else u
            sel[i] = row_a ^ ((row_a ^ row_b) & take)
            if order_t is float or order_t is double:
                nan = nan | (u != u) | (v != v)
    else:
        for i in range(n):
            u, v, m, r = a[i], b[i], dst[i], sel[i]
            if order_t is float or order_t is double:
                nan = nan | (u != u) | (v != v)
            take = -<int32_t>(u > m)
            m = u if u > m else m
            r = r ^ ((r ^ row_a) & take)
            take = -<int32_t>(v > m)
            m = v if v > m else m
            r = r ^ ((r ^ row_b) & take)
            dst[i] = m
            sel[i] = r
    return nan


cdef inline void _argmax_taps(const order_t* b, const int32_t* q, Py_ssize_t k, Py_ssize_t d,
                              order_t* m, int32_t* r, int32_t* t) noexcept nogil:
    """m = the max of the taps b[j * d], j < k, with r its row q[j * d] and t its tap j, first
    in row-major order: a larger value, or an equal one from an earlier row, replaces."""
    cdef order_t best = b[0], v
    cdef int32_t row = q[0], tap = 0, u, j
    cdef bint take
    for j in range(1, k):
        v = b[j * d]
        u = q[j * d]
        take = (v > best) | ((v == best) & (u < row))
        best = v if take else best
        row = u if take else row
        tap = j if take else tap
    m[0] = best
    r[0] = row
    t[0] = tap


cdef inline void _window_argmax(const order_t* buf, const int32_t* sel, Py_ssize_t n,
                                Py_ssize_t k, Py_ssize_t s, Py_ssize_t d, order_t* m,
                                int32_t* r, int32_t* t) noexcept nogil:
    """For i < n, the window of taps buf[i * s + j * d], j < k (rows sel): m[i] its max, r[i]
    and t[i] the row and tap of its first occurrence. The common windows get loops with
    constant k, which gcc unrolls over the taps."""
    cdef Py_ssize_t i
    if k == 3 and s == 1:
        for i in range(n):
            _argmax_taps(buf + i, sel + i, 3, d, m + i, r + i, t + i)
    elif k == 2 and s == 1:
        for i in range(n):
            _argmax_taps(buf + i, sel + i, 2, d, m + i, r + i, t + i)
    else:
        for i in range(n):
            _argmax_taps(buf + i * s, sel + i * s, k, d, m + i, r + i, t + i)


cdef struct ArgmaxScratch:
    # Thread-local buffers of the separable argmax, typed by the kernel that carves them.
    void* buf           # (span, block) row-pass maxima
    int32_t* sel        # (span, block) their rows, as numbers within the window's rows
    int64_t* row_at     # (rows,) flat index of each window row's first element
    void* best          # (lanes,) window maxima
    int32_t* best_row   # (lanes,) their rows
    int32_t* best_tap   # (lanes,) their taps along axis 2
    int64_t* best_at    # (lanes,) flat argmax of the exact scan


cdef inline Py_ssize_t _argmax_scratch_bytes(const Plan* p, Py_ssize_t item) noexcept:
    """Per-thread bytes of an ArgmaxScratch for elements of `item` bytes."""
    cdef Py_ssize_t lanes = max(p.block, p.ochunk), cells = p.span * p.block
    return (_scratch_stride(cells * item) + _scratch_stride(cells * sizeof(int32_t))
            + _scratch_stride(p.rows * sizeof(int64_t)) + _scratch_stride(lanes * item)
            + 2 * _scratch_stride(lanes * sizeof(int32_t)) + _scratch_stride(lanes * sizeof(int64_t)))


cdef inline ArgmaxScratch _argmax_scratch(const Plan* p, Py_ssize_t item, char* mine) noexcept nogil:
    """Carve an ArgmaxScratch from `mine` (_argmax_scratch_bytes(p, item) bytes)."""
    cdef ArgmaxScratch s
    cdef Py_ssize_t lanes = max(p.block, p.ochunk), cells = p.span * p.block
    s.buf = mine
    mine += _scratch_stride(cells * item)
    s.sel = <int32_t*>mine
    mine += _scratch_stride(cells * sizeof(int32_t))
    s.row_at = <int64_t*>mine
    mine += _scratch_stride(p.rows * sizeof(int64_t))
    s.best = mine
    mine += _scratch_stride(lanes * item)
    s.best_row = <int32_t*>mine
    mine += _scratch_stride(lanes * sizeof(int32_t))
    s.best_tap = <int32_t*>mine
    mine += _scratch_stride(lanes * sizeof(int32_t))
    s.best_at = <int64_t*>mine
    return s


cdef inline void _tie_max(const order_t* b, const int32_t* c, Py_ssize_t k, Py_ssize_t d,
                          order_t* best, int32_t* code) noexcept nogil:
    """best = the max of the taps b[j * d], j < k, and code the smallest c[j * d] + j * d of
    the taps holding it: its first tap in row-major order. The code is blended with a bit mask:
    a select on a float compare is control flow to gcc's vectoriser."""
    cdef order_t m = b[0], v
    cdef int32_t mc = c[0], vc, take, j
    for j in range(1, <int32_t>k):
        v = b[j * d]
        vc = c[j * d] + j * <int32_t>d
        take = -<int32_t>((v > m) | ((v == m) & (vc < mc)))
        m = v if v > m else m
        mc = mc ^ ((mc ^ vc) & take)
    best[0] = m
    code[0] = mc


cdef inline void _tie_max_line(order_t* m, int32_t* codes, const order_t* b, const int32_t* c,
                               Py_ssize_t n, Py_ssize_t k, Py_ssize_t s, Py_ssize_t d) noexcept nogil:
    """For i < n, _tie_max over the taps b[i * s + j * d] (codes c the same) into m[i] and
    codes[i]."""
    cdef Py_ssize_t i
    for i in range(n):
        _tie_max(b + i * s, c + i * s, k, d, m + i, codes + i)


cdef inline void _tie_max_lines(order_t* m, int32_t* codes, const order_t* b, const int32_t* c,
                                Py_ssize_t n, Py_ssize_t k, Py_ssize_t s, Py_ssize_t d) noexcept nogil:
    """_tie_max_line, with constant k, s and d for the common windows, which gcc unrolls over
    the taps and vectorises over i."""
    if d == 1:
        if k == 3 and s == 2:
            _tie_max_line(m, codes, b, c, n, 3, 2, 1)
        elif k == 2 and s == 2:
            _tie_max_line(m, codes, b, c, n, 2, 2, 1)
        elif k == 3 and s == 1:
            _tie_max_line(m, codes, b, c, n, 3, 1, 1)
        elif k == 2 and s == 1:
            _tie_max_line(m, codes, b, c, n, 2, 1, 1)
        else:
            _tie_max_line(m, codes, b, c, n, k, s, 1)
        return
    _tie_max_line(m, codes, b, c, n, k, s, d)


cdef void _max_index_line_item(const order_t* x, const Plan* p, const Item* it,
                               const ArgmaxScratch* s, order_t* o, Py_ssize_t os3,
                               int64_t* io, Py_ssize_t is3) noexcept nogil:
    """Max and argmax of one channels-first item (nc == 1, uniform windows along axis 2, a
    pooled plane of fewer than 2**30 elements less the window's extent), into o[i2 * os3] and io[i2 * is3] pointing at
    the item's row (i2 = 0).

    The window rows are reduced first, position by position along the contiguous axis 2, into
    the row buffer: each position's max over the rows and, as an int32 code, the offset of the
    first row holding it from the window's first row (a strictly larger value replaces, rows in
    scan order). Each window then takes, among its taps along axis 2, the max with the smallest
    code plus the tap's own offset: the first maximum in row-major order, a flat offset from the
    window's first tap that the store adds to the window's flat start. Positions outside the
    input hold the lowest value and a code above every real one, so they never win, not even
    a tie with a real lowest value. Items that read a NaN are redone by the exact scan."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const order_t* src
    cdef order_t* buf = <order_t*>s.buf
    cdef int32_t* sel = s.sel
    cdef order_t* best = <order_t*>s.best
    cdef int32_t* codes = s.best_row
    cdef Py_ssize_t a, e, i, no = it.i2b - it.i2a, n = it.rhi - it.rlo
    cdef Py_ssize_t off = it.rlo - it.lo, s2 = p.s2
    cdef Py_ssize_t first = (t0[0] * p.n1 + t1[0]) * p.n2 + it.lo
    cdef int nan = 0
    cdef int32_t code, pending_code = 0
    cdef const order_t* pending = NULL
    cdef bint assign = True
    _fill_padding(buf, it, _lowest(buf[0]))
    _fill_padding(sel, it, <int32_t>PADDING_CODE)
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = (x + it.b * p.xs0 + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                   + it.rlo * p.xs3 + it.c0 * p.xs4)
            code = <int32_t>((a * p.d0 * p.n1 + e * p.d1) * p.n2)
            if p.xs3 == 1:
                # Contiguous rows two at a time, as in the values-only max.
                if pending == NULL:
                    pending, pending_code = src, code
                    continue
                nan |= _line_max_sel_pair(buf + off, sel + off, pending, src, n, pending_code,
                                          code, assign)
                pending = NULL
            else:
                nan |= _line_max_sel(buf + off, sel + off, src, n, p.xs3, code, assign)
            assign = False
    if pending != NULL:
        nan |= _line_max_sel(buf + off, sel + off, pending, n, 1, pending_code, assign)
    if nan:
        _max_scan(x, p, it, <order_t*>s.buf, s.best_at, o, os3, 0, io, is3, 0)
        return
    _tie_max_lines(best, codes, buf, sel, no, p.k2, s2, p.d2)
    _line_store(o + it.i2a * os3, os3, best, no)
    io += it.i2a * is3
    for i in range(no):
        # first advances by s2 rather than adding i * s2: a 64-bit vector multiply is slow
        io[i * is3] = first + codes[i]
        first += s2


cdef void _max_index_item(const order_t* x, const Plan* p, const Item* it, const ArgmaxScratch* s,
                          order_t* o, Py_ssize_t os3, Py_ssize_t os4,
                          int64_t* io, Py_ssize_t is3, Py_ssize_t is4) noexcept nogil:
    """Separable max and argmax of one item into o[i2 * os3 + c * os4] and io (the same, by
    is3 and is4), both pointing at the item's row (i2 = 0) and first lane. Channels-first items
    of uniform windows go to _max_index_line_item; this serves channels-last and adaptive bins.

    The row pass keeps, per buffered position, the max over the window's rows and the first of
    those rows holding it (rows numbered in scan order); the column pass picks, among a window's
    taps, the max with the smallest (row, column): the first in row-major order. Positions
    outside the input hold the lowest value and a row after every real one, so they never win,
    not even a tie with a real lowest value. Redone by _max_scan when it read a NaN."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const order_t* src
    cdef order_t* buf = <order_t*>s.buf
    cdef order_t* best = <order_t*>s.best
    cdef const int64_t* row_at = s.row_at
    cdef const int32_t* best_row = s.best_row
    cdef const int32_t* best_tap = s.best_tap
    cdef Py_ssize_t a, e, q, c, i, start, count, nc = it.nc, n = it.rhi - it.rlo
    cdef Py_ssize_t off = (it.rlo - it.lo) * nc
    cdef Py_ssize_t lo = it.lo, s2 = p.s2, d2 = p.d2
    cdef int32_t row = 0
    cdef int nan = 0
    if p.line_argmax:
        _max_index_line_item(x, p, it, s, o, os3, io, is3)
        return
    _fill_padding(buf, it, _lowest(buf[0]))
    _fill_padding(s.sel, it, <int32_t>PADDING_CODE)
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = (x + it.b * p.xs0 + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                   + it.rlo * p.xs3 + it.c0 * p.xs4)
            s.row_at[row] = ((t0[0] + a * p.d0) * p.n1 + t1[0] + e * p.d1) * p.n2
            if nc == 1:
                nan |= _line_max_sel(buf + off, s.sel + off, src, n, p.xs3, row, row == 0)
            else:
                for q in range(n):
                    nan |= _line_max_sel(buf + off + q * nc, s.sel + off + q * nc,
                                         src + q * p.xs3, nc, p.xs4, row, row == 0)
            row += 1
    if nan:
        _max_scan(x, p, it, best, s.best_at, o, os3, os4, io, is3, is4)
        return
    for i in range(it.i2a, it.i2b):
        if p.k2 == 0:
            t2 = p.taps2 + 2 * i
            start, count = t2[0] - lo, t2[1]
        else:
            start, count = (i - it.i2a) * s2, p.k2
        _window_argmax(buf + start * nc, s.sel + start * nc, nc, count, 1, d2 * nc, best,
                       s.best_row, s.best_tap)
        for c in range(nc):
            o[i * os3 + c * os4] = best[c]
            io[i * is3 + c * is4] = row_at[best_row[c]] + lo + start + best_tap[c] * d2


def max_pool_with_indices(
    const order_t[:, :, :, :, :] x,
    order_t[:, :, :, :, :] out,
    int64_t[:, :, :, :, :] indices,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    int num_threads,
):
    """out, indices = max and flat argmax (over the pooled axes) of each window of x."""
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(order_t), out.shape, out.strides,
                             sizeof(order_t), taps0, taps1, taps2, windows, sizeof(order_t),
                             num_threads)
    p.is0, p.is1, p.is2, p.is3, p.is4 = [indices.strides[i] // sizeof(int64_t) for i in range(5)]
    cdef Py_ssize_t t, stop
    cdef Cursor cur
    cdef Py_ssize_t k, stride = _argmax_scratch_bytes(&p, sizeof(order_t))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef ArgmaxScratch s
    cdef Item it
    cdef const order_t* xp = &x[0, 0, 0, 0, 0]
    cdef order_t* op = &out[0, 0, 0, 0, 0]
    cdef int64_t* ip = &indices[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            s = _argmax_scratch(&p, sizeof(order_t), scratch + stride * omp_get_thread_num())
            for t in prange(num_threads, schedule="static"):
                k = _share_start(p.nitems, t, num_threads)
                stop = _share_start(p.nitems, t + 1, num_threads)
                cur = _cursor(&p, k)
                while k < stop:
                    it = _cursor_item(&p, &cur)
                    _max_index_item(
                        xp, &p, &it, &s,
                        op + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2 + it.c0 * p.os4,
                        p.os3, p.os4,
                        ip + it.b * p.is0 + it.i0 * p.is1 + it.i1 * p.is2 + it.c0 * p.is4,
                        p.is3, p.is4)
                    _advance(&p, &cur)
                    k = k + 1
    finally:
        free(scratch)


# ----------------------------------------------------------------------------------------------
# Sums: avg and LP

cdef inline bint _lp_unsafe(double total, PowerKind kind) noexcept nogil:
    """Whether an LP window's float64 sum of |x| ** p may be inaccurate: it overflowed, or
    (p != 1) it lies below CYPOOL_LP_TINY, where terms may have underflowed. For p == 1 the
    terms are the |x| themselves, exact. A NaN sum (a NaN in the window) is left as it is."""
    if kind == POWER_ONE:
        return total == INFINITY
    return (total == INFINITY) | (total < CYPOOL_LP_TINY)


cdef inline bint _finish(real_t* dst, Py_ssize_t ds, const double* acc, Py_ssize_t n,
                         PowerKind kind, double power, double scale, const double* inv,
                         Py_ssize_t inv_step) noexcept nogil:
    """dst[i * ds] = window sums turned into averages (times the inverse divisors) or p-norms.

    Returns whether an LP sum was _lp_unsafe: the caller then redoes those windows with
    _lp_rescan. The flag is an OR beside each root, and contiguous results (ds == 1, both
    layouts' common case) have loops of their own: whether gcc vectorised the strided loops
    for ds == 1 changed with the code around them (p == 1 channels-last float32 went 8%
    slower, p == 2 channels-first float64 30% faster, by chance)."""
    cdef Py_ssize_t i
    cdef int unsafe = 0
    if kind == POWER_NONE:
        if ds == 1 and inv_step == 1:
            for i in range(n):
                dst[i] = <real_t>(acc[i] * (scale * inv[i]))
        else:
            for i in range(n):
                dst[i * ds] = <real_t>(acc[i] * (scale * inv[i * inv_step]))
    elif ds == 1 and kind == POWER_ONE:
        for i in range(n):
            dst[i] = <real_t>_lp_root(acc[i], POWER_ONE, power)
            unsafe = unsafe | _lp_unsafe(acc[i], POWER_ONE)
    elif ds == 1 and kind == POWER_TWO:
        for i in range(n):
            dst[i] = <real_t>_lp_root(acc[i], POWER_TWO, power)
            unsafe = unsafe | _lp_unsafe(acc[i], POWER_TWO)
    else:
        for i in range(n):
            dst[i * ds] = <real_t>_lp_root(acc[i], kind, power)
            unsafe = unsafe | _lp_unsafe(acc[i], kind)
    return unsafe


cdef inline double _lp_root(double total, PowerKind kind, double power) noexcept nogil:
    """total ** (1 / p)."""
    if kind == POWER_ONE:
        return total
    elif kind == POWER_TWO:
        return sqrt(total)
    return pow(total, 1.0 / power)


cdef inline double _lp_term(double r, PowerKind kind, double power) noexcept nogil:
    """r ** p for 0 <= r <= 1."""
    if kind == POWER_ONE:
        return r
    elif kind == POWER_TWO:
        return r * r
    return pow(r, power)


cdef double _lp_taps(const real_t* x, const Plan* p, const Item* it, Py_ssize_t i2,
                     Py_ssize_t c, double m, PowerKind kind, double power) noexcept nogil:
    """Over the in-bounds taps of window i2 (along axis 2) of lane c of the item: the largest
    |x| when m is 0, else the sum of (|x| / m) ** p, in row-major tap order."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2 = p.taps2 + 2 * i2
    cdef const real_t* base = x + it.b * p.xs0 + (it.c0 + c) * p.xs4 + t2[0] * p.xs3
    cdef const real_t* src
    cdef Py_ssize_t a, e, g
    cdef double total = 0.0, v
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = base + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
            for g in range(t2[1]):
                v = fabs(<double>src[g * p.d2 * p.xs3])
                if m == 0.0:
                    total = v if v > total else total
                else:
                    total += _lp_term(v / m, kind, power)
    return total


cdef double _lp_window(const real_t* x, const Plan* p, const Item* it, Py_ssize_t i2,
                       Py_ssize_t c, PowerKind kind, double power) noexcept nogil:
    """The p-norm of window i2 of lane c of the item, scaled by its largest |x| = m as hypot
    and LAPACK's nrm2 do: m * (sum of (|x| / m) ** p) ** (1 / p). Every term is at most 1
    and the largest is 1, so nothing overflows or underflows that the result does not."""
    cdef double m = _lp_taps(x, p, it, i2, c, 0.0, kind, power)
    if m == 0.0 or m == INFINITY:
        return m
    return m * _lp_root(_lp_taps(x, p, it, i2, c, m, kind, power), kind, power)


cdef void _lp_rescan(const real_t* x, const Plan* p, const Item* it, Py_ssize_t i2,
                     bint along2, real_t* dst, Py_ssize_t ds, const double* acc, Py_ssize_t n,
                     PowerKind kind, double power) noexcept nogil:
    """Redo with _lp_window the results dst[i * ds] whose sums acc[i] were _lp_unsafe: outputs
    i2 + i of the item's lane 0 (along2, channels-first lines), else output i2 of lane i.
    Only these windows are redone, so a result never depends on how items split the work."""
    cdef Py_ssize_t i
    for i in range(n):
        if _lp_unsafe(acc[i], kind):
            if along2:
                dst[i * ds] = <real_t>_lp_window(x, p, it, i2 + i, 0, kind, power)
            else:
                dst[i * ds] = <real_t>_lp_window(x, p, it, i2, i, kind, power)


cdef inline void _taps_avg(real_t* o, const real_t** taps, Py_ssize_t ntaps, Py_ssize_t n,
                           double f, bint stream) noexcept nogil:
    """o[i] = (sum of taps[t][i] for t < ntaps <= 4) * f, summed in float64, one pass; float32
    2x2 windows with `stream` write o past the caches."""
    cdef Py_ssize_t i
    cdef const real_t* a = taps[0]
    cdef const real_t* b = taps[1 if ntaps > 1 else 0]
    cdef const real_t* c = taps[2 if ntaps > 2 else 0]
    cdef const real_t* d = taps[3 if ntaps > 3 else 0]
    if ntaps == 4:
        if real_t is float:
            cypool_avg4_f32(o, a, b, c, d, n, f, stream)
        else:
            for i in range(n):
                o[i] = <real_t>(((<double>a[i] + <double>b[i]) + (<double>c[i] + <double>d[i])) * f)
    elif ntaps == 3:
        for i in range(n):
            o[i] = <real_t>((<double>a[i] + <double>b[i] + <double>c[i]) * f)
    elif ntaps == 2:
        for i in range(n):
            o[i] = <real_t>((<double>a[i] + <double>b[i]) * f)
    else:
        for i in range(n):
            o[i] = <real_t>(<double>a[i] * f)


cdef void _sum_direct(const real_t* x, real_t* out, const Plan* p, const Item* it,
                      const double* inv0, const double* inv1, const double* inv2,
                      PowerKind kind, double power, double* acc) noexcept nogil:
    """Channels-last sum of one item straight from the input, one inner line per in-bounds tap,
    finished as avg or p-norm (see _max_direct)."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const real_t* base = x + it.b * p.xs0 + it.c0 * p.xs4
    cdef const real_t* src
    cdef real_t* o = out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2 + it.c0 * p.os4
    cdef Py_ssize_t i2, a, e, g
    cdef double scale = 1.0
    cdef bint first
    cdef const real_t* taps[4]
    cdef Py_ssize_t ntaps
    if kind == POWER_NONE:
        scale = inv0[it.i0] * inv1[it.i1]
    for i2 in range(it.i2a, it.i2b):
        t2 = p.taps2 + 2 * i2
        if (kind == POWER_NONE and p.xs4 == 1 and p.os4 == 1
                and t0[1] * t1[1] * t2[1] <= 4):
            # Up to 4 contiguous taps (2x2 windows): summed and scaled in one pass.
            ntaps = 0
            for a in range(t0[1]):
                for e in range(t1[1]):
                    src = base + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                    for g in range(t2[1]):
                        taps[ntaps] = src + (t2[0] + g * p.d2) * p.xs3
                        ntaps += 1
            _taps_avg(o + i2 * p.os3, taps, ntaps, it.nc, scale * inv2[i2], p.stream_taps)
            continue
        first = True
        for a in range(t0[1]):
            for e in range(t1[1]):
                src = base + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                for g in range(t2[1]):
                    _line_add(acc, src + (t2[0] + g * p.d2) * p.xs3, it.nc, p.xs4, kind, power,
                              first)
                    first = False
        if _finish(o + i2 * p.os3, p.os4, acc, it.nc, kind, power, scale, inv2 + i2, 0):
            _lp_rescan(x, p, it, i2, False, o + i2 * p.os3, p.os4, acc, it.nc, kind, power)


cdef void _sum_item(const real_t* x, real_t* out, const Plan* p, const Item* it,
                    const double* inv0, const double* inv1, const double* inv2,
                    PowerKind kind, double power, double* buf, double* acc) noexcept nogil:
    """Separable windowed sum of one item in float64, finished as avg or p-norm.

    buf holds the item's padded positions [lo, hi) of axis 2 times nc, zero outside the input.
    """
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const real_t* src
    cdef const double* row
    cdef real_t* o
    cdef double* inside = buf + (it.rlo - it.lo) * it.nc
    cdef double scale = 1.0, total
    cdef Py_ssize_t a, e, q, c, i2, j, nc = it.nc, n = it.rhi - it.rlo, no = it.i2b - it.i2a
    cdef bint first = True
    cdef const real_t* pending = NULL
    cdef bint flat = nc == 1 or (p.xs4 == 1 and p.xs3 == nc)
    # Sums of contiguous lines group the rows three by three, whether a row is one flat line or,
    # when the inner axis is split into blocks (how finely depends on the thread count), one
    # line per position: the same additions either way, so results do not depend on threads.
    cdef bint grouped = kind == POWER_NONE and (p.xs3 == 1 if nc == 1 else p.xs4 == 1)
    cdef const real_t* pending2 = NULL
    if nc > 1 and p.direct:
        _sum_direct(x, out, p, it, inv0, inv1, inv2, kind, power, acc)
        return
    _fill_padding(buf, it, <double>0.0)
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = (x + it.b * p.xs0 + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                   + it.rlo * p.xs3 + it.c0 * p.xs4)
            if grouped:
                if pending == NULL:
                    pending = src
                    continue
                if pending2 == NULL:
                    pending2 = src
                    continue
                _rows_add(inside, pending, pending2, src, 3, n, nc, flat, p.xs3, first)
                pending = pending2 = NULL
            elif flat:
                _line_add(inside, src, n * nc, p.xs3 if nc == 1 else 1, kind, power, first)
            else:
                for q in range(n):
                    _line_add(inside + q * nc, src + q * p.xs3, nc, p.xs4, kind, power, first)
            first = False
    if pending2 != NULL:
        _rows_add(inside, pending, pending2, NULL, 2, n, nc, flat, p.xs3, first)
    elif pending != NULL:
        _rows_add(inside, pending, NULL, NULL, 1, n, nc, flat, p.xs3, first)
    o = out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2 + it.i2a * p.os3 + it.c0 * p.os4
    if kind == POWER_NONE:
        scale = inv0[it.i0] * inv1[it.i1]
    if p.k2 == 0 and nc == 1:
        # Table mode, channels-first: each bin's taps summed in one loop, in the same order as
        # _window_sum, which would spend a whole line pass on every single tap.
        for i2 in range(no):
            t2 = p.taps2 + 2 * (it.i2a + i2)
            row = buf + (t2[0] - it.lo)
            total = row[0]
            for j in range(1, t2[1]):
                total += row[j * p.d2]
            acc[i2] = total
        if _finish(o, p.os3, acc, no, kind, power, scale, inv2 + it.i2a, 1):
            _lp_rescan(x, p, it, it.i2a, True, o, p.os3, acc, no, kind, power)
    elif p.k2 == 0:
        for i2 in range(no):
            t2 = p.taps2 + 2 * (it.i2a + i2)
            if _window_sum(o + i2 * p.os3, p.os4, buf + (t2[0] - it.lo) * nc, nc, t2[1], 1,
                           p.d2 * nc, kind, power, scale, inv2 + it.i2a + i2, False, acc):
                _lp_rescan(x, p, it, it.i2a + i2, False, o + i2 * p.os3, p.os4, acc, nc, kind,
                           power)
    elif nc == 1:
        # One divisor for the whole line (count_include_pad without overhang) spares the column
        # pass a load and a multiply per output: avg 3x3/1 NCHW 4-6% faster.
        if _window_sum(o, p.os3, buf, no, p.k2, p.s2, p.d2, kind, power, scale, inv2 + it.i2a,
                       not p.uniform2, acc):
            _lp_rescan(x, p, it, it.i2a, True, o, p.os3, acc, no, kind, power)
    elif kind == POWER_NONE and p.s2 == 1 and p.os4 == 1 and p.os3 == nc:
        # Stride 1 into contiguous (position, channel) rows: one fused pass per run of outputs
        # that share a divisor (the interior is one run), instead of a call per position.
        i2 = 0
        while i2 < no:
            j = i2 + 1
            while j < no and inv2[it.i2a + j] == inv2[it.i2a + i2]:
                j += 1
            if not _window_avg(o + i2 * nc, buf + i2 * nc, (j - i2) * nc, p.k2, 1, p.d2 * nc,
                               scale, inv2 + it.i2a + i2, False, p.stream_rows):
                for q in range(i2, j):
                    _window_sum(o + q * nc, 1, buf + q * nc, nc, p.k2, 1, p.d2 * nc, kind,
                                power, scale, inv2 + it.i2a + q, False, acc)
            i2 = j
    else:
        for i2 in range(no):
            if _window_sum(o + i2 * p.os3, p.os4, buf + i2 * p.s2 * nc, nc, p.k2, 1, p.d2 * nc,
                           kind, power, scale, inv2 + it.i2a + i2, False, acc):
                _lp_rescan(x, p, it, it.i2a + i2, False, o + i2 * p.os3, p.os4, acc, nc, kind,
                           power)


cdef _sum_pool(
    const real_t[:, :, :, :, :] x,
    real_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    const double* inv0,
    const double* inv1,
    const double* inv2,
    PowerKind kind,
    double power,
    bint stream_taps,
    bint stream_rows,
    int num_threads,
):
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(real_t), out.shape, out.strides,
                             sizeof(real_t), taps0, taps1, taps2, windows, sizeof(double),
                             num_threads)
    cdef Py_ssize_t t, stop
    cdef Cursor cur
    cdef Py_ssize_t k, buf_bytes = _scratch_stride(p.span * p.block * sizeof(double))
    cdef Py_ssize_t stride = buf_bytes + _scratch_stride(max(p.block, p.ochunk) * sizeof(double))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef Item it
    cdef const real_t* xp = &x[0, 0, 0, 0, 0]
    cdef real_t* op = &out[0, 0, 0, 0, 0]
    p.stream_taps, p.stream_rows = stream_taps, stream_rows
    # Stride 1 only: one-divisor loops for stride 2 as well left the forward as it was and made
    # avg backward 7% slower, in the same process.
    p.uniform2 = kind == POWER_NONE and p.s2 == 1
    for k in range(1, p.o2):
        p.uniform2 = p.uniform2 and inv2[k] == inv2[0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for t in prange(num_threads, schedule="static"):
                k = _share_start(p.nitems, t, num_threads)
                stop = _share_start(p.nitems, t + 1, num_threads)
                cur = _cursor(&p, k)
                while k < stop:
                    it = _cursor_item(&p, &cur)
                    _sum_item(xp, op, &p, &it, inv0, inv1, inv2, kind, power,
                              <double*>mine, <double*>(mine + buf_bytes))
                    _advance(&p, &cur)
                    k = k + 1
            if p.stream_taps or p.stream_rows:
                cypool_stream_fence()
    finally:
        free(scratch)


def avg_pool(
    const real_t[:, :, :, :, :] x,
    real_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    const double[::1] inv0,
    const double[::1] inv1,
    const double[::1] inv2,
    bint stream_taps,
    bint stream_rows,
    int num_threads,
):
    """out = sum over each window of x * inv0[i0] * inv1[i1] * inv2[i2], summed in float64.

    inv* are the inverse per-axis divisor factors. For float32 channels-last windows
    (contiguous inner lines), `stream_taps` writes the results of 2x2 taps with non-temporal
    stores, and `stream_rows` those of 3 taps at stride 1 along axis 2.
    """
    _sum_pool(x, out, taps0, taps1, taps2, windows, &inv0[0], &inv1[0], &inv2[0], POWER_NONE,
              1.0, stream_taps, stream_rows, num_threads)


def lp_pool(
    const real_t[:, :, :, :, :] x,
    real_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    double norm_type,
    int num_threads,
):
    """out = (sum over each window of |x| ** norm_type) ** (1 / norm_type), summed in float64."""
    cdef PowerKind kind = POWER_GENERAL
    cdef double unused_divisor = 1.0  # LP has no divisor; _finish reads none for LP kinds
    if norm_type == 1.0:
        kind = POWER_ONE
    elif norm_type == 2.0:
        kind = POWER_TWO
    _sum_pool(x, out, taps0, taps1, taps2, windows, &unused_divisor, &unused_divisor,
              &unused_divisor, kind, norm_type, False, False, num_threads)
