"""Non-native byte order: for every public function, an input array in the other byte
order (``a.astype(a.dtype.newbyteorder())``, the same values) gives exactly the result of the
native input, or a TypeError; never other values. Covered: x, grad_output, indices, mask,
lengths, offsets, scores, one at a time and all together, and out= (refused with
ValueError/TypeError, or filled with the right values)."""

import numpy as np
import pytest

import cypool


def _swapped(a):
    """a in the other byte order, same values (None when a's dtype has no byte order)."""
    a = np.asarray(a)
    if a.dtype.byteorder == "|":
        return None
    s = a.astype(a.dtype.newbyteorder())
    assert not s.dtype.isnative and np.array_equal(s, a, equal_nan=True)
    return s


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _assert_same(got, want, what):
    got, want = _as_tuple(got), _as_tuple(want)
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, np.ndarray), what
        assert g.shape == w.shape, f"{what}: result {k} has shape {g.shape}, not {w.shape}"
        # the same type in either byte order (cypool returns native arrays)
        assert g.dtype.newbyteorder("=") == w.dtype, f"{what}: result {k} has dtype {g.dtype}"
        native = g.astype(w.dtype)
        assert native.tobytes() == np.ascontiguousarray(w).tobytes(), \
            f"{what}: result {k} differs from the native input's result"


# ================================================================================ cases

rng = np.random.default_rng(11)
X = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
X64 = X.astype(np.float64)
X16 = X.astype(np.float16)
XI = rng.integers(-300, 300, X.shape).astype(np.int16)
XU = rng.integers(0, 60000, X.shape).astype(np.uint16)
Y, IDX = cypool.max_pool(X, (3, 3), 2, 1, return_indices=True)
G = rng.standard_normal(Y.shape).astype(np.float32)
GA = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
_, AIDX = cypool.adaptive_max_pool(X, (3, 2), return_indices=True)
GG = rng.standard_normal((2, 3)).astype(np.float64)
_, GIDX = cypool.global_max_pool(X64, return_indices=True)
H = rng.standard_normal((3, 6, 5)).astype(np.float32)
MASK_INT = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.int32)
MASK_FLOAT = (MASK_INT * rng.random((3, 6)) * 3).astype(np.float32)
LENGTHS = np.array([3, 6, 0], np.int64)
SCORES = rng.standard_normal((3, 6)).astype(np.float32)
GH = rng.standard_normal((3, 5)).astype(np.float32)
_, SIDX = cypool.sequence_pool(H, MASK_INT, "max", return_indices=True)
VALUES = H.reshape(18, 5).astype(np.float64)
OFFSETS = np.array([0, 4, 4, 11, 18], np.int64)
VSCORES = rng.standard_normal(18).astype(np.float64)
GS = rng.standard_normal((4, 5)).astype(np.float64)
_, SEGIDX = cypool.segment_pool(VALUES, OFFSETS, "min", return_indices=True)

# name -> (arrays, call): `arrays` maps argument names to native arrays, call(arrays) runs the
# function on them (the case name starts with the public function's name).
CASES = {}


def case(name, arrays, call):
    CASES[name] = (arrays, call)


for xname, xv in [("float32", X), ("float64", X64), ("float16", X16), ("int16", XI),
                  ("uint16", XU)]:
    case(f"max_pool {xname}", dict(x=xv),
         lambda a: cypool.max_pool(a["x"], (3, 3), 2, 1, return_indices=True))
    case(f"avg_pool {xname}", dict(x=xv),
         lambda a: cypool.avg_pool(a["x"], (3, 2), 2, 1, count_include_pad=False))
    case(f"adaptive_max_pool {xname}", dict(x=xv),
         lambda a: cypool.adaptive_max_pool(a["x"], (3, 2), return_indices=True))
    case(f"adaptive_avg_pool {xname}", dict(x=xv),
         lambda a: cypool.adaptive_avg_pool(a["x"], (3, 2)))
    case(f"global_max_pool {xname}", dict(x=xv),
         lambda a: cypool.global_max_pool(a["x"], return_indices=True))
    case(f"global_avg_pool {xname}", dict(x=xv), lambda a: cypool.global_avg_pool(a["x"]))
    case(f"lp_pool {xname}", dict(x=xv), lambda a: cypool.lp_pool(a["x"], 2.5, (2, 3), 1))

