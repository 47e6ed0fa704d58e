"""Every error rule of window pooling (README, API rules: "Conventions" and "Window pooling"): the error type,
and a message naming the parameter (and the value received)."""

import re

import numpy as np
import pytest

import cypool

X = np.zeros((2, 3, 8, 8), dtype=np.float32)
OPS = ["max", "avg", "lp"]


def call(op, x, *args, **kwargs):
    """Call max_pool / avg_pool / lp_pool with the same geometry arguments."""
    if op == "max":
        return cypool.max_pool(x, *args, **kwargs)
    if op == "avg":
        return cypool.avg_pool(x, *args, **kwargs)
    return cypool.lp_pool(x, 2, *args, **kwargs)


def raises(exc, *patterns):
    """pytest.raises whose ``match`` requires every regex in ``patterns``, in any order."""
    return pytest.raises(exc, match="".join(f"(?=[\\s\\S]*(?:{p}))" for p in patterns))


# ------------------------------------------------------------------------------- padding


@pytest.mark.parametrize("op", OPS)
def test_pad_more_than_half_extent(op):
    with raises(ValueError, r"padding", r"2"):
        call(op, X, (3, 3), padding=2)              # extent 3: at most 1
    with raises(ValueError, r"padding", r"2"):
        call(op, X, (2, 2), padding=((0, 0), (0, 2)))  # the after side alone
    with raises(ValueError, r"padding"):
        call(op, X, (2, 2), 1, padding=(0, 2), dilation=(1, 2))  # extent 3: 2 > 1.5
    # the limit itself is fine: extent 4 allows 2
    call(op, X, (2, 2), padding=2, dilation=3)


@pytest.mark.parametrize("op", OPS)
def test_window_with_only_padding(op):
    # n=1, k=2, dilation 3: taps at -1 and 2, both outside the input
    with raises(ValueError, r"dilation|padding|window"):
        call(op, np.zeros((1,)), (2,), padding=((1, 2),), dilation=3)
    # 2-d, only the second axis is bad
    with raises(ValueError, r"dilation|padding|window"):
        call(op, np.zeros((4, 1)), (2, 2), (1, 1), padding=((0, 0), (1, 2)), dilation=(1, 3))


@pytest.mark.parametrize("op", OPS)
def test_bad_padding_string(op):
    for bad in ("full", "SAME", ""):
        with raises(ValueError, r"padding", re.escape(repr(bad)) if bad else r"padding"):
            call(op, X, (2, 2), padding=bad)


@pytest.mark.parametrize("op", OPS)
def test_negative_padding(op):
    with raises(ValueError, r"padding", r"-1"):
        call(op, X, (3, 3), padding=-1)
    with raises(ValueError, r"padding", r"-1"):
        call(op, X, (3, 3), padding=(1, -1))
    with raises(ValueError, r"padding", r"-1"):
        call(op, X, (3, 3), padding=((0, -1), (0, 0)))


@pytest.mark.parametrize("op", OPS)
def test_padding_wrong_length(op):
    with raises(ValueError, r"padding"):
        call(op, X, (3, 3), padding=(1, 1, 1))
    with raises(ValueError, r"padding"):
        call(op, X, (3, 3), padding=((1, 1, 1), (1, 1)))


# ------------------------------------------------------------------------------- output size


@pytest.mark.parametrize("op", OPS)
def test_output_size_below_one(op):
    with raises(ValueError, r"(?i:output size)|kernel_size", r"0"):
        call(op, np.zeros((3, 2)), (3,))
    with raises(ValueError, r"(?i:output size)|kernel_size"):
        call(op, X, (10, 2), (1, 1), ceil_mode=True)        # ceil(-2 / 1) + 1 = -1


# ------------------------------------------------------------------------------- axes


@pytest.mark.parametrize("op", OPS)
def test_axes_out_of_range(op):
    with raises(ValueError, r"axes", r"4"):
        call(op, X, (2,), axes=(4,))
    with raises(ValueError, r"axes", r"-5"):
        call(op, X, (2,), axes=(-5,))


