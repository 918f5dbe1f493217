"""Bad input raises a clear error, queues nothing, and leaves the producer usable."""

from __future__ import annotations

import numpy as np
import pytest

import moq_audio

RATE = 24_000
GOOD = np.zeros(480, dtype=np.float32)


@pytest.mark.parametrize(
    ("pcm", "message"),
    [
        (np.zeros(480, dtype=np.float64), "dtype float64"),
        (np.zeros(480, dtype=np.int32), "dtype int32"),
        (np.zeros((10, 2, 2), dtype=np.float32), "3-D"),
        (np.zeros((480, 3), dtype=np.float32), "3 channels"),
        (np.array([0.0, np.nan], dtype=np.float32), "NaN"),
        (np.array([0.0, np.inf], dtype=np.float32), "inf"),
        (b"\x00\x01\x02", "odd byte count"),
        ("not audio", "numpy int16/float32 array or bytes"),
        ([0.0, 0.1], "numpy int16/float32 array or bytes"),
    ],
)
async def test_bad_pcm_is_rejected_and_nothing_is_queued(bot_session, pcm, message):
    producer = bot_session.publish_audio("bot", sample_rate=RATE)
    with pytest.raises(ValueError, match=message):
        await producer.write(pcm)
    assert producer.queued_ms == 0
    assert producer.generation == 0
    assert producer.written_ms == 0
    # Still usable: the good write is all that was written (whether or not it was sent yet).
    assert await producer.write(GOOD) is True
    assert producer.written_ms == pytest.approx(len(GOOD) * 1000 / RATE)
    await producer.finish()


async def test_stereo_accepts_interleaved_2d_and_flat_arrays(bot_session):
    producer = bot_session.publish_audio("bot", sample_rate=RATE, channels=2)
    assert await producer.write(np.zeros((480, 2), dtype=np.int16)) is True
    assert await producer.write(np.zeros(960, dtype=np.int16)) is True
    assert await producer.write(np.zeros((480, 2), dtype=np.float32).T.copy().T) is True  # non-contiguous
    with pytest.raises(ValueError, match="sample frames"):
        await producer.write(np.zeros(961, dtype=np.int16))
    await producer.finish()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 7_999}, "out of range"),
        ({"sample_rate": 96_000}, "out of range"),
        ({"sample_rate": RATE, "channels": 3}, "3 channels"),
        ({"sample_rate": RATE, "frame_ms": 25}, "25 ms"),
        ({"sample_rate": RATE, "bitrate": 1_000}, "bitrate"),
        ({"sample_rate": RATE, "lead_ms": -1}, "lead_ms"),
        ({"sample_rate": RATE, "capacity_ms": 5}, "capacity"),
        ({"sample_rate": RATE, "group_frames": 0}, "group_frames"),
    ],
)
async def test_bad_producer_options(bot_session, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bot_session.publish_audio("bot", **kwargs)
    # The path is still free after a rejected call.
    bot_session.publish_audio("bot", sample_rate=RATE).cancel()


async def test_writes_after_finish_or_cancel_raise_closed_error(bot_session):
    finished = bot_session.publish_audio("a", sample_rate=RATE)
    await finished.finish()
    with pytest.raises(moq_audio.ClosedError, match="finished"):
        await finished.write(GOOD)
    with pytest.raises(moq_audio.ClosedError):
        finished.mark("late")
    cancelled = bot_session.publish_audio("b", sample_rate=RATE)
    cancelled.cancel()
    cancelled.cancel()  # idempotent
    with pytest.raises(moq_audio.ClosedError, match="cancelled"):
        cancelled.write_blocking(GOOD)
    with pytest.raises(moq_audio.ClosedError, match="cancelled"):
        await cancelled.finish()
    # flush on a closed producer is harmless
    assert cancelled.flush().dropped_ms == 0


async def test_duplicate_pending_mark_is_rejected(bot_session):
    producer = bot_session.publish_audio("bot", sample_rate=RATE)
    producer.mark("m")
    with pytest.raises(ValueError, match="already pending"):
        producer.mark("m")
    with pytest.raises(ValueError, match="no mark"):
        await producer.wait_mark("never-made")
    producer.cancel()


async def test_connection_errors_are_clear(server):
    with pytest.raises(ValueError, match="bad URL"):
        await moq_audio.connect("not a url")
    with pytest.raises(ValueError, match="scheme"):
        await moq_audio.connect("ftp://127.0.0.1:1/")
    with pytest.raises(moq_audio.ConnectError, match="127.0.0.1:1"):
        await moq_audio.connect("http://127.0.0.1:1/", timeout=3)
    with pytest.raises(ValueError, match="timeout"):
        await moq_audio.connect(server.url, timeout=0)
    # A pinned fingerprint over https:// works; a wrong one fails.
    async with moq_audio.connect(f"https://127.0.0.1:{server.port}/", fingerprint=server.fingerprint) as s:
        s.publish_audio("pinned", sample_rate=RATE).cancel()
    with pytest.raises(moq_audio.ConnectError):
        await moq_audio.connect(f"https://127.0.0.1:{server.port}/", fingerprint="00" * 32, timeout=3)


async def test_subscribing_to_nothing_times_out(ear_session):
    with pytest.raises(moq_audio.MoqTimeoutError, match="nobody"):
        await ear_session.subscribe_audio("nobody", timeout=0.5)
