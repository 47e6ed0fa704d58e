"""cypool on dask arrays: lazy window, global and sequence pooling, chunk by chunk.

Install with ``pip install "cypool[dask]"``. Every function takes and returns dask arrays (NumPy
input becomes a one-chunk dask array), checks its arguments at once exactly as its in-memory
twin in :mod:`cypool` does, and gives the same results for any chunking. The arguments are the
in-memory ones except that ``out=`` is refused and ``num_threads`` counts the OpenMP threads of
each chunk task (None: one, since dask itself runs chunks in parallel).
"""

try:
    import dask.array  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without dask
    raise ImportError(
        'cypool.dask needs dask: pip install "cypool[dask]"'
    ) from error

from cypool._window import _avg_alias, _max_alias
from cypool.dask._global import global_avg_pool, global_max_pool
from cypool.dask._sequence import sequence_pool
from cypool.dask._window import avg_pool, lp_pool, max_pool


def _dask_alias_doc(name: str) -> str:
    return (
        f"Lazy :func:`cypool.{name}` of a dask array, equal to it for any chunking.\n\n"
        f"    Arguments as for :func:`cypool.{name}`, except that ``out=`` is refused and\n"
        f"    ``num_threads`` counts threads per chunk task (None: one).\n"
    )


max_pool1d = _max_alias(1, max_pool)
max_pool2d = _max_alias(2, max_pool)
max_pool3d = _max_alias(3, max_pool)
avg_pool1d = _avg_alias(1, avg_pool)
avg_pool2d = _avg_alias(2, avg_pool)
avg_pool3d = _avg_alias(3, avg_pool)
for _alias in (max_pool1d, max_pool2d, max_pool3d, avg_pool1d, avg_pool2d, avg_pool3d):
    _alias.__doc__ = _dask_alias_doc(_alias.__name__)
    _alias.__module__ = __name__
del _alias

__all__ = [
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "global_avg_pool",
    "global_max_pool",
    "lp_pool",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "sequence_pool",
]
