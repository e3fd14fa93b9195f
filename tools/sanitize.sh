#!/usr/bin/env bash
# Builds fastlstm with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option FASTLSTM_SANITIZE) and runs the
# test suite against that build. Everything goes under one work directory (default /tmp/fastlstm-asan, or $1):
#   venv/   a virtual environment of its own: the sanitized build must never replace a developer's install
#   src/    a copy of the repository, so that the build never writes into the work tree (or its build/ dirs)
#   build/  the CMake build directory (kept, so a second run only recompiles what changed)
# Extra arguments after the directory go to pytest, e.g.  tools/sanitize.sh /tmp/asan --ignore=tests/test_parity.py
# Without a test path among them pytest runs tests/; with one (tools/sanitize.sh /tmp/asan tests/test_threads.py,
# or a node id) it runs just what they name.
# The tests run on one pytest-xdist worker per CPU (-n auto); `-n 0` among the extra arguments runs them in one process.
# Needs GCC with libasan/libubsan (Debian: gcc), Python >= 3.10, and PyPI for the test and torch packages.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mkdir -p "${1:-/tmp/fastlstm-asan}" && cd "${1:-/tmp/fastlstm-asan}" && pwd)"
shift $(( $# > 0 ? 1 : 0 ))
venv="$work/venv" src="$work/src" build="$work/build"

# 1. The environment, with the requirements exactly as pyproject.toml states them: the package's dependencies, the
#    test extra, the peers the tests import (the "peers" extra without openvino, which only the benchmark tests
#    use, and the sanitized run leaves them out), and the build requirements, so that the build below can run
#    without build isolation. Python 3.10 reads the TOML with tomli (tomllib is in the standard library from 3.11).
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
"$venv/bin/pip" install -q "tomli>=1.1; python_version < '3.11'"
mapfile -t requirements < <("$venv/bin/python" - "$repo/pyproject.toml" <<'PY'
import re
import sys

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib

with open(sys.argv[1], "rb") as file:
    pyproject = tomllib.load(file)
project = pyproject["project"]
extras = project["optional-dependencies"]
requirements = project["dependencies"] + extras["test"] + extras["peers"] + pyproject["build-system"]["requires"]
for requirement in requirements:
    if re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower() != "openvino":
        print(requirement)
PY
)
(( ${#requirements[@]} > 0 )) || { echo "sanitize.sh: no requirements read from pyproject.toml" >&2; exit 1; }
# pytest-xdist spreads the tests over one worker process per CPU (each with the sanitizer runtimes, inherited
# through LD_PRELOAD), for the tests that do not run threads of their own: on 2 cores the whole suite took 1,397 s
# against 1,488 s in one process (most of its time goes to tests that keep both cores busy already).
"$venv/bin/pip" install -q "${requirements[@]}" "pytest-xdist>=3"

# 2. A copy of the sources (without build trees or virtual environments) and a non-editable sanitized install.
#    RelWithDebInfo: optimised like a release, with -g so that sanitizer stacks have file:line.
rm -rf "$src" && mkdir -p "$src"   # tar, not rsync: rsync is not on every machine; mtimes are kept for CMake
tar -C "$repo" --exclude=./build --exclude=./.venv --exclude=./.git -cf - . | tar -C "$src" -xf -
"$venv/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps "$src" \
  -Ccmake.define.FASTLSTM_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo -Cbuild-dir="$build"

# 3. The tests. The sanitizer runtimes must come first in the process (python itself is not instrumented), hence
#    LD_PRELOAD of GCC's libasan and libubsan, the same runtimes the extension was linked against.
#    detect_leaks=0: CPython and torch keep allocations until exit by design; leak reports would be noise.
#    halt_on_error / abort_on_error: the first report stops the run with the stack, not a later crash.
#    allocator_may_return_null=1: a request too large to allocate returns null, as the system allocator does, so that
#    the tests of MemoryError on huge requests (tests/test_memory.py) see the error instead of an ASan abort.
#    UBSAN print_stacktrace=1: UBSan reports come with a stack like ASan's.
#    Run from the copy's root: tests/ has no __init__.py and the package lives in src/, so `import fastlstm`
#    resolves to the venv's site-packages (the sanitized build); conftest imports it, and we check it below.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:symbolize=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export PYTHONFAULTHANDLER=1
cd "$src"
"$venv/bin/python" - <<'PY'
import fastlstm, fastlstm._core as core, sys
print("fastlstm from", fastlstm.__file__, "| _core", core.__file__, "| ISAs", core.supported_isas())
if "site-packages" not in core.__file__:
    sys.exit("sanitize.sh: fastlstm does not resolve to the sanitized install")
PY
start=$(date +%s)
status=0
# A test path or node id among the arguments (a word that, up to any "::", names a file or directory of the copy).
targets=(tests)
for argument in "$@"; do
  if [[ "$argument" != -* && -e "${argument%%::*}" ]]; then targets=(); break; fi
done
"$venv/bin/python" -m pytest "${targets[@]}" -x -q -p no:cacheprovider -n auto "$@" || status=$?
echo "sanitize.sh: pytest exit $status after $(( $(date +%s) - start )) s"
exit "$status"
