"""Child processes of the benchmark, so what is measured (CPU time, RSS) is one process's alone.

    python bench/workers.py ROLE 'JSON-ARGS'

Roles print `ready ...` lines on stdout while setting up and one final `result {json}` line.
They end with os._exit so interpreter finalisation (and its native-thread teardown) cannot
change the exit status after the result was written.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np

from _common import CHUNK, RATE, proc_status, speech_like


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def finish(result: dict) -> None:
    emit("result " + json.dumps(result))
    os._exit(0)


async def wait_stdin_line() -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


# --- CPU per stream ---------------------------------------------------------------------------


async def sink_server(args: dict) -> None:
    """The embedded server plus one raw subscriber per stream (no decoding), in one process, so
    the measured agent process pays for encoding, pacing and QUIC sending but not for these."""
    import moq_audio

    n = args["streams"]
    counts = [0] * n
    async with moq_audio.Server("127.0.0.1:0") as server:
        emit(f"ready {server.url}")
        try:
            import moq  # upstream client: reads raw frames without decoding

            async with moq.connect(server.url, websocket_enabled=False) as client:

                async def drain(i: int) -> None:
                    b = await client.announced_broadcast(f"s{i}").available()
                    cat = await b.catalog()
                    track = await b.subscribe_track(next(iter(cat.audio)))
                    # Count groups only: the Rust side receives every frame of a group
                    # whether or not Python reads it, and reading 5000 frames/s from Python
                    # would make this process, not the agent, the bottleneck.
                    while (await track.recv_group()) is not None:
                        counts[i] += 1

                tasks = [asyncio.create_task(drain(i)) for i in range(n)]
                await wait_stdin_line()
                for t in tasks:
                    t.cancel()
            sink = "moq-rs raw track subscriber"
        except ImportError:
            await wait_stdin_line()
            sink = "none (moq-rs not installed)"
    finish({"groups_received": sum(counts), "streams_with_frames": sum(1 for c in counts if c), "sink": sink})


async def streams_agent(args: dict) -> None:
    import moq_audio

    n, seconds, warmup = args["streams"], args["seconds"], args["warmup"]
    pcm = speech_like(4.0)
    chunks = [pcm[k * CHUNK : (k + 1) * CHUNK] for k in range(len(pcm) // CHUNK)]
    async with moq_audio.connect(args["url"]) as session:
        producers = [session.publish_audio(f"s{i}", sample_rate=RATE, lead_ms=60.0) for i in range(n)]
        stop = threading.Event()
        stats = {"ticks": 0, "late_ticks": 0, "max_late_ms": 0.0, "writer_cpu_s": 0.0}
        marks: dict[str, tuple[float, float]] = {}

        def writer() -> None:
            t0 = time.perf_counter()
            k = 0
            measuring = False
            w0 = 0.0
            while not stop.is_set():
                due = t0 + k * 0.020
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                else:
                    late = (now - due) * 1000
                    if measuring and late > 5:
                        stats["late_ticks"] += 1
                    stats["max_late_ms"] = max(stats["max_late_ms"], late if measuring else 0.0)
                c = chunks[k % len(chunks)]
                for p in producers:
                    p.write_blocking(c)
                k += 1
                if measuring:
                    stats["ticks"] += 1
                if not measuring and k * 0.020 >= warmup:
                    measuring = True
                    w0 = time.thread_time()
                    marks["start"] = (time.perf_counter(), time.process_time())
                if measuring and k * 0.020 >= warmup + seconds:
                    marks["end"] = (time.perf_counter(), time.process_time())
                    stats["writer_cpu_s"] = time.thread_time() - w0
                    return

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        while th.is_alive():
            await asyncio.sleep(0.1)
        queued = [p.queued_ms for p in producers]
        wall = marks["end"][0] - marks["start"][0]
        cpu = marks["end"][1] - marks["start"][1]
        for p in producers:
            p.cancel()
    finish(
        {
            "streams": n,
            "wall_s": wall,
            "cpu_s": cpu,
            "writer_thread_cpu_s": stats["writer_cpu_s"],
            "ticks": stats["ticks"],
            "late_ticks": stats["late_ticks"],
            "max_queued_ms_at_end": max(queued) if queued else 0.0,
            "rss_mib": proc_status(),
        }
    )


# --- memory -------------------------------------------------------------------------------------


class RssSampler:
    def __init__(self, period: float) -> None:
        self.period = period
        self.t0 = time.perf_counter()
        self.samples: list[tuple[float, float]] = []  # (t, VmRSS MiB)
        self.phase_marks: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.t0, proc_status().get("VmRSS", 0.0)))
            self._stop.wait(self.period)

    def mark(self, name: str) -> None:
        self.phase_marks.append((name, time.perf_counter() - self.t0))

    def stop(self) -> None:
        self._stop.set()
        self._th.join()


async def mem_listener(args: dict) -> None:
    """A Player on the agent's broadcast in its own process; reports its RSS series at the end."""
    import moq_audio

    sampler = RssSampler(args.get("period", 1.0))
    async with moq_audio.connect(args["url"]) as session:
        player = await session.play_audio(args["path"], timeout=30.0)
        emit("ready listening")
        await wait_stdin_line()
        report = await player.stop()
    sampler.stop()
    finish(
        {
            "rss": sampler.samples,
            "hwm_mib": proc_status().get("VmHWM"),
            "segments_logged": len(report.segments),
            "rendered_ms": report.rendered_ms,
        }
    )