@pytest.mark.parametrize("op", OPS)
def test_axes_duplicate(op):
    with raises(ValueError, r"axes"):
        call(op, X, (2, 2), axes=(1, -3))
    with raises(ValueError, r"axes"):
        call(op, X, (2, 2), axes=(2, 2))


@pytest.mark.parametrize("op", OPS)
def test_axes_more_than_three_or_none(op):
    with raises(ValueError, r"axes"):
        call(op, X, 2, axes=(0, 1, 2, 3))
    with raises(ValueError, r"axes"):
        call(op, X, 2, axes=())
    with raises(ValueError, r"kernel_size"):
        call(op, X[..., None], (1, 1, 1, 1))   # axes=None: 4 pooled axes


@pytest.mark.parametrize("op", OPS)
def test_axes_count_vs_kernel_tuple(op):
    with raises(ValueError, r"kernel_size", r"\(2, 2, 2\)"):
        call(op, X, (2, 2, 2), axes=(2, 3))
    with raises(ValueError, r"kernel_size"):
        call(op, X, (2,), axes=(2, 3))


@pytest.mark.parametrize("op", OPS)
def test_int_kernel_with_axes_none(op):
    with raises(ValueError, r"kernel_size"):
        call(op, X, 2)


def test_kernel_tuple_longer_than_ndim():
    with raises(ValueError, r"kernel_size|axes"):
        cypool.max_pool(np.zeros((4, 4)), (2, 2, 2))


# ------------------------------------------------------------------------------- kernel, stride, dilation


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation"])
@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_kernel_stride_dilation(op, name, bad):
    kwargs = dict(kernel_size=(2, 2), stride=None, dilation=1)
    kwargs[name] = (2, bad)
    with raises(ValueError, name, str(bad)):
        call(op, X, kwargs["kernel_size"], kwargs["stride"], 0, kwargs["dilation"])
    kwargs = dict(kernel_size=(2, 2), stride=None, dilation=1, axes=(2, 3))
    kwargs[name] = bad
    with raises(ValueError, name, str(bad)):
        call(op, X, kwargs["kernel_size"], kwargs["stride"], 0, kwargs["dilation"],
             axes=kwargs["axes"])


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation"])
def test_wrong_length_kernel_stride_dilation(op, name):
    kwargs = dict(kernel_size=(2, 2), stride=None, dilation=1)
    kwargs[name] = (2, 2, 2)
    with raises(ValueError, name):
        call(op, X, kwargs["kernel_size"], kwargs["stride"], 0, kwargs["dilation"], axes=(2, 3))
    kwargs[name] = (1,)
    with raises(ValueError, name):
        call(op, X, kwargs["kernel_size"], kwargs["stride"], 0, kwargs["dilation"], axes=(2, 3))


@pytest.mark.parametrize("op", OPS)
def test_non_int_kernel(op):
    with raises(ValueError, r"kernel_size"):
        call(op, X, (2.0, 2))
    with raises(ValueError, r"stride"):
        call(op, X, (2, 2), (1.5, 1))


# ------------------------------------------------------------------------------- op-specific


@pytest.mark.parametrize("p", [0, -1, -0.5, np.inf, -np.inf, np.nan])
def test_norm_type(p):
    with raises(ValueError, r"norm_type"):
        cypool.lp_pool(X, p, (2, 2))


def test_divisor_override_zero():
    with raises(ValueError, r"divisor_override", r"0"):
        cypool.avg_pool(X, (2, 2), divisor_override=0)
    with raises(ValueError, r"divisor_override"):
        cypool.avg_pool2d(X, 2, divisor_override=0)


def test_alias_too_few_dims():
    with raises(ValueError, r"x|ndim|dimension"):
        cypool.max_pool2d(np.zeros(5), 2)
    with raises(ValueError, r"x|ndim|dimension"):
        cypool.avg_pool3d(np.zeros((4, 4, 4)), 2, channels_last=True)


