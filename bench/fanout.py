#!/usr/bin/env python3
"""Fan-out through a 2-node moq-relay cluster: stale audio after a flush at N listeners.

    python bench/fanout.py                     # N = 1, 10, 100; 3 trials each -> bench/fanout.json
    python bench/fanout.py --quick             # N = 1, 10; 1 trial (CI smoke)
    python bench/fanout.py --listeners 1,10 --trials 5 --out /tmp/fanout.json

Set-up: upstream moq-relay 0.17.10 (scripts/install-relay.sh), nodes a and b on loopback, b
dialing a. The agent (its own process) connects to a and publishes ``bot`` at 24 kHz mono (a
common TTS rate), pacing lead 60 ms. The N listeners connect to b, each with its own session,
so every listener is two relay hops from the agent. Up to 10 of them (MEASURED) are moq-audio
Players (40 ms jitter target, decode, render, playout feedback) spread over up to 4 processes;
the other N - 10 are plain subscribers of the audio track (upstream moq-rs, PyPI ``moq-rs``)
that load the relay like a listener (session, subscription, every group) without decoding or
rendering, because a 2-core machine cannot render 100 listeners in real time next to the relays.

One trial: the agent writes a 10 s reply at once; when every Player has rendered 1 s of it, the
agent calls flush() (time T, CLOCK_MONOTONIC, shared by all processes on the machine) and then
either writes nothing ("silence": each Player cuts on the flush marker alone) or a 1 s answer at
once ("answer"). Each listener process maps T onto each Player's render clock (the Player
renders frame k at its start + k / rate; the start is estimated from 20 samples of
``rendered_frames`` against the clock) and counts the old generation's frames rendered after
that point: **stale ms**. Also per Player: when the new generation arrived (quantized to the
10 ms render quantum) and when the answer's first sample played. Per trial: the **spread**
(last Player to go silent minus the first).

CPU: user + system time from /proc of each relay process and of the agent process over the
streaming phase (the write until every Player has rendered 1 s), as % of one core; the Players'
processes are recorded too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from _common import log, speech_like, summary
from children import Child

RATE = 24_000
REPLY_S = 10.0
ANSWER_S = 1.0
INTERRUPT_MS = 1_000.0
SILENCE_WINDOW_S = 0.5
MAX_PER_PROCESS = 25
PROCESSES = 4
#: Listeners that are real Players (decode + render + feedback) and are measured; the rest of
#: the N are plain subscribers (see sinks_role). 10 Players is what this 2-core machine renders
#: in real time next to two relays and the agent (at N = 100 Players it could not: 2.5 cores of
#: demand, hundreds of underruns; recorded in the JSON as "all_players_n100").
MEASURED = 10


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_line() -> str:
    return sys.stdin.readline().strip()


async def stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, read_line)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, s."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- child roles ---------------------------------------------------------------------------------


async def agent_role(args: dict[str, Any]) -> None:
    """Publish ``args["path"]`` on ``args["url"]``; obey "write" / "flush" lines on stdin."""
    import moq_audio

    reply = speech_like(REPLY_S, rate=RATE, seed=1)
    answer = speech_like(ANSWER_S, rate=RATE, seed=2, pitch_shift=1.5)
    async with moq_audio.connect(args["url"]) as session:
        bot = session.publish_audio(args["path"], sample_rate=RATE, lead_ms=60.0)
        emit("ready")
        while True:
            cmd = await stdin_line()
            if cmd == "write":
                await bot.write(reply)
                emit("written")
            elif cmd == "flush":
                t = time.monotonic()
                report = bot.flush()
                if args.get("answer", True):
                    await bot.write(answer)
                emit(
                    "flushed "
                    + json.dumps(
                        {
                            "t": t,
                            "generation": report.generation,
                            "heard_listeners": len(report.heard_per_listener),
                            "heard_estimated": report.heard_estimated,
                            "answer": args.get("answer", True),
                        }
                    )
                )
            else:  # "quit" or EOF
                bot.cancel()
                break
    emit("result {}")
    os._exit(0)


def render_start(player: Any, rate: int) -> float:
    """Estimate CLOCK_MONOTONIC at the Player's render frame 0 (see the module docstring)."""
    best = float("inf")
    for _ in range(20):
        t = time.monotonic()
        frames = player.report().rendered_frames
        best = min(best, t - frames / rate)
        time.sleep(0.0013)  # spread the samples over more than one 10 ms render quantum
    return best


