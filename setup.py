"""Build cypool's Cython extensions, with OpenMP when the compiler supports it.

The OpenMP probe follows scikit-learn's ``_build_utils/openmp_helpers.py``: compile and link a
tiny program with the platform's OpenMP flags; if that fails, build serial. The kernels are the
same either way: ``src/cypool/_openmp.pxd`` supplies serial stand-ins when ``_OPENMP`` is
undefined.

Environment:
    CYPOOL_DISABLE_OPENMP=1   build a serial extension (no OpenMP runtime linked).
    CYPOOL_LIBOMP_PREFIX=DIR  macOS only: the libomp to try (DIR/include/omp.h, DIR/lib/libomp),
                              e.g. ``$(brew --prefix libomp)`` or ``$CONDA_PREFIX``. Apple's clang
                              has no OpenMP of its own: without a libomp that the probe can
                              compile and link against, the build is serial.
    CYPOOL_NATIVE=1           add -march=native (source builds only; never for wheels: a build
                              under cibuildwheel refuses it, and pyproject.toml's
                              [tool.cibuildwheel] sets CYPOOL_NATIVE=0).
"""

import json
import os
import platform
import re
import shutil
import sys
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Compiler directives live here and nowhere else.
COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
    "embedsignature": True,
}

# module name -> source; "_avx2" modules are the same kernels compiled for AVX2 and are chosen
# at run time (cypool/_kernels.py) only on CPUs that have it.
EXTENSIONS = {
    "_runtime": "src/cypool/_runtime.pyx",
    "_window_kernels": "src/cypool/_window_kernels.pyx",
    "_window_kernels_avx2": "src/cypool/_window_kernels_avx2.pyx",
}


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _openmp_flags(compiler):
    """(compile_args, link_args) that enable OpenMP for this compiler type and platform."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp; a Homebrew/conda libomp works with -Xpreprocessor.
        prefix = os.environ.get("CYPOOL_LIBOMP_PREFIX", "")
        inc = [f"-I{prefix}/include"] if prefix else []
        lib = [f"-L{prefix}/lib"] if prefix else []
        return ["-Xpreprocessor", "-fopenmp", *inc], [*lib, "-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


PROBE_SOURCE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
    """
)


def _probe_openmp(compiler, compile_args, link_args):
    """True when a program using OpenMP compiles and links with these flags."""
    tmp = tempfile.mkdtemp(prefix="cypool-omp-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(PROBE_SOURCE)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=link_args)
        return True
    except Exception as exc:  # any compile or link error means: build serial
        print(f"cypool: OpenMP probe failed ({type(exc).__name__}); building serial")
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that decides on OpenMP once and never reuses objects built the other way."""

    def finalize_options(self):
        super().finalize_options()
        # The two kernel modules take most of the build: compile the extensions side by side,
        # one per CPU (`build_ext -j`), unless the caller chose a count.
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        compile_args, link_args = [], []
        use_openmp = not _env_flag("CYPOOL_DISABLE_OPENMP")
        if use_openmp:
            omp_compile, omp_link = _openmp_flags(self.compiler)
            use_openmp = _probe_openmp(self.compiler, omp_compile, omp_link)
            if use_openmp:
                compile_args += omp_compile
                link_args += omp_link
        if self.compiler.compiler_type == "msvc":
            compile_args += ["/O2"]
        else:
            compile_args += ["-O3", "-fno-math-errno"]
            if _env_flag("CYPOOL_NATIVE"):
                if os.environ.get("CIBUILDWHEEL") == "1":
                    raise SystemExit("cypool: CYPOOL_NATIVE=1 is for source builds only; "
                                     "wheels must run on any CPU of their platform")
                compile_args += ["-march=native"]

        # Objects and .so files built with the other OpenMP setting must not survive: setuptools
        # only compares timestamps, so a stale cache once mixed serial and OpenMP objects.
        config = {"openmp": use_openmp, "args": compile_args, "link": link_args}
        stamp = os.path.join(self.build_temp, "cypool-build-config.json")
        previous = None
        if os.path.exists(stamp):
            with open(stamp) as f:
                previous = json.load(f)
        if previous != config:
            self.force = True
        print(f"cypool: building with OpenMP={use_openmp}")

        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args) + compile_args
            ext.extra_link_args = list(ext.extra_link_args) + link_args
        super().build_extensions()

        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            json.dump(config, f)


def _target_archs():
    """The CPU architectures the extensions are compiled for, which differ from the building
    machine's when cross-compiling (cibuildwheel sets ARCHFLAGS and _PYTHON_HOST_PLATFORM for
    macOS x86_64 <-> arm64; sysconfig.get_platform() honours the latter)."""
    if sys.platform == "darwin":
        archs = re.findall(r"-arch\s+(\S+)", os.environ.get("ARCHFLAGS", ""))
        if archs:
            return {a.lower() for a in archs}
    plat = sysconfig.get_platform().lower()  # linux-x86_64, macosx-11.0-arm64, win-amd64, ...
    if plat.startswith(("linux", "macosx", "win")):
        return {plat.rsplit("-", 1)[-1]}
    return {platform.machine().lower()}


def _builds_avx2():
    """AVX2 variants are built for x86-64 targets with gcc or clang (not MSVC, not universal2
    or other multi-arch builds); elsewhere only the baseline."""
    archs = _target_archs()
    return sys.platform != "win32" and len(archs) == 1 and archs <= {"x86_64", "amd64"}


def _extensions():
    exts = []
    for name, source in EXTENSIONS.items():
        extra = []
        if name.endswith("_avx2"):
            if not _builds_avx2():
                continue
            # No -mfma: without contraction the AVX2 kernels round exactly as the baseline.
            extra = ["-mavx2"]
        exts.append(
            Extension(
                f"cypool.{name}",
                [source],
                include_dirs=[numpy.get_include()],
                # Built against NumPy 2.x, the extensions target the C API of NumPy 1.25, the
                # oldest NumPy that pyproject.toml accepts at run time.
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
                               ("NPY_TARGET_VERSION", "NPY_1_25_API_VERSION")],
                extra_compile_args=extra,
                depends=[f"src/cypool/{name}" for name in (
                    "_window_impl.pxi", "_backward_impl.pxi", "_global_impl.pxi",
                    "_sequence_impl.pxi", "_openmp.pxd", "_simd.pxd")],
            )
        )
    # The generated C does not depend on the OpenMP setting (Cython guards its pragmas with
    # #ifdef _OPENMP), so cythonize's cache is safe to share between both kinds of build.
    return cythonize(
        exts,
        compiler_directives=COMPILER_DIRECTIVES,
        depfile=False,
        quiet=True,
        nthreads=os.cpu_count() or 1,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
