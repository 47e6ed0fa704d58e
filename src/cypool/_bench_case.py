"""One row of the `python -m cypool bench` table (cypool._bench), apart so that the modules
defining rows (cypool._bench_sequence) and the table can both import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Inputs = tuple  # tuple[np.ndarray, ...]
Thunk = Callable[[], Any]
Builder = Callable[[Inputs, "int | None"], Thunk]


@dataclass(frozen=True)
class Case:
    """One row of the table.

    ``make_inputs(rng)`` returns the input arrays; the first one's size is the size used for the
    bandwidth measurement. ``cypool``, ``numpy`` and ``torch`` are builders
    ``(inputs, threads) -> thunk`` (``numpy`` and ``torch`` may be None: no baseline). The torch
    builder is only called when torch imports, and may import it at module level of the builder.
    ``traffic(inputs, result)`` is the bytes the op must move: by default every input read once
    plus the cypool result written once.
    """

    name: str
    shape: tuple
    layout: str
    make_inputs: Callable[[np.random.Generator], Inputs]
    cypool: Builder
    numpy: Builder | None = None
    torch: Builder | None = None
    traffic: Callable[[Inputs, Any], int] | None = None
    dtype: str = "float32"
    tags: tuple = field(default_factory=tuple)

    def bytes_moved(self, inputs: Inputs, result) -> int:
        if self.traffic is not None:
            return int(self.traffic(inputs, result))
        return sum(a.nbytes for a in inputs) + _nbytes(result)


def _nbytes(result) -> int:
    if isinstance(result, np.ndarray):
        return result.nbytes
    if isinstance(result, (tuple, list)):
        return sum(_nbytes(r) for r in result)
    return 0
