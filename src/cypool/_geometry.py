"""Window geometry: parameter parsing, output sizes, padding, taps and divisors.

Pure Python and NumPy, no kernels. Every window op (forward and backward) turns its arguments
into a :class:`WindowGeometry` here, so the shape rules of window pooling live in one place.
The kernels only ever see the per-axis tables this module builds:

* ``taps``: for each output position, the input position of its first in-bounds tap and how many
  in-bounds taps follow (``dilation`` apart). Padding and ceil-mode overhang never appear.
* ``divisor``: the avg-pool divisor factor of each output position; the divisor of an N-d window
  is the product of its per-axis factors because windows are products of per-axis tap sets.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass

import numpy as np

from cypool._errors import ParameterTypeError

MAX_POOLED_AXES = 3

# The largest integer parameter: kernels hold sizes, strides and pads in 64-bit signed ints.
INT64_MAX = int(np.iinfo(np.int64).max)

# No array may hold more elements than this: NumPy's own limit on bytes (intp) for 8-byte items,
# which also keeps every flat position the kernels compute within int64.
MAX_ELEMENTS = int(np.iinfo(np.intp).max) // 8

# Above this, an axis's tap arithmetic (i * stride - pad, n + pad, ...) could leave int64, so its
# tables are computed with Python's integers (such axes have at most n + 1 outputs).
_EXACT_LIMIT = 1 << 61


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int64(v: int, name: str, value) -> None:
    """Refuse an integer parameter no 64-bit size can hold (a ValueError naming it, where
    converting it for the kernels would raise OverflowError)."""
    if not -INT64_MAX - 1 <= v <= INT64_MAX:
        raise ValueError(f"{name} must fit in a 64-bit integer (at most 2**63 - 1), got "
                         f"{name}={value!r}")


def check_allocatable(shape, name: str, value) -> None:
    """Refuse a result shape that no array can have, naming the parameter that set it (NumPy
    would say "array is too big", and flat positions would overflow before that)."""
    if math.prod(shape) > MAX_ELEMENTS:
        shown = tuple(value) if isinstance(value, (tuple, list)) else value
        raise ValueError(f"{name}={shown!r} gives a result of shape {tuple(shape)}, more "
                         f"than the {MAX_ELEMENTS} elements an array can hold")


def _ceil_div(a, b):
    """Ceiling of a / b for integers (scalars or int64 arrays), b > 0."""
    return -((-a) // b)


def normalize_axes(axes, ndim: int, default_count: int | None, name: str = "axes",
                   max_count: int = MAX_POOLED_AXES, source: str = "x") -> tuple[int, ...]:
    """Pooled axes as given (order kept), made non-negative and checked: 1 to max_count
    distinct axes. ``axes=None`` means the last ``default_count`` axes. ``source`` names the
    parameter the shape comes from in messages (x, or input_shape for the backward ops).
    """
    if axes is None:
        if default_count is None:
            raise ValueError(f"{name} is required here, got {name}=None")
        axes = tuple(range(ndim - default_count, ndim))
        if axes and axes[0] < 0:
            raise ValueError(
                f"{source} has {ndim} dimensions, fewer than the {default_count} pooled axes "
                f"requested"
            )
        return axes
    if _is_int(axes):
        axes = (axes,)
    if not isinstance(axes, (tuple, list)) or not all(_is_int(a) for a in axes):
        raise ParameterTypeError(f"{name} must be an int or a tuple of ints, got {name}={axes!r}")
    if not 1 <= len(axes) <= max_count:
        raise ValueError(f"{name} must name 1 to {max_count} axes, got {name}={tuple(axes)!r}")
    result = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} entry {a} is out of range for an array of {ndim} dimensions")
        result.append(operator.index(a) % ndim)
    if len(set(result)) != len(result):
        raise ValueError(f"{name} must be distinct, got {name}={tuple(axes)!r}")
    return tuple(result)


def _axes_for(per_axis_value, name: str, axes, ndim: int, source: str = "x") -> tuple[int, ...]:
    """The pooled axes for a per-axis parameter: `axes`, or with axes=None the trailing
    len(per_axis_value) axes (so the value must then be a tuple of 1 to 3 entries)."""
    is_tuple = isinstance(per_axis_value, (tuple, list))
    if axes is None and not is_tuple:
        raise ValueError(
            f"{name} must be a tuple when axes is None (it decides how many trailing axes are "
            f"pooled), got {name}={per_axis_value!r}"
        )
    if is_tuple and not 1 <= len(per_axis_value) <= MAX_POOLED_AXES:
        raise ValueError(
            f"{name} must have 1 to {MAX_POOLED_AXES} entries, got {name}={tuple(per_axis_value)!r}"
        )
    return normalize_axes(axes, ndim, len(per_axis_value) if is_tuple else None, source=source)


def per_axis_ints(value, name: str, naxes: int, minimum: int) -> tuple[int, ...]:
    """An int for every pooled axis, or a tuple with one int per axis, each >= minimum."""
    if _is_int(value):
        values = (int(value),) * naxes
    elif isinstance(value, (tuple, list)):
        if len(value) != naxes:
            raise ValueError(
                f"{name} must have one entry per pooled axis ({naxes}), got {name}={tuple(value)!r}"
            )
        if not all(_is_int(v) for v in value):
            raise ParameterTypeError(f"{name} must hold ints, got {name}={tuple(value)!r}")
        values = tuple(int(v) for v in value)
    else:
        raise ParameterTypeError(f"{name} must be an int or a tuple of ints, got {name}={value!r}")
    for v in values:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum} on every pooled axis, got {name}={value!r}")
        check_int64(v, name, value)
    return values


def _parse_padding(padding, naxes: int) -> list | str:
    """(before, after) pairs per axis, or the string 'same' / 'valid'."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got padding={padding!r}")
        return padding
    if _is_int(padding):
        pairs = [(int(padding), int(padding))] * naxes
    elif isinstance(padding, (tuple, list)):
        if len(padding) != naxes:
            raise ValueError(
                f"padding must have one entry per pooled axis ({naxes}), got padding={tuple(padding)!r}"
            )
        pairs = []
        for entry in padding:
            if _is_int(entry):
                pairs.append((int(entry), int(entry)))
            elif (
                isinstance(entry, (tuple, list))
                and len(entry) == 2
                and all(_is_int(v) for v in entry)
            ):
                pairs.append((int(entry[0]), int(entry[1])))
            else:
                raise ParameterTypeError(
                    f"padding entries must be ints or (before, after) pairs, got padding={padding!r}"
                )
    else:
        raise ParameterTypeError(f"padding must be an int, a tuple or a string, got padding={padding!r}")
    for before, after in pairs:
        if before < 0 or after < 0:
            raise ValueError(f"padding must be >= 0, got padding={padding!r}")
        check_int64(max(before, after), "padding", padding)
    return pairs


