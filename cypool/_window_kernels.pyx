"""Window pooling forward kernels over the 5-d geometry ``(outer, n0, n1, n2, inner)``.

Shapes, padding and divisors are resolved in Python (``cypool._geometry``): the kernels receive,
per padded pooled axis, a table of (first in-bounds tap position, in-bounds tap count) for every
output position, so no loop here ever meets padding or ceil-mode overhang.

A work item is one output row ``(outer, i0, i1)``, one block of the inner axis and one chunk of
output positions along axis 2. Its row pass reduces the in-bounds input rows ``(p0, p1)``
elementwise into a thread-local buffer of shape ``(span, block)``: contiguous loops that gcc
vectorises, for channels-first (``block == 1``, along n2) and channels-last (along inner) alike.
Its column pass then reduces that buffer along axis 2 with the stride and dilation of axis 2.

Max kernels compare with a plain ``v > m``, which vectorises, and raise a per-item NaN flag
beside it; an item that read a NaN is redone by the exact scan that also serves
``return_indices`` (first maximum wins, a NaN wins and propagates).
"""

from cython.parallel cimport parallel, prange
from libc.math cimport pow, sqrt
from libc.stdint cimport (
    int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc

from cypool._openmp cimport omp_get_thread_num

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

cdef enum:
    # Thread-local buffers are kept near this many elements (L2-sized) by splitting the inner
    # axis into blocks and axis 2 into chunks.
    SCRATCH_ELEMENTS = 16384
    CACHE_LINE = 64

cdef enum PowerKind:
    POWER_NONE = 0      # avg: sum x
    POWER_ONE = 1       # lp, p == 1: sum |x|
    POWER_TWO = 2       # lp, p == 2: sum x*x
    POWER_GENERAL = 3   # lp: sum |x|**p


cdef struct Plan:
    Py_ssize_t o0, o1, o2
    Py_ssize_t n1, n2
    Py_ssize_t block, nblocks, inner
    Py_ssize_t ochunk, nchunks
    Py_ssize_t nitems
    Py_ssize_t span        # the largest chunk's input span along axis 2
    Py_ssize_t xs0, xs1, xs2, xs3, xs4
    Py_ssize_t os0, os1, os2, os3, os4
    Py_ssize_t is0, is1, is2, is3, is4
    Py_ssize_t d0, d1, d2
    const int64_t* taps0
    const int64_t* taps1
    const int64_t* taps2


cdef struct Item:
    Py_ssize_t b, i0, i1, c0, nc, i2a, i2b, lo, hi


cdef Plan _make_plan(
    Py_ssize_t* xshape, Py_ssize_t* xstrides, Py_ssize_t xitem,
    Py_ssize_t* oshape, Py_ssize_t* ostrides, Py_ssize_t oitem,
    const int64_t[:, ::1] taps0, const int64_t[:, ::1] taps1, const int64_t[:, ::1] taps2,
    const int64_t[::1] dilation, int num_threads,
):
    cdef Plan p
    cdef Py_ssize_t nrows, a, b, i, lo, hi, end
    p.o0, p.o1, p.o2 = oshape[1], oshape[2], oshape[3]
    p.n1, p.n2 = xshape[2], xshape[3]
    p.inner = xshape[4]
    p.xs0, p.xs1, p.xs2, p.xs3, p.xs4 = [xstrides[i] // xitem for i in range(5)]
    p.os0, p.os1, p.os2, p.os3, p.os4 = [ostrides[i] // oitem for i in range(5)]
    p.is0 = p.is1 = p.is2 = p.is3 = p.is4 = 0
    p.d0, p.d1, p.d2 = dilation[0], dilation[1], dilation[2]
    p.taps0, p.taps1, p.taps2 = &taps0[0, 0], &taps1[0, 0], &taps2[0, 0]

    # Inner blocks: cache-sized buffers, and enough items to keep every thread busy.
    nrows = oshape[0] * p.o0 * p.o1
    p.block = p.inner
    if p.block > 1 and p.block * p.n2 > SCRATCH_ELEMENTS:
        p.block = max(16, SCRATCH_ELEMENTS // max(p.n2, 1))
    while p.block > 16 and nrows * ((p.inner + p.block - 1) // p.block) < 4 * num_threads:
        p.block = (p.block + 1) // 2
    p.block = min(p.block, p.inner)
    p.nblocks = (p.inner + p.block - 1) // p.block

    # Chunks of axis 2: bound the span an item buffers (a long 1-d signal, say).
    p.ochunk = p.o2
    if p.n2 * p.block > SCRATCH_ELEMENTS:
        p.ochunk = max(1, (SCRATCH_ELEMENTS // p.block) * p.o2 // p.n2)
    p.nchunks = (p.o2 + p.ochunk - 1) // p.ochunk
    p.span = 1
    for a in range(0, p.o2, p.ochunk):
        b = min(a + p.ochunk, p.o2)
        lo, hi = taps2[a, 0], 0
        for i in range(a, b):
            end = taps2[i, 0] + (taps2[i, 1] - 1) * p.d2 + 1
            lo = min(lo, taps2[i, 0])
            hi = max(hi, end)
        p.span = max(p.span, hi - lo)
    p.nitems = nrows * p.nblocks * p.nchunks
    return p


cdef inline Item _item(const Plan* p, Py_ssize_t k) noexcept nogil:
    """Decode work item k; chunks vary fastest so neighbouring items touch neighbouring memory."""
    cdef Item it
    cdef Py_ssize_t ch, cb, i, end
    ch = k % p.nchunks
    k = k // p.nchunks
    cb = k % p.nblocks
    k = k // p.nblocks
    it.i1 = k % p.o1
    k = k // p.o1
    it.i0 = k % p.o0
    it.b = k // p.o0
    it.c0 = cb * p.block
    it.nc = min(p.block, p.inner - it.c0)
    it.i2a = ch * p.ochunk
    it.i2b = min(it.i2a + p.ochunk, p.o2)
    it.lo = p.taps2[2 * it.i2a]
    it.hi = 0
    for i in range(it.i2a, it.i2b):
        end = p.taps2[2 * i] + (p.taps2[2 * i + 1] - 1) * p.d2 + 1
        it.lo = min(it.lo, p.taps2[2 * i])
        it.hi = max(it.hi, end)
    return it


cdef inline Py_ssize_t _scratch_stride(Py_ssize_t nbytes) noexcept:
    """Per-thread scratch bytes rounded to whole cache lines (no false sharing)."""
    return (nbytes + CACHE_LINE - 1) // CACHE_LINE * CACHE_LINE


# ----------------------------------------------------------------------------------------------
# Elementwise line primitives: dst[i] (contiguous) op= src[i * s]. Each returns whether it read a
# NaN (always False for integers); the flag is a separate OR so the max itself stays vectorisable.

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
    else:
        for i in range(n):
            v = src[i * s]
            m = dst[i]
            dst[i] = v if v > m else m
            if order_t is float or order_t is double:
                nan = nan | (v != v)
    return nan


cdef inline void _line_store(order_t* dst, Py_ssize_t s, const order_t* src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if s == 1:
        for i in range(n):
            dst[i] = src[i]
    else:
        for i in range(n):
            dst[i * s] = src[i]


cdef inline void _line_add(double* dst, const real_t* src, Py_ssize_t n, Py_ssize_t s,
                           PowerKind kind, double power) noexcept nogil:
    cdef Py_ssize_t i
    cdef double v
    if kind == POWER_NONE:
        if s == 1:
            for i in range(n):
                dst[i] += <double>src[i]
        else:
            for i in range(n):
                dst[i] += <double>src[i * s]
    elif kind == POWER_ONE:
        for i in range(n):
            v = <double>src[i * s]
            dst[i] += v if v >= 0 else -v
    elif kind == POWER_TWO:
        if s == 1:
            for i in range(n):
                v = <double>src[i]
                dst[i] += v * v
        else:
            for i in range(n):
                v = <double>src[i * s]
                dst[i] += v * v
    else:
        for i in range(n):
            v = <double>src[i * s]
            dst[i] += pow(v if v >= 0 else -v, power)


# ----------------------------------------------------------------------------------------------
# Max

cdef inline bint _beats(order_t v, order_t m) noexcept nogil:
    """v replaces the running max m: strictly greater, or the first NaN."""
    if order_t is float or order_t is double:
        return v > m or (v != v and m == m)
    else:
        return v > m


cdef void _max_scan(const order_t* x, order_t* out, int64_t* idx, const Plan* p, const Item* it,
                    order_t* best, int64_t* best_at) noexcept nogil:
    """Exact max (and argmax) of every window of the item, in row-major tap order."""
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
        _line_store(out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2 + i2 * p.os3 + it.c0 * p.os4,
                    p.os4, best, it.nc)
        if idx != NULL:
            _line_store(idx + it.b * p.is0 + it.i0 * p.is1 + it.i1 * p.is2 + i2 * p.is3 + it.c0 * p.is4,
                        p.is4, best_at, it.nc)


cdef void _max_item(const order_t* x, order_t* out, const Plan* p, const Item* it,
                    order_t* buf, order_t* acc, int64_t* best_at) noexcept nogil:
    """Separable max of one item; redone exactly by _max_scan when it read a NaN."""
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const order_t* src
    cdef const order_t* row
    cdef order_t* o
    cdef order_t m, v
    cdef Py_ssize_t a, e, q, i2, j, nc = it.nc, span = it.hi - it.lo
    cdef bint first = True
    cdef int nan = 0
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = (x + it.b * p.xs0 + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                   + it.lo * p.xs3 + it.c0 * p.xs4)
            if nc == 1:
                if first:
                    nan |= _line_copy(buf, src, span, p.xs3)
                else:
                    nan |= _line_max(buf, src, span, p.xs3)
            else:
                for q in range(span):
                    if first:
                        nan |= _line_copy(buf + q * nc, src + q * p.xs3, nc, p.xs4)
                    else:
                        nan |= _line_max(buf + q * nc, src + q * p.xs3, nc, p.xs4)
            first = False
    if nan:
        _max_scan(x, out, NULL, p, it, acc, best_at)
        return
    o = out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2
    for i2 in range(it.i2a, it.i2b):
        t2 = p.taps2 + 2 * i2
        row = buf + (t2[0] - it.lo) * nc
        if nc == 1:
            m = row[0]
            for j in range(1, t2[1]):
                v = row[j * p.d2]
                m = v if v > m else m
            o[i2 * p.os3] = m
        else:
            _line_copy(acc, row, nc, 1)
            for j in range(1, t2[1]):
                _line_max(acc, row + j * p.d2 * nc, nc, 1)
            _line_store(o + i2 * p.os3 + it.c0 * p.os4, p.os4, acc, nc)


def max_pool(
    const order_t[:, :, :, :, :] x,
    order_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[::1] dilation,
    int num_threads,
):
    """out = max over each window of x (NaN propagates)."""
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(order_t), out.shape, out.strides,
                             sizeof(order_t), taps0, taps1, taps2, dilation, num_threads)
    cdef Py_ssize_t k, buf_bytes = _scratch_stride(p.span * p.block * sizeof(order_t))
    cdef Py_ssize_t acc_bytes = _scratch_stride(p.block * sizeof(order_t))
    cdef Py_ssize_t stride = buf_bytes + acc_bytes + _scratch_stride(p.block * sizeof(int64_t))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine
    cdef Item it
    cdef const order_t* xp = &x[0, 0, 0, 0, 0]
    cdef order_t* op = &out[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                it = _item(&p, k)
                _max_item(xp, op, &p, &it, <order_t*>mine, <order_t*>(mine + buf_bytes),
                          <int64_t*>(mine + buf_bytes + acc_bytes))
    finally:
        free(scratch)


def max_pool_with_indices(
    const order_t[:, :, :, :, :] x,
    order_t[:, :, :, :, :] out,
    int64_t[:, :, :, :, :] indices,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[::1] dilation,
    int num_threads,
):
    """out, indices = max and flat argmax (over the pooled axes) of each window of x."""
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(order_t), out.shape, out.strides,
                             sizeof(order_t), taps0, taps1, taps2, dilation, num_threads)
    p.is0, p.is1, p.is2, p.is3, p.is4 = [indices.strides[i] // sizeof(int64_t) for i in range(5)]
    cdef Py_ssize_t k, best_bytes = _scratch_stride(p.block * sizeof(order_t))
    cdef Py_ssize_t stride = best_bytes + _scratch_stride(p.block * sizeof(int64_t))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine
    cdef Item it
    cdef const order_t* xp = &x[0, 0, 0, 0, 0]
    cdef order_t* op = &out[0, 0, 0, 0, 0]
    cdef int64_t* ip = &indices[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                it = _item(&p, k)
                _max_scan(xp, op, ip, &p, &it, <order_t*>mine, <int64_t*>(mine + best_bytes))
    finally:
        free(scratch)


# ----------------------------------------------------------------------------------------------
# Sums: avg and LP

cdef inline double _finish(double total, double divisor, PowerKind kind, double power) noexcept nogil:
    if kind == POWER_NONE:
        return total / divisor
    if kind == POWER_ONE:
        return total
    if kind == POWER_TWO:
        return sqrt(total)
    return pow(total, 1.0 / power)


cdef void _sum_item(const real_t* x, real_t* out, const Plan* p, const Item* it,
                    const double* div0, const double* div1, const double* div2,
                    PowerKind kind, double power, double* buf, double* acc) noexcept nogil:
    cdef const int64_t* t0 = p.taps0 + 2 * it.i0
    cdef const int64_t* t1 = p.taps1 + 2 * it.i1
    cdef const int64_t* t2
    cdef const real_t* src
    cdef const double* row
    cdef real_t* o
    cdef double total, divisor = 1.0
    cdef Py_ssize_t a, e, q, c, i2, j, nc = it.nc, span = it.hi - it.lo
    for q in range(span * nc):
        buf[q] = 0.0
    for a in range(t0[1]):
        for e in range(t1[1]):
            src = (x + it.b * p.xs0 + (t0[0] + a * p.d0) * p.xs1 + (t1[0] + e * p.d1) * p.xs2
                   + it.lo * p.xs3 + it.c0 * p.xs4)
            if nc == 1:
                _line_add(buf, src, span, p.xs3, kind, power)
            else:
                for q in range(span):
                    _line_add(buf + q * nc, src + q * p.xs3, nc, p.xs4, kind, power)
    o = out + it.b * p.os0 + it.i0 * p.os1 + it.i1 * p.os2
    for i2 in range(it.i2a, it.i2b):
        t2 = p.taps2 + 2 * i2
        row = buf + (t2[0] - it.lo) * nc
        if kind == POWER_NONE:
            divisor = div0[it.i0] * div1[it.i1] * div2[i2]
        if nc == 1:
            total = row[0]
            for j in range(1, t2[1]):
                total = total + row[j * p.d2]
            o[i2 * p.os3] = <real_t>_finish(total, divisor, kind, power)
        else:
            for c in range(nc):
                acc[c] = row[c]
            for j in range(1, t2[1]):
                for c in range(nc):
                    acc[c] += row[j * p.d2 * nc + c]
            for c in range(nc):
                o[i2 * p.os3 + (it.c0 + c) * p.os4] = <real_t>_finish(acc[c], divisor, kind, power)


cdef _sum_pool(
    const real_t[:, :, :, :, :] x,
    real_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[::1] dilation,
    const double* div0,
    const double* div1,
    const double* div2,
    PowerKind kind,
    double power,
    int num_threads,
):
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(real_t), out.shape, out.strides,
                             sizeof(real_t), taps0, taps1, taps2, dilation, num_threads)
    cdef Py_ssize_t k, buf_bytes = _scratch_stride(p.span * p.block * sizeof(double))
    cdef Py_ssize_t stride = buf_bytes + _scratch_stride(p.block * sizeof(double))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine
    cdef Item it
    cdef const real_t* xp = &x[0, 0, 0, 0, 0]
    cdef real_t* op = &out[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                it = _item(&p, k)
                _sum_item(xp, op, &p, &it, div0, div1, div2, kind, power,
                          <double*>mine, <double*>(mine + buf_bytes))
    finally:
        free(scratch)


def avg_pool(
    const real_t[:, :, :, :, :] x,
    real_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[::1] dilation,
    const double[::1] div0,
    const double[::1] div1,
    const double[::1] div2,
    int num_threads,
):
    """out = sum over each window of x / (div0[i0] * div1[i1] * div2[i2]), summed in float64."""
    _sum_pool(x, out, taps0, taps1, taps2, dilation, &div0[0], &div1[0], &div2[0], POWER_NONE,
              1.0, num_threads)


def lp_pool(
    const real_t[:, :, :, :, :] x,
    real_t[:, :, :, :, :] out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[::1] dilation,
    double norm_type,
    int num_threads,
):
    """out = (sum over each window of |x| ** norm_type) ** (1 / norm_type), summed in float64."""
    cdef PowerKind kind = POWER_GENERAL
    cdef double unused_divisor = 1.0  # LP has no divisor; _sum_item reads none for LP kinds
    if norm_type == 1.0:
        kind = POWER_ONE
    elif norm_type == 2.0:
        kind = POWER_TWO
    _sum_pool(x, out, taps0, taps1, taps2, dilation, &unused_divisor, &unused_divisor,
              &unused_divisor, kind, norm_type, num_threads)
