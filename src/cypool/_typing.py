"""Type aliases of the public facades' annotations.

Inputs are ``ArrayLike`` and results ``NDArray[Any]``; functions whose result depends on an
argument (``return_indices``, ``mode="attention"`` backward) are ``@overload``-ed on ``Literal``
values, with a plain fallback, so that a type checker knows an array from a pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

from numpy.typing import NDArray

# Conventions: inputs ``ArrayLike``, results ``NDArray[Any]``, a size per pooled axis
# ``int | Sequence[int]``, axes ``int | Sequence[int] | None``, ``num_threads: int | None``.

#: ``padding``: an int, one int per pooled axis, one (before, after) pair per pooled axis, or
#: "same" / "valid".
Padding: TypeAlias = int | Sequence[int] | Sequence[tuple[int, int]] | str

#: Two results: (values, indices), or (grad, grad_scores).
ArrayPair: TypeAlias = tuple[NDArray[Any], NDArray[Any]]

SequenceMode: TypeAlias = Literal["mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min",
                                  "cls", "last", "attention"]
SegmentMode: TypeAlias = Literal["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last",
                                 "attention"]
#: Every mode but "attention", whose backward also returns grad_scores.
SequenceGradMode: TypeAlias = Literal["mean", "sum", "mean_sqrt_len", "weighted_mean", "max", "min",
                                      "cls", "last"]
SegmentGradMode: TypeAlias = Literal["sum", "mean", "mean_sqrt_len", "max", "min", "first", "last"]
