"""Measurement 4b: CPU per concurrent 48 kHz mono stream with N streams publishing at real time.

Three processes: the embedded server with one raw (non-decoding) subscriber per stream; the
measured agent process, whose one Python thread writes a 20 ms int16 chunk to each of the N
producers (one session) every 20 ms on a wall-clock schedule; and this driver. After a warm-up,
the agent's process CPU time (`time.process_time`, all threads: Python writer, encoder pumps,
pacers, QUIC) over the measured wall time gives CPU % per stream and the streams one core
sustains (100 % / per-stream %).
"""

from __future__ import annotations

from typing import Any

from _common import log
from children import Child, stop_children


def one(n: int, seconds: float, warmup: float) -> dict[str, Any]:
    server = agent = None
    try:
        server = Child("sink_server", {"streams": n})
        url = server.expect("ready ")
        agent = Child("streams_agent", {"url": url, "streams": n, "seconds": seconds, "warmup": warmup})
        res = agent.result(timeout=seconds + warmup + 120)
        server.send("stop")
        sink = server.result(timeout=30)
    finally:
        stop_children(agent, server)
    cpu_frac = res["cpu_s"] / res["wall_s"]
    per_stream = cpu_frac / n
    res.update(
        {
            "cpu_percent_total": 100 * cpu_frac,
            "cpu_percent_per_stream": 100 * per_stream,
            "writer_thread_percent_per_stream": 100 * res["writer_thread_cpu_s"] / res["wall_s"] / n,
            "streams_per_core": 1.0 / per_stream if per_stream > 0 else None,
            "sink": sink,
            "expected_groups_at_sink_min": int(n * seconds * 50 / 5),
        }
    )
    return res


def run(quick: bool = False, seconds: float | None = None) -> dict[str, Any]:
    seconds = seconds or (5.0 if quick else 20.0)
    warmup = 2.0 if quick else 3.0
    counts = [100] if quick else [10, 100]
    out: dict[str, Any] = {"seconds": seconds, "warmup_s": warmup, "runs": {}}
    for n in counts:
        log(f"streams: {n} real-time streams for {seconds:.0f} s (+{warmup:.0f} s warm-up)")
        r = one(n, seconds, warmup)
        log(
            f"streams: {n} streams: {r['cpu_percent_total']:.1f} % CPU total, {r['cpu_percent_per_stream']:.3f} % per stream, "
            f"{r['streams_per_core']:.0f} streams/core"
        )
        out["runs"][str(n)] = r
    return out
