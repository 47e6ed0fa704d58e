# Global pooling kernels over the 5-d geometry (outer, r0, r1, r2, inner) -> (outer, 1, 1, 1,
# inner), included after _window_impl.pxi. A work item is one outer index and one block of the
# inner axis; it reduces the whole pooled region. Channels-first (nc == 1) reduces contiguous
# lines with four independent accumulators (a fixed order, so results do not depend on threads);
# channels-last accumulates whole inner blocks, vectorised.


cdef enum:
    # Channels-last float32 sums add this many positions in registers per pass over the
    # accumulators: (64, 7, 7, 2048) took 0.48 ms instead of 0.58 with three (2 threads);
    # 49 at once (no pass over the accumulators) took 0.88, too many streams for the prefetcher.
    GLOBAL_ROWS = 8


cdef struct GlobalPlan:
    Py_ssize_t r0, r1, r2, inner, block, nblocks, nitems
    Py_ssize_t outer, rows  # channels-first: each item reduces `rows` consecutive outer indices
    Py_ssize_t xs0, xs1, xs2, xs3, xs4
    Py_ssize_t os0, os4, is0, is4


cdef GlobalPlan _global_plan(Py_ssize_t* xshape, Py_ssize_t* xstrides, Py_ssize_t xitem,
                             Py_ssize_t* ostrides, Py_ssize_t oitem, int num_threads):
    cdef GlobalPlan p
    cdef Py_ssize_t i
    p.r0, p.r1, p.r2, p.inner = xshape[1], xshape[2], xshape[3], xshape[4]
    p.xs0, p.xs1, p.xs2, p.xs3, p.xs4 = [xstrides[i] // xitem for i in range(5)]
    p.os0, p.os4 = ostrides[0] // oitem, ostrides[4] // oitem
    p.is0 = p.is4 = 0
    p.block = min(p.inner, 1024)
    while p.block > 16 and xshape[0] * ((p.inner + p.block - 1) // p.block) < 4 * num_threads:
        p.block = (p.block + 1) // 2
    p.nblocks = (p.inner + p.block - 1) // p.block
    p.outer = xshape[0]
    p.rows = 1
    if p.inner == 1:
        # Small regions (a 7x7 ResNet head): batch outer indices so items are not all overhead.
        p.rows = max(1, min(64, p.outer // (8 * num_threads)))
    p.nitems = (p.outer + p.rows - 1) // p.rows * p.nblocks
    return p


cdef inline double _line_total(const real_t* src, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    """Sum of src[i * s] in float64, in a fixed order: the shim's sixteen lanes for contiguous
    float32 lines (whose conversions gcc's vectorisation of the loop below handled poorly), else
    eight interleaved accumulators."""
    cdef double acc[8]
    cdef Py_ssize_t i = 0, j
    if s == 1 and real_t is float:
        return cypool_sum_f32(<const float*>src, n)
    for j in range(8):
        acc[j] = 0.0
    if s == 1:
        while i + 8 <= n:
            for j in range(8):
                acc[j] += <double>src[i + j]
            i += 8
    else:
        while i + 8 <= n:
            for j in range(8):
                acc[j] += <double>src[(i + j) * s]
            i += 8
    while i < n:
        acc[0] += <double>src[i * s]
        i += 1
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline int32_t _float_key(int32_t bits) noexcept nogil:
    """A float's bits as an int32 ordered like the floats: negative floats' magnitude bits
    flipped. Its own inverse."""
    return bits ^ ((bits >> 31) & 0x7fffffff)


cdef inline int64_t _double_key(int64_t bits) noexcept nogil:
    """_float_key for doubles."""
    return bits ^ ((bits >> 63) & 0x7fffffffffffffffLL)


cdef inline order_t _line_top(const order_t* src, Py_ssize_t n, Py_ssize_t s, int* nan) noexcept nogil:
    """Max of src[i * s] (n >= 1); sets *nan when a NaN was read (the caller then redoes the
    line exactly). Floats are reduced as ordered integer keys: gcc vectorises an integer max
    reduction, not a float one (reordering float maxima is not exact for NaN and signed
    zeros), and the two differ only there: NaN raises the flag, and a max of +-0 may come back
    with the other sign, so callers redo a zero max too."""
    cdef Py_ssize_t i
    cdef const int32_t* b32
    cdef const int64_t* b64
    cdef int32_t k32, m32 = -2147483647 - 1
    cdef int64_t k64, m64 = -9223372036854775807 - 1
    cdef order_t v, m
    cdef int seen = 0
    if order_t is float:
        b32 = <const int32_t*>src
        if s == 1:
            for i in range(n):
                k32 = b32[i]
                seen = seen | ((k32 & 0x7fffffff) > 0x7f800000)
                k32 = _float_key(k32)
                m32 = k32 if k32 > m32 else m32
        else:
            for i in range(n):
                k32 = b32[i * s]
                seen = seen | ((k32 & 0x7fffffff) > 0x7f800000)
                k32 = _float_key(k32)
                m32 = k32 if k32 > m32 else m32
        m32 = _float_key(m32)
        memcpy(&m, &m32, sizeof(float))
    elif order_t is double:
        b64 = <const int64_t*>src
        if s == 1:
            for i in range(n):
                k64 = b64[i]
                seen = seen | ((k64 & 0x7fffffffffffffffLL) > 0x7ff0000000000000LL)
                k64 = _double_key(k64)
                m64 = k64 if k64 > m64 else m64
        else:
            for i in range(n):
                k64 = b64[i * s]
                seen = seen | ((k64 & 0x7fffffffffffffffLL) > 0x7ff0000000000000LL)
                k64 = _double_key(k64)
                m64 = k64 if k64 > m64 else m64
        m64 = _double_key(m64)
        memcpy(&m, &m64, sizeof(double))
    else:
        m = src[0]
        if s == 1:
            for i in range(n):
                v = src[i]
                m = v if v > m else m
        else:
            for i in range(n):
                v = src[i * s]
                m = v if v > m else m
    nan[0] = nan[0] | seen
    return m


cdef inline bint _line_max_triple(order_t* dst, const order_t* a, const order_t* b,
                                  const order_t* c, Py_ssize_t n) noexcept nogil:
    """dst[i] = max(dst[i], a[i], b[i], c[i]) for contiguous lines, one pass over dst; returns
    whether a NaN was read (plain compares lose NaN, so the caller then redoes exactly)."""
    cdef Py_ssize_t i
    cdef order_t u, v, w, m
    cdef int nan = 0
    for i in range(n):
        u = a[i]
        v = b[i]
        w = c[i]
        m = dst[i]
        m = u if u > m else m
        m = v if v > m else m
        dst[i] = w if w > m else m
        if order_t is float or order_t is double:
            nan = nan | (u != u) | (v != v) | (w != w)
    return nan


cdef void _global_sum_item(const real_t* x, total_t* out, const GlobalPlan* p, Py_ssize_t k,
                           double scale, double* acc) noexcept nogil:
    cdef Py_ssize_t cb = k % p.nblocks, b = k // p.nblocks
    cdef Py_ssize_t c0 = cb * p.block, nc = min(p.block, p.inner - c0)
    cdef Py_ssize_t a, e, q, c, count
    cdef const real_t* base = x + b * p.xs0 + c0 * p.xs4
    cdef const real_t* row
    cdef double total = 0.0
    cdef bint first = True
    for a in range(p.r0):
        for e in range(p.r1):
            row = base + a * p.xs1 + e * p.xs2
            if nc == 1:
                total += _line_total(row, p.r2, p.xs3)
                continue
            q = 0
            if p.xs4 == 1 and real_t is float:
                # Contiguous float32 channels: GLOBAL_ROWS positions per pass over the
                # accumulators, in an order that does not depend on the inner block (threads).
                while q < p.r2:
                    count = min(GLOBAL_ROWS, p.r2 - q)
                    cypool_add_rows_f32(acc, <const float*>(row + q * p.xs3), p.xs3, count, nc,
                                        not first)
                    first = False
                    q += count
            elif p.xs4 == 1:
                # Other contiguous channels: three positions per pass over the accumulators,
                # which otherwise cost a load and a store for every value added.
                while q + 3 <= p.r2:
                    _line_add_triple(acc, row + q * p.xs3, row + (q + 1) * p.xs3,
                                     row + (q + 2) * p.xs3, nc, first)
                    first = False
                    q += 3
            while q < p.r2:
                _line_add(acc, row + q * p.xs3, nc, p.xs4, POWER_NONE, 1.0, first)
                first = False
                q += 1
    if nc == 1:
        out[b * p.os0 + c0 * p.os4] = <total_t>(total * scale)
    else:
        for c in range(nc):
            out[b * p.os0 + (c0 + c) * p.os4] = <total_t>(acc[c] * scale)


cdef void _global_sum_rows(const real_t* x, total_t* out, const GlobalPlan* p, Py_ssize_t b0,
                           Py_ssize_t b1, double scale) noexcept nogil:
    """Channels-first items (inner == 1): the totals of outer indices [b0, b1) in one loop, the
    same sums as _global_sum_item's, without decoding an item per small region."""
    cdef Py_ssize_t b, a, e
    # Locals, not p's fields: the stores to out may alias p (Python builds with
    # -fno-strict-aliasing), which made every line reload them.
    cdef Py_ssize_t n = p.r2, xs0 = p.xs0, xs3 = p.xs3, os0 = p.os0
    cdef const real_t* base
    cdef double total
    if p.r0 == 1 and p.r1 == 1:
        # One line per region (the pooled axes merged): no loops over the outer pooled axes.
        for b in range(b0, b1):
            out[b * os0] = <total_t>(_line_total(x + b * xs0, n, xs3) * scale)
        return
    for b in range(b0, b1):
        base = x + b * xs0
        total = 0.0
        for a in range(p.r0):
            for e in range(p.r1):
                total += _line_total(base + a * p.xs1 + e * p.xs2, n, xs3)
        out[b * os0] = <total_t>(total * scale)


def global_sum(
    const real_t[:, :, :, :, :] x,
    total_t[:, :, :, :, :] out,
    double scale,
    int num_threads,
):
    """out[b, 0, 0, 0, c] = scale * sum of x[b, :, :, :, c], summed in float64 (out is x's
    dtype, or float64 for partial sums)."""
    cdef GlobalPlan p = _global_plan(x.shape, x.strides, sizeof(real_t), out.strides,
                                     sizeof(total_t), num_threads)
    cdef Py_ssize_t k, stride = _scratch_stride(p.block * sizeof(double))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef const real_t* xp = &x[0, 0, 0, 0, 0]
    cdef total_t* op = &out[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                if p.rows > 1:
                    _global_sum_rows(xp, op, &p, k * p.rows, min(p.outer, (k + 1) * p.rows),
                                     scale)
                else:
                    _global_sum_item(xp, op, &p, k, scale, <double*>mine)
    finally:
        free(scratch)


cdef void _global_max_item(const order_t* x, order_t* out, int64_t* idx, const GlobalPlan* p,
                           Py_ssize_t k, order_t* best, int64_t* best_at) noexcept nogil:
    """Max (and flat argmax, when idx is not NULL) of one item's region, in row-major order:
    the first maximum wins, and the first NaN wins and propagates."""
    cdef Py_ssize_t cb = k % p.nblocks, b = k // p.nblocks
    cdef Py_ssize_t c0 = cb * p.block, nc = min(p.block, p.inner - c0)
    cdef Py_ssize_t a, e, q, c, flat = 0
    cdef const order_t* base = x + b * p.xs0 + c0 * p.xs4
    cdef const order_t* src
    cdef order_t v
    cdef bint first = True
    cdef int nan = 0
    if idx == NULL and nc == 1:
        # Values only, channels-first: interleaved maxima per line, exact redo on a NaN.
        for a in range(p.r0):
            for e in range(p.r1):
                v = _line_top(base + a * p.xs1 + e * p.xs2, p.r2, p.xs3, &nan)
                if first or v > best[0]:
                    best[0] = v
                first = False
        if not nan and best[0] != 0:
            out[b * p.os0 + c0 * p.os4] = best[0]
            return
    elif idx == NULL:
        # Values only: the vectorised plain max with a NaN flag, exact redo when it is raised;
        # three contiguous lines per pass over `best` where the channels are contiguous.
        for a in range(p.r0):
            for e in range(p.r1):
                src = base + a * p.xs1 + e * p.xs2
                q = 0
                if first:
                    nan |= _line_copy(best, src, nc, p.xs4)
                    first = False
                    q = 1
                if p.xs4 == 1:
                    while q + 3 <= p.r2:
                        nan |= _line_max_triple(best, src + q * p.xs3, src + (q + 1) * p.xs3,
                                                src + (q + 2) * p.xs3, nc)
                        q += 3
                while q < p.r2:
                    nan |= _line_max(best, src + q * p.xs3, nc, p.xs4)
                    q += 1
        if not nan:
            _line_store(out + b * p.os0 + c0 * p.os4, p.os4, best, nc)
            return
    first = True
    for a in range(p.r0):
        for e in range(p.r1):
            for q in range(p.r2):
                src = base + a * p.xs1 + e * p.xs2 + q * p.xs3
                if first:
                    for c in range(nc):
                        best[c] = src[c * p.xs4]
                        best_at[c] = 0
                    first = False
                else:
                    for c in range(nc):
                        v = src[c * p.xs4]
                        if _beats(v, best[c]):
                            best[c] = v
                            best_at[c] = flat
                flat += 1
    _line_store(out + b * p.os0 + c0 * p.os4, p.os4, best, nc)
    if idx != NULL:
        _line_store(idx + b * p.is0 + c0 * p.is4, p.is4, best_at, nc)


cdef void _global_max_rows(const order_t* x, order_t* out, int64_t* idx, const GlobalPlan* p,
                           Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    """Channels-first items (inner == 1): max (and flat argmax, when idx is not NULL) of the
    regions of outer indices [b0, b1). Interleaved maxima per line find the max; a second scan
    of the (cached) region finds its first position, or the first NaN when one was read: the
    element _global_max_item's exact row-major scan would pick."""
    cdef Py_ssize_t b, a, e, q, flat
    # Locals, not p's fields: the stores to out may alias p (see _global_sum_rows).
    cdef Py_ssize_t n = p.r2, xs0 = p.xs0, xs3 = p.xs3, os0 = p.os0
    cdef bint one_line = p.r0 == 1 and p.r1 == 1
    cdef const order_t* base
    cdef const order_t* src
    cdef order_t v, best
    cdef int nan
    cdef bint first, found
    for b in range(b0, b1):
        base = x + b * xs0
        nan = 0
        if one_line:
            best = _line_top(base, n, xs3, &nan)
            if idx == NULL and not nan and best != 0:
                out[b * os0] = best
                continue
        else:
            first = True
            for a in range(p.r0):
                for e in range(p.r1):
                    v = _line_top(base + a * p.xs1 + e * p.xs2, n, xs3, &nan)
                    if first or v > best:
                        best = v
                    first = False
        if idx != NULL or nan or best == 0:
            # The position of the max (or of the first NaN, or of the first zero: a max of
            # +-0 takes the sign of the first one), which _line_top does not give.
            flat = 0
            found = False
            for a in range(p.r0):
                for e in range(p.r1):
                    src = base + a * p.xs1 + e * p.xs2
                    for q in range(p.r2):
                        v = src[q * p.xs3]
                        if (v != v) if nan else (v == best):
                            found = True
                            break
                    if found:
                        break
                    flat += p.r2
                if found:
                    break
            best = v
            if idx != NULL:
                idx[b * p.is0] = flat + q
        out[b * os0] = best


def global_max(
    const order_t[:, :, :, :, :] x,
    order_t[:, :, :, :, :] out,
    int64_t[:, :, :, :, :] indices,
    int num_threads,
):
    """out[b, 0, 0, 0, c] = max of x[b, :, :, :, c]; with indices (else None), also its flat
    position over (r0, r1, r2)."""
    cdef GlobalPlan p = _global_plan(x.shape, x.strides, sizeof(order_t), out.strides,
                                     sizeof(order_t), num_threads)
    cdef Py_ssize_t k, best_bytes = _scratch_stride(p.block * sizeof(order_t))
    cdef Py_ssize_t stride = best_bytes + _scratch_stride(p.block * sizeof(int64_t))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef const order_t* xp = &x[0, 0, 0, 0, 0]
    cdef order_t* op = &out[0, 0, 0, 0, 0]
    cdef int64_t* ip = NULL
    if indices is not None:
        ip = &indices[0, 0, 0, 0, 0]
        p.is0, p.is4 = indices.strides[0] // sizeof(int64_t), indices.strides[4] // sizeof(int64_t)
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                if p.rows > 1:
                    _global_max_rows(xp, op, ip, &p, k * p.rows, min(p.outer, (k + 1) * p.rows))
                else:
                    _global_max_item(xp, op, ip, &p, k, <order_t*>mine,
                                     <int64_t*>(mine + best_bytes))
    finally:
        free(scratch)
