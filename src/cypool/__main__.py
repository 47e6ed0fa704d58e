"""Command line: `python -m cypool info`, `python -m cypool bench [--quick] [--dask]` and
`python -m cypool --version`."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from cypool._version import __version__

    parser = argparse.ArgumentParser(prog="python -m cypool")
    parser.add_argument("--version", action="version", version=f"cypool {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="version, OpenMP, threads, dtypes and compiler of this build")
    bench = commands.add_parser("bench", help="time the kernels against NumPy, PyTorch and the roofline")
    bench.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    bench.add_argument("--threads", type=int, default=None,
                       help="threads for cypool and torch (with --dask: dask's threads, default 2)")
    bench.add_argument("--dask", action="store_true",
                       help="cypool.dask on an on-disk zarr array against merely reading it "
                            "(needs dask and zarr)")
    args = parser.parse_args(argv)
    if args.command == "info":
        from cypool._info import format_info

        print(format_info())
        return 0
    if args.dask:
        from cypool._bench_dask import run as run_dask

        return run_dask(quick=args.quick, threads=args.threads)
    from cypool._bench import run

    return run(quick=args.quick, threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
