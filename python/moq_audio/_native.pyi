"""Type stubs for the compiled ``moq_audio._native`` module (PyO3)."""

from collections.abc import AsyncIterator, Awaitable, Coroutine
from os import PathLike
from typing import Any, Literal, TypeAlias, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BUILD_PROFILE",
    "WIRE_VERSION",
    "Arrival",
    "AudioConsumer",
    "AudioFrame",
    "AudioProducer",
    "ClosedError",
    "CodecError",
    "ConnectError",
    "ConnectionEvent",
    "ConnectionEvents",
    "DataBroadcast",
    "DataReader",
    "DataWriter",
    "FlushReport",
    "ForbiddenError",
    "JitterStats",
    "ListenerPlayout",
    "MarkEvent",
    "MarkEvents",
    "MoqAudioError",
    "MoqTimeoutError",
    "NativeServer",
    "NativeSession",
    "PendingWriteHandle",
    "Player",
    "PlayerReport",
    "Segment",
    "WireError",
    "__version__",
    "_shutdown",
    "connect",
    "serve",
]

__version__: str
#: The ``moqAudio`` catalog section version this build writes (see README "Wire format").
WIRE_VERSION: int
#: "release" or "dev": the cargo profile this extension was built with (benchmarks record it).
BUILD_PROFILE: Literal["dev", "release"]

class MoqAudioError(Exception):
    """Base class of every moq-audio error (ValueError is raised for bad input)."""

class ConnectError(MoqAudioError, ConnectionError):
    """Connecting or the MoQ session failed: check the URL and that the server is running."""

class ForbiddenError(ConnectError, PermissionError):
    """The server refused the session or a publish/subscribe: the token is missing, malformed,
    expired, or does not grant that path. Retrying will not help."""

class ClosedError(MoqAudioError):
    """The producer was finished or cancelled; create a new one to publish more audio."""

class WireError(MoqAudioError):
    """The peer's catalog or frames are not moq-audio/hang Opus, or speak an incompatible version."""

class CodecError(MoqAudioError):
    """libopus or the resampler failed on the publish side; the producer is closed."""

class MoqTimeoutError(MoqAudioError, TimeoutError):
    """Waiting for a connection, broadcast, catalog or mark took longer than the timeout."""

_PcmLike: TypeAlias = npt.NDArray[np.int16] | npt.NDArray[np.float32] | bytes | bytearray

@final
class FlushReport:
    """What a flush dropped and how far the listener got. All durations in ms."""

    #: The new generation (the flushed one is ``generation - 1``).
    generation: int
    #: Audio dropped before encoding (PCM queue + the encoder's partial frame).
    dropped_pcm_ms: float
    #: Audio dropped as encoded Opus frames not yet handed to the network.
    dropped_encoded_ms: float
    #: Audio of the flushed generation already handed to the network.
    sent_ms: float
    #: How far into the flushed generation listeners had rendered (max over listeners).
    heard_ms: float
    #: True when ``heard_ms`` is the sender's estimate (no listener feedback yet).
    heard_estimated: bool
    #: Listener id -> ms rendered into the flushed generation.
    heard_per_listener: dict[str, float]
    @property
    def dropped_ms(self) -> float:
        """``dropped_pcm_ms + dropped_encoded_ms``."""

@final
class MarkEvent:
    """How a mark resolved (each mark resolves exactly once)."""

    id: str
    state: Literal["played", "flushed", "unknown"]
    generation: int
    #: ms into the generation the mark pins.
    position_ms: float
    #: Listener that played it (state "played").
    listener: str | None
    #: Listener's wall clock, ms since the Unix epoch, when it rendered the mark.
    render_time_ms: float | None

@final
class MarkEvents:
    def __aiter__(self) -> AsyncIterator[MarkEvent]: ...
    def __anext__(self) -> Awaitable[MarkEvent]: ...

