"""moq-audio: interruptible voice for agents over Media over QUIC.

A voice agent writes TTS PCM to an :class:`AudioProducer`; it is encoded to Opus and paced onto a
MoQ track. When the listener barges in, :meth:`AudioProducer.flush` drops everything not yet
heard (the producer's queue, the unsent part of groups in flight and, in-band by generation,
the listener's jitter buffer) without closing the track, and reports how far the listener got.

Quick start::

    import moq_audio

    async with moq_audio.Server("127.0.0.1:0") as server:          # embedded MoQ server
        async with moq_audio.connect(server.url) as session:
            bot = session.publish_audio("bot", sample_rate=24_000)
            await bot.write(pcm)               # numpy int16/float32 or s16le bytes
            bot.mark("sentence-1")
            report = bot.flush()               # instant; report.heard_ms

Errors: bad input raises :class:`ValueError`; everything else derives from
:class:`MoqAudioError`: :class:`ConnectError` (also a ``ConnectionError``) and its
:class:`ForbiddenError` (also a ``PermissionError``: the token was refused), :class:`ClosedError`,
:class:`WireError`, :class:`CodecError` and :class:`MoqTimeoutError` (also a ``TimeoutError``).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _native
from ._native import (
    WIRE_VERSION,
    Arrival,
    AudioConsumer,
    AudioFrame,
    AudioProducer,
    ClosedError,
    CodecError,
    ConnectError,
    ConnectionEvent,
    DataReader,
    DataWriter,
    FlushReport,
    ForbiddenError,
    JitterStats,
    ListenerPlayout,
    MarkEvent,
    MoqAudioError,
    MoqTimeoutError,
    Player,
    PlayerReport,
    Segment,
    WireError,
    __version__,
)
from .transcript import truncate_text

if TYPE_CHECKING:  # typing.Self is 3.11+; the annotations are strings at runtime
    from typing_extensions import Self

# End pending awaitables while the interpreter can still take their results (see
# crates/moq-audio-py/src/runtime.rs): otherwise a late one aborts the process at exit.
atexit.register(_native._shutdown)

__all__ = [
    "WIRE_VERSION",
    "Arrival",
    "AudioConsumer",
    "AudioFrame",
    "AudioProducer",
    "ClosedError",
    "CodecError",
    "ConnectError",
    "ConnectionEvent",
    "DataReader",
    "DataWriter",
    "FlushReport",
    "ForbiddenError",
    "JitterStats",
    "ListenerPlayout",
    "MarkEvent",
    "MoqAudioError",
    "MoqTimeoutError",
    "Player",
    "PlayerReport",
    "Segment",
    "Server",
    "Session",
    "WireError",
    "__version__",
    "connect",
    "truncate_text",
    "web_root",
]


def web_root() -> Path | None:
    """Directory of the built browser listener (``web-demo/dist``), or None if not built.

    Looked up in ``$MOQ_AUDIO_WEB_ROOT``, then next to the package (wheel installs), then in
    the source tree (editable installs).
    """
    candidates = []
    if os.environ.get("MOQ_AUDIO_WEB_ROOT"):
        candidates.append(Path(os.environ["MOQ_AUDIO_WEB_ROOT"]))
    here = Path(__file__).resolve().parent
    candidates += [here / "web", here.parent.parent / "web-demo" / "dist"]
    for c in candidates:
        if (c / "index.html").is_file():
            return c
    return None


class Server:
    """The embedded MoQ server: QUIC/WebTransport on a UDP port and, on the TCP port with the
    same number, HTTP serving ``/certificate.sha256`` (the self-signed certificate's SHA-256,
    which ``http://`` clients pin) and optionally static files (the browser listener).

    Use as ``async with Server("127.0.0.1:0") as server:``; ``server.url`` is what
    :func:`connect` takes. Port 0 picks a free port.

    Raises :class:`ValueError` for a bad address and :class:`MoqAudioError` when binding fails.
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:0",
        *,
        static_dir: str | os.PathLike[str] | None = None,
        websocket: bool = True,
    ) -> None:
        self._addr = addr
        self._static_dir = None if static_dir is None else os.fspath(static_dir)
        self._websocket = websocket
        self._native: _native.NativeServer | None = None

    async def start(self) -> Self:
        """Bind and start serving. Returns self."""
        if self._native is None:
            self._native = await _native.serve(self._addr, self._static_dir, self._websocket)
        return self

    def _running(self) -> _native.NativeServer:
        if self._native is None:
            raise MoqAudioError("the server is not started: use `async with Server(...)` or `await server.start()`")
        return self._native

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``: the URL clients connect to."""
        return self._running().url

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the server's certificate (for ``https://`` pinning)."""
        return self._running().fingerprint

    @property
    def port(self) -> int:
        """The UDP (QUIC) and TCP (HTTP) port number."""
        return self._running().port

    @property
    def websocket_url(self) -> str | None:
        """URL of the WebSocket fallback listener, if any."""
        return self._running().websocket_url

    async def close(self) -> None:
        """Stop listening and close every session. Idempotent."""
        if self._native is not None:
            await self._native.close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = self._native.url if self._native else "not started"
        return f"Server({state})"


