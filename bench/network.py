#!/usr/bin/env python3
"""Network benchmark: moq-audio's listener behind the userspace impairment proxy (bench/impair.py).

Scenario of one trial (all times on the listener's render clock unless said otherwise):

1. warm-up: the agent (``moq_audio`` producer, direct to the embedded server) writes 0.4 s, and
   every listener renders 0.2 s of it (so all are subscribed before anything is measured);
2. reply: ``flush()``, then 12 s of speech-like PCM (bench/_common.py ``speech_like``) written in
   20 ms chunks as fast as ``write`` takes them (the producer paces them at the lead);
3. interruption: once every listener has rendered 10 s of the reply, ``flush()`` and a 2 s new
   reply written at once; the trial ends when every listener has rendered 0.5 s of it.

The listeners are default ``Player``s (the adaptive jitter buffer of issue 9, starting at a 40 ms
target unless ``--target-ms``, adapting within 20..400 ms), each connected through its own proxy (``http://127.0.0.1:PROXYPORT/``: the certificate over TCP,
QUIC over UDP), the same impairment in both directions: one-way delay, uniform jitter around it
(FIFO: a datagram never overtakes an earlier one, as in the queues of Wi-Fi and mobile links;
the issue's rows are repeated with netem-style independent jitter, which reorders, as
"reorder"), random or bursty (Gilbert-Elliott, mean burst 3 datagrams) loss. The WebSocket
fallback is refused at the proxy so every listener is on QUIC (the proxy cannot make TCP lossy). Several listeners with different
conditions share one trial (one agent, one broadcast); trials are interleaved across leads and
shuffled conditions so a noisy moment spreads over all of them.

Per listener and trial:

- ``underruns``: times playout ran dry between the first sample of the reply and the
  interruption (silence segments of the Player report); ``underruns_after_1s`` the same after
  the reply's first second.
- ``silence_ms`` / ``silence_pct``: digital silence (runs of exact zeros >= 10 ms in the
  Player's WAV, which is the render clock) in that window: underruns plus the silence the
  buffer plays in place of a frame that was not there in time (labelled audio in the report).
- ``concealed_ms``: audio concealed by Opus PLC in that window (the report's concealed
  segments; the fixed buffer before issue 9 had none); ``missing_pct`` = (silence +
  concealed) / window, the issue's "concealed + silent"; the ``_after_1s`` variants leave out
  the reply's first second.
- ``target_ms``, ``jitter_ms``, ``peak_ms``, ``delay_ms``: the jitter buffer's state just
  before the interruption (its target, measured jitter, loss-recovery peak, and the playout
  delay over the fastest packets: how deep the buffer was when the flush cut it).
- ``stale_over_delay_ms``: ``stale_ms`` minus the one-way delay (the issue's goal: p95 <= 10 ms).
- ``stale_ms``: old audio (the interrupted reply) rendered after ``flush()``: the flush's wall
  time mapped onto the render clock (the clock read just before + the wall time until flush).
- ``marker_ms``: flush -> the listener first sees the new generation (report ``arrivals``).
- ``reply_start_ms``: flush -> first rendered sample of the new reply; ``extra_start_ms`` is
  that minus the one-way delay (what the listener's buffer and rendering add beyond the
  network); ``first_reply_start_ms`` the same for the 12 s reply.

Run: ``python bench/network.py [--quick] [--trials N] [--out FILE]``; ``run(quick, trials)``
returns the JSON-able result for bench/run.py. Progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from typing_extensions import Self

import moq_audio
from _common import CHUNK, RATE, log, speech_like, summary
from impair import GilbertElliott, Impairment, Profile

DELAYS_MS = (25.0, 50.0, 100.0)
JITTERS_MS = (5.0, 20.0, 40.0)
LOSSES_PCT = (0.0, 1.0, 3.0, 5.0)
MODELS = ("random", "bursty")
LEADS_MS = (20.0, 60.0, 200.0)
#: The three rows of issue 9's table (80 ms is not in the grid).
ISSUE_ROWS = ((25.0, 5.0, 0.0, "random"), (50.0, 20.0, 1.0, "random"), (80.0, 40.0, 3.0, "random"))
#: Mean Gilbert-Elliott burst, datagrams: our choice of "short bursts of a few packets".
MEAN_BURST = 3.0
REPLY_S = 12.0
INTERRUPT_MS = 10_000.0
WARM_S = 0.4
NEW_REPLY_S = 2.0
#: A run of exact zeros at least this long in the rendered WAV counts as inserted silence (ms).
#: Opus-decoded speech_like PCM never has one (it has no digital silence); a missing 20 ms
#: frame or an underrun does.
SILENCE_RUN_MS = 10.0
#: Impaired listeners per trial (one proxy each, plus the control). With 12 on a loaded 2-core
#: machine even the unimpaired control listener underran (render threads starved), so few; the
#: event loop's lateness is recorded as ``loop_lag_ms`` and the control shows what is left.
BATCH = 5
#: The lead at which the whole grid runs (the producer's default); the other leads run SUBSET.
FULL_LEAD_MS = 60.0
SUBSET = (
    *ISSUE_ROWS,
    (25.0, 20.0, 1.0, "random"),
    (50.0, 5.0, 0.0, "random"),
    (100.0, 40.0, 5.0, "bursty"),
)


@dataclass(frozen=True)
class Condition:
    """One network: one-way delay and jitter (ms), loss (%) and its model, both directions."""

    delay_ms: float
    jitter_ms: float
    loss_pct: float
    model: str = "random"  # "random" or "bursty"
    #: Independent per-datagram jitter that reorders (netem's model) instead of FIFO jitter.
    reorder: bool = False

    @property
    def key(self) -> str:
        loss = "0%" if self.loss_pct == 0 else f"{self.loss_pct:g}%{'' if self.model == 'random' else ' bursty'}"
        return f"{self.delay_ms:g}ms ±{self.jitter_ms:g}ms {loss}{' reorder' if self.reorder else ''}"

    def profile(self) -> Profile:
        """The proxy profile (the same for both directions)."""
        burst = None
        loss = self.loss_pct
        if self.loss_pct > 0 and self.model == "bursty":
            burst, loss = GilbertElliott.from_mean(self.loss_pct, MEAN_BURST), 0.0
        return Profile(
            delay_ms=self.delay_ms, jitter_ms=self.jitter_ms, loss_pct=loss, burst=burst, keep_order=not self.reorder
        )


#: The proxy without impairment, in every trial: the machine's own contribution.
CONTROL = Condition(0.0, 0.0, 0.0)


def grid(quick: bool) -> list[Condition]:
    """The issue's grid (25/50/100 ms x ±5/20/40 ms x 0/1/3/5 % random and bursty), its table rows,
    the no-impairment control and the table rows with reordering jitter (68 conditions)."""
    if quick:
        return [Condition(25, 5, 0), Condition(50, 20, 1), Condition(100, 40, 3, "bursty")]
    out = []
    for d in DELAYS_MS:
        for j in JITTERS_MS:
            for loss in LOSSES_PCT:
                for m in MODELS if loss > 0 else ("random",):
                    out.append(Condition(d, j, loss, m))
    for row in ISSUE_ROWS:
        c = Condition(*row)
        if c not in out:
            out.append(c)
    # The issue's rows with netem-style reordering jitter. (The no-impairment CONTROL joins
    # every trial, see batches().)
    out += [Condition(*row, reorder=True) for row in ISSUE_ROWS]
    return out


# --- the Player report ------------------------------------------------------------------------------


def as_dict(report: Any) -> dict[str, Any]:
    """A Player report as a dict: today's dict as is, or the coming ``PlayerReport`` object."""
    if isinstance(report, dict):
        return report
    d: dict[str, Any] = {k: getattr(report, k) for k in ("sample_rate", "channels", "rendered_frames")}
    d["segments"] = [
        {
            "start": s.start,
            "frames": s.frames,
            "generation": s.generation,
            "ts_us": s.ts_us,
            "fade": s.fade,
            "concealed": getattr(s, "concealed", False),
        }
        for s in report.segments
    ]
    d["arrivals"] = [{"generation": a.generation, "at_frame": a.at_frame} for a in report.arrivals]
    st = report.stats
    d["stats"] = (
        st
        if isinstance(st, dict)
        else {k: getattr(st, k) for k in dir(st) if not k.startswith("_") and isinstance(getattr(st, k), (int, float))}
    )
    return d


