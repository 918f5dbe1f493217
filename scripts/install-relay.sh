#!/usr/bin/env bash
# Install upstream's moq-relay (the MoQ relay our relay, cluster, auth and restart tests run
# against) into a cache directory that later runs reuse, and print the binary's path.
#
#   scripts/install-relay.sh            # prints e.g. /root/.cache/moq-audio/moq-relay-0.17.10/bin/moq-relay
#   MOQ_AUDIO_CACHE=/some/dir scripts/install-relay.sh
#
# stdout: the absolute path of the binary, nothing else. stderr: progress. Exit status non-zero
# with a message on stderr when it cannot be installed.
#
# Version 0.17.10 speaks the moq-net 0.3.18 / moq-tokio 0.19.31 our crate links (README
# "Versions"); bump both together. Features: `noq` (QUIC + WebTransport) and `websocket` (the
# fallback browsers use); the defaults' iroh (peer-to-peer), mDNS LAN clustering and unix
# sockets are left out, which trims the build to ~450 crates (28 CPU-minutes: 15-30 minutes on
# 2 cores, more when other builds share them). A
# second run finds the binary and returns in well under a second. `--locked` is not used: the
# relay's packaged Cargo.lock pins a dependency version that is no longer on crates.io, so a
# locked install fails to resolve.
set -euo pipefail

VERSION=0.17.10
FEATURES=noq,websocket
CACHE="${MOQ_AUDIO_CACHE:-$HOME/.cache/moq-audio}"
ROOT="$CACHE/moq-relay-$VERSION"
BIN="$ROOT/bin/moq-relay"

say() { printf 'install-relay: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The installed binary is only trusted if it runs and reports the version we pinned.
installed_version() { "$BIN" --version 2>/dev/null | awk '{print $NF}'; }

if [[ -x "$BIN" ]] && [[ "$(installed_version)" == "$VERSION" ]]; then
  say "moq-relay $VERSION already installed (cached)"
  printf '%s\n' "$BIN"
  exit 0
fi

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
mkdir -p "$ROOT" || die "cannot create $ROOT"

# Two runs at once (e.g. two terminals) must not build into the same root concurrently.
exec 9>"$ROOT/.install.lock"
if ! flock -n 9; then
  say "another install into $ROOT is running; waiting for it"
  flock 9
  if [[ -x "$BIN" ]] && [[ "$(installed_version)" == "$VERSION" ]]; then
    printf '%s\n' "$BIN"
    exit 0
  fi
fi

say "building moq-relay $VERSION from crates.io into $ROOT (first time only; ~15 min on 2 cores)"
log="$ROOT/install.log"
start=$SECONDS
if ! cargo install moq-relay --version "$VERSION" --no-default-features --features "$FEATURES" \
    --root "$ROOT" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "cargo install moq-relay --version $VERSION --features $FEATURES failed (full log: $log)"
fi
[[ -x "$BIN" ]] || die "cargo install finished but $BIN does not exist (log: $log)"
got="$(installed_version)"
[[ "$got" == "$VERSION" ]] || die "$BIN reports version '${got:-?}', expected $VERSION"
say "installed moq-relay $VERSION in $((SECONDS - start)) s"
printf '%s\n' "$BIN"
