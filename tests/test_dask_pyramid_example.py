"""examples/dask_pyramid.py --small runs end to end: a LocalCluster of 2 worker processes builds
and spot-checks a 4-level 2x2 mean pyramid in zarr."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cypool

pytest.importorskip("dask.array")
pytest.importorskip("distributed")
pytest.importorskip("zarr")

# Absent when the tests run against an installed wheel, outside the source tree.
EXAMPLE = Path(__file__).parents[1] / "examples" / "dask_pyramid.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/ is not here (tests of an installed wheel)")
def test_small_pyramid_on_a_local_cluster(tmp_path):
    # The workers are fresh processes: they must import the cypool under test.
    package_parent = str(Path(cypool.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--small", "--zarr", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    levels = re.findall(r"^level (\d): shape \((\d+), (\d+)\).*?(\d)/(\d) random tiles equal",
                        proc.stdout, re.MULTILINE)
    assert [(int(a), int(h), int(w)) for a, h, w, _, _ in levels] == [
        (1, 1024, 1024), (2, 512, 512), (3, 256, 256), (4, 128, 128)
    ]
    assert all(ok == total for *_, ok, total in levels)
    assert "cluster: 2 workers" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "pyramid.zarr").iterdir() if p.is_dir()) == [
        "0", "1", "2", "3", "4"
    ]