def rendered_frames(player: Any) -> int:
    return int(as_dict(player.report())["rendered_frames"])


def frames_of(rep: dict[str, Any], generation: int, lo: float = 0, hi: float = math.inf) -> int:
    """Render-clock frames of ``generation`` in [lo, hi)."""
    total = 0
    for s in rep["segments"]:
        if s["generation"] == generation:
            a, b = max(s["start"], lo), min(s["start"] + s["frames"], hi)
            total += max(0, int(b - a))
    return total


def zero_runs(pcm: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """(start, length) of runs of exact zeros at least ``min_len`` samples long (mono int16)."""
    z = np.concatenate(([0], (pcm == 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(z))
    starts, ends = edges[0::2], edges[1::2]
    keep = (ends - starts) >= min_len
    return list(zip(starts[keep].tolist(), (ends - starts)[keep].tolist(), strict=True))


def read_wav(path: str) -> np.ndarray:
    with wave.open(path) as w:
        ch = w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.reshape(-1, ch)[:, 0] if ch > 1 else pcm


def concealed_frames(rep: dict[str, Any], lo: float, hi: float) -> int:
    """Render-clock frames of concealment (the report's concealed segments) in [lo, hi)."""
    total = 0
    for s in rep["segments"]:
        if s.get("concealed"):
            a, b = max(s["start"], lo), min(s["start"] + s["frames"], hi)
            total += max(0, int(b - a))
    return total


#: The jitter buffer's state recorded just before the interruption (JitterStats attributes, ms).
STATE = ("target_ms", "jitter_ms", "peak_ms", "delay_ms")


def analyse(
    rep: dict[str, Any],
    pcm: np.ndarray,
    cond: Condition,
    gens: tuple[int, int],
    flush1_frame: float,
    flush2_frame: float,
    state: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The per-trial metrics of one listener (see the module docstring)."""
    rate = int(rep["sample_rate"])
    ms = 1000.0 / rate
    g_reply, g_new = gens
    reply_segs = [s for s in rep["segments"] if s["generation"] == g_reply]
    new_segs = [s for s in rep["segments"] if s["generation"] == g_new]
    s1 = min((s["start"] for s in reply_segs), default=None)
    out: dict[str, Any] = {"stats": rep["stats"]}
    if s1 is None:
        out["error"] = "the reply was never rendered"
        return out
    win_lo, win_hi = s1, int(flush2_frame)
    one_s = s1 + rate
    underrun_segs = [
        s for s in rep["segments"] if s["generation"] is None and win_lo < s["start"] < win_hi and s["frames"] > 0
    ]
    runs = [(a, n) for a, n in zero_runs(pcm[win_lo:win_hi], int(rate * SILENCE_RUN_MS / 1000))]
    silence = sum(n for _, n in runs)
    window = max(1, win_hi - win_lo)
    arrival = next((a["at_frame"] for a in rep["arrivals"] if a["generation"] >= g_new), None)
    first_new = min((s["start"] for s in new_segs), default=None)
    concealed = concealed_frames(rep, win_lo, win_hi)
    concealed_1s = concealed_frames(rep, one_s, win_hi)
    silence_1s = sum(max(0, win_lo + a + n - max(win_lo + a, one_s)) for a, n in runs)
    out.update(
        {
            "window_ms": window * ms,
            "underruns": len(underrun_segs),
            "underruns_after_1s": sum(1 for s in underrun_segs if s["start"] >= one_s),
            "underrun_silence_ms": sum(s["frames"] for s in underrun_segs) * ms,
            "silence_ms": silence * ms,
            "silence_pct": 100.0 * silence / window,
            "silence_after_1s_ms": silence_1s * ms,
            "concealed_ms": concealed * ms,
            "concealed_after_1s_ms": concealed_1s * ms,
            "missing_pct": 100.0 * (silence + concealed) / window,
            "missing_after_1s_pct": 100.0 * (silence_1s + concealed_1s) / max(1, win_hi - one_s),
            "stale_ms": frames_of(rep, g_reply, lo=flush2_frame) * ms,
            "marker_ms": None if arrival is None else (arrival - flush2_frame) * ms,
            "reply_start_ms": None if first_new is None else (first_new - flush2_frame) * ms,
            "first_reply_start_ms": (s1 - flush1_frame) * ms,
            "new_reply_ms": frames_of(rep, g_new) * ms,
        }
    )
    if out["reply_start_ms"] is not None:
        out["extra_start_ms"] = out["reply_start_ms"] - cond.delay_ms
    out["stale_over_delay_ms"] = out["stale_ms"] - cond.delay_ms
    out.update(state or {})
    return out


# --- one trial: one agent, several listeners through their own proxies ---------------------------------


class LoopLag:
    """Measures how late this event loop runs timers (the proxies' punctuality), ms."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.005)
            self.samples.append((loop.time() - t - 0.005) * 1000.0)

    def __enter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def wait_all(aws: list[Any], timeout: float) -> list[BaseException | None]:
    """Await every awaitable with ``timeout`` each; the exception (or None) per item."""

    async def one(aw: Any) -> BaseException | None:
        try:
            await asyncio.wait_for(aw, timeout)
            return None
        except Exception as e:  # noqa: BLE001 - recorded per listener
            return e

    return list(await asyncio.gather(*(one(a) for a in aws)))


def flush_frames(players: list[Any], flush: Any) -> tuple[list[float], Any]:
    """Call ``flush()`` and map its wall time onto each player's render clock: each clock is
    read just before, plus the wall time from that read to the flush."""
    reads = []
    for p in players:
        f = rendered_frames(p)
        reads.append((f, time.perf_counter()))
    t = time.perf_counter()
    result = flush()
    return [f + (t - tr) * RATE for f, tr in reads], result


async def moq_audio_trial(
    server_port: int,
    pub: Any,
    conds: list[Condition],
    lead_ms: float,
    target_ms: float,
    seed: str,
    pcm: dict[str, np.ndarray],
    path: str,
    tmp: str,
    interrupt_ms: float = INTERRUPT_MS,
) -> dict[Condition, dict[str, Any]]:
    """One trial: one producer at ``lead_ms``, one Player per condition behind its own proxy."""
    results: dict[Condition, dict[str, Any]] = {}
    async with contextlib.AsyncExitStack() as stack:
        proxies = []
        for c in conds:
            prof = c.profile()
            # websocket=False: moq-tokio races a WebSocket fallback after 200 ms, which wins at
            # >= 100 ms one-way delay about half the time; over TCP this proxy cannot drop packets.
            proxy = Impairment(
                upstream=f"127.0.0.1:{server_port}", up=prof, down=prof, seed=f"{seed}:{c.key}", websocket=False
            )
            proxies.append(await stack.enter_async_context(proxy))
        sessions = []
        for p in proxies:
            sessions.append(await stack.enter_async_context(moq_audio.connect(p.url, timeout=20)))
        bot = pub.publish_audio(path, sample_rate=RATE, lead_ms=lead_ms)
        stack.callback(bot.cancel)
        wavs = [os.path.join(tmp, f"{path}-{i}.wav") for i in range(len(conds))]
        players = list(
            await asyncio.gather(
                *(
                    s.play_audio(path, wav_path=w, target_ms=target_ms, timeout=20)
                    for s, w in zip(sessions, wavs, strict=True)
                )
            )
        )
        lag = stack.enter_context(LoopLag())
        await bot.write(pcm["warm"])
        errs = await wait_all([p.wait_rendered(WARM_S * 500, generation=0) for p in players], 20)
        f1, _ = flush_frames(players, bot.flush)
        g_reply = bot.generation
        for k in range(0, len(pcm["reply"]), CHUNK):
            await bot.write(pcm["reply"][k : k + CHUNK])
        e2 = await wait_all([p.wait_rendered(interrupt_ms, generation=g_reply) for p in players], REPLY_S + 20)
        states = [{k: float(getattr(p.report().stats, k, 0.0)) for k in STATE} for p in players]
        f2, _ = flush_frames(players, bot.flush)
        g_new = bot.generation
        await bot.write(pcm["new"])
        e3 = await wait_all([p.wait_rendered(500, generation=g_new) for p in players], 10)
        reports = [as_dict(r) for r in await asyncio.gather(*(p.stop() for p in players))]
        ctrl = None
        for i, c in enumerate(conds):
            err = errs[i] or e2[i] or e3[i]
            res = analyse(reports[i], read_wav(wavs[i]), c, (g_reply, g_new), f1[i], f2[i], states[i])
            res["proxy"] = proxies[i].stats()
            res["transport"] = "quic" if res["proxy"]["down"]["received"] > 50 else "websocket"
            res["loop_lag_ms"] = summary(lag.samples)
            if err is not None:
                res["wait_error"] = f"{type(err).__name__}: {err}"
            results[c] = res
            if c == CONTROL:
                ctrl = {k: res.get(k) for k in ("marker_ms", "stale_ms", "reply_start_ms", "silence_ms", "underruns")}
            with contextlib.suppress(OSError):
                os.remove(wavs[i])
    for res in results.values():
        res["control"] = ctrl
    return results


def test_pcm(quick: bool) -> dict[str, np.ndarray]:
    reply_s = 4.0 if quick else REPLY_S
    return {
        "warm": speech_like(WARM_S, seed=3),
        "reply": speech_like(reply_s, seed=1),
        "new": speech_like(NEW_REPLY_S, seed=2, pitch_shift=1.5),
    }


def batches(conds: list[Condition], size: int, rng: random.Random) -> list[list[Condition]]:
    """Shuffled groups of at most ``size`` conditions, each with the CONTROL listener added: what
    the control measures in a trial is what the machine (CPU contention, the proxy's event
    loop) added to every listener of that trial."""
    order = [c for c in conds if c != CONTROL]
    rng.shuffle(order)
    n = max(1, math.ceil(len(order) / size))
    return [[*order[i::n], CONTROL] for i in range(n)]


# --- summary ------------------------------------------------------------------------------------------

METRICS = (
    "underruns",
    "underruns_after_1s",
    "silence_ms",
    "silence_pct",
    "silence_after_1s_ms",
    "underrun_silence_ms",
    "concealed_ms",
    "concealed_after_1s_ms",
    "missing_pct",
    "missing_after_1s_pct",
    "stale_ms",
    "stale_over_delay_ms",
    "marker_ms",
    "reply_start_ms",
    "extra_start_ms",
    "first_reply_start_ms",
    *STATE,
)


def summarise(trials: list[dict[str, Any]], cond: Condition) -> dict[str, Any]:
    ok = [t for t in trials if "error" not in t]
    out: dict[str, Any] = {"trials": len(trials), "errors": len(trials) - len(ok)}
    for m in METRICS:
        out[m] = summary(t[m] for t in ok if t.get(m) is not None)
    for m in ("marker_ms", "stale_ms", "silence_ms"):
        # Minus the same trial's no-impairment control: what the network added.
        out[m.replace("_ms", "_over_control_ms")] = summary(
            t[m] - t["control"][m]
            for t in ok
            if t.get(m) is not None and t.get("control") and t["control"].get(m) is not None
        )
    markers = [t["marker_ms"] for t in ok if t.get("marker_ms") is not None]
    # A marker later than the worst one-way delay the jitter allows plus one render quantum
    # (10 ms) and one 20 ms frame was held back by a loss (a QUIC retransmission).
    bound = cond.delay_ms + cond.jitter_ms + 30.0
    out["late_marker_trials"] = sum(1 for m in markers if m > bound)
    out["late_marker_bound_ms"] = bound
    down = [t["proxy"]["down"] for t in ok if "proxy" in t]
    if down:
        rec = sum(d["received"] for d in down)
        out["realised_down_loss_pct"] = 100.0 * sum(d["dropped"] for d in down) / max(1, rec)
        out["down_reordered_pct"] = 100.0 * sum(d["reordered"] for d in down) / max(1, rec)
    return out


def baseline_table(rows: dict[str, Any], lead: float) -> list[dict[str, Any]]:
    """The issue's table (medians over trials at the default lead)."""
    table = []
    for key, r in rows.items():
        if r["lead_ms"] != lead:
            continue
        s = r["summary"]
        table.append(
            {
                "condition": r["condition"]["key"],
                **r["condition"],
                "underruns_median": s["underruns"].get("median"),
                "underruns_after_1s_median": s["underruns_after_1s"].get("median"),
                "silence_ms_median": s["silence_ms"].get("median"),
                "silence_pct_median": s["silence_pct"].get("median"),
                "stale_ms_median": s["stale_ms"].get("median"),
                "stale_ms_p95": s["stale_ms"].get("p95"),
                "stale_over_delay_ms_p95": s["stale_over_delay_ms"].get("p95"),
                "concealed_ms_median": s["concealed_ms"].get("median"),
                "missing_pct_median": s["missing_pct"].get("median"),
                "missing_pct_max": s["missing_pct"].get("max"),
                "missing_after_1s_pct_median": s["missing_after_1s_pct"].get("median"),
                "missing_after_1s_pct_max": s["missing_after_1s_pct"].get("max"),
                "target_ms_median": s["target_ms"].get("median"),
                "delay_ms_median": s["delay_ms"].get("median"),
                "marker_ms_median": s["marker_ms"].get("median"),
                "marker_ms_max": s["marker_ms"].get("max"),
                "marker_over_control_ms_median": s["marker_over_control_ms"].get("median"),
                "stale_over_control_ms_p95": s["stale_over_control_ms"].get("p95"),
                "late_marker_trials": s["late_marker_trials"],
                "extra_start_ms_median": s["extra_start_ms"].get("median"),
                "key": key,
            }
        )
    table.sort(key=lambda r: (r["reorder"], r["delay_ms"], r["jitter_ms"], r["loss_pct"], r["model"]))
    return table


# --- driver -------------------------------------------------------------------------------------------


async def run_async(
    quick: bool,
    trials: int | None,
    *,
    leads: tuple[float, ...] | None = None,
    target_ms: float = 40.0,
    conds: list[Condition] | None = None,
    batch: int = BATCH,
) -> dict[str, Any]:
    conds = conds or grid(quick)
    leads = leads or ((60.0,) if quick else LEADS_MS)
    n = trials or (1 if quick else 3)
    pcm = test_pcm(quick)
    interrupt_ms = 3_000.0 if quick else INTERRUPT_MS
    rng = random.Random(9)
    rows: dict[str, dict[str, Any]] = {}
    per: dict[tuple[float, Condition], list[dict[str, Any]]] = {}
    t_start = time.monotonic()
    subset = [c for c in conds if (c.delay_ms, c.jitter_ms, c.loss_pct, c.model) in SUBSET] or conds

    def for_lead(lead: float) -> list[Condition]:
        return conds if lead == FULL_LEAD_MS or len(leads) == 1 else subset

    total = n * sum(math.ceil(len([c for c in for_lead(lead) if c != CONTROL]) / batch) for lead in leads)
    done = 0
    with tempfile.TemporaryDirectory(prefix="moq-audio-network-") as tmp:
        async with moq_audio.Server("127.0.0.1:0") as server, moq_audio.connect(server.url) as pub:
            for r in range(n):
                plan = [(lead, b) for lead in leads for b in batches(for_lead(lead), batch, rng)]
                rng.shuffle(plan)
                for lead, b in plan:
                    path = f"net-{r}-{done}"
                    res: dict[Condition, dict[str, Any]] = {}
                    for attempt in range(2):
                        try:
                            res = await moq_audio_trial(
                                server.port,
                                pub,
                                b,
                                lead,
                                target_ms,
                                f"{r}:{attempt}",
                                pcm,
                                f"{path}-{attempt}",
                                tmp,
                                interrupt_ms,
                            )
                            break
                        except Exception as e:  # noqa: BLE001 - a failed trial is retried, then recorded
                            log(f"network: trial {path} failed ({type(e).__name__}: {e})")
                            res = {c: {"error": f"{type(e).__name__}: {e}"} for c in b}
                    for c, v in res.items():
                        per.setdefault((lead, c), []).append(v)
                    done += 1
                    worst = max((v.get("silence_pct") or 0.0) for v in res.values())
                    lag = max((v.get("loop_lag_ms", {}).get("p99") or 0.0) for v in res.values())
                    log(
                        f"network: trial {done}/{total} (round {r + 1}, lead {lead:g} ms, {len(b)} listeners) "
                        f"worst silence {worst:.1f} %, loop lag p99 {lag:.1f} ms, {time.monotonic() - t_start:.0f} s"
                    )
    for (lead, c), ts in per.items():
        key = f"{c.key} | lead {lead:g}"
        rows[key] = {
            "condition": {**asdict(c), "key": c.key},
            "lead_ms": lead,
            "target_ms": target_ms,
            "trials": ts,
            "summary": summarise(ts, c),
        }
    default_lead = 60.0 if 60.0 in leads else leads[0]
    result = {
        "method": (
            "One agent (moq_audio producer, direct) writes a 0.4 s warm-up, flush, a 12 s speech-like reply in "
            "20 ms chunks, flush when every listener rendered 10 s of it, then a 2 s new reply. Listeners: "
            f"Player(target_ms={target_ms:g}), each through its own bench/impair.py proxy with the condition in both "
            "directions (uniform FIFO jitter, or netem-style reordering jitter for 'reorder'; Gilbert-Elliott mean "
            "burst 3 datagrams for 'bursty'; WebSocket fallback refused so all listeners use QUIC), several listeners per "
            "trial. Silence = runs of exact zeros >= 10 ms in the rendered WAV between the reply's first sample and "
            "the interruption; stale = old audio rendered after flush(), flush time mapped onto the render clock."
        ),
        "quick": quick,
        "trials_per_condition": n,
        "leads_ms": list(leads),
        "target_ms": target_ms,
        "reply_s": len(pcm["reply"]) / RATE,
        "interrupt_ms": interrupt_ms,
        "mean_burst_datagrams": MEAN_BURST,
        "conditions": [c.key for c in conds],
        "rows": rows,
        "baseline_table": baseline_table(rows, default_lead),
        "duration_s": time.monotonic() - t_start,
    }
    result["lead_table"] = lead_table(result)
    return result


def run(quick: bool = False, trials: int | None = None) -> dict[str, Any]:
    """The measurement for bench/run.py: the full grid at lead 60 ms and a 9-condition subset at
    20/200 ms, 3 trials each (54 trials, ~17 min on 2 cores), or ``quick`` (3 conditions + the
    control, lead 60 ms, a 4 s reply, ~10 s)."""
    return asyncio.run(run_async(quick, trials))


def print_table(res: dict[str, Any]) -> None:
    print(
        "| one-way delay | jitter | loss | underruns after 1 s | silence | concealed | "
        "silent + concealed (after 1 s) p50 / max | target / delay at the flush | "
        "stale after flush p50 / p95 (p95 − delay) | marker p50 / max | extra start |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res["baseline_table"]:
        loss = f"{r['loss_pct']:g} %" + (" bursty" if r["model"] == "bursty" and r["loss_pct"] else "")
        loss += " (reordering jitter)" if r["reorder"] else ""
        print(
            f"| {r['delay_ms']:g} ms | ±{r['jitter_ms']:g} ms | {loss} | {r['underruns_after_1s_median']:g} | "
            f"{r['silence_ms_median']:.0f} ms ({r['silence_pct_median']:.2f} %) | {r['concealed_ms_median']:.0f} ms | "
            f"{r['missing_pct_median']:.2f} / {r['missing_pct_max']:.2f} % "
            f"({r['missing_after_1s_pct_median']:.2f} / {r['missing_after_1s_pct_max']:.2f} %) | "
            f"{r['target_ms_median']:.0f} / {r['delay_ms_median']:.0f} ms | "
            f"{r['stale_ms_median']:.0f} / {r['stale_ms_p95']:.0f} ms ({r['stale_over_delay_ms_p95']:+.0f}) | "
            f"{r['marker_ms_median']:.0f} / {r['marker_ms_max']:.0f} ms | {r['extra_start_ms_median']:.0f} ms |"
        )


def lead_table(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Per lead: the conditions' p95 of stale audio after the flush minus the one-way delay (the
    issue's goal: <= 10 ms everywhere), and the worst condition."""
    out = []
    for lead in res["leads_ms"]:
        rows = [r for r in res["rows"].values() if r["lead_ms"] == lead and r["condition"]["delay_ms"] > 0]
        p95s = [(r["summary"]["stale_over_delay_ms"].get("p95"), r["condition"]["key"]) for r in rows]
        p95s = [p for p in p95s if p[0] is not None]
        worst = max(p95s, default=(None, None))
        out.append(
            {
                "lead_ms": lead,
                "conditions": len(p95s),
                "within_10ms": sum(1 for p, _ in p95s if p <= 10.0),
                "worst_p95_ms": worst[0],
                "worst_condition": worst[1],
            }
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke: 3 conditions, lead 60 ms, 4 s reply, < 60 s")
    ap.add_argument("--trials", type=int, help="trials per condition and lead (default 3, 1 with --quick)")
    ap.add_argument("--leads", help="comma-separated pacing leads in ms (default 20,60,200)")
    ap.add_argument("--target-ms", type=float, default=40.0, help="the Player's jitter target (default 40)")
    ap.add_argument(
        "--issue-rows", action="store_true", help="only the three rows of issue 9's table (FIFO and reordering jitter)"
    )
    ap.add_argument("--batch", type=int, default=BATCH, help=f"listeners per trial (default {BATCH})")
    ap.add_argument("--out", help="write the JSON here (default: print the table only)")
    args = ap.parse_args()
    leads = tuple(float(x) for x in args.leads.split(",")) if args.leads else None
    conds = None
    if args.issue_rows:
        conds = [Condition(*r) for r in ISSUE_ROWS] + [Condition(*r, reorder=True) for r in ISSUE_ROWS]
    res = asyncio.run(
        run_async(args.quick, args.trials, leads=leads, target_ms=args.target_ms, conds=conds, batch=args.batch)
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)
        log(f"network: wrote {args.out}")
    print_table(res)
    res_leads = res["lead_table"]
    print("\n| lead | conditions with stale p95 <= delay + 10 ms | worst p95 − delay |")
    print("|---|---|---|")
    for r in res_leads:
        worst = "–" if r["worst_p95_ms"] is None else f"{r['worst_p95_ms']:+.0f} ms ({r['worst_condition']})"
        print(f"| {r['lead_ms']:g} ms | {r['within_10ms']} / {r['conditions']} | {worst} |")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalisation with native runtime threads (as bench/run.py does)


if __name__ == "__main__":
    sys.exit(main())
