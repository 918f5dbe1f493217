"""Measurement 2: `flush()` call latency from Python.

A producer at 48 kHz mono on the embedded server with a Player listening; each sample is
`time.perf_counter_ns()` around one `bot.flush()` call from the main thread, with a short random
pause between calls. Conditions:
- idle, empty queue: nothing written between flushes;
- idle, 2 s queued: 2 s of PCM written (untimed) before each flush, so flush drops a real queue;
- writer thread: another Python thread calls `write_blocking` with 20 ms chunks in a loop
  the whole time (it contends for the queue lock and the GIL).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import moq_audio
from _common import CHUNK, RATE, log, speech_like, summary


async def run_async(quick: bool, n: int | None) -> dict[str, Any]:
    n = n or (200 if quick else 3000)
    rng = random.Random(3)
    pcm = speech_like(2.0)
    chunk = pcm[:CHUNK]
    out: dict[str, Any] = {"n": n, "conditions": {}}
    async with (
        moq_audio.Server("127.0.0.1:0") as server,
        moq_audio.connect(server.url) as pub,
        moq_audio.connect(server.url) as lis,
    ):
        bot = pub.publish_audio("flush", sample_rate=RATE, lead_ms=60.0, capacity_ms=30_000.0)
        player = await lis.play_audio("flush")
        await bot.write(pcm[: RATE // 2])
        await asyncio.sleep(0.3)

        def timed() -> float:
            t0 = time.perf_counter_ns()
            bot.flush()
            return (time.perf_counter_ns() - t0) / 1000.0  # µs

        # Warm-up.
        for _ in range(50):
            timed()

        samples: list[float] = []
        for _ in range(n):
            await asyncio.sleep(rng.uniform(0.0005, 0.002))
            samples.append(timed())
        out["conditions"]["idle, empty queue"] = {"us": samples, "summary": summary(samples)}
        log("flush: idle, empty queue done")

        samples = []
        for _ in range(n):
            bot.write_blocking(pcm)
            await asyncio.sleep(rng.uniform(0.0005, 0.002))
            samples.append(timed())
        out["conditions"]["idle, 2 s queued"] = {"us": samples, "summary": summary(samples)}
        log("flush: idle, 2 s queued done")

        stop = threading.Event()
        writes = [0]

        def writer() -> None:
            while not stop.is_set():
                bot.write_blocking(chunk)
                writes[0] += 1

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        await asyncio.sleep(0.05)
        samples = []
        for _ in range(n):
            await asyncio.sleep(rng.uniform(0.0005, 0.002))
            samples.append(timed())
        stop.set()
        bot.flush()  # wakes the writer if it waits on a full queue
        th.join(5)
        out["conditions"]["writer thread"] = {"us": samples, "summary": summary(samples), "writes_during": writes[0]}
        log("flush: writer thread done")
        await player.stop()
        bot.cancel()
    return out


def run(quick: bool = False, n: int | None = None) -> dict[str, Any]:
    return asyncio.run(run_async(quick, n))