async def listeners_role(args: dict[str, Any]) -> None:
    """``args["count"]`` listeners (one session + Player each) on ``args["url"]``."""
    import moq_audio

    count, path = args["count"], args["path"]
    sessions = []
    players = []
    cpu0 = time.process_time()
    try:
        for i in range(count):
            session = await moq_audio.connect(args["url"])
            sessions.append(session)
            players.append(await session.play_audio(path, listener_id=f"{args['name']}-{i}", timeout=60))
        emit("ready")
        await asyncio.gather(*(asyncio.wait_for(p.wait_rendered(INTERRUPT_MS, generation=0), 60) for p in players))
        emit("rendered")
        info = json.loads((await stdin_line()).split(" ", 1)[1])  # "flushed {json}"
        t_flush = info["t"]
        loop = asyncio.get_running_loop()
        starts = [await loop.run_in_executor(None, render_start, p, p.report().sample_rate) for p in players]
        answers: list[Any]
        if info["answer"]:
            answers = await asyncio.gather(
                *(
                    asyncio.wait_for(p.wait_rendered(ANSWER_S * 900, generation=info["generation"]), 30)
                    for p in players
                ),
                return_exceptions=True,
            )
        else:
            # Nothing new will play: listen for a fixed window after the flush (> the 60 ms lead
            # plus the 40 ms jitter target, the most old audio a listener could still hold).
            await asyncio.sleep(max(0.0, t_flush + SILENCE_WINDOW_S - time.monotonic()))
            answers = [None] * len(players)
        reports = [await p.stop() for p in players]
    finally:
        for session in sessions:
            await session.close()
    rows = []
    for report, start, answered in zip(reports, starts, answers, strict=True):
        rate = report.sample_rate
        flush_frame = round((t_flush - start) * rate)
        stale = report.frames_of(0, after=flush_frame)
        first_new = min((s.start for s in report.segments if (s.generation or 0) >= 1), default=None)
        arrival = report.arrival_of(1)
        rows.append(
            {
                "stale_ms": stale * 1000.0 / rate,
                "first_new_ms": None if first_new is None else (first_new - flush_frame) * 1000.0 / rate,
                # When the new generation (the flush marker, or the answer's first frame) reached
                # the Player, on the same clock: stale audio minus this is the fade + render quantum.
                "arrival_ms": None if arrival is None else (arrival - flush_frame) * 1000.0 / rate,
                "answered": answered is not None and not isinstance(answered, BaseException),
                "underruns": report.stats.underruns,
            }
        )
    emit("result " + json.dumps({"listeners": rows, "cpu_s": time.process_time() - cpu0}))
    os._exit(0)


async def sinks_role(args: dict[str, Any]) -> None:
    """``args["count"]`` plain subscribers of the audio track, one upstream moq-rs session each
    (PyPI moq-rs, bench/requirements.txt): they load the relay like listeners do (their own
    session, subscription and every group) but neither decode nor render, so a 2-core machine
    can host many of them next to the few measured Players."""
    import moq

    groups = [0] * args["count"]

    async def sink(i: int, session: Any) -> None:
        broadcast = await session.announced_broadcast(args["path"]).available()
        track = await broadcast.subscribe_track("audio")
        while (await track.recv_group()) is not None:
            groups[i] += 1

    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(moq.connect(args["url"], websocket_enabled=False))
            for _ in range(args["count"])
        ]
        tasks = [asyncio.create_task(sink(i, s)) for i, s in enumerate(sessions)]
        emit("ready")
        await stdin_line()  # "quit"
        for t in tasks:
            t.cancel()
    emit("result " + json.dumps({"sinks": args["count"], "with_groups": sum(1 for g in groups if g)}))
    os._exit(0)


