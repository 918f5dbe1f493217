"""Measurement 5: `write()` overhead per 20 ms chunk from Python.

One producer at 48 kHz mono with a 300 s queue capacity (so `write` never waits); each sample is
`time.perf_counter_ns()` around one `write_blocking(chunk)` (or one `await bot.write(chunk)`) of
a 20 ms chunk prepared beforehand as numpy int16, numpy float32 or s16le bytes. Encoding is not
part of the call: the producer's pump task encodes at playout pace on a Tokio thread, so the
measured time is the Python-facing overhead (validation, conversion to f32, queueing, GIL
release); the encode cost per chunk comes from the encode benchmark and is added in the report.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

import moq_audio
from _common import CHUNK, RATE, log, speech_like, summary


async def run_async(quick: bool, n: int | None) -> dict[str, Any]:
    n = n or (500 if quick else 5000)
    pcm = speech_like(n * CHUNK / RATE + 0.1)
    i16 = [np.ascontiguousarray(pcm[k * CHUNK : (k + 1) * CHUNK]) for k in range(n)]
    kinds: dict[str, list[Any]] = {
        "numpy int16": i16,
        "numpy float32": [(c.astype(np.float32) / 32768.0) for c in i16],
        "bytes s16le": [c.astype("<i2").tobytes() for c in i16],
    }
    out: dict[str, Any] = {"n": n, "chunk_ms": 20, "kinds": {}}
    async with moq_audio.Server("127.0.0.1:0") as server, moq_audio.connect(server.url) as pub:
        bot = pub.publish_audio("write", sample_rate=RATE, lead_ms=60.0, capacity_ms=300_000.0)
        for name, chunks in kinds.items():
            for c in chunks[:100]:  # warm-up
                bot.write_blocking(c)
            bot.flush()
            samples = []
            for c in chunks:
                t0 = time.perf_counter_ns()
                bot.write_blocking(c)
                samples.append((time.perf_counter_ns() - t0) / 1000.0)
            bot.flush()
            out["kinds"][f"{name}, write_blocking"] = {"us": samples, "summary": summary(samples)}
            log(f"write: {name} done")
        # The awaitable path (asyncio), int16.
        samples = []
        for c in i16:
            t0 = time.perf_counter_ns()
            await bot.write(c)
            samples.append((time.perf_counter_ns() - t0) / 1000.0)
        bot.flush()
        out["kinds"]["numpy int16, await write"] = {"us": samples, "summary": summary(samples)}
        log("write: await write done")
        bot.cancel()
    return out


def run(quick: bool = False, n: int | None = None) -> dict[str, Any]:
    return asyncio.run(run_async(quick, n))
