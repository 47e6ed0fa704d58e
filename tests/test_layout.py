"""Unit tests of cypool._layout: folding into (outer, n0, n1, n2, inner) views, result arrays."""

import numpy as np
import pytest

from cypool._layout import allocate_like, check_out, fold, foldable_order, memory_order


def covered(views, index):
    """Collect, per folded view tuple, the elements of array `index` it covers."""
    return np.concatenate([v[index].reshape(-1) for v in views])


def test_nchw_folds_into_one_outer_axis_without_copy():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = np.empty((2, 3, 2, 5), np.float32)
    views = list(fold([x, out], (2,)))
    assert len(views) == 1
    xv, ov = views[0]
    assert xv.shape == (6, 1, 1, 4, 5)
    assert np.shares_memory(xv, x)
    assert not xv.flags.writeable and ov.flags.writeable


def test_channels_last_becomes_inner():
    x = np.zeros((2, 6, 7, 3), np.float64)
    out = np.zeros((2, 3, 3, 3), np.float64)
    (xv, ov), = fold([x, out], (1, 2))
    assert xv.shape == (2, 1, 6, 7, 3)
    assert xv.strides[-1] == 8
    assert ov.shape == (2, 1, 3, 3, 3)


def test_torch_style_channels_last_view_is_found():
    # NCHW shape with NHWC memory: the C axis (stride 1) is chosen as inner.
    base = np.zeros((2, 6, 7, 3), np.float32)
    x = base.transpose(0, 3, 1, 2)
    out = allocate_like(x, (2, 3, 3, 3), np.float32)
    (xv, ov), = fold([x, out], (2, 3))
    assert xv.shape == (2, 1, 6, 7, 3)
    assert ov.strides[-1] == 4


def test_unfoldable_batch_axes_are_looped_without_copy():
    x = np.arange(4 * 6 * 5, dtype=np.int32).reshape(4, 6, 5)[:, :3]  # (4, 3, 5), rows 3-5 skipped
    out = np.empty((4, 3, 5), np.int32)
    views = list(fold([x, out], (2,)))
    assert len(views) == 4
    got = covered(views, 0)
    np.testing.assert_array_equal(np.sort(got), np.sort(x.reshape(-1)))
    for xv, _ in views:
        assert np.shares_memory(xv, x)


def test_negative_and_zero_strides_fold_in_place():
    base = np.arange(24.0).reshape(2, 3, 4)
    x = base[:, :, ::-1]
    (xv, _), = fold([x, np.empty_like(x)], (2,))
    assert xv[0, 0, 0, 0, 0] == x[0, 0, 0]
    b = np.broadcast_to(np.arange(5.0), (3, 4, 5))
    (bv, _), = fold([b, np.empty((3, 4, 5))], (2,))
    assert 0 in bv.strides


@pytest.mark.parametrize("shape, out_shape", [
    ((1, 4, 5, 6), (1, 4, 2, 3)),
    ((2, 1, 5, 6), (2, 1, 2, 3)),
    ((1, 1, 1), (1, 1, 1)),
    ((3, 1, 4), (3, 2, 4)),      # a size-1 axis of x that grows (padding): not the fast path
    ((1, 4, 5), (2, 4, 5)),
])
def test_allocate_like_of_c_contiguous_with_size_one_axes(shape, out_shape):
    """A C-contiguous x with size-1 axes: the result is laid out as the general rule says,
    its axes ordered as memory_order orders x's (so a growing size-1 axis goes innermost)."""
    x = np.zeros(shape, np.float32)
    y = allocate_like(x, out_shape, np.float64)
    assert y.shape == out_shape and y.dtype == np.float64
    order = memory_order(x.shape, x.strides)
    expected = np.empty([out_shape[a] for a in order]).transpose(np.argsort(order))
    big = [a for a in range(len(out_shape)) if out_shape[a] > 1]
    assert [y.strides[a] for a in big] == [expected.strides[a] for a in big]


def test_allocate_like_keeps_memory_order():
    x = np.zeros((2, 5, 6, 3)).transpose(0, 3, 1, 2)
    y = allocate_like(x, (2, 3, 2, 2), np.float32)
    assert y.shape == (2, 3, 2, 2)
    assert np.argsort(y.strides).tolist() == np.argsort(x.strides).tolist()


