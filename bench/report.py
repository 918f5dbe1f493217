"""results.md from results.json."""

from __future__ import annotations

import math
import os
from typing import Any


def stale_label(c: dict) -> str:
    if c["impl"] == "moq-audio":
        what = "flush, then silence" if c["variant"] == "silence" else "flush + new reply"
        return f"moq-audio, lead {c['lead_ms']:.0f} ms: {what}"
    if c["variant"] == "at_once":
        return "moq-rs: reply written at once, stop writing"
    return f"moq-rs: agent paces itself ({c['lead_ms']:.0f} ms lead), stops writing"


def stale_order(configs: dict) -> list[str]:
    def key(k):
        c = configs[k]
        return (0 if c["impl"] == "moq-audio" else 1, c["variant"] != "silence", c["lead_ms"] or 0)

    return sorted(configs, key=key)


def f(x: Any, nd: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:,.{nd}f}"
    return str(x)


def img(name: str, out: str, alt: str) -> str:
    return f"![{alt}]({name})" if os.path.exists(os.path.join(out, name)) else f"*(figure {name} not generated)*"


def header(meta: dict) -> list[str]:
    m = meta
    rows = [
        ("date", m.get("date")),
        ("machine", f"{m.get('cpu_model')}, {m.get('cores')} cores, {m.get('ram_gib'):.1f} GiB RAM, {m.get('kernel')}"),
        ("load average when the run started", m.get("loadavg")),
        ("moq-audio", f"{m.get('moq_audio_version')} (git {m.get('git')})"),
        ("moq-audio build measured from Python", m.get("build_profile")),
        ("encode benchmark build", m.get("encode_profile", "–")),
        (
            "upstream",
            f"moq-rs {m.get('moq_rs_version')} + moq-ffi {m.get('moq_ffi_version')} (PyPI wheels, release builds)",
        ),
        ("Python", f"{m.get('python')} (numpy {m.get('numpy')})"),
        ("rustc", m.get("rustc")),
        ("libopus", m.get("libopus", "–")),
        (
            "run",
            f"{'--quick smoke' if m.get('quick') else 'full'}; {commands_md(m)}; {m.get('duration_s', 0):.0f} s",
        ),
    ]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return lines


