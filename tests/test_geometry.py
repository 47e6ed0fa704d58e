"""Unit tests of the pure-Python shape rules in cypool._geometry."""

import numpy as np
import pytest

from cypool._geometry import (
    AxisGeometry,
    axis_geometry,
    check_divisor_override,
    check_norm_type,
    normalize_axes,
    per_axis_ints,
    window_geometry,
)


def brute_taps(g: AxisGeometry):
    """Per output, the in-bounds tap positions, enumerated one by one."""
    result = []
    for i in range(g.out):
        start = i * g.stride - g.pad_before
        result.append([start + j * g.dilation for j in range(g.kernel)
                       if 0 <= start + j * g.dilation < g.size])
    return result


@pytest.mark.parametrize(
    "size, kernel, stride, pad, expected",
    [
        (6, 1, 2, 0, 3),   # ceil_mode: the window that would start at 6 is dropped
        (32, 1, 2, 0, 16),
        (5, 2, 2, 1, 3),
        (5, 3, 3, 1, 2),
    ],
)
def test_ceil_mode_drops_windows_starting_in_the_right_padding(size, kernel, stride, pad, expected):
    assert axis_geometry(size, kernel, stride, 1, (pad, pad), True, 0).out == expected


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("size", [1, 2, 5, 7, 10])
@pytest.mark.parametrize("kernel, stride, dilation", [(1, 1, 1), (2, 2, 1), (3, 2, 1), (3, 1, 2), (2, 3, 3)])
def test_output_size_and_taps_match_the_formula(size, kernel, stride, dilation, ceil_mode):
    extent = dilation * (kernel - 1) + 1
    for before in range(extent // 2 + 1):
        for after in range(extent // 2 + 1):
            span = size + before + after - extent
            if span < 0 and not ceil_mode:
                continue
            expected = (-(-span // stride) if ceil_mode else span // stride) + 1
            if ceil_mode and (expected - 1) * stride >= size + before:
                expected -= 1
            try:
                g = axis_geometry(size, kernel, stride, dilation, (before, after), ceil_mode, 0)
            except ValueError:
                # Only empty windows or outputs < 1 may be refused.
                taps = brute_taps(AxisGeometry(size, kernel, stride, dilation, before, after, max(expected, 1)))
                assert expected < 1 or any(not t for t in taps)
                continue
            assert g.out == expected
            brute = brute_taps(g)
            table = g.taps()
            for i, taps in enumerate(brute):
                assert table[i, 1] == len(taps)
                assert table[i, 0] == taps[0]


def test_tap_count_with_and_without_padding():
    # size 5, k 3, s 2, pad 1, ceil: windows [-1..1], [1..3], [3..5]; the last overhangs by one.
    g = axis_geometry(5, 3, 2, 1, (1, 1), True, 0)
    assert g.out == 3
    np.testing.assert_array_equal(g.tap_count(False), [2, 3, 2])
    np.testing.assert_array_equal(g.tap_count(True), [3, 3, 3])
    # size 6, k 3, s 2, pad 1, ceil: last window [5..7]; 6 is padding, 7 is past the padded extent.
    g = axis_geometry(6, 3, 2, 1, (1, 1), True, 0)
    assert g.out == 4
    np.testing.assert_array_equal(g.tap_count(True), [3, 3, 3, 2])
    np.testing.assert_array_equal(g.tap_count(False), [2, 3, 3, 1])


def test_same_padding_follows_tensorflow():
    for size in range(1, 12):
        for kernel in range(1, 5):
            for stride in range(1, 4):
                g = axis_geometry(size, kernel, stride, 1, "same", False, 0)
                assert g.out == -(-size // stride)
                total = max((g.out - 1) * stride + kernel - size, 0)
                assert (g.pad_before, g.pad_after) == (total // 2, total - total // 2)


def test_valid_padding_is_zero():
    g = axis_geometry(7, 3, 2, 1, "valid", False, 0)
    assert (g.pad_before, g.pad_after, g.out) == (0, 0, 3)


def test_pad_limit_is_half_the_dilated_extent():
    axis_geometry(5, 3, 1, 2, (2, 2), False, 0)  # extent 5: pad 2 allowed
    with pytest.raises(ValueError, match="padding"):
        axis_geometry(5, 3, 1, 1, (2, 0), False, 0)
    with pytest.raises(ValueError, match="padding"):
        axis_geometry(5, 2, 1, 1, (0, 2), False, 0)


def test_window_of_padding_only_is_refused():
    # extent 5 with dilation 4: window 0 covers -2 and 2; size 2 with pad 2 and stride 1 gives a
    # window at positions {-1, 3}: both outside.
    with pytest.raises(ValueError, match="holds no input"):
        axis_geometry(2, 2, 1, 4, (2, 2), False, 3)


def test_output_below_one_is_refused():
    with pytest.raises(ValueError, match="output size on axis 1 would be 0"):
        axis_geometry(2, 3, 1, 1, (0, 0), False, 1)


def test_window_geometry_sorts_axes_with_their_parameters():
    g = window_geometry((2, 10, 20, 30), (3, 2), stride=(1, 2), padding=((1, 1), (0, 1)), axes=(3, 1))
    assert g.axes == (1, 3)
    assert [a.kernel for a in g.per_axis] == [2, 3]
    assert [a.stride for a in g.per_axis] == [2, 1]
    assert [(a.pad_before, a.pad_after) for a in g.per_axis] == [(0, 1), (1, 1)]
    assert g.out_shape == (2, 5, 20, 30)
    assert len(g.padded()) == 3 and g.padded()[0].size == 1
    assert g.windows().shape == (3, 4)


def test_window_geometry_defaults():
    g = window_geometry((4, 9, 9), (3, 3))
    assert g.axes == (1, 2)
    assert [a.stride for a in g.per_axis] == [3, 3]
    with pytest.raises(ValueError, match="kernel_size must be a tuple"):
        window_geometry((4, 9, 9), 3)
    with pytest.raises(ValueError, match="fewer than"):
        window_geometry((9,), (3, 3))


def test_divisors_and_override():
    g = window_geometry((1, 5), (3,), stride=2, padding=1, ceil_mode=True)
    (d0, d1, d2) = g.divisors(True, None)
    np.testing.assert_array_equal(d0, [1])
    np.testing.assert_array_equal(d2, [3, 3, 3])
    (d0, d1, d2) = g.divisors(False, 7)
    assert d0[0] * d1[0] * d2[0] == 7
    inv = g.inverse_divisors(False, None)
    np.testing.assert_allclose(inv[2], 1 / np.array([2, 3, 2]))


def test_parameter_parsers():
    assert normalize_axes((-1, 0), 3, None) == (2, 0)
    assert normalize_axes(1, 3, None) == (1,)
    for bad, match in [((0, 0), "distinct"), ((4,), "out of range"), ((-5,), "out of range"), ((0, 1, 2, 3), "1 to 3"),
                       ((), "1 to 3")]:
        with pytest.raises(ValueError, match=match):
            normalize_axes(bad, 4, None)
    with pytest.raises(TypeError, match="axes"):
        normalize_axes(1.5, 3, None)
    assert per_axis_ints(2, "stride", 3, 1) == (2, 2, 2)
    with pytest.raises(ValueError, match="stride"):
        per_axis_ints((1, 0), "stride", 2, 1)
    with pytest.raises(ValueError, match="kernel_size"):
        per_axis_ints((1, 2, 3), "kernel_size", 2, 1)
    with pytest.raises(TypeError, match="dilation"):
        per_axis_ints(1.0, "dilation", 1, 1)
    with pytest.raises(ValueError, match="dilation"):
        per_axis_ints(True, "dilation", 1, 1)
    assert check_divisor_override(None) is None
    with pytest.raises(ValueError, match="divisor_override"):
        check_divisor_override(0)
    assert check_norm_type(3) == 3.0
    for bad in (0, -1, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="norm_type"):
            check_norm_type(bad)


# ---------------------------------------------------------------- windows longer than the input


def test_a_window_longer_than_the_input_runs_in_table_mode():
    """The kernels' row buffers span a window's padded extent unless its last axis is in
    table mode (kernel 0): a window or a step longer than the input switches it on, so that
    scratch and work follow the input, never the window (2**61 taps once overflowed the
    scratch size and crashed)."""
    g = window_geometry((2, 5), (2 ** 61,), stride=1, padding=2 ** 60)
    assert g.per_axis[0].table_mode
    assert g.windows()[2].tolist() == [0, 1, 1, 0]
    np.testing.assert_array_equal(g.taps()[2], [[0, 5]] * 6)
    assert window_geometry((2, 5), (3,), stride=9, padding=1).per_axis[0].table_mode
    ordinary = window_geometry((2, 5), (3,), stride=2, padding=1)
    assert not ordinary.per_axis[0].table_mode
    assert ordinary.windows()[2].tolist() == [3, 2, 1, 1]


def test_taps_beyond_int64_are_exact():
    # extent 2 * (2**63 - 2) + 1 > 2**63: taps at -(2**63 - 2) + 2 j for output 0
    g = axis_geometry(5, 2 ** 63 - 1, 1, 2, (2 ** 63 - 2, 2 ** 63 - 2), False, 0)
    assert g.exact and g.out == 5
    np.testing.assert_array_equal(g.taps(), [[0, 3], [1, 2], [0, 3], [1, 2], [0, 3]])
    np.testing.assert_array_equal(g.tap_count(False), [3, 2, 3, 2, 3])
    # every tap of the window inside the padded extent counts with count_include_pad
    assert g.tap_count(True)[0] == 2 ** 63 - 1


@pytest.mark.parametrize("param", ["kernel_size", "stride", "dilation"])
def test_integers_beyond_int64_are_valueerrors_naming_them(param):
    kw = {"kernel_size": (2, 2), param: (2, 2 ** 63)}
    with pytest.raises(ValueError, match=rf"{param}.*64-bit"):
        window_geometry((4, 4), **kw)
