"""cypool.dask._blocks: chunk positions to whole-array positions, and record arrays."""

import numpy as np
import pytest

pytest.importorskip("dask.array")

from cypool.dask._blocks import as_records, global_flat_indices  # noqa: E402


def test_global_flat_indices_match_ravel_multi_index():
    rng = np.random.default_rng(0)
    local_shape, starts, shape = (3, 4, 5), (2, 0, 7), (9, 4, 20)
    local = rng.integers(0, 60, (6, 7))
    indices = local.copy()
    global_flat_indices(indices, local_shape, starts, shape)
    coords = np.unravel_index(local, local_shape)
    want = np.ravel_multi_index(tuple(c + s for c, s in zip(coords, starts)), shape)
    np.testing.assert_array_equal(indices, want)


def test_global_flat_indices_are_64_bit_and_keep_minus_one():
    """A chunk deep inside a 2**16 x 2**16 plane: positions beyond 2**31; -1 (no position,
    e.g. an empty row) stays -1."""
    indices = np.array([0, 5, -1, 2 ** 20 - 1], dtype=np.int64)
    global_flat_indices(indices, (2 ** 10, 2 ** 10), (2 ** 15 + 3, 2 ** 15), (2 ** 16, 2 ** 16))
    row = 2 ** 15 + 3
    np.testing.assert_array_equal(indices, [row * 2 ** 16 + 2 ** 15, row * 2 ** 16 + 2 ** 15 + 5,
                                            -1, (row + 2 ** 10 - 1) * 2 ** 16 + 2 ** 15 + 2 ** 10 - 1])
    assert indices.dtype == np.int64 and indices[-1] > 2 ** 31


def test_records_hold_values_and_indices():
    records = as_records(np.array([1.5, 2.5], np.float32), np.array([3, -1]))
    assert records["values"].dtype == np.float32 and records["indices"].dtype == np.int64
    np.testing.assert_array_equal(records["indices"], [3, -1])