class Session:
    """A MoQ client session. Get one from :func:`connect`."""

    def __init__(self, native: _native.NativeSession) -> None:
        self._native = native

    @property
    def url(self) -> str:
        """The URL this session connected to (without the token)."""
        return self._native.url

    @property
    def connected(self) -> bool:
        """Whether a session is up right now (False while redialing after a drop)."""
        return self._native.connected

    @property
    def epoch(self) -> int:
        """How many sessions have been up: 1 after connecting, +1 per reconnect."""
        return self._native.epoch

    def events(self) -> _native.ConnectionEvents:
        """Async iterator of the connection: the current state first, then every change.

        Each item is a :class:`ConnectionEvent` with ``kind`` "connected" (``epoch`` 1 at
        first, +1 per reconnect), "disconnected" (dropped, redialing; ``reason`` says why) or
        "closed" (for good, the last item). Take the iterator *before* acting on the session so
        no change is missed. Audio broadcasts follow the connection by themselves: a producer
        holds its audio while disconnected and continues in a new generation; players and
        consumers resubscribe.
        """
        return self._native.events()

    def publish_audio(
        self,
        path: str,
        sample_rate: int = 48_000,
        channels: int = 1,
        *,
        frame_ms: int | None = None,
        bitrate: int | None = None,
        lead_ms: float | None = None,
        capacity_ms: float | None = None,
        group_frames: int | None = None,
        mark_timeout_ms: float | None = None,
        on_disconnect: str | None = None,
        reset_in_flight: bool | None = None,
    ) -> AudioProducer:
        """Publish an audio broadcast at ``path`` (hang catalog + Opus track).

        ``None`` takes the library default (the Rust ``ProducerOptions::default()``, the one
        place defaults live; the values are given below).

        Args:
            path: broadcast path, relative to the session URL.
            sample_rate: input rate in Hz, 8000..48000 (22050, 44100 ... are resampled to 48 kHz).
            channels: 1 or 2.
            frame_ms: Opus frame duration: 10, 20 (default), 40 or 60 ms.
            bitrate: Opus bitrate in bits/s (6000..510000); None lets libopus choose.
            lead_ms: how far ahead of the playout clock frames go to the network (default 60).
            capacity_ms: audio queued before ``write`` waits (default 30 000).
            group_frames: Opus frames per MoQ group (default 5: 100 ms groups).
            mark_timeout_ms: a pending mark resolves "unknown" after this long without any
                listener report (default 5 000).
            on_disconnect: while the session is down (redialing): "queue" (default) keeps
                queueing up to ``capacity_ms`` and plays it in a new generation after the
                reconnect; "raise" makes ``write`` raise :class:`ConnectError` and queue nothing.
                Either way ``write`` never returns True for audio that is thrown away: queued
                audio is dropped only by your ``flush()``/``cancel()`` (and reported), or when
                the session ends for good, which ``finish()`` and later writes report as
                :class:`ConnectError`.
            reset_in_flight: at a flush, also reset (QUIC RESET_STREAM) the old generation's
                groups already on the network (default False). Listeners that know generations
                drop that audio anyway; stock hang players stall on the hole a reset leaves and
                drop up to 100 ms of the new reply. Turn on when every listener is moq-audio
                aware and the bytes matter.

        Raises:
            ValueError: for an argument out of range, or a path already published on this
                session.
        """
        return self._native.publish_audio(
            path,
            sample_rate,
            channels,
            frame_ms,
            bitrate,
            lead_ms,
            capacity_ms,
            group_frames,
            mark_timeout_ms,
            on_disconnect,
            reset_in_flight,
        )

    async def subscribe_audio(
        self,
        path: str,
        *,
        sample_rate: int | None = None,
        timeout: float | None = None,
        resubscribe: bool = True,
    ) -> AudioConsumer:
        """Subscribe to the audio broadcast at ``path``; iterate the result for :class:`AudioFrame`.

        ``sample_rate``: output rate in Hz (default: the broadcast's Opus rate). With
        ``resubscribe`` (the default) the consumer follows the broadcast across a reconnect of
        this session, a relay restart, or its publisher going away and coming back (a new
        publisher's generations continue above the old ones, so listeners cut over); with
        ``resubscribe=False`` iteration ends when the publisher goes away (``end_reason`` says
        why), e.g. to notice a page that reloaded.

        Raises :class:`MoqTimeoutError` if the broadcast or its catalog does not appear within
        ``timeout`` seconds (default 10), :class:`WireError` if it carries no Opus audio.
        """
        return await self._native.subscribe_audio(path, sample_rate, timeout, resubscribe)

    async def play_audio(
        self,
        path: str,
        *,
        wav_path: str | os.PathLike[str] | None = None,
        sample_rate: int | None = None,
        target_ms: float | None = None,
        fade_ms: float | None = None,
        timeout: float | None = None,
        listener_id: str | None = None,
    ) -> Player:
        """Play the audio broadcast at ``path`` in real time like a listener would, optionally
        writing what is heard to ``wav_path``, and publish playout feedback so the producer's
        marks and flush reports reflect what was actually rendered.

        Args:
            path: broadcast path, relative to the session URL.
            wav_path: write what is rendered here (16-bit PCM WAV; its sample index is the
                render clock of :meth:`Player.report`), on a thread of its own, so a slow disk
                does not stall playout. A file that cannot be written (a full disk) ends the
                player: :meth:`Player.wait` and :meth:`Player.stop` raise :class:`MoqAudioError`
                naming the file.
            sample_rate: output rate in Hz (default: the broadcast's Opus rate).
            target_ms: audio buffered before playout starts (default 40).
            fade_ms: fade-out of the old generation at a flush, at most 10 (default 5).
            timeout: seconds to wait for the broadcast (default 10).
            listener_id: the id playout is reported under (default: unique per process).

        Raises :class:`MoqTimeoutError` if the broadcast does not appear in time,
        :class:`ValueError` for a bad argument.
        """
        wav = None if wav_path is None else os.fspath(wav_path)
        return await self._native.play_audio(path, wav, sample_rate, target_ms, fade_ms, timeout, listener_id)

    async def subscribe_data(self, path: str, name: str, *, timeout: float | None = None) -> _native.DataReader:
        """Subscribe to message track ``name`` of the broadcast at ``path`` (e.g. a page's
        ``control.json``); ``async for message in reader`` yields ``bytes``.

        Raises :class:`MoqTimeoutError` if the broadcast does not appear within ``timeout`` s.
        """
        return await self._native.subscribe_data(path, name, timeout)

    def publish_data(self, path: str, names: list[str]) -> _native.DataBroadcast:
        """Publish a broadcast at ``path`` with message tracks ``names``; its ``tracks`` are
        :class:`DataWriter` objects in the same order. Published while the result lives."""
        return self._native.publish_data(path, list(names))

    async def close(self) -> None:
        """Close the session and wait until it is closed. Idempotent."""
        self._native.close()
        try:
            await self._native.closed()
        except ConnectError:
            pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Session({self._native.url})"