case("max_pool1d", dict(x=X64), lambda a: cypool.max_pool1d(a["x"], 3, 2, 1, return_indices=True))
case("max_pool2d NHWC", dict(x=X), lambda a: cypool.max_pool2d(a["x"], 2, channels_last=True))
case("max_pool3d", dict(x=XI), lambda a: cypool.max_pool3d(a["x"], 2, 1))
case("avg_pool1d", dict(x=X), lambda a: cypool.avg_pool1d(a["x"], 3, 2, 1))
case("avg_pool2d", dict(x=X16), lambda a: cypool.avg_pool2d(a["x"], 3, 2, 1, divisor_override=4))
case("avg_pool3d", dict(x=X64), lambda a: cypool.avg_pool3d(a["x"], 2, 1, ceil_mode=True))
case("max_pool_backward indices", dict(g=G, x=X, indices=IDX),
     lambda a: cypool.max_pool_backward(a["g"], a["x"], (3, 3), 2, 1, indices=a["indices"]))
case("max_pool_backward recompute", dict(g=G, x=X),
     lambda a: cypool.max_pool_backward(a["g"], a["x"], (3, 3), 2, 1))
case("max_pool_backward int32 indices", dict(g=G.astype(np.float64), x=XI,
                                             indices=IDX.astype(np.int32)),
     lambda a: cypool.max_pool_backward(a["g"], a["x"], (3, 3), 2, 1, indices=a["indices"]))
case("avg_pool_backward", dict(g=G),
     lambda a: cypool.avg_pool_backward(a["g"], X.shape, (3, 3), 2, 1))
case("lp_pool_backward", dict(g=G, x=X),
     lambda a: cypool.lp_pool_backward(a["g"], a["x"], 2.5, (3, 3), 2, 1))
case("max_unpool", dict(x=Y, indices=IDX),
     lambda a: cypool.max_unpool(a["x"], a["indices"], (8, 7)))
case("max_unpool uint32 indices", dict(x=Y.astype(np.float64), indices=IDX.astype(np.uint32)),
     lambda a: cypool.max_unpool(a["x"], a["indices"], (8, 7)))
case("adaptive_avg_pool_backward", dict(g=GA),
     lambda a: cypool.adaptive_avg_pool_backward(a["g"], X.shape))
case("adaptive_max_pool_backward", dict(g=GA, x=X, indices=AIDX),
     lambda a: cypool.adaptive_max_pool_backward(a["g"], a["x"], (3, 2), indices=a["indices"]))
case("adaptive_max_pool_backward recompute", dict(g=GA, x=X),
     lambda a: cypool.adaptive_max_pool_backward(a["g"], a["x"], (3, 2)))
case("global_avg_pool_backward", dict(g=GG),
     lambda a: cypool.global_avg_pool_backward(a["g"], X.shape))
case("global_max_pool_backward", dict(g=GG, x=X64, indices=GIDX),
     lambda a: cypool.global_max_pool_backward(a["g"], a["x"], indices=a["indices"]))
case("global_max_pool_backward recompute", dict(g=GG, x=X64),
     lambda a: cypool.global_max_pool_backward(a["g"], a["x"]))

for mode in ("mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min", "cls", "last"):
    ri = mode in ("max", "min")
    case(f"sequence_pool {mode} int mask", dict(h=H, mask=MASK_INT),
         lambda a, mode=mode, ri=ri: cypool.sequence_pool(a["h"], a["mask"], mode,
                                                          return_indices=ri))
    case(f"sequence_pool {mode} float mask", dict(h=H, mask=MASK_FLOAT),
         lambda a, mode=mode: cypool.sequence_pool(a["h"], a["mask"], mode))
    case(f"sequence_pool {mode} lengths", dict(h=H, lengths=LENGTHS),
         lambda a, mode=mode: cypool.sequence_pool(a["h"], lengths=a["lengths"], mode=mode))
    case(f"sequence_pool_backward {mode}", dict(g=GH, h=H, mask=MASK_FLOAT),
         lambda a, mode=mode: cypool.sequence_pool_backward(a["g"], a["h"], a["mask"], mode))
    case(f"sequence_pool_backward {mode} lengths",
         dict(g=GH, h=H, lengths=LENGTHS.astype(np.int32)),
         lambda a, mode=mode: cypool.sequence_pool_backward(a["g"], a["h"], lengths=a["lengths"],
                                                            mode=mode))
