"""Unit tests of cypool._global_call: which calls take the direct path, and that it gives
exactly what the general path (merge, fold, temporaries) gives, in the same layout."""

import numpy as np
import pytest

import cypool
from cypool import _global_call
from cypool._geometry import global_axes
from cypool._global_call import GlobalCall, _direct_plan
from cypool._layout import memory_order


def _plan(x, axes, keepdims=False, out=None, itemsizes=None):
    call = GlobalCall(x, axes, keepdims)
    if itemsizes is None:
        itemsizes = (x.itemsize,)
    return _direct_plan(x.shape, x.strides, x.itemsize, call.reduced, keepdims,
                        None if out is None else tuple(o.strides for o in out), itemsizes)


def _nhwc_as_nchw(rng):
    return rng.standard_normal((2, 5, 4, 3)).astype(np.float32).transpose(0, 3, 1, 2)


# Inputs of many layouts, the reduced axes of each, and whether the direct path takes them.
LAYOUTS = {
    "nchw": (lambda rng: rng.standard_normal((2, 3, 5, 4)).astype(np.float32), None, True),
    "nhwc": (lambda rng: rng.standard_normal((2, 5, 4, 3)).astype(np.float32), (1, 2), True),
    "nhwc as nchw": (_nhwc_as_nchw, None, True),
    "reversed planes": (
        lambda rng: rng.standard_normal((2, 3, 5, 4))[:, :, ::-1, ::-1], None, True),
    "broadcast planes": (
        lambda rng: np.broadcast_to(rng.standard_normal((2, 3, 1, 1)), (2, 3, 5, 4)), None,
        True),
    "reversed everything": (
        lambda rng: rng.standard_normal((2, 3, 5, 4))[::-1, ::-1, ::-1, ::-1], None, True),
    # N reversed, C not: they fold into no single outer axis; the general path loops over N.
    "reversed batch": (lambda rng: rng.standard_normal((2, 3, 5, 4))[::-1], None, False),
    # Broadcast rows: the reduced axes do not merge.
    "broadcast rows": (
        lambda rng: np.broadcast_to(rng.standard_normal((3, 1, 4)), (2, 3, 5, 4)), None, False),
    "middle axis": (lambda rng: rng.standard_normal((3, 4, 5)), 1, True),
    # Rows 0, 2, 4 of each plane: the two reduced axes do not merge.
    "sliced rows": (lambda rng: rng.standard_normal((2, 3, 6, 4))[:, :, ::2], None, False),
    # The first half of the channels: N and C fold into no single outer axis.
    "unfoldable batch": (lambda rng: rng.standard_normal((4, 6, 5, 5))[:, :3], None, False),
    "float16": (lambda rng: rng.standard_normal((2, 3, 5, 4)).astype(np.float16), None, False),
    "int16": (lambda rng: rng.integers(-50, 50, (2, 3, 5, 4)).astype(np.int16), None, False),
    "every axis": (lambda rng: rng.standard_normal((3, 4, 2)), (0, 1, 2), True),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_which_layouts_take_the_direct_path(name, monkeypatch):
    make, axes, direct = LAYOUTS[name]
    x = make(np.random.default_rng(0))
    taken = []
    run_direct = GlobalCall._run_direct

    def spy(self, *args):
        result = run_direct(self, *args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(GlobalCall, "_run_direct", spy)
    cypool.global_avg_pool(x, axes=axes)
    # float16 and integers are averaged through a float32 or float64 copy of x.
    assert taken == [bool(direct)]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("op", ["avg", "max", "argmax", "partial sums"])
def test_direct_path_matches_the_general_path(name, keepdims, op, monkeypatch):
    make, axes, _ = LAYOUTS[name]
    x = make(np.random.default_rng(1))
    if x.flags.writeable:
        x.setflags(write=False)  # the kernels read x in place, read-only or not

    def run():
        if op == "avg":
            return [cypool.global_avg_pool(x, axes=axes, keepdims=keepdims)]
        if op == "max":
            return [cypool.global_max_pool(x, axes=axes, keepdims=keepdims)]
        if op == "argmax":
            return list(cypool.global_max_pool(x, axes=axes, keepdims=keepdims,
                                               return_indices=True))
        call = GlobalCall(x, axes, True)
        return [_global_call_partial_sums(x, call.reduced)]

    direct = run()
    monkeypatch.setattr(GlobalCall, "_run_direct", lambda self, *args: None)
    general = run()
    reduced = GlobalCall(x, axes, keepdims).reduced
    for d, g in zip(direct, general):
        assert d.shape == g.shape and d.dtype == g.dtype
        np.testing.assert_array_equal(d, g)
        # The same memory order: both lay the result out like x.
        assert memory_order(d.shape, d.strides) == memory_order(g.shape, g.strides)
    expected = {"avg": lambda: x.astype(np.float64).mean(axis=reduced, keepdims=keepdims),
                "max": lambda: x.max(axis=reduced, keepdims=keepdims),
                "argmax": lambda: x.max(axis=reduced, keepdims=keepdims),
                "partial sums": lambda: x.astype(np.float64).sum(axis=reduced, keepdims=True)}
    np.testing.assert_allclose(direct[0].astype(np.float64), expected[op](), rtol=2e-3,
                               atol=1e-6)


def _global_call_partial_sums(x, reduced):
    from cypool._adaptive import global_partial_sums

    return global_partial_sums(x, reduced, None)


@pytest.mark.parametrize("out_layout", ["c", "transposed", "strided", "keepdims"])
def test_direct_path_with_out(out_layout, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    keepdims = out_layout == "keepdims"
    shape = (3, 4, 1, 1) if keepdims else (3, 4)
    results = []
    for forced_general in (False, True):
        if forced_general:
            monkeypatch.setattr(GlobalCall, "_run_direct", lambda self, *args: None)
        if out_layout == "transposed":
            out = np.full((4, 3), 7, np.float32).T
        elif out_layout == "strided":
            out = np.full((3, 8), 7, np.float32)[:, ::2]
        else:
            out = np.full(shape, 7, np.float32)
        assert cypool.global_avg_pool(x, keepdims=keepdims, out=out) is out
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], x.astype(np.float64).mean(axis=(2, 3),
                                                                      keepdims=keepdims),
                               rtol=1e-6)


def test_out_that_folds_unlike_x_takes_the_general_path():
    x = np.zeros((3, 4, 5, 6), np.float32)
    assert _plan(x, None, out=[np.empty((3, 4), np.float32)]) is not None
    assert _plan(x, None, out=[np.empty((4, 3), np.float32).T]) is None


def test_direct_views_read_x_in_place(monkeypatch):
    x = np.random.default_rng(3).standard_normal((2, 5, 4, 3)).astype(np.float32)
    seen = []

    def kernel(xv, out, scale, threads):
        seen.append(xv)
        out[...] = 0

    call = GlobalCall(x, (1, 2), False)
    f32 = np.dtype(np.float32)
    (result,) = call.run(kernel, f32, [_global_call.Result(f32, f32, "out")], None, None, 1.0)
    (xv,) = seen
    assert xv.shape == (2, 1, 1, 20, 3)
    assert np.shares_memory(xv, x)
    assert result.shape == (2, 3)


def test_cached_axes_still_refuse_bools_and_floats():
    assert global_axes(4, (1, 2)) == (1, 2)
    with pytest.raises(TypeError, match="axes"):
        global_axes(4, (True, 2))
    with pytest.raises(TypeError, match="axes"):
        global_axes(4, (1.0, 2))
    with pytest.raises(TypeError, match="axes"):
        cypool.global_avg_pool(np.zeros((2, 3, 4)), axes=(1.0, 2))
    assert global_axes(4, [2, -1]) == (2, 3)
    assert global_axes(4, (np.int64(3), 2)) == (2, 3)


def test_empty_batch_and_errors_on_the_direct_path():
    x = np.zeros((0, 3, 4, 4), np.float32)
    assert cypool.global_avg_pool(x).shape == (0, 3)
    assert cypool.global_max_pool(x, keepdims=True).shape == (0, 3, 1, 1)
    with pytest.raises(ValueError, match="size 0 on axis 2"):
        cypool.global_avg_pool(np.zeros((2, 3, 0, 4), np.float32))
    with pytest.raises(ValueError, match="out"):
        cypool.global_avg_pool(np.zeros((2, 3, 4, 4), np.float32),
                               out=np.empty((2, 3), np.float64))
