#!/usr/bin/env bash
# Set everything up, then run the demo: a bot sentence cut off mid-word and the next one at
# once, as heard by a real listener over QUIC -> heard.wav. Extra arguments go to
# `moq-audio demo` (try --help, or --web for the browser conversation).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/moq-audio demo "$@"
