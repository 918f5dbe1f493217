"""Pipecat's own MoQ transport (upstream moq-rs) vs moq_audio.pipecat: one scripted conversation,
the same buffering listener, in one run.

Both bots are the same Pipecat 1.14 pipeline (user aggregator, a scripted LLM, espeak-ng TTS at
24 kHz, the assistant aggregator); only the transport differs:

- **pipecat-moq**: ``pipecat.transports.moq.MOQTransport`` in serve mode (its own moq-rs server),
  as its docs set it up. It writes TTS audio up to 25 s ahead of real time with future
  timestamps (``audio_out_max_buffer_ms``) and has no flush.
- **moq-audio**: ``moq_audio.pipecat.MoqAudioTransport`` on the embedded ``moq_audio.Server``.

The conversation: (1) the bot reads a four-sentence reply (~9 s) to its end; (2) it reads
another, and 3 s into what the listener rendered of it the user barges in (a
``VADUserStartedSpeakingFrame`` then ``VADUserStoppedSpeakingFrame`` pushed into the pipeline;
Pipecat's user aggregator turns it into an interruption); (3) the bot answers the interruption.

The listener (one method for both, :class:`Listener`): bench/browser_player.py's
BrowserLikePlayer, i.e. a browser AudioWorklet fed by WebCodecs: it buffers everything it
receives, never drops, plays in timestamp order at real time from a 40 ms start buffer, at
24 kHz. On top, each transport's listener does what that transport's browser client does:

- pipecat-moq, ``stock``: nothing more (``@moq/watch`` playing the bot's track).
- pipecat-moq, ``rtvi-reset``: drops its buffer when the RTVI ``user-started-speaking`` message
  arrives on the bot's transcript track: what Pipecat's MoQ client does on an interruption
  (``MOQTransportClient.publish_audio``: "Interruptions are flushed on the browser side
  (reset() on user-started-speaking)"). Both Pipecat listeners listen to the same conversation.
- moq-audio: moq-audio's listener protocol, as the page implements it: a frame of a newer
  generation drops older buffered audio (the page also fades 5 ms, not modelled), and a playout
  report ``{"generation", "ts", "playing", "renderTime"}`` goes out every 50 ms on
  ``bot/listeners/<id>`` (what drives the transport's marks).

Recorded per trial (render-clock ms of the listener; negative = before):

- ``stale_ms``: audio of the interrupted reply the listener renders after the barge-in (the
  moment the scripted user's VADUserStartedSpeakingFrame is queued); this includes
  ``interruption_latency_ms``, Pipecat's own time to carry the interruption from the user
  aggregator to the output transport (the same pipeline for both, but CPU-bound).
- ``stale_after_interruption_ms``: the same from the moment the ``InterruptionFrame`` reached the
  output transport: what the transport itself lets through.
- ``bot_stopped_error_ms`` (turns 1 and 3): when ``BotStoppedSpeakingFrame`` reached the end of
  the pipeline minus when the listener rendered the reply's last sample.
- ``bot_started_error_ms`` (turn 1): ``BotStartedSpeakingFrame`` minus the first rendered sample.
- ``context_unheard_words``: words of the interrupted turn's assistant message (as the assistant
  aggregator committed it) beyond what the listener rendered of the reply in total; and
  ``context_unheard_sentences``: its sentences whose audio the listener never started.
  What was heard of a sentence cut short is estimated with moq_audio.truncate_text at that
  sentence's own speaking rate (its espeak-ng duration).
- ``answer_first_sample_ms``: from the barge-in to the answer's first rendered sample.

Usage: ``python bench/pipecat_compare.py [--quick] [--trials N] [--out FILE]``; progress on
stderr, the JSON to ``--out`` (default bench/pipecat_compare.json). Needs
``pip install "pipecat-ai[silero,moq]==1.14.0"`` and espeak-ng.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import platform
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import moq_audio
from _common import log, summary
from browser_player import BrowserLikePlayer
from moq_audio.speech import speak

RATE = 24_000
REPLY_A = [
    "Thanks for calling the parcel service.",
    "Your order left the depot on Monday morning and is on a van today.",
    "The driver expects to reach your street a little after lunch time.",
    "You can follow the van on the map in the email we sent you.",
]
REPLY_B = [
    "Here is how to change the delivery address.",
    "Open the email we sent you and press the button that says manage delivery.",
    "Type the new address and choose a day that suits you.",
    "The change is free until the parcel leaves the depot.",
]
INTERRUPT_AFTER_MS = 3_000.0
FEEDBACK_PERIOD_S = 0.05  # the page's and the Player's playout report period
USER_TURN_S = 0.3  # how long the scripted user "speaks" (VAD started -> stopped)
#: The answer is over once the listener has rendered nothing for this long (s): longer than any
#: gap inside one reply (its sentences come from one TTS context, served from memory).
ANSWER_QUIET_S = 1.0


def sentence_ms(sentences: list[str]) -> list[float]:
    """espeak-ng duration of each sentence, ms."""
    out = []
    for s in sentences:
        pcm, rate = speak(s)
        out.append(len(pcm) * 1000.0 / rate)
    return out


# ---- the listener ------------------------------------------------------------------------


@dataclass
class Rendered:
    start: int  # render-clock frame
    frames: int
    generation: int
    epoch: int  # the driver's epoch when the audio arrived


class Listener(BrowserLikePlayer):
    """BrowserLikePlayer plus generation cut and playout feedback (moq-audio) or an external
    reset (Pipecat's RTVI), with per-stretch bookkeeping of what was rendered."""

    def __init__(self, name: str, *, generations: bool = False) -> None:
        super().__init__(RATE, target_ms=40.0)
        self.name = name
        self.generations = generations
        self.epoch = 0
        self.generation = 0
        self.stretches: list[Rendered] = []
        self.rendered_ts_us = 0  # media timestamp just past the last rendered sample
        self._cur_meta: tuple[int, int, int] = (0, 0, 0)  # (timestamp_us, generation, epoch) of _cur
        self.resets: list[int] = []  # render frames at which the buffer was dropped

    def push_frame(self, timestamp_us: int, pcm: np.ndarray, generation: int = 0) -> None:
        if self.generations and generation > self.generation:
            self.generation = generation
            self.drop_buffer()
        elif self.generations and generation < self.generation:
            return
        if len(pcm) == 0:
            return  # a flush marker: it only starts the new generation
        if self.first_arrival_frame is None:
            self.first_arrival_frame = self.rendered
        heapq.heappush(self._heap, (timestamp_us, next(self._seq), pcm, generation, self.epoch))
        self.buffered += len(pcm)
        self.received += len(pcm)

    def drop_buffer(self) -> None:
        self._heap.clear()
        self._cur = None
        self.buffered = 0
        self.resets.append(self.rendered)

    def _take(self, n: int) -> int:
        got = 0
        while got < n:
            if self._cur is None or self._cur_off >= len(self._cur):
                if not self._heap:
                    break
                ts, _, self._cur, gen, epoch = heapq.heappop(self._heap)
                self._cur_meta = (ts, gen, epoch)
                self._cur_off = 0
            k = min(n - got, len(self._cur) - self._cur_off)
            ts, gen, epoch = self._cur_meta
            if k > 0:
                self.stretches.append(Rendered(self.rendered + got, k, gen, epoch))
            self._cur_off += k
            got += k
            self.rendered_ts_us = ts + self._cur_off * 1_000_000 // RATE
        self.buffered -= got
        return got

    def audio_between(self, lo: int, hi: int | None = None, pred: Callable[[Rendered], bool] = lambda r: True) -> int:
        """Audio frames rendered in [lo, hi) of the render clock, of stretches ``pred`` accepts."""
        total = 0
        for r in self.stretches:
            end = r.start + r.frames if hi is None else min(r.start + r.frames, hi)
            if pred(r):
                total += max(0, end - max(r.start, lo))
        return total

    def last_audio_end(self, pred: Callable[[Rendered], bool] = lambda r: True) -> int | None:
        ends = [r.start + r.frames for r in self.stretches if pred(r)]
        return max(ends) if ends else None

    def frame_at(self, t: float) -> int:
        """The render-clock frame rendered at ``time.perf_counter()`` ``t`` (one 10 ms tick)."""
        return int((t - self._epoch) * RATE)

    def first_audio_start(self, after: int) -> int | None:
        starts = [r.start for r in self.stretches if r.start >= after]
        return min(starts) if starts else None

    async def wait_idle_after(self, audio_frames: int, timeout: float = 60.0) -> None:
        """Until ``audio_frames`` of audio were rendered and the buffer ran dry."""
        deadline = time.monotonic() + timeout
        while self.audio_rendered < audio_frames or self.buffered > 0 or self._playing:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: rendered {self.audio_rendered} of {audio_frames} frames")
            await asyncio.sleep(0.005)

    async def wait_quiet(self, quiet_s: float, timeout: float) -> None:
        """Until the buffer is empty and no audio was rendered for ``quiet_s`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = self.audio_rendered, time.monotonic()
        while self.buffered > 0 or time.monotonic() - since < quiet_s:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: still playing after {timeout} s")
            if self.audio_rendered != last:
                last, since = self.audio_rendered, time.monotonic()
            await asyncio.sleep(0.01)

    def start_tasks(self, *coros: Any) -> None:
        self._epoch = time.perf_counter()
        self._tasks = [asyncio.ensure_future(c) for c in coros] + [asyncio.ensure_future(self._render())]


async def feed_moq_audio(listener: Listener, consumer: moq_audio.AudioConsumer) -> None:
    async for frame in consumer:
        pcm = frame.pcm[:, 0].copy()
        listener.push_frame(frame.timestamp_us, pcm, frame.generation)


async def report_playout(listener: Listener, writer: moq_audio.DataWriter) -> None:
    """moq-audio playout feedback, as the page and the Player send it."""
    while True:
        await asyncio.sleep(FEEDBACK_PERIOD_S)
        if listener.audio_rendered == 0:
            continue
        writer.write(
            json.dumps(
                {
                    "generation": listener._cur_meta[1],
                    "ts": listener.rendered_ts_us,
                    "playing": listener._playing,
                    "renderTime": time.time() * 1000.0,
                }
            )
        )


async def feed_upstream(listener: Listener, consumer: Any) -> None:
    async for frame in consumer:
        listener.push_frame(frame.timestamp_us, np.frombuffer(frame.data, dtype=np.float32).copy())


async def reset_on_rtvi(listener: Listener, stream: Any) -> None:
    async for record in stream:
        if isinstance(record, dict) and record.get("type") == "user-started-speaking":
            listener.drop_buffer()


# ---- the pipeline ------------------------------------------------------------------------

#: espeak-ng speech by text, shared by all trials (see cached_tts).
_SPEECH: dict[str, tuple[Any, int, list[tuple[str, float]]]] = {}


def cached_tts() -> Any:
    """EspeakTTSService whose speech is synthesized once per text and then served from memory:
    the TTS delivers a sentence at once, like a streaming cloud TTS ahead of real time, however
    loaded the machine is (espeak-ng itself took 0.1 to 2.5 s per sentence here under load)."""
    from moq_audio.pipecat import EspeakTTSService

    class CachedEspeakTTS(EspeakTTSService):
        async def synthesize(self, text: str) -> tuple[Any, int, list[tuple[str, float]]]:
            if text not in _SPEECH:
                _SPEECH[text] = await super().synthesize(text)
            return _SPEECH[text]

    return CachedEspeakTTS()


def make_recorder(marks: dict[str, list[Any]], clock: Listener, kind: str) -> Any:
    """A pass-through processor stamping frames with the wall clock (``time.perf_counter()``):
    ``kind`` "text": ``TTSTextFrame``s (with the audio ``clock`` had received), "speaking":
    bot-speaking frames, "interruption": ``InterruptionFrame``s."""
    from pipecat.frames.frames import (
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        Frame,
        InterruptionFrame,
        TTSTextFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    class Recorder(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if direction == FrameDirection.DOWNSTREAM:
                now = time.perf_counter()
                if kind == "text" and isinstance(frame, TTSTextFrame):
                    marks["text"].append((now, clock.received, frame.text))
                elif kind == "speaking" and isinstance(frame, BotStartedSpeakingFrame):
                    marks["started"].append(now)
                elif kind == "speaking" and isinstance(frame, BotStoppedSpeakingFrame):
                    marks["stopped"].append(now)
                elif kind == "interruption" and isinstance(frame, InterruptionFrame):
                    marks["interruption"].append(now)
            await self.push_frame(frame, direction)

    return Recorder()


@dataclass
class Conversation:
    kind: str
    task: Any
    context: Any
    listeners: list[Listener]
    marks: dict[str, list[Any]] = field(
        default_factory=lambda: {"started": [], "stopped": [], "text": [], "interruption": []}
    )
    turns: list[Any] = field(default_factory=list)


def build(kind: str, transport: Any, listeners: list[Listener]) -> Conversation:
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker

    from moq_audio.pipecat.demo import build_bot

    bot = build_bot(transport, stories=[" ".join(REPLY_A), " ".join(REPLY_B)], tts=cached_tts())
    conv = Conversation(kind, None, bot.context, listeners)
    # Text frames are recorded on their way into the assistant aggregator (which consumes them),
    # bot-speaking frames at the end of the pipeline.
    clock = listeners[0]
    procs = [
        bot.input,
        bot.user,
        bot.llm,
        bot.tts,
        make_recorder(conv.marks, clock, "interruption"),  # when the interruption reaches the transport
        bot.output,
        make_recorder(conv.marks, clock, "text"),
        bot.assistant,
        make_recorder(conv.marks, clock, "speaking"),
    ]
    assistant = bot.assistant

    async def on_turn(_aggregator: Any, message: Any) -> None:
        conv.turns.append(message)

    assistant.add_event_handler("on_assistant_turn_stopped", on_turn)
    conv.task = PipelineWorker(
        Pipeline(procs),
        params=PipelineParams(audio_in_sample_rate=16_000, audio_out_sample_rate=RATE),
        idle_timeout_secs=None,
    )
    return conv


async def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def converse(conv: Conversation) -> dict[str, Any]:
    """Drive the three turns and measure against each of ``conv.listeners``."""
    from pipecat.frames.frames import LLMRunFrame, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame

    ref = conv.listeners[0]  # paces the conversation; the others hear the same stream
    a_ms, b_ms = sentence_ms(REPLY_A), sentence_ms(REPLY_B)
    per_ms = RATE / 1000.0
    marks = conv.marks
    # Turn 1: to its end.
    t1 = time.perf_counter()
    await conv.task.queue_frames([LLMRunFrame()])
    # Most of the reply rendered (what a transport writes differs by resampling and padding),
    # then the buffer ran dry: turn 1 is over.
    await ref.wait_idle_after(int(0.8 * sum(a_ms) * per_ms))
    await wait_for(lambda: any(t > t1 for t in marks["stopped"]), 3.0, "turn 1 BotStoppedSpeaking")
    started1 = next(t for t in marks["started"] if t > t1)
    stopped1 = next(t for t in marks["stopped"] if t > started1)
    # Turn 2: barge in 3 s into what the listener rendered of it.
    for lis in conv.listeners:
        lis.epoch = 2
    t2 = time.perf_counter()
    await conv.task.queue_frames([LLMRunFrame()])
    await ref.wait_audio_ms(ref.audio_rendered / per_ms + INTERRUPT_AFTER_MS, timeout=30)
    t_cut = time.perf_counter()
    at_cut = {lis.name: (lis.received, lis.audio_rendered, lis.generation) for lis in conv.listeners}
    for lis in conv.listeners:
        lis.epoch = 3
    await conv.task.queue_frames([VADUserStartedSpeakingFrame()])
    await asyncio.sleep(USER_TURN_S)  # the scripted user talks for this long
    await conv.task.queue_frames([VADUserStoppedSpeakingFrame()])

    def is_turn2(lis: Listener, r: Rendered) -> bool:
        if lis.generations:  # by generation: old audio arriving after the cut is still turn 2
            return r.generation == at_cut[lis.name][2] and r.start >= lis.frame_at(t2)
        return r.epoch == 2

    def is_turn3(lis: Listener, r: Rendered) -> bool:
        return r.generation > at_cut[lis.name][2] if lis.generations else r.epoch == 3

    # Turn 3: the answer, to its end at every listener.
    await wait_for(lambda: len(conv.turns) >= 2, 30.0, "the interrupted turn's commit")
    for lis in conv.listeners:

        def answered(lis: Listener = lis) -> bool:
            return any(is_turn3(lis, r) for r in lis.stretches)

        await wait_for(answered, 30.0, "the answer")
        await lis.wait_quiet(ANSWER_QUIET_S, timeout=60.0)
    await wait_for(lambda: any(t > t_cut for t in marks["started"]), 3.0, "the answer's BotStartedSpeaking")
    t_interrupted = next(t for t in marks["interruption"] if t > t_cut)
    started3 = next(t for t in marks["started"] if t > t_cut)
    await wait_for(lambda: any(t > started3 for t in marks["stopped"]), 3.0, "the answer's BotStoppedSpeaking")
    stopped3 = next(t for t in marks["stopped"] if t > started3)
    await wait_for(lambda: len(conv.turns) >= 3, 10.0, "the answer's commit")

    interrupted_turn = conv.turns[1]
    out: dict[str, Any] = {
        "interrupted_turn": {
            "context": interrupted_turn.content,
            "interrupted": interrupted_turn.interrupted,
            "reply_ms": sum(b_ms),
        },
        "reply_a_ms": sum(a_ms),
        # When each TTSTextFrame went into the assistant aggregator: (s after turn 1 was asked
        # for, ms of audio the first listener had received by then, text).
        "text_frames": [(t - t1, rcv / per_ms, text) for t, rcv, text in marks["text"]],
        "listeners": {},
    }
    for lis in conv.listeners:
        received, rendered, _gen = at_cut[lis.name]
        cut = lis.frame_at(t_cut)

        def turn1(r: Rendered, lis: Listener = lis) -> bool:
            return r.epoch == 0 and r.start >= lis.frame_at(t1)

        def turn2(r: Rendered, lis: Listener = lis) -> bool:
            return is_turn2(lis, r)

        def turn3(r: Rendered, lis: Listener = lis) -> bool:
            return is_turn3(lis, r)

        t1_first = min(r.start for r in lis.stretches if turn1(r))
        t1_last = lis.last_audio_end(turn1)
        t3_first = min(r.start for r in lis.stretches if turn3(r))
        t3_last = lis.last_audio_end(turn3)
        assert t1_last is not None and t3_last is not None
        heard = lis.audio_between(lis.frame_at(t2), pred=turn2) / per_ms
        heard_before = lis.audio_between(lis.frame_at(t2), cut, pred=turn2) / per_ms
        words, sentences = context_unheard(interrupted_turn.content, heard, b_ms)
        words_before, sentences_before = context_unheard(interrupted_turn.content, heard_before, b_ms)
        out["listeners"][lis.name] = {
            "turn1_bot_started_error_ms": (lis.frame_at(started1) - t1_first) / per_ms,
            "turn1_bot_stopped_error_ms": (lis.frame_at(stopped1) - t1_last) / per_ms,
            "turn3_bot_stopped_error_ms": (lis.frame_at(stopped3) - t3_last) / per_ms,
            "answer_first_sample_ms": (t3_first - cut) / per_ms,
            "stale_ms": lis.audio_between(cut, pred=turn2) / per_ms,
            "stale_after_interruption_ms": lis.audio_between(lis.frame_at(t_interrupted), pred=turn2) / per_ms,
            "interruption_latency_ms": (t_interrupted - t_cut) * 1000.0,
            "heard_ms": heard,
            "heard_before_barge_in_ms": heard_before,
            "received_ahead_at_barge_in_ms": (received - rendered) / per_ms,
            "context_unheard_words": words,
            "context_unheard_sentences": sentences,
            "context_words_not_heard_before_barge_in": words_before,
            "context_sentences_not_started_before_barge_in": sentences_before,
            "buffer_resets": len(lis.resets),
        }
    return out


def context_unheard(context: str, heard_ms: float, durations: list[float]) -> tuple[int, int]:
    """(words of ``context`` beyond what ``heard_ms`` of REPLY_B covers, sentences of the context
    whose audio was never started)."""
    heard_words: list[str] = []
    t = 0.0
    for sentence, dur in zip(REPLY_B, durations, strict=True):
        if t + dur <= heard_ms:
            heard_words += sentence.split()
        elif t < heard_ms:
            cps = len(sentence) / (dur / 1000.0)
            heard_words += moq_audio.truncate_text(sentence, heard_ms - t, chars_per_second=cps).split()
        t += dur
    words = context.split()
    common = 0
    for w, h in zip(words, heard_words, strict=False):
        if w != h:
            break
        common += 1
    never_started = 0
    t = 0.0
    for sentence, dur in zip(REPLY_B, durations, strict=True):
        if t >= heard_ms and sentence in context:
            never_started += 1
        t += dur
    return len(words) - common, never_started


# ---- the two transports --------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running(conv: Conversation) -> AsyncIterator[None]:
    from pipecat.workers.runner import WorkerRunner

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(conv.task)
    running_task = asyncio.ensure_future(runner.run())
    try:
        yield
    finally:
        await conv.task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running_task, 10)


async def trial_moq_audio() -> dict[str, Any]:
    from moq_audio.pipecat import MoqAudioParams, MoqAudioTransport

    async with (
        moq_audio.Server("127.0.0.1:0") as server,
        moq_audio.connect(server.url) as bot_session,
        moq_audio.connect(server.url) as ear_session,
    ):
        transport = MoqAudioTransport(MoqAudioParams(audio_out_sample_rate=RATE), session=bot_session)
        listener = Listener("moq-audio", generations=True)
        conv = build("moq-audio", transport, [listener])
        async with running(conv):
            consumer = await ear_session.subscribe_audio("bot", sample_rate=RATE, timeout=20)
            feedback = ear_session.publish_data("bot/listeners/bench-listener", ["playout.json"])
            listener.start_tasks(feed_moq_audio(listener, consumer), report_playout(listener, feedback.tracks[0]))
            try:
                return await converse(conv)
            finally:
                await listener.stop()
                consumer.close()
                feedback.close()


async def trial_pipecat_moq() -> dict[str, Any]:
    import moq
    from pipecat.transports.moq.transport import MOQParams, MOQTransport

    port = free_udp_port()
    params = MOQParams(
        audio_in_enabled=True,
        audio_out_enabled=True,
        audio_out_sample_rate=RATE,
        serve=True,
        bind=f"127.0.0.1:{port}",
        connection_timeout=600.0,
    )
    transport = MOQTransport(params)
    stock, reset = Listener("pipecat-moq stock"), Listener("pipecat-moq rtvi-reset")
    conv = build("pipecat-moq", transport, [stock, reset])
    bound = asyncio.Event()

    async def on_connected(_t: Any) -> None:
        bound.set()

    transport.add_event_handler("on_connected", on_connected)
    async with running(conv), contextlib.AsyncExitStack() as stack:
        await asyncio.wait_for(bound.wait(), 20)
        path = f"{params.namespace}/{params.participant_id}"
        for lis in (stock, reset):
            session = await stack.enter_async_context(
                moq.connect(
                    f"https://127.0.0.1:{port}/", tls_fingerprints=transport.cert_fingerprints, websocket_enabled=False
                )
            )
            b = await asyncio.wait_for(session.announced_broadcast(path).available(), 20)
            cat = await asyncio.wait_for(b.catalog(), 20)
            name = next(iter(cat.audio))
            out = moq.AudioDecoderOutput(
                format=moq.AudioSampleFormat.F32, sample_rate=RATE, channels=1, max_age_us=60_000_000
            )
            cons = await b.decode_audio(name, cat.audio[name], out)
            stack.callback(cons.cancel)
            tasks = [feed_upstream(lis, cons)]
            if lis is reset:
                stream = await b.subscribe_json_stream(params.transcript_track, compression=True)
                stack.callback(stream.cancel)
                tasks.append(reset_on_rtvi(lis, stream))
            lis.start_tasks(*tasks)
            stack.push_async_callback(lis.stop)
        return await converse(conv)


# ---- the run -------------------------------------------------------------------------------


LISTENER_KEYS = (
    "turn1_bot_started_error_ms",
    "turn1_bot_stopped_error_ms",
    "turn3_bot_stopped_error_ms",
    "answer_first_sample_ms",
    "stale_ms",
    "stale_after_interruption_ms",
    "interruption_latency_ms",
    "heard_ms",
    "heard_before_barge_in_ms",
    "received_ahead_at_barge_in_ms",
    "context_unheard_words",
    "context_unheard_sentences",
    "context_words_not_heard_before_barge_in",
    "context_sentences_not_started_before_barge_in",
)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per listener, a summary (bench/_common.summary) of each measure over the trials."""
    out: dict[str, Any] = {}
    for name in rows[0]["listeners"] if rows else []:
        out[name] = {key: summary(r["listeners"][name][key] for r in rows) for key in LISTENER_KEYS}
    return out


async def run_async(quick: bool, trials: int | None) -> dict[str, Any]:
    n = trials or (1 if quick else 10)
    load_before = os.getloadavg()
    impls: dict[str, Callable[[], Any]] = {"moq-audio": trial_moq_audio, "pipecat-moq": trial_pipecat_moq}
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in impls}
    errors: dict[str, list[str]] = {k: [] for k in impls}
    for r in range(n):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))
        for name in order:
            t0 = time.perf_counter()
            try:
                rows[name].append(await asyncio.wait_for(impls[name](), 180))
            except Exception as e:  # noqa: BLE001 - a failed trial is recorded, the run goes on
                errors[name].append(f"{type(e).__name__}: {e}")
                log(f"pipecat_compare: {name} trial {r + 1} failed: {type(e).__name__}: {e}")
                continue
            for lis, v in rows[name][-1]["listeners"].items():
                log(
                    f"pipecat_compare: {lis} trial {r + 1}/{n} ({time.perf_counter() - t0:.0f} s): "
                    f"stale {v['stale_ms']:.0f} ms ({v['stale_after_interruption_ms']:.0f} ms after the "
                    f"interruption reached the transport), bot stopped {v['turn1_bot_stopped_error_ms']:+.0f} ms "
                    f"from the last sample, {v['context_unheard_words']} words in the context never heard"
                )
    import pipecat

    return {
        "method": __doc__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # Other work on the machine slows the Python pipeline (how fast Pipecat writes ahead).
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "versions": {
            "moq-audio": moq_audio.__version__,
            "pipecat-ai": getattr(pipecat, "__version__", "?"),
            "moq-rs": _dist_version("moq-rs"),
        },
        "reply_a": REPLY_A,
        "reply_b": REPLY_B,
        "interrupt_after_ms": INTERRUPT_AFTER_MS,
        "trials": n,
        "errors": errors,
        "summary": {k: summarize(v) for k, v in rows.items()},
        "rows": rows,
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def run(quick: bool = False, trials: int | None = None) -> dict[str, Any]:
    """Run the comparison (``quick``: one trial each) and return the results as a dict."""
    for mod in ("pipecat", "moq"):
        try:
            __import__(mod)
        except ImportError:
            log(f'pipecat_compare: {mod} is not installed (pip install "pipecat-ai[silero,moq]==1.14.0"): skipped')
            return {"skipped": f"{mod} is not installed"}
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    return asyncio.run(run_async(quick, trials))


#: Listeners in the figure, in order, with their colours.
FIGURE_LISTENERS = {
    "moq-audio": "#1b9e77",
    "pipecat-moq stock": "#d95f02",
    "pipecat-moq rtvi-reset": "#7570b3",
}


def figure(result: dict[str, Any], path: Path) -> Path | None:
    """Three panels (every trial a dot, the median a bar): old audio rendered after the
    interruption reached the transport, the bot-stopped error of turn 1, and words in the
    interrupted turn's context that the listener never heard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for impl in result.get("rows", {}).values() for r in impl]
    if not rows:
        return None
    panels = [
        ("stale_after_interruption_ms", "old audio rendered after the interruption\nreached the transport (ms)"),
        ("turn1_bot_stopped_error_ms", "BotStoppedSpeaking − last rendered sample (ms)"),
        ("context_unheard_words", "words in the assistant context\nthe listener never heard"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.2))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, (name, color) in enumerate(FIGURE_LISTENERS.items()):
            values = [r["listeners"][name][key] for r in rows if name in r["listeners"]]
            if not values:
                continue
            ax.bar(i, float(np.median(values)), color=color, alpha=0.35, width=0.6)
            ax.scatter([i] * len(values), values, color=color, s=14, zorder=3)
            ax.annotate(f"{np.median(values):.0f}", (i, float(np.median(values))), ha="center", va="bottom")
        ax.set_xticks(range(len(FIGURE_LISTENERS)), [n.replace(" ", "\n", 1) for n in FIGURE_LISTENERS], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.axhline(0, color="black", linewidth=0.6)
    n = result.get("trials")
    fig.suptitle(f"Pipecat 1.14: moq_audio.pipecat vs Pipecat's MOQTransport ({n} conversations)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one trial per transport (the CI smoke)")
    parser.add_argument("--trials", type=int, help="trials per transport (default 10, 1 with --quick)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("pipecat_compare.json"), help="JSON output file"
    )
    args = parser.parse_args()
    result = run(args.quick, args.trials)
    args.out.write_text(json.dumps(result, indent=2))
    log(f"pipecat_compare: wrote {args.out}")
    png = figure(result, args.out.with_suffix(".png"))
    if png is not None:
        log(f"pipecat_compare: wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
