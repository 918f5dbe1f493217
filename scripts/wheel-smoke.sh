#!/usr/bin/env bash
# Build what we ship and run it the way a user gets it: the release wheel and the sdist
# (maturin), the wheel installed into a fresh virtualenv in a temporary directory outside the
# checkout, then, from there: `moq-audio --help`, the web page found inside the installed
# package and served by `moq-audio serve`, and `moq-audio demo` end to end (espeak-ng speech,
# a flush, a real listener on loopback QUIC).
#
#   scripts/wheel-smoke.sh        # needs .venv (scripts/setup.sh) and the page built (npm run build)
#
# The page gets into the wheel through [tool.maturin] include (python/moq_audio/web/**), which
# `npm run build` in web-demo/ fills. Set CARGO_TARGET_DIR to reuse a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

say() { printf 'wheel-smoke: %s\n' "$*" >&2; }
[[ -f python/moq_audio/web/index.html ]] || {
  say "python/moq_audio/web/index.html is missing: build the page first (cd web-demo && npm ci && npm run build)"
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "maturin build --release (the first release build takes several minutes)"
.venv/bin/maturin build --release --quiet --out "$work/dist"
say "maturin sdist"
.venv/bin/maturin sdist --out "$work/dist" >/dev/null
ls -l "$work/dist" >&2
tar -tzf "$work"/dist/*.tar.gz | grep -q '/python/moq_audio/web/index.html$' || {
  say "the sdist does not carry the web page"
  exit 1
}

say "fresh virtualenv in $work (outside the checkout), pip install the wheel"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$work"/dist/*.whl

cd "$work"
venv/bin/moq-audio --version
venv/bin/moq-audio --help >/dev/null
SRC="$src" venv/bin/python - <<'EOF'
"""The installed package: its own web page, served by `moq-audio serve`, nothing from the checkout."""
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import moq_audio

src = Path(os.environ["SRC"])
assert src not in Path(moq_audio.__file__).resolve().parents, f"imported from the checkout: {moq_audio.__file__}"
root = moq_audio.web_root()
assert root is not None and "site-packages" in str(root), f"web page not in the installed package: {root}"
print(f"wheel-smoke: web page at {root}", file=sys.stderr)

serve = subprocess.Popen(
    [str(Path(sys.executable).parent / "moq-audio"), "serve", "--addr", "127.0.0.1:0"],
    stderr=subprocess.PIPE,
    text=True,
)
try:
    assert serve.stderr is not None
    url = None
    for line in serve.stderr:  # the CLI prints its URL once it listens
        m = re.search(r"serving MoQ on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, "moq-audio serve exited before it printed its URL"
    page = urllib.request.urlopen(url, timeout=10).read().decode()
    assert "<html" in page.lower(), page[:200]
    fingerprint = urllib.request.urlopen(url + "certificate.sha256", timeout=10).read().decode().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint), fingerprint
    print(f"wheel-smoke: moq-audio serve gave the page and the certificate at {url}", file=sys.stderr)
finally:
    serve.terminate()
    serve.wait(10)
EOF

say "moq-audio demo (espeak-ng speech, flush, a listener on loopback QUIC)"
venv/bin/moq-audio demo --out "$work/heard.wav"
[[ -s "$work/heard.wav" ]] || { say "demo wrote no heard.wav"; exit 1; }
say "ok"
