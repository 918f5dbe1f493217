#!/usr/bin/env bash
# Set everything up, then run every test: Rust (core crate), the web page's unit tests, the
# WebSocket fallback in Chromium, the benchmark smoke, and the pytest suites (real QUIC on
# loopback, espeak-ng speech, Debian's Chromium). Artifacts land in test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo test (moq-audio core crate)"
cargo test -p moq-audio --quiet

step "web-demo unit tests (jitter buffer)"
(cd web-demo && npm test --silent)

step "browser listener over the WebSocket fallback (headless Chromium vs. the tone_server example)"
cargo build -p moq-audio --example tone_server --quiet
node web-demo/tests/smoke.mjs --transport websocket

step "benchmark smoke (bench/run.py --quick)"
.venv/bin/python bench/run.py --quick

step "pytest"
.venv/bin/python -m pytest -q
