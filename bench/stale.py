"""Measurement 1 (stale audio after an interruption) and 3 (flush to first new sample).

Scenario: the agent writes a 10 s reply at once; when the listener has rendered 1 s of it, the
agent is interrupted. We count the ms of the old reply the listener renders after that moment.

- moq-audio: `flush()` at the interruption, then either nothing more ("silence": the agent
  listens to the user) or a new reply written at once ("new reply"), at pacing leads of 20, 60
  and 200 ms. The listener is moq-audio's Player (40 ms jitter target); stale = frames of
  generation 0 in its render log after the render-clock frame read when flush() was called.
- upstream moq-rs (PyPI `moq-rs`, import `moq`): its AudioProducer has no flush, so at the
  interruption the agent just stops writing. "at once" writes the reply at once like the agent
  above; "paced 60 ms" is an agent that paces its own writes at real time with a 60 ms lead (the
  best it can do without flush). Listener: upstream's decoder feeding bench/browser_player.py.
  Upstream runs on its own in-process server (`moq.Server`); moq-audio on `moq_audio.Server`.

Configurations run round-robin in a shuffled order each round, in one process, so the ratio
holds on a noisy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import numpy as np

import moq_audio
from _common import CHUNK, RATE, log, overlap, speech_like, summary
from browser_player import BrowserLikePlayer

REPLY_S = 10.0
INTERRUPT_MS = 1000.0
WINDOW_S = 1.0  # listened-to window after the interruption (> lead + jitter target)


async def moq_audio_trial(
    pub, lis, path: str, lead: float, new_reply: bool, reply: np.ndarray, second: np.ndarray
) -> dict:
    bot = pub.publish_audio(path, sample_rate=RATE, lead_ms=lead)
    player = await lis.play_audio(path, target_ms=40.0)
    try:
        await bot.write(reply)
        await asyncio.wait_for(player.wait_rendered(INTERRUPT_MS, generation=0), 20)
        flush_frame = player.report().rendered_frames
        t_flush = time.perf_counter()
        rep = bot.flush()
        t_first = None
        if new_reply:
            await bot.write(second)
            try:
                await asyncio.wait_for(player.wait_rendered(1.0, generation=1), 5)
                t_first = time.perf_counter()
            except asyncio.TimeoutError:
                pass
        await asyncio.sleep(max(0.0, WINDOW_S - (time.perf_counter() - t_flush)))
        report = await player.stop()
    finally:
        bot.cancel()
    segs = report.segments
    stale = sum(overlap(s.start, s.frames, flush_frame) for s in segs if s.generation == 0)
    heard_before = sum(overlap(s.start, s.frames, 0, flush_frame) for s in segs if s.generation == 0)
    new_start = next((s.start for s in segs if (s.generation or 0) >= 1), None)
    out = {
        "stale_ms": stale * 1000.0 / RATE,
        "heard_ms_reported": rep.heard_ms,
        "heard_estimated": rep.heard_estimated,
        "heard_ms_actual": heard_before * 1000.0 / RATE,
        "dropped_ms": rep.dropped_pcm_ms + rep.dropped_encoded_ms,
        "sent_ms": rep.sent_ms,
        "underruns": report.stats.underruns,
    }
    if new_reply:
        out["first_new_render_ms"] = None if new_start is None else (new_start - flush_frame) * 1000.0 / RATE
        out["first_new_wall_ms"] = None if t_first is None else (t_first - t_flush) * 1000.0
    return out


async def upstream_trial(moq, up_pub, up_sub, path: str, mode: str, reply: np.ndarray, lead_ms: float = 60.0) -> dict:
    bc = up_pub.create_broadcast(path)
    ap = bc.encode_audio(
        "audio",
        moq.AudioEncoderInput(format=moq.AudioSampleFormat.S16, sample_rate=RATE, channels=1),
        moq.AudioEncoderOutput(codec=moq.AudioCodec.opus()),
    )
    bc.announce()
    b = await asyncio.wait_for(up_sub.announced_broadcast(path).available(), 10)
    cat = await asyncio.wait_for(b.catalog(), 10)
    name = next(iter(cat.audio))
    # A browser player buffers what it is sent: no latency-based skipping (max_age 60 s).
    cons = await b.decode_audio(
        name, cat.audio[name], moq.AudioDecoderOutput(format=moq.AudioSampleFormat.F32, max_age_us=60_000_000)
    )
    player = BrowserLikePlayer(RATE, target_ms=40.0)
    player.start(cons)
    chunks = [reply[i : i + CHUNK] for i in range(0, len(reply), CHUNK)]
    interrupted = asyncio.Event()

    def frame(k: int):
        return moq.AudioFrame(timestamp_us=k * 20_000, data=chunks[k].tobytes())

    async def paced_writer() -> None:
        t0 = time.perf_counter()
        for k in range(len(chunks)):
            due = t0 + k * 0.020 - lead_ms / 1000.0
            delay = due - time.perf_counter()
            if delay > 0:
                try:
                    await asyncio.wait_for(interrupted.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            if interrupted.is_set():
                return  # the agent stops writing: all it can do
            ap.write(frame(k))

    writer = None
    try:
        if mode == "at_once":
            for k in range(len(chunks)):
                ap.write(frame(k))
        else:
            writer = asyncio.create_task(paced_writer())
        await player.wait_audio_ms(INTERRUPT_MS)
        flush_frame = player.rendered
        interrupted.set()
        await asyncio.sleep(WINDOW_S)
        # Whatever is still buffered would be played too: this player never drops audio.
        stale = player.audio_after(flush_frame) + player.buffered
        received_ms = player.received * 1000.0 / RATE
    finally:
        interrupted.set()
        if writer:
            await writer
        await player.stop()
        cons.cancel()
        with contextlib.suppress(Exception):  # already finished if the session went away first
            ap.finish()
        bc.close()
    return {"stale_ms": stale * 1000.0 / RATE, "received_ms": received_ms}


async def serve_quietly(up_server) -> None:
    """moq.Server.serve() without its unretrieved-exception noise when a session closes."""
    sessions: set = set()

    async def hold(request) -> None:
        with contextlib.suppress(Exception):  # a client going away ends its session with an error
            session = await request.accept()
            await session.closed()

    async for request in up_server:
        t = asyncio.create_task(hold(request))
        sessions.add(t)
        t.add_done_callback(sessions.discard)


async def run_async(quick: bool, trials: int | None) -> dict[str, Any]:
    moq: Any = None
    try:
        import moq as upstream  # upstream moq-rs (bench/requirements.txt)

        moq = upstream
    except ImportError:
        log("stale: moq-rs is not installed (pip install -r bench/requirements.txt): upstream rows skipped")

    leads = [60.0] if quick else [20.0, 60.0, 200.0]
    n = trials or (1 if quick else 30)
    configs: list[tuple[str, Any, str]] = []
    for lead in leads:
        configs.append(("moq-audio", lead, "silence"))
        configs.append(("moq-audio", lead, "new_reply"))
    if moq is not None:
        configs.append(("upstream", None, "at_once"))
        if not quick:
            configs.append(("upstream", 60.0, "paced"))
    reply = speech_like(REPLY_S, seed=1)
    second = speech_like(2.0, seed=2, pitch_shift=1.5)
    results: dict[str, list[dict]] = {}
    rng = random.Random(7)
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(moq_audio.Server("127.0.0.1:0"))
        pub = await stack.enter_async_context(moq_audio.connect(server.url))
        lis = await stack.enter_async_context(moq_audio.connect(server.url))
        up_pub = up_sub = None
        if moq is not None:
            up_server = await stack.enter_async_context(moq.Server("127.0.0.1:0", tls_generate=["localhost"]))
            serve_task = asyncio.create_task(serve_quietly(up_server))
            stack.callback(serve_task.cancel)
            up_url = f"https://{up_server.local_addr}/"
            fps = up_server.cert_fingerprints()
            up_pub = await stack.enter_async_context(moq.connect(up_url, tls_fingerprints=fps, websocket_enabled=False))
            up_sub = await stack.enter_async_context(moq.connect(up_url, tls_fingerprints=fps, websocket_enabled=False))
        for r in range(n):
            order = configs[:]
            rng.shuffle(order)
            for impl, lead, variant in order:
                key = f"{impl}|{variant}|{lead}"
                path = f"stale-{r}-{impl}-{variant}-{lead}"
                for attempt in range(3):
                    try:
                        if impl == "moq-audio":
                            res = await moq_audio_trial(
                                pub, lis, path + f"-{attempt}", lead, variant == "new_reply", reply, second
                            )
                        else:
                            res = await upstream_trial(
                                moq, up_pub, up_sub, path + f"-{attempt}", variant, reply, lead or 60.0
                            )
                        break
                    except Exception as e:  # noqa: BLE001 - a failed trial is retried, then recorded
                        log(f"stale: trial {key} failed ({type(e).__name__}: {e}); retrying")
                        res = {"error": f"{type(e).__name__}: {e}"}
                results.setdefault(key, []).append(res)
            log(f"stale: round {r + 1}/{n} done")
    out: dict[str, Any] = {
        "upstream": None if moq is None else "moq-rs (PyPI)",
        "reply_s": REPLY_S,
        "interrupt_ms": INTERRUPT_MS,
        "window_s": WINDOW_S,
        "trials": n,
        "configs": {},
    }
    for key, rows in results.items():
        impl, variant, lead_text = key.split("|")
        ok = [x for x in rows if "error" not in x]
        if not ok:
            # Every trial of a configuration failing is a broken benchmark, not a result.
            raise RuntimeError(f"stale: every trial of {key} failed: {rows[0]['error']}")
        entry: dict[str, Any] = {
            "impl": impl,
            "variant": variant,
            "lead_ms": None if lead_text == "None" else float(lead_text),
            "errors": len(rows) - len(ok),
            "stale_ms": [x["stale_ms"] for x in ok],
            "stale_summary": summary(x["stale_ms"] for x in ok),
        }
        if impl == "moq-audio":
            entry["heard_error_ms"] = summary(abs(x["heard_ms_reported"] - x["heard_ms_actual"]) for x in ok)
            entry["heard_estimated_trials"] = sum(1 for x in ok if x["heard_estimated"])
            entry["underruns"] = summary(x["underruns"] for x in ok)
            if variant == "new_reply":
                fr = [x["first_new_render_ms"] for x in ok if x.get("first_new_render_ms") is not None]
                fw = [x["first_new_wall_ms"] for x in ok if x.get("first_new_wall_ms") is not None]
                entry["first_new_render_ms"] = fr
                entry["first_new_render_summary"] = summary(fr)
                entry["first_new_wall_ms"] = fw
                entry["first_new_wall_summary"] = summary(fw)
        else:
            entry["received_ms"] = summary(x["received_ms"] for x in ok)
        out["configs"][key] = entry
    return out


def run(quick: bool = False, trials: int | None = None) -> dict[str, Any]:
    return asyncio.run(run_async(quick, trials))
