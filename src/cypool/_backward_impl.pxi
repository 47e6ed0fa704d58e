# Backward kernels over the 5-d geometry, included after _window_impl.pxi (its fused types, line
# primitives and scratch helpers). No two threads ever write the same grad_input element:
#
# * spread (avg, LP and adaptive-avg backward): a work item is one grad_input row
#   (outer, p0, p1), a block of the inner axis and a chunk of positions along axis 2. It gathers
#   the output rows (i0, i1) whose windows cover (p0, p1), weighted, into a buffer over axis-2
#   outputs (row pass), spreads that buffer over the input positions of its chunk (column pass,
#   the transpose of the forward's) and writes every element of its chunk exactly once.
# * scatter (max backward, max_unpool): a work item is one whole pooled plane of one outer index
#   and inner block, since argmax indices may point anywhere in the plane.
#
# Sums run in float64: in the buffers for spread, in a thread-local float64 plane for scatter.


cdef struct SpreadPlan:
    Py_ssize_t o2, n0, n1, n2
    Py_ssize_t inner, block, nblocks
    Py_ssize_t pchunk, nchunks, nitems
    Py_ssize_t obuf_len, ibuf_len   # buffer elements per inner lane
    Py_ssize_t gs0, gs1, gs2, gs3, gs4
    Py_ssize_t os0, os1, os2, os3, os4
    Py_ssize_t k2, s2, d2, pad2     # k2 == 0: table mode (adaptive bins)
    bint uniform2                   # every output along axis 2 has the same weight w2
    const int64_t* cover0_ptr
    const int64_t* cover0_out
    const int64_t* cover1_ptr
    const int64_t* cover1_out
    const int64_t* taps2
    const double* w0
    const double* w1
    const double* w2


cdef inline Py_ssize_t _floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    if b == 1:
        return a  # the common stride: no division
    return a // b if a >= 0 else -((-a + b - 1) // b)


cdef inline Py_ssize_t _pop_digit(Py_ssize_t* k, Py_ssize_t radix) noexcept nogil:
    """k[0] % radix, leaving k[0] // radix: the next mixed-radix digit of an item number.
    Radix 1, the common case (one chunk, one block, 2-d pooling), needs no division: the
    64-bit divisions took a fifth of the avg backward item's own time."""
    cdef Py_ssize_t digit
    if radix == 1:
        return 0
    digit = k[0] % radix
    k[0] = k[0] // radix
    return digit


cdef inline void _line_axpy(double* dst, const real_t* src, Py_ssize_t n, Py_ssize_t s,
                            double f, bint assign) noexcept nogil:
    """dst[i] (= or +=) f * src[i * s], in float64."""
    cdef Py_ssize_t i
    if s == 1:
        if assign:
            for i in range(n):
                dst[i] = f * <double>src[i]
        else:
            for i in range(n):
                dst[i] += f * <double>src[i]
    else:
        if assign:
            for i in range(n):
                dst[i] = f * <double>src[i * s]
        else:
            for i in range(n):
                dst[i] += f * <double>src[i * s]


cdef inline void _line_axpy3(double* dst, const real_t* a, const real_t* b, const real_t* c,
                             double fa, double fb, double fc, Py_ssize_t n,
                             bint assign) noexcept nogil:
    """Three contiguous _line_axpy calls in one pass over dst, with the same additions in the
    same order."""
    cdef Py_ssize_t i
    if assign:
        for i in range(n):
            dst[i] = (fa * <double>a[i] + fb * <double>b[i]) + fc * <double>c[i]
    else:
        for i in range(n):
            dst[i] = ((dst[i] + fa * <double>a[i]) + fb * <double>b[i]) + fc * <double>c[i]