@final
class AudioProducer:
    """Publishes PCM as paced Opus on a MoQ track. Thread-safe."""

    def write(self, pcm: _PcmLike) -> Coroutine[Any, Any, bool]:
        """Queue PCM: numpy int16 or float32 with shape (n,) or (n, channels), or s16le bytes.

        Any length (not frame aligned). Validation and the write position happen at the call,
        before the coroutine is returned: raises ValueError for a wrong dtype, channel count, 3-D
        array, NaN/inf or odd byte count, and ClosedError after finish/cancel; nothing of a
        rejected call is queued. The coroutine (``asyncio.create_task`` accepts it) waits only
        while the queue is full and returns True when everything was queued, False when a flush
        dropped (part of) it meanwhile.
        """
    def write_blocking(self, pcm: _PcmLike) -> bool:
        """Like ``write`` for threads: blocks (GIL released) while the queue is full.

        A write that fits is queued at once with the GIL held (a push, cheaper than releasing
        the GIL). Returns ``True`` when all of ``pcm`` was queued, ``False`` when a flush dropped
        (part of) it while it waited. Raises ``ValueError`` for bad PCM (nothing queued) and
        ``ClosedError`` after ``finish()``/``cancel()``.
        """
    def flush(self) -> FlushReport:
        """Drop everything not yet played and start a new generation; the track stays open.

        Instant (never waits on the network or a writer) and safe from any thread. A writer
        waiting on a full queue wakes and its remaining samples are dropped.
        """
    def mark(self, id: str) -> None:
        """Pin ``id`` to the current write position. Raises ValueError for a pending duplicate."""
    def wait_mark(self, id: str, timeout: float | None = None) -> Awaitable[MarkEvent]:
        """Wait until mark ``id`` resolves (at once if it already did). Raises ValueError for an
        unknown id, MoqTimeoutError after ``timeout`` seconds."""
    def marks(self) -> MarkEvents:
        """Async iterator of mark resolutions from now on."""
    def finish(self) -> Awaitable[None]:
        """Play out what is queued, then end the track cleanly."""
    def cancel(self) -> None:
        """Drop everything, tell listeners in band (they end "cancelled"), end the track.
        Idempotent; pending marks resolve "flushed"."""
    def data_track(self, name: str) -> DataWriter:
        """The message track ``name`` (e.g. "transcript.json") of this producer's broadcast,
        created on first use. Raises ValueError for "audio" or "catalog.json"."""
    def listeners(self) -> list[ListenerPlayout]:
        """What each listener last reported about its playout, sorted by listener id."""
    @property
    def path(self) -> str:
        """The broadcast path."""
    @property
    def generation(self) -> int: ...
    @property
    def queued_ms(self) -> float:
        """Audio queued and not yet handed to the network, ms."""
    @property
    def written_ms(self) -> float:
        """ms written in the current generation: where ``mark()`` would pin, on the scale of
        ``FlushReport.heard_ms``. Record it before an utterance; after a flush,
        ``heard_ms - start`` is how much of that utterance was heard."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def codec_rate(self) -> int:
        """Opus rate in Hz (the input rate, or 48000 when resampled)."""
    @property
    def lead_ms(self) -> float: ...
    @property
    def closed(self) -> bool: ...

@final
class ListenerPlayout:
    """What one listener last reported about its playout."""

    listener: str
    generation: int
    #: ms into ``generation`` it had rendered at its last report.
    position_ms: float
    playing: bool
    #: ms since that report arrived.
    age_ms: float

@final
class PendingWriteHandle:
    """Internal: the rest of a write waiting for room."""

@final
class DataWriter:
    """Writes messages to a track, one group each."""

    def write(self, message: str | bytes) -> None:
        """Write one message (str is sent as UTF-8). Raises ConnectError if the track closed."""
    def finish(self) -> None: ...

@final
class DataReader:
    """Messages of a track: ``async for message in reader`` yields bytes."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def __anext__(self) -> Awaitable[bytes]: ...

