"""A 2x2 mean pyramid of an image larger than the workers' memory, with cypool.dask on a
dask.distributed LocalCluster, stored in zarr.

    python examples/dask_pyramid.py                # 16384x16384 float32 (1.07 GB), 2 x 512 MiB workers
    python examples/dask_pyramid.py --small        # 2048x2048, a few seconds
    python examples/dask_pyramid.py --zarr DIR     # keep the pyramid in DIR/pyramid.zarr

Needs ``pip install "cypool[dask]"`` (dask, distributed and zarr).

Level 0 is a seeded random float32 image that the workers generate and write to zarr tile by
tile: it never exists whole anywhere, neither in the client nor on a worker. Level i+1 is
``cypool.dask.avg_pool(level_i, (2, 2), axes=(0, 1))`` of level i read back from zarr, written
to zarr in turn. The zarr group holds one array per level, "0" (the image) to "LEVELS", every
level in tiles of ``--chunk``: each task reads a 2x2 block of tiles of level i and writes one
tile of level i+1, so a worker holds a few tiles at a time whatever the image size.

Spot checks: for a few random tiles of each level, the matching region of level 0 is read and
pooled in memory by ``cypool.avg_pool`` once per level. The pyramid rounds each level to float32
before pooling it again, and so do the checks, so the tiles must be equal to the last bit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import dask.array as da
import numpy as np
import zarr
from distributed import Client, LocalCluster

import cypool
import cypool.dask

# A spot check pools a region of level 0 this many pixels wide (4 MiB of float32).
CHECK_SIDE = 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zarr", metavar="DIR",
                        help="where to write pyramid.zarr (default: a temporary directory, removed)")
    parser.add_argument("--size", type=int, default=16384, help="image side in pixels (float32)")
    parser.add_argument("--chunk", type=int, default=1024, help="tile side of every level")
    parser.add_argument("--levels", type=int, default=4, help="levels pooled above the image")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--memory-limit", default="512MiB", help="memory limit of each worker")
    parser.add_argument("--checks", type=int, default=3, help="random tiles checked per level")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image and the checks")
    parser.add_argument("--dashboard", metavar="ADDRESS", default=None,
                        help="serve the dask dashboard there, e.g. :8787 (default: none)")
    parser.add_argument("--small", action="store_true",
                        help="a 2048x2048 image in 256x256 tiles: runs in seconds")
    args = parser.parse_args(argv)
    if args.small:
        args.size, args.chunk = 2048, 256
    if args.size >> args.levels < 1:
        parser.error(f"--size {args.size} is too small for {args.levels} levels of 2x2 pooling")
    return args


def write_image(path: str, size: int, chunk: int, seed: int) -> float:
    """Generate level 0 on the workers, tile by tile, and write it; returns the seconds taken."""
    image = da.random.default_rng(seed).random((size, size), dtype=np.float32, chunks=chunk)
    start = time.perf_counter()
    da.to_zarr(image, path, component="0", overwrite=True)
    return time.perf_counter() - start


def build_level(path: str, level: int, chunk: int) -> tuple[tuple[int, ...], float, int]:
    """Pool level - 1 into `level`; returns the new shape, the seconds taken and the bytes read.

    Level - 1 is read in 2x2 blocks of its tiles, so that level's tiles come out `chunk` wide."""
    below = da.from_zarr(path, component=str(level - 1), chunks=2 * chunk)
    pooled = cypool.dask.avg_pool(below, (2, 2), axes=(0, 1))
    start = time.perf_counter()
    da.to_zarr(pooled, path, component=str(level), overwrite=True)
    return pooled.shape, time.perf_counter() - start, below.nbytes


def spot_check(group, level: int, rng: np.random.Generator, checks: int) -> int:
    """How many of `checks` random tiles of `level` equal cypool.avg_pool applied `level` times
    to the matching region of level 0 (read from zarr, a few MiB)."""
    scale = 2**level
    stored = group[str(level)]
    side = [min(max(1, CHECK_SIDE // scale), n) for n in stored.shape]
    matches = 0
    for _ in range(checks):
        first = [int(rng.integers(0, n - s + 1)) for n, s in zip(stored.shape, side)]
        tile = tuple(slice(f, f + s) for f, s in zip(first, side))
        expected = group["0"][tuple(slice(t.start * scale, t.stop * scale) for t in tile)]
        for _ in range(level):
            expected = cypool.avg_pool(expected, (2, 2), axes=(0, 1))
        matches += bool(np.array_equal(stored[tile], expected))
    return matches


def worker_peak_rss() -> int | None:
    """Peak RSS of this process in bytes (ru_maxrss is KiB on Linux, bytes on macOS), or None
    where there is no resource module (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run(args: argparse.Namespace, path: str) -> bool:
    """Build and check the pyramid at `path` on a fresh LocalCluster; True when every check passed."""
    image_bytes = args.size * args.size * 4
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      memory_limit=args.memory_limit, dashboard_address=args.dashboard) as cluster, \
            Client(cluster) as client:
        print(f"cluster: {args.workers} workers x 1 thread, memory limit {args.memory_limit} each; "
              f"image {args.size}x{args.size} float32 ({image_bytes / 1e9:.2f} GB) "
              f"in {args.chunk}x{args.chunk} tiles")
        seconds = write_image(path, args.size, args.chunk, args.seed)
        print(f"level 0: shape ({args.size}, {args.size}) generated and written in {seconds:.2f} s "
              f"({image_bytes / seconds / 1e9:.3g} GB/s)", flush=True)
        group = zarr.open_group(path, mode="r")
        rng = np.random.default_rng(args.seed)
        passed = True
        for level in range(1, args.levels + 1):
            shape, seconds, read = build_level(path, level, args.chunk)
            matches = spot_check(group, level, rng, args.checks)
            passed &= matches == args.checks
            print(f"level {level}: shape {shape} in {seconds:.2f} s ({read / seconds / 1e9:.3g} GB/s "
                  f"read); {matches}/{args.checks} random tiles equal cypool.avg_pool", flush=True)
        peaks = list(client.run(worker_peak_rss).values())
        if None not in peaks:
            print("peak worker RSS: " + ", ".join(f"{p / 2**20:.0f} MiB" for p in peaks)
                  + f" (limit {args.memory_limit})")
    return passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.zarr or tempfile.mkdtemp(prefix="cypool-pyramid-")
    path = os.path.join(root, "pyramid.zarr")
    try:
        passed = run(args, path)
    finally:
        if args.zarr is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"pyramid: {path}" if args.zarr else "pyramid: removed (pass --zarr DIR to keep it)")
    if not passed:
        print("FAILED: some tiles differ from cypool.avg_pool")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