cdef inline void _line_spread(double* dst, const double* src, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    """dst[i * s] += src[i]: one tap of the column spread."""
    cdef Py_ssize_t i
    if s == 1:
        for i in range(n):
            dst[i] += src[i]
    elif s == 2:
        for i in range(n):
            dst[2 * i] += src[i]
    else:
        for i in range(n):
            dst[i * s] += src[i]


cdef inline void _line_cast_store(real_t* dst, Py_ssize_t s, const double* src, Py_ssize_t n,
                                  bint stream=False) noexcept nogil:
    """dst[i * s] = src[i]; past the caches when `stream` (contiguous dst only)."""
    cdef Py_ssize_t i
    if s == 1 and stream:
        if real_t is float:
            cypool_stream_f32_from_f64(dst, src, n)
        else:
            cypool_stream_f64(dst, src, n)
    elif s == 1:
        for i in range(n):
            dst[i] = <real_t>src[i]
    else:
        for i in range(n):
            dst[i * s] = <real_t>src[i]


cdef SpreadPlan _spread_plan(
    Py_ssize_t* gshape, Py_ssize_t* gstrides, Py_ssize_t* oshape, Py_ssize_t* ostrides,
    Py_ssize_t item, const int64_t[::1] cover0_ptr, const int64_t[::1] cover0_out,
    const int64_t[::1] cover1_ptr, const int64_t[::1] cover1_out,
    const int64_t[:, ::1] taps2, const int64_t[:, ::1] windows, int num_threads,
):
    """The gather's geometry, blocks and chunks; its weights are the caller's to set."""
    cdef SpreadPlan p
    cdef Py_ssize_t i, nrows, extent2, elements = SCRATCH_BYTES // sizeof(double), ochunk
    p.o2 = gshape[3]
    p.n0, p.n1, p.n2 = oshape[1], oshape[2], oshape[3]
    p.inner = oshape[4]
    p.gs0, p.gs1, p.gs2, p.gs3, p.gs4 = [gstrides[i] // item for i in range(5)]
    p.os0, p.os1, p.os2, p.os3, p.os4 = [ostrides[i] // item for i in range(5)]
    p.k2, p.s2, p.d2, p.pad2 = windows[2, 0], windows[2, 1], windows[2, 2], windows[2, 3]
    p.cover0_ptr, p.cover0_out = &cover0_ptr[0], &cover0_out[0]
    p.cover1_ptr, p.cover1_out = &cover1_ptr[0], &cover1_out[0]
    p.taps2 = &taps2[0, 0]
    p.w0 = p.w1 = p.w2 = NULL
    p.uniform2 = False

    extent2 = (p.k2 - 1) * p.d2 + 1 if p.k2 > 0 else 1
    nrows = oshape[0] * p.n0 * p.n1
    p.block = p.inner
    if p.block > 1 and p.block * (extent2 + p.s2) > elements:
        p.block = max(16, elements // (extent2 + p.s2))
    while p.block > 16 and nrows * ((p.inner + p.block - 1) // p.block) < 4 * num_threads:
        p.block = (p.block + 1) // 2
    p.block = min(p.block, p.inner)
    p.nblocks = (p.inner + p.block - 1) // p.block

    if p.k2 == 0:
        # Table mode: one chunk per row, buffers over all outputs and inputs of axis 2.
        p.pchunk = p.n2
        p.obuf_len, p.ibuf_len = p.o2, p.n2
    else:
        p.pchunk = max(p.s2, elements // p.block)
        ochunk = (p.pchunk + extent2) // p.s2 + 2
        p.obuf_len = ochunk
        p.ibuf_len = max((ochunk - 1) * p.s2 + extent2 + p.pchunk, ochunk + 2 * extent2)
    p.nchunks = (p.n2 + p.pchunk - 1) // p.pchunk
    p.nitems = nrows * p.nblocks * p.nchunks
    return p


cdef void _spread_item(const real_t* g, real_t* gin, const SpreadPlan* p, Py_ssize_t k,
                       double* obuf, double* ibuf) noexcept nogil:
    cdef Py_ssize_t ch, cb, b, p0, p1, c0, nc, pa, pb, olo, ohi, no, blo, bhi, i, j, q, a, e
    cdef Py_ssize_t i0, i1, first_pos, extent2, lead = 0
    cdef double one = 1.0, fpending = 0.0, fpending2 = 0.0, f = 1.0, rowf = 1.0
    cdef const real_t* src
    cdef const real_t* pending = NULL
    cdef const real_t* pending2 = NULL
    cdef real_t* dst
    cdef double* rows = obuf
    cdef bint first = True
    cdef bint gflat, oflat, gather, uniform_rows = True, first_weight = True
    ch = _pop_digit(&k, p.nchunks)
    cb = _pop_digit(&k, p.nblocks)
    p1 = _pop_digit(&k, p.n1)
    p0 = _pop_digit(&k, p.n0)
    b = k
    c0 = cb * p.block
    nc = min(p.block, p.inner - c0)
    pa = ch * p.pchunk
    pb = min(pa + p.pchunk, p.n2)
    gflat = nc == 1 or (p.gs4 == 1 and p.gs3 == nc)
    oflat = nc == 1 or (p.os4 == 1 and p.os3 == nc)

    # The outputs along axis 2 whose windows reach into [pa, pb), and the buffered positions.
    if p.k2 == 0:
        olo, ohi, blo, bhi = 0, p.o2, 0, p.n2
    else:
        extent2 = (p.k2 - 1) * p.d2 + 1
        olo = max(0, -_floor_div(-(pa + p.pad2 - extent2 + 1), p.s2))
        ohi = min(p.o2, _floor_div(pb - 1 + p.pad2, p.s2) + 1)
        blo = min(pa, olo * p.s2 - p.pad2)
        bhi = max(pb, (ohi - 1) * p.s2 - p.pad2 + extent2)
    no = ohi - olo
    # Stride 1, contiguous rows: the column pass gathers instead of spreading (below).
    gather = p.s2 == 1 and nc == 1 and p.os3 == 1 and 2 <= p.k2 <= 3
    if gather:
        lead = (p.k2 - 1) * p.d2
        if p.uniform2:
            rows = ibuf + lead  # the row sums need no weighting pass: sum them in place

    # The covering rows' weights w0 * w1 are mostly all equal (always, with the padding
    # counted): then the rows are summed unweighted, as in the forward, and their weight joins
    # w2's, which saves a multiply per row and element.
    if no > 0:
        for a in range(p.cover0_ptr[p0], p.cover0_ptr[p0 + 1]):
            for e in range(p.cover1_ptr[p1], p.cover1_ptr[p1 + 1]):
                f = p.w0[p.cover0_out[a]] * p.w1[p.cover1_out[e]]
                if first_weight:
                    rowf, first_weight = f, False
                uniform_rows = uniform_rows and f == rowf
        if not uniform_rows:
            rowf = 1.0

    # Row pass: sum of the covering output rows (weighted unless uniform_rows), three rows per
    # pass where they are contiguous lines.
    if no > 0:
        for a in range(p.cover0_ptr[p0], p.cover0_ptr[p0 + 1]):
            i0 = p.cover0_out[a]
            for e in range(p.cover1_ptr[p1], p.cover1_ptr[p1 + 1]):
                i1 = p.cover1_out[e]
                src = g + b * p.gs0 + i0 * p.gs1 + i1 * p.gs2 + olo * p.gs3 + c0 * p.gs4
                f = 1.0 if uniform_rows else p.w0[i0] * p.w1[i1]
                if gflat and (nc > 1 or p.gs3 == 1):
                    if pending == NULL:
                        pending, fpending = src, f
                        continue
                    if pending2 == NULL:
                        pending2, fpending2 = src, f
                        continue
                    if uniform_rows:
                        _line_add_triple(rows, pending, pending2, src, no * nc, first)
                    else:
                        _line_axpy3(rows, pending, pending2, src, fpending, fpending2, f,
                                    no * nc, first)
                    pending = pending2 = NULL
                elif gflat:
                    _line_axpy(rows, src, no * nc, p.gs3 if nc == 1 else 1, f, first)
                else:
                    for q in range(no):
                        _line_axpy(rows + q * nc, src + q * p.gs3, nc, p.gs4, f, first)
                first = False
        if pending != NULL and pending2 != NULL and uniform_rows:
            _line_add_pair(rows, pending, pending2, no * nc, first)
            first = False
        else:
            if pending != NULL:
                _line_axpy(rows, pending, no * nc, 1, fpending, first)
                first = False
            if pending2 != NULL:
                _line_axpy(rows, pending2, no * nc, 1, fpending2, first)

    if not first and gather:
        # With the weighted outputs zero-padded by `lead` on both sides, input p takes the k2
        # outputs ending at p + pad2 - olo: one fused pass that writes grad_input directly.
        for q in range(lead):
            ibuf[q] = 0.0
            ibuf[lead + no + q] = 0.0
        if p.uniform2:
            f = rowf * p.w2[0]
        else:
            f = 1.0
            for i in range(no):
                ibuf[lead + i] = obuf[i] * (rowf * p.w2[olo + i])
        dst = gin + b * p.os0 + p0 * p.os1 + p1 * p.os2 + pa * p.os3 + c0 * p.os4
        _window_avg(dst, ibuf + lead + pa + p.pad2 - olo, pb - pa, p.k2, 1, -p.d2, f,
                    &one, False)
        return

    # Column pass: spread each output over its taps along axis 2.
    for q in range((bhi - blo) * nc):
        ibuf[q] = 0.0
    if not first:
        for i in range(no):
            for q in range(nc):
                obuf[i * nc + q] *= rowf * p.w2[olo + i]
        if p.k2 == 0:
            for i in range(no):
                first_pos = p.taps2[2 * i]
                for j in range(p.taps2[2 * i + 1]):
                    _line_sum(ibuf + (first_pos + j * p.d2 - blo) * nc, obuf + i * nc, nc, 1)
        elif nc == 1:
            for j in range(p.k2):
                _line_spread(ibuf + (olo * p.s2 - p.pad2 + j * p.d2 - blo), obuf, no, p.s2)
        else:
            for i in range(no):
                for j in range(p.k2):
                    _line_sum(ibuf + ((olo + i) * p.s2 - p.pad2 + j * p.d2 - blo) * nc,
                              obuf + i * nc, nc, 1)

    # Write every grad_input element of the chunk once.
    dst = gin + b * p.os0 + p0 * p.os1 + p1 * p.os2 + pa * p.os3 + c0 * p.os4
    if oflat:
        _line_cast_store(dst, p.os3 if nc == 1 else 1, ibuf + (pa - blo) * nc, (pb - pa) * nc)
    else:
        for q in range(pb - pa):
            _line_cast_store(dst + q * p.os3, p.os4, ibuf + (pa - blo + q) * nc, nc)


def spread(
    const real_t[:, :, :, :, :] grad_output,
    real_t[:, :, :, :, :] grad_input,
    const int64_t[::1] cover0_ptr,
    const int64_t[::1] cover0_out,
    const int64_t[::1] cover1_ptr,
    const int64_t[::1] cover1_out,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    const double[::1] w0,
    const double[::1] w1,
    const double[::1] w2,
    int num_threads,
):
    """grad_input[p] = sum over the outputs o whose windows hold p of
    w0[o0] * w1[o1] * w2[o2] * grad_output[o], summed in float64."""
    cdef SpreadPlan p = _spread_plan(grad_output.shape, grad_output.strides, grad_input.shape,
                                     grad_input.strides, sizeof(real_t), cover0_ptr, cover0_out,
                                     cover1_ptr, cover1_out, taps2, windows, num_threads)
    cdef Py_ssize_t k, i, obuf_bytes = _scratch_stride(p.obuf_len * p.block * sizeof(double))
    cdef Py_ssize_t stride = obuf_bytes + _scratch_stride(p.ibuf_len * p.block * sizeof(double))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef const real_t* gp = &grad_output[0, 0, 0, 0, 0]
    cdef real_t* op = &grad_input[0, 0, 0, 0, 0]
    p.w0, p.w1, p.w2 = &w0[0], &w1[0], &w2[0]
    p.uniform2 = True
    for i in range(p.o2):
        p.uniform2 = p.uniform2 and w2[i] == w2[0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                _spread_item(gp, op, &p, k, <double*>mine, <double*>(mine + obuf_bytes))
    finally:
        free(scratch)


# ----------------------------------------------------------------------------------------------
# LP backward: the gradient of each window's p-norm y = (sum |x|**p) ** (1/p) is, for each of its
# taps, sign(x) * (|x| / y) ** (p - 1). Each pair (input element, covering window) is computed
# in that form, whose ratio is at most 1: the factored form |x| ** (p - 1) * y ** (1 - p)
# overflows or underflows at extreme magnitudes (1e200 ** 2) where the gradient does not. For
# p != 1, 2 the factored form serves where its factors are normal floats (_lp_factored): it
# takes a power per window and per element, the ratio form one per pair.

from libc.float cimport DBL_MAX, DBL_MIN
from libc.math cimport NAN, copysign, exp2, floor, frexp, ldexp


cdef struct LpGrad:
    # What the LP gather reads besides grad_output: the forward's input x and its float64 norms.
    Py_ssize_t xs0, xs1, xs2, xs3, xs4
    Py_ssize_t ys0, ys1, ys2, ys3, ys4
    Py_ssize_t ws0, ws1, ws2, ws3, ws4   # the windows' weights g * y ** (1 - p) (p != 1, 2)
    PowerKind kind      # POWER_ONE and POWER_TWO skip the power (see _lp_line)
    double power        # p
    double exponent     # p - 1
    const Plan* fwd     # the forward's plan over x: rescans of windows (_lp_tiny_share)


cdef inline double _ratio_power(double g, double ax, double y, double e) noexcept nogil:
    """g * (ax / y) ** e for 0 < ax <= y, -1 < e. Where ax / y falls below DBL_MIN (mixed
    magnitudes such as 1e-200 beside 1e200), its rounding in the subnormal range, or to 0,
    would be carried into a result that for e < 1 is much larger than the ratio: then the
    mantissas' ratio is raised instead, the exponents' difference t = (ex - ey) * e enters
    as exp2 of its fraction (relative error about |t| * 2**-53) and ldexp of its integer
    part, applied last so that g's product overflows or underflows only where the result does
    (1e-316 beside 1e300 at p = 0.5 gives factors beyond DBL_MAX). For e >= 1 the result is
    below g * DBL_MIN anyway, and pow's is as accurate as it can be."""
    cdef double r = ax / y
    cdef int ex, ey
    cdef double mx, my, t, k
    if not (r < DBL_MIN) or e >= 1.0 or y == INFINITY:
        return g * pow(r, e)
    mx = frexp(ax, &ex)
    my = frexp(y, &ey)
    t = <double>(ex - ey) * e
    k = floor(t)
    return ldexp(g * pow(mx / my, e) * exp2(t - k), <int>k)


cdef inline double _lp_two(double g, double ax, double y) noexcept nogil:
    """One pair's share g * ax / y for p == 2. A zero window (y == 0, so ax == 0) divides by
    1, not 0 / 0: a select, which keeps the loops over pairs vectorised."""
    return g * (ax / (y if y != 0.0 else 1.0))


cdef inline double _lp_general(double g, double ax, double y, double e) noexcept nogil:
    """One pair's share g * (ax / y) ** e of the gradient (sign apart), e = p - 1, for ax = |x|
    of a tap of a window of norm y >= ax: 0 for ax == 0, NaN for a NaN norm."""
    if ax == 0.0:
        return _lp_two(g, ax, y)
    return _ratio_power(g, ax, y, e)


cdef inline bint _normal(double v) noexcept nogil:
    """Whether |v| is a normal float (NaN is not)."""
    return (fabs(v) >= DBL_MIN) & (fabs(v) <= DBL_MAX)


cdef inline double _lp_weight(double g, double y, double e) noexcept nogil:
    """g * y ** -e: a window's half of its pairs' shares in the factored form
    (g * y ** -e) * ax ** e, or NaN where that form could lose accuracy (y ** -e, or the
    product unless 0, outside the normal floats; a zero or NaN y): its pairs then take the
    ratio form (_lp_factored)."""
    cdef double q = pow(y, -e), w = g * q
    if not _normal(q) or (w != 0.0 and not _normal(w)):
        return NAN
    return w


cdef inline double _lp_factor(double ax, double e) noexcept nogil:
    """ax ** e, an element's half of the factored form: 0 for ax == 0, NaN outside the normal
    floats."""
    cdef double a
    if ax == 0.0:
        return 0.0
    a = pow(ax, e)
    return a if _normal(a) else NAN


cdef inline double _lp_factored(double w, double a, double g, double ax, double y,
                                double e) noexcept nogil:
    """A pair's share for p != 1, 2: w * a (_lp_weight, _lp_factor) where both are normal,
    which rounds like g * (ax / y) ** e but takes one power per window and one per element
    instead of one per pair; else (a NaN) the ratio form _lp_general."""
    cdef double t = w * a
    return t if t == t else _lp_general(g, ax, y, e)


cdef inline int _tiny(double y) noexcept nogil:
    """Whether a norm is subnormal: its float64 value keeps fewer than 53 bits (2**-1075 / y
    relative), which a pair's factor (|x| / y) ** (p - 1) would carry."""
    return (y < DBL_MIN) & (y > 0.0)


cdef inline int _lp_line(double* acc, const double* ax, const double* fa, Py_ssize_t s,
                         const real_t* g, Py_ssize_t gs, const double* y, Py_ssize_t ys,
                         const double* w, Py_ssize_t ws, Py_ssize_t n, PowerKind kind,
                         double e) noexcept nogil:
    """acc[i * s] += g[i * gs] * (ax[i * s] / y[i * ys]) ** e for i < n: the pairs of one tap
    of n windows along a channels-first line, s their stride (for p != 1, 2 from the factors
    fa and weights w, _lp_factored). Unit strides for g and y and the strides 1 and 2 of the
    windows have loops of their own, which gcc vectorises. Returns whether a norm read was
    _tiny (p == 1 reads none)."""
    cdef Py_ssize_t i
    cdef int tiny = 0
    if kind == POWER_ONE:
        if gs == 1 and s == 1:
            for i in range(n):
                acc[i] += <double>g[i]
        elif gs == 1 and s == 2:
            for i in range(n):
                acc[2 * i] += <double>g[i]
        else:
            for i in range(n):
                acc[i * s] += <double>g[i * gs]
    elif kind == POWER_TWO:
        if gs == 1 and ys == 1 and s == 1:
            for i in range(n):
                acc[i] += _lp_two(<double>g[i], ax[i], y[i])
                tiny = tiny | _tiny(y[i])
        elif gs == 1 and ys == 1 and s == 2:
            for i in range(n):
                acc[2 * i] += _lp_two(<double>g[i], ax[2 * i], y[i])
                tiny = tiny | _tiny(y[i])
        else:
            for i in range(n):
                acc[i * s] += _lp_two(<double>g[i * gs], ax[i * s], y[i * ys])
                tiny = tiny | _tiny(y[i * ys])
    else:
        for i in range(n):
            acc[i * s] += _lp_factored(w[i * ws], fa[i * s], <double>g[i * gs], ax[i * s],
                                       y[i * ys], e)
            tiny = tiny | _tiny(y[i * ys])
    return tiny


cdef inline int _lp_lanes(double* acc, const double* ax, const double* fa, const real_t* g,
                          Py_ssize_t gs, const double* y, Py_ssize_t ys, const double* w,
                          Py_ssize_t ws, Py_ssize_t nc, PowerKind kind, double e) noexcept nogil:
    """_lp_line over the nc lanes of one tap of one window (channels-last)."""
    cdef Py_ssize_t c
    cdef int tiny = 0
    if kind == POWER_TWO and gs == 1 and ys == 1:
        for c in range(nc):
            acc[c] += _lp_two(<double>g[c], ax[c], y[c])
            tiny = tiny | _tiny(y[c])
        return tiny
    return _lp_line(acc, ax, fa, 1, g, gs, y, ys, w, ws, nc, kind, e)


cdef double _lp_tiny_share(const real_t* x, const Plan* f, const Item* it, Py_ssize_t i2,
                           Py_ssize_t c, double g, double ax, const LpGrad* q) noexcept nogil:
    """A pair's share g * (ax / y) ** (p - 1) for a window (i2 of lane c of `it`, in the
    forward's plan f) whose norm y is _tiny, from the window itself: y = m * root with m its
    largest |x| and root normal, so ax / m (at least 2**-52) and the factor keep every bit."""
    cdef double m, r
    if ax == 0.0:
        return g * 0.0
    m = _lp_taps(x, f, it, i2, c, 0.0, q.kind, q.power)
    r = (ax / m) / _lp_root(_lp_taps(x, f, it, i2, c, m, q.kind, q.power), q.kind, q.power)
    return g * r if q.kind == POWER_TWO else g * pow(r, q.exponent)


cdef void _lp_exact_line(double* acc, const double* ax, const double* fa, Py_ssize_t s,
                         const real_t* g, Py_ssize_t gs, Py_ssize_t gs4, const double* y,
                         Py_ssize_t ys, Py_ssize_t ys4, const double* w, Py_ssize_t ws,
                         Py_ssize_t ws4, Py_ssize_t n, Py_ssize_t nc, const real_t* x,
                         const LpGrad* q, const Item* it, Py_ssize_t i2) noexcept nogil:
    """The pairs of _lp_line (nc == 1) or of n calls of _lp_lanes, windows i2 to i2 + n - 1,
    one by one: the same additions in the same order, except that windows of a _tiny norm
    give their _lp_tiny_share."""
    cdef Py_ssize_t i, c, at
    cdef double gv, yv
    for i in range(n):
        for c in range(nc):
            at = i * s + c
            gv = <double>g[i * gs + c * gs4]
            yv = y[i * ys + c * ys4]
            if _tiny(yv):
                acc[at] += _lp_tiny_share(x, q.fwd, it, i2 + i, c, gv, ax[at], q)
            elif q.kind == POWER_TWO:
                acc[at] += _lp_two(gv, ax[at], yv)
            else:
                acc[at] += _lp_factored(w[i * ws + c * ws4], fa[at], gv, ax[at], yv,
                                        q.exponent)


cdef inline double _sign(double v) noexcept nogil:
    """1, -1, or v itself for a zero or a NaN; selects, not branches, so that loops of it
    vectorise (a branch on random signs took 40% of the p == 1 gather)."""
    return copysign(1.0, v) if (v != 0.0) & (v == v) else v


cdef inline void _abs_line(double* dst, const real_t* src, Py_ssize_t n, Py_ssize_t s) noexcept nogil:
    """dst[i] = |src[i * s]| in float64."""
    cdef Py_ssize_t i
    if s == 1:
        for i in range(n):
            dst[i] = fabs(<double>src[i])
    else:
        for i in range(n):
            dst[i] = fabs(<double>src[i * s])


cdef inline void _signed_store(real_t* dst, Py_ssize_t ds, const real_t* x, Py_ssize_t xs,
                               const double* acc, Py_ssize_t n) noexcept nogil:
    """dst[i * ds] = sign(x[i * xs]) * acc[i]."""
    cdef Py_ssize_t i
    if ds == 1 and xs == 1:
        for i in range(n):
            dst[i] = <real_t>(_sign(<double>x[i]) * acc[i])
    else:
        for i in range(n):
            dst[i * ds] = <real_t>(_sign(<double>x[i * xs]) * acc[i])


cdef inline int _lp_windows(double* acc, const double* ax, const double* fa, Py_ssize_t at,
                     Py_ssize_t s, const real_t* grow, const double* yrow, const double* wrow,
                     const real_t* x, const SpreadPlan* p, const LpGrad* q, const Item* it,
                     Py_ssize_t nc, Py_ssize_t ilo, Py_ssize_t n, bint exact) noexcept nogil:
    """The pairs of one tap of the n windows ilo to ilo + n - 1 of one covering row, whose
    elements sit at acc[at], acc[at + s * nc], ...: with _lp_line (channels-first) or
    _lp_lanes, or with _lp_exact_line when `exact`. Returns whether a norm read was _tiny."""
    cdef Py_ssize_t i
    cdef int tiny = 0
    if exact:
        _lp_exact_line(acc + at, ax + at, fa + at, s * nc, grow + ilo * p.gs3, p.gs3, p.gs4,
                       yrow + ilo * q.ys3, q.ys3, q.ys4, wrow + ilo * q.ws3, q.ws3, q.ws4, n,
                       nc, x, q, it, ilo)
    elif nc == 1:
        tiny = _lp_line(acc + at, ax + at, fa + at, s, grow + ilo * p.gs3, p.gs3,
                        yrow + ilo * q.ys3, q.ys3, wrow + ilo * q.ws3, q.ws3, n, q.kind,
                        q.exponent)
    else:
        for i in range(ilo, ilo + n):
            tiny = tiny | _lp_lanes(acc + at, ax + at, fa + at, grow + i * p.gs3, p.gs4,
                                    yrow + i * q.ys3, q.ys4, wrow + i * q.ws3, q.ws4, nc, q.kind,
                                    q.exponent)
            at += s * nc
    return tiny


cdef int _lp_pass(const real_t* x, const real_t* g, const double* y, const double* w,
                  const SpreadPlan* p, const LpGrad* q, Item* it, Py_ssize_t p0, Py_ssize_t p1,
                  Py_ssize_t nc, Py_ssize_t pa, Py_ssize_t pb, double* acc, const double* ax,
                  const double* fa, bint exact) noexcept nogil:
    """acc = the pairs' sums of the chunk [pa, pb) of input row (it.b, p0, p1) and lanes
    [it.c0, it.c0 + nc), in the order of the covering rows, then of the taps along axis 2:
    with _lp_windows. Returns whether a norm read was _tiny."""
    cdef Py_ssize_t a, e, j, i, off, ilo, ihi, pos
    cdef const int64_t* t2
    cdef const real_t* grow
    cdef const double* yrow
    cdef const double* wrow
    cdef int tiny = 0
    for i in range((pb - pa) * nc):
        acc[i] = 0.0
    for a in range(p.cover0_ptr[p0], p.cover0_ptr[p0 + 1]):
        it.i0 = p.cover0_out[a]
        for e in range(p.cover1_ptr[p1], p.cover1_ptr[p1 + 1]):
            it.i1 = p.cover1_out[e]
            grow = g + it.b * p.gs0 + it.i0 * p.gs1 + it.i1 * p.gs2 + it.c0 * p.gs4
            yrow = y + it.b * q.ys0 + it.i0 * q.ys1 + it.i1 * q.ys2 + it.c0 * q.ys4
            wrow = w + it.b * q.ws0 + it.i0 * q.ws1 + it.i1 * q.ws2 + it.c0 * q.ws4
            if p.k2 == 0:
                # Table mode (windows longer than the input, adaptive bins): window by window,
                # each in-bounds tap of the taps2 table that lies in [pa, pb).
                for i in range(p.o2):
                    t2 = p.taps2 + 2 * i
                    for j in range(t2[1]):
                        pos = t2[0] + j * p.d2
                        if pa <= pos < pb:
                            tiny = tiny | _lp_windows(acc, ax, fa, (pos - pa) * nc, 1, grow,
                                                      yrow, wrow, x, p, q, it, nc, i, 1, exact)
            for j in range(p.k2):
                # Tap j of window i2 sits at i2 * s2 + off: the windows whose tap j is in [pa, pb).
                off = j * p.d2 - p.pad2
                ilo = max(0, -_floor_div(off - pa, p.s2))
                ihi = min(p.o2, _floor_div(pb - 1 - off, p.s2) + 1)
                if ilo < ihi:
                    tiny = tiny | _lp_windows(acc, ax, fa, (ilo * p.s2 + off - pa) * nc, p.s2,
                                              grow, yrow, wrow, x, p, q, it, nc, ilo, ihi - ilo,
                                              exact)
    return tiny


cdef void _lp_spread_item(const real_t* x, const real_t* g, const double* y, const double* w,
                          real_t* gin, const SpreadPlan* p, const LpGrad* q, Py_ssize_t k,
                          double* acc, double* ax, double* fa) noexcept nogil:
    """grad_input of item k (one input row (b, p0, p1), one inner block, one chunk [pa, pb) of
    axis 2): per element, the sum of its pairs over the covering windows (_lp_pass), times
    sign(x). ax holds the chunk's |x| in float64, laid out as acc: (position, lane), and fa
    (p != 1, 2) their _lp_factor. An item
    that read a _tiny norm is summed again by the exact pass, which changes only the pairs of
    those windows: so no result depends on how the items divide the work."""
    cdef Py_ssize_t ch, cb, p0, p1, nc, pa, pb, i
    cdef const real_t* xrow
    cdef real_t* dst
    cdef bint xflat, oflat
    cdef Item it
    ch = _pop_digit(&k, p.nchunks)
    cb = _pop_digit(&k, p.nblocks)
    p1 = _pop_digit(&k, p.n1)
    p0 = _pop_digit(&k, p.n0)
    it.b = k
    it.c0 = cb * p.block
    nc = min(p.block, p.inner - it.c0)
    pa = ch * p.pchunk
    pb = min(pa + p.pchunk, p.n2)
    xrow = x + it.b * q.xs0 + p0 * q.xs1 + p1 * q.xs2 + it.c0 * q.xs4
    # The chunk's (position, lane) elements as one line where the strides allow.
    xflat = nc == 1 or (q.xs4 == 1 and q.xs3 == nc)
    oflat = nc == 1 or (p.os4 == 1 and p.os3 == nc)
    if q.kind != POWER_ONE and xflat:
        _abs_line(ax, xrow + pa * q.xs3, (pb - pa) * nc, q.xs3 if nc == 1 else 1)
    elif q.kind != POWER_ONE:
        for i in range(pb - pa):
            _abs_line(ax + i * nc, xrow + (pa + i) * q.xs3, nc, q.xs4)
    if q.kind == POWER_GENERAL:
        for i in range((pb - pa) * nc):
            fa[i] = _lp_factor(ax[i], q.exponent)
    if _lp_pass(x, g, y, w, p, q, &it, p0, p1, nc, pa, pb, acc, ax, fa, False):
        _lp_pass(x, g, y, w, p, q, &it, p0, p1, nc, pa, pb, acc, ax, fa, True)
    dst = gin + it.b * p.os0 + p0 * p.os1 + p1 * p.os2 + it.c0 * p.os4
    if xflat and oflat:
        _signed_store(dst + pa * p.os3, p.os3 if nc == 1 else 1, xrow + pa * q.xs3,
                      q.xs3 if nc == 1 else 1, acc, (pb - pa) * nc)
    else:
        for i in range(pa, pb):
            _signed_store(dst + i * p.os3, p.os4, xrow + i * q.xs3, q.xs4, acc + (i - pa) * nc,
                          nc)


def lp_spread(
    const real_t[:, :, :, :, :] x,
    const real_t[:, :, :, :, :] grad_output,
    const double[:, :, :, :, :] norms,
    real_t[:, :, :, :, :] grad_input,
    double[:, :, :, :, :] weights,
    const int64_t[::1] cover0_ptr,
    const int64_t[::1] cover0_out,
    const int64_t[::1] cover1_ptr,
    const int64_t[::1] cover1_out,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    double norm_type,
    int num_threads,
):
    """grad_input[t] = sign(x[t]) * sum over the windows o holding t of
    grad_output[o] * (|x[t]| / norms[o]) ** (norm_type - 1), summed in float64, with norms the
    p-norms of x's windows (lp_pool's, in float64) and 0 for a zero window. The forward's tap
    tables serve the windows whose norm is subnormal, which are rescanned. For p != 1, 2 a
    first pass writes each window's _lp_weight into `weights` (grad_output's shape)."""
    cdef SpreadPlan p = _spread_plan(grad_output.shape, grad_output.strides, grad_input.shape,
                                     grad_input.strides, sizeof(real_t), cover0_ptr, cover0_out,
                                     cover1_ptr, cover1_out, taps2, windows, num_threads)
    cdef Plan f = _make_plan(x.shape, x.strides, sizeof(real_t), grad_output.shape,
                             grad_output.strides, sizeof(real_t), taps0, taps1, taps2, windows,
                             sizeof(double), num_threads)
    cdef LpGrad q
    cdef Py_ssize_t i, k, half = _scratch_stride(p.pchunk * p.block * sizeof(double))
    cdef Py_ssize_t stride = 3 * half
    cdef Py_ssize_t o0 = grad_output.shape[1], o1 = grad_output.shape[2]
    cdef Py_ssize_t b, i0, i1, i2, c
    cdef Py_ssize_t item = sizeof(real_t), wide = sizeof(double)
    cdef char* scratch
    cdef char* mine = NULL
    cdef const real_t* xp = &x[0, 0, 0, 0, 0]
    cdef const real_t* gp = &grad_output[0, 0, 0, 0, 0]
    cdef const double* yp = &norms[0, 0, 0, 0, 0]
    cdef const double* wp = &weights[0, 0, 0, 0, 0]
    cdef real_t* op = &grad_input[0, 0, 0, 0, 0]
    q.xs0, q.xs1, q.xs2, q.xs3, q.xs4 = [x.strides[i] // item for i in range(5)]
    q.ys0, q.ys1, q.ys2, q.ys3, q.ys4 = [norms.strides[i] // wide for i in range(5)]
    q.ws0, q.ws1, q.ws2, q.ws3, q.ws4 = [weights.strides[i] // wide for i in range(5)]
    q.fwd = &f
    q.power = norm_type
    q.exponent = norm_type - 1.0
    q.kind = POWER_GENERAL
    if norm_type == 1.0:
        q.kind = POWER_ONE
    elif norm_type == 2.0:
        q.kind = POWER_TWO
    scratch = <char*>malloc(stride * num_threads)
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil:
            if q.kind == POWER_GENERAL:
                # One power per window here and one per element in the items, instead of one
                # per pair (2.0 instead of 3.6 million for float32 (8, 64, 56, 56) 3x3/2): at
                # p = 3, 1 thread, the gather took 24 ms instead of 40 (the whole backward 50
                # instead of 68, as much as the NumPy backward before the ratio form).
                for k in prange(grad_output.shape[0] * o0 * o1, schedule="static",
                                num_threads=num_threads):
                    b, i0, i1 = k // (o0 * o1), k // o1 % o0, k % o1
                    for i2 in range(p.o2):
                        for c in range(p.inner):
                            weights[b, i0, i1, i2, c] = _lp_weight(
                                <double>grad_output[b, i0, i1, i2, c], norms[b, i0, i1, i2, c],
                                q.exponent)
            with parallel(num_threads=num_threads):
                mine = scratch + stride * omp_get_thread_num()
                for k in prange(p.nitems, schedule="static"):
                    _lp_spread_item(xp, gp, yp, wp, op, &p, &q, k, <double*>mine,
                                    <double*>(mine + half), <double*>(mine + 2 * half))
    finally:
        free(scratch)


# ----------------------------------------------------------------------------------------------
# Scatter: max backward (accumulate) and max_unpool (assign)

cdef struct ScatterPlan:
    Py_ssize_t o0, o1, o2, plane
    bint stream             # grad_input is written past the caches
    Py_ssize_t inner, block, nblocks, nitems
    Py_ssize_t n0, n1, n2
    Py_ssize_t vs0, vs1, vs2, vs3, vs4
    Py_ssize_t is0, is1, is2, is3, is4
    Py_ssize_t os0, os1, os2, os3, os4


cdef ScatterPlan _scatter_plan(Py_ssize_t* vshape, Py_ssize_t* vstrides, Py_ssize_t vitem,
                               Py_ssize_t* istrides, Py_ssize_t* oshape, Py_ssize_t* ostrides,
                               Py_ssize_t lane_bytes, bint stream, int num_threads):
    cdef ScatterPlan p
    cdef Py_ssize_t i
    p.o0, p.o1, p.o2 = vshape[1], vshape[2], vshape[3]
    p.n0, p.n1, p.n2 = oshape[1], oshape[2], oshape[3]
    p.plane = oshape[1] * oshape[2] * oshape[3]
    p.inner = oshape[4]
    p.stream = stream
    p.vs0, p.vs1, p.vs2, p.vs3, p.vs4 = [vstrides[i] // vitem for i in range(5)]
    p.is0, p.is1, p.is2, p.is3, p.is4 = [istrides[i] // sizeof(int64_t) for i in range(5)]
    p.os0, p.os1, p.os2, p.os3, p.os4 = [ostrides[i] // vitem for i in range(5)]
    # A float64 plane per thread for each inner lane of a block: keep it within ~1 MB.
    p.block = max(1, min(p.inner, (1 << 20) // max(1, p.plane * lane_bytes)))
    while p.block > 1 and oshape[0] * ((p.inner + p.block - 1) // p.block) < 4 * num_threads:
        p.block = (p.block + 1) // 2
    p.nblocks = (p.inner + p.block - 1) // p.block
    p.nitems = oshape[0] * p.nblocks
    return p


cdef inline Py_ssize_t _plane_offset(const ScatterPlan* p, Py_ssize_t flat) noexcept nogil:
    """Element offset in the output of flat pooled position `flat` (row-major over n0, n1, n2)."""
    cdef Py_ssize_t q2 = flat % p.n2, rest = flat // p.n2
    return (rest // p.n1) * p.os1 + (rest % p.n1) * p.os2 + q2 * p.os3


cdef void _store_plane(real_t* dst, const ScatterPlan* p, const double* plane, Py_ssize_t nc) noexcept nogil:
    """Write a float64 plane (n0, n1, n2, nc) into grad_input rows, cast to real_t."""
    cdef Py_ssize_t p0, p1, p2
    cdef real_t* row
    cdef const double* src
    if nc == 1 and p.os3 == 1 and p.os2 == p.n2 and p.os1 == p.n1 * p.n2:
        _line_cast_store(dst, 1, plane, p.plane, p.stream)
        return
    for p0 in range(p.n0):
        for p1 in range(p.n1):
            row = dst + p0 * p.os1 + p1 * p.os2
            src = plane + (p0 * p.n1 + p1) * p.n2 * nc
            if nc == 1:
                _line_cast_store(row, p.os3, src, p.n2, p.stream)
            else:
                for p2 in range(p.n2):
                    _line_cast_store(row + p2 * p.os3, p.os4, src + p2 * nc, nc, p.stream)


cdef void _scatter_add_item(const real_t* g, const int64_t* idx, real_t* gin,
                            const ScatterPlan* p, Py_ssize_t k, double* plane) noexcept nogil:
    cdef Py_ssize_t cb = k % p.nblocks, b = k // p.nblocks
    cdef Py_ssize_t c0 = cb * p.block, nc = min(p.block, p.inner - c0)
    cdef Py_ssize_t i0, i1, i2, c, q
    cdef const real_t* gv
    cdef const int64_t* iv
    for q in range(p.plane * nc):
        plane[q] = 0.0
    for i0 in range(p.o0):
        for i1 in range(p.o1):
            gv = g + b * p.vs0 + i0 * p.vs1 + i1 * p.vs2 + c0 * p.vs4
            iv = idx + b * p.is0 + i0 * p.is1 + i1 * p.is2 + c0 * p.is4
            if nc == 1:
                # Channels-first: one lane, a tight loop along the row (the general loop below
                # made the (32, 64, 112, 112) max backward's scatter a quarter slower).
                for i2 in range(p.o2):
                    plane[iv[i2 * p.is3]] += <double>gv[i2 * p.vs3]
            else:
                for i2 in range(p.o2):
                    for c in range(nc):
                        plane[iv[i2 * p.is3 + c * p.is4] * nc + c] += <double>gv[i2 * p.vs3 + c * p.vs4]
    _store_plane(gin + b * p.os0 + c0 * p.os4, p, plane, nc)


def scatter_add(
    const real_t[:, :, :, :, :] grad_output,
    const int64_t[:, :, :, :, :] indices,
    real_t[:, :, :, :, :] grad_input,
    bint stream,
    int num_threads,
):
    """grad_input = zeros, then grad_input[indices[o]] += grad_output[o] for every output o, in
    float64 and output order. Indices must be valid flat positions of the pooled plane.
    `stream` writes grad_input's contiguous lines with non-temporal stores."""
    cdef ScatterPlan p = _scatter_plan(grad_output.shape, grad_output.strides, sizeof(real_t),
                                       indices.strides, grad_input.shape, grad_input.strides,
                                       sizeof(double), stream, num_threads)
    cdef Py_ssize_t k, stride = _scratch_stride(p.plane * p.block * sizeof(double))
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef const real_t* gp = &grad_output[0, 0, 0, 0, 0]
    cdef const int64_t* ip = &indices[0, 0, 0, 0, 0]
    cdef real_t* op = &grad_input[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            for k in prange(p.nitems, schedule="static"):
                _scatter_add_item(gp, ip, op, &p, k, <double*>mine)
            cypool_stream_fence()
    finally:
        free(scratch)


cdef void _scatter_set_item(const order_t* x, const int64_t* idx, order_t* out,
                            const ScatterPlan* p, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t cb = k % p.nblocks, b = k // p.nblocks
    cdef Py_ssize_t c0 = cb * p.block, nc = min(p.block, p.inner - c0)
    cdef Py_ssize_t i0, i1, i2, c, p0, p1, p2
    cdef const order_t* xv
    cdef const int64_t* iv
    cdef order_t* base = out + b * p.os0 + c0 * p.os4
    cdef order_t* dst
    for p0 in range(p.n0):
        for p1 in range(p.n1):
            for p2 in range(p.n2):
                dst = base + p0 * p.os1 + p1 * p.os2 + p2 * p.os3
                for c in range(nc):
                    dst[c * p.os4] = 0
    for i0 in range(p.o0):
        for i1 in range(p.o1):
            for i2 in range(p.o2):
                xv = x + b * p.vs0 + i0 * p.vs1 + i1 * p.vs2 + i2 * p.vs3 + c0 * p.vs4
                iv = idx + b * p.is0 + i0 * p.is1 + i1 * p.is2 + i2 * p.is3 + c0 * p.is4
                for c in range(nc):
                    dst = base + _plane_offset(p, iv[c * p.is4])
                    dst[c * p.os4] = xv[c * p.vs4]


def scatter_set(
    const order_t[:, :, :, :, :] x,
    const int64_t[:, :, :, :, :] indices,
    order_t[:, :, :, :, :] out,
    int num_threads,
):
    """out = zeros, then out[indices[o]] = x[o] in output order (a repeated index keeps the
    last value). Indices must be valid flat positions of out's pooled plane."""
    cdef ScatterPlan p = _scatter_plan(x.shape, x.strides, sizeof(order_t), indices.strides,
                                       out.shape, out.strides, 0, False, num_threads)
    cdef Py_ssize_t k
    cdef const order_t* xp = &x[0, 0, 0, 0, 0]
    cdef const int64_t* ip = &indices[0, 0, 0, 0, 0]
    cdef order_t* op = &out[0, 0, 0, 0, 0]
    with nogil:
        for k in prange(p.nitems, schedule="static", num_threads=num_threads):
            _scatter_set_item(xp, ip, op, &p, k)


def index_bounds(
    const int64_t[::1] indices,
    int64_t[:, ::1] bounds,
    int num_threads,
):
    """bounds[b] = (min, max) of block b of indices, the blocks len(bounds) equal slices (an
    empty one gives (int64 max, int64 min)). The check of user indices before a scatter:
    NumPy's min and max read a (32, 64, 56, 56) int64 array twice on one thread (3 ms)."""
    cdef Py_ssize_t n = indices.shape[0], nblocks = bounds.shape[0]
    cdef Py_ssize_t size = (n + nblocks - 1) // nblocks
    cdef Py_ssize_t b, i
    cdef int64_t lo, hi, v
    with nogil:
        for b in prange(nblocks, schedule="static", num_threads=num_threads):
            lo = 0x7FFFFFFFFFFFFFFF
            hi = -lo - 1
            for i in range(b * size, min(n, (b + 1) * size)):
                v = indices[i]
                lo = v if v < lo else lo
                hi = v if v > hi else hi
            bounds[b, 0] = lo
            bounds[b, 1] = hi


# ----------------------------------------------------------------------------------------------
# Max backward without indices: the forward's argmax and the scatter in one pass

def max_scatter_recomputed(
    const real_t[:, :, :, :, :] x,
    const real_t[:, :, :, :, :] grad_output,
    real_t[:, :, :, :, :] grad_input,
    const int64_t[:, ::1] taps0,
    const int64_t[:, ::1] taps1,
    const int64_t[:, ::1] taps2,
    const int64_t[:, ::1] windows,
    bint stream,
    int num_threads,
):
    """scatter_add(grad_output, argmax of each window of x, grad_input) without materialising
    the argmax: each scatter item (one pooled plane of one outer index and inner block) finds
    its windows' argmax row by row with the forward's kernel into thread-local rows and adds
    grad_output at once, in the same order as scatter_add, so the two agree bit for bit."""
    cdef Plan p = _make_plan(x.shape, x.strides, sizeof(real_t), grad_output.shape,
                             grad_output.strides, sizeof(real_t), taps0, taps1, taps2, windows,
                             sizeof(real_t), num_threads)
    cdef ScatterPlan q = _scatter_plan(grad_output.shape, grad_output.strides, sizeof(real_t),
                                       grad_output.strides, grad_input.shape, grad_input.strides,
                                       sizeof(double), stream, num_threads)
    cdef Py_ssize_t plane_bytes = _scratch_stride(q.plane * q.block * sizeof(double))
    cdef Py_ssize_t argmax_bytes = _argmax_scratch_bytes(&p, sizeof(real_t))
    cdef Py_ssize_t row_bytes = _scratch_stride(p.o2 * p.block * sizeof(int64_t))
    cdef Py_ssize_t k, stride = plane_bytes + argmax_bytes + 2 * row_bytes
    cdef char* scratch = <char*>malloc(stride * num_threads)
    cdef char* mine = NULL
    cdef ArgmaxScratch s
    cdef const real_t* xp = &x[0, 0, 0, 0, 0]
    cdef const real_t* gp = &grad_output[0, 0, 0, 0, 0]
    cdef real_t* op = &grad_input[0, 0, 0, 0, 0]
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=num_threads):
            mine = scratch + stride * omp_get_thread_num()
            s = _argmax_scratch(&p, sizeof(real_t), mine + plane_bytes)
            for k in prange(q.nitems, schedule="static"):
                _recomputed_scatter_item(xp, gp, op, &p, &q, k, &s, <double*>mine,
                                         <real_t*>(mine + plane_bytes + argmax_bytes),
                                         <int64_t*>(mine + plane_bytes + argmax_bytes + row_bytes))
            cypool_stream_fence()
    finally:
        free(scratch)


cdef inline void _scatter_line(double* plane, const int64_t* at, const real_t* g, Py_ssize_t n,
                               Py_ssize_t gs) noexcept nogil:
    """plane[at[i]] += g[i * gs] for i < n, in order."""
    cdef Py_ssize_t i
    for i in range(n):
        plane[at[i]] += <double>g[i * gs]


cdef void _recomputed_scatter_item(const real_t* x, const real_t* g, real_t* gin, const Plan* p,
                                   const ScatterPlan* q, Py_ssize_t k, const ArgmaxScratch* s,
                                   double* plane, real_t* values, int64_t* at) noexcept nogil:
    """Scatter item k of max_scatter_recomputed. values and at hold one output row's maxima
    and argmaxes, (o2, p.block) each."""
    cdef Py_ssize_t cb = k % q.nblocks, b = k // q.nblocks
    cdef Py_ssize_t c0 = cb * q.block, nct = min(q.block, q.inner - c0)
    cdef Py_ssize_t i0, i1, i2, ch, c, sub, nc, i
    cdef const real_t* gv
    cdef const int64_t* av
    cdef Item it
    for i in range(q.plane * nct):
        plane[i] = 0.0
    sub = c0
    while sub < c0 + nct:
        nc = min(p.block, c0 + nct - sub)
        for i0 in range(p.o0):
            for i1 in range(p.o1):
                for ch in range(p.nchunks):
                    it = _item_at(p, b, i0, i1, sub, nc, ch)
                    _max_index_item(x, p, &it, s, values, nc, 1, at, nc, 1)
                gv = g + b * q.vs0 + i0 * q.vs1 + i1 * q.vs2 + sub * q.vs4
                if nct == 1:
                    _scatter_line(plane, at, gv, p.o2, q.vs3)
                    continue
                for i2 in range(p.o2):
                    av = at + i2 * nc
                    for c in range(nc):
                        plane[av[c] * nct + sub - c0 + c] += <double>gv[i2 * q.vs3 + c * q.vs4]
        sub += nc
    _store_plane(gin + b * q.os0 + c0 * q.os4, q, plane, nct)
