"""An offline Pipecat ``TTSService``: espeak-ng through :func:`moq_audio.speech.speak`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from pipecat.audio.utils import create_file_resampler
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from ..speech import speak

__all__ = ["EspeakTTSService"]


class EspeakTTSService(TTSService):
    """Text to speech with espeak-ng (``apt-get install espeak-ng``): no network, no model.

    Sentence level: Pipecat aggregates the LLM's text into sentences, this service speaks each
    one (espeak-ng writes 16-bit mono at 22 050 Hz, resampled with Pipecat's soxr resampler to
    the pipeline's output rate) and Pipecat pushes the sentence's ``TTSTextFrame`` after its
    audio. No word timestamps, so the heard-only context is exact to the sentence, and a
    sentence cut by a barge-in is estimated to the word from its duration.

    Args:
        voice: espeak-ng voice (``-v``), e.g. ``"en"``, ``"en-us"``, ``"de"``.
        words_per_minute: speaking rate (``-s``; espeak-ng's default is 175).
        **kwargs: passed to Pipecat's ``TTSService`` (e.g. ``sample_rate``).
    """

    def __init__(self, *, voice: str = "en", words_per_minute: int = 175, **kwargs: object) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice, language=None),
            **kwargs,  # type: ignore[arg-type]
        )
        self._voice = voice
        self._words_per_minute = words_per_minute
        self._resampler = create_file_resampler()

    def can_generate_metrics(self) -> bool:
        """TTFB and usage metrics are reported."""
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak ``text``: one ``TTSAudioRawFrame`` (s16le mono at ``self.sample_rate`` Hz), or
        an ``ErrorFrame`` when espeak-ng is missing or fails."""
        await self.start_tts_usage_metrics(text)
        try:
            pcm, rate = await asyncio.to_thread(speak, text, words_per_minute=self._words_per_minute, voice=self._voice)
        except Exception as e:  # noqa: BLE001 - any failure of the subprocess is reported as a TTS error
            yield ErrorFrame(error=f"espeak-ng failed: {e}")
            return
        finally:
            await self.stop_ttfb_metrics()
        audio = await self._resampler.resample(pcm.astype("<i2").tobytes(), rate, self.sample_rate)
        yield TTSAudioRawFrame(audio=audio, sample_rate=self.sample_rate, num_channels=1, context_id=context_id)
