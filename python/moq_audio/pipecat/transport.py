"""``MoqAudioTransport``: the Pipecat transport object (input and output processors, events)."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.transports.base_transport import BaseTransport

import moq_audio

from .input import MoqAudioInputTransport
from .output import MoqAudioOutputTransport
from .params import MoqAudioParams

__all__ = ["MoqAudioTransport", "SessionHolder"]


class SessionHolder:
    """The MoQ session the input and output processors share.

    Either given (``session=``, owned by the caller and never closed here) or opened on first
    use with :func:`moq_audio.connect` from ``params.url`` and closed when the last processor
    that acquired it releases it.
    """

    def __init__(self, params: MoqAudioParams, session: moq_audio.Session | None) -> None:
        self._params = params
        self._session = session
        self._owned = session is None
        self._holders = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> moq_audio.Session:
        """The session, connecting if needed.

        Raises:
            ValueError: when neither a session nor ``params.url`` was given, or for a bad URL.
            moq_audio.ConnectError, moq_audio.MoqTimeoutError: when connecting fails.
        """
        async with self._lock:
            if self._session is None:
                if not self._params.url:
                    raise ValueError("MoqAudioParams.url is not set and no session was given")
                kwargs: dict[str, Any] = {
                    "fingerprint": self._params.fingerprint,
                    "timeout": self._params.connect_timeout,
                }
                if self._params.token is not None:
                    kwargs["token"] = self._params.token
                self._session = await moq_audio.connect(self._params.url, **kwargs)
            self._holders += 1
            return self._session

    async def release(self) -> None:
        """Give the session back; the last release closes a session this holder opened."""
        async with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0 and self._owned and self._session is not None:
                session, self._session = self._session, None
                await session.close()


class MoqAudioTransport(BaseTransport):
    """A Pipecat transport over moq-audio: interruptible bot audio, the user's microphone, and an
    assistant context that holds only what the listener heard.

    Example::

        transport = MoqAudioTransport(MoqAudioParams(url="http://127.0.0.1:4443/"))
        pipeline = Pipeline([transport.input(), user_aggregator, llm, tts, transport.output(),
                             assistant_aggregator])

        @transport.event_handler("on_bot_interrupted")
        async def on_bot_interrupted(transport, report):   # moq_audio.FlushReport
            print(f"the user heard {report.heard_ms:.0f} ms of the reply")

    Event handlers (all called with the transport first):

    - ``on_connected(transport)``: the output's broadcast is published.
    - ``on_client_connected(transport, client)`` / ``on_client_disconnected(transport, client)``:
      the user's broadcast (``client`` is its path, e.g. ``"user"``) appeared / ended (a page
      reload ends it; the input subscribes again when it comes back).
    - ``on_client_message(transport, message)``: a message on the page's control track (parsed
      JSON, or the raw string when it is not JSON).
    - ``on_bot_interrupted(transport, report)``: a barge-in flushed unheard audio;
      ``report`` is the :class:`moq_audio.FlushReport` (``heard_ms``: ms of the flushed
      generation the listener rendered; ``dropped_ms``; ``heard_per_listener``).
    - ``on_bot_heard(transport, text)``: the listener played the audio of a ``TTSTextFrame``
      (``text`` is the frame's text, or the heard prefix of an interrupted sentence).

    Args:
        params: :class:`MoqAudioParams` (``url=`` unless ``session`` is given).
        session: An existing :class:`moq_audio.Session` to use instead of connecting; the caller
            keeps ownership and closes it.
        input_name: Optional name of the input processor.
        output_name: Optional name of the output processor.
    """

    def __init__(
        self,
        params: MoqAudioParams,
        *,
        session: moq_audio.Session | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        super().__init__(input_name=input_name, output_name=output_name)
        self._params = params
        self._holder = SessionHolder(params, session)
        self._input: MoqAudioInputTransport | None = None
        self._output: MoqAudioOutputTransport | None = None
        for name in (
            "on_connected",
            "on_client_connected",
            "on_client_disconnected",
            "on_client_message",
            "on_bot_interrupted",
            "on_bot_heard",
        ):
            self._register_event_handler(name)

    @property
    def params(self) -> MoqAudioParams:
        """The parameters this transport was made with."""
        return self._params

    def input(self) -> MoqAudioInputTransport:
        """The input processor (the user's microphone and control messages); one per transport."""
        if self._input is None:
            self._input = MoqAudioInputTransport(self, self._holder, self._params, name=self._input_name)
        return self._input

    def output(self) -> MoqAudioOutputTransport:
        """The output processor (the bot's audio, transcript and messages); one per transport."""
        if self._output is None:
            self._output = MoqAudioOutputTransport(self, self._holder, self._params, name=self._output_name)
        return self._output

    @property
    def producer(self) -> moq_audio.AudioProducer | None:
        """The bot's :class:`moq_audio.AudioProducer` once the output has started, else None."""
        return None if self._output is None else self._output.producer

    def get_client_id(self, client: Any) -> str:
        """The id of a client as passed to ``on_client_connected``: its broadcast path."""
        return str(client)

    async def emit(self, event: str, *args: Any) -> None:
        """Call the handlers of ``event`` with this transport and ``args`` (used by the
        processors)."""
        await self._call_event_handler(event, *args)
