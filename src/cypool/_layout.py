"""Memory layout: folding N-d arrays into the kernels' 5-d geometry, and result arrays.

Every window kernel sees strided views of shape ``(outer, n0, n1, n2, inner)``: the pooled axes
padded in front to three with size-1 axes, batch axes folded into ``outer``, and the batch axis
that is innermost in memory (channels-last data) folded into ``inner``. Folding never copies: when
the strides of batch axes do not combine into one, fold_views reports them as leading axes, which
the caller loops over (large pieces) or removes by copying into foldable_order (small pieces).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cypool._errors import ParameterTypeError

POOLED = 3


@dataclass
class _Group:
    """Batch axes folded into one: their total size and element stride in every array."""

    size: int
    strides: tuple[int, ...]

    def folds_over(self, inner: "_Group") -> bool:
        """True when this group sits directly outside `inner` in every array."""
        return all(s == inner.size * t for s, t in zip(self.strides, inner.strides))


def element_strides_ok(arr: np.ndarray) -> bool:
    """Kernels index in elements, so every byte stride must be a multiple of the itemsize."""
    return all(s % arr.itemsize == 0 for s in arr.strides)


def allocate_like(x: np.ndarray, shape, dtype) -> np.ndarray:
    """An empty array of `shape` whose axes are ordered in memory as x's are (NumPy's 'K')."""
    if x.flags.c_contiguous and all(m == 1 for n, m in zip(x.shape, shape) if n == 1):
        # Its other axes in order: the order below is the identity but for x's size-1 axes,
        # which stay size 1 and so do not change the layout (a fast path: 5 of a 1x64x14x14
        # max pool's 50 us went on sorting and transposing).
        return np.empty(shape, dtype=dtype)
    order = memory_order(x.shape, x.strides)
    buf = np.empty([shape[a] for a in order], dtype=dtype)
    return buf.transpose(np.argsort(order))


def memory_order(shape, strides) -> list[int]:
    """The axes from outermost to innermost in memory (ties in axis order, size-1 axes last):
    the order allocate_like lays a new array out in."""
    return sorted(range(len(shape)), key=lambda a: (-abs(strides[a]) if shape[a] > 1 else 0, a))


def strided_view(arr: np.ndarray, shape, strides, writeable: bool) -> np.ndarray:
    """A view of arr's memory from its first element with `shape` and byte `strides`, as
    as_strided gives. C-contiguous arrays (whose first element starts their memory) go through
    the ndarray constructor, a tenth of as_strided's 3 us; it refuses views that leave that
    memory, and as_strided then takes them. Other arrays go to as_strided at once: the
    constructor would refuse them too, and its caught error costs 0.3 us."""
    if arr.flags.c_contiguous:
        try:
            view = np.ndarray(shape, arr.dtype, arr, 0, strides)
        except (TypeError, ValueError):
            pass
        else:
            if not writeable:
                view.flags.writeable = False
            return view
    return as_strided(arr, shape=shape, strides=strides, writeable=writeable)


def merge_trailing_axes(arr: np.ndarray, count: int) -> np.ndarray | None:
    """arr with its last `count` axes merged into one, as a view; None when their strides do
    not allow that. Decided from the strides: NumPy's own reshape and .shape setter may build a
    full copy first (before NumPy 2.1's reshape(copy=False) there is no way to forbid it)."""
    merged = merged_trailing(arr.shape, arr.strides, arr.itemsize, count)
    if merged is None:
        return None
    shape, strides = merged
    return strided_view(arr, shape, strides, arr.flags.writeable)


def merged_trailing(shape, strides, itemsize: int, count: int):
    """(shape, byte strides) of an array with its last `count` axes merged into one, or None
    when their strides do not allow that without a copy (an empty array always merges)."""
    lead = len(shape) - count
    merged = [(n, s) for n, s in zip(shape[lead:], strides[lead:]) if n != 1]
    if any((n0 > 0 and s0 != s1 * n1) for (n0, s0), (n1, s1) in zip(merged, merged[1:])):
        if 0 not in shape:
            return None
    size = math.prod(shape[lead:])
    stride = merged[-1][1] if merged else itemsize
    return tuple(shape[:lead]) + (size,), tuple(strides[:lead]) + (stride,)


def check_out(out, shape, dtype, inputs, name: str = "out") -> np.ndarray:
    """Validate a user-given result array: exact shape and dtype, writable, no overlap."""
    if not isinstance(out, np.ndarray):
        raise ParameterTypeError(f"{name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{name} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    for arr in inputs:
        if isinstance(arr, np.ndarray) and _overlaps(out, arr):
            raise ValueError(f"{name} overlaps an input array")
    return out


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.may_share_memory(a, b):
        return False
    try:
        # numpy's stub admits only -1 and 0 for max_work; the runtime takes any bound.
        return bool(np.shares_memory(a, b, max_work=100_000))  # type: ignore[arg-type]
    except np.exceptions.TooHardError:
        return True


def fold(arrays, axes, n_inputs: int = 1):
    """Yield tuples of 5-d views, one per array, that together cover the arrays (fold_views,
    looped over its lead axes)."""
    lead, views = fold_views(arrays, axes, n_inputs)
    for index in itertools.product(*(range(n) for n in lead)):
        yield tuple(v[index] for v in views)


def fold_views(arrays, axes, n_inputs: int = 1):
    """(lead, views): one view per array, of shape ``lead + (outer, n0, n1, n2, inner)``.

    `arrays` share their batch axes (every axis not in `axes`, sorted pooled axes); the pooled
    axes may differ in size (input versus output). The first array decides the layout; the first
    `n_inputs` arrays are viewed read-only, the rest writable. `lead` holds the sizes of batch
    axes whose strides fold into no other (empty when every batch axis folds): the caller
    loops over them, or lays the arrays out anew (foldable_order) so that it need not.
    """
    plan = _fold_plan(
        tuple(a.shape for a in arrays),
        tuple(tuple(s // a.itemsize for s in a.strides) for a in arrays),
        tuple(axes),
    )
    lead, specs = plan
    views = [
        strided_view(arr, view_shape, [s * arr.itemsize for s in view_strides], i >= n_inputs)
        for i, (arr, (view_shape, view_strides)) in enumerate(zip(arrays, specs))
    ]
    return lead, views


def foldable_order(shape, strides, axes) -> list[int]:
    """The axes outermost to innermost as memory_order gives them, except that batch axes lying
    between two pooled axes move outside them: a layout in which every batch axis folds."""
    order = memory_order(shape, strides)
    pooled = [i for i, a in enumerate(order) if a in axes and shape[a] > 1]
    if not pooled:
        return order
    first, last = pooled[0], pooled[-1] + 1
    between = order[first:last]
    return (order[:first] + [a for a in between if a not in axes]
            + [a for a in between if a in axes] + order[last:])


def empty_in_order(shape, dtype, order) -> np.ndarray:
    """An empty array of `shape` whose axes lie in memory in `order` (outermost first)."""
    buf = np.empty([shape[a] for a in order], dtype=dtype)
    return buf.transpose(np.argsort(order))


Shape = tuple[int, ...]


@functools.lru_cache(maxsize=1024)
def _fold_plan(
    shapes: tuple[Shape, ...], elem_strides: tuple[Shape, ...], axes: Shape
) -> tuple[Shape, tuple[tuple[Shape, Shape], ...]]:
    """fold's layout decision, from shapes and element strides alone (cached: repeated calls
    on same-shaped arrays skip it): the sizes of the outer axes looped over in Python, and each
    array's 5-d view shape and element strides."""
    shape = shapes[0]
    ndim = len(shape)
    batch = [a for a in range(ndim) if a not in axes and shape[a] != 1]
    groups = {a: _Group(shape[a], tuple(st[a] for st in elem_strides)) for a in batch}

    def key(a):
        return abs(elem_strides[0][a])

    inner = None
    pooled_strides = [abs(elem_strides[0][a]) for a in axes if shape[a] > 1]
    if batch:
        candidate = min(batch, key=key)
        if not pooled_strides or key(candidate) < min(pooled_strides):
            inner = groups.pop(candidate)
            batch.remove(candidate)
            merged = True
            while merged:
                merged = False
                for a in batch:
                    if groups[a].folds_over(inner):
                        inner = _Group(groups[a].size * inner.size, inner.strides)
                        batch.remove(a)
                        del groups[a]
                        merged = True
                        break
    if inner is None:
        inner = _Group(1, (0,) * len(shapes))

    outer: list[_Group] = []
    for a in sorted(batch, key=key, reverse=True):
        g = groups[a]
        if outer and outer[-1].folds_over(g):
            outer[-1] = _Group(outer[-1].size * g.size, g.strides)
        else:
            outer.append(g)
    if not outer:
        outer.append(_Group(1, (0,) * len(shapes)))

    pad = POOLED - len(axes)
    specs = []
    for i, arr_shape in enumerate(shapes):
        pooled_shape = [1] * pad + [arr_shape[a] for a in axes]
        pooled_strides_i = [0] * pad + [elem_strides[i][a] for a in axes]
        view_shape = tuple([g.size for g in outer] + pooled_shape + [inner.size])
        view_strides = tuple([g.strides[i] for g in outer] + pooled_strides_i + [inner.strides[i]])
        specs.append((view_shape, view_strides))
    return tuple(g.size for g in outer[:-1]), tuple(specs)
