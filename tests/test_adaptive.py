"""The adaptive jitter buffer and Opus concealment over the impairment proxy (bench/impair.py).

A real agent (producer on the embedded server) and a default ``Player`` behind the userspace
proxy, speaking QUIC on loopback, with real espeak-ng speech. What is asserted is behaviour that
could fail, with generous bounds (CI is a noisy 2-core machine); the measured targets belong to
bench/network.py. Synchronisation is by events (``wait_rendered``, ``wait_generation``), never by
sleeping.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import moq_audio
from conftest import SENTENCES, frames_of, speech

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from impair import Impairment, Profile

#: Silence a fixed 40 ms buffer inserted at 80 ms one-way, ±40 ms (FIFO) jitter and 3 % loss:
#: 4.3 % of the reply (bench/network_baseline.json, the issue's 80 ms row; 6.0 % with reordering).
FIXED_BUFFER_SILENCE_PCT = 4.3


@asynccontextmanager
async def through_proxy(net: Profile, seed: int) -> AsyncIterator[tuple[Any, Impairment, Any, Any]]:
    """The embedded server, a proxy with ``net`` both ways, the agent's session (direct) and the
    listener's (through the proxy; websocket=False so QUIC cannot lose moq-tokio's race to the
    WebSocket fallback, which the proxy cannot make lossy)."""
    async with (
        moq_audio.Server("127.0.0.1:0") as server,
        Impairment(upstream=f"127.0.0.1:{server.port}", up=net, down=net, seed=seed, websocket=False) as proxy,
        moq_audio.connect(server.url) as bot_session,
        moq_audio.connect(proxy.url, timeout=20) as ear_session,
    ):
        yield server, proxy, bot_session, ear_session


def first_frame(report: Any, generation: int) -> int:
    return min(s.start for s in report.segments if s.generation == generation)


def last_frame(report: Any, generation: int) -> int:
    return max(s.start + s.frames for s in report.segments if s.generation == generation and not s.fade)


# One rerun, for the growth assertion only: in one full CI run out of many (2026-11-22, a busy
# 2-core machine) the target had already risen to 80 ms before the outage, the outage cost only
# 10 ms of concealment, and the target did not rise further. It passes alone and in the suite's
# other runs; any other failure counts at once.
@pytest.mark.flaky(reruns=1, only_rerun=["the target grew after the late frames"])
async def test_late_audio_raises_the_target_and_the_gap_is_concealed_not_silent(tmp_path: Path) -> None:
    """A 300 ms outage of the downstream path: the frames sent meanwhile are retransmitted, i.e.
    late. The buffer conceals (Opus PLC) instead of cutting to silence, plays them when they come,
    and its target grows to cover such a delay."""
    pcm, rate = speech(" ".join(SENTENCES[:2]))
    wav = tmp_path / "heard.wav"
    async with through_proxy(Profile(delay_ms=25, jitter_ms=5), seed=1) as (_, proxy, bot_session, ear_session):
        producer = bot_session.publish_audio("bot", sample_rate=rate)
        player = await ear_session.play_audio("bot", wav_path=str(wav))
        try:
            await producer.write(pcm)
            before = await asyncio.wait_for(player.wait_rendered(1_500, generation=0), 20)
            t = proxy.clock()
            proxy.add_outage(t, t + 0.3, "down")
            await asyncio.wait_for(player.wait_rendered(before.ms_of(0) + 2_000, generation=0), 20)
            report = await player.stop()
        finally:
            producer.cancel()
    assert proxy.down.dropped > 0, proxy.stats()
    # Before the outage the target is the clean path's (~40 ms here). Not asserted at <= 100 ms:
    # as the first test of three CI runs on 2026-11-22 a single 90-130 ms hiccup of the cold
    # machine in the first second (one underrun, 10 ms concealed) rightly raised it to 80-160 ms
    # (a delay peak is held 20 s, delay.rs). What is asserted is that the outage raised it
    # further, to cover the ~300 ms the frames sent meanwhile were late.
    start = before.stats.target_ms
    stats = report.stats
    assert start < 250 <= stats.target_ms and stats.target_ms >= start + 100, (
        f"the target grew after the late frames: {before.stats} -> {stats}"
    )
    assert stats.concealed_ms > 0, stats
    assert any(s.concealed for s in report.segments), "concealed stretches are marked in the report"
    # Nothing of the utterance was skipped: the late frames played when they came.
    assert stats.skipped_frames == 0, stats
    assert report.ms_of(0, fade=False) >= before.ms_of(0) + 2_000


async def test_jitter_and_loss_insert_far_less_silence_than_a_fixed_buffer() -> None:
    """The issue's worst row (80 ms one-way, ±40 ms FIFO jitter, 3 % loss both ways): the fixed
    40 ms buffer inserted 4.3 % silence; the adaptive one, after its first second, inserts well
    under half of that, conceals what is missing instead, and its target rose above the jitter."""
    pcm, rate = speech(" ".join(SENTENCES))
    net = Profile(delay_ms=80, jitter_ms=40, loss_pct=3, keep_order=True)
    async with through_proxy(net, seed=3) as (_, proxy, bot_session, ear_session):
        producer = bot_session.publish_audio("bot", sample_rate=rate)
        player = await ear_session.play_audio("bot")
        try:
            await producer.write(pcm)
            await producer.finish()
            report = await asyncio.wait_for(player.wait(), 60)
        finally:
            producer.cancel()
    assert proxy.down.dropped > 0, proxy.stats()
    out_rate = report.sample_rate
    lo = first_frame(report, 0) + out_rate  # after the first second
    hi = last_frame(report, 0)
    assert hi - lo > 5 * out_rate, "most of the speech was rendered"
    # Silence the buffer inserted: stretches of the render clock without audio of the reply
    # (espeak-ng's own pauses are audio of the reply, and concealment is labelled as such).
    inserted = sum(
        min(s.start + s.frames, hi) - max(s.start, lo)
        for s in report.segments
        if s.generation is None and s.start < hi and s.start + s.frames > lo
    )
    inserted_pct = 100 * inserted / (hi - lo)
    missing_pct = 100 * (inserted + report.stats.concealed_frames) / (hi - lo)
    assert inserted_pct < FIXED_BUFFER_SILENCE_PCT / 2, (inserted_pct, report.stats)
    # What was missing at its playout time was concealed, not rendered as silence; and even
    # counted together, less is missing than the fixed buffer left silent (most of it while the
    # buffer learns the loss-recovery time, in the first seconds).
    assert report.stats.concealed_ms > 0, report.stats
    assert missing_pct < FIXED_BUFFER_SILENCE_PCT, (missing_pct, report.stats)
    assert report.stats.target_ms >= 60, f"±40 ms of jitter raised the target: {report.stats}"
    assert report.stats.jitter_ms >= 30, report.stats


async def test_a_flush_still_cuts_a_deep_buffer() -> None:
    """At lead 200 ms behind a jittery path the listener holds a deep buffer (the lead is kept);
    a flush still leaves at most the fade and one render quantum of old audio after the new
    generation reaches the listener, whatever the depth."""
    pcm, rate = speech(" ".join(SENTENCES[:2]))
    second, _ = speech(SENTENCES[2])
    net = Profile(delay_ms=40, jitter_ms=20, keep_order=True)
    async with through_proxy(net, seed=5) as (_, _proxy, bot_session, ear_session):
        producer = bot_session.publish_audio("bot", sample_rate=rate, lead_ms=200)
        player = await ear_session.play_audio("bot")
        try:
            await producer.write(pcm)
            deep = await asyncio.wait_for(player.wait_rendered(2_000, generation=0), 20)
            producer.flush()
            await producer.write(second)
            report = await asyncio.wait_for(player.wait_generation(1), 10)
            report = await asyncio.wait_for(player.wait_rendered(500, generation=1), 10)
            report = await player.stop()
        finally:
            producer.cancel()
    assert deep.stats.delay_ms >= 100, f"the buffer was deep at the flush: {deep.stats}"
    arrival = report.arrival_of(1)
    assert arrival is not None
    out_rate = report.sample_rate
    old_after = frames_of(report, 0, after=arrival)
    # The fade (5 ms) plus at most one render quantum (10 ms), as on loopback (test_flush.py).
    assert old_after <= out_rate * 15 // 1000, (old_after, report.stats)
    assert report.stats.flushed_frames >= out_rate // 10, f"the deep rest was dropped: {report.stats}"
    assert frames_of(report, 0, after=first_frame(report, 1)) == 0
