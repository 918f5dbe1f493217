"""The output processor: the bot's audio on an :class:`moq_audio.AudioProducer`, driven by playout.

Three things differ from Pipecat's stock output path, all because moq-audio knows what the
listener actually rendered (playout feedback resolves marks):

- Bot speaking frames: ``BotStartedSpeakingFrame`` / ``BotSpeakingFrame`` /
  ``BotStoppedSpeakingFrame`` come from playout, not from write time. Every chunk written is
  followed by a mark; the listener's first rendered sample of a run starts the bot speaking,
  and the mark at the end of the last chunk, once rendered, stops it (one feedback period,
  ~50 ms, after the listener's last sample). The base class's write-time guesses are dropped.
- Barge-in: an ``InterruptionFrame`` flushes the producer first (the producer's queue, unsent
  groups and, in band, the listener's jitter buffer), then the base class drops Pipecat's own
  queue. The :class:`moq_audio.FlushReport` goes to ``on_bot_interrupted``.
- Heard-only context: each ``TTSTextFrame`` is placed on the audio timeline and held (with
  every downstream frame behind it, e.g. ``LLMFullResponseEndFrame``) until the listener has
  played that far. At a barge-in the text heard is passed on and the rest is dropped, so the
  assistant aggregator commits what was heard. Sentence-level text (a TTS without word
  timestamps) is placed where its audio ends; the sentence being spoken at the cut is passed on
  as its heard prefix (whole words, at the sentence's own speaking rate). Word-level text (a TTS
  with word timestamps: frames with a presentation time) is placed where the word starts, from
  its presentation time relative to the TTS context's first audio, and counts as heard at its
  midpoint (the next word's start ends it).

Pipecat cuts TTS audio into ``audio_out_10ms_chunks`` chunks and builds new frames for them,
dropping ``TTSAudioRawFrame.context_id`` on the way. We do not need it: the TTS pushes each
``TTSTextFrame`` after its audio, and the base class hands both to this processor in that order
(``write_audio_frame`` for the chunks, ``write_transport_frame`` for the text), so the position
at which the text arrives *is* the end of its audio, to within one chunk (20 ms by default).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from loguru import logger
from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    ControlFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    StartFrame,
    SystemFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.utils.utils import obj_id

import moq_audio

from .params import MoqAudioParams

if TYPE_CHECKING:
    from .._native import DataBroadcast, MarkEvents
    from .transport import MoqAudioTransport, SessionHolder

__all__ = ["MoqAudioOutputTransport"]

#: Positions are compared with this slack (ms): marks and ``written_ms`` are the same floats,
#: this only absorbs rounding.
EPS_MS = 0.5
#: How often ``BotSpeakingFrame`` is broadcast while the listener hears the bot (s): Pipecat's
#: own period (``MediaSender._bot_speaking_frame_period``).
BOT_SPEAKING_PERIOD_S = 0.2
#: Mark ids this processor places start with this (the application may place its own marks).
MARK_PREFIX = "pipecat-out-"
#: Assumed length of a word whose successor is not known (ms): a word is heard at its midpoint,
#: truncate_text's rule. ~300 ms is an English word at 175 words/min (espeak-ng's default).
WORD_FALLBACK_MS = 300.0
#: TTS contexts whose start and word clock are remembered (a context is one reply).
CONTEXTS_KEPT = 16

_BOT_SPEAKING = (BotStartedSpeakingFrame, BotSpeakingFrame, BotStoppedSpeakingFrame)


def _remember(table: dict[str, Any], key: str, value: Any) -> None:
    """``table[key] = value``, keeping the newest ``CONTEXTS_KEPT`` keys."""
    table.pop(key, None)
    table[key] = value
    while len(table) > CONTEXTS_KEPT:
        del table[next(iter(table))]


def _typed(method: Any) -> Callable[[], Awaitable[None]]:
    """A Pipecat coroutine method without annotations (``cleanup``, ``broadcast_interruption``),
    typed for mypy --strict."""
    return cast("Callable[[], Awaitable[None]]", method)


@dataclass
class _Held:
    """A downstream frame waiting for playout. Text frames carry their place on the audio
    timeline (ms into ``generation``); other frames are ready and wait only for order.

    A sentence (``TTSTextFrame`` pushed after its audio) is heard at its ``end_ms``; a word
    (``TTSTextFrame`` with a presentation time) at its midpoint, ``end_ms`` being the next
    word's start once known (``WORD_FALLBACK_MS`` after its start until then).
    """

    frame: Frame
    generation: int
    end_ms: float | None = None
    start_ms: float = 0.0
    word: bool = False

    @property
    def is_text(self) -> bool:
        return self.word or self.end_ms is not None

    @property
    def heard_at_ms(self) -> float:
        """Where the listener must have played to for this text to count as heard."""
        if self.word:
            end = self.end_ms if self.end_ms is not None else self.start_ms + WORD_FALLBACK_MS
            return (self.start_ms + end) / 2
        assert self.end_ms is not None
        return self.end_ms


class _SyncFrame(ControlFrame):
    """Sent straight to the next processor at a barge-in; once it is processed, so are the
    heard text frames pushed before it (the processor's queue is FIFO)."""


class MoqAudioOutputTransport(BaseOutputTransport):
    """Writes the bot's audio to a moq-audio producer on the ``bot_broadcast``; see the module
    docstring for how bot-speaking frames, barge-in and the heard-only context work.

    ``transport.producer`` (after start) is the :class:`moq_audio.AudioProducer`; an
    application may place its own marks on it.
    """

    def __init__(
        self, transport: MoqAudioTransport, holder: SessionHolder, params: MoqAudioParams, **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self._owner = transport
        self._holder = holder
        self._moq_params = params
        self._session: moq_audio.Session | None = None
        self._producer: moq_audio.AudioProducer | None = None
        self._data: DataBroadcast | None = None
        self._transcript: moq_audio.DataWriter | None = None
        self._messages: moq_audio.DataWriter | None = None
        self._playout_task: asyncio.Task[None] | None = None
        self._mark_ids = itertools.count()
        # Playout state of the current generation, ms into it.
        self._generation = 0
        self._played_ms = 0.0  # the listener has rendered up to here (latest mark resolved)
        self._written_ms = 0.0  # written up to here (the producer's written_ms after our last write)
        self._run_start_ms: float | None = None  # a speaking run starts here, not yet heard
        self._speaking = False
        self._speaking_tick = 0.0
        # Frame ids of the bot-speaking frames we emit (the base class's are dropped).
        self._own_frames: set[int] = set()
        # Heard-only context.
        self._held: deque[_Held] = deque()
        self._placed: dict[int, _Held] = {}  # TTSTextFrames placed by write_transport_frame, not yet pushed
        self._swallow: set[int] = set()  # placed frames a barge-in already resolved
        self._text_start_ms = 0.0  # where the next text's audio starts
        # Word-level text (TTS services with word timestamps): per TTS context, where its audio
        # starts on our timeline and the pipeline-clock time (ns) its word times count from.
        self._ctx_start: dict[str, tuple[int, float]] = {}
        self._ctx_clock: dict[str, int] = {}
        self._words_last_pts = 0
        self._last_word: dict[str, _Held] = {}
        self._release_lock = asyncio.Lock()
        self._held_empty = asyncio.Event()
        self._held_empty.set()
        self._heard_turn: list[str] = []
        # Barge-in: while set, and for chunks made before it ended, old audio is not written.
        self._interrupting = False
        self._audio_epoch_id = 0
        self._closing = False

    @property
    def producer(self) -> moq_audio.AudioProducer | None:
        """The bot's producer once started (None before, or when audio output is disabled)."""
        return self._producer

    @property
    def _gating(self) -> bool:
        return self._moq_params.heard_only_context and self._producer is not None and not self._closing

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self, frame: StartFrame) -> None:
        """Publish the bot broadcast (audio track + data tracks) and start watching playout."""
        await super().start(frame)
        if self._session is None:
            self._session = await self._holder.acquire()
            self._publish(self._session)
            await self._owner.emit("on_connected")
        await self.set_transport_ready(frame)

    def _publish(self, session: moq_audio.Session) -> None:
        p = self._moq_params
        tracks = [t for t in (p.transcript_track, p.messages_track) if t]
        if not p.audio_out_enabled:
            if tracks:
                self._data = session.publish_data(p.bot_broadcast, tracks)
                writers = dict(zip(tracks, self._data.tracks, strict=True))
                self._transcript = writers.get(p.transcript_track or "")
                self._messages = writers.get(p.messages_track or "")
            return
        producer = session.publish_audio(
            p.bot_broadcast,
            sample_rate=self.sample_rate,
            channels=p.audio_out_channels,
            frame_ms=p.audio_out_frame_ms,
            bitrate=p.audio_out_bitrate,
            lead_ms=p.lead_ms,
            capacity_ms=p.capacity_ms,
            mark_timeout_ms=p.mark_timeout_ms,
        )
        if p.transcript_track:
            self._transcript = producer.data_track(p.transcript_track)
        if p.messages_track:
            self._messages = producer.data_track(p.messages_track)
        self._producer = producer
        self._generation = producer.generation
        # Subscribe to mark resolutions before the first mark can be placed.
        events = producer.marks()
        self._playout_task = self.create_task(self._watch_playout(events), "moq_audio_playout")
        logger.info(f"{self}: publishing {p.bot_broadcast!r} at {self.sample_rate} Hz, lead {p.lead_ms:.0f} ms")

    async def stop(self, frame: EndFrame) -> None:
        """Write what is left, let the producer play it out and end the track cleanly."""
        await super().stop(frame)
        producer = self._producer
        if producer is not None and not producer.closed:
            await producer.finish()
            # What the listener hears of the end still releases held text, up to the mark timeout.
            try:
                await asyncio.wait_for(self._held_empty.wait(), self._moq_params.mark_timeout_ms / 1000.0)
            except asyncio.TimeoutError:
                logger.debug(f"{self}: no playout of the last text before the end; passing it on")
        self._closing = True
        await self._release_heard(force=True)
        await self._shutdown()

    async def cancel(self, frame: CancelFrame) -> None:
        """Drop everything and end the track at once."""
        self._closing = True
        if self._producer is not None:
            self._producer.cancel()
        await super().cancel(frame)
        await self._shutdown()

    async def cleanup(self) -> None:
        """Release everything (idempotent)."""
        await _typed(super().cleanup)()
        self._closing = True
        if self._producer is not None:
            self._producer.cancel()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._playout_task is not None:
            task, self._playout_task = self._playout_task, None
            await self.cancel_task(task)
        if self._data is not None:
            self._data.close()
            self._data = None
        if self._session is not None:
            self._session = None
            await self._holder.release()

    # ---- writing --------------------------------------------------------------------------

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Queue one chunk on the producer (paced there) and mark its end on the timeline.

        Returns False (and writes nothing) for a chunk made before the last barge-in, or when
        the chunk's channel count does not match the producer's.
        """
        producer = self._producer
        if producer is None or producer.closed:
            return False
        if frame.interruptible and (self._interrupting or frame.id < self._audio_epoch_id):
            return False  # old audio that was in Pipecat's pipeline when the user barged in
        if frame.num_channels != producer.channels:
            logger.warning(f"{self}: {frame.num_channels}-channel audio for a {producer.channels}-channel track")
            return False
        if not self._speaking and self._run_start_ms is None:
            self._run_start_ms = producer.written_ms
        generation = producer.generation
        if not await producer.write(frame.audio) or producer.generation != generation:
            return False  # a barge-in flushed it while it waited for room in the queue
        producer.mark(f"{MARK_PREFIX}{next(self._mark_ids)}")
        self._written_ms = producer.written_ms
        return True

    async def write_transport_frame(self, frame: Frame) -> None:
        """Frames that wait in Pipecat's audio queue reach us here in playback order: place
        each ``TTSTextFrame`` at the end of the audio written before it."""
        producer = self._producer
        if producer is None:
            return
        if isinstance(frame, TTSStartedFrame):
            self._text_start_ms = producer.written_ms
            if frame.context_id:
                _remember(self._ctx_start, frame.context_id, (producer.generation, producer.written_ms))
        elif isinstance(frame, TTSTextFrame) and self._gating and frame.append_to_context:
            end = producer.written_ms
            self._placed[frame.id] = _Held(
                frame, producer.generation, end_ms=end, start_ms=min(self._text_start_ms, end)
            )
            self._text_start_ms = end

    async def send_message(self, frame: OutputTransportMessageFrame | OutputTransportMessageUrgentFrame) -> None:
        """Write ``frame.message`` as one JSON document to the ``messages_track``."""
        if self._messages is None:
            return
        try:
            self._messages.write(json.dumps(frame.message, default=str))
        except moq_audio.MoqAudioError as e:
            logger.warning(f"{self}: sending a message failed: {e}")

    # ---- frames ---------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """An ``InterruptionFrame`` flushes the producer before the base class handles it."""
        if isinstance(frame, (TTSAudioRawFrame, TTSTextFrame)) and direction == FrameDirection.DOWNSTREAM:
            self._note_word_clock(frame)
        if not isinstance(frame, InterruptionFrame) or self._producer is None:
            await super().process_frame(frame, direction)
            return
        self._interrupting = True
        try:
            await self._barge_in()
            await super().process_frame(frame, direction)
        finally:
            # Chunks Pipecat made before its queue was reset are old audio, even if the audio task
            # still holds one; everything made from here on is new.
            self._audio_epoch_id = obj_id()
            self._interrupting = False
        if self._speaking:
            self._speaking = False
            await self._emit_bot(BotStoppedSpeakingFrame)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        """Drop the base class's write-time bot-speaking frames and hold downstream frames
        behind text whose audio the listener has not played yet."""
        if isinstance(frame, _BOT_SPEAKING) and self._producer is not None:
            if frame.id not in self._own_frames:
                return
            self._own_frames.discard(frame.id)
        elif direction == FrameDirection.DOWNSTREAM and self._hold(frame):
            await self._release_heard()
            return
        await super().push_frame(frame, direction)

    def _hold(self, frame: Frame) -> bool:
        """Whether ``frame`` waits in the held queue (True) or goes on now (False)."""
        if frame.id in self._swallow:
            self._swallow.discard(frame.id)
            return True  # its audio was resolved by a barge-in; it was passed on or dropped then
        if not self._gating or isinstance(frame, (SystemFrame, OutputAudioRawFrame, EndFrame)):
            return False
        placed = self._placed.pop(frame.id, None)
        if placed is None and isinstance(frame, TTSTextFrame) and frame.pts and frame.append_to_context:
            start = self._ctx_start.get(frame.context_id or "")
            if start is not None and start[0] != self._generation:
                return True  # a word whose audio a barge-in flushed: dropped
            placed = self._place_word(frame)
        if placed is not None:
            self._held.append(placed)
        elif self._held:
            self._held.append(_Held(frame, self._generation))
        else:
            return False
        self._held_empty.clear()
        return True

    # ---- playout --------------------------------------------------------------------------

    async def _watch_playout(self, events: MarkEvents) -> None:
        async for ev in events:
            if not ev.id.startswith(MARK_PREFIX) or ev.generation != self._generation or ev.state == "flushed":
                continue
            # "unknown": no listener reported within mark_timeout_ms; count it as played.
            self._played_ms = max(self._played_ms, ev.position_ms)
            await self._on_playout()

    async def _on_playout(self) -> None:
        if not self._speaking and self._run_start_ms is not None and self._played_ms > self._run_start_ms + EPS_MS:
            self._run_start_ms = None
            self._speaking = True
            self._speaking_tick = time.monotonic()
            await self._emit_bot(BotStartedSpeakingFrame)
        await self._release_heard()
        if not self._speaking:
            return
        if self._played_ms >= self._written_ms - EPS_MS:
            self._speaking = False
            self._heard_turn = []
            await self._emit_bot(BotStoppedSpeakingFrame)
        elif time.monotonic() - self._speaking_tick >= BOT_SPEAKING_PERIOD_S:
            self._speaking_tick = time.monotonic()
            await self._emit_bot(BotSpeakingFrame)

    async def _emit_bot(self, cls: type[Frame]) -> None:
        """Push a bot-speaking frame both ways, as the base class does."""
        down, up = cls(), cls()
        down.broadcast_sibling_id, up.broadcast_sibling_id = up.id, down.id
        self._own_frames.update((down.id, up.id))
        logger.debug(f"{self}: {cls.__name__} (listener at {self._played_ms:.0f} ms of generation {self._generation})")
        await self.push_frame(down)
        await self.push_frame(up, FrameDirection.UPSTREAM)

    async def _release_heard(self, *, force: bool = False) -> None:
        """Pass on held frames, in order, up to the first text the listener has not played."""
        async with self._release_lock:
            while self._held:
                h = self._held[0]
                if not force and h.is_text and h.heard_at_ms > self._played_ms + EPS_MS:
                    break
                self._held.popleft()
                await self._deliver(h.frame)
            self._held_empty.set()

    async def _deliver(self, frame: Frame) -> None:
        await super().push_frame(frame, FrameDirection.DOWNSTREAM)
        if isinstance(frame, TTSTextFrame):
            self._heard_turn.append(frame.text.strip())
            self._publish_transcript(self._generation, " ".join(t for t in self._heard_turn if t))
            await self._owner.emit("on_bot_heard", frame.text)

    def _publish_transcript(self, generation: int, text: str) -> None:
        if self._transcript is None:
            return
        try:
            self._transcript.write(json.dumps({"generation": generation, "text": text}))
        except moq_audio.MoqAudioError as e:
            logger.debug(f"{self}: transcript not sent: {e}")

    # ---- word-level text -------------------------------------------------------------------

    def _note_word_clock(self, frame: TTSAudioRawFrame | TTSTextFrame) -> None:
        """Mirror the TTS's word clock: word presentation times count from the pipeline-clock
        time the context's first audio was pushed (or from the last word before it, if later),
        which is when its first frame reaches us, a queue hop later."""
        ctx = frame.context_id
        if ctx and ctx not in self._ctx_clock:
            _remember(self._ctx_clock, ctx, max(self.get_clock().get_time(), self._words_last_pts))
        if isinstance(frame, TTSTextFrame) and frame.pts:
            self._words_last_pts = max(self._words_last_pts, frame.pts)

    def _place_word(self, frame: TTSTextFrame) -> _Held | None:
        """The word frame placed where its audio starts on our timeline, or None when its
        context's start is not known (a TTS that pushes no ``TTSStartedFrame``)."""
        ctx = frame.context_id
        start = self._ctx_start.get(ctx) if ctx else None
        clock = self._ctx_clock.get(ctx) if ctx else None
        if ctx is None or start is None or clock is None or frame.pts is None:
            return None
        start_ms = start[1] + max(0.0, (frame.pts - clock) / 1e6)
        previous = self._last_word.get(ctx)
        if previous is not None and previous.end_ms is None:
            previous.end_ms = max(previous.start_ms, start_ms)
        held = _Held(frame, self._generation, start_ms=start_ms, word=True)
        _remember(self._last_word, ctx, held)
        return held

    # ---- barge-in -------------------------------------------------------------------------

    async def _barge_in(self) -> None:
        producer = self._producer
        assert producer is not None
        unheard = self._speaking or self._run_start_ms is not None or self._written_ms > self._played_ms + EPS_MS
        report = producer.flush() if unheard or producer.queued_ms > 0 else None
        heard_ms = report.heard_ms if report is not None else self._played_ms
        if report is not None:
            logger.debug(
                f"{self}: barge-in flushed generation {report.generation - 1}: listener heard {heard_ms:.0f} ms"
                f"{' (estimate)' if report.heard_estimated else ''}, dropped {report.dropped_ms:.0f} ms"
            )
        async with self._release_lock:
            heard = self._resolve_held(heard_ms)
            for f in heard:
                await super().push_frame(f, FrameDirection.DOWNSTREAM)
            self._held_empty.set()
        heard_text = [f.text.strip() for f in heard if isinstance(f, TTSTextFrame)]
        for text in heard_text:
            await self._owner.emit("on_bot_heard", text)
        # The TTS restarts its word clock after an interruption (WordTimestampTracker).
        self._words_last_pts = 0
        self._last_word.clear()
        # The new generation starts at 0 ms.
        self._generation = producer.generation
        self._played_ms = self._written_ms = self._text_start_ms = 0.0
        self._run_start_ms = None
        if report is not None:
            said = " ".join(t for t in [*self._heard_turn, *heard_text] if t)
            self._publish_transcript(self._generation, f"{said} …" if said else "…")
            self._heard_turn = []
            await self._sync_next()
            await self._owner.emit("on_bot_interrupted", report)

    def _resolve_held(self, heard_ms: float) -> list[Frame]:
        """At a barge-in: the held frames the listener heard (a sentence cut short becomes its
        heard prefix); the rest is dropped, except frames that may not be interrupted."""
        items = list(self._held) + list(self._placed.values())
        self._held.clear()
        self._swallow.update(self._placed)
        self._placed.clear()
        out: list[Frame] = []
        cut = False
        for h in items:
            if not h.is_text:
                if not cut or not h.frame.interruptible:
                    out.append(h.frame)
                continue
            if not cut and h.generation == self._generation and h.heard_at_ms <= heard_ms + EPS_MS:
                out.append(h.frame)
                continue
            if not cut and not h.word and h.generation == self._generation and h.start_ms < heard_ms:
                part = self._heard_part(h, heard_ms)
                if part is not None:
                    out.append(part)
            cut = True
        return out

    def _heard_part(self, h: _Held, heard_ms: float) -> TTSTextFrame | None:
        """The whole words of ``h`` heard by ``heard_ms``, at the sentence's own speaking rate."""
        frame = h.frame
        assert isinstance(frame, TTSTextFrame) and h.end_ms is not None
        duration_ms = h.end_ms - h.start_ms
        if not self._moq_params.truncate_interrupted_text or duration_ms <= 0 or not frame.text.strip():
            return None
        chars_per_second = len(frame.text) / (duration_ms / 1000.0)
        text = moq_audio.truncate_text(frame.text, heard_ms - h.start_ms, chars_per_second=chars_per_second)
        if not text:
            return None
        part = copy.copy(frame)
        part.text = text
        part.raw_text = None
        return part

    async def _sync_next(self) -> None:
        """Wait until the next processor has processed what we pushed (bounded): otherwise the
        ``InterruptionFrame``, a system frame that overtakes queued frames, would drop the heard
        text from its queue before the assistant aggregator commits it."""
        nxt = self.next
        if nxt is None:
            return
        done = asyncio.Event()

        async def processed(_processor: FrameProcessor, _frame: Frame, _direction: FrameDirection) -> None:
            done.set()

        sync = _SyncFrame()
        sync.interruptible = False
        await nxt.queue_frame(sync, FrameDirection.DOWNSTREAM, processed)
        try:
            await asyncio.wait_for(done.wait(), self._moq_params.interruption_sync_timeout)
        except asyncio.TimeoutError:
            logger.warning(f"{self}: {nxt} did not take the heard text within the sync timeout")
