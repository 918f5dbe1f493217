"""The input processor: the user's microphone broadcast as ``InputAudioRawFrame``s."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, InputAudioRawFrame, InputTransportMessageFrame, StartFrame
from pipecat.transports.base_input import BaseInputTransport

import moq_audio

from .output import _typed
from .params import MoqAudioParams

if TYPE_CHECKING:
    from .transport import MoqAudioTransport, SessionHolder

__all__ = ["MoqAudioInputTransport"]

#: How long one subscribe attempt waits for the user's broadcast to be announced (s). The wait
#: itself is event driven (the core resolves it on the announcement); the loop only renews it.
SUBSCRIBE_WAIT_S = 3_600.0
#: Back-off before subscribing again after the user's broadcast failed or ended (s): keeps a
#: broadcast that is announced but broken (e.g. no audio track) from spinning the loop. The next
#: subscribe itself waits for the broadcast to be announced again.
RESUBSCRIBE_BACKOFF_S = 0.5


def pcm_bytes(pcm: np.ndarray[Any, np.dtype[np.float32]], channels: int) -> bytes:
    """float32 samples ``(n, c)`` in [-1, 1] to interleaved s16le bytes with ``channels`` channels
    (extra channels dropped, a missing second channel duplicated)."""
    if pcm.shape[1] != channels:
        pcm = pcm[:, :1] if channels == 1 else np.repeat(pcm[:, :1], channels, axis=1)
    out: bytes = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return out


class MoqAudioInputTransport(BaseInputTransport):
    """Subscribes to the user's broadcast and pushes its audio as ``InputAudioRawFrame``s.

    The core decodes the Opus and resamples to ``audio_in_sample_rate`` (rubato); frames go
    through Pipecat's input path (filter, passthrough) to the user aggregator, where a VAD such
    as ``SileroVADAnalyzer`` (``LLMUserAggregatorParams(vad_analyzer=...)``) turns speech into
    user turns and interruptions. The input waits for the broadcast to be announced, and when
    it ends (the page reloaded or left) reports ``on_client_disconnected`` and waits again.

    Messages on the user's ``control_track`` are pushed downstream as
    ``InputTransportMessageFrame``s and reported as ``on_client_message``; ``{"type":
    "interrupt"}`` (the page's Interrupt button) also broadcasts an interruption when
    ``interrupt_on_control`` is set.
    """

    def __init__(
        self, transport: MoqAudioTransport, holder: SessionHolder, params: MoqAudioParams, **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self._owner = transport
        self._holder = holder
        self._moq_params = params
        self._session: moq_audio.Session | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: moq_audio.AudioConsumer | None = None
        self._client_connected = False

    @property
    def client_connected(self) -> bool:
        """Whether the user's broadcast is subscribed right now."""
        return self._client_connected

    async def start(self, frame: StartFrame) -> None:
        """Connect (or take the shared session), then start receiving."""
        await super().start(frame)
        if self._session is None:
            self._session = await self._holder.acquire()
        # Creates the audio queue push_audio_frame() feeds, so before the receiving tasks.
        await self.set_transport_ready(frame)
        if not self._tasks:
            if self._moq_params.audio_in_enabled:
                self._tasks.append(self.create_task(self._receive_audio(self._session), "moq_audio_in"))
            if self._moq_params.control_track:
                self._tasks.append(self.create_task(self._receive_control(self._session), "moq_audio_control"))

    async def stop(self, frame: EndFrame) -> None:
        """Stop receiving and release the session."""
        await super().stop(frame)
        await self._shutdown()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop receiving at once and release the session."""
        await super().cancel(frame)
        await self._shutdown()

    async def cleanup(self) -> None:
        """Release everything (idempotent)."""
        await _typed(super().cleanup)()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await self.cancel_task(task)
        if self._session is not None:
            self._session = None
            await self._holder.release()

    async def _receive_audio(self, session: moq_audio.Session) -> None:
        path = self._moq_params.user_broadcast
        rate = self.sample_rate
        channels = self._moq_params.audio_in_channels
        while True:
            try:
                # Not following the broadcast: a page that reloads is a client that left and a
                # new one that came, which the events below report.
                consumer = await session.subscribe_audio(
                    path, sample_rate=rate, timeout=SUBSCRIBE_WAIT_S, resubscribe=False
                )
            except moq_audio.MoqTimeoutError:
                continue
            except moq_audio.MoqAudioError as e:
                logger.debug(f"{self}: subscribing to {path!r} failed ({e}); trying again")
                await asyncio.sleep(RESUBSCRIBE_BACKOFF_S)
                continue
            self._consumer = consumer
            self._client_connected = True
            logger.info(f"{self}: user broadcast {path!r} subscribed ({consumer.sample_rate} Hz)")
            await self._owner.emit("on_client_connected", path)
            try:
                async for audio in consumer:
                    if audio.pcm.shape[0] == 0:
                        continue  # a new generation of the page's audio starts: no samples
                    await self.push_audio_frame(
                        InputAudioRawFrame(
                            audio=pcm_bytes(audio.pcm, channels), sample_rate=audio.sample_rate, num_channels=channels
                        )
                    )
            except moq_audio.MoqAudioError as e:
                logger.debug(f"{self}: user broadcast {path!r} failed: {e}")
            finally:
                consumer.close()
                self._consumer = None
                self._client_connected = False
            logger.info(f"{self}: user broadcast {path!r} ended ({consumer.end_reason}); waiting for it again")
            await self._owner.emit("on_client_disconnected", path)
            await asyncio.sleep(RESUBSCRIBE_BACKOFF_S)

    async def _receive_control(self, session: moq_audio.Session) -> None:
        path = self._moq_params.user_broadcast
        track = self._moq_params.control_track
        assert track is not None
        while True:
            try:
                reader = await session.subscribe_data(path, track, timeout=SUBSCRIBE_WAIT_S)
                async for raw in reader:
                    await self._on_control(raw)
            except moq_audio.MoqTimeoutError:
                continue
            except moq_audio.MoqAudioError as e:
                logger.debug(f"{self}: control track {path}/{track} ended: {e}")
            await asyncio.sleep(RESUBSCRIBE_BACKOFF_S)

    async def _on_control(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        message: Any
        try:
            message = json.loads(text)
        except ValueError:
            message = text
        await self._owner.emit("on_client_message", message)
        await self.push_frame(InputTransportMessageFrame(message=message))
        if self._moq_params.interrupt_on_control and isinstance(message, dict) and message.get("type") == "interrupt":
            logger.debug(f"{self}: interrupt requested by the page")
            await _typed(self.broadcast_interruption)()
