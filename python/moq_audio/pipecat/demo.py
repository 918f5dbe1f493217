"""A fully offline Pipecat voice bot for the browser page: ``moq-audio demo --pipecat``.

The page's microphone -> Silero VAD (ships its ONNX model) -> a scripted "LLM" (no API keys)
-> espeak-ng TTS -> :class:`~moq_audio.pipecat.MoqAudioTransport` -> the page, which shows the
transcript truncated to what it played. Talk over the bot (or press Interrupt): it stops at
once, and its next reply quotes the last sentence of its own that you heard, read from the
assistant context, which holds only what you heard.

Swapping in real services (each is one line in :func:`build_bot`):

- STT: add e.g. ``DeepgramSTTService(api_key=...)`` or ``WhisperSTTService()`` between
  ``transport.input()`` and the user aggregator; with transcripts the user aggregator writes
  what the user said to the context, and turn ends can use the default
  ``TurnAnalyzerUserTurnStopStrategy`` instead of the speech timeout below.
- LLM: replace :class:`ScriptedLLM` with e.g. ``OpenAILLMService(api_key=..., model=...)``; it
  reads the same ``LLMContext`` and emits the same ``LLMFullResponseStartFrame`` /
  ``LLMTextFrame`` / ``LLMFullResponseEndFrame`` sequence.
- TTS: replace :class:`~moq_audio.pipecat.EspeakTTSService` with e.g.
  ``CartesiaTTSService(api_key=..., voice_id=...)``. Services with word timestamps send
  word-level ``TTSTextFrame``s; see docs/pipecat.md for how the heard-only context treats them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputTransportMessageFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMRunFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, standard_message_text
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMContextAggregatorPair,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.empty_user_turn import EmptyUserTurnConfig
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

import moq_audio

from .options import add_arguments
from .params import MoqAudioParams
from .transport import MoqAudioTransport
from .tts import EspeakTTSService

__all__ = [
    "IDLE_PROMPT",
    "INTERRUPTED_PROMPT",
    "STORIES",
    "OfflineBot",
    "ScriptedLLM",
    "add_arguments",
    "build_bot",
    "main",
    "run_pipecat_demo",
]

STORIES = [
    (
        "Hello! I am a Pipecat voice bot speaking over Media over QUIC. This is a long answer on "
        "purpose, so that you have time to talk over me. When you do, I stop at once. Every buffer "
        "between my voice and your ear is flushed, including the jitter buffer in your browser. "
        "And my memory of this conversation keeps only the sentences you actually heard."
    ),
    (
        "Here is another long story. Media over QUIC delivers audio in groups of frames. When I am "
        "interrupted I start a new generation. The new generation overtakes everything that was "
        "still on its way. Your browser drops the old audio with a fade of five milliseconds."
    ),
    (
        "Let me tell you about the weather on the coast. In the morning there is fog over the bay. "
        "By noon the sun burns through. In the afternoon the wind picks up from the west. That "
        "makes it a good time for sailing, if you like that kind of thing."
    ),
]
#: The developer messages Pipecat's user aggregator adds for a user turn without a transcript
#: (there is no STT here); the scripted LLM recognises them. See EmptyUserTurnConfig.
INTERRUPTED_PROMPT = "The user interrupted you; their words were not transcribed."
IDLE_PROMPT = "The user said something after you finished; their words were not transcribed."
#: Silence that ends the user's turn (s): Pipecat's SpeechTimeoutUserTurnStopStrategy default.
USER_SPEECH_TIMEOUT_S = 0.6
#: A pause before answering the page's Interrupt button, as a person would leave (s).
BUTTON_ANSWER_PAUSE_S = 1.0


def _last_heard_sentence(context: LLMContext) -> str | None:
    for message in reversed(context.messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            text = standard_message_text(message).strip()
            if text:
                return text
    return None


class ScriptedLLM(FrameProcessor):
    """A stand-in for an LLM service: answers each context frame with a scripted reply.

    It reads the shared ``LLMContext`` like a real LLM would: after a barge-in the last
    assistant message is what the listener heard (the transport's heard-only context), and the
    reply quotes it. Emits ``LLMFullResponseStartFrame``, one ``LLMTextFrame`` per word (as a
    streaming LLM does), ``LLMFullResponseEndFrame``.

    Args:
        context: The context the aggregators write to.
        stories: Long replies, spoken in turn.
    """

    def __init__(self, context: LLMContext, stories: Sequence[str] = STORIES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._context = context
        self._stories = list(stories)
        self._turn = 0
        self._button_task: asyncio.Task[None] | None = None

    def reply_for(self, context: LLMContext, *, interrupted: bool = False) -> str:
        """The reply to ``context``: to a barge-in (``interrupted``, or the empty-turn prompt
        Pipecat adds after one) it quotes the last sentence the listener heard."""
        messages = context.messages
        last = messages[-1] if messages else None
        role = last.get("role") if isinstance(last, dict) else None
        text = standard_message_text(last).strip() if last is not None else ""
        if interrupted or (role == "developer" and text == INTERRUPTED_PROMPT):
            heard = _last_heard_sentence(context)
            if heard:
                tail = heard.split(". ")[-1].strip().rstrip(".… ")
                return f"You interrupted me. The last thing you heard me say was: {tail}. What would you like to know?"
            return "You interrupted me before you heard anything. What would you like to know?"
        if role == "user" and text:
            return f"You said: {text}. " + self._next_story()
        return self._next_story()

    def _next_story(self) -> str:
        story = self._stories[self._turn % len(self._stories)]
        self._turn += 1
        return story

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Answer ``LLMContextFrame``s; the page's Interrupt button gets an answer too."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.respond(self.reply_for(frame.context))
        elif isinstance(frame, InputTransportMessageFrame):
            message = frame.message
            idle = self._button_task is None or self._button_task.done()
            if isinstance(message, dict) and message.get("type") == "interrupt" and idle:
                # The button has no user turn after it (nothing to transcribe); answer after a
                # pause, by then the assistant aggregator has committed what was heard.
                self._button_task = self.create_task(self._answer_button(), "scripted_llm_button")
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _answer_button(self) -> None:
        await asyncio.sleep(BUTTON_ANSWER_PAUSE_S)
        await self.respond(self.reply_for(self._context, interrupted=True))

    async def respond(self, text: str) -> None:
        """Push ``text`` as one streamed LLM response."""
        await self.push_frame(LLMFullResponseStartFrame())
        for i, word in enumerate(text.split(" ")):
            await self.push_frame(LLMTextFrame(word if i == 0 else " " + word))
        await self.push_frame(LLMFullResponseEndFrame())


@dataclass
class OfflineBot:
    """The offline bot's processors, in pipeline order, and the context they share."""

    input: FrameProcessor
    user: LLMUserAggregator
    llm: ScriptedLLM
    tts: EspeakTTSService
    output: FrameProcessor
    assistant: LLMAssistantAggregator
    context: LLMContext

    @property
    def processors(self) -> list[FrameProcessor]:
        """``[input, user, llm, tts, output, assistant]``."""
        return [self.input, self.user, self.llm, self.tts, self.output, self.assistant]

    def pipeline(self) -> Pipeline:
        """The processors as a Pipeline."""
        return Pipeline(self.processors)


def build_bot(
    transport: BaseTransport,
    *,
    stories: Sequence[str] = STORIES,
    vad_params: VADParams | None = None,
    word_timestamps: bool = False,
    tts: EspeakTTSService | None = None,
) -> OfflineBot:
    """The offline bot: ``transport.input() -> user aggregator (Silero VAD) -> ScriptedLLM ->
    EspeakTTSService -> transport.output() -> assistant aggregator``. ``transport`` is
    usually a :class:`MoqAudioTransport`; any Pipecat transport works (the benchmark runs the
    same bot on Pipecat's own MoQ transport). ``word_timestamps`` makes the TTS report word
    timings (see :class:`EspeakTTSService`); ``tts`` replaces the TTS service.
    """
    context = LLMContext()
    user, assistant = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(params=vad_params),
            user_turn_strategies=UserTurnStrategies(
                stop=[
                    SpeechTimeoutUserTurnStopStrategy(
                        user_speech_timeout=USER_SPEECH_TIMEOUT_S, wait_for_transcript=False
                    )
                ]
            ),
            # No STT: every user turn is "empty"; answer each one (see ScriptedLLM.reply_for).
            empty_user_turn=EmptyUserTurnConfig(
                interrupted_prompt=INTERRUPTED_PROMPT, idle_prompt=IDLE_PROMPT, max_consecutive_recoveries=1_000_000
            ),
        ),
    )
    return OfflineBot(
        input=transport.input(),
        user=user,
        llm=ScriptedLLM(context, stories),
        tts=tts or EspeakTTSService(word_timestamps=word_timestamps),
        output=transport.output(),
        assistant=assistant,
        context=context,
    )


