"""Type information stays honest: mypy.stubtest compares the compiled modules with their .pyi
stubs (as pykdtree does), and mypy --strict accepts a script that calls every public function."""

import os
import subprocess
import sys

import pytest

import cypool

pytest.importorskip("mypy")

HERE = os.path.dirname(os.path.abspath(__file__))
COMPILED = ["cypool._runtime", "cypool._window_kernels"]
# The directory holding the cypool package under test (a source tree, or site-packages for an
# installed wheel). mypy runs from there: it finds the package and its stubs in its working
# directory, whereas an editable install's import hook is invisible to it.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cypool.__file__)))


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=PACKAGE_PARENT, capture_output=True,
                          text=True, timeout=600)


def test_stubs_match_the_compiled_modules():
    modules = list(COMPILED)
    try:
        import cypool._window_kernels_avx2  # noqa: F401  (built on x86-64 only)
        modules.append("cypool._window_kernels_avx2")
    except ImportError:
        pass
    result = run("mypy.stubtest", *modules, "--allowlist",
                 os.path.join(HERE, "stubtest_allowlist.txt"))
    assert result.returncode == 0, result.stdout + result.stderr


EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "typed_usage.py")
# Strict for the user's script; cypool's own modules are checked as an installed PEP 561
# package's would be (their inner errors are not the user's), but an unannotated public
# function still fails the script with "call to untyped function".
STRICT_CONFIG = "[mypy]\nstrict = True\n\n[mypy-cypool.*]\nignore_errors = True\n"


@pytest.fixture
def example():
    if not os.path.exists(EXAMPLE):
        pytest.skip("examples/ is not shipped with the tests (installed-wheel run)")
    return EXAMPLE


def test_example_calls_every_public_function(example):
    with open(example) as f:
        text = f.read()
    missing = [name for name in cypool.__all__ if name != "__version__" and f"cypool.{name}(" not in text]
    assert not missing


def test_mypy_strict_accepts_the_example(example, tmp_path):
    config = tmp_path / "mypy.ini"
    config.write_text(STRICT_CONFIG)
    result = run("mypy", "--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), example)
    assert result.returncode == 0, result.stdout + result.stderr
