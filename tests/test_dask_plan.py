"""cypool.dask._plan and AxisGeometry.block: window-aligned chunk plans, checked against the
whole axis's geometry for random axes and chunkings."""

import pickle

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from support import SETTINGS, examples

pytest.importorskip("dask.array")

from cypool._geometry import axis_geometry  # noqa: E402
from cypool.dask._plan import plan_axis  # noqa: E402


@st.composite
def axes_and_chunks(draw):
    """A valid 1-axis geometry and a random chunking of its input."""
    k = draw(st.integers(1, 6))
    d = draw(st.integers(1, 3))
    s = draw(st.integers(1, 5))
    extent = d * (k - 1) + 1
    n = draw(st.integers(1, 80))
    pad = (draw(st.integers(0, extent // 2)), draw(st.integers(0, extent // 2)))
    ceil = draw(st.booleans())
    try:
        g = axis_geometry(n, k, s, d, pad, ceil, 0)
    except ValueError:
        assume(False)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=12))) - {n})
    chunks = tuple(b - a for a, b in zip([0] + cuts, cuts + [n]))
    return g, chunks


@settings(max_examples=examples(600), **SETTINGS)
@given(axes_and_chunks())
def test_plan_covers_the_axis_with_aligned_chunks(case):
    g, chunks = case
    plan = plan_axis(g, chunks)
    assert sum(plan.in_chunks) == g.size and sum(plan.out_chunks) == g.out
    # dask.array.overlap takes a halo from the right neighbour alone
    smallest = max(1, plan.halo) if len(plan.in_chunks) > 1 else 1
    assert all(n >= smallest for n in plan.in_chunks)
    assert all(n >= 1 for n in plan.out_chunks)
    assert plan.halo == max(0, g.extent - g.stride)
    # every chunk after the first starts exactly where its first window starts
    for start, first in zip(plan.in_starts[1:], plan.out_starts[1:]):
        assert start == first * g.stride - g.pad_before


@settings(max_examples=examples(600), **SETTINGS)
@given(axes_and_chunks())
def test_block_geometry_is_the_axis_geometry_shifted(case):
    """Each chunk's windows, read from its data plus the halo, are the whole axis's windows."""
    g, chunks = case
    plan = plan_axis(g, chunks)
    taps = g.taps()
    for j, (lo, n) in enumerate(zip(plan.in_starts, plan.in_chunks)):
        size = min(n + plan.halo, g.size - lo)  # what dask.array.overlap hands the chunk
        block = plan.block(j, size)
        first = plan.out_starts[j]
        want = taps[first:first + plan.out_chunks[j]].copy()
        want[:, 0] -= lo
        np.testing.assert_array_equal(block.taps(), want)
        assert block.out == plan.out_chunks[j] and block.pad_before >= 0
        # the divisors of those windows, computed for them alone, are the whole axis's
        for include in (False, True):
            np.testing.assert_array_equal(
                g.tap_count(include, (first, first + plan.out_chunks[j])),
                g.tap_count(include)[first:first + plan.out_chunks[j]])
        # the chunk holds every in-bounds tap of its windows
        last = want[:, 0] + (want[:, 1] - 1) * g.dilation
        assert last.max() < size and want[:, 0].min() >= 0


@pytest.mark.parametrize("n, k, s, pad, chunks, in_chunks, out_chunks", [
    # 2x2 pyramid step on even chunks: nothing moves, no halo
    (8, 2, 2, (0, 0), (4, 4), (4, 4), (2, 2)),
    # odd chunk boundaries move to the nearest window start
    (9, 2, 2, (0, 0), (3, 3, 3), (4, 2, 3), (2, 1, 1)),
    # 3x3/2 pad 1: windows start at 2i - 1
    (10, 3, 2, (1, 1), (5, 5), (5, 5), (3, 2)),
    # chunks smaller than the halo (k=5, s=1: halo 4) merge
    (10, 5, 1, (0, 0), (2, 2, 2, 2, 2), (4, 6), (4, 2)),
])
def test_plan_examples(n, k, s, pad, chunks, in_chunks, out_chunks):
    plan = plan_axis(axis_geometry(n, k, s, 1, pad, False, 0), chunks)
    assert (plan.in_chunks, plan.out_chunks) == (in_chunks, out_chunks)


def test_geometry_pickles_without_its_tables():
    """Each dask task holds its axes' geometry: the tables (one row per output) stay behind."""
    g = axis_geometry(100_000, 3, 1, 1, (1, 1), False, 0)
    g.taps(), g.tap_count(True)
    copy = pickle.loads(pickle.dumps(g))
    assert copy == g and len(pickle.dumps(g)) < 500
    np.testing.assert_array_equal(copy.taps(), g.taps())
