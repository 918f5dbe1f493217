"""Helpers shared by the benchmark measurements: logging, statistics, test PCM, RSS."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np

RATE = 48_000
FRAME_MS = 20
CHUNK = RATE * FRAME_MS // 1000  # 960 samples: one 20 ms chunk at 48 kHz

# Child processes inherit the run's start time, so every progress line shares one clock.
_T0 = float(os.environ.setdefault("MOQ_AUDIO_BENCH_T0", repr(time.time())))


def log(msg: str) -> None:
    """A progress line on stderr, stamped with seconds since the run started."""
    print(f"[bench {time.time() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def speech_like(seconds: float, rate: int = RATE, seed: int = 1, pitch_shift: float = 1.0) -> np.ndarray:
    """Deterministic speech-like int16 PCM (the same recipe as bench_encode.rs): harmonics of a
    gliding 90-260 Hz pitch under a 4 Hz syllable envelope, fricative noise bursts and pauses."""
    n = int(rate * seconds)
    t = np.arange(n, dtype=np.float64) / rate
    f0 = (175.0 + 85.0 * np.sin(2 * np.pi * 0.31 * t)) * pitch_shift
    phase = np.cumsum(2 * np.pi * f0 / rate)
    voiced = np.zeros(n)
    for h in range(1, 13):
        voiced += np.sin(phase * h) / h**1.2
    syllable = np.maximum(np.sin(2 * np.pi * 4.0 * t), 0.0)
    sentence = np.where((t % 3.0) < 2.6, 1.0, 0.02)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1, 1, n)
    fricative = np.where(np.modf(t * 4.0)[0] > 0.8, 0.25 * noise, 0.01 * noise)
    s = sentence * (0.25 * syllable * voiced + fricative)
    return (np.clip(s, -1, 1) * 32767).astype(np.int16)


def pct(values: Sequence[float], q: float) -> float:
    if len(values) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values: Iterable[float]) -> dict:
    """n, median, p95, p99, mean, min, max of a sample (NaN-free)."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return {"n": 0}
    a = np.asarray(v)
    return {
        "n": len(v),
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def proc_status(pid: int | str = "self") -> dict:
    """VmRSS / VmHWM (peak RSS) of a process from /proc, in MiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024.0
    except FileNotFoundError:
        pass
    return out


def overlap(start: int, frames: int, lo: int, hi: float = math.inf) -> int:
    """Frames of [start, start + frames) inside [lo, hi)."""
    a = max(start, lo)
    b = min(start + frames, hi)
    return int(max(0, b - a))


def cpu_count() -> int:
    return os.cpu_count() or 1
