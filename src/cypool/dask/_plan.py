"""Chunk plans for window pooling on dask arrays: pure Python, no dask.

A pooled axis is cut at input positions aligned with its windows: the chunk that produces
outputs [first, stop) starts where window ``first`` starts (``first * stride - pad_before``;
the first chunk starts at 0), so every chunk holds the start of each of its windows. The rest
of a window reaches into the next chunk by at most ``extent - stride`` elements: the right halo,
which every chunk borrows from its right neighbour. Padding is never materialised; each chunk's
geometry (``AxisGeometry.block``) puts it where the whole axis has it.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from cypool._geometry import AxisGeometry


@dataclass(frozen=True)
class AxisPlan:
    """The chunking of one pooled axis.

    ``in_chunks``: the input's chunk sizes along the axis (before the halo is added);
    ``out_chunks``: the output positions each chunk produces; ``halo``: the elements each
    chunk but the last borrows from its right neighbour.
    """

    geometry: AxisGeometry
    in_chunks: tuple[int, ...]
    out_chunks: tuple[int, ...]
    halo: int

    @functools.cached_property
    def in_starts(self) -> tuple[int, ...]:
        return _starts(self.in_chunks)

    @functools.cached_property
    def out_starts(self) -> tuple[int, ...]:
        return _starts(self.out_chunks)

    def rows(self, j: int) -> tuple[int, int]:
        """The output positions [first, stop) of chunk j."""
        first = self.out_starts[j]
        return first, first + self.out_chunks[j]

    def block(self, j: int, size: int) -> AxisGeometry:
        """The geometry of chunk j, whose data (halo included) has `size` elements."""
        return self.geometry.block(*self.rows(j), self.in_starts[j], size)


def _starts(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Where each chunk of the given sizes starts."""
    return (0,) + tuple(itertools.accumulate(sizes[:-1]))


def plan_axis(geometry: AxisGeometry, chunks: tuple[int, ...]) -> AxisPlan:
    """Aligned chunks for one pooled axis, as close to the input's `chunks` as the windows allow.

    Each input chunk boundary moves to the nearest window start. A boundary is dropped when it
    would leave a chunk smaller than the halo (dask takes the halo from the neighbour alone) or
    empty, so small chunks merge. The plan never depends on the data, only on shapes.
    """
    g = geometry
    halo = max(0, g.extent - g.stride)
    smallest = max(1, halo)
    boundaries = []
    position = 0
    for n in chunks[:-1]:
        position += n
        boundaries.append(position)

    cuts = [0]  # output positions where a chunk starts
    last_start = 0
    for boundary in boundaries:
        first = (boundary + g.pad_before + g.stride // 2) // g.stride
        if first <= cuts[-1] or first >= g.out:
            continue
        start = first * g.stride - g.pad_before
        if start - last_start < smallest or g.size - start < smallest:
            continue
        cuts.append(first)
        last_start = start

    starts = [0] + [c * g.stride - g.pad_before for c in cuts[1:]]
    in_chunks = tuple(b - a for a, b in zip(starts, starts[1:] + [g.size]))
    out_chunks = tuple(b - a for a, b in zip(cuts, cuts[1:] + [g.out]))
    return AxisPlan(g, in_chunks, out_chunks, halo)
