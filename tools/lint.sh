#!/usr/bin/env bash
# Lint and format checks, run by .ci/run: ruff on the Python code (pyproject.toml [tool.ruff]) and clang-format on
# csrc/ (.clang-format). Installs the versions pinned by pyproject's "lint" extra into the active environment.
# `tools/lint.sh --fix` applies the fixes and the formatting instead of checking.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY' | xargs python -m pip install -q
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lint"]))
PY
cpp_files() { git ls-files 'csrc/*.cc' 'csrc/*.h' 'csrc/*.inc'; }
if [ "${1:-}" = "--fix" ]; then
  ruff check --fix .
  ruff format .
  cpp_files | xargs clang-format -i
else
  ruff check .
  ruff format --check .
  cpp_files | xargs clang-format --dry-run --Werror
  echo "lint.sh: ruff check, ruff format --check and clang-format --dry-run --Werror passed"
fi
