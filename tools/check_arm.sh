#!/usr/bin/env bash
# Cross-builds fastlstm for aarch64 and tests it under emulated ARM CPUs (qemu-user), on an x86-64 Debian machine.
# Everything goes under one work directory (default /tmp/fastlstm-arm, or $1), which also caches the arm64 Debian
# root and the aarch64 test dependencies between runs; arguments after it go to every pytest run.
#   1. Tools, installed with apt-get where missing: Debian's aarch64 cross compiler, qemu-user, debootstrap.
#   2. An arm64 Debian root (cached): bookworm's python3.11, its headers and libraries, unpacked from the packages
#      `debootstrap --download-only` fetches; and the aarch64 wheels of numpy, pytest, hypothesis, torch and onnx
#      (cached). onnxruntime is left out: its CPU probe reads the x86 host's /sys under qemu-user and crashes, so
#      the test modules importing it are left out (FASTLSTM_TESTS_WITHOUT_PEERS=1).
#   3. The extension cross-compiled with CMake (the project's own CMakeLists.txt: neon, neon_dotprod, neon_bf16,
#      neon_i8mm with their per-file -march flags); every weak symbol of a variant's object must lie in its own
#      namespace (the ODR trap, as in tools/check_wheel.sh). The same sources built for this x86-64 machine, for the bitwise reference.
#   4. Under `qemu-aarch64 -cpu max` (dotprod, bf16, i8mm), `-cpu neoverse-n1` (dotprod only) and `-cpu cortex-a72`
#      (none): the variants found and the one chosen, a forced unsupported variant refused, and
#      tools/emulated_cpu_check.py at every ARM variant that CPU runs, whose result hashes must equal the avx2
#      variant's on this machine (same operations, same rounding: simd__neon.h), and at portable under cortex-a72,
#      whose hashes must equal portable's on this machine (the same C++ code); then one pytest run: the dispatch
#      tests, and the activation, parity, precision, threads, stream and lengths tests at the variants that CPU is
#      the least one to run (see `tested`).
# An aarch64 Python runs without binfmt_misc: bin/python3.11 in the work directory starts the sysroot's interpreter
# under qemu with argv[0] pointing back at itself, so the tests' subprocesses are emulated too.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mkdir -p "${1:-/tmp/fastlstm-arm}" && cd "${1:-/tmp/fastlstm-arm}" && pwd)"
shift $(( $# > 0 ? 1 : 0 ))
say() { echo "check_arm.sh: $*"; }
start=$(date +%s)

# 1. Tools.
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v aarch64-linux-gnu-nm >/dev/null || missing+=(binutils-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if (( ${#missing[@]} )); then
  if [[ "$(id -u)" != 0 ]]; then say "missing ${missing[*]}: apt-get install -y ${missing[*]} (as root)"; exit 1; fi
  apt-get install -y -q "${missing[@]}"
fi
if [[ ! -x "$work/tools/bin/python" ]]; then
  python3 -m venv "$work/tools"
  "$work/tools/bin/pip" install -q --upgrade pip
  "$work/tools/bin/pip" install -q "pybind11>=3" cmake ninja numpy
fi

# 2. The arm64 root and the test dependencies (cached: delete the directories to refresh them).
sysroot="$work/sysroot"
if [[ ! -x "$sysroot/usr/bin/python3.11" ]]; then
  rm -rf "$work/debs" "$sysroot"
  debootstrap --download-only --arch=arm64 --variant=minbase --include=python3,libpython3.11-dev,python3-numpy \
    bookworm "$work/debs" http://deb.debian.org/debian
  mkdir -p "$sysroot"
  for deb in "$work"/debs/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  # What Debian's alternatives would link on installation.
  ln -sf blas/libblas.so.3 "$sysroot/usr/lib/aarch64-linux-gnu/libblas.so.3"
  ln -sf lapack/liblapack.so.3 "$sysroot/usr/lib/aarch64-linux-gnu/liblapack.so.3"
fi
if [[ ! -d "$work/deps/torch" ]]; then
  rm -rf "$work/deps"
  "$work/tools/bin/pip" install -q --only-binary=:all: --platform manylinux2014_aarch64 \
    --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --target "$work/deps" \
    "numpy<2" pytest hypothesis torch onnx
fi
mkdir -p "$work/bin"
cat >"$work/bin/python3.11" <<'EOF'
#!/bin/sh
# aarch64 Python under qemu-user on the CPU model $QEMU_CPU; argv[0] is this script, and so is sys.executable.
here="$(cd "$(dirname "$0")/.." && pwd)"
exec qemu-aarch64 -L "$here/sysroot" -cpu "${QEMU_CPU:-max}" -0 "$0" "$here/sysroot/usr/bin/python3.11" "$@"
EOF
chmod +x "$work/bin/python3.11"
arm_python="$work/bin/python3.11"

# 3. Builds: aarch64 (cross) and x86-64 (this machine), each into a site-packages directory of its own.
cat >"$work/aarch64.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
EOF
build() {  # build DIRECTORY SITE_PACKAGES SOABI [cmake arguments...]
  local dir="$1" site="$2" soabi="$3"; shift 3
  # A build directory left by another checkout (the work directory outlives clones) starts over: CMake refuses a
  # cache made for other sources. One made for these sources is kept, so a second run only recompiles what changed.
  if [[ -f "$dir/CMakeCache.txt" ]] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$repo" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  PATH="$work/tools/bin:$PATH" cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSKBUILD_PROJECT_NAME=fastlstm -DSKBUILD_PROJECT_VERSION=0.0.0 \
    -Dpybind11_DIR="$("$work/tools/bin/python" -m pybind11 --cmakedir)" "$@" >/dev/null
  PATH="$work/tools/bin:$PATH" cmake --build "$dir" -j2 >/dev/null
  rm -rf "$site" && mkdir -p "$site" && cp -r "$repo/src/fastlstm" "$site/"
  rm -f "$site"/fastlstm/_core*.so && cp "$dir"/_core*.so "$site/fastlstm/_core.$soabi.so"
}
# The Python headers are the arm64 root's (its pyconfig.h sits under the multiarch directory); the interpreter CMake
# asks is this machine's, of the same version.
build "$work/build-aarch64" "$work/site-packages" cpython-311-aarch64-linux-gnu \
  -DCMAKE_TOOLCHAIN_FILE="$work/aarch64.cmake" -DPython_EXECUTABLE="$work/tools/bin/python" \
  -DPython_INCLUDE_DIR="$sysroot/usr/include/python3.11" -DCMAKE_CXX_FLAGS="-idirafter $sysroot/usr/include"
host_soabi="$("$work/tools/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI"))')"
build "$work/build-host" "$work/host/site-packages" "$host_soabi" -DPython_EXECUTABLE="$work/tools/bin/python"
for object in "$work"/build-aarch64/CMakeFiles/fastlstm_core.dir/csrc/kernels/variant__*.o; do
  isa="$(basename "$object" .cc.o)"; isa="${isa#variant__}"
  shared="$(aarch64-linux-gnu-nm -C --defined-only "$object" | awk '$2 ~ /^[WwVvu]$/' | grep -v " fastlstm::$isa::" || true)"
  if [[ -n "$shared" ]]; then
    say "$(basename "$object") defines weak symbols outside fastlstm::$isa, which baseline code could bind to:"
    echo "$shared"; exit 1
  fi
done
say "built in $(( $(date +%s) - start )) s; every weak symbol of the aarch64 variant objects is in its namespace"

# 4. Emulated CPUs: the variants each must find, best last.
declare -A expected=([max]="portable neon neon_dotprod neon_bf16 neon_i8mm"
                     [neoverse-n1]="portable neon neon_dotprod" [cortex-a72]="portable neon")
declare -A refused=([max]="" [neoverse-n1]="neon_bf16 neon_i8mm" [cortex-a72]="neon_dotprod neon_bf16 neon_i8mm")
# The variants whose tests run under each CPU: each on the least CPU that has it. qemu translates an instruction
# the same way whatever the CPU model, so a variant's results do not depend on the model; what the model decides
# is which instructions are legal. A neon kernel that slipped in a dot-product instruction runs under -cpu max and
# faults under cortex-a72, so the tests run each variant where any instruction beyond its extensions would fault.
declare -A tested=([max]="neon_bf16 neon_i8mm" [neoverse-n1]="neon_dotprod" [cortex-a72]="portable neon")
all_variants=(portable neon neon_dotprod neon_bf16 neon_i8mm)
only() {  # only VARIANT...: a pytest -k expression for the tests at those variants (the isa parameter in each id)
  local expression="" isa other term
  for isa in "$@"; do
    term="$isa"   # "neon" is a substring of the other neon ids: leave those out by name
    for other in "${all_variants[@]}"; do [[ "$other" != "$isa" && "$other" == "$isa"* ]] && term+=" and not $other"; done
    expression+="${expression:+ or }($term)"
  done
  echo "$expression"
}
check="$repo/tools/emulated_cpu_check.py"
native="$(FASTLSTM_ISA=avx2 PYTHONPATH="$work/host/site-packages" "$work/tools/bin/python" "$check")"
say "avx2 on this machine: $native"
native_portable="$(FASTLSTM_ISA=portable PYTHONPATH="$work/host/site-packages" "$work/tools/bin/python" "$check")"
mkdir -p "$work/outside" && rm -rf "$work/outside/tests" && cp -r "$repo/tests" "$repo/pyproject.toml" "$work/outside/"
export PYTHONPATH="$work/site-packages:$work/deps" FASTLSTM_TESTS_WITHOUT_PEERS=1
# The tests of each capability that run in seconds under emulation (test ids; tests/conftest.py's isa fixture comes
# first in each id). torch's oneDNN fails LSTMs with projections under qemu-user ("could not create a primitive
# descriptor for a matmul primitive"): those cases (P1, P5) compare to the float64 reference in emulated_cpu_check.
subset="a_step_equals_the_reference or int8_codes or rounding_is_to_nearest or non_finite_weights"
subset+=" or (lstm_cell_matches and not P1 and not P5) or bitwise_identical_for_any_thread_count"
subset+=" or a_row_does_not_depend_on_its_batch or chunks_and_steps_equal_one_call_bitwise"
subset+=" or look_ahead_loop_does_the_arithmetic"
for cpu in max neoverse-n1 cortex-a72; do
  export QEMU_CPU="$cpu"
  variants=(${expected[$cpu]})
  best="${variants[-1]}"
  for isa in ${refused[$cpu]}; do
    if out="$(FASTLSTM_ISA="$isa" "$arm_python" -c 'import fastlstm' 2>&1)"; then
      say "-cpu $cpu: FASTLSTM_ISA=$isa was accepted"; exit 1
    fi
    grep -q "FASTLSTM_ISA: this CPU cannot run '$isa'" <<<"$out" || { say "-cpu $cpu, $isa: $out"; exit 1; }
    say "-cpu $cpu: FASTLSTM_ISA=$isa refused"
  done
  # Every ARM variant against avx2 here; the portable one (the same C++ on both) against portable here, on the
  # CPU without extensions only (its code does not depend on them).
  [[ "$cpu" == cortex-a72 ]] && to_check=("${variants[@]}") || to_check=("${variants[@]:1}")
  for isa in "${to_check[@]}"; do
    if [[ "$isa" == "$best" ]]; then
      emulated="$(env -u FASTLSTM_ISA "$arm_python" "$check" --expect "$best")"
    else
      emulated="$(FASTLSTM_ISA="$isa" "$arm_python" "$check")"
    fi
    [[ "$isa" == portable ]] && reference="$native_portable" || reference="$native"
    "$work/tools/bin/python" - "$emulated" "$reference" "$isa" "$cpu" <<'PY'
import json, sys
emulated, native, isa, cpu = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
here = "portable" if isa == "portable" else "avx2"
assert emulated["active"] == isa and native["active"] == here, (emulated, native)
if emulated["sha256"] != native["sha256"]:
    sys.exit(f"check_arm.sh: {isa} on -cpu {cpu} gave other bits than {here} on this machine:\n{emulated}\n{native}")
print(f"check_arm.sh: -cpu {cpu}: {isa} equals {here} on this machine bitwise (fp32, bf16, int8)")
PY
  done
  # Emulated float32 runs ~100x slower than native: the subset takes the tests of each capability at small shapes,
  # at the variants this CPU is the least one to run (the portable one, the same code as on x86, runs its
  # activation tests here and its kernels once in emulated_cpu_check above). One pytest run per CPU: under
  # emulation, starting pytest and importing torch takes about a minute. It takes test_dispatch.py whole, the
  # activation tests, the subset of the precision, parity, threads and stream tests, and the variable-length tests
  # whole (the onnxruntime comparison lives in test_lengths_onnxruntime.py) but for torch's packed sequences with
  # projections (P5, P9), which oneDNN fails under qemu as above; the subset's tests without a variant at each CPU.
  here=$(only ${tested[$cpu]})
  select="test_dispatch or (test_activations and ($here)) or rounding_is_to_nearest or int8_codes or (not portable"
  select+=" and ($here) and ((test_lengths and not (pytorch and (P5 or P9))) or (not test_lengths and ($subset))))"
  (cd "$work/outside" && "$arm_python" -m pytest -q -p no:cacheprovider tests/test_dispatch.py \
    tests/test_activations.py tests/test_precision.py tests/test_parity.py tests/test_threads.py \
    tests/test_stream.py tests/test_lengths.py -k "$select" "$@")
  say "-cpu $cpu: tests passed, the variants' at ${tested[$cpu]} ($(( $(date +%s) - start )) s so far)"
done
say "all checks passed in $(( $(date +%s) - start )) s"
