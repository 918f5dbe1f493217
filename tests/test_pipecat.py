"""moq_audio.pipecat in a real Pipecat pipeline: real QUIC on loopback, a real Player listener,
espeak-ng speech, Silero VAD; offline.

The bot answers with a scripted reply of four sentences (espeak-ng TTS). ~3 s into what the
listener renders, the user barges in, (a) as a VADUserStartedSpeakingFrame pushed into the
pipeline, (b) as espeak-ng speech published on the user's broadcast, through the input
transport and Silero VAD. Then:

- old audio the listener renders after the cut stays within tests/test_flush.py's bound;
- the assistant context holds the sentences the listener rendered in full, none it did not
  render at all, and of the sentence being spoken at most a word prefix;
- BotStoppedSpeakingFrame comes within 100 ms of the listener's last rendered sample (measured
  on the Player's render clock, not at write time);
- the next reply ("You interrupted me ...") plays at once.

Also: word-level text (a TTS with word timestamps) cuts the context at the last word heard, and
the input transport follows the user's broadcast across a page reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "pipecat",
    reason="Pipecat 1.x needs Python >= 3.11"
    if sys.version_info < (3, 11)
    else 'Pipecat is not installed: pip install "moq-audio[pipecat]"',
)

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    LLMRunFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import standard_message_text
from pipecat.processors.aggregators.llm_response_universal import (
    AssistantTurnStoppedMessage,
    LLMAssistantAggregator,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

import moq_audio
from conftest import frames_of, speech
from moq_audio.pipecat import MoqAudioParams, MoqAudioTransport
from moq_audio.pipecat.demo import build_bot
from moq_audio.pipecat.espeak_words import speak_with_word_times

OUT_RATE = 24_000
#: The reply the bot gets interrupted in: four sentences, the second long enough that a cut
#: ~3 s in lands inside it, well away from its ends.
REPLY = [
    "Your parcel left the depot this morning.",
    "It is on a van now and the driver expects to reach your street a little after lunch time today.",
    "You can change the delivery address online.",
    "Returns and refunds take five working days.",
]
USER_SPEECH = "Wait, stop, I have a question about my order."
#: tests/test_flush.py: the fade (5 ms) plus one render quantum (10 ms).
STALE_BOUND_MS = 5 + 10
#: BotStoppedSpeakingFrame after the listener's last rendered sample (the issue's bound).
BOT_STOPPED_BOUND_MS = 100
#: From the new reply's audio leaving the TTS to its first rendered sample: the pacing lead
#: (60 ms) + the jitter target (40 ms) + a 20 ms chunk, with room for a loaded CI machine.
FIRST_NEW_SAMPLE_BOUND_MS = 400


@dataclass
class Watch:
    """Frames seen at the end of the pipeline, stamped with the listener's render clock."""

    player: moq_audio.Player | None = None
    started: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    tts_audio: list[int] = field(default_factory=list)
    interrupted: list[tuple[int, moq_audio.FlushReport]] = field(default_factory=list)
    interrupted_event: asyncio.Event = field(default_factory=asyncio.Event)
    bot_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    #: The assistant aggregator's committed turns (on_assistant_turn_stopped).
    turns: list[AssistantTurnStoppedMessage] = field(default_factory=list)
    turn_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    #: JSON messages on the bot broadcast's data tracks, by track name.
    tracks: dict[str, list[Any]] = field(default_factory=dict)

    def now(self) -> int:
        assert self.player is not None
        return int(attr(self.player.report(), "rendered_frames"))