# ------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "x, name",
    [
        (np.zeros((4, 4), dtype=bool), "bool"),
        (np.zeros((4, 4), dtype=np.complex128), "complex128"),
        (np.zeros((4, 4), dtype=np.complex64), "complex64"),
        (np.zeros((4, 4), dtype=object), "object"),
        (np.zeros((4, 4), dtype="datetime64[s]"), "datetime64"),
        (np.zeros((4, 4), dtype="timedelta64[s]"), "timedelta64"),
        (np.zeros((4, 4), dtype="U1"), "<U1|U1|str"),
    ],
)
def test_bad_dtype(op, x, name):
    with raises(TypeError, name, r"float32"):
        call(op, x, (2, 2))


# ------------------------------------------------------------------------------- out


OUT_SHAPE = (2, 3, 4, 4)


@pytest.mark.parametrize("op", OPS)
def test_out_wrong_shape(op):
    with raises(ValueError, r"out", r"\(2, 3, 4, 5\)"):
        call(op, X, (2, 2), out=np.zeros((2, 3, 4, 5), np.float32))
    with raises(ValueError, r"out"):
        call(op, X, (2, 2), out=np.zeros((2, 3, 16), np.float32))


@pytest.mark.parametrize("op", OPS)
def test_out_wrong_dtype(op):
    with raises(ValueError, r"out", r"float64"):
        call(op, X, (2, 2), out=np.zeros(OUT_SHAPE, np.float64))
    # int input to avg/lp returns float64: an out of the input dtype is wrong
    xi = X.astype(np.int32)
    if op != "max":
        with raises(ValueError, r"out", r"int32"):
            call(op, xi, (2, 2), out=np.zeros(OUT_SHAPE, np.int32))


@pytest.mark.parametrize("op", OPS)
def test_out_read_only(op):
    ro = np.zeros(OUT_SHAPE, np.float32)
    ro.setflags(write=False)
    with raises(ValueError, r"out"):
        call(op, X, (2, 2), out=ro)
    with raises(ValueError, r"out"):
        call(op, X, (2, 2), out=np.broadcast_to(np.float32(0), OUT_SHAPE))


@pytest.mark.parametrize("op", OPS)
def test_out_overlapping_input(op):
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    keep = x.copy()
    with raises(ValueError, r"out"):
        call(op, x, (1, 1), out=x)                              # the input itself
    with raises(ValueError, r"out"):
        call(op, x, (2, 2), out=x[:, :, :4, :4])                # a part of it
    with raises(ValueError, r"out"):
        call(op, x, (2, 2), out=x[:, :, ::2, ::2])              # interleaved with it
    base = np.zeros((2, 3, 8, 8), np.float32)
    with raises(ValueError, r"out"):                            # through a transposed input
        call(op, base.transpose(0, 1, 3, 2), (2, 2), out=base[:, :, 4:, 4:])
    np.testing.assert_array_equal(x, keep)


def test_out_pair_for_indices():
    vals = np.zeros(OUT_SHAPE, np.float32)
    with raises(ValueError, r"out"):
        cypool.max_pool(X, (2, 2), return_indices=True,
                        out=(vals, np.zeros(OUT_SHAPE, np.int32)))
    with raises(ValueError, r"out"):
        cypool.max_pool(X, (2, 2), return_indices=True,
                        out=(vals, np.zeros((2, 3, 4, 3), np.int64)))
    with raises(ValueError, r"out"):
        cypool.max_pool(X, (2, 2), return_indices=True,
                        out=(np.zeros(OUT_SHAPE, np.int64), np.zeros(OUT_SHAPE, np.int64)))
    # an out pair overlapping the input
    x = np.zeros((2, 3, 8, 8), np.int64)
    with raises(ValueError, r"out"):
        cypool.max_pool(x, (2, 2), return_indices=True,
                        out=(np.zeros(OUT_SHAPE, np.int64), x[:, :, :4, :4]))


# ------------------------------------------------------------------------------- num_threads


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [0, -1])
def test_num_threads(op, n):
    with raises(ValueError, r"num_threads", str(n)):
        call(op, X, (2, 2), num_threads=n)
