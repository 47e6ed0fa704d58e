"""Thread control from outside cypool: threadpoolctl sees and limits cypool's OpenMP runtime,
and num_threads=None follows OMP_NUM_THREADS (read at call time, not at import)."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import cypool
from cypool import _runtime
from cypool._parallel import resolve_num_threads

needs_openmp = pytest.mark.skipif(not _runtime.OPENMP_ENABLED, reason="serial build")


def run_python(code: str, **env) -> str:
    """stdout of `code` in a fresh interpreter (no torch loaded: its own OpenMP runtime would
    blur which one cypool uses)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True,
    )
    return result.stdout.strip()


def test_threadpool_info_lists_the_openmp_runtime_cypool_links():
    pytest.importorskip("threadpoolctl")
    found = json.loads(run_python("""
        import json, os, sys
        import cypool, threadpoolctl
        libs = [i["filepath"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]
        mapped = []
        if sys.platform.startswith("linux"):
            with open("/proc/self/maps") as maps:
                mapped = [line.split()[-1] for line in maps if "omp" in line.split()[-1]]
        print(json.dumps([[os.path.realpath(p) for p in libs], [os.path.realpath(p) for p in mapped]]))
        """))
    libs, mapped = found
    if not _runtime.OPENMP_ENABLED:
        assert libs == [], "a serial build must load no OpenMP runtime"
        return
    assert len(libs) == 1
    if sys.platform.startswith("linux"):
        # Importing cypool alone loaded exactly this runtime: the one its kernels link.
        assert set(mapped) == set(libs)


@needs_openmp
def test_threadpool_limits_caps_cypools_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = _runtime.max_threads()
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert _runtime.max_threads() == 1
        assert resolve_num_threads(None, 1 << 30) == 1
        # Measured: one thread keeps process CPU time at about the wall time.
        x = np.random.default_rng(0).standard_normal((16, 64, 112, 112), dtype=np.float32)
        cypool.avg_pool(x, (3, 3), 1, 1)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(3):
            cypool.avg_pool(x, (3, 3), 1, 1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert cpu / wall < 1.4, f"CPU time {cpu:.3f} s over wall {wall:.3f} s: more than one thread ran"
    assert _runtime.max_threads() == before


@needs_openmp
@pytest.mark.parametrize("threads", ["1", "2"])
def test_num_threads_none_follows_omp_num_threads(threads):
    out = run_python("""
        from cypool import _runtime
        from cypool._parallel import resolve_num_threads
        print(_runtime.max_threads(), resolve_num_threads(None, 1 << 30))
        """, OMP_NUM_THREADS=threads)
    assert out.split() == [threads, threads]
