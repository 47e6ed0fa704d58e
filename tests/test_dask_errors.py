"""cypool.dask refuses what in-memory cypool refuses, at once (before anything is computed),
with the same exception and message; and it refuses out=."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import cypool  # noqa: E402
import cypool.dask as cd  # noqa: E402

X = np.zeros((2, 3, 8, 8), np.float32)
H = np.zeros((2, 5, 4), np.float32)

# (function name, positional args after the array, keyword args): each one is refused
CASES = [
    ("max_pool", ((0, 2),), {}),
    ("max_pool", ((2, 2), (1, -1)), {}),
    ("max_pool", ((3, 3), 1, 2), {}),
    ("max_pool", ((2, 2),), {"axes": (1, 1)}),
    ("max_pool", ((2, 2),), {"axes": (0, 9)}),
    ("max_pool", (2,), {}),
    ("max_pool", ((9, 9),), {}),
    ("max_pool", ((2, 2),), {"padding": "full"}),
    ("max_pool", ((3, 3), 1, 0, 4), {"padding": 1}),
    ("max_pool", ((2, 2),), {"return_indices": 1}),
    ("max_pool", ((2, 2),), {"num_threads": 0}),
    ("max_pool", ((2, 2),), {"num_threads": 1.5}),
    ("avg_pool", ((2, 2),), {"divisor_override": 0}),
    ("avg_pool", ((2, 2),), {"count_include_pad": "yes"}),
    ("avg_pool", ((2, 2),), {"ceil_mode": None}),
    ("lp_pool", (0, (2, 2)), {}),
    ("lp_pool", (np.inf, (2, 2)), {}),
    ("lp_pool", ("two", (2, 2)), {}),
    ("max_pool2d", (2,), {"channels_last": 1}),
    ("avg_pool2d", (9,), {"channels_last": True}),
    ("global_avg_pool", (), {"axes": (0, 0)}),
    ("global_max_pool", (), {"axes": 7}),
    ("global_max_pool", (), {"keepdims": "no"}),
]
SEQUENCE_CASES = [
    ((), {"mode": "median"}),
    ((np.ones((2, 4)),), {}),
    ((np.ones((2, 5)),), {"lengths": np.array([1, 2])}),
    ((), {"lengths": np.ones((3,), int)}),
    ((), {"lengths": np.ones((2,))}),
    ((), {"mode": "attention"}),
    ((), {"mode": "mean", "scores": np.zeros((2, 5), np.float32)}),
    ((), {"mode": "attention", "scores": np.zeros((2, 5), np.float64)}),
    ((), {"mode": "mean", "return_indices": True}),
    ((np.ones((2, 5), complex),), {}),
]
BAD_DTYPES = [np.bool_, np.complex64, object, "U3", "datetime64[s]"]


def _refusal(call):
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("name, args, kwargs", CASES)
def test_window_and_global_errors_match_in_memory(name, args, kwargs):
    lazy = da.from_array(X, chunks=(1, 2, 3, 5))
    assert _refusal(lambda: getattr(cd, name)(lazy, *args, **kwargs)) == _refusal(
        lambda: getattr(cypool, name)(X, *args, **kwargs))


@pytest.mark.parametrize("args, kwargs", SEQUENCE_CASES)
def test_sequence_errors_match_in_memory(args, kwargs):
    lazy = da.from_array(H, chunks=(1, 5, 2))
    got_type, got_message = _refusal(lambda: cd.sequence_pool(lazy, *args, **kwargs))
    want_type, want_message = _refusal(lambda: cypool.sequence_pool(H, *args, **kwargs))
    assert got_type is want_type
    # the shape rules name the same array and shapes; the rest word for word
    assert got_message.split(" ")[0] == want_message.split(" ")[0]


@pytest.mark.parametrize("dtype", BAD_DTYPES)
@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "global_avg_pool", "sequence_pool"])
def test_unsupported_dtypes_raise_type_error(name, dtype):
    x = np.zeros((2, 3, 4, 4), dtype=dtype)
    args = () if name.startswith(("global", "sequence")) else ((2, 2),)
    with pytest.raises(TypeError, match=str(np.dtype(dtype)).replace("[", r"\[")):
        getattr(cd, name)(da.from_array(x, chunks=2), *args)


@pytest.mark.parametrize("name, args", [
    ("max_pool", ((2, 2),)), ("avg_pool", ((2, 2),)), ("lp_pool", (2, (2, 2))),
    ("max_pool2d", (2,)), ("avg_pool1d", (2,)), ("global_avg_pool", ()),
    ("global_max_pool", ()), ("sequence_pool", ()),
])
def test_out_is_refused(name, args):
    out = np.zeros(1)
    with pytest.raises(TypeError, match="out is not supported"):
        getattr(cd, name)(da.from_array(X), *args, out=out)


def test_unknown_chunk_sizes_are_refused():
    x = da.from_array(np.arange(10.0), chunks=3)
    unknown = x[x > 2]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        cd.max_pool(unknown, 2, axes=0)
