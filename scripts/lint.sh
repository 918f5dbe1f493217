#!/usr/bin/env bash
# The lint gates: Rust formatting and clippy, ruff (lint + format), mypy, stubtest for the
# compiled module's stub, and the web page's TypeScript check. Every gate runs; the script
# fails at the end if any did. Installs nothing: the tools come from requirements-dev.txt
# (scripts/setup.sh puts them into .venv) and web-demo/package.json (npm ci).
#
#   scripts/lint.sh            # all gates
#   scripts/lint.sh --no-rust  # skip cargo fmt/clippy (e.g. while another build holds target/)
set -uo pipefail
cd "$(dirname "$0")/.."

rust=1
for arg in "$@"; do
  case "$arg" in
    --no-rust) rust=0 ;;
    *) echo "usage: scripts/lint.sh [--no-rust]" >&2; exit 2 ;;
  esac
done

PY=.venv/bin/python
for tool in ruff mypy; do
  [[ -x .venv/bin/$tool ]] || { echo "$tool is missing from .venv: run scripts/setup.sh (requirements-dev.txt)" >&2; exit 2; }
done

failed=()
gate() {
  local name=$1
  shift
  printf '\n==> %s\n' "$name" >&2
  if ! "$@"; then
    failed+=("$name")
  fi
}

if ((rust)); then
  gate "cargo fmt --check" cargo fmt --all --check
  gate "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

# Configuration in pyproject.toml ([tool.ruff]).
gate "ruff check" .venv/bin/ruff check --quiet .
gate "ruff format --check" .venv/bin/ruff format --check --quiet .

# The package, strictly ([tool.mypy] in pyproject.toml).
gate "mypy --strict python/moq_audio" .venv/bin/mypy python/moq_audio
# Tests and benchmarks use the typed API, so mypy checks them too (every function body, every
# call into moq_audio against its stub), but without the strict flags that only demand
# annotations: pytest fixtures, parametrized tests and one-off benchmark helpers would gain
# nothing from them.
LENIENT=(
  --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls --allow-untyped-decorators
  --allow-any-generics --no-warn-return-any --check-untyped-defs
)
gate "mypy tests bench" .venv/bin/mypy "${LENIENT[@]}" tests bench

# The hand-written stub against the compiled module (needs the extension built into .venv).
stubtest() {
  "$PY" -c "import moq_audio._native" || { echo "moq_audio._native does not import: build it (scripts/setup.sh)" >&2; return 1; }
  "$PY" -m mypy.stubtest moq_audio._native --allowlist scripts/stubtest-allowlist.txt
}
gate "stubtest moq_audio._native" stubtest

# --no-install: never fetch a TypeScript that package.json does not pin.
gate "web-demo tsc --noEmit" bash -c 'cd web-demo && npx --no-install tsc --noEmit'

if ((${#failed[@]})); then
  printf '\nlint: %d gate(s) failed:\n' "${#failed[@]}" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nlint: all gates passed\n' >&2
