"""Helpers shared by the test modules: dtype and tolerance tables, hypothesis settings and
strategies, value and view makers, closeness and error-message assertions, finite differences
and torch autograd.

Imported as ``from support import ...`` (like ``reference``). It never imports cypool, so the
checks of the references (``test_reference_backward.py``) can use it too.
"""

import math
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume
from hypothesis import strategies as st

from reference import MAX_DTYPES, ref_geometry

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The fuzzing profiles: CI runs every property test with its own example count; CYPOOL_FUZZ=long
# multiplies them all by FUZZ_SCALE (about 39,000 examples across the ops, forward and backward).
FUZZ_SCALE = 4 if os.environ.get("CYPOOL_FUZZ", "").strip().lower() == "long" else 1


def examples(n: int) -> int:
    """max_examples of a property test under the current fuzzing profile."""
    return n * FUZZ_SCALE

FLOAT_DTYPES = tuple(np.dtype(d) for d in ("float16", "float32", "float64"))
INT_DTYPES = tuple(d for d in MAX_DTYPES if d.kind in "iu")
BAD_DTYPES = [np.bool_, np.complex64, np.complex128]

# assert_close: relative slack per result dtype, and absolute slack for results rounded to the
# result dtype near its underflow
RTOL = {np.dtype("float16"): 1e-2, np.dtype("float32"): 1e-6, np.dtype("float64"): 1e-12}
ATOL = {np.dtype("float16"): 1e-6, np.dtype("float32"): 1e-37, np.dtype("float64"): 0.0}
# cypool against torch's float64 results
TORCH_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ================================================================================ values, views

seeds = st.integers(0, 2 ** 32 - 1)
views = st.lists(st.sampled_from(["flip", "channels_last", "transpose", "step", "broadcast"]),
                 max_size=2)
views_no_bcast = st.lists(st.sampled_from(["flip", "channels_last", "transpose", "step"]),
                          max_size=2)

FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, -np.inf)


def _sprinkle(rng, v, specials):
    """Overwrite about a fifth of the flat array ``v`` with values drawn from ``specials``."""
    mask = rng.random(v.size) < 0.2
    v[mask] = rng.choice(specials, mask.sum())


