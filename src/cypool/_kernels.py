"""The compiled window kernels for this CPU: the AVX2 build where the CPU runs it, else the
baseline build. ``CYPOOL_KERNELS=baseline`` forces the baseline (tests compare the two)."""

from __future__ import annotations

import os

from cypool import _runtime
from cypool import _window_kernels as baseline


def _select():
    if os.environ.get("CYPOOL_KERNELS", "").strip().lower() == "baseline":
        return baseline, "baseline"
    if _runtime.cpu_has_avx2():
        try:
            from cypool import _window_kernels_avx2
        except ImportError:  # not built for this platform
            return baseline, "baseline"
        return _window_kernels_avx2, "avx2"
    return baseline, "baseline"


window, ISA = _select()