ROLES = {"agent": agent_role, "listeners": listeners_role, "sinks": sinks_role}


def spawn(role: str, args: dict[str, Any]) -> Child:
    """A child process of this script in `role` (see `--role`), speaking the line protocol above."""
    return Child(role, args, command=[str(Path(__file__).resolve()), "--role"])


# --- driver ----------------------------------------------------------------------------------------


def trial(cluster: Any, n: int, path: str, answer: bool) -> dict[str, Any]:
    agent = spawn("agent", {"url": cluster.a.url, "path": path, "answer": answer})
    children: list[Child] = []
    sinks: list[Child] = []
    try:
        agent.expect("ready", 60)
        measured = min(n, MEASURED)
        if n > measured:
            sinks.append(spawn("sinks", {"url": cluster.b.url, "path": path, "count": n - measured}))
        per = min(MAX_PER_PROCESS, max(1, -(-measured // PROCESSES)))
        left, k = measured, 0
        while left > 0:
            count = min(per, left)
            children.append(spawn("listeners", {"url": cluster.b.url, "path": path, "count": count, "name": f"p{k}"}))
            left -= count
            k += 1
        for c in [*sinks, *children]:
            c.expect("ready", 180)
        loadavg = os.getloadavg()[0]
        t0 = time.monotonic()
        cpu0 = {"agent": cpu_seconds(agent.proc.pid), "a": cluster.a.cpu_seconds(), "b": cluster.b.cpu_seconds()}
        agent.send("write")
        agent.expect("written", 30)
        for c in children:
            c.expect("rendered", 60)
        # CPU over the streaming phase: from the write until every listener has rendered 1 s.
        wall = time.monotonic() - t0
        cpu1 = {"agent": cpu_seconds(agent.proc.pid), "a": cluster.a.cpu_seconds(), "b": cluster.b.cpu_seconds()}
        agent.send("flush")
        flushed = agent.expect("flushed ", 30)
        for c in children:
            c.send("flushed " + flushed)
        results = [json.loads(c.expect("result ", 120)) for c in children]
        for c in sinks:
            c.send("quit")
        sink_results = [json.loads(c.expect("result ", 30)) for c in sinks]
        agent.send("quit")
        agent.expect("result ", 30)
    finally:
        for c in [agent, *children, *sinks]:
            c.kill()
    rows = [row for r in results for row in r["listeners"]]
    stale = [r["stale_ms"] for r in rows]
    info = json.loads(flushed)
    return {
        "listeners": n,
        "measured_players": len(rows),
        "sinks_with_groups": sum(r["with_groups"] for r in sink_results),
        "processes": len(children),
        "stale_ms": stale,
        "spread_ms": max(stale) - min(stale),
        "first_new_ms": [r["first_new_ms"] for r in rows],
        "arrival_ms": [r["arrival_ms"] for r in rows],
        "answered": sum(r["answered"] for r in rows),
        "underruns": sum(r["underruns"] for r in rows),
        "heard_listeners_at_flush": info["heard_listeners"],
        "wall_s": wall,
        "cpu_pct": {k: 100.0 * (cpu1[k] - cpu0[k]) / wall for k in cpu0},
        "listener_cpu_pct_per_process": [100.0 * r["cpu_s"] / wall for r in results],
        "loadavg_before": loadavg,
    }


#: "silence": after flush() the agent writes nothing (it listens to the user), so each listener
#: cuts on the flush marker alone; "answer": it writes a 1 s answer at once, whose first frame
#: also cuts a listener the marker has not reached yet.
VARIANTS = ("silence", "answer")


def summarize(n: int, variant: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    stale = [s for r in rows for s in r["stale_ms"]]
    first = [f for r in rows for f in r["first_new_ms"] if f is not None]
    return {
        "listeners": n,
        "variant": variant,
        "trials": rows,
        "stale_summary": summary(stale),
        "spread_summary": summary(r["spread_ms"] for r in rows),
        "first_new_summary": summary(first),
        "arrival_summary": summary(a for r in rows for a in r["arrival_ms"] if a is not None),
        "relay_cpu_pct": summary(r["cpu_pct"]["a"] + r["cpu_pct"]["b"] for r in rows),
        "relay_a_cpu_pct": summary(r["cpu_pct"]["a"] for r in rows),
        "relay_b_cpu_pct": summary(r["cpu_pct"]["b"] for r in rows),
        "agent_cpu_pct": summary(r["cpu_pct"]["agent"] for r in rows),
        "loadavg_before": [r["loadavg_before"] for r in rows],
    }


def run(quick: bool = False, listeners: list[int] | None = None, trials: int | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able result (see the module docstring).

    Raises RuntimeError when moq-relay is not installed (scripts/install-relay.sh).
    """
    import support.relay as relays

    binary = relays.relay_binary()
    if binary is None:
        raise RuntimeError(f"moq-relay {relays.RELAY_VERSION} is not installed: run scripts/install-relay.sh")
    ns = listeners or ([1, 10] if quick else [1, 10, 100])
    n_trials = trials or (1 if quick else 3)
    out: dict[str, Any] = {
        "relay": f"moq-relay {relays.RELAY_VERSION}",
        "topology": "agent -> node a -> node b -> listeners (2 hops)",
        "sample_rate": RATE,
        "reply_s": REPLY_S,
        "interrupt_ms": INTERRUPT_MS,
        "trials": n_trials,
        "variants": list(VARIANTS),
        "configs": {},
    }
    with tempfile.TemporaryDirectory(prefix="moq-fanout-") as tmp:
        workdir = Path(tmp)
        cluster = relays.start_cluster(binary, workdir, relays.make_certificate(workdir))
        try:
            for n in ns:
                for variant in VARIANTS:
                    rows = []
                    for t in range(n_trials):
                        log(f"fanout: N={n} {variant} trial {t + 1}/{n_trials}")
                        rows.append(trial(cluster, n, f"fanout-{n}-{variant}-{t}", variant == "answer"))
                    key = f"{n}|{variant}"
                    out["configs"][key] = summarize(n, variant, rows)
                    c = out["configs"][key]
                    log(
                        f"fanout: N={n} {variant}: stale p50 {c['stale_summary']['median']:.1f} ms, "
                        f"p99 {c['stale_summary']['p99']:.1f} ms, spread max {c['spread_summary']['max']:.1f} ms, "
                        f"relay CPU {c['relay_cpu_pct']['median']:.1f} %, agent CPU {c['agent_cpu_pct']['median']:.1f} %"
                    )
        finally:
            for node in cluster.nodes:
                node.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 1, 10 with 1 trial (CI smoke)")
    ap.add_argument("--listeners", help="comma-separated N values (default 1,10,100)")
    ap.add_argument("--trials", type=int, help="trials per N (default 3, 1 with --quick)")
    ap.add_argument("--out", type=Path, default=HERE / "fanout.json", help="JSON output (default bench/fanout.json)")
    ap.add_argument("--role", nargs=2, metavar=("ROLE", "ARGS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        role, raw = args.role
        try:
            asyncio.run(ROLES[role](json.loads(raw)))
        except BaseException as e:  # noqa: BLE001 - reported to the driver, which raises it
            emit("error " + json.dumps(f"{type(e).__name__}: {e}"))
            os._exit(1)
        return 0
    ns = [int(x) for x in args.listeners.split(",")] if args.listeners else None
    result = run(quick=args.quick, listeners=ns, trials=args.trials)
    args.out.write_text(json.dumps(result, indent=1))
    log(f"fanout: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
