"""Measurement 6: memory.

burst: an agent process (embedded server + publisher) writes 60 s of int16 PCM at once while a
Player listens from another process; the agent samples its own VmRSS every 50 ms. Done twice:
with a 120 s queue capacity (the write is queued whole) and with the default 30 s capacity (the
write waits for room). After `hold` seconds the agent flushes.

soak: the same two processes for `soak_seconds`; every cycle the agent writes a 10 s reply at
once and flushes 2 s later; both processes sample VmRSS every second. "Flat" means the least
squares slope over the run after its first 10 % is below 1 MiB per 10 minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from _common import log
from children import Child, stop_children


def burst(quick: bool) -> dict[str, Any]:
    seconds = 60.0
    hold = 1.0 if quick else 4.0
    runs = {}
    for label, cap in (("capacity 120 s", 120_000.0), ("capacity 30 s (default)", 30_000.0)):
        agent = listener = None
        try:
            agent = Child("mem_burst_agent", {"seconds": seconds, "hold": hold, "capacity_ms": cap})
            url = "http" + agent.expect("ready http")
            agent.expect("ready publish")
            listener = Child("mem_listener", {"url": url, "path": "burst", "period": 0.5})
            listener.expect("ready listening")
            agent.send()
            res = agent.result(timeout=120)
            listener.send("stop")
            res["listener_hwm_mib"] = listener.result().get("hwm_mib")
        finally:
            stop_children(listener, agent)
        res["peak_delta_mib"] = res["peak_rss_mib"] - res["rss_before_mib"]
        runs[label] = res
    return {
        "seconds": seconds,
        "hold_s": hold,
        "runs": runs,
        "pcm_int16_mib": seconds * 48_000 * 2 / 2**20,
        "pcm_f32_mib": seconds * 48_000 * 4 / 2**20,
    }


def slope_mib_per_10min(series: list[list[float]] | list[tuple[float, float]]) -> float | None:
    if len(series) < 5:
        return None
    t = np.array([s[0] for s in series])
    r = np.array([s[1] for s in series])
    keep = t >= t[-1] * 0.1
    if keep.sum() < 3:
        return None
    a, _ = np.polyfit(t[keep], r[keep], 1)
    return float(a * 600.0)


def soak(seconds: float) -> dict[str, Any]:
    agent = listener = None
    try:
        agent = Child("mem_soak_agent", {"seconds": seconds})
        url = "http" + agent.expect("ready http")
        agent.expect("ready publish")
        listener = Child("mem_listener", {"url": url, "path": "soak", "period": 1.0})
        listener.expect("ready listening")
        agent.send()
        res = agent.result(timeout=seconds + 120)
        listener.send("stop")
        lres = listener.result()
    finally:
        stop_children(listener, agent)
    out = {
        "seconds": seconds,
        "flushes": res["flushes"],
        "agent": {"rss": res["rss"], "hwm_mib": res["hwm_mib"], "slope_mib_per_10min": slope_mib_per_10min(res["rss"])},
        "listener": {
            "rss": lres["rss"],
            "hwm_mib": lres["hwm_mib"],
            "slope_mib_per_10min": slope_mib_per_10min(lres["rss"]),
            "segments_logged": lres["segments_logged"],
        },
    }
    for who in ("agent", "listener"):
        rss = [r for _, r in out[who]["rss"]]
        n10 = max(1, len(rss) // 10)
        out[who]["rss_start_mib"] = float(np.median(rss[n10 : 2 * n10])) if len(rss) > 2 else None
        out[who]["rss_end_mib"] = float(np.median(rss[-n10:])) if rss else None
        s = out[who]["slope_mib_per_10min"]
        # A run of under 2 minutes is dominated by warm-up; do not call it flat or not.
        out[who]["flat"] = None if s is None or seconds < 120 else abs(s) < 1.0
    return out


def run(
    quick: bool = False, soak_seconds: float | None = None, parts: tuple[str, ...] = ("burst", "soak")
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "burst" in parts:
        log("memory: 60 s written at once")
        out["burst"] = burst(quick)
    if "soak" in parts:
        secs = soak_seconds or (6.0 if quick else 600.0)
        log(f"memory: soak for {secs:.0f} s, flush every 2 s")
        out["soak"] = soak(secs)
    return out
