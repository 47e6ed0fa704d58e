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
        env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=True,
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
    assert _runtime.max_threads() == before


@pytest.mark.timing
@needs_openmp
def test_threadpool_limits_keeps_cpu_time_at_wall_time():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        # Measured: one thread keeps process CPU time at about the wall time.
        x = np.random.default_rng(0).standard_normal((16, 64, 112, 112), dtype=np.float32)
        cypool.avg_pool(x, (3, 3), 1, 1)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(3):
            cypool.avg_pool(x, (3, 3), 1, 1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert cpu / wall < 1.4, f"CPU time {cpu:.3f} s over wall {wall:.3f} s: more than one thread ran"


@needs_openmp
@pytest.mark.parametrize("threads", ["1", "2"])
def test_num_threads_none_follows_omp_num_threads(threads):
    out = run_python("""
        from cypool import _runtime
        from cypool._parallel import resolve_num_threads
        print(_runtime.max_threads(), resolve_num_threads(None, 1 << 30))
        """, OMP_NUM_THREADS=threads)
    # resolve_num_threads never exceeds the CPUs the process may use.
    assert out.split() == [threads, str(min(int(threads), _runtime.usable_cpus()))]


# ================================================================ more threads than can run


def test_num_threads_above_the_usable_cpus_is_reduced_to_them():
    limit = _runtime.usable_cpus() if _runtime.OPENMP_ENABLED else 1
    assert resolve_num_threads(1000, 1 << 30) <= limit
    assert resolve_num_threads(None, 1 << 30) <= limit
    x = np.random.default_rng(3).standard_normal((8, 64, 64, 64), dtype=np.float32)
    want = cypool.max_pool2d(x, 3, 2, 1, num_threads=1)
    assert np.array_equal(cypool.max_pool2d(x, 3, 2, 1, num_threads=1000), want)


def run_limited(code: str, address_space: int | None, stack: int | None = None, **env):
    """`code` in a fresh interpreter whose address space (and stack size, which sets the
    default stack of every thread it starts) is limited, as `ulimit -v` and `ulimit -s` do.
    Returns the CompletedProcess (an abort shows as a negative return code)."""
    resource = pytest.importorskip("resource")

    def limit():
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if stack is not None:
            resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit)


LIMITED_CALL = """
    import numpy as np, cypool
    from cypool import _runtime
    x = np.random.default_rng(0).standard_normal((8, 64, 64, 64), dtype=np.float32)
    want = cypool.max_pool2d(x, 3, 2, 1, num_threads=1)
    got = cypool.max_pool2d(x, 3, 2, 1, num_threads=NUM_THREADS)
    assert np.array_equal(got, want)
    print("threads", _runtime.runnable_threads(1000))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="rlimits as on Linux")
@pytest.mark.parametrize("num_threads, env", [("1000", {}), ("None", {"OMP_NUM_THREADS": "1000"})])
def test_a_thousand_threads_under_an_address_space_limit(num_threads, env):
    """`ulimit -v 3000000` (3 GB): a thousand thread stacks of 8 MiB do not fit. OpenMP would
    abort the interpreter ("libgomp: Thread creation failed"); cypool runs at most one thread
    per usable CPU, and the results are those of one thread."""
    proc = run_limited(LIMITED_CALL.replace("NUM_THREADS", num_threads), 3_000_000 * 1024, **env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) <= _runtime.usable_cpus()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="rlimits as on Linux")
def test_threads_the_os_cannot_start_leave_the_call_to_fewer():
    """Each thread's default stack set to 2 GB, and 1 GB of address space left after the
    imports: the OS cannot start even one more thread. The call still runs, on one thread,
    where OpenMP would abort."""
    code = LIMITED_CALL.replace("NUM_THREADS", "2").replace("""
    want = cypool""", """
    import resource
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), mapped + (1 << 30)))
    want = cypool""")
    proc = run_limited(code, None, stack=2 << 30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "1"
