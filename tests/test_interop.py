"""Issue 12: upstream moq-rs 0.5.1's decoder follows our broadcast across repeated flushes.

A stock Rust consumer (PyPI ``moq-rs==0.5.1``: moq-ffi 0.4.18 -> moq-mux ``container::Consumer``
-> upstream ``moq-audio`` Opus decoder) subscribes to our agent's broadcast through the embedded
server, parses our ``catalog.json`` with its hang catalog consumer and decodes the audio track
while the agent flushes three times. It must:

- never fail (moq-mux aborts the track with ``TimestampRewind`` when a group's timestamps fall
  below the live edge; "timelines only move forward"),
- keep decoding each new generation after a flush, and end cleanly when the agent finishes,
- decode each new generation's opening 1.0 s chirp completely (<= 40 ms missing, the analysis
  resolution of two 20 ms Opus frames; a lost group is 100 ms) and not duplicate it.

Signals and analysis are the ones of ``test_stock_player`` (a 440 Hz first reply, then per new
generation a 1500 -> 3500 Hz chirp and a hold tone), applied to the decoder's PCM in decode order.
Numbers and the decoded audio go to ``test-artifacts/interop-*``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import moq_audio
from test_stock_player import (
    CHIRP_MS,
    FIRST_HZ,
    FLUSHES,
    HOP_MS,
    MAX_DROPPED_MS,
    PROBE_AFTER_HZ,
    PROBE_LEAD_HZ,
    PROBES,
    RATE,
    TONE_TOL_HZ,
    analyse,
    frequency_track,
    new_reply,
    opus_packets,
    probe_broadcast,
    stream_probe,
    tone,
    upstream_client,
    write_wav,
)

moq = pytest.importorskip("moq", reason="upstream moq-rs (PyPI moq-rs==0.5.1, module `moq`) is not installed")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DECODED_BEFORE_FLUSH_S = 1.0  # of generation 0, then the first flush
DECODED_PER_GENERATION_S = 1.6  # chirp (1.0 s) + the stale tail + part of the hold, then the next


class Decoded:
    """The upstream decoder's output: float32 mono PCM at RATE in decode order, with timestamps."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, npt.NDArray[np.float32]]] = []  # (timestamp_us, pcm (n,))
        self.samples = 0
        self.error: BaseException | None = None
        self.ended = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def add(self, timestamp_us: int, pcm: npt.NDArray[np.float32]) -> None:
        self.frames.append((timestamp_us, pcm))
        self.samples += len(pcm)
        for n, fut in self._waiters:
            if self.samples >= n and not fut.done():
                fut.set_result(None)

    async def until(self, samples: int, timeout: float) -> None:
        """Wait until ``samples`` samples in total were decoded (raises on timeout/decoder end)."""
        if self.samples >= samples:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((samples, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"the upstream decoder produced {self.samples / RATE:.2f} s, waited for {samples / RATE:.2f} s;"
                f" ended={self.ended} error={self.error!r}"
            ) from None

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self.ended = True
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(AssertionError(f"the upstream decoder ended early: {error!r}"))

    @property
    def pcm(self) -> npt.NDArray[np.float32]:
        return np.concatenate([p for _, p in self.frames]) if self.frames else np.zeros(0, np.float32)

    def timestamp_jumps(self) -> list[dict[str, float]]:
        """Where a frame's timestamp does not continue the previous one (> 1 ms either way)."""
        jumps = []
        at = 0
        for (ts0, pcm0), (ts1, _) in zip(self.frames, self.frames[1:], strict=False):
            at += len(pcm0)
            expected = ts0 + len(pcm0) * 1_000_000 / RATE
            if abs(ts1 - expected) > 1_000:
                jumps.append({"at_s": round(at / RATE, 3), "jump_ms": round((ts1 - expected) / 1000, 1)})
        return jumps


async def read(consumer: Any, out: Decoded) -> None:
    error: BaseException | None = None
    try:
        async for frame in consumer:
            out.add(frame.timestamp_us, np.frombuffer(frame.data, dtype="<f4").copy())
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 -- the decoder's failure is a result, asserted by the test
        error = e
    out.finish(error)


async def upstream_broadcast(client: Any, path: str, timeout: float = 10.0) -> Any:
    """The upstream client's consumer of broadcast ``path``, once it is announced."""
    return await asyncio.wait_for(client.announced_broadcast(path).available(), timeout)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("max_age_us", [None, 500_000], ids=["default-max-age", "max-age-500ms"])
async def test_upstream_decoder_decodes_every_new_generation_whole(max_age_us: int | None) -> None:
    name = f"interop-{'default' if max_age_us is None else f'{max_age_us // 1000}ms'}"
    decoded = Decoded()
    numbers: dict[str, Any] = {"max_age_us": max_age_us, "rate": RATE}
    flush_at: list[int] = []  # decoded samples when flush() was called
    sent_ms: list[float] = []
    async with moq_audio.Server("127.0.0.1:0") as server, moq_audio.connect(server.url) as session:
        bot = session.publish_audio("bot", sample_rate=RATE)
        async with upstream_client(server) as client:
            broadcast = await upstream_broadcast(client, "bot")
            catalog = await asyncio.wait_for(broadcast.catalog(), 10)
            assert list(catalog.audio) == ["audio"], catalog
            audio = catalog.audio["audio"]
            numbers["catalog"] = {
                "codec": audio.codec,
                "sample_rate": audio.sample_rate,
                "channel_count": audio.channel_count,
                "container": str(audio.container),
                "sections": dict(catalog.sections),
            }
            assert (audio.codec, audio.sample_rate, audio.channel_count) == ("opus", RATE, 1), numbers["catalog"]
            assert audio.container.is_legacy() or audio.container.is_loc(), audio.container
            ours = json.loads(catalog.sections["moqAudio"])  # our section survives upstream's parser
            assert ours["version"] >= 1 and ours["frameMs"] == 20, ours

            output = moq.AudioDecoderOutput(
                format=moq.AudioSampleFormat.F32, sample_rate=RATE, channels=1, max_age_us=max_age_us
            )
            consumer = await broadcast.decode_audio("audio", audio, output)
            reader = asyncio.create_task(read(consumer, decoded))
            try:
                assert await bot.write(tone(FIRST_HZ, 20.0))
                await decoded.until(int(DECODED_BEFORE_FLUSH_S * RATE), 15)
                for k in range(1, FLUSHES + 1):
                    flush_at.append(decoded.samples)
                    sent_ms.append(bot.flush().sent_ms)
                    last = k == FLUSHES
                    assert await bot.write(new_reply(k, 0.5 if last else 5.0))
                    if not last:
                        await decoded.until(decoded.samples + int(DECODED_PER_GENERATION_S * RATE), 15)
                await bot.finish()
                await asyncio.wait_for(reader, 15)
            finally:
                if not reader.done():
                    reader.cancel()
                    consumer.cancel()
                    await asyncio.gather(reader, return_exceptions=True)

    pcm = decoded.pcm
    results = analyse(pcm, RATE, [n / RATE for n in flush_at], len(pcm) / RATE, [])
    numbers.update(
        decoder_error=None if decoded.error is None else repr(decoded.error),
        decoded_s=round(len(pcm) / RATE, 3),
        sent_ms_at_flush=sent_ms,
        timestamps_non_decreasing=all(b[0] >= a[0] for a, b in zip(decoded.frames, decoded.frames[1:], strict=False)),
        timestamp_jumps=decoded.timestamp_jumps(),
        flushes=[asdict(r) for r in results],
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(numbers, indent=2))
    write_wav(ARTIFACTS / f"{name}.wav", pcm, RATE)

    summary = "\n".join(
        f"  gen {r.generation}: chirp heard {r.new_heard_ms} ms, dropped {r.dropped_ms} ms {r.holes_ms},"
        f" old before {r.old_before_ms} / after {r.old_after_ms} ms"
        for r in results
    )
    assert decoded.error is None, f"the upstream decoder failed: {decoded.error!r}\n{summary}"
    assert numbers["timestamps_non_decreasing"], numbers["timestamp_jumps"]
    assert results[0].old_before_ms >= 800, f"generation 0 was not decoded before the first flush:\n{summary}"
    for r in results:
        assert r.dropped_ms <= MAX_DROPPED_MS, f"generation {r.generation} lost audio:\n{summary}"
        # Decoded once: the chirp occupies its own duration in the output, not more.
        assert r.chirp_rendered_ms <= CHIRP_MS + MAX_DROPPED_MS, summary


@pytest.mark.timeout(60)
@pytest.mark.parametrize("probe", list(PROBES))
async def test_upstream_decoder_takes_v2_frames_in_isolation(probe: str) -> None:
    """The v2 frames one at a time, hand-made (see ``test_stock_player``'s isolation probes): LOC
    with our generation/event properties, the 1-byte marker packet 0x80, an invalid packet."""
    payload, ours = PROBES[probe]
    lead = await opus_packets(tone(PROBE_LEAD_HZ, 1.0))
    after = await opus_packets(tone(PROBE_AFTER_HZ, 1.0))
    decoded = Decoded()
    go = asyncio.Event()
    async with (
        moq_audio.Server("127.0.0.1:0") as server,
        moq_audio.connect(server.url) as session,
        probe_broadcast(server, session, ours) as stream,
        upstream_client(server) as client,
    ):
        writer = asyncio.create_task(stream_probe(stream, lead, after, payload, go))
        try:
            broadcast = await upstream_broadcast(client, "probe")
            catalog = await asyncio.wait_for(broadcast.catalog(), 10)
            audio = catalog.audio["audio"]
            assert audio.container.is_loc() and audio.broadcast == "media", audio
            # 1 s max age: the probe is about the decoder, not about skipping under load.
            output = moq.AudioDecoderOutput(
                format=moq.AudioSampleFormat.F32, sample_rate=RATE, channels=1, max_age_us=1_000_000
            )
            # The rendition lives in probe/media. moq-ffi's own resolve() of `broadcast` asks the
            # server for the path (request_broadcast), which our embedded server answers with a
            # protocol error, so resolve it by announcement and decode it there.
            media = await upstream_broadcast(client, "probe/media")
            audio.broadcast = None
            consumer = await media.decode_audio("audio", audio, output)
            reader = asyncio.create_task(read(consumer, decoded))
            try:
                await decoded.until(RATE // 2, 10)
                go.set()
                probe_at_us = await asyncio.wait_for(writer, 10)
                stream.track.finish()
                await asyncio.wait_for(reader, 10)
            finally:
                if not reader.done():
                    reader.cancel()
                    consumer.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    pcm = decoded.pcm
    track = frequency_track(pcm, RATE)
    after_ms = float(np.count_nonzero(np.abs(track.hz - PROBE_AFTER_HZ) <= TONE_TOL_HZ) * HOP_MS)
    numbers = {
        "probe": probe,
        "decoder_error": None if decoded.error is None else repr(decoded.error),
        "after_decoded_ms": after_ms,  # of the 1000 ms of 660 Hz after the probe
        "samples_at_probe_timestamp": [len(p) for ts, p in decoded.frames if abs(ts - probe_at_us) < 5_000],
        "timestamp_jumps": decoded.timestamp_jumps(),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"interop-probe-{probe}.json").write_text(json.dumps(numbers, indent=2))
    if probe == "undecodable-packet":
        # upstream's decoder ends the track: "audio decode: libopus rejected the packet (code -4)"
        assert decoded.error is not None and "rejected the packet" in str(decoded.error), numbers
        return
    assert decoded.error is None, numbers
    assert after_ms >= 1_000 - MAX_DROPPED_MS, numbers
