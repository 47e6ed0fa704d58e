"""Running a kernel: checked or new result arrays, compute-dtype temporaries, folded views."""

from __future__ import annotations

import itertools
import math

import numpy as np

from cypool._dtypes import FLOAT_DTYPES, as_array
from cypool._errors import ParameterTypeError
from cypool._geometry import WindowGeometry
from cypool._layout import (
    _overlaps,
    allocate_like,
    check_out,
    element_strides_ok,
    empty_in_order,
    fold_views,
    foldable_order,
)
from cypool._parallel import resolve_num_threads

INDEX_DTYPE = np.dtype(np.int64)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(f"{name} must be a bool, got {name}={value!r}")
    return bool(value)


def kernel_input(x: np.ndarray, compute_dtype) -> np.ndarray:
    """x as the kernels read it: the compute dtype and element-aligned strides."""
    if x.dtype != compute_dtype or not element_strides_ok(x):
        return x.astype(compute_dtype)
    return x


def refuse_out_overlap(out: object, *inputs: object) -> None:
    """Refuse an `out` (an array, or a pair) that overlaps any input as the user passed it.

    Called first, on the raw arguments: result_arrays checks `out` against the arrays the
    kernels read, which are copies where an input had to be converted (a byte-swapped x or
    grad_output, int32 indices made int64), so an out sharing memory with the original would
    pass that check and the call would write into its own input."""
    if out is None:
        return
    pair = isinstance(out, (tuple, list))
    outs: tuple[object, ...] = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    for i, o in enumerate(outs):
        if isinstance(o, np.ndarray):
            for arr in inputs:
                if isinstance(arr, np.ndarray) and _overlaps(o, arr):
                    raise ValueError(f"{f'out[{i}]' if pair else 'out'} overlaps an input array")


def result_arrays(x, out, shapes_dtypes, names, others=(), *, pair="(values, indices) when return_indices=True"):
    """The arrays returned to the user: `out` checked (it may overlap neither x nor `others`,
    the call's other inputs), or new ones laid out like x (C order when x's rank differs).
    `pair` says what `out` must be when there are two results."""
    if out is None:
        return [
            allocate_like(x, shape, dtype) if len(shape) == x.ndim else np.empty(shape, dtype)
            for shape, dtype in shapes_dtypes
        ]
    if len(shapes_dtypes) > 1:
        if not isinstance(out, (tuple, list)) or len(out) != len(shapes_dtypes):
            raise ParameterTypeError(f"out must be a pair {pair}, got {type(out).__name__}")
        outs = list(out)
    else:
        outs = [out]
    checked = [
        check_out(o, shape, dtype, [x, *others], name)
        for o, (shape, dtype), name in zip(outs, shapes_dtypes, names)
    ]
    for i in range(len(checked)):
        for j in range(i):
            if np.may_share_memory(checked[i], checked[j]):
                raise ValueError("out: the values and indices arrays overlap")
    return checked


# A user's out= of at least this many bytes is written with non-temporal stores by the kernels
# that have them (see write_past_caches).
STREAM_BYTES = 16 * 1024 * 1024


def write_past_caches(out, result) -> bool:
    """Whether a kernel writes `result` with non-temporal stores: only into a large out= of the
    user's. Memory the OS maps fresh is zeroed on first touch, which already brings each line
    into the cache; streaming over it measured 22 ms against 15 to 17 ms for cached stores on
    the (32, 64, 112, 112) max backward, while into an evicted out= it saves the read of each
    line before its write (16 against 11.5 ms)."""
    return out is not None and result.nbytes >= STREAM_BYTES


def stream_averages(out, result) -> tuple[bool, bool]:
    """(stream_taps, stream_rows) of the avg kernel: whether it writes float32 channels-last
    averages of 2x2 taps, and of 3-tap stride-1 rows, with non-temporal stores. Both write
    each output line once, in order. Measured at 2 threads on (32 or 64, 112, 112, 64):
    - 2x2/2 gains for every result of STREAM_BYTES or more, fresh or not: into out= 4.97 ->
      4.53 and 6.74 -> 6.22 ms; allocating 4.84 -> 4.52 ms, and 10.2 -> 9.5 ms with a 51 MB
      result the OS maps fresh;
    - 3x3/1 gains only into an out= (write_past_caches): 11.3 -> 8.9 ms; into a fresh 103 MB
      result, 14.8 -> 15.1 ms."""
    large = result.nbytes >= STREAM_BYTES
    return large, write_past_caches(out, result)


# Batch axes that do not fold are looped over in Python when each kernel call has at least this
# many bytes to move; below it the arrays are copied into a layout that folds (run_folded).
LOOP_BYTES = 1 << 20


def run_kernel(kernel, geometry: WindowGeometry, x, results, compute_dtypes, num_threads, *args):
    """Run a window kernel: its folded views, then the geometry's tables, then `args`."""
    run_folded(kernel, geometry.axes, [x], results, compute_dtypes, num_threads,
               *geometry.taps(), geometry.windows(), *args)


def run_folded(kernel, axes, inputs, results, compute_dtypes, num_threads, *args):
    """Call kernel(*views, *args, threads) on the folded views of `inputs` (already in the
    kernels' dtypes) and the results, through compute-dtype temporaries where a result's dtype
    or strides do not suit the kernels. The first input decides the layout."""
    original_inputs, first = inputs, inputs[0]
    targets = [
        r if r.dtype == dt and element_strides_ok(r) else allocate_like(first, r.shape, dt)
        for r, dt in zip(results, compute_dtypes)
    ]
    threads = kernel_threads(num_threads, [*inputs, *targets])
    if threads:
        lead, views = fold_views([*inputs, *targets], axes, n_inputs=len(inputs))
        if lead and sum(a.nbytes for a in [*inputs, *targets]) < LOOP_BYTES * math.prod(lead):
            # Batch axes whose strides fold into no other, in small pieces: one kernel call
            # over copies laid out so that they fold costs less than a call per piece.
            order = foldable_order(first.shape, first.strides, axes)
            inputs = [empty_in_order(a.shape, a.dtype, order) for a in inputs]
            for copy, arr in zip(inputs, original_inputs):
                np.copyto(copy, arr)
            targets = [empty_in_order(r.shape, dt, order) for r, dt in zip(results, compute_dtypes)]
            lead, views = fold_views([*inputs, *targets], axes, n_inputs=len(inputs))
        if not lead:
            kernel(*views, *args, threads)
        else:
            for index in itertools.product(*(range(n) for n in lead)):
                kernel(*(v[index] for v in views), *args, threads)
    copy_back(results, targets)


def kernel_threads(num_threads, arrays) -> int:
    """Threads for a kernel call over these arrays (sized by the bytes they hold), or 0 when
    one of them is empty and the kernel has nothing to do."""
    if not all(a.size for a in arrays):
        return 0
    return resolve_num_threads(num_threads, sum(a.nbytes for a in arrays))


def copy_back(results, targets) -> None:
    """Copy each kernel target into its result where the two differ (a compute-dtype or
    realigned temporary)."""
    for result, target in zip(results, targets):
        if result is not target:
            np.copyto(result, target, casting="unsafe")


def check_grad_output(grad_output, expected_shape) -> np.ndarray:
    """grad_output as a float array of the forward's output shape."""
    g = as_array(grad_output, "grad_output", FLOAT_DTYPES)
    if g.shape != tuple(expected_shape):
        raise ValueError(
            f"grad_output has shape {g.shape}, expected the forward's output shape {tuple(expected_shape)}"
        )
    return g
