"""What every public function does around its own work: a dask array goes to the function's
lazy twin in cypool.dask, and an allocation that fails becomes a ValueError naming the
parameter that sized it."""

from __future__ import annotations

import functools
import importlib
import inspect
import reprlib
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np

P = ParamSpec("P")
R = TypeVar("R")

# Argument types that are never dask arrays, checked before the attribute look-up.
_PLAIN = frozenset({np.ndarray, int, float, bool, str, tuple, list, type(None)})


def public(*sized_by: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a public function of cypool.

    - Called with a dask array anywhere among its arguments, it returns the lazy result of its
      twin of the same name in cypool.dask (never computing the array whole), or raises a
      TypeError naming cypool.dask where there is no twin or ``out=`` is given.
    - A MemoryError while it runs (its result, a temporary or a kernel's scratch) is re-raised
      as a ValueError naming the argument that sets the result's size (x, input_shape,
      output_size: the first of `sized_by` that the call gives), with its value or shape and
      NumPy's account of the size.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        name = fn.__name__

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            # Plain loops: a generator per call cost a tenth of a small pool's time.
            for value in args:
                if type(value) not in _PLAIN and hasattr(value, "__dask_graph__"):
                    return _on_dask(name, args, kwargs)  # type: ignore[no-any-return]
            for value in kwargs.values():
                if type(value) not in _PLAIN and hasattr(value, "__dask_graph__"):
                    return _on_dask(name, args, kwargs)  # type: ignore[no-any-return]
            try:
                return fn(*args, **kwargs)
            except MemoryError as exc:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                param = next(p for p in sized_by if bound.arguments.get(p) is not None)
                value = bound.arguments[param]
                shown = (f"{param}={reprlib.repr(value)}"
                         if isinstance(value, (int, tuple, list)) else
                         f"{param} of shape {np.shape(value)}")
                raise ValueError(f"{shown} needs more memory than this process can allocate "
                                 f"({exc})") from exc

        return call

    return decorate


def _on_dask(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """cypool.dask's `name` on these arguments, or the TypeError that says why not."""
    lazy = importlib.import_module("cypool.dask")
    if not hasattr(lazy, name):
        raise TypeError(
            f"cypool.{name} was given a dask array and has no lazy twin in cypool.dask (which "
            f"has {', '.join(lazy.__all__)}): pass a NumPy array (e.g. arr.compute()) to "
            f"compute it in memory"
        )
    if kwargs.get("out") is not None:
        raise TypeError(
            f"cypool.{name} was given a dask array and out=: a dask result is lazy and cannot "
            f"be written into out; call cypool.dask.{name} without out= and store its result"
        )
    kwargs.pop("out", None)
    return getattr(lazy, name)(*args, **kwargs)