def make_values(rng, shape, dtype, mode, *, scale=3, int_bound=None, float_specials=True,
                int_special_bounds=False, int_special_limits=False):
    """Values of ``dtype`` and ``shape``. ``mode``: 'random'; 'ties' (integers in [-3, 3]);
    'zeros' (floats: about 70% zeros, so whole zero windows next to non-zero ones); 'special'
    (floats, with ``float_specials``: NaN, +-inf and +-0 sprinkled in; integers: the ends of the
    drawn range with ``int_special_bounds`` and the dtype's min and max with
    ``int_special_limits`` sprinkled in).

    Random floats are standard normal times ``scale``; random integers span the whole dtype, or
    ``[-int_bound, int_bound]`` (clipped to the dtype) when ``int_bound`` is given."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if dtype.kind == "f":
        if mode == "ties":
            v = rng.integers(-3, 4, size).astype(np.float64)
        elif mode == "zeros":
            v = rng.standard_normal(size) * scale * (rng.random(size) < 0.3)
        else:
            v = rng.standard_normal(size) * scale
        if mode == "special" and float_specials:
            _sprinkle(rng, v, np.array(FLOAT_SPECIALS))
        return v.astype(dtype).reshape(shape)
    info = np.iinfo(dtype)
    if mode == "ties":
        lo, hi = max(info.min, -3), 3
    elif int_bound is not None:
        lo, hi = max(info.min, -int_bound), min(info.max, int_bound)
    else:
        lo, hi = info.min, info.max
    v = rng.integers(lo, hi, size, dtype=dtype, endpoint=True)
    specials = ([lo, hi] if int_special_bounds else []) + \
        ([info.min, info.max] if int_special_limits else [])
    if mode == "special" and specials:
        _sprinkle(rng, v, np.array(specials, dtype=dtype))
    return v.reshape(shape)


def make_view(x, transforms, rng):
    """A view with the values of ``x`` (except 'broadcast', which repeats a slice) and strides
    of another kind: 'flip' negative, 'channels_last' / 'transpose' permuted, 'step' stepped
    with an offset (the skipped elements hold garbage), 'broadcast' zero (read-only)."""
    for t in transforms:
        if x.ndim == 0 or x.size == 0:
            break
        ax = int(rng.integers(x.ndim))
        if t == "broadcast":
            x = np.broadcast_to(np.take(x, [0], axis=ax), x.shape)
        elif t == "flip":
            x = np.flip(np.flip(x, ax).copy(), ax)
        elif t == "channels_last":
            x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, ax, -1)), -1, ax)
        elif t == "transpose":
            perm = rng.permutation(x.ndim)
            x = np.ascontiguousarray(x.transpose(perm)).transpose(np.argsort(perm))
        elif t == "step":
            big_shape = list(x.shape)
            big_shape[ax] = 2 * big_shape[ax] + 1
            fill = np.nan if x.dtype.kind == "f" else np.iinfo(x.dtype).max
            big = np.full(big_shape, fill, dtype=x.dtype)
            sl = [slice(None)] * x.ndim
            sl[ax] = slice(1, None, 2)
            big[tuple(sl)] = x
            x = big[tuple(sl)]
    return x


def make_grad(rng, shape, dtype, transforms):
    """A random grad_output of ``dtype``, seen through ``make_view(..., transforms)``."""
    g = (rng.standard_normal(shape) * 2).astype(dtype)
    return make_view(g, transforms, rng)


# ================================================================================ window geometry


def ref_kwargs(kwargs):
    """cypool window kwargs completed with the defaults, for the references."""
    kw = dict(stride=None, padding=0, dilation=1, axes=None, ceil_mode=False)
    kw.update(kwargs)
    return kw


def geometry_or_none(shape, kwargs):
    """The reference geometry of a window pooling call, or None where the reference refuses it."""
    kw = ref_kwargs(kwargs)
    try:
        return ref_geometry(shape, kw["kernel_size"], kw["stride"], kw["padding"],
                            kw["dilation"], kw["axes"], kw["ceil_mode"])
    except ValueError:
        return None


def draw_pooled_axes(draw, max_ndim):
    """(ndim, axes): 1 to 3 distinct pooled axes of 1 to ``max_ndim`` dims, in any order, each
    one negative or not."""
    ndim = draw(st.integers(1, max_ndim))
    naxes = draw(st.integers(1, min(3, ndim)))
    axes = list(draw(st.permutations(range(ndim)))[:naxes])
    axes = [a - ndim if draw(st.booleans()) else a for a in axes]
    return ndim, axes


def trailing_axes(axes, ndim):
    """Whether ``axes`` are the last ``len(axes)`` dims in increasing order (the default)."""
    return [a % ndim for a in axes] == list(range(ndim - len(axes), ndim))


def draw_window(draw, *, max_ndim, max_stride, max_batch, spans, max_elements):
    """A random window geometry (that may still be invalid) for the ``st.composite`` strategies:
    a dict of shape, axes (as drawn), per-axis kernel sizes ks, strides ss, dilations ds, the
    padding form ('int', 'tuple', 'pairs', 'same', 'valid', 'default') and padding as passed.

    1-3 pooled axes of 1 to ``max_ndim`` dims, strides up to ``max_stride``, batch sizes up to
    ``max_batch``, pooled sizes up to ``spans[naxes]`` above the least a window needs, at most
    ``max_elements`` elements."""
    ndim, axes = draw_pooled_axes(draw, max_ndim)
    naxes = len(axes)
    ks, ss, ds = [], [], []
    for _ in range(naxes):
        ks.append(draw(st.integers(1, 4 if naxes < 3 else 3)))
        ds.append(draw(st.integers(1, 3)) if draw(st.integers(0, 2)) == 0 else 1)
        ss.append(draw(st.integers(1, max_stride)))
    exts = [d * (k - 1) + 1 for k, d in zip(ks, ds)]
    form = draw(st.sampled_from(["int", "tuple", "pairs", "same", "valid", "default"]))
    if form == "int":
        p = draw(st.integers(0, min(e // 2 for e in exts)))
        padding, pads = p, [(p, p)] * naxes
    elif form == "tuple":
        ps = [draw(st.integers(0, e // 2)) for e in exts]
        padding, pads = tuple(ps), [(p, p) for p in ps]
    elif form == "pairs":
        pads = [(draw(st.integers(0, e // 2)), draw(st.integers(0, e // 2))) for e in exts]
        padding = tuple(pads)
    elif form == "same":
        padding, pads = "same", None
    else:
        padding, pads = (0 if form == "default" else "valid"), [(0, 0)] * naxes
    shape = [draw(st.integers(1, max_batch)) for _ in range(ndim)]
    for i, a in enumerate(axes):
        lo = 1 if pads is None else max(1, exts[i] - pads[i][0] - pads[i][1])
        shape[a] = draw(st.integers(lo, lo + spans[naxes]))
    assume(math.prod(shape) <= max_elements)
    return dict(shape=tuple(shape), ndim=ndim, axes=axes, ks=ks, ss=ss, ds=ds, form=form,
                padding=padding)


def add_window_kwargs(draw, kwargs, w):
    """Add kernel_size, stride, dilation and padding of the ``draw_window`` result ``w`` to
    ``kwargs`` (which holds 'axes' or not) in the forms a user may pass them: an int where all
    axes agree (kernel_size only with axes), left out at the default unless drawn otherwise."""
    ks, ss, ds = w["ks"], w["ss"], w["ds"]
    if "axes" in kwargs and len(set(ks)) == 1 and draw(st.booleans()):
        kwargs["kernel_size"] = ks[0]
    else:
        kwargs["kernel_size"] = tuple(ks)
    if ss != ks or draw(st.booleans()):
        kwargs["stride"] = ss[0] if len(set(ss)) == 1 and draw(st.booleans()) else tuple(ss)
    if ds != [1] * len(ds) or draw(st.booleans()):
        kwargs["dilation"] = ds[0] if len(set(ds)) == 1 and draw(st.booleans()) else tuple(ds)
    if w["form"] != "default" or draw(st.booleans()):
        kwargs["padding"] = w["padding"]
    return kwargs


@st.composite
def window_cases(draw, max_elements=400):
    """(shape, kwargs) of a random window geometry of at most max_elements elements: 1-4
    dims, 1-3 pooled axes in any order (negative allowed), every padding form, dilation,
    ceil_mode. The geometry may be invalid."""
    w = draw_window(draw, max_ndim=4, max_stride=3, max_batch=3, spans={1: 10, 2: 5, 3: 3},
                    max_elements=max_elements)
    kwargs = {}
    if not trailing_axes(w["axes"], w["ndim"]) or draw(st.booleans()):
        kwargs["axes"] = tuple(w["axes"])
    add_window_kwargs(draw, kwargs, w)
    if draw(st.booleans()):
        kwargs["ceil_mode"] = True
    return w["shape"], kwargs


def draw_torch_window(draw, op, *, max_kernel, extra, max_channels):
    """A 1-d or 2-d window geometry that torch accepts for ``op`` ('max', 'avg' or 'lp') on an
    (N, C, *spatial) input: padding at most k // 2 (none for lp), dilation only for max; windows
    of padding only, and for lp in ceil mode partial windows (torch's lp_pool divides them
    wrongly), are assumed away. Spatial sizes are up to ``extra[rank]`` above the least a window
    needs. Returns (shape, ks, ss, ps, ds, ceil_mode, geo) with tuples ks, ss, ps, ds."""
    rank = draw(st.integers(1, 2))
    ks, ss, ps, ds, sizes = [], [], [], [], []
    for _ in range(rank):
        k = draw(st.integers(1, max_kernel))
        d = draw(st.integers(1, 2)) if op == "max" else 1
        p = 0 if op == "lp" else draw(st.integers(0, k // 2))
        e = d * (k - 1) + 1
        lo = max(1, e - 2 * p)
        sizes.append(draw(st.integers(lo, lo + extra[rank])))
        ks.append(k), ss.append(draw(st.integers(1, 3))), ps.append(p), ds.append(d)
    ceil_mode = draw(st.booleans())
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, max_channels)), *sizes)
    axes = tuple(range(2, 2 + rank))
    try:
        geo = ref_geometry(shape, tuple(ks), tuple(ss), tuple(ps), tuple(ds), axes, ceil_mode)
    except ValueError:
        assume(False)
    if op == "lp" and ceil_mode:
        full = ref_geometry(shape, tuple(ks), tuple(ss), 0, 1, axes, False)
        assume(full.out_sizes == geo.out_sizes)
    return shape, tuple(ks), tuple(ss), tuple(ps), tuple(ds), ceil_mode, geo


# ================================================================================ segments


def random_offsets(rng, n, b):
    """b + 1 sorted segment offsets from 0 to n, the inner ones random (empty segments likely
    when b is large against n); b == 0 only with n == 0."""
    assert b > 0 or n == 0, "no segment cannot hold rows"
    inner = np.sort(rng.integers(0, n + 1, max(b - 1, 0)))
    return np.concatenate([[0], inner, [n]])[:b + 1].astype(np.int64)


def ids_of(offsets):
    """The segment id of every row of the segments given by ``offsets`` (int64, shape (N,))."""
    offsets = np.asarray(offsets, np.int64)
    return np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))


# ================================================================================ assertions


def assert_close(got, want, mag, dtype):
    """``got`` (of ``dtype``) against the float64 reference ``want``; ``mag`` bounds the sum of
    |terms| of each element (the reference run on absolute values), which bounds cancellation."""
    dtype = np.dtype(dtype)
    got = np.asarray(got)
    assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    assert got.shape == np.shape(want), f"shape {got.shape}, expected {np.shape(want)}"
    g64 = got.astype(np.float64)
    want = np.asarray(want, dtype=np.float64)
    bound = RTOL[dtype] * (np.abs(want) + mag) + ATOL[dtype]
    bad = ~(np.abs(g64 - want) <= bound)
    if bad.any():
        where = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} of {bad.size} elements differ; first at {where}: "
                             f"got {g64[where]!r}, want {want[where]!r} (dtype {dtype})")


def assert_grad_close(got, want, mag, dtype):
    """``assert_close`` for a gradient, which must be an ndarray."""
    assert isinstance(got, np.ndarray)
    assert_close(got, want, mag, dtype)


def assert_message(excinfo, *patterns):
    """The message of the exception caught in ``excinfo`` matches every regex in ``patterns``."""
    msg = str(excinfo.value)
    for p in patterns:
        assert re.search(p, msg), f"message {msg!r} does not match {p!r}"


# ================================================================================ gradients


def numgrad(f, x, g, h):
    """Central differences of ``sum(g * f(x))`` with respect to every element of ``x``."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + h
        fp = float(np.sum(g * f(x)))
        x[i] = old - h
        fm = float(np.sum(g * f(x)))
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def torch_grad(fn, x, g):
    """(fn(x), gradient of sum(g * fn(x))) by torch autograd, skipping the test without torch.
    Computed in float64: float32 cases are compared with the exact gradient, not with torch's
    float32 accumulation."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    out = fn(t)
    out.backward(torch.tensor(np.asarray(g, dtype=np.float64)))
    return out.detach().numpy(), t.grad.numpy()


def torch_avg_pool(k, s, p, ceil_mode, count_include_pad, divisor_override):
    """torch's avg pooling of (N, C, *spatial) with 1 or 2 spatial dims (k, s, p tuples), as a
    function of the tensor. avg_pool1d has no divisor_override: 1-d goes through avg_pool2d on a
    unit axis."""
    F = pytest.importorskip("torch").nn.functional
    if len(k) == 1:
        def fn(t):
            return F.avg_pool2d(t[:, :, None, :], (1, k[0]), (1, s[0]), (0, p[0]), ceil_mode,
                                count_include_pad, divisor_override)[:, :, 0, :]
    else:
        def fn(t):
            return F.avg_pool2d(t, k, s, p, ceil_mode, count_include_pad, divisor_override)
    return fn


def torch_lp_pool(norm_type, k, s, ceil_mode):
    """torch's lp pooling of (N, C, *spatial) with 1 or 2 spatial dims (k, s tuples), as a
    function of the tensor."""
    F = pytest.importorskip("torch").nn.functional
    if len(k) == 1:
        def fn(t):
            return F.lp_pool1d(t, norm_type, k[0], s[0], ceil_mode)
    else:
        def fn(t):
            return F.lp_pool2d(t, norm_type, k, s, ceil_mode)
    return fn


def to_layout(a, channels_last):
    """An (N, C, *spatial) array as is, or as an (N, *spatial, C) view."""
    return np.moveaxis(a, 1, -1) if channels_last else a


def layout_axes(rank, channels_last):
    """The spatial axes of ``to_layout``'s result for ``rank`` spatial dims."""
    return tuple(range(1, rank + 1)) if channels_last else tuple(range(2, rank + 2))


