#!/usr/bin/env python3
"""Sections 7-9 of results.md (fan-out, Pipecat side by side, real networks) and their figures,
from the JSON that the separate benchmark scripts record next to this file:

- ``fanout.json`` (bench/fanout.py, issue 8),
- ``pipecat_compare.json`` (bench/pipecat_compare.py, issue 10; its figure is the script's own),
- ``network_baseline.json``, ``network.json`` (bench/network.py, issue 9; ``network.py`` writes
  a file only with ``--out``, so the adaptive buffer's run is expected as
  ``python bench/network.py --out bench/network.json``) and ``network_upstream.json``
  (bench/upstream_network.py).

bench/report.py's ``write_markdown`` appends these sections and headline rows; this script also
regenerates only them in an existing results.md, between the markers ``<!-- extra:begin -->`` and
``<!-- extra:end -->`` (sections) and on the headline rows tagged ``<!-- extra -->``:

    python bench/report_extra.py                 # redraw stale figures, splice bench/results.md
    python bench/report_extra.py --no-plots      # only the markdown
    python bench/report_extra.py --network FILE  # the adaptive run from another path

Every number comes from the JSON; the only constants here are the issues' goals.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np

from _common import summary
from report import f

BEGIN = "<!-- extra:begin -->"
END = "<!-- extra:end -->"
#: Appended to the last cell of each headline row written here (inline HTML: invisible, and it
#: keeps the row inside the table, where a marker line would end it).
ROW_TAG = "<!-- extra -->"

FANOUT_JSON = "fanout.json"
PIPECAT_JSON = "pipecat_compare.json"
NETWORK_JSON = "network.json"
BASELINE_JSON = "network_baseline.json"
UPSTREAM_JSON = "network_upstream.json"
FANOUT_PNG = "fanout.png"
PIPECAT_PNG = "pipecat_compare.png"
TRADEOFF_PNG = "network_tradeoff.png"

# --- the issues' goals ---------------------------------------------------------------------------
#: Issue 8: the last of 100 listeners silent within 10 ms of the first.
FANOUT_SPREAD_GOAL_MS = 10.0
FANOUT_GOAL_N = 100
#: Issue 8: the agent's cost does not grow with N; "does not grow" = within this factor (noise).
AGENT_CPU_TOLERANCE = 1.10
#: Issue 10 (as docs/pipecat.md states it): BotStoppedSpeakingFrame within one playout feedback
#: period (50 ms) of the listener's last rendered sample; the context holds only heard words.
PIPECAT_BOT_STOPPED_GOAL_MS = 50.0
#: Issue 9: concealed + silent <= 0.5 % up to ±40 ms jitter and 3 % loss ...
NET_MISSING_GOAL_PCT = 0.5
NET_GOAL_JITTER_MS = 40.0
NET_GOAL_LOSS_PCT = 3.0
#: ... and stale audio after a flush at most 10 ms beyond the one-way delay (p95).
NET_STALE_GOAL_MS = 10.0

PIPECAT_LISTENERS = ("moq-audio", "pipecat-moq stock", "pipecat-moq rtvi-reset")


# --- helpers -------------------------------------------------------------------------------------


def load(bench_dir: str, name: str) -> dict[str, Any] | None:
    """The JSON ``bench_dir/name``, or None when the file does not exist."""
    path = os.path.join(bench_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def provenance(path: str) -> str:
    """Where a recorded file comes from: its last commit, or its date if it is not committed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    rel = os.path.relpath(os.path.abspath(path), root)

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("log", "-1", "--format=%h, %cs", "--", rel)
    dirty = git("status", "--porcelain", "--", rel)
    if commit and not dirty:
        return f"`{rel}`, committed in {commit}"
    mtime = dt.datetime.fromtimestamp(os.path.getmtime(path), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"`{rel}`, written {mtime}" + (" (not committed)" if dirty or not commit else "")


def figure_link(bench_dir: str, out: str, name: str, alt: str) -> str:
    """A markdown image of ``bench_dir/name`` relative to ``out`` (where results.md is)."""
    path = os.path.join(bench_dir, name)
    if not os.path.exists(path):
        return f"*(figure {name} not generated: `python bench/report_extra.py`)*"
    return f"![{alt}]({os.path.relpath(path, out)})"


def machine(bench_dir: str) -> str:
    """The machine as results.json's header records it (the benchmarks here ran on the same VM)."""
    res = load(bench_dir, "results.json") or {}
    m = res.get("meta", {})
    if not m:
        return "this machine"
    return f"{m.get('cpu_model')}, {m.get('cores')} cores"


def ms_range(s: dict[str, Any], nd: int = 0, sign: bool = False) -> str:
    """'median (min … max)' of a bench/_common.summary."""
    if not s.get("n"):
        return "–"
    spec = f"{'+' if sign else ''},.{nd}f"
    return f"{s['median']:{spec}} ({s['min']:{spec}} … {s['max']:{spec}})"


def p(values: Iterable[float | None], q: float) -> float | None:
    """The q-th percentile of the non-None values, or None."""
    v = [float(x) for x in values if x is not None]
    return float(np.percentile(v, q)) if v else None


def guarded(fn: Callable[[], list[str]], what: str) -> list[str]:
    """``fn()``, or one line saying why the section could not be rendered (run.py must not fail)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a malformed JSON costs its section, not the report
        return [f"*({what} could not be rendered: {type(e).__name__}: {e})*", ""]


# --- 7. fan-out (issue 8) ------------------------------------------------------------------------


def fanout_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (N, variant) with the figures of the table, in N order."""
    order = {v: i for i, v in enumerate(res.get("variants", []))}
    rows = []
    for c in res["configs"].values():
        trials = c["trials"]
        rows.append(
            {
                "n": c["listeners"],
                "variant": c["variant"],
                "trials": len(trials),
                "players": max(t["measured_players"] for t in trials),
                "sinks": max(t["sinks_with_groups"] for t in trials),
                "stale": c["stale_summary"],
                "spread": c["spread_summary"],
                "spreads": [t["spread_ms"] for t in trials],
                "arrival": c["arrival_summary"],
                "first_new": c["first_new_summary"],
                "underruns": sum(t["underruns"] for t in trials),
                "relay_a": c["relay_a_cpu_pct"]["median"],
                "relay_b": c["relay_b_cpu_pct"]["median"],
                "relay": c["relay_cpu_pct"]["median"],
                "agent": c["agent_cpu_pct"]["median"],
                "load": [round(x, 1) for x in c.get("loadavg_before", [])],
            }
        )
    rows.sort(key=lambda r: (r["n"], order.get(r["variant"], 99)))
    return rows


def fanout_verdict(res: dict[str, Any]) -> dict[str, Any]:
    """The issue's two goals against the data: spread at N = 100 and the agent's CPU over N."""
    rows = fanout_rows(res)
    at_goal = [r for r in rows if r["n"] == FANOUT_GOAL_N] or [r for r in rows if r["n"] == max(x["n"] for x in rows)]
    spreads = [s for r in at_goal for s in r["spreads"]]
    worst = max(spreads) if spreads else None
    ns = sorted({r["n"] for r in rows})
    agent = {n: float(np.median([r["agent"] for r in rows if r["n"] == n])) for n in ns}
    players = {n: max(r["players"] for r in rows if r["n"] == n) for n in ns}
    n_max = ns[-1]
    # Ns with the same number of rendering Players (feedback readers) as the largest N.
    same = [n for n in ns if players[n] == players[n_max]]
    grow_all = agent[n_max] / agent[ns[0]]
    grow_same = agent[n_max] / agent[same[0]]
    return {
        "n": at_goal[0]["n"],
        "worst_spread": worst,
        "median_spread": float(np.median(spreads)) if spreads else None,
        "spread_met": worst is not None and worst <= FANOUT_SPREAD_GOAL_MS,
        "agent": agent,
        "players": players,
        "ns": ns,
        "same": same,
        "grow_all": grow_all,
        "grow_same": grow_same,
        "agent_met": grow_all <= AGENT_CPU_TOLERANCE,
        "agent_met_same_players": grow_same <= AGENT_CPU_TOLERANCE,
    }


def agent_sentence(v: dict[str, Any]) -> str:
    """The agent-CPU goal in one sentence."""
    series = " → ".join(f"{v['agent'][n]:.1f} %" for n in v["ns"])
    ns = "/".join(str(n) for n in v["ns"])
    if v["agent_met"]:
        return f"agent CPU {series} at N = {ns}: **met** (within {AGENT_CPU_TOLERANCE:.2f}× of N = {v['ns'][0]})"
    if v["agent_met_same_players"] and len(v["same"]) > 1:
        a, b = v["same"][0], v["ns"][-1]
        return (
            f"agent CPU {series} at N = {ns}: **met from N = {a} to {b}** ({v['grow_same']:.2f}×, the same "
            f"{v['players'][b]} rendering listeners whose playout feedback the agent reads), but it rose "
            f"{v['grow_all']:.2f}× from N = {v['ns'][0]} with the number of feedback readers, which this set-up "
            f"does not take beyond {v['players'][b]}"
        )
    return f"agent CPU {series} at N = {ns}: **not met** ({v['grow_all']:.2f}× from N = {v['ns'][0]})"


def fanout_section(bench_dir: str, out: str) -> list[str]:
    """Section 7: stale audio after a flush at N listeners through a 2-node relay cluster."""
    res = load(bench_dir, FANOUT_JSON)
    L = ["## 7. Fan-out through a 2-node moq-relay cluster (issue 8)", ""]
    if res is None:
        return L + ["*Not recorded yet* (`python bench/fanout.py` writes bench/fanout.json).", ""]
    rows = fanout_rows(res)
    v = fanout_verdict(res)
    loads = [x for r in rows for x in r["load"]]
    L += [
        (
            f"*Method* (`bench/fanout.py`, {provenance(os.path.join(bench_dir, FANOUT_JSON))}): {res['relay']}, two "
            f"nodes on loopback ({res['topology']}), all on one machine ({machine(bench_dir)}; load average "
            f"{min(loads):.1f}–{max(loads):.1f} before the trials). The agent publishes at "
            f"{res['sample_rate'] / 1000:g} kHz mono with a 60 ms pacing lead and writes a {res['reply_s']:.0f} s reply "
            f"at once; when every Player has rendered {res['interrupt_ms']:.0f} ms it calls `flush()` and then stays "
            "silent or writes a 1 s answer at once. Up to "
            f"{max(r['players'] for r in rows)} of the N listeners are real Players (decode, 40 ms jitter target, "
            "render, feedback) spread over up to 4 processes and measured; the others are plain upstream moq-rs "
            "subscribers (one session each, every group) that load the relay without rendering, because 2 cores "
            "cannot render 100 listeners next to the relays. *Stale* = old audio a Player renders after the "
            "`flush()` call (CLOCK_MONOTONIC mapped onto each render clock), *spread* = last measured Player to "
            "go silent minus the first, per trial; CPU = user + system time of each process over the streaming "
            f"phase, % of one core, median over {res['trials']} trials."
        ),
        "",
        (
            "| N (Players + plain subscribers) | after the flush | stale p50 / p99 ms | spread median / max ms | "
            "flush marker arrival p50 ms | answer's first sample p50 ms | underruns | relay a / b CPU % | agent CPU % |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        who = f"{r['n']} ({r['players']} + {r['n'] - r['players']})"
        L.append(
            f"| {who} | {r['variant']} | {f(r['stale']['median'])} / {f(r['stale']['p99'])} | "
            f"{f(r['spread']['median'])} / {f(r['spread']['max'])} | {f(r['arrival'].get('median'))} | "
            f"{f(r['first_new'].get('median'))} | {r['underruns']} | {f(r['relay_a'], 0)} / {f(r['relay_b'], 0)} | "
            f"{f(r['agent'])} |"
        )
    L += ["", figure_link(bench_dir, out, FANOUT_PNG, "fan-out: stale audio, spread and CPU against N"), ""]
    old = res.get("all_players_n100")
    if old:
        st = [c["stale_summary"]["median"] for c in old["configs"].values() if c["stale_summary"].get("n")]
        L += [
            (
                "An earlier run with all 100 listeners as real Players (`all_players_n100` in the JSON) measured "
                f"CPU starvation, not the relay: stale p50 {min(st):.0f}–{max(st):.0f} ms. Its note: "
                f"*{old['note']}*."
            ),
            "",
        ]
    L.append(
        f"**Verdict:** last of {v['n']} listeners silent within {FANOUT_SPREAD_GOAL_MS:.0f} ms of the first: "
        + (
            f"**met** (worst spread {v['worst_spread']:.1f} ms)"
            if v["spread_met"]
            else f"**not met** on this machine: spread median {v['median_spread']:.1f} ms, worst "
            f"{v['worst_spread']:.1f} ms (over the {v['players'][v['n']]} measured Players)"
        )
        + "; "
        + agent_sentence(v)
        + "."
    )
    return L + [""]


def fanout_figure(res: dict[str, Any], path: str) -> str:
    """fanout.png: stale p50/p99, spread per trial (goal line) and CPU per process against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = fanout_rows(res)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colors = dict(zip(variants, ("#1b9e77", "#d95f02", "#7570b3", "#e7298a"), strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    ax = axes[0]
    for var in variants:
        rr = [r for r in rows if r["variant"] == var]
        ns = [r["n"] for r in rr]
        ax.plot(ns, [r["stale"]["median"] for r in rr], "o-", color=colors[var], label=f"{var}: p50")
        ax.plot(ns, [r["stale"]["p99"] for r in rr], "s--", color=colors[var], alpha=0.7, label=f"{var}: p99")
    ax.set_title("old audio rendered after flush(), per Player (ms)", fontsize=9)
    ax.set_ylabel("ms")
    ax = axes[1]
    for k, var in enumerate(variants):
        rr = [r for r in rows if r["variant"] == var]
        for r in rr:
            x = r["n"] * (1 + 0.08 * (k - (len(variants) - 1) / 2))
            ax.scatter([x] * len(r["spreads"]), r["spreads"], color=colors[var], s=18, zorder=3)
        ax.plot([r["n"] for r in rr], [r["spread"]["max"] for r in rr], "-", color=colors[var], label=f"{var}: max")
    ax.axhline(FANOUT_SPREAD_GOAL_MS, color="black", linestyle=":", linewidth=1)
    ax.text(1, FANOUT_SPREAD_GOAL_MS, f" goal {FANOUT_SPREAD_GOAL_MS:.0f} ms", va="bottom", fontsize=8)
    ax.set_title("spread: last measured Player silent − first (ms), every trial", fontsize=9)
    ax = axes[2]
    ns = sorted({r["n"] for r in rows})

    def med(key: str) -> list[float]:
        return [float(np.median([r[key] for r in rows if r["n"] == n])) for n in ns]

    ax.plot(ns, med("relay_a"), "o-", color="#7570b3", label="relay node a (agent side)")
    ax.plot(ns, med("relay_b"), "o-", color="#e7298a", label="relay node b (listener side)")
    ax.plot(ns, med("agent"), "o-", color="#1b9e77", label="agent process")
    ax.set_title("CPU over the streaming phase (% of one core, median)", fontsize=9)
    ax.set_ylim(bottom=0)
    for a in axes:
        a.set_xscale("log")
        a.set_xticks(ns, [str(n) for n in ns])
        a.minorticks_off()
        a.set_xlabel("listeners N")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle(
        f"Fan-out: agent → {res['relay']} node a → node b → N listeners, loopback, {res['trials']} trials per point",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- 8. Pipecat side by side (issue 10) ----------------------------------------------------------

#: (key in the JSON, label, sign shown, decimals)
PIPECAT_MEASURES = (
    ("stale_after_interruption_ms", "old audio rendered after the interruption reached the transport (ms)", False, 0),
    ("stale_ms", "… counted from the barge-in (adds Pipecat's own interruption latency, ms)", False, 0),
    ("interruption_latency_ms", "Pipecat: user aggregator → output transport (ms)", False, 0),
    (
        "received_ahead_at_barge_in_ms",
        "audio the listener had received ahead of playout at the barge-in (ms)",
        False,
        0,
    ),
    ("turn1_bot_stopped_error_ms", "`BotStoppedSpeakingFrame` − last rendered sample, turn 1 (ms)", True, 0),
    ("turn3_bot_stopped_error_ms", "… turn 3, the answer (ms)", True, 0),
    ("turn1_bot_started_error_ms", "`BotStartedSpeakingFrame` − first rendered sample, turn 1 (ms)", True, 0),
    ("context_unheard_words", "words in the interrupted turn's context the listener never heard", False, 0),
    ("context_unheard_sentences", "… sentences never started", False, 0),
    ("answer_first_sample_ms", "barge-in → the answer's first rendered sample (ms)", False, 0),
)


def pipecat_summaries(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per listener (moq-audio, pipecat-moq stock, pipecat-moq rtvi-reset): its summaries."""
    out: dict[str, dict[str, Any]] = {}
    for per_listener in res.get("summary", {}).values():
        out.update(per_listener)
    return out


def pipecat_values(res: dict[str, Any], listener: str, key: str) -> list[float]:
    """Every trial's value of ``key`` for ``listener``."""
    return [
        r["listeners"][listener][key]
        for rows in res.get("rows", {}).values()
        for r in rows
        if listener in r["listeners"] and r["listeners"][listener].get(key) is not None
    ]


def pipecat_verdict(res: dict[str, Any]) -> dict[str, Any]:
    """Ours against the issue's goals, and against Pipecat's transport."""
    s = pipecat_summaries(res)
    ours = s.get("moq-audio", {})
    stopped = pipecat_values(res, "moq-audio", "turn1_bot_stopped_error_ms") + pipecat_values(
        res, "moq-audio", "turn3_bot_stopped_error_ms"
    )
    words = pipecat_values(res, "moq-audio", "context_unheard_words")
    within = sum(1 for x in stopped if 0 <= x <= PIPECAT_BOT_STOPPED_GOAL_MS)
    return {
        "stale": ours.get("stale_after_interruption_ms", {}),
        "stopped": stopped,
        "stopped_within": within,
        "stopped_median": float(np.median(stopped)) if stopped else None,
        "stopped_met": bool(stopped) and within == len(stopped),
        "stopped_median_met": bool(stopped) and 0 <= float(np.median(stopped)) <= PIPECAT_BOT_STOPPED_GOAL_MS,
        "words": words,
        "words_zero": sum(1 for w in words if w == 0),
        "words_met": bool(words) and max(words) == 0,
        "stock": s.get("pipecat-moq stock", {}),
        "reset": s.get("pipecat-moq rtvi-reset", {}),
    }


def pipecat_section(bench_dir: str, out: str) -> list[str]:
    """Section 8: one scripted Pipecat conversation through Pipecat's MOQTransport and through ours."""
    res = load(bench_dir, PIPECAT_JSON)
    L = ["## 8. Pipecat side by side: Pipecat's MOQTransport vs moq_audio.pipecat (issue 10)", ""]
    if res is None or "skipped" in res:
        why = f" ({res['skipped']})" if res else ""
        return L + [f"*Not recorded yet*{why} (`python bench/pipecat_compare.py`).", ""]
    ver = res.get("versions", {})
    mach = res.get("machine", {})
    la = list(mach.get("loadavg_before", [])) + list(mach.get("loadavg_after", []))
    errors = {k: len(v) for k, v in res.get("errors", {}).items() if v}
    L += [
        (
            f"*Method* (`bench/pipecat_compare.py`, {provenance(os.path.join(bench_dir, PIPECAT_JSON))}, "
            f"run started {res.get('date')}): the same Pipecat {ver.get('pipecat-ai')} pipeline (user aggregator, a scripted "
            "LLM, espeak-ng TTS at 24 kHz, assistant aggregator) with two transports: Pipecat's own `MOQTransport` "
            f"in serve mode (upstream moq-rs {ver.get('moq-rs')}; it writes TTS audio up to 25 s ahead with future "
            f"timestamps and has no flush) and `moq_audio.pipecat.MoqAudioTransport` (moq-audio {ver.get('moq-audio')}) "
            "on the embedded server. The conversation: a four-sentence reply played to its end; a second one, "
            f"interrupted {res['interrupt_after_ms'] / 1000:g} s into what the listener rendered (scripted VAD "
            "frames); the bot's answer. One listener method for both: a browser-like player that buffers "
            "everything, never drops and plays in timestamp order from a 40 ms start buffer; Pipecat's listener "
            "either does nothing more (*stock*, `@moq/watch`) or drops its buffer on the RTVI "
            "`user-started-speaking` message as Pipecat's MoQ client does (*rtvi-reset*); ours follows the in-band "
            f"generation and sends playout reports every 50 ms. {res['trials']} conversations per transport, "
            f"interleaved, Python {mach.get('python')} on {mach.get('cpus')} cores over loopback"
            + (f" (load average {min(la):.1f}–{max(la):.1f})" if la else "")
            + (f"; failed trials: {errors}" if errors else "")
            + "."
        ),
        "",
        "Median (min … max) over the conversations:",
        "",
        "| measure | " + " | ".join(PIPECAT_LISTENERS) + " |",
        "|---|" + "---:|" * len(PIPECAT_LISTENERS),
    ]
    s = pipecat_summaries(res)
    for key, label, sign, nd in PIPECAT_MEASURES:
        cells = [ms_range(s.get(lis, {}).get(key, {}), nd, sign) for lis in PIPECAT_LISTENERS]
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    v = pipecat_verdict(res)
    L += [
        "",
        figure_link(bench_dir, out, PIPECAT_PNG, "Pipecat comparison: stale audio, bot-stopped error, unheard words"),
        "",
        "*Figure:* drawn by `bench/pipecat_compare.py` (`figure()`): every conversation a dot, the median a bar.",
        "",
    ]
    n = len(v["stopped"])
    stale = v["stale"]
    L.append(
        "**Verdict:** "
        + (
            f"old audio after the interruption reached the transport: ours {f(stale.get('median'), 0)} ms median "
            f"(max {f(stale.get('max'), 0)}) with no client logic, against {f(v['stock'].get('stale_after_interruption_ms', {}).get('median'), 0)} ms "
            f"for Pipecat's transport with the stock player and {f(v['reset'].get('stale_after_interruption_ms', {}).get('median'), 0)} ms "
            "with the RTVI reset; "
        )
        + (
            f"words never heard in the context: 0 in {v['words_zero']} of {len(v['words'])} conversations "
            f"(max {max(v['words']):g}; rtvi-reset median {f(v['reset'].get('context_unheard_words', {}).get('median'), 0)}), "
            + ("**met**; " if v["words_met"] else "**not met in every conversation**; ")
            if v["words"]
            else ""
        )
        + (
            f"`BotStoppedSpeakingFrame` within {PIPECAT_BOT_STOPPED_GOAL_MS:.0f} ms of the last rendered sample: "
            f"{v['stopped_within']} of {n} turns (median {v['stopped_median']:+.0f} ms), "
            + (
                "**met**."
                if v["stopped_met"]
                else ("**met in median, not in every turn**." if v["stopped_median_met"] else "**not met**.")
            )
            if n
            else ""
        )
    )
    return L + [""]


def pipecat_figure(res: dict[str, Any], path: str) -> str | None:
    """pipecat_compare.png, drawn by bench/pipecat_compare.py's own ``figure()`` (that module imports
    moq_audio; without it the existing figure stays)."""
    from pathlib import Path

    try:
        import pipecat_compare
    except ImportError:
        return None
    out = pipecat_compare.figure(res, Path(path))
    return None if out is None else str(out)


# --- 9. real networks (issue 9) ------------------------------------------------------------------


def ok_trials(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials of a network.py row that did not fail."""
    return [t for t in row.get("trials", []) if "error" not in t]


def missing_pct(t: dict[str, Any]) -> float:
    """Concealed + silent, % of the window (computed the same way for runs that predate the field)."""
    if t.get("missing_pct") is not None:
        return float(t["missing_pct"])
    return 100.0 * (t["silence_ms"] + (t.get("concealed_ms") or 0.0)) / max(t["window_ms"], 1e-9)


def is_adaptive(res: dict[str, Any]) -> bool:
    """Whether a network.py run is of the adaptive buffer: only it records the buffer's state."""
    return any("jitter_ms" in t or "missing_pct" in t for r in res["rows"].values() for t in r.get("trials", []))


def buffer_label(res: dict[str, Any]) -> str:
    """What the listeners of a network.py run were."""
    if is_adaptive(res):
        return f"adaptive buffer (start target {res['target_ms']:g} ms)"
    return f"fixed {res['target_ms']:g} ms buffer (before the adaptive one)"


def default_lead(res: dict[str, Any]) -> float:
    """The lead at which network.py runs its whole grid (60 ms when it is in the run)."""
    leads = [float(x) for x in res["leads_ms"]]
    return 60.0 if 60.0 in leads else leads[0]


def cond_stats(row: dict[str, Any]) -> dict[str, Any]:
    """The table's figures of one condition from its trials."""
    ts = ok_trials(row)
    delay = row["condition"]["delay_ms"]
    miss = [missing_pct(t) for t in ts]
    s = row.get("summary", {})
    return {
        "trials": len(ts),
        "missing_p50": p(miss, 50),
        "missing_max": max(miss) if miss else None,
        "underruns_p50": p((t.get("underruns_after_1s") for t in ts), 50),
        "stale_p95": p((t.get("stale_ms") for t in ts), 95),
        "stale_over_delay_p95": p((t["stale_ms"] - delay for t in ts if t.get("stale_ms") is not None), 95),
        "extra_start_p50": p((t.get("extra_start_ms") for t in ts), 50),
        "target_p50": p((t.get("target_ms") for t in ts), 50),
        "loss": s.get("realised_down_loss_pct"),
    }


def cond_label(c: dict[str, Any]) -> str:
    """'80 ms | ±40 ms | 3 % random' (table cells) of a condition."""
    if c["loss_pct"] == 0:
        loss = "0 %"
    else:
        loss = f"{c['loss_pct']:g} % {c['model']}"
    jit = f"±{c['jitter_ms']:g} ms" + (" reordering" if c.get("reorder") else "")
    return f"{c['delay_ms']:g} ms | {jit} | {loss}"


def cond_sort(c: dict[str, Any]) -> tuple[Any, ...]:
    return (c.get("reorder", False), c["delay_ms"], c["jitter_ms"], c["loss_pct"], c["model"])


def lead_rows(res: dict[str, Any], lead: float) -> list[dict[str, Any]]:
    """The rows of one lead, in grid order."""
    rows = [r for r in res["rows"].values() if r["lead_ms"] == lead]
    return sorted(rows, key=lambda r: cond_sort(r["condition"]))


def issue_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's table rows: the conditions network.py repeats with reordering jitter, those
    repeats, and the no-impairment control."""
    reorder = {
        (r["condition"]["delay_ms"], r["condition"]["jitter_ms"], r["condition"]["loss_pct"], r["condition"]["model"])
        for r in rows
        if r["condition"].get("reorder")
    }
    return [
        r
        for r in rows
        if r["condition"]["delay_ms"] == 0
        or (
            r["condition"]["delay_ms"],
            r["condition"]["jitter_ms"],
            r["condition"]["loss_pct"],
            r["condition"]["model"],
        )
        in reorder
    ]


def net_goals(res: dict[str, Any]) -> dict[str, Any]:
    """Issue 9's goals over one run: concealed + silent within the scope, stale − delay p95 per lead."""
    lead = default_lead(res)
    rows = [r for r in lead_rows(res, lead) if r["condition"]["delay_ms"] > 0]
    scope = [
        r
        for r in rows
        if not r["condition"].get("reorder")
        and r["condition"]["jitter_ms"] <= NET_GOAL_JITTER_MS
        and r["condition"]["loss_pct"] <= NET_GOAL_LOSS_PCT
    ]
    miss = [(cond_stats(r)["missing_p50"], r["condition"]) for r in scope]
    miss = [(m, c) for m, c in miss if m is not None]
    hardest = [
        (m, c)
        for m, c in miss
        if c["jitter_ms"] == NET_GOAL_JITTER_MS and c["loss_pct"] == NET_GOAL_LOSS_PCT and c["model"] == "random"
    ]
    per_lead = []
    for ld in res["leads_ms"]:
        st = [(cond_stats(r)["stale_over_delay_p95"], r["condition"]) for r in lead_rows(res, ld)]
        st = [(x, c) for x, c in st if x is not None and c["delay_ms"] > 0]
        worst = max(st, key=lambda x: x[0], default=None)
        per_lead.append(
            {
                "lead": ld,
                "n": len(st),
                "within": sum(1 for x, _ in st if x <= NET_STALE_GOAL_MS),
                "worst": worst,
            }
        )
    return {
        "lead": lead,
        "scope_n": len(miss),
        "scope_within": sum(1 for m, _ in miss if m <= NET_MISSING_GOAL_PCT),
        "worst_missing": max(miss, key=lambda x: x[0], default=None),
        "hardest": hardest,
        "per_lead": per_lead,
    }


def net_table(
    runs: list[tuple[str, dict[str, Any]]], select: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> list[str]:
    """The per-condition table at each run's default lead (the rows ``select`` keeps)."""
    L = [
        (
            "| one-way delay | jitter | loss | buffer | trials | concealed + silent p50 (max) % | "
            "underruns after 1 s p50 | stale after flush p95 ms | p95 − one-way delay ms | "
            "extra start of the reply p50 ms |"
        ),
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_cond: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    conds: dict[str, dict[str, Any]] = {}
    for label, res in runs:
        for r in select(lead_rows(res, default_lead(res))):
            k = r["condition"]["key"]
            conds[k] = r["condition"]
            by_cond.setdefault(k, []).append((label, r))
    for k in sorted(conds, key=lambda k: cond_sort(conds[k])):
        for label, r in by_cond[k]:
            s = cond_stats(r)
            miss = "–" if s["missing_p50"] is None else f"{s['missing_p50']:.2f} ({s['missing_max']:.2f})"
            over = "–" if r["condition"]["delay_ms"] == 0 else f(s["stale_over_delay_p95"], 0)
            L.append(
                f"| {cond_label(r['condition'])} | {label} | {s['trials']} | {miss} | {f(s['underruns_p50'], 0)} | "
                f"{f(s['stale_p95'], 0)} | {over} | {f(s['extra_start_p50'], 0)} |"
            )
    return L


def tradeoff_points(up: dict[str, Any] | None, adaptive: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One point per configuration (medians over all trials and impaired networks): upstream moq-rs
    at its leads and moq-audio from network_upstream.json, plus the adaptive buffer from
    network.json on the same networks when it has them."""
    pts: list[dict[str, Any]] = []
    nets: list[str] = []
    if up:
        nets = [c for c in up.get("conditions", []) if not c.startswith("0ms ")]
        base_target = min((c["target_ms"] for c in up["configs"].values() if c["impl"] == "moq-audio"), default=None)
        for c in up["configs"].values():
            pt = c["point"]
            if not pt.get("n"):
                continue
            if c["impl"] == "upstream":
                series = f"{up.get('upstream', 'moq-rs')}: agent paces itself, stops writing"
                label = f"lead {c['lead_ms']:g}"
            elif c["target_ms"] == base_target:
                series, label = f"moq-audio flush, fixed {c['target_ms']:g} ms buffer", f"lead {c['lead_ms']:g}"
            else:
                series = f"moq-audio flush, lead {c['lead_ms']:g} ms, deeper fixed buffer"
                label = f"target {c['target_ms']:g}"
            pts.append(
                {
                    "series": series,
                    "label": label,
                    "impl": c["impl"],
                    "lead": c["lead_ms"],
                    "target": c["target_ms"],
                    "n": pt["n"],
                    "networks": len(c["by_condition"])
                    - (1 if any(k.startswith("0ms ") for k in c["by_condition"]) else 0),
                    "stale": pt["stale_ms"],
                    "silence": pt["silence_pct"],
                    "underruns": pt["underruns"],
                    "source": UPSTREAM_JSON,
                }
            )
    if adaptive and nets:
        for ld in adaptive["leads_ms"]:
            rows = [
                r for r in lead_rows(adaptive, ld) if r["condition"]["key"] in nets and not r["condition"]["reorder"]
            ]
            ts = [t for r in rows for t in ok_trials(r)]
            if not ts:
                continue
            pts.append(
                {
                    "series": f"moq-audio flush, {buffer_label(adaptive)}",
                    "label": f"lead {ld:g}",
                    "impl": "moq-audio",
                    "lead": ld,
                    "target": adaptive["target_ms"],
                    "n": len(ts),
                    "networks": len(rows),
                    "stale": summary(t["stale_ms"] for t in ts),
                    "silence": summary(missing_pct(t) for t in ts),
                    "underruns": summary(t["underruns"] for t in ts),
                    "source": NETWORK_JSON,
                }
            )
    return pts


def tradeoff_figure(points: list[dict[str, Any]], path: str, n_nets: int) -> str:
    """network_tradeoff.png: stale audio after an interruption against silence inserted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.8))
    palette = ("#d95f02", "#1b9e77", "#66a61e", "#7570b3", "#e7298a")
    markers = ("s", "o", "^", "D", "v")
    for i, series in enumerate(dict.fromkeys(pt["series"] for pt in points)):
        pts = sorted((pt for pt in points if pt["series"] == series), key=lambda pt: (pt["lead"], pt["target"]))
        xs = [pt["silence"]["median"] for pt in pts]
        ys = [pt["stale"]["median"] for pt in pts]
        # A series that varies the buffer depth at one lead starts from the base buffer's point there.
        base = [
            q
            for q in points
            if "deeper" in series
            and q["series"] != series
            and q["source"] == pts[0]["source"]
            and q["impl"] == pts[0]["impl"]
            and q["lead"] == pts[0]["lead"]
        ]
        if base:
            ax.plot(
                [base[0]["silence"]["median"], xs[0]],
                [base[0]["stale"]["median"], ys[0]],
                ":",
                color=palette[i % 5],
            )
        ax.plot(xs, ys, "-", marker=markers[i % 5], color=palette[i % 5], label=series, markersize=7)
        for pt, x, y in zip(pts, xs, ys, strict=True):
            ax.annotate(
                pt["label"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7, color=palette[i % 5]
            )
    ax.set_yscale("log")
    ax.set_xlabel("silence inserted before the interruption, % of playout (median; adaptive: concealed + silent)")
    ax.set_ylabel("stale audio after the interruption, ms (median, log)")
    ax.set_title(
        f"Stale audio vs inserted silence on {n_nets} impaired networks (one point per configuration)", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def network_section(bench_dir: str, out: str, network_json: str = NETWORK_JSON) -> list[str]:
    """Section 9: the listener behind the impairment proxy, and the trade-off against upstream."""
    base = load(bench_dir, BASELINE_JSON)
    adaptive = load(bench_dir, network_json)
    up = load(bench_dir, UPSTREAM_JSON)
    L = ["## 9. Real networks: jitter, loss and the trade-off against upstream (issue 9)", ""]
    runs: list[tuple[str, dict[str, Any]]] = []
    if base:
        runs.append((buffer_label(base), base))
    if adaptive:
        runs.append((buffer_label(adaptive), adaptive))
    ref = base or adaptive
    src = []
    for name, res in ((BASELINE_JSON, base), (network_json, adaptive)):
        if res:
            src.append(
                f"{provenance(os.path.join(bench_dir, name))}: {buffer_label(res)}, {res['trials_per_condition']} trials per condition, {res['duration_s'] / 60:.0f} min"
            )
    if ref:
        L += [
            (
                "*Method* (`bench/network.py`; " + "; ".join(src) + "): one agent (moq-audio producer, straight to "
                "the embedded server) writes a 0.4 s warm-up, then a "
                f"{ref['reply_s']:.0f} s speech-like reply in 20 ms chunks, calls `flush()` when every listener has "
                f"rendered {ref['interrupt_ms'] / 1000:g} s of it and writes a 2 s new reply. Each listener is a "
                "default `Player` behind its own bench/impair.py proxy (userspace, loopback, the same impairment in "
                "both directions: one-way delay, uniform FIFO jitter or netem-style reordering jitter, random or "
                f"Gilbert-Elliott bursty loss with mean burst {ref['mean_burst_datagrams']:g} datagrams; WebSocket "
                "refused so all use QUIC), a few listeners plus an unimpaired control per trial, trials shuffled; "
                f"the whole grid at lead {default_lead(ref):g} ms, a subset at leads "
                + ", ".join(f"{x:g}" for x in ref["leads_ms"] if x != default_lead(ref))
                + f" ms; machine: {machine(bench_dir)}. *Concealed + silent* = exact-zero runs ≥ 10 ms in the "
                "rendered WAV plus Opus-concealed audio, between the reply's first sample and the interruption; "
                "*stale* = old audio rendered after `flush()`; *extra start* = flush → the new reply's first "
                "rendered sample minus the one-way delay. The control row (0 ms) is the machine's own share."
            ),
            "",
        ]
    if not adaptive:
        L += [
            (
                f"Adaptive buffer: *not recorded yet* (no bench/{network_json}; `bench/network.py` writes JSON only with "
                f"`--out`, so record it with `python bench/network.py --out bench/{network_json}` and re-run "
                "`python bench/report_extra.py`)." + (" The rows below are the fixed-buffer baseline." if base else "")
            ),
            "",
        ]
    if runs and ref:
        L += [f"The issue's rows at lead {default_lead(ref):g} ms (the 0 ms row is the no-impairment control):", ""]
        L += net_table(runs, issue_rows)
        L += [
            "",
            "<details><summary>Every condition of the grid</summary>",
            "",
            *net_table(runs, lambda rows: rows),
            "",
            "</details>",
            "",
        ]
    # Trade-off against upstream.
    pts = tradeoff_points(up, adaptive)
    if up:
        nets = [c for c in up.get("conditions", []) if not c.startswith("0ms ")]
        side = up.get("merged_from", {}).get("note")
        L += [
            (
                f"*Trade-off* (`bench/upstream_network.py`, {provenance(os.path.join(bench_dir, UPSTREAM_JSON))}): "
                f"the same proxy on {len(nets)} networks ({', '.join(nets)}) plus the control, "
                f"{up['trials_per_condition']} trials per network and configuration. moq-audio calls `flush()` at the "
                f"interruption (network.py's trial); {up.get('upstream')} has no flush, so its agent paces its own "
                "writes at a lead and stops writing, and its listener (bench/browser_player.py behind upstream's "
                "decoder: plays everything received in timestamp order, re-buffers after an underrun, never drops) "
                "counts what it still plays. Stale = reply audio rendered (or still buffered) after the "
                "interruption; silence = playout time between the first sample and the interruption without audio. "
                "One point per configuration = medians over every trial on the impaired networks"
                + (f" (the two stacks' configurations were recorded apart and merged: {side})" if side else "")
                + ". The moq-audio side of this file ran with fixed jitter targets (before the adaptive buffer)"
                + (
                    "; the adaptive points come from network.json on the same networks."
                    if any(pt["source"] == NETWORK_JSON for pt in pts)
                    else "; adaptive points: not recorded yet."
                )
            ),
            "",
            "| configuration | networks | trials | stale after interruption p50 / p95 ms | silence inserted p50 / p95 % | underruns p50 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for pt in sorted(pts, key=lambda x: (x["impl"] != "upstream", x["series"], x["lead"], x["target"])):
            L.append(
                f"| {pt['series']}, {pt['label']} ms | {pt['networks']} | {pt['n']} | {f(pt['stale']['median'], 0)} / "
                f"{f(pt['stale']['p95'], 0)} | {f(pt['silence']['median'], 2)} / {f(pt['silence']['p95'], 2)} | "
                f"{f(pt['underruns'].get('median'), 0)} |"
            )
        L += ["", figure_link(bench_dir, out, TRADEOFF_PNG, "stale audio vs silence inserted"), ""]
    else:
        L += [
            "Trade-off against upstream: *not recorded yet* (`python bench/upstream_network.py --out bench/network_upstream.json`).",
            "",
        ]
    L += net_verdict_lines(runs, pts)
    return L + [""]


def net_verdict_lines(runs: list[tuple[str, dict[str, Any]]], pts: list[dict[str, Any]]) -> list[str]:
    """The one-line verdict per run against issue 9's goals, and the trade-off's gist."""
    out = []
    for label, res in runs:
        g = net_goals(res)
        hard = "; ".join(f"{c['key']}: {m:.2f} %" for m, c in g["hardest"])
        worst = g["worst_missing"]
        leads = "; ".join(
            f"lead {x['lead']:g} ms: {x['within']} of {x['n']}"
            + (f" (worst {x['worst'][0]:+.0f} ms, {x['worst'][1]['key']})" if x["worst"] else "")
            for x in g["per_lead"]
        )
        met_miss = g["scope_n"] > 0 and g["scope_within"] == g["scope_n"]
        met_stale = all(x["within"] == x["n"] for x in g["per_lead"] if x["n"])
        out.append(
            f"**Verdict, {label}:** concealed + silent ≤ {NET_MISSING_GOAL_PCT:g} % (median) up to "
            f"±{NET_GOAL_JITTER_MS:g} ms jitter and {NET_GOAL_LOSS_PCT:g} % loss: {g['scope_within']} of {g['scope_n']} "
            f"conditions ({hard}"
            + (f"; worst {worst[1]['key']}: {worst[0]:.2f} %" if worst else "")
            + f"), **{'met' if met_miss else 'not met'}**; stale after a flush ≤ one-way delay + "
            f"{NET_STALE_GOAL_MS:g} ms (p95): {leads}, **{'met' if met_stale else 'not met'}**."
        )
        out.append("")
    if not runs:
        out += ["**Verdict:** no network.py run recorded.", ""]
    ups = [pt for pt in pts if pt["impl"] == "upstream"]
    ours = [pt for pt in pts if pt["impl"] == "moq-audio"]
    if ups and ours:
        lo = min(ours, key=lambda pt: (pt["silence"]["median"], pt["stale"]["median"]))
        fits = [pt for pt in ups if pt["silence"]["median"] <= lo["silence"]["median"]]
        u = min(fits, key=lambda pt: pt["stale"]["median"]) if fits else None
        up_lo = min(ups, key=lambda pt: pt["stale"]["median"])
        up_hi = max(ups, key=lambda pt: pt["stale"]["median"])
        out += [
            (
                f"Trade-off: moq-audio's stale audio is {min(pt['stale']['median'] for pt in ours):,.0f}–"
                f"{max(pt['stale']['median'] for pt in ours):,.0f} ms (median) at every lead and buffer depth, "
                f"upstream's {up_lo['stale']['median']:,.0f} ms ({up_lo['label']} ms) to "
                f"{up_hi['stale']['median']:,.0f} ms ({up_hi['label']} ms); silence inserted: moq-audio "
                f"{min(pt['silence']['median'] for pt in ours):.2f}–{max(pt['silence']['median'] for pt in ours):.2f} %, "
                f"upstream {min(pt['silence']['median'] for pt in ups):.2f}–{max(pt['silence']['median'] for pt in ups):.2f} % "
                "(its listener re-buffers and never drops). At moq-audio's least silence "
                f"({lo['silence']['median']:.2f} %, {lo['series']}, {lo['label']} ms) its stale audio is "
                f"{lo['stale']['median']:,.0f} ms"
                + (
                    f"; upstream inserts no more silence than that only from {u['label']} ms on, and then plays "
                    f"{u['stale']['median']:,.0f} ms of stale audio."
                    if u
                    else "; no upstream configuration inserts as little silence."
                )
            ),
            "",
        ]
    return out


# --- headline, figures, assembly ----------------------------------------------------------------


def headline(bench_dir: str, network_json: str = NETWORK_JSON) -> list[str]:
    """Rows for results.md's "## Headline" table (each tagged with ROW_TAG)."""
    rows: list[str] = []

    def add(what: str, result: Callable[[], str]) -> None:
        try:
            rows.append(f"| {what} | {result()} {ROW_TAG}|")
        except Exception as e:  # noqa: BLE001 - as guarded(): a malformed JSON costs its row
            rows.append(f"| {what} | *(could not be rendered: {type(e).__name__})* {ROW_TAG}|")

    fan = load(bench_dir, FANOUT_JSON)
    if fan:

        def fan_text() -> str:
            assert fan is not None
            rows_ = fanout_rows(fan)
            v = fanout_verdict(fan)
            st = [r for r in rows_ if r["n"] == v["n"]]
            stale = "; ".join(f"{r['variant']} {f(r['stale']['median'])} / {f(r['stale']['p99'])} ms" for r in st)
            agent = " → ".join(f"{v['agent'][n]:.1f}" for n in v["ns"])
            ok = "met" if v["spread_met"] else "not met"
            spread = ", ".join(f"{r['variant']} {r['spread']['max']:.0f} ms" for r in st)
            return (
                f"stale p50 / p99 at N = {v['n']}: {stale}; last − first Player silent, worst trial: {spread} "
                f"(goal {FANOUT_SPREAD_GOAL_MS:.0f} ms: **{ok}**); agent CPU {agent} % "
                f"at N = {'/'.join(str(n) for n in v['ns'])} (**{'not growing' if v['agent_met'] or v['agent_met_same_players'] else 'growing'}** "
                f"from N = {v['same'][0]})"
            )

        add(
            f"fan-out, 2-node relay cluster, N = 1…{max(c['listeners'] for c in fan['configs'].values())} listeners",
            fan_text,
        )
    pc = load(bench_dir, PIPECAT_JSON)
    if pc and "skipped" not in pc:

        def pc_text() -> str:
            assert pc is not None
            s = pipecat_summaries(pc)

            def m(lis: str, key: str, sign: bool = False) -> str:
                x = s.get(lis, {}).get(key, {})
                return "–" if not x.get("n") else (f"{x['median']:+,.0f}" if sign else f"{x['median']:,.0f}")

            cells = []
            for lis in PIPECAT_LISTENERS:
                cells.append(
                    f"{lis}: {m(lis, 'stale_after_interruption_ms')} ms / {m(lis, 'turn1_bot_stopped_error_ms', True)} ms / "
                    f"{m(lis, 'context_unheard_words')}"
                )
            return " · ".join(cells)

        add(
            "Pipecat, barge-in (median: old audio after the interruption / BotStopped − last sample / unheard words in context)",
            pc_text,
        )
    base = load(bench_dir, BASELINE_JSON)
    adaptive = load(bench_dir, network_json)
    up = load(bench_dir, UPSTREAM_JSON)
    if base or adaptive or up:

        def net_text() -> str:
            parts = []
            for res in (base, adaptive):
                if not res:
                    continue
                g = net_goals(res)
                hard = ", ".join(f"{c['key']} {m:.2f} %" for m, c in g["hardest"])
                within = sum(x["within"] for x in g["per_lead"])
                n = sum(x["n"] for x in g["per_lead"])
                parts.append(
                    f"{buffer_label(res)}: concealed + silent ≤ {NET_MISSING_GOAL_PCT:g} % in {g['scope_within']} of "
                    f"{g['scope_n']} conditions up to ±{NET_GOAL_JITTER_MS:g} ms / {NET_GOAL_LOSS_PCT:g} % ({hard}); stale − delay p95 ≤ "
                    f"{NET_STALE_GOAL_MS:g} ms in {within} of {n}"
                )
            if not adaptive:
                parts.append("adaptive buffer: not recorded yet")
            pts = tradeoff_points(up, adaptive)
            ours = [pt for pt in pts if pt["impl"] == "moq-audio" and pt["lead"] == 60.0 and pt["target"] == 40.0]
            ups = sorted((pt for pt in pts if pt["impl"] == "upstream"), key=lambda pt: pt["lead"])
            if ours and ups:
                o = ours[-1]
                buf = "adaptive" if o["source"] == NETWORK_JSON else f"fixed {o['target']:g} ms buffer"
                parts.append(
                    f"stale vs silence on {o['networks']} networks: moq-audio ({buf}) lead 60 ms "
                    f"{o['stale']['median']:.0f} ms at "
                    f"{o['silence']['median']:.1f} %; moq-rs pacing itself "
                    + ", ".join(
                        f"{pt['lead']:g} ms lead {pt['stale']['median']:,.0f} ms at {pt['silence']['median']:.1f} %"
                        for pt in ups
                    )
                )
            return "; ".join(parts)

        add("real networks (impairment proxy; goals ≤ 0.5 % concealed + silent, stale ≤ delay + 10 ms)", net_text)
    return rows


def stale(path: str, sources: list[str]) -> bool:
    """Whether the figure at ``path`` is missing or older than any existing source."""
    if not os.path.exists(path):
        return True
    t = os.path.getmtime(path)
    return any(os.path.exists(s) and os.path.getmtime(s) > t for s in sources)


def figures(bench_dir: str, network_json: str = NETWORK_JSON, force: bool = False) -> list[str]:
    """Draws the figures of sections 7-9 that are missing or older than their JSON (all with
    ``force``); returns the paths written."""
    written = []

    def j(name: str) -> str:
        return os.path.join(bench_dir, name)

    fan = load(bench_dir, FANOUT_JSON)
    if fan and (force or stale(j(FANOUT_PNG), [j(FANOUT_JSON)])):
        written.append(fanout_figure(fan, j(FANOUT_PNG)))
    pc = load(bench_dir, PIPECAT_JSON)
    if pc and "skipped" not in pc and (force or stale(j(PIPECAT_PNG), [j(PIPECAT_JSON)])):
        path = pipecat_figure(pc, j(PIPECAT_PNG))
        if path:
            written.append(path)
    up = load(bench_dir, UPSTREAM_JSON)
    srcs = [j(UPSTREAM_JSON), j(network_json)]
    if up and (force or stale(j(TRADEOFF_PNG), srcs)):
        nets = [c for c in up.get("conditions", []) if not c.startswith("0ms ")]
        written.append(tradeoff_figure(tradeoff_points(up, load(bench_dir, network_json)), j(TRADEOFF_PNG), len(nets)))
    return written


def sections(bench_dir: str, out: str | None = None, network_json: str = NETWORK_JSON) -> list[str]:
    """Markdown lines of sections 7-9 (fan-out, Pipecat, networks) from the JSON in ``bench_dir``;
    figure links are relative to ``out`` (results.md's folder, default ``bench_dir``)."""
    out = out or bench_dir
    L: list[str] = []
    for fn, what in (
        (lambda: fanout_section(bench_dir, out), "section 7 (fanout.json)"),
        (lambda: pipecat_section(bench_dir, out), "section 8 (pipecat_compare.json)"),
        (lambda: network_section(bench_dir, out, network_json), "section 9 (network JSON)"),
    ):
        part = guarded(fn, what)
        while part and part[-1] == "":
            part.pop()
        L += [*part, ""]
    return L


def block(bench_dir: str, out: str | None = None, network_json: str = NETWORK_JSON) -> list[str]:
    """The sections between the markers, as report.write_markdown and the CLI insert them."""
    return [BEGIN, "", *sections(bench_dir, out, network_json), END, ""]


def splice(text: str, rows: list[str], lines: list[str]) -> str:
    """``text`` (a results.md) with the tagged headline rows replaced by ``rows`` and the marked
    block replaced by ``lines`` (inserted before "## Notes", else before "Raw data", else at the end)."""
    doc = [x for x in text.split("\n") if ROW_TAG not in x]
    if "## Headline" in doc:
        i = doc.index("## Headline") + 1
        while i < len(doc) and not doc[i].startswith("|"):
            i += 1
        while i < len(doc) and doc[i].startswith("|"):
            i += 1
        doc[i:i] = rows
    if BEGIN in doc and END in doc:
        a, b = doc.index(BEGIN), doc.index(END)
        del doc[a : b + 1]
        while a < len(doc) and doc[a] == "":
            del doc[a]
        doc[a:a] = lines
    else:
        at = next((k for k, x in enumerate(doc) if x == "## Notes"), None)
        if at is None:
            at = next((k for k, x in enumerate(doc) if x.startswith("Raw data")), len(doc))
        doc[at:at] = lines
    return "\n".join(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=os.path.join(HERE, "results.md"), help="the results.md to update in place")
    ap.add_argument(
        "--network", default=NETWORK_JSON, help=f"the adaptive buffer's network.py JSON (default bench/{NETWORK_JSON})"
    )
    ap.add_argument("--no-plots", action="store_true", help="do not redraw figures")
    ap.add_argument("--force-plots", action="store_true", help="redraw every figure, not only stale ones")
    args = ap.parse_args()
    network_json = os.path.relpath(os.path.abspath(args.network), HERE) if os.sep in args.network else args.network
    if not args.no_plots:
        for path in figures(HERE, network_json, args.force_plots):
            print(f"report_extra: wrote {path}", file=sys.stderr)
    out = os.path.dirname(os.path.abspath(args.results))
    with open(args.results) as fh:
        text = fh.read()
    new = splice(text, headline(HERE, network_json), block(HERE, out, network_json))
    with open(args.results, "w") as fh:
        fh.write(new)
    print(f"report_extra: updated {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