class connect:
    """Connect to a MoQ server or relay: ``session = await connect(url)`` or
    ``async with connect(url) as session``.

    ``http://`` URLs fetch ``/certificate.sha256`` and pin it (the embedded server, a local
    ``moq-relay``); ``https://`` URLs use the system roots, or only ``fingerprint`` (hex SHA-256)
    when given. ``token`` authenticates with a relay that asks an auth server (sent as the
    ``jwt`` query parameter; never logged or shown in errors). ``timeout``: seconds (default 10).

    The first connect fails fast. After that, a dropped connection (a relay restart, a network
    blip) is redialed with backoff for up to ``reconnect_timeout`` seconds (default 30; 0 =
    forever) unless ``reconnect=False``; watch :meth:`Session.events`.

    Raises :class:`ValueError` for a bad URL, :class:`ForbiddenError` when the relay refuses the
    token, :class:`ConnectError` when the server cannot be reached, :class:`MoqTimeoutError`
    after ``timeout`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        fingerprint: str | None = None,
        timeout: float | None = None,
        reconnect: bool = True,
        reconnect_timeout: float | None = None,
    ) -> None:
        self._args = (url, fingerprint, timeout, token, reconnect, reconnect_timeout)
        self._session: Session | None = None

    async def _connect(self) -> Session:
        native = await _native.connect(*self._args)
        self._session = Session(native)
        return self._session

    def __await__(self) -> Generator[Any, None, Session]:
        return self._connect().__await__()

    async def __aenter__(self) -> Session:
        return await self._connect()

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