@dataclass(frozen=True)
class AxisGeometry:
    """One pooled axis: input size, window parameters and output size."""

    size: int
    kernel: int
    stride: int
    dilation: int
    pad_before: int
    pad_after: int
    out: int

    @property
    def extent(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def __reduce__(self):
        """Pickle the parameters alone: the tables are rebuilt where they are needed (every
        cypool.dask task holds its axis's geometry but reads only its own rows)."""
        return (type(self), dataclasses.astuple(self))

    @property
    def exact(self) -> bool:
        """Whether this axis's tap arithmetic needs Python's integers (see _EXACT_LIMIT)."""
        return max(self.size + self.pad_before + self.pad_after, self.extent,
                   self.stride * self.out) >= _EXACT_LIMIT

    @property
    def table_mode(self) -> bool:
        """Whether the kernels take this axis's windows from its taps table alone (as adaptive
        bins) rather than from kernel, stride and padding: when a window or a step is longer
        than the input. The kernels' row buffers then span the input, not the padded window,
        so work and scratch grow with the input, never with the window's extent, and no
        window arithmetic can overflow in C."""
        return self.extent > self.size or self.stride > self.size

    def _tap_range(self, lo, hi, first=0, stop=None):
        """For output positions [first, stop) (default: all), the tap numbers [jlo, jhi) whose
        positions lie in [lo, hi)."""
        positions = np.arange(first, self.out if stop is None else stop, dtype=np.int64)
        if self.exact:
            positions = positions.astype(object)
        start = positions * self.stride - self.pad_before
        jlo = np.maximum(_ceil_div(lo - start, self.dilation), 0)
        jhi = np.minimum(_ceil_div(hi - start, self.dilation), self.kernel)
        return start, jlo, np.maximum(jhi, jlo)

    # Tables are computed once per geometry (geometries are cached) and handed out read-only.

    @functools.cached_property
    def _taps(self) -> np.ndarray:
        start, jlo, jhi = self._tap_range(0, self.size)
        table = np.empty((self.out, 2), dtype=np.int64)
        count = jhi - jlo
        # A window without taps (refused by axis_geometry) may start beyond int64's range.
        table[:, 0] = np.where(count > 0, start + jlo * self.dilation, 0)
        table[:, 1] = count
        table.flags.writeable = False
        return table

    def taps(self) -> np.ndarray:
        """int64 (out, 2): position of the first in-bounds tap, and the count of in-bounds taps."""
        return self._taps

    def _count_bounds(self, count_include_pad: bool) -> tuple[int, int]:
        if count_include_pad:
            return -self.pad_before, self.size + self.pad_after
        return 0, self.size

    @functools.cached_property
    def _counts(self) -> tuple[np.ndarray, np.ndarray]:
        counts = []
        for include in (False, True):
            _, jlo, jhi = self._tap_range(*self._count_bounds(include))
            count = (jhi - jlo).astype(np.float64)
            count.flags.writeable = False
            counts.append(count)
        return counts[0], counts[1]

    def tap_count(self, count_include_pad: bool, rows: tuple[int, int] | None = None) -> np.ndarray:
        """float64 (out,): taps inside the padded extent, or inside the input; with `rows`
        (first, stop), only those output positions' counts, computed for them alone."""
        if rows is None:
            return self._counts[1 if count_include_pad else 0]
        _, jlo, jhi = self._tap_range(*self._count_bounds(count_include_pad), *rows)
        return (jhi - jlo).astype(np.float64)

    def block(self, first: int, stop: int, lo: int, size: int) -> AxisGeometry:
        """The geometry of outputs [first, stop) computed from the input slice [lo, lo + size).

        Chunked pooling (cypool.dask) runs each chunk through the ordinary kernels with this
        geometry: its windows are this axis's windows shifted by -lo, so its taps are rows
        [first, stop) of taps() shifted by -lo, provided the slice holds every in-bounds tap of
        those windows. Its divisors are not derived from it: the padded extent is a property of
        the whole axis, so callers use tap_count(..., rows=(first, stop)) instead.
        """
        return AxisGeometry(size, self.kernel, self.stride, self.dilation,
                            lo + self.pad_before - first * self.stride, 0, stop - first)


@functools.lru_cache(maxsize=1024)
def axis_geometry(size, kernel, stride, dilation, pad, ceil_mode, axis) -> AxisGeometry:
    """Resolve one axis: padding strings, the pad limit, the output size and empty windows.

    Cached: a model calls the same few geometries over and over, and a small pool's cost is
    mostly this Python work.
    """
    extent = dilation * (kernel - 1) + 1
    if pad == "valid":
        before = after = 0
    elif pad == "same":
        out = _ceil_div(size, stride)
        total = max((out - 1) * stride + extent - size, 0)
        before, after = total // 2, total - total // 2
    else:
        before, after = pad
    if 2 * max(before, after) > extent:
        raise ValueError(
            f"padding on axis {axis} must be at most half the dilated kernel extent "
            f"{extent}, got padding=({before}, {after})"
        )
    span = size + before + after - extent
    out = (_ceil_div(span, stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    if out < 1:
        raise ValueError(
            f"output size on axis {axis} would be {out} (input size {size}, kernel_size {kernel}, "
            f"stride {stride}, padding ({before}, {after}), dilation {dilation}): it must be >= 1"
        )
    geom = AxisGeometry(size, kernel, stride, dilation, before, after, out)
    empty = np.flatnonzero(geom.taps()[:, 1] == 0)
    if empty.size:
        raise ValueError(
            f"window {int(empty[0])} on axis {axis} holds no input element (input size {size}, "
            f"kernel_size {kernel}, stride {stride}, padding ({before}, {after}), "
            f"dilation {dilation})"
        )
    return geom


# A size-1 axis with a 1-tap window: pads the pooled axes in front to three.
_UNIT_AXIS = AxisGeometry(1, 1, 1, 1, 0, 0, 1)


@dataclass(frozen=True)
class WindowGeometry:
    """The pooled axes of an N-d array, sorted, with one AxisGeometry each."""

    shape: tuple[int, ...]
    axes: tuple[int, ...]
    per_axis: tuple[AxisGeometry | AdaptiveAxis, ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = list(self.shape)
        for a, g in zip(self.axes, self.per_axis):
            shape[a] = g.out
        return tuple(shape)

    def padded(self) -> tuple[AxisGeometry | AdaptiveAxis, ...]:
        """The per-axis geometries padded in front to 3 axes with size-1 identity axes."""
        unit: tuple[AxisGeometry | AdaptiveAxis, ...] = (_UNIT_AXIS,) * (MAX_POOLED_AXES - len(self.per_axis))
        return unit + self.per_axis

    def taps(self) -> tuple[np.ndarray, ...]:
        return tuple(g.taps() for g in self.padded())

    def windows(self) -> np.ndarray:
        """int64 (3, 4): kernel, stride, dilation and leading pad of each padded axis; kernel 0
        on the last axis puts the kernels in table mode (AxisGeometry.table_mode)."""
        rows = [(g.kernel, g.stride, g.dilation, g.pad_before) for g in self.padded()]
        last = self.padded()[-1]
        if isinstance(last, AxisGeometry) and last.table_mode:
            rows[-1] = (0, 1, last.dilation, 0)
        return np.array(rows, dtype=np.int64)

    def divisors(self, count_include_pad: bool, divisor_override,
                 rows: tuple[tuple[int, int] | None, ...] | None = None) -> tuple[np.ndarray, ...]:
        """Per-axis divisor factors; their product over an output position is its divisor.
        `rows`: per padded axis, the output positions (first, stop) wanted (None: all)."""
        padded = self.padded()
        rows = rows or (None,) * len(padded)
        if divisor_override is not None:
            factors = [np.ones(g.out if r is None else r[1] - r[0], dtype=np.float64)
                       for g, r in zip(padded, rows)]
            factors[0] = factors[0] * float(divisor_override)
            return tuple(factors)
        return tuple(g.tap_count(count_include_pad, r) for g, r in zip(padded, rows))

    def covers(self) -> tuple[np.ndarray, ...]:
        """cover_table() of padded axes 0 and 1: (ptr0, outs0, ptr1, outs1) for the spread."""
        padded = self.padded()
        return cover_table(padded[0]) + cover_table(padded[1])

    def inverse_divisors(self, count_include_pad: bool, divisor_override,
                         rows: tuple[tuple[int, int] | None, ...] | None = None
                         ) -> tuple[np.ndarray, ...]:
        """1 / divisors(): kernels multiply, which vectorises where division would not."""
        return tuple(1.0 / f for f in self.divisors(count_include_pad, divisor_override, rows))


def window_geometry(
    shape,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    axes=None,
    ceil_mode=False,
    source="x",
) -> WindowGeometry:
    """Check and resolve every window-pooling parameter against an input shape (the shape of
    the parameter ``source``)."""
    shape = tuple(int(n) for n in shape)
    given_axes = _axes_for(kernel_size, "kernel_size", axes, len(shape), source)
    naxes = len(given_axes)
    kernel = per_axis_ints(kernel_size, "kernel_size", naxes, 1)
    strides = kernel if stride is None else per_axis_ints(stride, "stride", naxes, 1)
    dilations = per_axis_ints(dilation, "dilation", naxes, 1)
    pads = _parse_padding(padding, naxes)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise ParameterTypeError(f"ceil_mode must be a bool, got ceil_mode={ceil_mode!r}")

    order = sorted(range(naxes), key=lambda i: given_axes[i])
    per_axis = []
    for i in order:
        axis = given_axes[i]
        pad = pads if isinstance(pads, str) else pads[i]
        per_axis.append(
            axis_geometry(shape[axis], kernel[i], strides[i], dilations[i], pad, bool(ceil_mode), axis)
        )
    return WindowGeometry(shape, tuple(given_axes[i] for i in order), tuple(per_axis))


def check_divisor_override(divisor_override):
    if divisor_override is None:
        return None
    if not _is_int(divisor_override) or divisor_override == 0:
        raise ValueError(
            f"divisor_override must be a non-zero int or None, got divisor_override={divisor_override!r}"
        )
    check_int64(int(divisor_override), "divisor_override", divisor_override)
    return int(divisor_override)


def check_norm_type(norm_type) -> float:
    if isinstance(norm_type, (str, bytes, bytearray)):  # float() would parse "2"
        raise ParameterTypeError(f"norm_type must be a number, got norm_type={norm_type!r}")
    try:
        p = float(norm_type)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"norm_type must be a finite number > 0, got norm_type={norm_type!r}") from None
    except (TypeError, ValueError):
        raise ParameterTypeError(f"norm_type must be a number, got norm_type={norm_type!r}") from None
    if isinstance(norm_type, (bool, np.bool_)) or not np.isfinite(p) or p <= 0:
        raise ValueError(f"norm_type must be a finite number > 0, got norm_type={norm_type!r}")
    return p


@dataclass(frozen=True)
class AdaptiveAxis:
    """One adaptively pooled axis: bin i covers [floor(i*n/o), ceil((i+1)*n/o)), as in PyTorch.

    It offers the AxisGeometry interface the kernels read; kernel 0 marks "table mode": the
    windows vary in size and come only from the taps table.
    """

    size: int
    out: int
    kernel: int = 0
    stride: int = 1
    dilation: int = 1
    pad_before: int = 0
    pad_after: int = 0

    def _bins(self):
        i = np.arange(self.out, dtype=np.int64)
        start = (i * self.size) // self.out
        end = _ceil_div((i + 1) * self.size, self.out)
        return start, end

    @functools.cached_property
    def _taps(self) -> np.ndarray:
        start, end = self._bins()
        table = np.stack([start, end - start], axis=1)
        table.flags.writeable = False
        return table

    def taps(self) -> np.ndarray:
        return self._taps

    def tap_count(self, count_include_pad: bool = False,
                  rows: tuple[int, int] | None = None) -> np.ndarray:
        counts = self._taps[:, 1] if rows is None else self._taps[rows[0]:rows[1], 1]
        return counts.astype(np.float64)


@functools.lru_cache(maxsize=1024)
def adaptive_axis(size: int, out: int, axis: int) -> AdaptiveAxis:
    if size < 1:
        raise ValueError(f"adaptive pooling needs a non-empty axis {axis}, got size {size}")
    return AdaptiveAxis(size, out)


def adaptive_geometry(shape, output_size, axes=None, name: str = "output_size",
                      source: str = "x") -> WindowGeometry:
    """Check output_size (an int or a tuple; None entries keep that axis) against a shape
    (the shape of the parameter ``source``)."""
    shape = tuple(int(n) for n in shape)
    given_axes = _axes_for(output_size, name, axes, len(shape), source)
    for axis in given_axes:
        if shape[axis] < 1:
            raise ValueError(f"{source} has shape {shape}: adaptive pooling needs non-empty pooled "
                             f"axes, got size {shape[axis]} on axis {axis}")
    count = len(output_size) if isinstance(output_size, (tuple, list)) else None
    if count is None:
        sizes = (output_size,) * len(given_axes)
    elif count != len(given_axes):
        raise ValueError(
            f"{name} must have one entry per pooled axis ({len(given_axes)}), got {name}={tuple(output_size)!r}"
        )
    else:
        sizes = tuple(output_size)
    resolved = []
    for axis, o in zip(given_axes, sizes):
        if o is None:
            o = shape[axis]
        if not _is_int(o):
            raise ParameterTypeError(f"{name} entries must be ints or None, got {name}={output_size!r}")
        if o < 1:
            raise ValueError(f"{name} entries must be >= 1, got {name}={output_size!r}")
        check_int64(int(o), name, output_size)
        resolved.append(int(o))
    result_shape = list(shape)
    for axis, o in zip(given_axes, resolved):
        result_shape[axis] = o
    check_allocatable(result_shape, name, output_size)
    order = sorted(range(len(given_axes)), key=lambda i: given_axes[i])
    per_axis = tuple(adaptive_axis(shape[given_axes[i]], resolved[i], given_axes[i]) for i in order)
    return WindowGeometry(shape, tuple(given_axes[i] for i in order), per_axis)


def global_axes(ndim: int, axes, source: str = "x") -> tuple[int, ...]:
    """The reduced axes of global pooling, sorted: every axis after the first two by default."""
    if axes is None or type(axes) is int or (
            type(axes) is tuple and all(type(a) is int for a in axes)):
        # Cached for plain ints only: a bool or a float compares equal to an int (a cache hit)
        # but must fail the checks. A global call is short enough for the checks to show.
        return _global_axes(ndim, axes, source)
    return _global_axes.__wrapped__(ndim, axes, source)


@functools.lru_cache(maxsize=256)
def _global_axes(ndim: int, axes, source: str) -> tuple[int, ...]:
    if axes is None:
        if ndim < 3:
            raise ValueError(
                f"global pooling with axes=None reduces the axes after (N, C): {source} needs >= 3 "
                f"dimensions, got {source} with {ndim}"
            )
        return tuple(range(2, ndim))
    return tuple(sorted(normalize_axes(axes, ndim, None, max_count=ndim)))


@functools.lru_cache(maxsize=1024)
def cover_table(axis) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of an axis's taps, CSR-style: input position p is covered by the outputs
    ``outs[ptr[p]:ptr[p + 1]]`` (increasing). Works for window and adaptive axes alike."""
    taps = axis.taps()
    counts = taps[:, 1]
    outs = np.repeat(np.arange(axis.out, dtype=np.int64), counts)
    tap = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(taps[:, 0], counts) + tap * axis.dilation
    order = np.lexsort((outs, pos))
    ptr = np.zeros(axis.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=axis.size), out=ptr[1:])
    covered = outs[order]
    ptr.flags.writeable = covered.flags.writeable = False
    return ptr, covered