async def mem_burst_agent(args: dict) -> None:
    """Embedded server + publisher; writes `seconds` of int16 PCM at once into a queue of
    `capacity_ms` while sampling its own RSS every 50 ms; flushes after `hold` seconds."""
    import moq_audio

    seconds, hold, cap = args["seconds"], args["hold"], args["capacity_ms"]
    clip = speech_like(4.0)
    pcm = np.tile(clip, int(np.ceil(seconds / 4.0)))[: int(seconds * RATE)]
    del clip
    async with moq_audio.Server("127.0.0.1:0") as server:
        emit(f"ready {server.url}")
        async with moq_audio.connect(server.url) as pub:
            bot = pub.publish_audio("burst", sample_rate=RATE, lead_ms=60.0, capacity_ms=cap)
            await bot.write(pcm[:RATE])  # warm the path up: 1 s, flushed below
            emit("ready publish burst")
            await wait_stdin_line()  # the listener is subscribed
            await asyncio.sleep(1.0)
            bot.flush()
            await asyncio.sleep(1.0)
            sampler = RssSampler(0.05)
            await asyncio.sleep(0.5)
            base = proc_status()
            sampler.mark("write")
            t0 = time.perf_counter()
            task = asyncio.ensure_future(bot.write(pcm))
            await asyncio.sleep(hold)
            done_before_flush = task.done()
            queued = bot.queued_ms
            rep = bot.flush()
            queued_ok = await task
            sampler.mark("flush")
            await asyncio.sleep(1.0)
            sampler.stop()
            peak = max(r for t, r in sampler.samples)
            res = {
                "capacity_ms": cap,
                "rss_before_mib": base.get("VmRSS"),
                "peak_rss_mib": peak,
                "hwm_mib": proc_status().get("VmHWM"),
                "write_returned_before_flush": done_before_flush,
                "write_result": queued_ok,
                "queued_ms_before_flush": queued,
                "dropped_ms": rep.dropped_pcm_ms + rep.dropped_encoded_ms,
                "write_call_s": time.perf_counter() - t0,
                "rss": sampler.samples,
                "marks": sampler.phase_marks,
            }
            bot.cancel()
    finish(res)


async def mem_soak_agent(args: dict) -> None:
    """Embedded server + publisher for `seconds`: every 2 s a 10 s reply is written at once
    and flushed 2 s later; RSS sampled every second."""
    import moq_audio

    sampler = RssSampler(1.0)
    reply = speech_like(10.0)
    async with moq_audio.Server("127.0.0.1:0") as server:
        emit(f"ready {server.url}")
        async with moq_audio.connect(server.url) as pub:
            bot = pub.publish_audio("soak", sample_rate=RATE, lead_ms=60.0)
            emit("ready publish soak")
            await wait_stdin_line()
            t_end = time.perf_counter() + args["seconds"]
            flushes = 0
            k = 0
            while time.perf_counter() < t_end:
                bot.mark(f"m{k}")
                await bot.write(reply)
                k += 1
                await asyncio.sleep(2.0)
                bot.flush()
                flushes += 1
            bot.cancel()
    sampler.stop()
    finish(
        {"seconds": args["seconds"], "flushes": flushes, "rss": sampler.samples, "hwm_mib": proc_status().get("VmHWM")}
    )


ROLES = {
    "sink_server": sink_server,
    "streams_agent": streams_agent,
    "mem_listener": mem_listener,
    "mem_burst_agent": mem_burst_agent,
    "mem_soak_agent": mem_soak_agent,
}

if __name__ == "__main__":
    role, raw = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "{}")
    try:
        asyncio.run(ROLES[role](json.loads(raw)))
    except BaseException as e:  # noqa: BLE001
        emit("error " + json.dumps(f"{type(e).__name__}: {e}"))
        sys.stdout.flush()
        os._exit(1)
