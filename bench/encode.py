"""Measurement 4a: Opus encode throughput of moq-audio's pipeline vs raw libopus, same PCM,
same process run (crates/moq-audio/examples/bench_encode.rs)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from _common import log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary(profile: str) -> str:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release" if profile == "release" else "debug", "examples", "bench_encode")


def build(profile: str) -> None:
    cmd = ["cargo", "build", "-p", "moq-audio", "--example", "bench_encode"]
    if profile == "release":
        cmd.insert(2, "--release")
    log(f"encode: {' '.join(cmd)} (the first release build of the dependencies takes minutes)")
    subprocess.run(cmd, cwd=ROOT, check=True)


def run(quick: bool = False, profile: str = "release", build_first: bool = True) -> dict[str, Any]:
    exe = binary(profile)
    build_error = None
    if build_first:
        try:
            build(profile)
        except subprocess.CalledProcessError as e:
            # The crates are edited concurrently; a half-edited tree should not lose the number
            # when an earlier build of the example is there.
            if not os.path.exists(exe):
                raise
            build_error = f"cargo build failed ({e}); used the existing {os.path.relpath(exe, ROOT)}"
            log(f"encode: {build_error}")
    args = ["--seconds", "3", "--rounds", "3"] if quick else ["--seconds", "30", "--rounds", "15"]
    log(f"encode: {os.path.relpath(exe, ROOT)} {' '.join(args)}")
    proc = subprocess.run([exe, *args], cwd=ROOT, check=True, capture_output=True, text=True)
    out = json.loads(proc.stdout)
    out["profile"] = profile
    out["build_error"] = build_error
    out["binary_mtime"] = os.path.getmtime(exe)
    out["command"] = " ".join([os.path.relpath(exe, ROOT), *args])
    return out