class _Events:
    """JSON-lines event log (``--events FILE``), one object per line, for tests and people."""

    def __init__(self, path: str | None) -> None:
        self._file: IO[str] | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115

    def emit(self, kind: str, **fields: object) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"event": kind, "time": time.time(), **fields}, default=str) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _status(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run_pipecat_demo(args: argparse.Namespace) -> int:
    """Serve the page and run the offline Pipecat bot until interrupted (Ctrl-C). Returns 0.

    Reads ``args.addr``, ``args.lead_ms``, ``args.first_delay``, ``args.events`` and
    ``args.log_level`` (see :func:`add_arguments`); sets loguru's stderr sink to that level.
    Raises SystemExit when the page is not built.
    """
    web = moq_audio.web_root()
    if web is None:
        raise SystemExit("the browser page is not built: run `npm ci && npm run build` in web-demo/")
    logger.remove()
    logger.add(sys.stderr, level=str(getattr(args, "log_level", "INFO")))
    events = _Events(getattr(args, "events", None))
    first_delay = float(getattr(args, "first_delay", 2.0))
    try:
        async with moq_audio.Server(getattr(args, "addr", "127.0.0.1:4443"), static_dir=web) as server:
            _status(f"open {server.url} in Chromium and press Start (talk over the bot to interrupt it)")
            print(server.url, flush=True)
            events.emit("serving", url=server.url)
            transport = MoqAudioTransport(MoqAudioParams(url=server.url, lead_ms=float(getattr(args, "lead_ms", 60.0))))
            bot = build_bot(transport)
            worker = PipelineWorker(bot.pipeline(), params=PipelineParams(), idle_timeout_secs=None)
            _wire_events(transport, worker, bot, events, first_delay)
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            await runner.run()
    finally:
        events.close()
    return 0


def _wire_events(
    transport: MoqAudioTransport, worker: PipelineWorker, bot: OfflineBot, events: _Events, first_delay: float
) -> None:
    context = bot.context
    greeting: list[asyncio.Task[None]] = []

    async def greet() -> None:
        await asyncio.sleep(first_delay)  # a pause before speaking, as a person would leave
        await worker.queue_frames([LLMRunFrame()])

    async def on_client_connected(_transport: MoqAudioTransport, client: str) -> None:
        _status(f"the page connected ({client}); the bot speaks in {first_delay:.1f} s")
        events.emit("client_connected", client=client)
        greeting.append(asyncio.ensure_future(greet()))

    async def on_client_disconnected(_transport: MoqAudioTransport, client: str) -> None:
        _status(f"the page left ({client})")
        events.emit("client_disconnected", client=client)

    async def on_bot_interrupted(_transport: MoqAudioTransport, report: moq_audio.FlushReport) -> None:
        _status(
            f"barge-in: generation {report.generation}; the listener heard {report.heard_ms:.0f} ms"
            f"{' (estimate)' if report.heard_estimated else ''}, dropped {report.dropped_ms:.0f} ms"
        )
        events.emit(
            "interrupted",
            generation=report.generation,
            heard_ms=report.heard_ms,
            heard_estimated=report.heard_estimated,
            dropped_ms=report.dropped_ms,
        )

    async def on_bot_heard(_transport: MoqAudioTransport, text: str) -> None:
        events.emit("heard", text=text)

    async def on_turn(_aggregator: Any, message: Any) -> None:
        # What the assistant aggregator wrote to the context for each of the bot's turns.
        events.emit("assistant_turn", text=message.content, interrupted=message.interrupted)

    async def on_finished(_worker: PipelineWorker, _frame: Frame) -> None:
        for t in greeting:
            t.cancel()
        events.emit("context", messages=[m for m in context.messages if isinstance(m, dict)])
        logger.info("pipeline finished")

    for obj, event, handler in (
        (transport, "on_client_connected", on_client_connected),
        (transport, "on_client_disconnected", on_client_disconnected),
        (transport, "on_bot_interrupted", on_bot_interrupted),
        (transport, "on_bot_heard", on_bot_heard),
        (worker, "on_pipeline_finished", on_finished),
        (bot.assistant, "on_assistant_turn_stopped", on_turn),
    ):
        obj.add_event_handler(event, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m moq_audio.pipecat.demo [--addr HOST:PORT] [--lead-ms MS] [--first-delay S]
    [--events FILE]``: the same as ``moq-audio demo --pipecat``. Exits 0 after Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m moq_audio.pipecat.demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run_pipecat_demo(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
