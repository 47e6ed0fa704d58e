#!/usr/bin/env bash
# Build cypool's extensions with AddressSanitizer (gcc's libasan) and run the test suite under it
# (issue 6, "Sanitizers").
#
#   tools/asan.sh                          # the whole suite (tests/)
#   tools/asan.sh -k "not 2_31"            # extra arguments go to pytest, after "tests"
#   tools/asan.sh tests/test_sequence.py   # a path given here is run instead of tests/
#   CYPOOL_ASAN_KEEP=1 tools/asan.sh       # keep the temporary tree, venv and build
#
# The main tree's in-place build is never touched: the repository's HEAD (committed work only;
# uncommitted changes are NOT tested) is cloned into a temporary directory, which gets its own
# venv and its own in-place build.
#
# Compiler flags. setuptools puts $CFLAGS before the extension's extra_compile_args, and setup.py
# appends "-O3 -fno-math-errno" (and -fopenmp, -mavx2) there; with gcc the last -O wins, so
# CFLAGS="... -O1" alone would compile at -O3. CC is therefore a small wrapper around gcc that
# appends the sanitizer flags after everything setup.py adds; setup.py itself is unchanged. The
# compile lines are checked below, and the extensions are checked to link libasan.
#
# Running. Python is not instrumented, so libasan must be loaded first (LD_PRELOAD); the test
# subprocesses (python -c ..., python -m cypool) inherit LD_PRELOAD and ASAN_OPTIONS and run under
# ASan too. ASAN_OPTIONS:
#   detect_leaks=0              CPython's interned objects, caches and arenas that live until exit
#                               would drown LeakSanitizer in reports that are not cypool's
#                               (without ASan, tests/test_memory.py checks cypool's leaks by RSS
#                               and tracemalloc);
#   abort_on_error=1            an error aborts the process: pytest dies with the report on stderr;
#   allocator_may_return_null=1 a too-large allocation returns NULL (NumPy raises MemoryError) as
#                               with glibc, instead of ASan's fatal "allocation-size-too-big".
# Extra ASan options may be given in CYPOOL_ASAN_OPTIONS (appended, e.g. "quarantine_size_mb=64").
#
# Two leak tests of tests/test_memory.py measure RSS growth, which ASan's quarantine of freed
# blocks (256 MiB by default) makes grow without any leak (202 MiB over 95,000 calls here), and
# one test asserts a parallel speed-up; these are deselected (see DESELECT below;
# CYPOOL_ASAN_ALL_TESTS=1 keeps them). The torch tests skip when torch is not installed in the
# venv (it is not, by default; CYPOOL_ASAN_TORCH=1 tries to install it); so does test_stubs.py
# (mypy, not installed: stubtest has nothing for ASan to check).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cc="${CC:-gcc}"
asan_flags="-fsanitize=address -fno-omit-frame-pointer -O1 -g"
libasan="$("$cc" -print-file-name=libasan.so)"
if [[ "$libasan" != /* || ! -e "$libasan" ]]; then
    echo "asan: $cc has no libasan.so (gcc -print-file-name=libasan.so gave '$libasan');" \
         "install it (Debian: apt-get install libasan8 / gcc)" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/cypool-asan.XXXXXX")"
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    if [[ "${CYPOOL_ASAN_KEEP:-0}" == 1 ]]; then
        echo "asan: kept $work (tree: $work/cypool, venv: $work/venv)"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
start=$SECONDS
say() { echo "asan: $* ($((SECONDS - start)) s)"; }

# 1. A clone of HEAD.
git clone --quiet --no-hardlinks "$repo" "$work/cypool"
say "testing $(git -C "$work/cypool" log -1 --format='%h %s')"
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
    echo "asan: note: $repo has uncommitted changes; only HEAD is tested"
fi

# 2. A fresh venv with the build and test dependencies.
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
python -m pip install --quiet --upgrade pip
# The pins are pyproject.toml's [build-system] requires: a new venv's own setuptools may be older
# than 77, which rejects pyproject.toml's `license = "BSD-3-Clause"`. threadpoolctl is a test
# extra too (the thread-limit tests).
python -m pip install --quiet "numpy>=2.0" "cython>=3.0" "setuptools>=77" \
    pytest hypothesis threadpoolctl
if [[ "${CYPOOL_ASAN_TORCH:-0}" == 1 ]]; then
    python -m pip install --quiet torch || echo "asan: torch not installed; its tests skip"
fi
say "venv ready: $(python -c 'import sys, numpy, Cython; print(sys.version.split()[0], "numpy", numpy.__version__, "Cython", Cython.__version__)')"

# The compiler wrapper: the sanitizer flags come last, after setup.py's -O3, so -O1 is the last -O
# and the one gcc uses. setuptools logs each command before the wrapper appends its flags, so the
# wrapper records what it really runs, in $work/cc.log.
mkdir -p "$work/bin"
cat > "$work/bin/asan-cc" <<EOF
#!/bin/sh
echo "$cc \$* $asan_flags" >> "$work/cc.log"
exec $cc "\$@" $asan_flags
EOF
chmod +x "$work/bin/asan-cc"

cd "$work/cypool"
say "building (CC=asan-cc, i.e. $cc ... $asan_flags)"
CC="$work/bin/asan-cc" \
CFLAGS="$asan_flags" \
LDFLAGS="-fsanitize=address" \
    python setup.py build_ext --inplace > "$work/build.log" 2>&1 \
    || { tail -n 50 "$work/build.log"; echo "asan: build failed" >&2; exit 1; }

# What reached the compiler: one compile per extension, each with setup.py's -O3 and after it
# the sanitizer flags; and every extension links libasan.
mapfile -t sos < <(ls src/cypool/*.so)
compiles="$(grep -E -- ' -c src/cypool/[^ ]+\.c ' "$work/cc.log" || true)"
if [[ -z "$compiles" || "$(grep -c . <<<"$compiles")" != "${#sos[@]}" ]] \
    || grep -vqE -- "-O3 .*-fsanitize=address -fno-omit-frame-pointer -O1 -g$" <<<"$compiles"; then
    echo "asan: unexpected compile commands (${#sos[@]} extensions):" >&2
    echo "${compiles:-(none)}" >&2
    exit 1
fi
echo "asan: compile command (the last of ${#sos[@]}):"
tail -n 1 <<<"$compiles" | sed 's/^/    /'
for so in "${sos[@]}"; do
    # (no grep -q: with pipefail, ldd killed by SIGPIPE after an early match would fail this)
    if ! ldd "$so" | grep libasan > /dev/null; then
        echo "asan: $so does not link libasan" >&2
        exit 1
    fi
done
say "built ${#sos[@]} extensions with ASan: ${sos[*]}"

# 3. The tests under ASan. A path among the arguments (a file, directory or node id that exists
# in the clone) replaces the default "tests".
args=("$@")
has_path=0
for a in "${args[@]}"; do
    if [[ "$a" != -* && -e "${a%%::*}" ]]; then has_path=1; fi
done
if (( ! has_path )); then args=(tests "${args[@]}"); fi

# RSS growth that ASan's quarantine makes meaningless (see the header: both fail under ASan with
# no leak; the peak-RSS test passes and runs), and the one speed-up assertion (two Python threads
# in parallel < 0.8 of serial): ASan's overhead and a busy machine decide it, not memory safety;
# it failed once here at 1.01 while CI shared the 2 CPUs. The concurrency tests that check
# results still run.
DESELECT=(
    "tests/test_memory.py::test_100k_calls_leak_nothing"
    "tests/test_memory.py::test_errors_raised_mid_call_leak_nothing"
    "tests/test_concurrency.py::test_two_python_threads_pool_in_parallel"
)
deselect=()
if [[ "${CYPOOL_ASAN_ALL_TESTS:-0}" != 1 ]]; then
    for t in "${DESELECT[@]}"; do deselect+=(--deselect "$t"); done
fi

asan_options="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
[[ -n "${CYPOOL_ASAN_OPTIONS:-}" ]] && asan_options+=":$CYPOOL_ASAN_OPTIONS"
say "pytest ${args[*]} (ASAN_OPTIONS=$asan_options)"
rc=0
LD_PRELOAD="$libasan" ASAN_OPTIONS="$asan_options" \
    python -m pytest -x -q -p no:cacheprovider "${deselect[@]}" "${args[@]}" || rc=$?
say "pytest exit code $rc"
exit "$rc"
