"""Type stubs for the compiled ``moq_audio._native`` module (PyO3)."""

from os import PathLike
from typing import AsyncIterator, Awaitable, Optional, TypedDict

import numpy as np
import numpy.typing as npt

__version__: str
#: Group sequence = generation << GENERATION_SHIFT | index (see README "Wire format").
GENERATION_SHIFT: int

class MoqAudioError(Exception):
    """Base class of every moq-audio error (ValueError is raised for bad input)."""

class ConnectError(MoqAudioError):
    """Connecting or the MoQ session failed: check the URL and that the server is running."""

class ClosedError(MoqAudioError):
    """The producer was finished or cancelled; create a new one to publish more audio."""

class WireError(MoqAudioError):
    """The peer's catalog or frames are not moq-audio/hang Opus (or a corrupt packet)."""

class MoqTimeoutError(MoqAudioError):
    """Waiting for a connection, broadcast, catalog or mark took longer than the timeout."""

PcmLike = npt.NDArray[np.int16] | npt.NDArray[np.float32] | bytes | bytearray

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

class MarkEvent:
    """How a mark resolved (each mark resolves exactly once)."""

    id: str
    #: "played", "flushed" or "unknown".
    state: str
    generation: int
    #: ms into the generation the mark pins.
    position_ms: float
    #: Listener that played it (state "played").
    listener: Optional[str]
    #: Listener's wall clock, ms since the Unix epoch, when it rendered the mark.
    render_time_ms: Optional[float]

class MarkEvents:
    def __aiter__(self) -> AsyncIterator[MarkEvent]: ...
    def __anext__(self) -> Awaitable[MarkEvent]: ...

class AudioProducer:
    """Publishes PCM as paced Opus on a MoQ track. Thread-safe."""

    def write(self, pcm: PcmLike) -> Awaitable[bool]:
        """Queue PCM: numpy int16 or float32 with shape (n,) or (n, channels), or s16le bytes.

        Any length (not frame aligned). Validation happens before the awaitable is returned:
        raises ValueError for a wrong dtype, channel count, 3-D array, NaN/inf or odd byte count,
        and ClosedError after finish/cancel; nothing of a rejected call is queued. The awaitable
        waits only while the queue is full and resolves to True when everything was queued,
        False when a flush dropped (part of) it meanwhile.
        """
    def write_blocking(self, pcm: PcmLike) -> bool:
        """Like ``write`` for threads: blocks (GIL released) while the queue is full."""
    def flush(self) -> FlushReport:
        """Drop everything not yet played and start a new generation; the track stays open.

        Instant (never waits on the network or a writer) and safe from any thread. A writer
        waiting on a full queue wakes and its remaining samples are dropped.
        """
    def mark(self, id: str) -> None:
        """Pin ``id`` to the current write position. Raises ValueError for a pending duplicate."""
    def wait_mark(self, id: str, timeout: Optional[float] = None) -> Awaitable[MarkEvent]:
        """Wait until mark ``id`` resolves (at once if it already did). Raises ValueError for an
        unknown id, MoqTimeoutError after ``timeout`` seconds."""
    def marks(self) -> MarkEvents:
        """Async iterator of mark resolutions from now on."""
    def finish(self) -> Awaitable[None]:
        """Play out what is queued, then end the track cleanly."""
    def cancel(self) -> None:
        """Drop everything and end the track with an error code. Idempotent."""
    def data_track(self, name: str) -> DataWriter:
        """Add a message track (e.g. "transcript.json") to this producer's broadcast."""
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

class DataWriter:
    """Writes messages to a track, one group each."""

    def write(self, message: str | bytes) -> None:
        """Write one message (str is sent as UTF-8). Raises ConnectError if the track closed."""
    def finish(self) -> None: ...

class DataReader:
    """Messages of a track: ``async for message in reader`` yields bytes."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def __anext__(self) -> Awaitable[bytes]: ...

class DataBroadcast:
    """A data-only broadcast, published while this object lives."""

    tracks: list[DataWriter]
    def close(self) -> None: ...

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

class AudioConsumer:
    """Decoded frames of a broadcast; never yields an older generation after a newer one."""

    def __aiter__(self) -> AsyncIterator[AudioFrame]: ...
    def __anext__(self) -> Awaitable[AudioFrame]: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def end_reason(self) -> Optional[str]:
        """None while live, else "finished", "cancelled" or "failed: <why>"."""
    def close(self) -> None: ...

class Segment(TypedDict):
    start: int
    frames: int
    generation: Optional[int]
    ts_us: int
    fade: bool

class Arrival(TypedDict):
    generation: int
    at_frame: int

class PlayerStats(TypedDict):
    stale_frames: int
    late_frames: int
    flushed_frames: int
    underruns: int
    skipped_frames: int

class PlayerReport(TypedDict):
    sample_rate: int
    channels: int
    rendered_frames: int
    rendered_ms: float
    position: Optional[tuple[int, int]]
    stopped: bool
    end: Optional[str]
    stats: PlayerStats
    #: Everything rendered as stretches of the render clock (= WAV sample index).
    segments: list[Segment]
    #: Render clock frame at which the first frame of each generation arrived.
    arrivals: list[Arrival]

class Player:
    """Real-time playout through a generation-aware jitter buffer, with playout feedback."""

    listener_id: str
    def report(self) -> PlayerReport: ...
    def wait(self) -> Awaitable[PlayerReport]:
        """Wait until the track ended and everything buffered was rendered."""
    def wait_rendered(self, ms: float, generation: Optional[int] = None) -> Awaitable[PlayerReport]:
        """Wait until ``ms`` of audio (of ``generation``, if given) has been rendered."""
    def stop(self) -> Awaitable[PlayerReport]:
        """Stop now; the WAV file is finalized."""

class NativeServer:
    url: str
    fingerprint: str
    port: int
    websocket_url: Optional[str]
    def close(self) -> Awaitable[None]: ...

class NativeSession:
    url: str
    def publish_audio(
        self,
        path: str,
        sample_rate: int,
        channels: int = 1,
        frame_ms: int = 20,
        bitrate: Optional[int] = None,
        lead_ms: float = 60.0,
        capacity_ms: float = 30000.0,
        group_frames: int = 5,
        mark_timeout_ms: float = 5000.0,
    ) -> AudioProducer: ...
    def subscribe_audio(
        self, path: str, sample_rate: Optional[int] = None, timeout: float = 10.0
    ) -> Awaitable[AudioConsumer]: ...
    def play_audio(
        self,
        path: str,
        wav_path: Optional[str | PathLike[str]] = None,
        sample_rate: Optional[int] = None,
        target_ms: float = 40.0,
        fade_ms: float = 5.0,
        timeout: float = 10.0,
        listener_id: Optional[str] = None,
    ) -> Awaitable[Player]: ...
    def subscribe_data(self, path: str, name: str, timeout: float = 10.0) -> Awaitable[DataReader]: ...
    def publish_data(self, path: str, names: list[str]) -> DataBroadcast: ...
    def close(self) -> None: ...
    def closed(self) -> Awaitable[None]: ...

def serve(addr: str, static_dir: Optional[str | PathLike[str]] = None, websocket: bool = True) -> Awaitable[NativeServer]: ...
def connect(url: str, fingerprint: Optional[str] = None, timeout: float = 10.0) -> Awaitable[NativeSession]: ...