def stale_section(r: dict, out: str) -> tuple[list[str], dict]:
    c = r["configs"]
    L = [
        "## 1. Stale audio after an interruption",
        "",
        (
            f"The agent writes a {r['reply_s']:.0f} s reply at once and is interrupted when the listener has rendered "
            f"{r['interrupt_ms']:.0f} ms of it; the number is the ms of the old reply the listener renders after that moment "
            f"({r['trials']} trials per row, rows interleaved in a shuffled order each round, one process)."
        ),
        "",
        "| configuration | trials | median ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in stale_order(c):
        s = c[k]["stale_summary"]
        err = f" ({c[k]['errors']} failed)" if c[k]["errors"] else ""
        L.append(
            f"| {stale_label(c[k])} | {s.get('n', 0)}{err} | {f(s.get('median'))} | {f(s.get('p95'))} | {f(s.get('p99'))} | {f(s.get('max'))} |"
        )
    head = {}
    up = c.get("upstream|at_once|None", {}).get("stale_summary", {})
    for lead in (20.0, 60.0, 200.0):
        ours = c.get(f"moq-audio|silence|{lead}", {}).get("stale_summary", {})
        if up.get("n") and ours.get("n") and ours["median"] > 0:
            head[lead] = up["median"] / ours["median"]
    if head:
        L += [
            "",
            "Ratio of medians, moq-rs (reply written at once) ÷ moq-audio (flush, then silence): "
            + ", ".join(f"lead {lead:.0f} ms: **{v:,.0f}×**" for lead, v in head.items())
            + ".",
        ]
    L += [
        "",
        img("stale_cdf.png", out, "CDF of stale audio"),
        "",
        (
            "*Method:* moq-audio's Player logs every rendered stretch on its render clock, and the stale audio is the "
            "generation-0 audio it rendered after the render-clock frame read when `flush()` was called; for moq-rs, whose "
            "`AudioProducer` has no flush, the agent just stops writing and the listener is upstream's Opus decoder feeding "
            "`bench/browser_player.py`, which plays everything it received in timestamp order at real time like a browser "
            "AudioWorklet (audio still buffered 1 s after the interruption is counted, since it would be played)."
        ),
        "",
        img("stale_bars.png", out, "median and p95 stale audio"),
        "",
        "*Method:* the same trials as the CDF above, as median bars with the p95 marked.",
        "",
        (
            "What the rows mean: *flush, then silence* is the agent that calls `flush()` and then listens to the user: "
            "the producer opens the new generation's first group at once, empty (a marker), so the listener cuts over as "
            "soon as that group arrives, with a 5 ms fade, even though no new audio follows. *flush + new reply* "
            "writes the next reply at once after the flush: its first group overtakes the old audio, and the old "
            "generation is cut with the same 5 ms fade. *moq-rs, agent paces itself* is an agent "
            "that implements its own real-time pacing with a 60 ms lead on top of moq-rs and stops writing at the "
            "interruption: the best an application can do without a flush."
        ),
    ]
    extra = []
    for lead in (20.0, 60.0, 200.0):
        x = c.get(f"moq-audio|silence|{lead}")
        if x and x.get("heard_error_ms", {}).get("n"):
            extra.append(
                f"lead {lead:.0f} ms: median {f(x['heard_error_ms']['median'])} ms, p95 {f(x['heard_error_ms']['p95'])} ms "
                f"({x['heard_estimated_trials']} of {x['heard_error_ms']['n']} estimated)"
            )
    if extra:
        L += [
            "",
            "Accuracy of `FlushReport.heard_ms` against what the Player actually rendered before the flush "
            "(|reported − rendered|): " + "; ".join(extra) + ".",
        ]
    return L, head


def flush_to_audio_section(r: dict, out: str) -> list[str]:
    c = r["configs"]
    L = [
        "## 3. Time from `flush()` to the first new-generation sample rendered",
        "",
        "| lead | trials | render clock p50 ms | p95 | p99 | wall clock p50 ms | p95 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lead in (20.0, 60.0, 200.0):
        x = c.get(f"moq-audio|new_reply|{lead}")
        if not x:
            continue
        a = x.get("first_new_render_summary", {})
        b = x.get("first_new_wall_summary", {})
        L.append(
            f"| {lead:.0f} ms | {a.get('n', 0)} | {f(a.get('median'))} | {f(a.get('p95'))} | {f(a.get('p99'))} | "
            f"{f(b.get('median'))} | {f(b.get('p95'))} | {f(b.get('p99'))} |"
        )
    L += [
        "",
        img("flush_to_audio_cdf.png", out, "CDF of flush to first new sample"),
        "",
        (
            "*Method:* in the *flush + new reply* trials of section 1 the next reply is written right after `flush()` on "
            "loopback; the render-clock figure is the first generation-1 frame in the Player's render log minus the "
            "render-clock frame read at the flush (10 ms render quanta, so ±10 ms), the wall-clock figure is the time until "
            "`await player.wait_rendered(1, generation=1)` returns (it is re-checked once per render quantum, so it "
            "includes up to 10 ms of quantisation and the asyncio wake-up). It includes the ≤ 5 ms fade of the old "
            "generation, which the Player renders first."
        ),
        "",
        (
            "*Why 20–40 ms and not the 5 ms of the 2026-11-21 run:* since wire format v2 (issue 12) the producer keeps its "
            "pacing schedule across a flush, so stock hang players see no burst and skip nothing. A reply written the "
            "instant after `flush()` therefore goes out in real time behind the lead the old reply had taken, and the "
            "Player waits for its jitter target of it. After a pause the pacer re-anchors at now and the lead goes out at "
            "once: in a probe on this machine (2026-11-22, 3 trials each, lead 60 ms, target 40 ms) the first new sample "
            "played 31–40 ms after a write made right after the flush and within one 10 ms render quantum of a write made "
            "300 ms after it. That pause is the usual barge-in, where the agent waits for the user to finish."
        ),
    ]
    return L


def commands_of(meta: dict) -> list[str]:
    """The commands that wrote a results.json, oldest first (older files kept one string,
    joined with "; then `...`")."""
    if "commands" in meta:
        return list(meta["commands"])
    if "command" in meta:
        return [c.strip().strip("`") for c in meta["command"].split("; then ")]
    return []


def commands_md(meta: dict) -> str:
    """The commands that wrote the results, oldest first, as Markdown code spans."""
    return "; then ".join(f"`{c}`" for c in commands_of(meta)) or "–"


def flush_section(r: dict, out: str) -> list[str]:
    L = [
        "## 2. `flush()` call latency from Python",
        "",
        "| condition | calls | p50 µs | p95 µs | p99 µs | max µs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, v in r["conditions"].items():
        s = v["summary"]
        L.append(f"| {k} | {s['n']} | {f(s['median'])} | {f(s['p95'])} | {f(s['p99'])} | {f(s['max'], 0)} |")
    wr = r["conditions"].get("writer thread", {}).get("writes_during") or 0
    rounds = r["conditions"].get("writer thread", {}).get("round_p99") or []
    slow = [
        f"{k}: {v['over_100us']['calls']} ({v['over_100us']['preempted']} preempted, {v['over_100us']['blocked']} blocked)"
        for k, v in r["conditions"].items()
        if "over_100us" in v
    ]
    L += [
        "",
        img("flush_latency.png", out, "flush latency bars"),
        "",
        (
            "*Method:* `time.perf_counter_ns()` around each `bot.flush()` call from the asyncio thread (0.5-2 ms random pause "
            "between calls, a Player listening), idle with an empty queue, idle with 2 s of PCM written before each flush, "
            "while a second Python thread calls `write_blocking` with 20 ms chunks in a loop, flat out "
            f"({wr:,} writes during the run, most of them into a queue that each flush had just emptied), and while it writes "
            "a 20 ms chunk every 6.7 ms (a TTS engine at 3x real time). The producer, the embedded server and the Player all "
            "run in this process, on 2 cores. A `write_blocking` that fits is queued with the GIL held "
            "(since 2026-11-22; before, it released the GIL for every write), so the writer thread never holds the queue "
            "lock while `flush()`, which keeps the GIL, waits for it (it does, with the GIL released, when the queue is "
            "full); the producer's pump still takes that lock on a Tokio thread."
        ),
    ]
    if len(rounds) > 1:
        met = sum(1 for p in rounds if p <= 100.0)
        L += [
            "",
            (
                f"The writer-thread row pools {len(rounds)} rounds of {r['n']:,} calls, each with a fresh writer thread. "
                "p99 per round: " + ", ".join(f"{p:.0f}" for p in rounds) + f" µs ({met} of {len(rounds)} at or under "
                "100 µs). A round's tail depends on where the kernel puts the threads: when the pump's Tokio worker, "
                "woken by `flush()`, lands on the flushing thread's core, it runs first (the cut, and the embedded "
                "server and Player tasks it wakes) and the call waits for it (the *preempted* calls below)."
            ),
        ]
    if slow:
        L += [
            "",
            (
                "Calls over 100 µs, and where their time went (`getrusage(RUSAGE_THREAD)` around each call: *preempted* = "
                "the kernel switched the thread out for another one, *blocked* = it waited, for a lock or the GIL): "
                + "; ".join(slow)
                + "."
            ),
        ]
    return L


def encode_section(r: dict, out: str) -> tuple[list[str], dict]:
    L = [
        "## 4a. Opus encode cost: moq-audio's pipeline vs raw libopus",
        "",
        (
            f"`{r['command']}` ({r['profile']} profile): {r['audio_seconds']:.0f} s of speech-like PCM per variant, "
            f"20 ms frames, mono, libopus' default bitrate, {r['rounds']} rounds in rotating order, median."
        ),
        "",
        "| rate | variant | µs per 20 ms frame | real-time factor | ratio vs raw libopus (f32) |",
        "|---|---|---:|---:|---:|",
    ]
    head = {}
    for rate, rr in r["rates"].items():
        for name, v in rr["variants"].items():
            L.append(
                f"| {int(rate) / 1000:g} kHz | {name} | {f(v['us_per_frame'])} | {f(v['realtime_factor'], 0)}× | {v['ratio_vs_raw_f32']:.3f} |"
            )
        if "pipeline_i16" in rr["variants"]:
            head[rate] = rr["variants"]["pipeline_i16"]
    L += [
        "",
        img("encode.png", out, "encode cost bars"),
        "",
        (
            "*Method:* `crates/moq-audio/examples/bench_encode.rs` times, in one process, libopus through the `opus` crate "
            "into a reused buffer (`raw_libopus_*`), our `opus::Encoder` wrapper, and `encode::EncodePipeline` fed 20 ms "
            "chunks (`pipeline_i16` also includes the int16 → f32 validation `write()` does; at 44.1 kHz it includes "
            "resampling to 48 kHz and is compared with raw libopus at 48 kHz) on identical PCM, and reports each variant's "
            "median time over rounds."
        ),
    ]
    return L, head


def streams_section(r: dict, out: str) -> list[str]:
    L = [
        "## 4b. CPU per concurrent real-time stream",
        "",
        "| streams | measured s | agent CPU % (of one core) | CPU % per stream | of which Python writer | streams per core | late writer ticks | groups at the sink |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, x in r["runs"].items():
        L.append(
            f"| {n} | {f(x['wall_s'])} | {f(x['cpu_percent_total'])} | {x['cpu_percent_per_stream']:.3f} | "
            f"{x['writer_thread_percent_per_stream']:.3f} | **{f(x['streams_per_core'], 0)}** | {x['late_ticks']} of {x['ticks']} | "
            f"{x['sink'].get('groups_received')} (≥ {x['expected_groups_at_sink_min']} expected) |"
        )
    L += [
        "",
        img("streams_cpu.png", out, "CPU per stream"),
        "",
        (
            "*Method:* one agent process publishes N 48 kHz mono streams on one session while one Python thread writes a "
            "20 ms int16 chunk to every producer each 20 ms of wall clock; the server and one raw (non-decoding) moq-rs "
            "subscriber per stream run in another process, and the agent's `time.process_time()` over the measured window "
            "(after the warm-up) divided by wall time and N gives CPU per stream; streams per core = 100 % ÷ that."
        ),
    ]
    return L


def write_section(r: dict, out: str, enc: dict | None) -> tuple[list[str], dict]:
    enc_us = enc["us_per_frame"] if enc else None
    L = [
        "## 5. `write()` overhead per 20 ms chunk from Python",
        "",
        "| input, call | chunks | p50 µs | p95 µs | p99 µs | mean µs |" + (" p50 + encode µs |" if enc_us else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if enc_us else ""),
    ]
    for k, v in r["kinds"].items():
        s = v["summary"]
        tail = f" {f(s['median'] + enc_us)} |" if enc_us else ""
        L.append(f"| {k} | {s['n']} | {f(s['median'])} | {f(s['p95'])} | {f(s['p99'])} | {f(s['mean'])} |{tail}")
    L += [
        "",
        img("write_overhead.png", out, "write overhead bars"),
        "",
        "*Method:* `time.perf_counter_ns()` around each `write_blocking(chunk)` (or `await bot.write(chunk)`) of a "
        "prepared 20 ms chunk into a producer with a 300 s queue, so it never waits; the call does not encode (the "
        "producer's pump encodes at playout pace on a Tokio thread), so this is the overhead beyond encoding, and the "
        "last column adds the encode cost of one frame "
        + (f"({f(enc_us)} µs, `pipeline_i16` at 48 kHz from section 4a)" if enc_us else "")
        + ".",
    ]
    return L, {}


def memory_section(m: dict, out: str) -> list[str]:
    L = ["## 6. Memory", ""]
    if "burst" in m:
        b = m["burst"]
        L += [
            f"60 s of 48 kHz mono int16 ({b['pcm_int16_mib']:.1f} MiB; {b['pcm_f32_mib']:.1f} MiB as f32) written with one `await bot.write(pcm)`:",
            "",
            "| queue capacity | RSS before MiB | peak RSS (50 ms samples) MiB | peak − before MiB | VmHWM MiB | write returned before flush | queued before flush ms |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for label, r in b["runs"].items():
            L.append(
                f"| {label} | {f(r['rss_before_mib'])} | {f(r['peak_rss_mib'])} | **{f(r['peak_delta_mib'])}** | {f(r['hwm_mib'])} | "
                f"{'yes' if r['write_returned_before_flush'] else 'no (waiting for room)'} | {f(r['queued_ms_before_flush'], 0)} |"
            )
        L += [
            "",
            img("memory_burst.png", out, "RSS during a 60 s burst"),
            "",
            (
                "*Method:* an agent process (embedded server + publisher, a Player listening from another process) samples "
                "its own VmRSS every 50 ms from `/proc/self/status` while `write()` of 60 s runs, flushes after "
                f"{b['hold_s']:.0f} s, once with a 120 s queue and once with the default 30 s queue (where the write waits for room)."
            ),
            "",
        ]
    if "soak" in m:
        s = m["soak"]
        L += [
            f"Soak: {s['seconds'] / 60:.1f} min, a 10 s reply written at once and flushed 2 s later, {s['flushes']} flushes:",
            "",
            "| process | RSS early MiB | RSS end MiB | slope MiB / 10 min | VmHWM MiB | flat |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for who in ("agent", "listener"):
            x = s[who]
            flat = {True: "yes", False: "**no**", None: "too short to judge"}[x["flat"]]
            L.append(
                f"| {who} | {f(x['rss_start_mib'])} | {f(x['rss_end_mib'])} | {f(x['slope_mib_per_10min'], 2)} | {f(x['hwm_mib'])} | {flat} |"
            )
        L += [
            "",
            img("memory_soak.png", out, "RSS over the soak"),
            "",
            (
                "*Method:* the agent (embedded server + publisher) and a Player in a second process each sample their VmRSS "
                "once a second; *flat* means the least-squares slope after the first 10 % of the run is under 1 MiB per 10 "
                f"minutes (the listener logged {s['listener'].get('segments_logged')} render segments)."
            ),
        ]
    return L


STATIC_NOTES = [
    (
        "Upstream comparison setup: moq-rs runs on its own in-process server (`moq.Server` with a generated "
        "certificate, clients pinning its fingerprint); its client also interoperates with `moq_audio.Server` "
        "(http:// URL, certificate fetched from `/certificate.sha256`), which the `streams` measurement uses for its "
        "raw subscribers. moq-rs' decoder is asked for `max_age_us` = 60 s: with its default, a reply written at once "
        "was cut down to its newest frame (older groups are skipped as too old), which is not what a browser player "
        "buffering the stream does."
    ),
    (
        "The Player's render clock advances in 10 ms quanta; the render-clock frame read at `flush()` can lag the wall "
        "clock by up to one quantum (more when the machine starves the player task), which can only add to the stale "
        "figure, never hide stale audio."
    ),
    (
        "Processes that loaded moq_audio end with `os._exit` after writing their result: interpreter finalisation after "
        "using the native module aborted once during development (`Fatal Python error: PyGILState_Release`; since fixed "
        "by an atexit handler in the package, the benchmark keeps the guard)."
    ),
]


def observations(results: dict[str, Any]) -> list[str]:
    m = results.get("measurements", {})
    out = list(STATIC_NOTES)
    burst = (m.get("memory") or {}).get("burst")
    if burst:
        runs = burst["runs"]
        d = runs.get("capacity 30 s (default)")
        if d:
            queue = 30 * 48_000 * 4 / 2**20
            extra = d["peak_delta_mib"] - queue
            if extra > 2:
                out.append(
                    f"With the default 30 s capacity, the 60 s write waited for room, and RSS rose by "
                    f"{d['peak_delta_mib']:.1f} MiB, not the {queue:.1f} MiB of a full 30 s f32 queue: the waiting write "
                    f"holds its whole input converted to f32 ({burst['pcm_f32_mib']:.1f} MiB) until it is queued or flushed, "
                    "so memory is bounded by the capacity plus the pending writes, not by the capacity alone."
                )
    fl = m.get("flush")
    if fl:
        w = fl["conditions"].get("writer thread", {}).get("summary", {})
        i = fl["conditions"].get("idle, empty queue", {}).get("summary", {})
        if w.get("p99") and i.get("p99") and w["p99"] > 2 * i["p99"]:
            out.append(
                f"flush() while another Python thread writes flat out has a p99 of {w['p99']:.0f} µs against "
                f"{i['p99']:.0f} µs idle. flush() keeps the GIL and touches neither the network nor the allocator of the "
                "writer's buffers, so its own cost is the idle rows; with a writer spinning on one of the 2 cores next to "
                "the producer's, the server's and the Player's threads, the slow calls are the thread being preempted or "
                "waiting for a lock holder that was (see the attribution under section 2)."
            )
    st = m.get("stale")
    if st:
        c = st["configs"]
        sil = c.get("moq-audio|silence|60.0", {}).get("stale_summary", {})
        paced = c.get("upstream|paced|60.0", {}).get("stale_summary", {})
        bad = []
        for lead in (20.0, 60.0, 200.0):
            for variant in ("silence", "new_reply"):
                h = c.get(f"moq-audio|{variant}|{lead}", {}).get("heard_error_ms", {})
                if h.get("n") and h["median"] > 20:
                    bad.append(
                        f"lead {lead:.0f} ms, {variant.replace('_', ' ')}: median {h['median']:.0f} ms, max {h['max']:.0f} ms"
                    )
        if bad:
            out.append(
                "`FlushReport.heard_ms` (measured from listener feedback, not estimated) over-reports what the Player "
                "had rendered when flush() was called at long leads: " + "; ".join(bad) + ". In the trials checked by "
                "hand it exceeded the rendered audio by a whole number of 100 ms groups (100 or 200 ms), while it is "
                "within ~1 ms at 20 and 60 ms leads."
            )
        if sil.get("n") and paced.get("n") and sil["median"] > 20:
            out.append(
                f"When nothing follows the flush, moq-audio's stale audio ({sil['median']:.0f} ms median at a 60 ms lead) is "
                f"about what an application that paces moq-rs itself with the same lead gets ({paced['median']:.0f} ms): "
                "the listener did not learn of the flush before audio of the next generation arrived; the empty marker "
                "group that flush() publishes is meant to cut it to the fade even when the agent falls silent."
            )
    return out


def memory_results(m: dict[str, Any]) -> dict[str, Any]:
    """The burst and soak measurements together (they are run as two measurements)."""
    return {**m.get("memory", {}), **m.get("soak", {})}


def write_markdown(results: dict[str, Any], out: str) -> str:
    meta = results["meta"]
    m = results.get("measurements", {})
    L = [
        "# moq-audio benchmark results",
        "",
        (
            f"Written by {commands_md(meta)}. Everything runs on this machine over loopback. "
            "Re-run with the command in [README.md](README.md); numbers on a shared 2-core VM are noisy, which is why "
            "comparisons are made inside one process run."
        ),
        "",
    ]
    L += header(meta)
    headline: list[str] = []
    body: list[str] = []
    enc48 = None
    encode_lines: list[str] = []
    if "encode" in m:
        encode_lines, head = encode_section(m["encode"], out)
        enc48 = head.get("48000")
    if "stale" in m:
        sec, _ratio = stale_section(m["stale"], out)
        body += sec + [""]
        c = m["stale"]["configs"]
        up = c.get("upstream|at_once|None", {}).get("stale_summary", {})
        ours = c.get("moq-audio|silence|60.0", {}).get("stale_summary", {})
        nr = c.get("moq-audio|new_reply|60.0", {})
        if up.get("n") and ours.get("n"):
            headline.append(
                f"| stale audio after barge-in, lead 60 ms (median / p95 / p99) | moq-audio: {f(ours['median'], 0)} / {f(ours['p95'], 0)} / {f(ours['p99'], 0)} ms "
                f"(flush, then silence); {f(nr.get('stale_summary', {}).get('median'), 0)} ms with a new reply · moq-rs: "
                f"{f(up['median'], 0)} / {f(up['p95'], 0)} / {f(up['p99'], 0)} ms · ratio **{up['median'] / max(ours['median'], 1e-9):,.0f}×** |"
            )
    if "flush" in m:
        body += flush_section(m["flush"], out) + [""]
        cc = m["flush"]["conditions"]
        headline.append(
            "| `flush()` from Python (p50 / p99) | "
            + "; ".join(f"{k}: {f(v['summary']['median'])} / {f(v['summary']['p99'])} µs" for k, v in cc.items())
            + " |"
        )
    if "stale" in m:
        body += flush_to_audio_section(m["stale"], out) + [""]
        nr = m["stale"]["configs"].get("moq-audio|new_reply|60.0", {})
        if nr.get("first_new_render_summary", {}).get("n"):
            a, b = nr["first_new_render_summary"], nr["first_new_wall_summary"]
            headline.append(
                f"| flush → first new sample rendered, lead 60 ms (p50 / p99) | {f(a['median'])} / {f(a['p99'])} ms render clock; {f(b.get('median'))} / {f(b.get('p99'))} ms wall |"
            )
    body += encode_lines + ([""] if encode_lines else [])
    if enc48:
        headline.append(
            f"| encode: pipeline ÷ raw libopus, 48 kHz | **{enc48['ratio_vs_raw_f32']:.2f}×** ({f(enc48['us_per_frame'])} µs per 20 ms frame, {f(enc48['realtime_factor'], 0)}× real time on one core) |"
        )
    if "streams" in m:
        body += streams_section(m["streams"], out) + [""]
        runs = m["streams"]["runs"]
        big = runs.get("100") or next(iter(runs.values()))
        headline.append(
            f"| CPU per real-time 48 kHz stream ({big['streams']} streams) | {big['cpu_percent_per_stream']:.2f} % of a core → **≈{big['streams_per_core']:.0f} streams per core** |"
        )
    if "write" in m:
        sec, _ = write_section(m["write"], out, enc48)
        body += sec + [""]
        k = m["write"]["kinds"]
        headline.append(
            "| `write()` per 20 ms chunk, beyond encoding (p50 / p99) | "
            + "; ".join(
                f"{n.split(',')[0]}: {f(v['summary']['median'])} / {f(v['summary']['p99'])} µs"
                for n, v in k.items()
                if "write_blocking" in n
            )
            + " |"
        )
    mem = memory_results(m)
    if mem:
        body += memory_section(mem, out) + [""]
        if "burst" in mem:
            r = mem["burst"]["runs"]
            headline.append(
                "| memory, 60 s written at once (peak RSS − before) | "
                + "; ".join(f"{k}: +{f(v['peak_delta_mib'])} MiB" for k, v in r.items())
                + " |"
            )
        if "soak" in mem:
            s = mem["soak"]
            verdict = {True: "flat", False: "not flat", None: "too short to judge"}
            headline.append(
                f"| soak, {s['seconds'] / 60:.1f} min, flush every 2 s (RSS slope) | agent {f(s['agent']['slope_mib_per_10min'], 2)} MiB/10 min ({verdict[s['agent']['flat']]}); listener {f(s['listener']['slope_mib_per_10min'], 2)} MiB/10 min ({verdict[s['listener']['flat']]}) |"
            )
    # Fan-out, Pipecat and networks come from the JSON their own scripts record in bench/
    # (bench/report_extra.py, which can also refresh just them in an existing results.md).
    import report_extra

    bench_dir = os.path.dirname(os.path.abspath(__file__))
    headline += report_extra.headline(bench_dir)
    if headline:
        L += ["", "## Headline", "", "| what | result |", "|---|---|"] + headline
    notes = list(results.get("notes") or []) + observations(results)
    L += ["", *body, *report_extra.block(bench_dir, out)]
    if notes:
        L += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    L += ["Raw data: [results.json](results.json). Timings per measurement are in `meta.durations_s` there.", ""]
    text = "\n".join(L)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)
    return text