@final
class DataBroadcast:
    """A data-only broadcast, published while this object lives."""

    tracks: list[DataWriter]
    def close(self) -> None: ...

@final
class AudioFrame:
    """One decoded frame."""

    @property
    def pcm(self) -> npt.NDArray[np.float32]:
        """float32 samples in [-1, 1], shape (n, channels)."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def generation(self) -> int: ...
    @property
    def timestamp_us(self) -> int:
        """Media timestamp of the first sample, µs on the publisher's clock."""
    @property
    def duration_ms(self) -> float: ...

@final
class AudioConsumer:
    """Decoded frames of a broadcast; never yields an older generation after a newer one."""

    def __aiter__(self) -> AsyncIterator[AudioFrame]: ...
    def __anext__(self) -> Awaitable[AudioFrame]: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def end_reason(self) -> str | None:
        """None while live, else "finished", "cancelled" or "failed: <why>". Readable while
        another task iterates."""
    def close(self) -> None:
        """Unsubscribe; an iteration in progress in another task ends too."""

@final
class Segment:
    """A stretch of the render clock with one kind of content."""

    #: First sample frame of the stretch on the render clock (= index in the WAV file).
    start: int
    frames: int
    #: Generation rendered, None for silence.
    generation: int | None
    #: Media timestamp (µs) of the first sample, for audio.
    ts_us: int
    #: Whether this is the fade-out of a flushed generation.
    fade: bool
    #: Whether this stretch was concealed (Opus PLC in place of a missing packet).
    concealed: bool

@final
class Arrival:
    """When the first frame of a generation reached the player."""

    generation: int
    #: Render clock (sample frames) when it arrived.
    at_frame: int

@final
class JitterStats:
    """Jitter buffer counters (frames at the report's sample rate) and its adaptation's state."""

    #: Frames dropped because their generation was older than the one playing.
    stale_frames: int
    #: Frames dropped because they arrived after their time (or were duplicates).
    late_frames: int
    #: Sample frames of old audio dropped at flushes (not counting the fade).
    flushed_frames: int
    #: Times playout ran dry and then went on with audio that had been late.
    underruns: int
    #: Sample frames skipped because the delay was far over the target (after an outage).
    skipped_frames: int
    #: Sample frames of concealment (Opus PLC) rendered, and the same in ms.
    concealed_frames: int
    concealed_ms: float
    #: Sample frames added to / removed from quiet audio to move the buffer's delay.
    inserted_frames: int
    removed_frames: int
    #: The current target delay, ms (adapts within the Player's min/max target).
    target_ms: float
    #: The measured jitter: the relative arrival delay 99.5 % of packets stay under, ms.
    jitter_ms: float
    #: The loss-recovery peak raising the target (0 when none), ms.
    peak_ms: float
    #: The current playout delay over the fastest recent packet, ms.
    delay_ms: float

