#!/usr/bin/env bash
# Install everything moq-audio needs on a fresh Debian machine and build it. Idempotent: a
# second run only rebuilds what changed.
#
#   scripts/setup.sh         # demo: espeak-ng, Python venv, the extension, the web page
#   scripts/setup.sh --test  # tests: also Debian's chromium and the benchmark's packages
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

packages=(espeak-ng sox cmake pkg-config)
testing=0
[[ "${1:-}" == "--test" ]] && testing=1
((testing)) && packages+=(chromium)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ first" >&2; exit 1; }

step "Python virtualenv .venv"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
# The benchmark smoke compares against upstream moq-rs and draws figures.
((testing)) && .venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt

step "browser listener (web-demo: npm ci && npm run build)"
(cd web-demo && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)

# A release build: what `pip install` gives a user, real-time paths at full speed, and the
# same compiled dependencies the release wheel, moq-relay and `cargo test --release` reuse.
step "Rust extension moq_audio._native (maturin develop --release; the first build takes ~15 minutes on 2 cores)"
VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" .venv/bin/maturin develop --release --quiet
.venv/bin/python -c "import moq_audio; print('moq_audio', moq_audio.__version__, 'ready', file=__import__('sys').stderr)"
