# Sequence and segment pooling kernels, included after _window_impl.pxi and _backward_impl.pxi
# (whose line primitives they reuse).
#
# One geometry serves padded batches and packed ragged segments alike (cypool._sequence_rows):
# output row r reduces the tokens t in [start[r], stop[r]) of a token table, each weighted by
# coef[coef_at[r] + t] (a float64 table made in Python: mask weights, softmax weights, one-hot
# picks). A token whose coefficient is 0 is not valid: it is never read, and gets a zero
# gradient. Row r's sum is scaled by scale[r]. A padded batch (..., T, D) has one token plane
# per row; packed segments (N, D) share one plane, with [offsets[r], offsets[r + 1]).
#
# Arrays with batch axes are passed as their first plane (or row) plus, per row, the element
# offset of that row's plane (`*_at`), computed in Python from the strides: any batch strides,
# negative or zero included, are read in place in one call.
#
# A work item is one row and one block of features, so each thread streams whole contiguous
# token rows and writes disjoint outputs (and, backward, disjoint gradient elements: rows never
# share tokens). Sums accumulate in float64 in thread-local scratch, token by token in order, so
# results do not depend on the number of threads.


cdef enum:
    # Features per work item at most: the float64 accumulator stays L1-sized.
    SEQ_MAX_BLOCK = 1024


cdef struct RowPlan:
    Py_ssize_t nrows, nfeat, block, nblocks, nitems
    const int64_t* start
    const int64_t* stop
    const double* coef            # NULL when the kernel does not weigh tokens
    const int64_t* coef_at
    const int64_t* tok_at         # token table (h, or grad_h backward): plane offsets ...
    Py_ssize_t ts, fs             # ... and token / feature strides, in elements
    const int64_t* row_at         # per-row table (out, or grad_output backward): row offsets ...
    Py_ssize_t rs                 # ... and feature stride, in elements


