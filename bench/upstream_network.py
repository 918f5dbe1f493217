#!/usr/bin/env python3
"""Issue 9's side-by-side: stale audio after an interruption against silence inserted, moq-audio
vs upstream moq-rs, on the same impaired networks in one run.

- **moq-audio**: bench/network.py's trial (a default Player through bench/impair.py; ``flush()``
  at the interruption) at pacing leads 20/60/200 ms with the fixed 40 ms jitter target, and at
  lead 60 ms with deeper fixed targets (120, 240 ms): with an in-band flush a deeper buffer
  should cost silence nothing in stale audio.
- **upstream moq-rs** (PyPI ``moq-rs``, import ``moq``; its AudioProducer has no flush): an agent
  that paces its own writes at real time with a lead of 20/60/200/1000 ms and simply stops
  writing at the interruption; the listener is bench/browser_player.py (plays everything it
  received in timestamp order, 40 ms start threshold, re-buffers after an underrun, never drops)
  fed by upstream's decoder, through the same proxy. Upstream runs on its own in-process server.

Per listener: ``stale_ms`` (audio of the reply rendered after the interruption, plus what is
still buffered and would play), ``silence_ms``/``silence_pct`` (render-clock time between the
first sample and the interruption not covered by audio: underruns and re-buffering) and
``underruns``. One point per configuration = the medians over all trials and conditions.

Run: ``python bench/upstream_network.py [--quick] [--trials N] [--out FILE]``;
``run(quick, trials)`` for bench/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import moq_audio
from _common import CHUNK, RATE, log, summary
from browser_player import BrowserLikePlayer
from impair import Impairment
from network import CONTROL, INTERRUPT_MS, REPLY_S, Condition, moq_audio_trial, test_pcm

UPSTREAM_LEADS_MS = (20.0, 60.0, 200.0, 1000.0)
#: (lead ms, Player target ms) of the moq-audio configurations.
OURS = ((20.0, 40.0), (60.0, 40.0), (200.0, 40.0), (60.0, 120.0), (60.0, 240.0))
#: After the interruption the upstream listener is watched this long (s): longer than the
#: worst one-way delay + jitter + a QUIC retransmission, so audio in flight has arrived.
UPSTREAM_WINDOW_S = 1.5


def reduced_grid(quick: bool) -> list[Condition]:
    """Six networks across the issue's range (its 50 ms ±20 ms 1 % and 80 ms ±40 ms 3 % rows among
    them) and the no-impairment control: 7 listeners per trial, few enough that the unimpaired
    control stays clean on a loaded 2-core machine."""
    if quick:
        return [Condition(50, 20, 1), Condition(100, 40, 3, "bursty"), CONTROL]
    return [
        Condition(25, 20, 1),
        Condition(50, 5, 0),
        Condition(50, 20, 1),
        Condition(50, 40, 3),
        Condition(80, 40, 3),
        Condition(100, 20, 5, "bursty"),
        CONTROL,
    ]


async def serve_quietly(up_server: Any) -> None:
    """moq.Server.serve() without its unretrieved-exception noise when a session closes."""
    sessions: set[asyncio.Task[None]] = set()

    async def hold(request: Any) -> None:
        with contextlib.suppress(Exception):
            session = await request.accept()
            await session.closed()

    async for request in up_server:
        t = asyncio.create_task(hold(request))
        sessions.add(t)
        t.add_done_callback(sessions.discard)


async def upstream_trial(
    moq: Any,
    up_port: int,
    fps: list[str],
    up_pub: Any,
    conds: list[Condition],
    lead_ms: float,
    seed: str,
    reply: np.ndarray,
    path: str,
    interrupt_ms: float,
) -> dict[Condition, dict[str, Any]]:
    """One upstream trial: a self-pacing moq-rs agent, one browser-like listener per condition."""
    out: dict[Condition, dict[str, Any]] = {}
    async with contextlib.AsyncExitStack() as stack:
        proxies = []
        for c in conds:
            prof = c.profile()
            proxy = Impairment(upstream=f"127.0.0.1:{up_port}", up=prof, down=prof, seed=f"{seed}:{c.key}", tcp=False)
            proxies.append(await stack.enter_async_context(proxy))
        clients = []
        for px in proxies:
            url = f"https://{px.addr}/"
            clients.append(
                await stack.enter_async_context(moq.connect(url, tls_fingerprints=fps, websocket_enabled=False))
            )
        bc = up_pub.create_broadcast(path)
        stack.callback(bc.close)
        ap = bc.encode_audio(
            "audio",
            moq.AudioEncoderInput(format=moq.AudioSampleFormat.S16, sample_rate=RATE, channels=1),
            moq.AudioEncoderOutput(codec=moq.AudioCodec.opus()),
        )
        bc.announce()
        players: list[BrowserLikePlayer] = []
        for cl in clients:
            b = await asyncio.wait_for(cl.announced_broadcast(path).available(), 20)
            cat = await asyncio.wait_for(b.catalog(), 20)
            name = next(iter(cat.audio))
            # A browser player buffers what it is sent: no latency-based skipping (max_age 60 s).
            cons = await b.decode_audio(
                name,
                cat.audio[name],
                moq.AudioDecoderOutput(format=moq.AudioSampleFormat.F32, max_age_us=60_000_000),
            )
            stack.callback(cons.cancel)
            pl = BrowserLikePlayer(RATE, target_ms=40.0)
            pl.start(cons)
            players.append(pl)
            stack.push_async_callback(pl.stop)
        chunks = [reply[i : i + CHUNK] for i in range(0, len(reply), CHUNK)]
        interrupted = asyncio.Event()

        async def paced_writer() -> None:
            t0 = time.perf_counter()
            for k, chunk in enumerate(chunks):
                delay = t0 + k * 0.020 - lead_ms / 1000.0 - time.perf_counter()
                if delay > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(interrupted.wait(), delay)
                if interrupted.is_set():
                    return  # the agent stops writing: all it can do
                ap.write(moq.AudioFrame(timestamp_us=k * 20_000, data=chunk.tobytes()))

        writer = asyncio.create_task(paced_writer())
        try:
            waits = await asyncio.gather(
                *(asyncio.wait_for(p.wait_audio_ms(interrupt_ms, timeout=REPLY_S + 20), REPLY_S + 25) for p in players),
                return_exceptions=True,
            )
            t_int = time.perf_counter()
            interrupted.set()
            flush_frames = [(t_int - p._epoch) * RATE for p in players]
            await asyncio.sleep(UPSTREAM_WINDOW_S)  # the observation window after the interruption
            for i, (c, p) in enumerate(zip(conds, players, strict=True)):
                first = p.segments[0][0] if p.segments else None
                res: dict[str, Any] = {"proxy": proxies[i].stats()}
                if first is None:
                    res["error"] = "nothing rendered"
                else:
                    ff = flush_frames[i]
                    audio_in = sum(max(0, min(s + n, ff) - max(s, first)) for s, n in p.segments)
                    window = max(1.0, ff - first)
                    gaps = sum(
                        1 for (s0, n0), (s1, _) in zip(p.segments, p.segments[1:], strict=False) if s0 + n0 < s1 < ff
                    )
                    res.update(
                        {
                            "stale_ms": (p.audio_after(int(ff)) + p.buffered) * 1000.0 / RATE,
                            "silence_ms": (window - audio_in) * 1000.0 / RATE,
                            "silence_pct": 100.0 * (window - audio_in) / window,
                            "underruns": gaps,
                            "received_ms": p.received * 1000.0 / RATE,
                        }
                    )
                if isinstance(waits[i], BaseException):
                    res["wait_error"] = f"{type(waits[i]).__name__}: {waits[i]}"
                out[c] = res
        finally:
            interrupted.set()
            await writer
            with contextlib.suppress(Exception):
                ap.finish()
    return out


def point(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if "error" not in r]
    return {
        "n": len(ok),
        "errors": len(rows) - len(ok),
        "stale_ms": summary(r["stale_ms"] for r in ok),
        "silence_pct": summary(r["silence_pct"] for r in ok),
        "silence_ms": summary(r["silence_ms"] for r in ok),
        "underruns": summary(r["underruns"] for r in ok),
    }


async def run_async(
    quick: bool, trials: int | None, impls: tuple[str, ...] = ("moq-audio", "upstream")
) -> dict[str, Any]:
    """Both stacks interleaved (``impls`` selects a side, for a partial re-run merged with --merge)."""
    import moq  # upstream moq-rs (bench/requirements.txt)

    conds = reduced_grid(quick)
    n = trials or (1 if quick else 3)
    pcm = test_pcm(quick)
    interrupt_ms = 3_000.0 if quick else INTERRUPT_MS
    ours = OURS[1:2] if quick else OURS
    ups = (60.0, 1000.0) if quick else UPSTREAM_LEADS_MS
    configs: list[tuple[str, float, float]] = [("moq-audio", lead, tgt) for lead, tgt in ours]
    configs += [("upstream", lead, 40.0) for lead in ups]
    configs = [c for c in configs if c[0] in impls]
    per: dict[tuple[str, float, float], dict[Condition, list[dict[str, Any]]]] = {}
    rng = random.Random(13)
    t_start = time.monotonic()
    total = n * len(configs)
    done = 0
    with tempfile.TemporaryDirectory(prefix="moq-audio-upnet-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            server = pub = None
            if "moq-audio" in impls:
                server = await stack.enter_async_context(moq_audio.Server("127.0.0.1:0"))
                pub = await stack.enter_async_context(moq_audio.connect(server.url))
            up_server = await stack.enter_async_context(moq.Server("127.0.0.1:0", tls_generate=["localhost"]))
            serve_task = asyncio.create_task(serve_quietly(up_server))
            stack.callback(serve_task.cancel)
            up_port = int(str(up_server.local_addr).rsplit(":", 1)[1])
            fps = up_server.cert_fingerprints()
            up_url = f"https://{up_server.local_addr}/"
            up_pub = await stack.enter_async_context(moq.connect(up_url, tls_fingerprints=fps, websocket_enabled=False))
            for r in range(n):
                order = configs[:]
                rng.shuffle(order)
                for impl, lead, tgt in order:
                    path = f"upnet-{r}-{impl}-{lead:g}-{tgt:g}"
                    res: dict[Condition, dict[str, Any]] = {}
                    for attempt in range(2):
                        try:
                            if impl == "moq-audio":
                                assert server is not None
                                res = await moq_audio_trial(
                                    server.port,
                                    pub,
                                    conds,
                                    lead,
                                    tgt,
                                    f"u{r}:{attempt}",
                                    pcm,
                                    f"{path}-{attempt}",
                                    tmp,
                                    interrupt_ms,
                                )
                            else:
                                res = await upstream_trial(
                                    moq,
                                    up_port,
                                    fps,
                                    up_pub,
                                    conds,
                                    lead,
                                    f"u{r}:{attempt}",
                                    pcm["reply"],
                                    f"{path}-{attempt}",
                                    interrupt_ms,
                                )
                            break
                        except Exception as e:  # noqa: BLE001 - retried once, then recorded
                            log(f"upstream_network: trial {path} failed ({type(e).__name__}: {e})")
                            res = {c: {"error": f"{type(e).__name__}: {e}"} for c in conds}
                    for c, v in res.items():
                        v.pop("stats", None)
                        per.setdefault((impl, lead, tgt), {}).setdefault(c, []).append(v)
                    done += 1
                    log(
                        f"upstream_network: {done}/{total} {impl} lead {lead:g} target {tgt:g} ({time.monotonic() - t_start:.0f} s)"
                    )
    configs_out: dict[str, Any] = {}
    for (impl, lead, tgt), by_cond in per.items():
        key = f"{impl} | lead {lead:g} | target {tgt:g}"
        all_rows = [row for c, rows in by_cond.items() if c != CONTROL for row in rows]
        configs_out[key] = {
            "impl": impl,
            "lead_ms": lead,
            "target_ms": tgt,
            "point": point(all_rows),
            "by_condition": {
                c.key: {"condition": asdict(c), "summary": point(rows), "trials": rows} for c, rows in by_cond.items()
            },
        }
    return {
        "method": (
            "Same impaired networks (bench/impair.py, both directions) for both stacks in one process, configurations "
            "shuffled per round. moq-audio: bench/network.py's trial (flush at the interruption). Upstream moq-rs: the "
            "agent paces its writes at the lead and stops writing at the interruption; listener bench/browser_player.py. "
            "Stale = reply audio rendered after the interruption (+ still buffered for upstream); silence = render "
            "time between first sample and interruption without audio (moq-audio: exact-zero runs >= 10 ms)."
        ),
        "upstream": "moq-rs " + _version("moq-rs"),
        "quick": quick,
        "trials_per_condition": n,
        "conditions": [c.key for c in conds],
        "interrupt_ms": interrupt_ms,
        "configs": configs_out,
        "duration_s": time.monotonic() - t_start,
    }


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


def run(quick: bool = False, trials: int | None = None) -> dict[str, Any]:
    """The measurement for bench/run.py: reduced grid (6 networks + control), 3 trials per condition
    and configuration (~10 min), or ``quick`` (2 networks + control, 3 configurations, < 60 s)."""
    return asyncio.run(run_async(quick, trials))


def print_points(res: dict[str, Any]) -> None:
    print("| configuration | stale after interruption p50 / p95 | silence inserted p50 / p95 | underruns p50 |")
    print("|---|---|---|---|")
    for key, c in sorted(res["configs"].items(), key=lambda kv: (kv[1]["impl"], kv[1]["lead_ms"], kv[1]["target_ms"])):
        p = c["point"]
        if not p["n"]:
            print(f"| {key} | failed | | |")
            continue
        print(
            f"| {key} | {p['stale_ms']['median']:.0f} / {p['stale_ms']['p95']:.0f} ms | "
            f"{p['silence_pct']['median']:.2f} / {p['silence_pct']['p95']:.2f} % | {p['underruns']['median']:g} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke: 2 conditions, 3 configurations, < 60 s")
    ap.add_argument("--trials", type=int, help="trials per condition and configuration (default 3, 1 with --quick)")
    ap.add_argument("--out", help="write the JSON here")
    ap.add_argument("--impl", choices=["moq-audio", "upstream"], help="run one side only")
    ap.add_argument("--merge", help="add the configurations of this earlier JSON (the other side's run)")
    args = ap.parse_args()
    res = asyncio.run(run_async(args.quick, args.trials, (args.impl,) if args.impl else ("moq-audio", "upstream")))
    if args.merge:
        with open(args.merge) as fh:
            old = json.load(fh)
        for k, v in old["configs"].items():
            res["configs"].setdefault(k, v)
        res["merged_from"] = {"file": args.merge, "duration_s": old.get("duration_s"), "note": "sides run separately"}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)
        log(f"upstream_network: wrote {args.out}")
    print_points(res)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalisation with native runtime threads (as bench/run.py does)


if __name__ == "__main__":
    sys.exit(main())