case("sequence_pool attention", dict(h=H, mask=MASK_INT, scores=SCORES),
     lambda a: cypool.sequence_pool(a["h"], a["mask"], "attention", scores=a["scores"]))
case("sequence_pool_backward attention", dict(g=GH, h=H, mask=MASK_INT, scores=SCORES),
     lambda a: cypool.sequence_pool_backward(a["g"], a["h"], a["mask"], "attention",
                                             scores=a["scores"]))
case("sequence_pool_backward max indices", dict(g=GH, h=H, mask=MASK_INT, indices=SIDX),
     lambda a: cypool.sequence_pool_backward(a["g"], a["h"], a["mask"], "max",
                                             indices=a["indices"]))

for mode in ("sum", "mean", "mean_sqrt_len", "max", "min", "first", "last"):
    ri = mode in ("max", "min")
    case(f"segment_pool {mode}", dict(values=VALUES, offsets=OFFSETS),
         lambda a, mode=mode, ri=ri: cypool.segment_pool(a["values"], a["offsets"], mode,
                                                         return_indices=ri))
    case(f"segment_pool_backward {mode}",
         dict(g=GS, values=VALUES, offsets=OFFSETS.astype(np.int32)),
         lambda a, mode=mode: cypool.segment_pool_backward(a["g"], a["values"], a["offsets"], mode))
case("segment_pool attention", dict(values=VALUES, offsets=OFFSETS, scores=VSCORES),
     lambda a: cypool.segment_pool(a["values"], a["offsets"], "attention", scores=a["scores"]))
case("segment_pool_backward attention", dict(g=GS, values=VALUES, offsets=OFFSETS, scores=VSCORES),
     lambda a: cypool.segment_pool_backward(a["g"], a["values"], a["offsets"], "attention",
                                            scores=a["scores"]))
case("segment_pool_backward min indices", dict(g=GS, values=VALUES, offsets=OFFSETS,
                                               indices=SEGIDX),
     lambda a: cypool.segment_pool_backward(a["g"], a["values"], a["offsets"], "min",
                                            indices=a["indices"]))

PUBLIC = {n for n in cypool.__all__ if n != "__version__"}


def test_every_public_function_is_covered():
    covered = {name.split()[0] for name in CASES}
    assert covered == PUBLIC, sorted(PUBLIC ^ covered)


def _variants():
    """(case, swapped argument) pairs: each array argument alone, then all of them."""
    for name, (arrays, _) in CASES.items():
        swappable = [k for k, v in arrays.items() if _swapped(v) is not None]
        for k in swappable:
            yield name, k
        if len(swappable) > 1:
            yield name, "all"


@pytest.mark.parametrize("name, which", list(_variants()))
def test_non_native_input_gives_the_native_result_or_type_error(name, which):
    arrays, call = CASES[name]
    want = call(arrays)
    swapped = {k: (_swapped(v) if which in (k, "all") and _swapped(v) is not None else v)
               for k, v in arrays.items()}
    before = {k: v.copy() for k, v in swapped.items()}
    try:
        got = call(swapped)
    except TypeError:
        return
    _assert_same(got, want, f"{name} with non-native {which}")
    for k, v in swapped.items():  # inputs are never modified
        assert v.tobytes() == before[k].tobytes() and v.dtype == before[k].dtype


# ================================================================================ out=

