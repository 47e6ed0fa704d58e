"""cypool.dask on an on-disk zarr array: avg_pool 2x2 stored to zarr, against merely reading it.

An (8192, 8192) float32 zarr array (256 MiB in 64 chunks of 4 MiB, uncompressed so that reading
it is reading bytes, not decompressing them) is written once by setup_cache into asv's cache
directory. The floor is ``da.from_zarr(path).sum()``; the pyramid step reads every chunk, pools
it 2x2 and writes the result to another zarr array. Both run on dask's threaded scheduler with 2
threads, as `python -m cypool bench --dask` does (which times a 2 GB array against the same
floor in one run). peakmem: the process's peak RSS, which must stay a few chunks above the
interpreter's own, far below the array's size.

Self-contained (no cypool._bench_dask import) so the suite also runs against older commits;
skipped (NotImplementedError) where dask, zarr or cypool.dask is missing.
"""

import os
import shutil
import tempfile

SHAPE = (8192, 8192)
CHUNKS = (1024, 1024)
THREADS = 2


def _missing():
    """Why this benchmark cannot run here, or None."""
    try:
        import dask.array  # noqa: F401
        import zarr  # noqa: F401

        import cypool.dask  # noqa: F401
    except ImportError as error:
        return f"needs dask, zarr and cypool.dask: {error}"
    return None


def _uncompressed():
    """The zarr keyword that turns compression off: its name changed in zarr 3."""
    import zarr

    return {"compressors": None} if int(zarr.__version__.split(".")[0]) >= 3 else {"compressor": None}


class DaskZarr:
    timeout = 300

    def setup_cache(self):
        """The input array's path, or None where dask, zarr or cypool.dask is missing. asv
        passes a None cache to no method, so every method's path defaults to None and setup
        then skips."""
        if _missing():
            return None
        import dask.array as da
        import numpy as np

        path = os.path.abspath("input.zarr")
        x = da.random.default_rng(0).random(SHAPE, dtype=np.float32, chunks=CHUNKS)
        da.to_zarr(x, path, compute=False, **_uncompressed()).compute(scheduler="threads",
                                                                       num_workers=THREADS)
        return path

    def setup(self, path=None):
        problem = _missing()
        if path is None or problem:
            raise NotImplementedError(problem or "no input array")
        import dask.array as da

        import cypool.dask

        x = da.from_zarr(path)
        self.out = tempfile.mkdtemp(prefix="cypool-asv-dask-")
        pooled = cypool.dask.avg_pool(x, (2, 2), axes=(0, 1))
        self.store = da.to_zarr(pooled, os.path.join(self.out, "pooled.zarr"), compute=False,
                                **_uncompressed())
        self.floor = x.sum()

    def teardown(self, path=None):
        if getattr(self, "out", None):
            shutil.rmtree(self.out, ignore_errors=True)
        self.store = self.floor = None

    def time_avg_pool_2x2_to_zarr(self, path=None):
        self.store.compute(scheduler="threads", num_workers=THREADS)

    def peakmem_avg_pool_2x2_to_zarr(self, path=None):
        self.store.compute(scheduler="threads", num_workers=THREADS)

    def time_read_floor_sum(self, path=None):
        self.floor.compute(scheduler="threads", num_workers=THREADS)

    def peakmem_read_floor_sum(self, path=None):
        self.floor.compute(scheduler="threads", num_workers=THREADS)