def test_check_out_rules():
    x = np.zeros((2, 3))
    check_out(np.zeros((2, 2)), (2, 2), np.float64, [x])
    with pytest.raises(ValueError, match="shape"):
        check_out(np.zeros((2, 3)), (2, 2), np.float64, [x])
    with pytest.raises(ValueError, match="dtype"):
        check_out(np.zeros((2, 2), np.float32), (2, 2), np.float64, [x])
    ro = np.zeros((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        check_out(ro, (2, 2), np.float64, [x])
    with pytest.raises(ValueError, match="overlaps"):
        check_out(x[:, :2], (2, 2), np.float64, [x])
    with pytest.raises(TypeError, match="out"):
        check_out([[0.0, 0.0]], (1, 2), np.float64, [x])


def test_strided_view_in_place_for_every_kind_of_array():
    from cypool._layout import strided_view

    x = np.arange(12.0).reshape(3, 4)
    cases = [
        (x, (2, 2), (32, 8)),                  # C-contiguous: the ndarray constructor
        (x[:, ::-1], (2, 2), (32, -8)),         # negative strides: as_strided
        (x.T, (2, 2), (8, 32)),                 # not C-contiguous
        (x[:, 1:3], (3, 2), (32, 8)),
        (np.broadcast_to(x[0], (5, 4)), (5, 4), (0, 8)),
    ]
    for arr, shape, strides in cases:
        for writeable in (False, True):
            v = strided_view(arr, shape, strides, writeable)
            assert v.shape == shape and v.strides == strides
            assert np.shares_memory(v, arr) and v.flat[0] == arr.flat[0]
            assert v.flags.writeable == (writeable and arr.flags.writeable)
    ro = x.copy()
    ro.flags.writeable = False
    assert not strided_view(ro, (2, 2), (32, 8), True).flags.writeable


def test_merged_trailing_from_strides():
    from cypool._layout import merged_trailing

    assert merged_trailing((2, 3, 4), (96, 32, 8), 8, 2) == ((2, 12), (96, 8))
    assert merged_trailing((2, 3, 4), (96, 64, 8), 8, 2) is None      # rows skipped
    assert merged_trailing((2, 1, 4), (32, 999, 8), 8, 2) == ((2, 4), (32, 8))
    assert merged_trailing((2, 3, 4), (96, -32, -8), 8, 2) == ((2, 12), (96, -8))
    assert merged_trailing((2, 1, 1), (8, 8, 8), 8, 2) == ((2, 1), (8, 8))


# ---------------------------------------------------------------- batch axes that do not fold


class CountingKernels:
    """A stand-in for a compiled kernel module that counts the kernel calls made through it."""

    def __init__(self, module):
        self.module = module
        self.calls = 0

    def __getattr__(self, name):
        kernel = getattr(self.module, name)

        def call(*args):
            self.calls += 1
            return kernel(*args)
        return call


def test_foldable_order_moves_batch_axes_from_between_pooled_axes():
    # N H C W (C-contiguous) pooled over H and W: C lies between them in memory.
    shape = (2, 5, 3, 7)
    strides = tuple(s * 8 for s in (105, 21, 7, 1))
    assert foldable_order(shape, strides, (1, 3)) == [0, 2, 1, 3]
    # NCHW and NHWC already fold
    assert foldable_order((2, 3, 5, 7), (840, 280, 56, 8), (2, 3)) == [0, 1, 2, 3]
    assert foldable_order((2, 5, 7, 3), (840, 168, 24, 8), (1, 2)) == [0, 1, 2, 3]


@pytest.mark.parametrize("case", ["strided", "between", "strided-channels-last"])
def test_batch_axes_that_do_not_fold_take_one_kernel_call(monkeypatch, case):
    """Batch axes whose strides fold into no other were once looped over in Python, one
    kernel call (and one OpenMP region) per index: (64, 32, 32, 4, 4) strided views took 2048
    calls and 3x the time of copying first. In small pieces they take one call over copies."""
    import cypool
    from cypool import _window

    rng = np.random.default_rng(0)
    if case == "strided":
        x, kw = rng.standard_normal((16, 12, 8, 4, 4))[::2, ::3, ::2], dict(kernel_size=(2, 2))
    elif case == "between":  # N H C W pooled over H and W
        x, kw = rng.standard_normal((6, 10, 5, 12)), dict(kernel_size=(2, 3), axes=(1, 3))
    else:
        x = rng.standard_normal((6, 4, 10, 10, 9))[::2, ::3, :, :, ::3]
        kw = dict(kernel_size=(2, 2), axes=(2, 3))
    want = cypool.max_pool(np.ascontiguousarray(x), **kw, return_indices=True)
    want_avg = cypool.avg_pool(np.ascontiguousarray(x), **kw)
    counting = CountingKernels(_window._window_kernels)
    monkeypatch.setattr(_window, "_window_kernels", counting)
    got = cypool.max_pool(x, **kw, return_indices=True)
    got_avg = cypool.avg_pool(x, **kw)
    assert counting.calls == 2
    for g, w in zip((*got, got_avg), (*want, want_avg)):
        assert np.array_equal(g, w)


def test_batch_axes_that_do_not_fold_into_a_users_out():
    import cypool

    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 12, 8, 4, 4))[::2, ::3, ::2]
    out = np.full((16, 8, 8, 2, 2), np.nan)[::2, ::2, ::2]
    want = cypool.avg_pool(np.ascontiguousarray(x), (2, 2))
    assert cypool.avg_pool(x, (2, 2), out=out) is out
    assert np.array_equal(out, want)