OUT_CASES = {
    "max_pool": lambda out: cypool.max_pool(X, (3, 3), 2, 1, out=out),
    "max_pool indices": lambda out: cypool.max_pool(X, (3, 3), 2, 1, return_indices=True,
                                                    out=out),
    "avg_pool": lambda out: cypool.avg_pool(X64, (3, 3), 2, 1, out=out),
    "avg_pool int16": lambda out: cypool.avg_pool(XI, (3, 3), 2, 1, out=out),
    "avg_pool float16": lambda out: cypool.avg_pool(X16, (3, 3), 2, 1, out=out),
    "lp_pool": lambda out: cypool.lp_pool(X, 2.0, (3, 3), 2, 1, out=out),
    "max_pool2d": lambda out: cypool.max_pool2d(XI, 3, 2, 1, out=out),
    "avg_pool2d": lambda out: cypool.avg_pool2d(X, 3, 2, 1, out=out),
    "max_pool_backward": lambda out: cypool.max_pool_backward(G, X, (3, 3), 2, 1, out=out),
    "avg_pool_backward": lambda out: cypool.avg_pool_backward(G, X.shape, (3, 3), 2, 1, out=out),
    "lp_pool_backward": lambda out: cypool.lp_pool_backward(G, X, 2.0, (3, 3), 2, 1, out=out),
    "max_unpool": lambda out: cypool.max_unpool(Y, IDX, (8, 7), out=out),
    "adaptive_avg_pool": lambda out: cypool.adaptive_avg_pool(X, (3, 2), out=out),
    "adaptive_max_pool indices": lambda out: cypool.adaptive_max_pool(X, (3, 2),
                                                                      return_indices=True,
                                                                      out=out),
    "adaptive_avg_pool_backward": lambda out: cypool.adaptive_avg_pool_backward(GA, X.shape,
                                                                                out=out),
    "adaptive_max_pool_backward": lambda out: cypool.adaptive_max_pool_backward(GA, X, (3, 2),
                                                                                out=out),
    "global_avg_pool": lambda out: cypool.global_avg_pool(X64, out=out),
    "global_max_pool indices": lambda out: cypool.global_max_pool(X64, return_indices=True,
                                                                  out=out),
    "global_max_pool keepdims": lambda out: cypool.global_max_pool(XI, keepdims=True, out=out),
    "global_avg_pool_backward": lambda out: cypool.global_avg_pool_backward(GG, X.shape,
                                                                            out=out),
    "global_max_pool_backward": lambda out: cypool.global_max_pool_backward(GG, X64, out=out),
    "sequence_pool": lambda out: cypool.sequence_pool(H, MASK_INT, "mean", out=out),
    "sequence_pool indices": lambda out: cypool.sequence_pool(H, MASK_INT, "max",
                                                              return_indices=True, out=out),
    "sequence_pool_backward": lambda out: cypool.sequence_pool_backward(GH, H, MASK_INT, "mean",
                                                                        out=out),
    "sequence_pool_backward attention": lambda out: cypool.sequence_pool_backward(
        GH, H, MASK_INT, "attention", scores=SCORES, out=out),
    "segment_pool": lambda out: cypool.segment_pool(VALUES, OFFSETS, "sum", out=out),
    "segment_pool indices": lambda out: cypool.segment_pool(VALUES, OFFSETS, "min",
                                                            return_indices=True, out=out),
    "segment_pool_backward": lambda out: cypool.segment_pool_backward(GS, VALUES, OFFSETS,
                                                                      "mean", out=out),
    "segment_pool_backward attention": lambda out: cypool.segment_pool_backward(
        GS, VALUES, OFFSETS, "attention", scores=VSCORES, out=out),
}


def _out_variants():
    for name, f in OUT_CASES.items():
        n = len(_as_tuple(f(None)))
        for k in range(n):
            yield name, k
        if n > 1:
            yield name, "all"


@pytest.mark.parametrize("name, which", list(_out_variants()))
def test_non_native_out_is_refused_or_filled_correctly(name, which):
    f = OUT_CASES[name]
    want = _as_tuple(f(None))
    outs = []
    for k, w in enumerate(want):
        native = k != which and which != "all"
        dtype = w.dtype if native else w.dtype.newbyteorder()
        outs.append(np.full(w.shape, 7, dtype=dtype))
    out = outs[0] if len(outs) == 1 else tuple(outs)
    try:
        got = f(out)
    except (ValueError, TypeError) as e:
        assert "out" in str(e)
        return
    for g, o in zip(_as_tuple(got), outs):
        assert g is o
    _assert_same(tuple(outs), want, f"{name} into a non-native out[{which}]")
