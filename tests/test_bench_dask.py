"""`python -m cypool bench --dask` on a tiny zarr array, and its message when dask is missing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cypool
from cypool._bench_dask import ROWS, DaskSettings, run

PACKAGE_PARENT = str(Path(cypool.__file__).resolve().parents[1])


def test_tiny_dask_bench_prints_every_row(capsys):
    pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    settings = DaskSettings(shape=(512, 1024), small_shape=(256, 512), chunk=(128, 128), repeats=1)
    assert run(quick=True, threads=2, settings=settings) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:16].strip(): line.split() for line in lines if line[:16].strip() in dict(ROWS)}
    assert list(rows) == [name for name, _ in ROWS]
    # After the name: output, GB/s, time/floor, peak MiB small, peak MiB, chunks, RSS MiB.
    assert rows["read floor: sum"][-5] == "1.00"  # the floor's time over itself
    for name, fields in rows.items():
        assert float(fields[-6]) > 0, (name, fields)  # GB/s
        assert fields[-2] == "-" or float(fields[-2]) >= 0, (name, fields)  # peak in chunks


def test_dask_bench_without_dask_says_what_to_install(tmp_path):
    fake = tmp_path / "dask"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no dask in this test')\n")
    path = os.pathsep.join([str(tmp_path), PACKAGE_PARENT])
    proc = subprocess.run([sys.executable, "-m", "cypool", "bench", "--dask", "--quick"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'pip install "cypool[dask]"' in proc.stdout