def arrays_in(obj):
    """Every ndarray in ``obj`` (call arguments, nested in tuples / lists / dicts)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from arrays_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from arrays_in(o)


def draw_chunks(draw, shape):
    """A random dask chunking of ``shape`` (for ``st.composite`` strategies): 1 to 4 chunks of
    random sizes per axis."""
    chunks = []
    for n in shape:
        cuts = draw(st.lists(st.integers(1, max(1, n - 1)), max_size=3)) if n > 1 else []
        cuts = sorted(set(cuts))
        chunks.append(tuple(b - a for a, b in zip([0] + cuts, cuts + [n])) if n else (0,))
    return tuple(chunks)


# Max kernels reduce a window's contiguous input rows two at a time (values and argmax):
# windows of 2, 3 and 4 rows, as (shape, kernel, stride, dilation, axes).
ROW_PAIRING_CASES = [
    ((2, 5, 6), (3, 3), None, 1, (1, 2)),              # 3 rows: a pair and a leftover row
    ((2, 4, 6), (2, 3), (1, 2), 1, (1, 2)),            # 2 rows: one pair, stride 2 along rows
    ((2, 3, 4, 6), (2, 2, 2), None, 1, (1, 2, 3)),     # 4 rows, from two pooled axes
    ((2, 7, 8), (3, 2), (1, 1), (2, 3), (1, 2)),       # dilated rows and taps
]
