"""PNG figures from results.json (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from report import memory_results, stale_label, stale_order

COLORS = {20.0: "#1b9e77", 60.0: "#d95f02", 200.0: "#7570b3"}


def save(fig: Any, out: str, name: str) -> str:
    """Lay out ``fig``, write it to ``out/name`` (110 dpi), close it; returns the path."""
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ecdf(ax, values, **kw):
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) == 0:
        return
    y = np.arange(1, len(v) + 1) / len(v)
    ax.step(np.concatenate([[v[0]], v]), np.concatenate([[0], y]), where="post", **kw)


def stale_figures(res: dict, out: str) -> list[str]:
    configs = res["configs"]
    files = []
    fig, ax = plt.subplots(figsize=(9, 6.5))
    for k in stale_order(configs):
        c = configs[k]
        if not c["stale_ms"]:
            continue
        style: dict[str, Any]
        if c["impl"] == "moq-audio":
            style = {"color": COLORS.get(c["lead_ms"], "k"), "linestyle": "-" if c["variant"] == "silence" else "--"}
        else:
            style = {"color": "#e7298a" if c["variant"] == "at_once" else "#666666", "linestyle": "-", "linewidth": 2.5}
        _ecdf(ax, np.maximum(c["stale_ms"], 0.0), label=stale_label(c), **style)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("old audio rendered after the interruption (ms, symlog)")
    ax.set_ylabel("fraction of trials")
    ax.set_title(f"Stale audio after barge-in: 10 s reply, interrupted 1 s in ({res['trials']} trials each)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    files.append(save(fig, out, "stale_cdf.png"))

    # Bar chart: median with p95 whisker, log scale.
    keys = [k for k in stale_order(configs) if configs[k]["stale_ms"]]
    med = [configs[k]["stale_summary"]["median"] for k in keys]
    p95 = [configs[k]["stale_summary"]["p95"] for k in keys]
    fig, ax = plt.subplots(figsize=(9, 5))
    y = np.arange(len(keys))
    colors = [COLORS.get(configs[k]["lead_ms"], "k") if configs[k]["impl"] == "moq-audio" else "#e7298a" for k in keys]
    floor = 0.5
    ax.barh(y, np.maximum(med, floor), color=colors, alpha=0.8, label="median")
    ax.scatter(np.maximum(p95, floor), y, color="k", marker="|", s=200, label="p95", zorder=3)
    for i, (m, p) in enumerate(zip(med, p95, strict=True)):
        ax.text(max(p, m, floor) * 1.15, i, f"{m:.0f} ms (p95 {p:.0f})", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([stale_label(configs[k]) for k in keys], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(floor, max(p95 + med) * 40)
    ax.set_xlabel("stale audio (ms, log; bars below 0.5 ms drawn at 0.5)")
    ax.set_title("Stale audio after barge-in: median and p95")
    ax.invert_yaxis()
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    files.append(save(fig, out, "stale_bars.png"))

    # Flush to first new-generation sample.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    any_line = False
    for k in stale_order(configs):
        c = configs[k]
        if c["impl"] != "moq-audio" or c["variant"] != "new_reply":
            continue
        color = COLORS.get(c["lead_ms"], "k")
        if c.get("first_new_render_ms"):
            _ecdf(ax, c["first_new_render_ms"], color=color, label=f"lead {c['lead_ms']:.0f} ms: Player render clock")
            any_line = True
        if c.get("first_new_wall_ms"):
            _ecdf(
                ax,
                c["first_new_wall_ms"],
                color=color,
                linestyle=":",
                label=f"lead {c['lead_ms']:.0f} ms: wall clock (wait_rendered)",
            )
    if any_line:
        ax.set_xlabel("flush() → first new-generation sample rendered (ms)")
        ax.set_ylabel("fraction of trials")
        ax.set_title("Flush to first new sample on loopback")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        files.append(save(fig, out, "flush_to_audio_cdf.png"))
    else:
        plt.close(fig)
    return files


def bars(ax, labels, series: dict[str, list[float]], log=False, fmt="{:.1f}"):
    x = np.arange(len(labels))
    w = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        b = ax.bar(x + (i - (len(series) - 1) / 2) * w, vals, w, label=name)
        for rect, v in zip(b, vals, strict=True):
            ax.text(
                rect.get_x() + rect.get_width() / 2,
                rect.get_height(),
                fmt.format(v),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def flush_figure(res: dict, out: str) -> list[str]:
    conds = list(res["conditions"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars(
        ax,
        conds,
        {
            "p50": [res["conditions"][c]["summary"]["median"] for c in conds],
            "p99": [res["conditions"][c]["summary"]["p99"] for c in conds],
        },
        log=True,
        fmt="{:.0f}",
    )
    ax.set_ylabel("flush() call from Python (µs, log)")
    ax.set_title(f"flush() latency, {res['n']} calls per condition")
    return [save(fig, out, "flush_latency.png")]


def encode_figure(res: dict, out: str) -> list[str]:
    fig, axes = plt.subplots(1, len(res["rates"]), figsize=(4.2 * len(res["rates"]), 4.5), squeeze=False)
    for ax, (rate, r) in zip(axes[0], res["rates"].items(), strict=True):
        names = list(r["variants"])
        vals = [r["variants"][n]["us_per_frame"] for n in names]
        b = ax.bar(range(len(names)), vals, color=["#999999" if n.startswith("raw") else "#d95f02" for n in names])
        for rect, n in zip(b, names, strict=True):
            v = r["variants"][n]
            ax.text(
                rect.get_x() + rect.get_width() / 2,
                rect.get_height(),
                f"{v['us_per_frame']:.0f} µs\n×{v['ratio_vs_raw_f32']:.2f}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("_", "\n", 1) for n in names], fontsize=7)
        ax.set_title(f"{int(rate) / 1000:g} kHz mono" + ("" if r["native_opus_rate"] else " (resampled)"), fontsize=9)
        ax.set_ylabel("µs per 20 ms frame")
        ax.set_ylim(0, max(vals) * 1.3)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(
        f"Opus encode cost, {res['profile']} build (median of {res['rounds']} rounds; ×ratio vs raw libopus f32)",
        fontsize=10,
    )
    return [save(fig, out, "encode.png")]


def streams_figure(res: dict, out: str) -> list[str]:
    ns = list(res["runs"])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    per = [res["runs"][n]["cpu_percent_per_stream"] for n in ns]
    wr = [res["runs"][n]["writer_thread_percent_per_stream"] for n in ns]
    x = np.arange(len(ns))
    ax.bar(x, per, 0.5, label="whole agent process", color="#d95f02")
    ax.bar(x, wr, 0.5, label="of which the Python writer thread", color="#7570b3")
    for i, n in enumerate(ns):
        r = res["runs"][n]
        ax.text(
            i,
            per[i],
            f"{per[i]:.2f} %\n≈{r['streams_per_core']:.0f} streams/core",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([f"{n} streams" for n in ns])
    ax.set_ylabel("CPU % of one core per stream")
    ax.set_ylim(0, max(per) * 1.4)
    ax.set_title("CPU per real-time 48 kHz mono stream")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return [save(fig, out, "streams_cpu.png")]


def write_figure(res: dict, out: str, encode_us: float | None) -> list[str]:
    kinds = list(res["kinds"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars(
        ax,
        [k.replace(", ", "\n") for k in kinds],
        {
            "p50": [res["kinds"][k]["summary"]["median"] for k in kinds],
            "p99": [res["kinds"][k]["summary"]["p99"] for k in kinds],
        },
        log=True,
        fmt="{:.0f}",
    )
    if encode_us:
        ax.axhline(encode_us, color="k", linestyle="--", linewidth=1)
        ax.text(
            len(kinds) - 0.5,
            encode_us * 1.1,
            f"Opus encode of one 20 ms frame: {encode_us:.0f} µs",
            ha="right",
            fontsize=8,
        )
    ax.set_ylabel("µs per 20 ms chunk (log)")
    ax.set_title(f"write() overhead from Python, {res['n']} chunks each")
    return [save(fig, out, "write_overhead.png")]


def memory_figures(res: dict, out: str) -> list[str]:
    files = []
    if "burst" in res:
        fig, ax = plt.subplots(figsize=(8, 4.2))
        for label, r in res["burst"]["runs"].items():
            t = np.array([s[0] for s in r["rss"]])
            v = np.array([s[1] for s in r["rss"]])
            tw = dict(r["marks"]).get("write", 0.0)
            ax.plot(t - tw, v - r["rss_before_mib"], label=label)
        ax.axvline(0, color="k", linestyle=":", linewidth=1)
        ax.axvline(res["burst"]["hold_s"], color="k", linestyle="--", linewidth=1)
        ax.text(0.05, ax.get_ylim()[1] * 0.95, "write(60 s)", fontsize=8, va="top")
        ax.text(res["burst"]["hold_s"] + 0.05, ax.get_ylim()[1] * 0.95, "flush()", fontsize=8, va="top")
        ax.axhline(res["burst"]["pcm_f32_mib"], color="#999999", linewidth=1)
        ax.text(ax.get_xlim()[0], res["burst"]["pcm_f32_mib"], " 60 s as f32", fontsize=7, va="bottom", color="#666666")
        ax.set_xlabel("s since write()")
        ax.set_ylabel("RSS above baseline (MiB)")
        ax.set_title("Agent RSS while 60 s of 48 kHz audio is written at once")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        files.append(save(fig, out, "memory_burst.png"))
    if "soak" in res:
        s = res["soak"]
        fig, ax = plt.subplots(figsize=(8, 4.2))
        for who, color in (("agent", "#d95f02"), ("listener", "#1b9e77")):
            t = np.array([x[0] for x in s[who]["rss"]])
            v = np.array([x[1] for x in s[who]["rss"]])
            slope = s[who]["slope_mib_per_10min"]
            lab = f"{who} process" + ("" if slope is None else f" (slope {slope:+.2f} MiB / 10 min)")
            ax.plot(t / 60, v, color=color, label=lab)
        ax.set_xlabel("minutes")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title(
            f"Soak: 10 s reply written, flushed 2 s later, repeated for {s['seconds'] / 60:.1f} min ({s['flushes']} flushes)"
        )
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        files.append(save(fig, out, "memory_soak.png"))
    return files


def all_figures(results: dict[str, Any], out: str) -> list[str]:
    files: list[str] = []
    m = results.get("measurements", {})
    if "stale" in m:
        files += stale_figures(m["stale"], out)
    if "flush" in m:
        files += flush_figure(m["flush"], out)
    if "encode" in m:
        files += encode_figure(m["encode"], out)
    if "streams" in m:
        files += streams_figure(m["streams"], out)
    if "write" in m:
        enc = None
        if "encode" in m and "48000" in m["encode"]["rates"]:
            enc = m["encode"]["rates"]["48000"]["variants"]["pipeline_i16"]["us_per_frame"]
        files += write_figure(m["write"], out, enc)
    mem = memory_results(m)
    if mem:
        files += memory_figures(mem, out)
    return files
