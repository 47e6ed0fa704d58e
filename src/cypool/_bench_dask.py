"""`python -m cypool bench --dask`: cypool.dask pooling an on-disk zarr array chunk by chunk.

A float32 zarr array (0.5 GiB with ``--quick``, else 2 GiB; 16 MiB chunks, uncompressed so that
the floor is reading bytes, not decompressing them) is written to a temporary directory
(``TMPDIR``), then read back by each row in the same run:

- the floor: ``da.from_zarr(path).sum()``, merely reading the array;
- ``x[::2, ::2]`` stored to a zarr array: the I/O of a pyramid level without its arithmetic, to
  tell the cost of writing the output from the cost of pooling;
- avg and max pooling 2x2 (the step of an image pyramid), each stored to a zarr array, as a
  pyramid level is;
- ``global_avg_pool`` over both axes, a reduction to one value.

GB/s counts the input bytes read per second (median over runs); ``time/floor`` is the row's time
over the floor's, so 1 means pooling costs nothing beyond reading. Each row runs in a fresh
process, which also measures the row's peak memory: the peak RSS over the RSS just before the
computation. It must stay at a few chunks whatever the array size, so every row also runs on an
array 4 times smaller; the two peaks should be about the same. (With glibc the peak is about
twice the chunks alive at once: freed chunk buffers stay in malloc's heap for reuse.)

dask and zarr are imported only here, inside functions: the rest of cypool never needs them.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

CHUNK = (2048, 2048)  # float32: 16 MiB
ITEMSIZE = 4
MIB = 2**20

# The rows, in order, the floor first (the others' time/floor): (name, what the row produces).
ROWS = (
    ("read floor: sum", "scalar"),
    ("x[::2, ::2]", "zarr"),
    ("avg 2x2", "zarr"),
    ("max 2x2", "zarr"),
    ("global avg", "scalar"),
)


@dataclass(frozen=True)
class DaskSettings:
    """``shape`` is timed; ``small_shape`` (4 times smaller) only shows that the peak memory does
    not grow with the array."""

    shape: tuple[int, int]
    small_shape: tuple[int, int]
    chunk: tuple[int, int]
    repeats: int

    @classmethod
    def for_mode(cls, quick: bool) -> "DaskSettings":
        if quick:
            return cls((8192, 16384), (4096, 8192), CHUNK, repeats=3)
        return cls((16384, 32768), (8192, 16384), CHUNK, repeats=5)


def missing_dependency() -> str | None:
    """Why the dask bench cannot run here, or None when dask, zarr and cypool.dask import."""
    try:
        import dask.array  # noqa: F401
        import zarr  # noqa: F401

        import cypool.dask  # noqa: F401
    except ImportError as error:
        return f'bench --dask needs dask and zarr: pip install "cypool[dask]" ({error})'
    return None


def uncompressed() -> dict[str, Any]:
    """The zarr keyword that turns compression off: its name changed in zarr 3."""
    import zarr

    return {"compressors": None} if int(zarr.__version__.split(".")[0]) >= 3 else {"compressor": None}


def write_input(path: str, shape: tuple[int, int], chunk: tuple[int, int], threads: int) -> None:
    """A seeded uniform float32 array written to zarr chunk by chunk, never whole in memory."""
    import dask.array as da
    import numpy as np

    x = da.random.default_rng(0).random(shape, dtype=np.float32, chunks=chunk)
    da.to_zarr(x, path, **uncompressed(), compute=False).compute(scheduler="threads",
                                                                  num_workers=threads)


# ---------------------------------------------------------------------------------------------
# One row in a fresh process


def row_thunk(name: str, src: str, dst: str) -> Callable[[], Any]:
    """The row's computation of the zarr array at `src` as a zero-argument callable (the graph
    and any output array are built beforehand, outside the timings)."""
    import dask.array as da

    import cypool.dask

    x = da.from_zarr(src)
    if name == "read floor: sum":
        return x.sum().compute
    if name == "global avg":
        return cypool.dask.global_avg_pool(x, axes=(0, 1)).compute
    if name == "x[::2, ::2]":
        y = x[::2, ::2]
    else:
        pool = cypool.dask.avg_pool if name == "avg 2x2" else cypool.dask.max_pool
        y = pool(x, (2, 2), axes=(0, 1))
    return da.to_zarr(y, dst, overwrite=True, compute=False, **uncompressed()).compute


def _maxrss() -> int | None:
    """This process's peak RSS in bytes (ru_maxrss is KiB on Linux, bytes on macOS), or None
    where there is no resource module (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def rss_baseline() -> tuple[int | None, Callable[[], int | None]]:
    """The RSS now and a callable giving the peak RSS since, in bytes (None: not measurable
    here). On Linux the kernel's high-water mark (VmHWM) is reset to the current RSS first, so
    the peak is the computation's own; elsewhere it is ru_maxrss, whose high-water mark may date
    from the imports."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _proc_status("VmRSS:"), lambda: _proc_status("VmHWM:")
    except OSError:
        return _maxrss(), _maxrss


def measure_row(name: str, src: str, dst: str, threads: int, repeats: int) -> dict[str, Any]:
    """Times of `repeats` runs of a row after a warm-up run (the first run pays for page faults
    and lazy set-up), and the peak RSS of them all, measured in this process."""
    import dask

    run = row_thunk(name, src, dst)
    with dask.config.set(scheduler="threads", num_workers=threads):
        base, peak = rss_baseline()
        run()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        return {"times": times, "base": base, "peak": peak()}


def child_main(argv: list[str]) -> None:
    """Entry point of the row's process: one JSON argument in, one JSON line out."""
    print(json.dumps(measure_row(**json.loads(argv[0]))))


def run_in_child(**spec: Any) -> dict[str, Any]:
    """measure_row in a fresh Python process (so that its peak RSS is the row's alone), with
    this cypool first on its path."""
    import cypool

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(cypool.__file__)))
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    code = "import sys; from cypool._bench_dask import child_main; child_main(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": path})
    if proc.returncode != 0:
        raise RuntimeError(f"bench --dask row {spec['name']!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Table


COLUMNS = (
    ("op", 16, "<"),
    ("output", 6, "<"),
    ("GB/s", 6, ">"),
    ("time/floor", 10, ">"),
    ("peak MiB small", 14, ">"),
    ("peak MiB", 9, ">"),
    ("chunks", 6, ">"),
    ("RSS MiB", 8, ">"),
)


def _row(values) -> str:
    return "  ".join(f"{str(v):{align}{width}}" for v, (_, width, align) in zip(values, COLUMNS)).rstrip()


def _growth(measured: dict[str, Any]) -> int | None:
    """A row's peak RSS over its RSS before the computation."""
    if measured["peak"] is None or measured["base"] is None:
        return None
    return measured["peak"] - measured["base"]


def _scaled(value: int | None, unit: int, spec: str) -> str:
    return "-" if value is None else format(value / unit, spec)


def _gb(shape: tuple[int, int]) -> str:
    return f"{shape[0] * shape[1] * ITEMSIZE / 1e9:.2f} GB"


def _header(settings: DaskSettings, quick: bool, threads: int, where: str) -> list[str]:
    import dask
    import zarr

    import cypool

    chunk_mib = settings.chunk[0] * settings.chunk[1] * ITEMSIZE / MIB
    return [
        f"cypool {cypool.__version__} dask bench ({'quick' if quick else 'full'})",
        f"dask {dask.__version__}, zarr {zarr.__version__}; threaded scheduler, {threads} threads "
        f"(cypool: 1 OpenMP thread per chunk task)",
        f"float32 zarr arrays in {where}: uncompressed, chunks "
        f"{settings.chunk[0]}x{settings.chunk[1]} ({chunk_mib:g} MiB), just written (page cache warm)",
        f"timed: {settings.shape} {_gb(settings.shape)}, median of {settings.repeats} runs after a "
        f"warm-up, in a fresh process per row; peak memory also on {settings.small_shape} "
        f"{_gb(settings.small_shape)}",
    ]


def _footer() -> list[str]:
    return [
        "GB/s: input bytes read per second; time/floor: the row's time over merely reading the",
        "array (sum); output zarr: the result is stored to zarr, as a pyramid level is (x[::2, ::2]:",
        "the same reads and writes without pooling).",
        "peak MiB: peak RSS over the RSS before the computation, on the timed array (small: on the",
        "4x smaller one); chunks: that peak in input chunks; RSS MiB: the process's absolute peak.",
    ]


def run(quick: bool, threads: int | None, *, settings: DaskSettings | None = None) -> int:
    """Write the input arrays, then print one line per row; `threads` is dask's (default 2)."""
    problem = missing_dependency()
    if problem is not None:
        print(problem)
        return 1
    threads = 2 if threads is None else threads
    if threads < 1:
        print(f"bench: --threads must be >= 1, got {threads}")
        return 2
    settings = DaskSettings.for_mode(quick) if settings is None else settings
    chunk_bytes = settings.chunk[0] * settings.chunk[1] * ITEMSIZE
    nbytes = settings.shape[0] * settings.shape[1] * ITEMSIZE
    work = tempfile.mkdtemp(prefix="cypool-bench-dask-")
    try:
        for line in _header(settings, quick, threads, work):
            print(line)
        sources = {}
        for label, shape in (("small", settings.small_shape), ("timed", settings.shape)):
            sources[label] = os.path.join(work, f"{label}.zarr")
            write_input(sources[label], shape, settings.chunk, threads)
        print()
        print(_row([c[0] for c in COLUMNS]))
        print(_row(["-" * c[1] for c in COLUMNS]), flush=True)
        floor = None
        for name, output in ROWS:
            dst = os.path.join(work, "out.zarr")
            small = run_in_child(name=name, src=sources["small"], dst=dst, threads=threads,
                                 repeats=1)
            timed = run_in_child(name=name, src=sources["timed"], dst=dst, threads=threads,
                                 repeats=settings.repeats)
            t = statistics.median(timed["times"])
            floor = t if floor is None else floor
            peak = _growth(timed)
            print(_row([name, output, f"{nbytes / t / 1e9:.2f}", f"{t / floor:.2f}",
                        _scaled(_growth(small), MIB, ".0f"), _scaled(peak, MIB, ".0f"),
                        _scaled(peak, chunk_bytes, ".1f"), _scaled(timed["peak"], MIB, ".0f")]),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    for line in _footer():
        print(line)
    return 0
