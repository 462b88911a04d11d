#!/usr/bin/env bash
# The full check: lint, format, types, tests. Runs every step, then exits non-zero if any
# failed (pytest's exit 5, "no tests collected", counts as a failure like any other).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/stack -x`.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
step() {
  local name="$1"
  shift
  echo "==> $name: $*"
  if ! "$@"; then
    failed+=("$name")
  fi
}

step "ruff check" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
step "pytest" .venv/bin/pytest -q "$@"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"