class Recorder(FrameProcessor):
    """Records bot-speaking frames (at the pipeline's end) or TTS audio (before the output)."""

    def __init__(self, watch: Watch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch = watch

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        w = self._watch
        if w.player is not None:
            if isinstance(frame, BotStartedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
                w.started.append(w.now())
            elif isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
                w.stopped.append(w.now())
                w.bot_stopped.set()
            elif isinstance(frame, TTSAudioRawFrame):
                w.tts_audio.append(w.now())
        await self.push_frame(frame, direction)


class Bot:
    """The demo's offline pipeline with recorders, running on ``session``."""

    def __init__(self, session: moq_audio.Session, *, word_timestamps: bool = False) -> None:
        self.watch = Watch()
        self.transport = MoqAudioTransport(MoqAudioParams(audio_out_sample_rate=OUT_RATE), session=session)
        bot = build_bot(self.transport, stories=[" ".join(REPLY)], word_timestamps=word_timestamps)
        self.context = bot.context
        procs = bot.processors
        # [input, user, llm, tts, output, assistant] -> a recorder before the output and at the end.
        procs.insert(procs.index(self.transport.output()), Recorder(self.watch))
        procs.append(Recorder(self.watch))
        self.task = PipelineWorker(
            Pipeline(procs), params=PipelineParams(audio_out_sample_rate=OUT_RATE), idle_timeout_secs=None
        )

        async def on_interrupted(_t: MoqAudioTransport, report: moq_audio.FlushReport) -> None:
            self.watch.interrupted.append((self.watch.now(), report))
            self.watch.interrupted_event.set()

        async def on_turn(_aggregator: Any, message: AssistantTurnStoppedMessage) -> None:
            self.watch.turns.append(message)
            self.watch.turn_stopped.set()

        self.transport.add_event_handler("on_bot_interrupted", on_interrupted)
        assistant = next(p for p in procs if isinstance(p, LLMAssistantAggregator))
        assistant.add_event_handler("on_assistant_turn_stopped", on_turn)

    def assistant_messages(self) -> list[str]:
        """The assistant messages in the context, in order."""
        return [
            standard_message_text(m)
            for m in self.context.messages
            if isinstance(m, dict) and m.get("role") == "assistant"
        ]

    async def wait_turns(self, n: int, timeout: float) -> None:
        """Wait until the assistant aggregator has committed ``n`` turns."""
        while len(self.watch.turns) < n:
            self.watch.turn_stopped.clear()
            await asyncio.wait_for(self.watch.turn_stopped.wait(), timeout)


def attr(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: Player reports are becoming objects (they were dicts)."""
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def sentence_ends_ms() -> list[float]:
    """Where each sentence of REPLY ends in the bot's audio (ms): espeak-ng durations, back to back."""
    ends, t = [], 0.0
    for s in REPLY:
        pcm, rate = speech(s)
        t += len(pcm) * 1000.0 / rate
        ends.append(t)
    return ends


def check_after_cut(bot: Bot, report: Any, heard_ms: float) -> None:
    """The assertions shared by both ways of barging in (see the module docstring)."""
    w = bot.watch
    rate = attr(report, "sample_rate")
    assert len(w.interrupted) == 1, w.interrupted
    flush_frame, flush = w.interrupted[0]
    assert flush.generation == 1
    # Stale audio: what generation 0 rendered after generation 1 arrived, and after the flush.
    arrival = next(attr(a, "at_frame") for a in attr(report, "arrivals") if attr(a, "generation") == 1)
    assert frames_of(report, 0, after=arrival) * 1000 / rate <= STALE_BOUND_MS
    assert frames_of(report, 0, after=flush_frame) * 1000 / rate <= STALE_BOUND_MS + 50, "old audio after the flush"
    # The flush report agrees with what the Player rendered (one feedback period, ~50 ms).
    assert abs(flush.heard_ms - heard_ms) <= 80, (flush.heard_ms, heard_ms)

    # Heard-only context: the interrupted turn holds the sentences heard in full, none that was
    # not heard at all, and of the sentence being spoken at most a prefix of its words.
    first = w.turns[0]
    assert first.interrupted
    text = first.content
    assert bot.assistant_messages()[0] == text
    ends = sentence_ends_ms()
    starts = [0.0, *ends[:-1]]
    margin = 100.0  # chunking (20 ms), resampling and feedback timing
    for sentence, start, end in zip(REPLY, starts, ends, strict=True):
        if end + margin <= heard_ms:
            assert sentence in text, f"heard in full but missing from the context: {sentence!r} in {text!r}"
        elif start >= heard_ms + margin:
            assert sentence not in text, f"never heard but in the context: {sentence!r} in {text!r}"
        else:  # being spoken at the cut
            assert sentence not in text, f"cut short but in the context whole: {sentence!r}"
    cut = next(i for i, e in enumerate(ends) if e > heard_ms)
    rest = text.split(REPLY[cut - 1])[-1].strip() if cut > 0 else text.strip()
    if rest:
        assert REPLY[cut].startswith(rest), f"after the heard sentences: {rest!r} is not a prefix of {REPLY[cut]!r}"


def check_bot_stopped(bot: Bot, report: Any, generation: int) -> None:
    """BotStoppedSpeakingFrame vs the listener's last rendered sample of ``generation``."""
    rate = attr(report, "sample_rate")
    segs = [s for s in attr(report, "segments") if attr(s, "generation") == generation and not attr(s, "fade")]
    last_sample = max(attr(s, "start") + attr(s, "frames") for s in segs)
    stopped = [f for f in bot.watch.stopped if f >= last_sample - rate // 2]
    assert stopped, f"no BotStoppedSpeakingFrame near the end of generation {generation}"
    error_ms = (stopped[0] - last_sample) * 1000 / rate
    assert -20 <= error_ms <= BOT_STOPPED_BOUND_MS, f"BotStoppedSpeakingFrame {error_ms:.0f} ms after the last sample"


def check_next_reply_at_once(bot: Bot, report: Any, flush_frame: int) -> None:
    rate = attr(report, "sample_rate")
    first_new = min(
        attr(s, "start") for s in attr(report, "segments") if attr(s, "generation") == 1 and not attr(s, "fade")
    )
    tts_after = [f for f in bot.watch.tts_audio if f > flush_frame]
    assert tts_after, "no TTS audio after the barge-in"
    delay_ms = (first_new - tts_after[0]) * 1000 / rate
    assert delay_ms <= FIRST_NEW_SAMPLE_BOUND_MS, f"the answer's first sample came {delay_ms:.0f} ms after its audio"


DATA_TRACKS = ("transcript.json", "rtvi.json")


async def collect(session: moq_audio.Session, name: str, watch: Watch) -> None:
    """Every JSON message of the bot broadcast's track ``name``, into ``watch.tracks[name]``."""
    out = watch.tracks.setdefault(name, [])
    async for message in await session.subscribe_data("bot", name):
        out.append(json.loads(message))


@contextlib.asynccontextmanager
async def running(session: moq_audio.Session, *, word_timestamps: bool = False) -> AsyncIterator[Bot]:
    """The bot's pipeline, running until the block ends (also when it fails)."""
    bot = Bot(session, word_timestamps=word_timestamps)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(bot.task)
    running_task = asyncio.ensure_future(runner.run())
    try:
        yield bot
    finally:
        await bot.task.cancel()
        await asyncio.wait_for(running_task, 10)


async def run_conversation(
    bot_session: moq_audio.Session, ear_session: moq_audio.Session, barge_in: Any, *, word_timestamps: bool = False
) -> tuple[Bot, Any, float]:
    """Reply, barge in ~3 s into what the listener rendered, let the answer play out."""
    ends = sentence_ends_ms()
    cut_ms = ends[0] + 0.35 * (ends[1] - ends[0])  # inside the long second sentence (~3 s in)
    async with running(bot_session, word_timestamps=word_timestamps) as bot:
        player = await ear_session.play_audio("bot", sample_rate=OUT_RATE)
        bot.watch.player = player
        readers = [asyncio.ensure_future(collect(ear_session, name, bot.watch)) for name in DATA_TRACKS]
        await bot.task.queue_frames([LLMRunFrame()])
        await asyncio.wait_for(player.wait_rendered(cut_ms, generation=0), 30)
        await barge_in(bot)
        # The answer: BotStoppedSpeaking at its end (the user turn ends after Silero/the timeout).
        await asyncio.wait_for(player.wait_rendered(500, generation=1), 30)
        bot.watch.bot_stopped.clear()
        await asyncio.wait_for(bot.watch.bot_stopped.wait(), 30)
        report = await player.stop()
        heard_ms = frames_of(report, 0) * 1000.0 / attr(report, "sample_rate")
        await bot.wait_turns(2, 10)  # the interrupted reply and the answer, committed
        for r in readers:
            r.cancel()
        return bot, report, heard_ms


async def test_barge_in_by_vad_frame_cuts_audio_and_context_to_what_was_heard(bot_session, ear_session):
    async def barge_in(bot: Bot) -> None:
        await bot.task.queue_frames([VADUserStartedSpeakingFrame()])
        await asyncio.wait_for(bot.watch.interrupted_event.wait(), 5)
        await bot.task.queue_frames([VADUserStoppedSpeakingFrame()])

    bot, report, heard_ms = await run_conversation(bot_session, ear_session, barge_in)
    check_after_cut(bot, report, heard_ms)
    check_bot_stopped(bot, report, generation=1)
    check_next_reply_at_once(bot, report, bot.watch.interrupted[0][0])
    assert bot.watch.started and bot.watch.started[0] < bot.watch.interrupted[0][0]
    # The page's transcript track: what was heard of generation 0 as it was heard, then (as the
    # new generation) the cut reply marked "…", then the answer as it is heard.
    transcript = bot.watch.tracks["transcript.json"]
    heard = bot.watch.turns[0].content
    assert {"generation": 0, "text": REPLY[0]} in transcript, transcript
    assert {"generation": 1, "text": f"{heard} …"} in transcript, transcript
    assert not any(m["generation"] == 0 and REPLY[2] in m["text"] for m in transcript), "unheard text shown"
    # Pipecat's own messages (RTVI) go out on the messages track.
    assert any(m.get("label") == "rtvi-ai" for m in bot.watch.tracks["rtvi.json"]), bot.watch.tracks["rtvi.json"]


async def test_word_timestamps_cut_the_context_at_the_last_word_heard(bot_session, ear_session):
    """With a TTS that reports word timings (espeak-ng through libespeak-ng), the interrupted
    turn in the context ends at the last word whose middle the listener rendered."""

    async def barge_in(bot: Bot) -> None:
        await bot.task.queue_frames([VADUserStartedSpeakingFrame()])
        await asyncio.wait_for(bot.watch.interrupted_event.wait(), 5)
        await bot.task.queue_frames([VADUserStoppedSpeakingFrame()])

    bot, report, heard_ms = await run_conversation(bot_session, ear_session, barge_in, word_timestamps=True)
    rate = attr(report, "sample_rate")
    arrival = next(attr(a, "at_frame") for a in attr(report, "arrivals") if attr(a, "generation") == 1)
    assert frames_of(report, 0, after=arrival) * 1000 / rate <= STALE_BOUND_MS
    # Word midpoints on the reply's timeline, from the same library the TTS uses.
    words: list[tuple[str, float]] = []
    offset = 0.0
    for sentence in REPLY:
        pcm, wrate, times = speak_with_word_times(sentence)
        starts = [offset + t * 1000 for _, t in times]
        ends = [*starts[1:], offset + len(pcm) * 1000 / wrate]
        words += [(w, (a + b) / 2) for (w, _), a, b in zip(times, starts, ends, strict=True)]
        offset += len(pcm) * 1000 / wrate
    expected = [w for w, mid in words if mid <= heard_ms]
    got = bot.watch.turns[0].content.split()
    assert bot.watch.turns[0].interrupted
    assert got == [w for w, _ in words][: len(got)], f"not a prefix of the reply: {got}"
    # One word either way: playout is reported every ~50 ms and text is placed to a 20 ms chunk.
    assert abs(len(got) - len(expected)) <= 1, (got, expected, heard_ms)
    assert len(expected) >= 10, "the cut is in the second sentence"
    check_bot_stopped(bot, report, generation=1)


async def test_barge_in_by_speech_through_silero(bot_session, ear_session):
    user_pcm, user_rate = speech(USER_SPEECH)
    mic = ear_session.publish_audio("user", sample_rate=user_rate)
    silence = np.zeros(int(1.5 * user_rate), dtype=np.int16)  # a microphone keeps sending after speech

    async def barge_in(bot: Bot) -> None:
        await mic.write(np.concatenate([user_pcm, silence]))
        await asyncio.wait_for(bot.watch.interrupted_event.wait(), 10)

    bot, report, heard_ms = await run_conversation(bot_session, ear_session, barge_in)
    check_after_cut(bot, report, heard_ms)
    check_bot_stopped(bot, report, generation=1)
    check_next_reply_at_once(bot, report, bot.watch.interrupted[0][0])
    mic.cancel()


class MicRecorder(FrameProcessor):
    """Counts the user audio (InputAudioRawFrame) the input transport pushes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.samples = 0
        self.rates: set[int] = set()
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.samples += len(frame.audio) // 2
            self.rates.add(frame.sample_rate)
            self.changed.set()
        await self.push_frame(frame, direction)

    async def wait_samples(self, n: int, timeout: float) -> None:
        while self.samples < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout)


async def test_input_follows_the_user_broadcast_across_a_page_reload(server, bot_session):
    transport = MoqAudioTransport(MoqAudioParams(audio_out_enabled=False), session=bot_session)
    recorder = MicRecorder()
    worker = PipelineWorker(Pipeline([transport.input(), recorder]), idle_timeout_secs=None)
    seen: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def connected(_t: MoqAudioTransport, client: str) -> None:
        seen.put_nowait(("connected", client))

    async def disconnected(_t: MoqAudioTransport, client: str) -> None:
        seen.put_nowait(("disconnected", client))

    transport.add_event_handler("on_client_connected", connected)
    transport.add_event_handler("on_client_disconnected", disconnected)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running_task = asyncio.ensure_future(runner.run())
    pcm, rate = speech(USER_SPEECH)
    try:
        for _page_load in range(2):
            # The page publishes its microphone (48 kHz, like the browser), then is reloaded:
            # its session closes and a new one publishes the same broadcast.
            async with moq_audio.connect(server.url) as page:
                mic = page.publish_audio("user", sample_rate=rate)
                assert await asyncio.wait_for(seen.get(), 10) == ("connected", "user")
                before = recorder.samples
                await mic.write(pcm[: rate // 2])  # 0.5 s
                await recorder.wait_samples(before + 16_000 * 4 // 10, 10)  # >= 0.4 s arrived, at 16 kHz
            assert await asyncio.wait_for(seen.get(), 10) == ("disconnected", "user")
        assert recorder.rates == {16_000}
    finally:
        await worker.cancel()
        await asyncio.wait_for(running_task, 10)
