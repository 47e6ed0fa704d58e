"""Global pooling calls: the reduced axes of x merged into one, the kernels' 5-d views, and the
results in the user's shape.

A global reduction of a large array takes well under a millisecond, so the Python around the
kernel shows: the general path (x's reduced axes moved last and merged, then folded, through
compute-dtype temporaries where needed) cost 30 us per call with warm caches and 70 to 90 us
right after a large kernel, up to a sixth of a (64, 7, 7, 2048) global average. Calls whose x
and results the kernels read and write in place, folded into one outer and one inner group,
take a direct path instead: the view shapes and strides are decided once per layout (cached)
and each call builds its views (8 us warm, 24 us cold).
"""

# The helpers of _call and _layout called here are not annotated yet:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cypool._call import check_bool, kernel_input, kernel_threads, result_arrays, run_folded
from cypool._dtypes import ORDER_DTYPES, as_array
from cypool._geometry import global_axes
from cypool._layout import _fold_plan, check_out, memory_order, merged_trailing, strided_view
from cypool._layout import merge_trailing_axes

Shape = tuple[int, ...]
ViewSpec = tuple[Shape, Shape]  # a 5-d view: shape and byte strides


def merge_reduced_axes(
    x: NDArray[Any], axes: tuple[int, ...]
) -> tuple[NDArray[Any], tuple[int, ...]]:
    """x with the reduced axes moved last and merged into one when strides allow it (a view),
    else moved last as they are; returns (array, reduced axes of that array)."""
    kept = tuple(a for a in range(x.ndim) if a not in axes)
    moved = x.transpose(kept + tuple(axes))
    merged = merge_trailing_axes(moved, len(axes))
    if merged is not None:
        return merged, (len(kept),)
    if len(axes) <= 3:
        return moved, tuple(range(len(kept), x.ndim))
    copied = np.ascontiguousarray(moved).reshape(moved.shape[: len(kept)] + (-1,))
    return copied, (len(kept),)


@dataclass(frozen=True)
class _DirectPlan:
    """How one layout of a global call runs in place: the 5-d views of x and of each result,
    and for new results the C-order buffer shape (x's kept axes in memory order) and the
    transpose that shows it in x's axis order (None: the identity)."""

    x_view: ViewSpec
    result_views: tuple[ViewSpec, ...]
    buffer_shape: Shape | None
    to_kept_order: Shape | None