cdef RowPlan _row_plan(const int64_t[::1] start, const int64_t[::1] stop, Py_ssize_t nfeat,
                       int num_threads):
    cdef RowPlan p
    p.nrows, p.nfeat = start.shape[0], nfeat
    p.start, p.stop = &start[0], &stop[0]
    p.coef = p.coef_at = p.tok_at = p.row_at = NULL
    # Whole rows when there are enough of them; else feature blocks (multiples of 16, so
    # vectorised loops keep full lanes) until every thread has a few items.
    p.block = max(1, min(nfeat, <Py_ssize_t>SEQ_MAX_BLOCK))
    while p.block > 64 and p.nrows * ((nfeat + p.block - 1) // p.block) < 4 * num_threads:
        p.block = ((p.block + 1) // 2 + 15) // 16 * 16
    p.nblocks = (nfeat + p.block - 1) // p.block
    p.nitems = p.nrows * p.nblocks
    return p


cdef inline void _zero_line(real_t* dst, Py_ssize_t s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if s == 1:
        for i in range(n):
            dst[i] = 0
    else:
        for i in range(n):
            dst[i * s] = 0


# ------------------------------------------------------------------------------- forward: sums

cdef void _weighted_sum_item(const real_t* h, real_t* out, const RowPlan* p, const double* scale,
                             Py_ssize_t k, double* acc) noexcept nogil:
    cdef Py_ssize_t r = k // p.nblocks, d0 = (k % p.nblocks) * p.block
    cdef Py_ssize_t nd = min(p.block, p.nfeat - d0), t, i
    cdef const real_t* base = h + p.tok_at[r] + d0 * p.fs
    cdef const double* c = p.coef + p.coef_at[r]
    cdef real_t* dst = out + p.row_at[r] + d0 * p.rs
    cdef bint first = True
    cdef double f
    for t in range(p.start[r], p.stop[r]):
        f = c[t]
        if f != 0:
            # The first valid token is assigned, not added to 0: a lone token (cls, last)
            # comes back bit-exact, -0.0 included.
            _line_axpy(acc, base + t * p.ts, nd, p.fs, f, first)
            first = False
    if first:
        _zero_line(dst, p.rs, nd)
        return
    f = scale[r]
    for i in range(nd):
        acc[i] = acc[i] * f
    _line_cast_store(dst, p.rs, acc, nd)


def weighted_sum(
    const real_t[:, :] h,
    const int64_t[::1] h_at,
    const double[::1] coef,
    const int64_t[::1] coef_at,
    const int64_t[::1] start,
    const int64_t[::1] stop,
    const double[::1] scale,
    real_t[:] out,
    const int64_t[::1] out_at,
    int num_threads,
):
    """Row r of out = scale[r] * sum over t in [start[r], stop[r]) of coef[coef_at[r] + t] times
    token t of row r's plane, summed in float64; zeros for a row without a non-zero coefficient.

    h is the first token plane (tokens, features), h_at[r] the element offset of row r's plane;
    out is the first result row and out_at[r] the element offset of row r."""
    cdef RowPlan p = _row_plan(start, stop, h.shape[1], num_threads)
    cdef Py_ssize_t k, stride = _scratch_stride(p.block * sizeof(double))
    cdef char* scratch
    cdef char* mine = NULL
    if p.nitems == 0:
        return
    p.coef, p.coef_at, p.tok_at, p.row_at = &coef[0], &coef_at[0], &h_at[0], &out_at[0]
    p.ts, p.fs = h.strides[0] // sizeof(real_t), h.strides[1] // sizeof(real_t)
    p.rs = out.strides[0] // sizeof(real_t)
    scratch = <char*>malloc(stride * num_threads)
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                _weighted_sum_item(&h[0, 0], &out[0], &p, &scale[0], k, <double*>mine)
    finally:
        free(scratch)


# ---------------------------------------------------------------------------- forward: max/min

cdef inline void _line_extreme(real_t* best, const real_t* src, Py_ssize_t n, Py_ssize_t s,
                               bint is_min) noexcept nogil:
    """best[i] = the max (min) of best[i] and src[i * s], NaN propagating: branch-free, so
    gcc vectorises it."""
    cdef Py_ssize_t i
    cdef real_t v, m
    if is_min:
        for i in range(n):
            v = src[i * s]
            m = best[i]
            best[i] = v if (v < m or v != v) else m
    else:
        for i in range(n):
            v = src[i * s]
            m = best[i]
            best[i] = v if (v > m or v != v) else m


cdef inline void _line_extreme_at(real_t* best, int64_t* at, const real_t* src, Py_ssize_t n,
                                  Py_ssize_t s, int64_t t, bint is_min) noexcept nogil:
    """As _line_extreme, recording the token: the first extreme wins ties, the first NaN wins."""
    cdef Py_ssize_t i
    cdef real_t v, m
    cdef bint take
    for i in range(n):
        v = src[i * s]
        m = best[i]
        if is_min:
            take = (v < m or v != v) and m == m
        else:
            take = (v > m or v != v) and m == m
        best[i] = v if take else m
        at[i] = t if take else at[i]


cdef void _extreme_item(const real_t* h, real_t* out, int64_t* idx, const int64_t* idx_at,
                        Py_ssize_t idx_s, const RowPlan* p, Py_ssize_t k, bint is_min,
                        real_t* best, int64_t* at) noexcept nogil:
    cdef Py_ssize_t r = k // p.nblocks, d0 = (k % p.nblocks) * p.block
    cdef Py_ssize_t nd = min(p.block, p.nfeat - d0), t, i
    cdef const real_t* base = h + p.tok_at[r] + d0 * p.fs
    cdef const real_t* row
    cdef const double* c = p.coef + p.coef_at[r]
    cdef bint first = True
    for t in range(p.start[r], p.stop[r]):
        if c[t] == 0:
            continue
        row = base + t * p.ts
        if first:
            for i in range(nd):
                best[i] = row[i * p.fs]
                at[i] = t
            first = False
        elif idx == NULL:
            if p.fs == 1:
                _line_extreme(best, row, nd, 1, is_min)
            else:
                _line_extreme(best, row, nd, p.fs, is_min)
        elif p.fs == 1:
            _line_extreme_at(best, at, row, nd, 1, t, is_min)
        else:
            _line_extreme_at(best, at, row, nd, p.fs, t, is_min)
    if first:
        # No valid token: zeros and index -1.
        for i in range(nd):
            best[i] = 0
            at[i] = -1
    _line_store(out + p.row_at[r] + d0 * p.rs, p.rs, best, nd)
    if idx != NULL:
        _line_store(idx + idx_at[r] + d0 * idx_s, idx_s, at, nd)


def extreme(
    const real_t[:, :] h,
    const int64_t[::1] h_at,
    const double[::1] coef,
    const int64_t[::1] coef_at,
    const int64_t[::1] start,
    const int64_t[::1] stop,
    real_t[:] out,
    const int64_t[::1] out_at,
    int64_t[:] indices,
    const int64_t[::1] indices_at,
    bint is_min,
    int num_threads,
):
    """Row r of out = max (min when is_min) over the valid tokens of row r (as weighted_sum),
    NaN propagating; with indices (else None, and indices_at unused) also the token of the first
    extreme, the first NaN winning; 0 and index -1 for a row without a valid token."""
    cdef RowPlan p = _row_plan(start, stop, h.shape[1], num_threads)
    cdef Py_ssize_t k, best_bytes = _scratch_stride(p.block * sizeof(real_t))
    cdef Py_ssize_t stride = best_bytes + _scratch_stride(p.block * sizeof(int64_t))
    cdef Py_ssize_t idx_s = 0
    cdef int64_t* ip = NULL
    cdef char* scratch
    cdef char* mine = NULL
    if p.nitems == 0:
        return
    p.coef, p.coef_at, p.tok_at, p.row_at = &coef[0], &coef_at[0], &h_at[0], &out_at[0]
    p.ts, p.fs = h.strides[0] // sizeof(real_t), h.strides[1] // sizeof(real_t)
    p.rs = out.strides[0] // sizeof(real_t)
    if indices is not None:
        ip = &indices[0]
        idx_s = indices.strides[0] // sizeof(int64_t)
    scratch = <char*>malloc(stride * num_threads)
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                _extreme_item(&h[0, 0], &out[0], ip, &indices_at[0], idx_s, &p, k, is_min,
                              <real_t*>mine, <int64_t*>(mine + best_bytes))
    finally:
        free(scratch)


# ----------------------------------------------------------------------------------- backward

cdef void _spread_weighted_item(const real_t* g, real_t* gh, const RowPlan* p, const double* scale,
                                Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t r = k // p.nblocks, d0 = (k % p.nblocks) * p.block
    cdef Py_ssize_t nd = min(p.block, p.nfeat - d0), t, i
    cdef const real_t* src = g + p.row_at[r] + d0 * p.rs
    cdef real_t* base = gh + p.tok_at[r] + d0 * p.fs
    cdef real_t* dst
    cdef const double* c = p.coef + p.coef_at[r]
    cdef double f
    for t in range(p.start[r], p.stop[r]):
        f = c[t] * scale[r]
        dst = base + t * p.ts
        if f == 0:
            # Not f * g: an invalid token's gradient is 0 even where g is inf or NaN.
            _zero_line(dst, p.fs, nd)
        elif p.fs == 1 and p.rs == 1:
            for i in range(nd):
                dst[i] = <real_t>(f * <double>src[i])
        else:
            for i in range(nd):
                dst[i * p.fs] = <real_t>(f * <double>src[i * p.rs])


def spread_weighted(
    const real_t[:] grad,
    const int64_t[::1] grad_at,
    const double[::1] coef,
    const int64_t[::1] coef_at,
    const int64_t[::1] start,
    const int64_t[::1] stop,
    const double[::1] scale,
    real_t[:, :] grad_h,
    const int64_t[::1] grad_h_at,
    int num_threads,
):
    """Token t of row r's gradient plane = coef[coef_at[r] + t] * scale[r] * row r of grad, for
    every t in [start[r], stop[r]); exactly 0 where that factor is 0. Layout as weighted_sum."""
    cdef RowPlan p = _row_plan(start, stop, grad_h.shape[1], num_threads)
    cdef Py_ssize_t k
    if p.nitems == 0:
        return
    p.coef, p.coef_at, p.tok_at, p.row_at = &coef[0], &coef_at[0], &grad_h_at[0], &grad_at[0]
    p.ts, p.fs = grad_h.strides[0] // sizeof(real_t), grad_h.strides[1] // sizeof(real_t)
    p.rs = grad.strides[0] // sizeof(real_t)
    with nogil:
        for k in prange(p.nitems, schedule="static", num_threads=num_threads):
            _spread_weighted_item(&grad[0], &grad_h[0, 0], &p, &scale[0], k)


cdef void _spread_picked_item(const real_t* g, const int64_t* idx, const int64_t* idx_at,
                              Py_ssize_t idx_s, real_t* gh, const RowPlan* p,
                              Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t r = k // p.nblocks, d0 = (k % p.nblocks) * p.block
    cdef Py_ssize_t nd = min(p.block, p.nfeat - d0), t, i
    cdef const real_t* src = g + p.row_at[r] + d0 * p.rs
    cdef const int64_t* at = idx + idx_at[r] + d0 * idx_s
    cdef real_t* base = gh + p.tok_at[r] + d0 * p.fs
    cdef real_t* dst
    for t in range(p.start[r], p.stop[r]):
        dst = base + t * p.ts
        if p.fs == 1 and p.rs == 1 and idx_s == 1:
            for i in range(nd):
                dst[i] = src[i] if at[i] == t else 0
        else:
            for i in range(nd):
                dst[i * p.fs] = src[i * p.rs] if at[i * idx_s] == t else 0


def spread_picked(
    const real_t[:] grad,
    const int64_t[::1] grad_at,
    const int64_t[:] indices,
    const int64_t[::1] indices_at,
    const int64_t[::1] start,
    const int64_t[::1] stop,
    real_t[:, :] grad_h,
    const int64_t[::1] grad_h_at,
    int num_threads,
):
    """Feature d of token t of row r's gradient plane = grad[r, d] where indices[r, d] == t,
    else 0, for every t in [start[r], stop[r]) (max/min backward: one token per feature, so no
    sums). The caller checks that every index is -1 or within its row's range."""
    cdef RowPlan p = _row_plan(start, stop, grad_h.shape[1], num_threads)
    cdef Py_ssize_t k, idx_s = indices.strides[0] // sizeof(int64_t)
    if p.nitems == 0:
        return
    p.tok_at, p.row_at = &grad_h_at[0], &grad_at[0]
    p.ts, p.fs = grad_h.strides[0] // sizeof(real_t), grad_h.strides[1] // sizeof(real_t)
    p.rs = grad.strides[0] // sizeof(real_t)
    with nogil:
        for k in prange(p.nitems, schedule="static", num_threads=num_threads):
            _spread_picked_item(&grad[0], &indices[0], &indices_at[0], idx_s, &grad_h[0, 0], &p, k)


cdef void _token_dots_row(const real_t* g, const real_t* h, double* dots, const RowPlan* p,
                          Py_ssize_t r) noexcept nogil:
    cdef Py_ssize_t t, i, j, n = p.nfeat
    cdef const real_t* src = g + p.row_at[r]
    cdef const real_t* row
    cdef const double* c = p.coef + p.coef_at[r]
    cdef double* dst = dots + p.coef_at[r]
    cdef double acc[8]
    for t in range(p.start[r], p.stop[r]):
        dst[t] = 0.0
        if c[t] == 0:
            continue
        row = h + p.tok_at[r] + t * p.ts
        for j in range(8):
            acc[j] = 0.0
        i = 0
        if p.fs == 1 and p.rs == 1:
            # Eight interleaved partial sums: vectorised, in a fixed order.
            while i + 8 <= n:
                for j in range(8):
                    acc[j] += <double>src[i + j] * <double>row[i + j]
                i += 8
        while i < n:
            acc[0] += <double>src[i * p.rs] * <double>row[i * p.fs]
            i += 1
        dst[t] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


def token_dots(
    const real_t[:] grad,
    const int64_t[::1] grad_at,
    const real_t[:, :] h,
    const int64_t[::1] h_at,
    const double[::1] coef,
    const int64_t[::1] coef_at,
    const int64_t[::1] start,
    const int64_t[::1] stop,
    double[::1] dots,
    int num_threads,
):
    """dots[coef_at[r] + t] = (row r of grad) . (token t of row r's plane) in float64 for the
    valid tokens t in [start[r], stop[r]), 0 for the others (the attention backward's
    d loss / d weight). dots has coef's layout."""
    cdef RowPlan p = _row_plan(start, stop, h.shape[1], num_threads)
    cdef Py_ssize_t r
    if p.nrows == 0 or dots.shape[0] == 0:
        return
    p.coef, p.coef_at, p.tok_at, p.row_at = &coef[0], &coef_at[0], &h_at[0], &grad_at[0]
    p.ts, p.fs = h.strides[0] // sizeof(real_t), h.strides[1] // sizeof(real_t)
    p.rs = grad.strides[0] // sizeof(real_t)
    with nogil:
        for r in prange(p.nrows, schedule="static", num_threads=num_threads):
            _token_dots_row(&grad[0], &h[0, 0], &dots[0], &p, r)
