"""Formats in, audio out: every supported rate and channel count, and decode quality."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SENTENCES, speech


def tone(rate: int, hz: float, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono, -mono], axis=1)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 24_000, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2])
async def test_every_rate_and_channel_count_round_trips_a_tone(bot_session, ear_session, rate, channels):
    producer = bot_session.publish_audio("bot", sample_rate=rate, channels=channels)
    consumer = await ear_session.subscribe_audio("bot", sample_rate=rate)
    await producer.write(tone(rate, 440.0, 1.0, channels))
    await producer.finish()
    frames = [f async for f in consumer]
    assert all(f.sample_rate == rate and f.channels == channels for f in frames)
    pcm = np.concatenate([f.pcm for f in frames])
    assert pcm.dtype == np.float32 and pcm.shape[1] == channels
    assert abs(len(pcm) - rate) <= rate * 0.03, len(pcm)  # 1 s ± padding to whole frames
    assert abs(peak_hz(pcm[rate // 10 :, 0], rate) - 440.0) < 5
    if channels == 2:
        mid = pcm[rate // 4 : rate // 2]
        assert np.corrcoef(mid[:, 0], mid[:, 1])[0, 1] < -0.9, "channels kept apart"


async def test_decoded_speech_matches_the_input(bot_session, ear_session):
    """espeak-ng speech (22.05 kHz) → Opus at 48 kHz → decoded at 22.05 kHz, aligned by
    cross-correlation. Floor: correlation ≥ 0.90 and SNR ≥ 6 dB (Opus at its default speech
    bitrate is perceptual, not waveform-exact; measured 0.955 / 10.5 dB when this was written)."""
    pcm, rate = speech(SENTENCES[0])
    producer = bot_session.publish_audio("bot", sample_rate=rate)
    consumer = await ear_session.subscribe_audio("bot", sample_rate=rate)
    await producer.write(pcm)
    await producer.finish()
    out = np.concatenate([f.pcm[:, 0] async for f in consumer])
    x = pcm.astype(np.float32) / 32768.0
    n = min(len(x), len(out))
    # Find the codec + resampler delay (a few ms) by cross-correlation.
    window = x[: n // 2]
    lags = range(2_000)
    best = max(lags, key=lambda d: float(np.dot(window[: len(window) - 2_000], out[d : d + len(window) - 2_000])))
    a = x[: n - best]
    b = out[best:n]
    corr = float(np.corrcoef(a, b)[0, 1])
    snr = 10 * np.log10(np.sum(a**2) / np.sum((a - b) ** 2))
    print(f"correlation {corr:.3f}, SNR {snr:.1f} dB")
    assert corr >= 0.90, corr
    assert snr >= 6.0, snr