@functools.lru_cache(maxsize=256)
def _direct_plan(
    shape: Shape, strides: Shape, itemsize: int, reduced: Shape, keepdims: bool,
    out_strides: tuple[Shape, ...] | None, result_itemsizes: Shape,
) -> _DirectPlan | None:
    """The direct path's plan for x of this shape and these byte strides, with new results
    (out_strides None) or the user's (their byte strides in the user's shape); None when the
    reduced axes do not merge, a stride is not a whole number of elements, or the batch axes
    need more than one outer group (the general path loops over those)."""
    if any(s % itemsize for s in strides):
        return None
    kept = tuple(a for a in range(len(shape)) if a not in reduced)
    order = kept + reduced
    merged = merged_trailing(tuple(shape[a] for a in order), tuple(strides[a] for a in order),
                             itemsize, len(reduced))
    if merged is None:
        return None
    x_shape, x_strides = merged
    kept_shape = x_shape[: len(kept)]
    buffer_shape = to_kept_order = None
    if out_strides is None:
        layout = memory_order(kept_shape, x_strides[: len(kept)])
        buffer_shape = tuple(kept_shape[a] for a in layout)
        elements = [0] * len(kept)
        step = 1
        for a in reversed(layout):
            elements[a] = step
            step *= kept_shape[a]
        result_elements = [tuple(elements)] * len(result_itemsizes)
        if layout != list(range(len(kept))):
            to_kept_order = tuple(int(a) for a in np.argsort(layout))
    else:
        result_elements = []
        for st, size in zip(out_strides, result_itemsizes):
            kept_strides = tuple(st[a] for a in kept) if keepdims else st
            if any(s % size for s in kept_strides):
                return None
            result_elements.append(tuple(s // size for s in kept_strides))
    lead, specs = _fold_plan(
        (x_shape,) + (kept_shape + (1,),) * len(result_itemsizes),
        (tuple(s // itemsize for s in x_strides),) + tuple(e + (0,) for e in result_elements),
        (len(kept),),
    )
    if lead:
        return None
    sizes = (itemsize, *result_itemsizes)
    views = [(vs, tuple(s * size for s in vst)) for (vs, vst), size in zip(specs, sizes)]
    return _DirectPlan(views[0], tuple(views[1:]), buffer_shape, to_kept_order)


@functools.lru_cache(maxsize=256)
def _reduction(shape: Shape, reduced: Shape, keepdims: bool, source: str) -> tuple[Shape, int]:
    """The result shape of reducing `reduced` of `shape`, and the number of values reduced."""
    for a in reduced:
        if shape[a] == 0:
            raise ValueError(f"{source} has shape {shape}: global pooling needs non-empty "
                             f"reduced axes, got size 0 on axis {a}")
    result = tuple(1 if a in reduced else n for a, n in enumerate(shape)
                   if keepdims or a not in reduced)
    return result, math.prod(shape[a] for a in reduced)


@dataclass(frozen=True)
class Result:
    """One result of a global kernel: its dtype, the dtype the kernel writes, and the name of
    its out= argument in messages."""

    dtype: np.dtype[Any]
    compute: np.dtype[Any]
    name: str


class GlobalCall:
    """A global pooling call: x, its reduced axes (sorted) and the result shape.

    The kernels see x with the reduced axes merged into the last pooled axis (when strides
    allow it) and results in the internal shape (x's kept axes, then size-1 axes); the user's
    shape differs only by size-1 axes, so each is a view of the other.
    """

    def __init__(self, x: ArrayLike, axes: int | Sequence[int] | None, keepdims: bool,
                 source: str = "x") -> None:
        self.x = as_array(x, "x", ORDER_DTYPES)
        self.reduced = global_axes(self.x.ndim, axes, source)
        self.keepdims = check_bool(keepdims, "keepdims")
        self.shape, self.count = _reduction(self.x.shape, self.reduced, self.keepdims, source)

    @cached_property
    def _merged(self) -> tuple[NDArray[Any], tuple[int, ...]]:
        return merge_reduced_axes(self.x, self.reduced)

    @property
    def folded(self) -> NDArray[Any]:
        """x with the kept axes first and the reduced axes last, merged where they can be."""
        return self._merged[0]

    @property
    def folded_axes(self) -> tuple[int, ...]:
        """The reduced axes of `folded`."""
        return self._merged[1]

    @property
    def internal_shape(self) -> tuple[int, ...]:
        """The results' shape as the kernels see them: folded's, reduced axes of size 1."""
        kept = self.folded.ndim - len(self.folded_axes)
        return self.folded.shape[:kept] + (1,) * len(self.folded_axes)

    def to_user(self, arr: NDArray[Any]) -> NDArray[Any]:
        squeezed = arr.reshape(arr.shape[: arr.ndim - len(self.folded_axes)])
        return np.expand_dims(squeezed, self.reduced) if self.keepdims else squeezed

    def to_internal(self, arr: NDArray[Any]) -> NDArray[Any]:
        kept = np.squeeze(arr, self.reduced) if self.keepdims else arr
        return np.expand_dims(kept, tuple(range(kept.ndim, kept.ndim + len(self.folded_axes))))

    def run(self, kernel: Callable[..., None], compute: np.dtype[Any], results: list[Result],
            outs: list[Any] | None, num_threads: int | None, *args: Any) -> list[NDArray[Any]]:
        """kernel(x view, *result views, *args, threads) with x read as `compute`; returns the
        results in the user's shape (the user's `outs`, checked, when given)."""
        if outs is not None:
            outs = [check_out(o, self.shape, r.dtype, [self.x], r.name)
                    for o, r in zip(outs, results)]
            if len(outs) == 2 and np.may_share_memory(outs[0], outs[1]):
                raise ValueError("out: the values and indices arrays overlap")
        direct = self._run_direct(kernel, compute, results, outs, num_threads, args)
        if direct is not None:
            return direct
        xk = kernel_input(self.folded, compute)
        internal: Any = None
        if outs is not None:
            internal = [self.to_internal(o) for o in outs]
            internal = internal[0] if len(internal) == 1 else internal
        arrays = result_arrays(self.folded, internal,
                               [(self.internal_shape, r.dtype) for r in results],
                               [r.name for r in results])
        run_folded(kernel, self.folded_axes, [xk], arrays, [r.compute for r in results],
                   num_threads, *args)
        return outs if outs is not None else [self.to_user(a) for a in arrays]

    def _run_direct(self, kernel: Callable[..., None], compute: np.dtype[Any],
                    results: list[Result], outs: list[NDArray[Any]] | None,
                    num_threads: int | None, args: tuple[Any, ...]) -> list[NDArray[Any]] | None:
        """The direct path (see the module docstring); None when this call cannot take it."""
        x = self.x
        if x.dtype != compute or any(r.dtype != r.compute for r in results):
            return None
        plan = _direct_plan(x.shape, x.strides, x.itemsize, self.reduced, self.keepdims,
                            None if outs is None else tuple(o.strides for o in outs),
                            tuple(r.dtype.itemsize for r in results))
        if plan is None:
            return None
        targets: list[NDArray[Any]]
        users: list[NDArray[Any]]
        if outs is None:
            assert plan.buffer_shape is not None
            targets = [np.empty(plan.buffer_shape, r.dtype) for r in results]
            users = targets if plan.to_kept_order is None else [
                b.transpose(plan.to_kept_order) for b in targets]
            if self.keepdims:
                # Only size-1 axes are inserted, which never needs a copy.
                users = [u.reshape(self.shape) for u in users]
        else:
            targets = users = outs
        views = [strided_view(t, *spec, True) for t, spec in zip(targets, plan.result_views)]
        # Writable where x is: the kernels take x as a const memoryview, and marking the view
        # read-only costs as much as making it.
        x_view = strided_view(x, *plan.x_view, True)
        threads = kernel_threads(num_threads, [x_view, *views])
        if threads:
            kernel(x_view, *views, *args, threads)
        return users
