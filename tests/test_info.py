"""The build reports what it is: `python -m cypool info` and the OpenMP shim."""

import os
import subprocess
import sys

import cypool
from cypool import _runtime
from cypool._dtypes import ORDER_DTYPES


def test_info_command_prints_every_field():
    result = subprocess.run(
        [sys.executable, "-m", "cypool", "info"], capture_output=True, text=True, check=True
    )
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert lines["version"] == cypool.__version__
    assert lines["OpenMP"] == str(_runtime.OPENMP_ENABLED)
    assert int(lines["max threads"]) >= 1
    assert lines["dtypes"].split(", ") == [d.name for d in ORDER_DTYPES]
    assert lines["compiler"] and lines["compiler"] != "unknown"


def test_build_kind_matches_the_environment_it_was_built_in():
    # CI builds with OpenMP unless CYPOOL_DISABLE_OPENMP=1 was set for the build.
    if os.environ.get("CYPOOL_DISABLE_OPENMP") == "1":
        assert not _runtime.OPENMP_ENABLED
    if not _runtime.OPENMP_ENABLED:
        assert _runtime.max_threads() == 1


def test_max_threads_honours_omp_num_threads():
    code = "from cypool import _runtime; print(_runtime.max_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert one.stdout.strip() == "1"


def test_every_compiled_module_was_built_the_same_way():
    from cypool import _window_kernels

    assert _window_kernels.OPENMP_ENABLED == _runtime.OPENMP_ENABLED


def test_version_flag_prints_the_version():
    result = subprocess.run([sys.executable, "-m", "cypool", "--version"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cypool {cypool.__version__}"


def test_python_m_cypool_in_the_repository_root_imports_no_source_folder():
    """`python -m cypool` typed in the clone's root put the uncompiled ./cypool folder first
    on sys.path, and `pip install . && python -m cypool bench --quick` failed there (ImportError:
    cannot import name '_runtime'). With the src layout the root holds no package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "pyproject.toml")):
        import pytest

        pytest.skip("the tests run outside the source tree")
    result = subprocess.run([sys.executable, "-c", "import cypool; print(cypool.__file__)"],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.path.dirname(os.path.realpath(result.stdout.strip())) != os.path.join(
        os.path.realpath(root), "cypool")
    assert not os.path.exists(os.path.join(root, "cypool", "__init__.py"))
