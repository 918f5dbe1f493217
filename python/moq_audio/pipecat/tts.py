"""An offline Pipecat ``TTSService``: espeak-ng, sentence level or with word timestamps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np
import numpy.typing as npt
from pipecat.audio.utils import create_file_resampler
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from ..speech import speak
from .espeak_words import speak_with_word_times

__all__ = ["EspeakTTSService"]


class EspeakTTSService(TTSService):
    """Text to speech with espeak-ng (``apt-get install espeak-ng``): no network, no model.

    Pipecat aggregates the LLM's text into sentences and this service speaks each one;
    espeak-ng writes 16-bit mono at 22 050 Hz, resampled with Pipecat's soxr resampler to the
    pipeline's output rate.

    - ``word_timestamps=False`` (default): :func:`moq_audio.speech.speak` (the ``espeak-ng``
      command). Pipecat pushes one ``TTSTextFrame`` per sentence after its audio, so the
      heard-only context is exact to the sentence (a sentence cut by a barge-in is estimated to
      the word from its duration).
    - ``word_timestamps=True``: libespeak-ng reports when each word starts, and the service
      reports them (``add_word_timestamps``) like cloud TTS services with word timing do; Pipecat
      then pushes one ``TTSTextFrame`` per word, and the context is exact to the word.

    Args:
        voice: espeak-ng voice (``-v``), e.g. ``"en"``, ``"en-us"``, ``"de"``.
        words_per_minute: speaking rate (``-s``; espeak-ng's default is 175).
        word_timestamps: report word timings (see above).
        **kwargs: passed to Pipecat's ``TTSService`` (e.g. ``sample_rate``).
    """

    def __init__(
        self, *, voice: str = "en", words_per_minute: int = 175, word_timestamps: bool = False, **kwargs: object
    ) -> None:
        super().__init__(
            push_text_frames=not word_timestamps,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice, language=None),
            **kwargs,  # type: ignore[arg-type]
        )
        self._voice = voice
        self._words_per_minute = words_per_minute
        self._word_timestamps = word_timestamps
        self._resampler = create_file_resampler()
        # Seconds of audio already spoken in each audio context: word times count from the
        # context's first sample, and a context holds every sentence of a turn.
        self._spoken_s: dict[str, float] = {}

    def can_generate_metrics(self) -> bool:
        """TTFB and usage metrics are reported."""
        return True

    async def synthesize(self, text: str) -> tuple[npt.NDArray[np.int16], int, list[tuple[str, float]]]:
        """espeak-ng speech for ``text`` in a worker thread: ``(int16 samples (n,), rate in Hz,
        [(word, start_s)])``, the word list empty without ``word_timestamps``. Override to
        cache or to use another engine.

        Raises what :func:`moq_audio.speech.speak` / ``speak_with_word_times`` raise.
        """
        if self._word_timestamps:
            return await asyncio.to_thread(
                speak_with_word_times, text, words_per_minute=self._words_per_minute, voice=self._voice
            )
        pcm, rate = await asyncio.to_thread(speak, text, words_per_minute=self._words_per_minute, voice=self._voice)
        return pcm, rate, []

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak ``text``: one ``TTSAudioRawFrame`` (s16le mono at ``self.sample_rate`` Hz), or
        an ``ErrorFrame`` when espeak-ng is missing or fails."""
        await self.start_tts_usage_metrics(text)
        try:
            pcm, rate, words = await self.synthesize(text)
        except Exception as e:  # noqa: BLE001 - any failure of espeak-ng is reported as a TTS error
            yield ErrorFrame(error=f"espeak-ng failed: {e}")
            return
        finally:
            await self.stop_ttfb_metrics()
        if words:
            offset = self._spoken_s.get(context_id, 0.0)
            await self.add_word_timestamps([(w, offset + t) for w, t in words], context_id)
            self._spoken_s[context_id] = offset + len(pcm) / rate
        audio = await self._resampler.resample(pcm.astype("<i2").tobytes(), rate, self.sample_rate)
        yield TTSAudioRawFrame(audio=audio, sample_rate=self.sample_rate, num_channels=1, context_id=context_id)

    async def on_audio_context_completed(self, context_id: str) -> None:
        """Forget the context's word clock."""
        self._spoken_s.pop(context_id, None)

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        """Forget the context's word clock."""
        self._spoken_s.pop(context_id, None)
