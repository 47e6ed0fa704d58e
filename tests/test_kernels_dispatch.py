"""The AVX2 and baseline builds of the pooling kernels give bit-identical results."""

import numpy as np
import pytest

import cypool
from cypool import _kernels, _window, _window_kernels

avx2 = pytest.importorskip("cypool._window_kernels_avx2")

CASES = [
    ("max_pool", dict(kernel_size=(3, 3), stride=2, padding=1)),
    ("max_pool", dict(kernel_size=(2, 2, 2), dilation=(1, 2, 1), ceil_mode=True)),
    ("avg_pool", dict(kernel_size=(3, 3), stride=1, padding=1)),
    ("avg_pool", dict(kernel_size=(2, 3), stride=(2, 1), padding=((0, 1), (1, 1)), ceil_mode=True,
                      count_include_pad=False)),
    ("lp_pool", dict(norm_type=2.0, kernel_size=(3, 3), stride=2)),
    ("lp_pool", dict(norm_type=1.5, kernel_size=(2,), stride=1)),
]


@pytest.mark.parametrize("op, kwargs", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avx2_matches_baseline_bit_for_bit(monkeypatch, op, kwargs, dtype, channels_last):
    rng = np.random.default_rng(7)
    ndim = len(kwargs["kernel_size"])
    shape = (3, 5) + (9,) * ndim
    x = rng.standard_normal(shape).astype(dtype)
    axes = tuple(range(2, 2 + ndim))
    if channels_last:
        x = np.moveaxis(x, 1, -1)
        axes = tuple(a - 1 for a in axes)
    results = []
    for module in (_window_kernels, avx2):
        monkeypatch.setattr(_window, "_window_kernels", module)
        results.append(getattr(cypool, op)(x, axes=axes, **kwargs))
    np.testing.assert_array_equal(results[0], results[1])
    assert results[0].tobytes() == results[1].tobytes()


def test_dispatch_reports_what_it_chose():
    assert _kernels.ISA in ("avx2", "baseline")
    assert _kernels.window is (avx2 if _kernels.ISA == "avx2" else _window_kernels)


SEQUENCE_CALLS = [
    ("sequence_pool", dict(mode="mean")),
    ("sequence_pool", dict(mode="weighted_mean")),
    ("sequence_pool", dict(mode="max", return_indices=True)),
    ("sequence_pool", dict(mode="attention")),
    ("sequence_pool_backward", dict(mode="mean")),
    ("sequence_pool_backward", dict(mode="min")),
    ("sequence_pool_backward", dict(mode="attention")),
]


@pytest.mark.parametrize("op, kwargs", SEQUENCE_CALLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequence_avx2_matches_baseline_bit_for_bit(monkeypatch, op, kwargs, dtype):
    from cypool import _sequence, _sequence_backward

    rng = np.random.default_rng(11)
    h = rng.standard_normal((4, 7, 45)).astype(dtype)
    mask = rng.random((4, 7)) < 0.7
    args = (rng.standard_normal((4, 45)).astype(dtype), h) if op.endswith("backward") else (h,)
    if kwargs["mode"] == "attention":
        kwargs = dict(kwargs, scores=rng.standard_normal((4, 7)).astype(dtype))
    results = []
    for module in (_window_kernels, avx2):
        monkeypatch.setattr(_sequence, "_kernels", module)
        monkeypatch.setattr(_sequence_backward, "_kernels", module)
        result = getattr(cypool, op)(*args, mask, **kwargs)
        results.append(result if isinstance(result, tuple) else (result,))
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


# Region sizes that reach each part of the SIMD shim's line sums (cypool/_simd.pxd): sixteen-
# value blocks, one eight-value block, the scalar tail, and each alone.
GLOBAL_REGIONS = [(7, 7), (5, 5), (3, 5), (6, 6), (1, 7), (4, 2)]


@pytest.mark.parametrize("region", GLOBAL_REGIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "strided"])
def test_global_avx2_matches_baseline_bit_for_bit(monkeypatch, region, dtype, layout):
    from cypool import _adaptive

    rng = np.random.default_rng(13)
    x = (rng.standard_normal((3, 5) + region) * 10.0 ** rng.integers(-3, 4, (3, 5) + region))
    x = x.astype(dtype)
    axes = None
    if layout == "NHWC":
        x, axes = np.moveaxis(x, 1, -1), (1, 2)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    results = []
    for module in (_window_kernels, avx2):
        monkeypatch.setattr(_adaptive, "_window_kernels", module)
        results.append(cypool.global_avg_pool(x, axes=axes))
        results.append(cypool.global_max_pool(x, axes=axes))
    assert results[0].tobytes() == results[2].tobytes()
    assert results[1].tobytes() == results[3].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_avx2_matches_baseline_bit_for_bit(monkeypatch, dtype):
    # Channels-last rows of 12 x 64 values: the row pass's prefetching loop (rows >= 512).
    x = np.random.default_rng(17).standard_normal((2, 9, 12, 64)).astype(dtype)
    results = []
    for module in (_window_kernels, avx2):
        monkeypatch.setattr(_window, "_window_kernels", module)
        results.append(cypool.avg_pool(x, (3, 3), stride=1, padding=1, axes=(1, 2)))
    assert results[0].tobytes() == results[1].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", [0, 1])
def test_direct_taps_avx2_matches_baseline_bit_for_bit(monkeypatch, dtype, padding):
    # Contiguous channels-last 2x2/2: each output's four taps are read straight from the input
    # (the AVX2 four-tap loop over 8 channels at a time, and its scalar tail: 13 channels); with
    # padding, the border windows have one or two taps.
    x = np.random.default_rng(19).standard_normal((2, 9, 10, 13)).astype(dtype)
    results = []
    for module in (_window_kernels, avx2):
        monkeypatch.setattr(_window, "_window_kernels", module)
        results.append(cypool.avg_pool(x, (2, 2), stride=2, padding=padding, axes=(1, 2)))
    assert results[0].tobytes() == results[1].tobytes()


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 1)])
@pytest.mark.parametrize("channels", [13, 64])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("misalign", [0, 1])
def test_streamed_averages_match_cached_stores(monkeypatch, kernel, stride, channels, padding,
                                               misalign):
    # Large float32 channels-last averages of 2x2 taps, and of 3-tap stride-1 rows, are stored
    # past the caches (16 bytes at a time, when out is 16-byte aligned; misalign shifts it by
    # one float, so the plain stores run instead). Forced on for a small input: both builds
    # give the cached stores' bytes.
    x = np.random.default_rng(23).standard_normal((2, 9, 10, channels)).astype(np.float32)
    args = ((kernel, kernel), stride, padding)
    want = cypool.avg_pool(x, *args, axes=(1, 2))
    asked = []
    monkeypatch.setattr(_window, "stream_averages",
                        lambda out, result: asked.append(1) or (True, True))
    for module in (_window_kernels, avx2):
        monkeypatch.setattr(_window, "_window_kernels", module)
        raw = np.full(want.size + 32, np.nan, np.float32)
        start = (-raw.ctypes.data % 64) // 4 + misalign
        out = raw[start:start + want.size].reshape(want.shape)
        got = cypool.avg_pool(x, *args, axes=(1, 2), out=out)
        assert got is out
        assert got.tobytes() == want.tobytes()
    assert asked
