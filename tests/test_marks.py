"""Marks resolved by real playout, heard-up-to on flush, fan-out and listeners that leave."""

from __future__ import annotations

import asyncio
import random
import threading

import numpy as np
import pytest

import moq_audio
from conftest import SENTENCES, frames_of, speech


async def test_marks_per_sentence_and_heard_ms_match_what_the_player_rendered(bot_session, ear_session):
    rate = speech(SENTENCES[0])[1]
    producer = bot_session.publish_audio("bot", sample_rate=rate)
    player = await ear_session.play_audio("bot")
    events = producer.marks()
    starts = []
    written_ms = 0.0
    for i, text in enumerate(SENTENCES, 1):
        pcm, _ = speech(text)
        starts.append(written_ms)
        await producer.write(pcm)
        written_ms += len(pcm) * 1000 / rate
        producer.mark(f"s{i}")
    # Interrupt inside sentence 3.
    cut_ms = starts[2] + (written_ms - starts[2]) / 4
    await player.wait_rendered(cut_ms, generation=0)
    report = producer.flush()
    truth = player.report()
    # Where the listener was in the generation: audio it rendered plus any it skipped to catch
    # up after an underrun (its jitter buffer caps the delay an underrun adds).
    position = frames_of(truth, 0, fade=False) + truth.stats.skipped_frames
    rendered_ms = position * 1000 / truth.sample_rate

    resolved: dict[str, moq_audio.MarkEvent] = {}
    while len(resolved) < 4:
        ev = await asyncio.wait_for(anext(events), 5)
        assert ev.id not in resolved, f"{ev.id} resolved twice"
        resolved[ev.id] = ev
    assert [resolved[f"s{i}"].state for i in range(1, 5)] == ["played", "played", "flushed", "flushed"]
    assert resolved["s1"].listener == player.listener_id
    assert (resolved["s1"].render_time_ms or 0) > 0
    assert not report.heard_estimated
    assert abs(report.heard_ms - rendered_ms) <= 20, (report.heard_ms, rendered_ms, truth.stats)
    assert list(report.heard_per_listener) == [player.listener_id]
    # wait_mark after the fact returns the same resolution.
    assert (await producer.wait_mark("s2")).state == "played"
    # Nothing resolves twice later.
    await producer.write(speech(SENTENCES[0])[0][:4_000])
    producer.mark("after")
    assert (await producer.wait_mark("after", timeout=5)).state == "played"
    extra = await asyncio.wait_for(anext(events), 5)
    assert extra.id == "after"
    await producer.finish()


async def test_concurrent_flushes_never_resolve_a_mark_twice_or_lose_one(bot_session, ear_session):
    rate = 24_000
    producer = bot_session.publish_audio("bot", sample_rate=rate, mark_timeout_ms=2_000)
    player = await ear_session.play_audio("bot")  # keep it: a dropped Player stops
    events = producer.marks()
    chunk = (0.1 * np.sin(np.arange(rate // 50) * 2 * np.pi * 200 / rate)).astype(np.float32)
    made = []
    stop = threading.Event()

    def flusher() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            stop.wait(rng.uniform(0.05, 0.2))
            producer.flush()

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        for i in range(150):  # 3 s of audio, a mark after every 20 ms chunk
            await producer.write(chunk)
            producer.mark(f"m{i}")
            made.append(f"m{i}")
            await asyncio.sleep(0.02)  # a TTS producing at real time
    finally:
        stop.set()
        thread.join()
    await producer.finish()
    seen: dict[str, str] = {}
    while len(seen) < len(made):
        ev = await asyncio.wait_for(anext(events), 10)
        assert ev.id not in seen, f"{ev.id} resolved twice"
        seen[ev.id] = ev.state
    assert set(seen) == set(made)
    assert set(seen.values()) <= {"played", "flushed"}
    assert "played" in seen.values() and "flushed" in seen.values()
    await player.stop()


async def test_two_listeners_fan_out(server, bot_session):
    pcm, rate = speech(SENTENCES[1])
    async with moq_audio.connect(server.url) as a, moq_audio.connect(server.url) as b:
        producer = bot_session.publish_audio("bot", sample_rate=rate)
        p1 = await a.play_audio("bot", listener_id="alice")
        p2 = await b.play_audio("bot", listener_id="bob")
        await producer.write(pcm)
        producer.mark("end")
        await p1.wait_rendered(1_000)
        await p2.wait_rendered(1_000)
        report = producer.flush()
        assert set(report.heard_per_listener) == {"alice", "bob"}
        assert report.heard_ms == max(report.heard_per_listener.values())
        assert all(900 <= v <= 1_200 for v in report.heard_per_listener.values()), report.heard_per_listener
        assert (await producer.wait_mark("end")).state == "flushed"
        await producer.write(pcm[: rate // 2])
        producer.mark("short")
        ev = await producer.wait_mark("short", timeout=5)
        assert ev.state == "played" and ev.listener in {"alice", "bob"}


async def test_a_listener_that_leaves_resolves_marks_as_unknown(server, bot_session):
    pcm, rate = speech(SENTENCES[2])
    producer = bot_session.publish_audio("bot", sample_rate=rate, mark_timeout_ms=1_000)
    async with moq_audio.connect(server.url) as ear:
        player = await ear.play_audio("bot")
        await producer.write(pcm)
        producer.mark("end")
        await player.wait_rendered(500)
        await player.stop()
    ev = await producer.wait_mark("end", timeout=5)
    assert ev.state == "unknown"


async def test_without_feedback_heard_ms_is_flagged_as_an_estimate(bot_session, ear_session):
    pcm, rate = speech(SENTENCES[0])
    producer = bot_session.publish_audio("bot", sample_rate=rate)
    consumer = await ear_session.subscribe_audio("bot")  # a listener that reports nothing
    await producer.write(pcm)
    got = 0.0
    async for frame in consumer:
        got += frame.duration_ms
        if got >= 1_000:
            break
    report = producer.flush()
    assert report.heard_estimated
    assert 0 < report.heard_ms <= report.sent_ms


def test_truncate_text_by_rate_and_by_word_timings():
    text = "hello there how are you today"
    assert moq_audio.truncate_text(text, 0) == ""
    assert moq_audio.truncate_text(text, 10_000) == text
    half = moq_audio.truncate_text(text, 1_000, chars_per_second=14)
    assert text.startswith(half) and 0 < len(half.split()) < 6
    timings = [("hello", 0, 300), ("there", 300, 600), ("how", 600, 800)]
    assert moq_audio.truncate_text(text, 460, word_timings=timings) == "hello there"
    with pytest.raises(ValueError, match="heard_ms"):
        moq_audio.truncate_text(text, -1)
