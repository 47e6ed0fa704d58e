"""The asv suite skips cleanly where an optional dependency is missing (asv's protocol,
emulated: setup_cache, then setup and each benchmark with its value only when it is not None);
skipped where the suite is not shipped (tests run from an installed wheel)."""

import importlib.util
import inspect
import os
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "asv_benchmarks")
if not os.path.isdir(ROOT):
    pytest.skip("the asv suite is not shipped with the tests", allow_module_level=True)


def load(name):
    """asv_benchmarks.<name>, imported as asv imports it (a package, for its relative imports)."""
    parent = os.path.dirname(ROOT)
    sys.path.insert(0, parent)
    try:
        return importlib.import_module(f"asv_benchmarks.{name}")
    finally:
        sys.path.remove(parent)


def benchmark_methods(cls):
    return [m for m in dir(cls) if m.split("_")[0] in ("time", "peakmem", "mem", "track")]


def run_as_asv(cls):
    """Each benchmark of cls as asv runs it: the NotImplementedError of a skip propagates."""
    instance = cls()
    cache = instance.setup_cache() if hasattr(instance, "setup_cache") else None
    args = () if cache is None else (cache,)
    for method in benchmark_methods(cls):
        bench = cls()
        if hasattr(bench, "setup"):
            bench.setup(*args)
        getattr(bench, method)(*args)


def test_dask_benchmark_skips_where_zarr_is_missing(monkeypatch):
    """With dask installed but zarr missing, setup() once failed with a TypeError ("missing 1
    required positional argument: 'path'"): asv passes a None cache to no method."""
    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` raises ImportError
    bench = load("bench_dask")
    with pytest.raises(NotImplementedError, match="zarr"):
        run_as_asv(bench.DaskZarr)


def test_every_cached_benchmark_takes_a_missing_cache():
    """Wherever setup_cache may return None, setup, teardown and every benchmark method must
    be callable without the cache argument."""
    for file in sorted(os.listdir(ROOT)):
        if not file.startswith("bench_") or not file.endswith(".py"):
            continue
        module = load(file[:-3])
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not hasattr(cls, "setup_cache"):
                continue
            for name in ["setup", "teardown", *benchmark_methods(cls)]:
                if not hasattr(cls, name):
                    continue
                params = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
                assert all(p.default is not inspect.Parameter.empty for p in params), (
                    f"{file}: {cls.__name__}.{name} needs its cache argument")