@final
class PlayerReport:
    """What a Player has rendered so far."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def rendered_frames(self) -> int:
        """Sample frames rendered (the length of the WAV file)."""
    @property
    def rendered_ms(self) -> float: ...
    @property
    def segments(self) -> list[Segment]:
        """Everything rendered as stretches of the render clock (= WAV sample index)."""
    @property
    def arrivals(self) -> list[Arrival]:
        """Render clock frame at which the first frame of each generation arrived."""
    @property
    def stats(self) -> JitterStats: ...
    @property
    def position(self) -> tuple[int, int] | None:
        """(generation, media timestamp µs) just past the last sample rendered."""
    @property
    def end(self) -> str | None:
        """How the track ended ("finished", "cancelled", "failed: <why>"), None while live."""
    @property
    def stopped(self) -> bool: ...
    def frames_of(self, generation: int | None = None, *, after: int = 0, fade: bool | None = None) -> int:
        """Render-clock frames of ``generation`` (None: any audio) at or after render frame
        ``after``; ``fade``: only the fade-out (True), only unfaded audio (False), or both."""
    def ms_of(self, generation: int | None = None, *, after: int = 0, fade: bool | None = None) -> float:
        """``frames_of(...)`` in ms."""
    def arrival_of(self, generation: int) -> int | None:
        """Render frame at which the first frame of ``generation`` (or newer) arrived."""

@final
class Player:
    """Real-time playout through a generation-aware jitter buffer, with playout feedback."""

    listener_id: str
    def report(self) -> PlayerReport: ...
    def wait(self) -> Awaitable[PlayerReport]:
        """Wait until the track ended and everything buffered was rendered."""
    def wait_rendered(self, ms: float, generation: int | None = None) -> Awaitable[PlayerReport]:
        """Wait until ``ms`` of audio (of ``generation``, if given) has been rendered."""
    def wait_generation(self, generation: int) -> Awaitable[PlayerReport]:
        """Wait until the first frame of ``generation`` (or newer) reached the player."""
    def stop(self) -> Awaitable[PlayerReport]:
        """Stop now; the WAV file is finalized."""

@final
class ConnectionEvent:
    """A session's connection state or change."""

    #: "connected" (first event of an up session, then each reconnect), "disconnected"
    #: (dropped; redialing) or "closed" (for good; the last event).
    kind: Literal["connected", "disconnected", "closed"]
    #: For "connected": the session's epoch (1 = the first connect, +1 per reconnect).
    epoch: int | None
    #: Why it dropped or ended (None for our own close).
    reason: str | None

@final
class ConnectionEvents:
    """The connection's current state first, then every change; ends after "closed"."""

    def __aiter__(self) -> AsyncIterator[ConnectionEvent]: ...
    def __anext__(self) -> Awaitable[ConnectionEvent]: ...

@final
class NativeServer:
    url: str
    fingerprint: str
    port: int
    websocket_url: str | None
    def close(self) -> Awaitable[None]: ...

@final
class NativeSession:
    url: str
    def publish_audio(
        self,
        path: str,
        sample_rate: int,
        channels: int = 1,
        frame_ms: int | None = None,
        bitrate: int | None = None,
        lead_ms: float | None = None,
        capacity_ms: float | None = None,
        group_frames: int | None = None,
        mark_timeout_ms: float | None = None,
        on_disconnect: str | None = None,
        reset_in_flight: bool | None = None,
    ) -> AudioProducer: ...
    def subscribe_audio(
        self, path: str, sample_rate: int | None = None, timeout: float | None = None, resubscribe: bool = True
    ) -> Awaitable[AudioConsumer]: ...
    def play_audio(
        self,
        path: str,
        wav_path: str | PathLike[str] | None = None,
        sample_rate: int | None = None,
        target_ms: float | None = None,
        fade_ms: float | None = None,
        timeout: float | None = None,
        listener_id: str | None = None,
    ) -> Awaitable[Player]: ...
    def subscribe_data(self, path: str, name: str, timeout: float | None = None) -> Awaitable[DataReader]: ...
    def publish_data(self, path: str, names: list[str]) -> DataBroadcast: ...
    @property
    def connected(self) -> bool: ...
    @property
    def epoch(self) -> int: ...
    def events(self) -> ConnectionEvents: ...
    def close(self) -> None: ...
    def closed(self) -> Awaitable[None]: ...

def serve(
    addr: str, static_dir: str | PathLike[str] | None = None, websocket: bool = True
) -> Awaitable[NativeServer]: ...
def connect(
    url: str,
    fingerprint: str | None = None,
    timeout: float | None = None,
    token: str | None = None,
    reconnect: bool = True,
    reconnect_timeout: float | None = None,
) -> Awaitable[NativeSession]: ...
def _shutdown() -> None:
    """Registered with atexit: end pending awaitables while Python can still take their results."""
