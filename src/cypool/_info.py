"""What `python -m cypool info` reports about this build."""

from __future__ import annotations

from cypool import _kernels, _runtime
from cypool._dtypes import ORDER_DTYPES
from cypool._version import __version__


def build_info() -> dict:
    return {
        "version": __version__,
        "OpenMP": _runtime.OPENMP_ENABLED,
        "max threads": _runtime.max_threads(),
        "dtypes": ", ".join(d.name for d in ORDER_DTYPES),
        "compiler": _runtime.COMPILER,
        "kernels": _kernels.ISA,
    }


def format_info() -> str:
    return "\n".join(f"{key}: {value}" for key, value in build_info().items())
