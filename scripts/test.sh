#!/usr/bin/env bash
# Set everything up, then run every test (what .ci/run calls):
#   lint gates (cargo fmt/clippy, ruff, mypy, stubtest, tsc), the Rust tests (core crate and the
#   jitter-buffer specification), the web page's unit tests (the same specification), the
#   WebSocket fallback in Chromium, upstream moq-relay built from crates.io, the benchmark
#   smoke, the pytest suites (real QUIC on loopback, moq-relay single node and cluster,
#   espeak-ng speech, Debian's Chromium with our page and the stock @moq/watch player, Pipecat)
#   and the release wheel installed outside the checkout. Artifacts land in test-artifacts/.
#
# Everything is built once, in the release profile (the extension, moq-relay, the Rust tests and
# the wheel share one set of compiled dependencies), into $CARGO_TARGET_DIR, by default
# $MOQ_AUDIO_CACHE/target (~/.cache/moq-audio/target): outside the clone, so a second run from a
# fresh clone reuses them. The first run on a fresh machine compiles for ~20 minutes on 2
# cores (plus clippy's own check build); later runs for seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

export MOQ_AUDIO_CACHE="${MOQ_AUDIO_CACHE:-$HOME/.cache/moq-audio}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MOQ_AUDIO_CACHE/target}"
mkdir -p "$CARGO_TARGET_DIR"

start=$SECONDS
step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

step "set-up (scripts/setup.sh --test)"
scripts/setup.sh --test

step "moq-relay 0.17.10 (crates/relay: upstream's binary, built with the deps the extension already compiled)"
cargo build --release -p moq-audio-relay --quiet
export MOQ_RELAY_BIN="$CARGO_TARGET_DIR/release/moq-relay"
"$MOQ_RELAY_BIN" --version

step "lint gates (scripts/lint.sh)"
scripts/lint.sh

step "cargo test (moq-audio core crate)"
cargo test --release -p moq-audio --quiet

step "web-demo unit tests (jitter buffer specification)"
(cd web-demo && npm test --silent)

step "browser listener over the WebSocket fallback (headless Chromium vs. the tone_server example)"
cargo build --release -p moq-audio --example tone_server --quiet
TONE_SERVER="$CARGO_TARGET_DIR/release/examples/tone_server" node web-demo/tests/smoke.mjs --transport websocket

step "benchmark smoke (bench/run.py --quick, the release build)"
.venv/bin/python bench/run.py --quick --profile release

step "pytest (every suite, browser included; nothing skipped for a missing part)"
MOQ_AUDIO_REQUIRE_ALL=1 .venv/bin/python -m pytest -q -rxXs -p no:cacheprovider

step "release wheel and sdist, installed outside the checkout (scripts/wheel-smoke.sh)"
scripts/wheel-smoke.sh

step "all tests passed"
