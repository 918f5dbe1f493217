"""A Pipecat voice bot on moq-audio, fully offline: the browser page's microphone -> Silero VAD
-> a scripted "LLM" -> espeak-ng -> moq-audio -> the page.

    pip install "moq-audio[pipecat]"          # Pipecat 1.14 with Silero (Python >= 3.11)
    python examples/pipecat_bot.py            # then open the printed URL in Chromium, press Start

Talk over the bot (or press Interrupt): it stops at once, everything between its voice and
your ear is flushed, and the page's transcript shows only what you heard. Its next reply
quotes the last sentence of its own you heard, read from the assistant context, which holds
only what was heard.

Real services: replace ScriptedLLM with e.g. ``OpenAILLMService(api_key=..., model=...)``,
EspeakTTSService with e.g. ``CartesiaTTSService(api_key=..., voice_id=...)``, and add an STT
service (e.g. ``DeepgramSTTService(api_key=...)``) right after ``transport.input()``; see
docs/pipecat.md. With a relay instead of the embedded server, pass its URL (and ``token=``) to
MoqAudioParams and drop the Server.
"""

from __future__ import annotations

import argparse
import asyncio

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.turns.empty_user_turn import EmptyUserTurnConfig
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

import moq_audio
from moq_audio.pipecat import EspeakTTSService, MoqAudioParams, MoqAudioTransport
from moq_audio.pipecat.demo import IDLE_PROMPT, INTERRUPTED_PROMPT, ScriptedLLM


async def main(addr: str) -> None:
    web = moq_audio.web_root()  # the built page (web-demo/dist)
    if web is None:
        raise SystemExit("the browser page is not built: run `npm ci && npm run build` in web-demo/")
    async with moq_audio.Server(addr, static_dir=web) as server:
        print(f"open {server.url} in Chromium and press Start", flush=True)
        transport = MoqAudioTransport(MoqAudioParams(url=server.url, bot_broadcast="bot", user_broadcast="user"))

        context = LLMContext()
        user, assistant = LLMContextAggregatorPair(
            context,
            user_params=LLMUserAggregatorParams(
                vad_analyzer=SileroVADAnalyzer(),  # ships its ONNX model: no download
                user_turn_strategies=UserTurnStrategies(
                    stop=[SpeechTimeoutUserTurnStopStrategy(wait_for_transcript=False)]  # no STT here
                ),
                empty_user_turn=EmptyUserTurnConfig(
                    interrupted_prompt=INTERRUPTED_PROMPT, idle_prompt=IDLE_PROMPT, max_consecutive_recoveries=1000
                ),
            ),
        )
        pipeline = Pipeline(
            [transport.input(), user, ScriptedLLM(context), EspeakTTSService(), transport.output(), assistant]
        )
        worker = PipelineWorker(pipeline, idle_timeout_secs=None)

        @transport.event_handler("on_client_connected")
        async def on_client_connected(transport: MoqAudioTransport, client: str) -> None:
            await worker.queue_frames([LLMRunFrame()])  # the bot speaks first

        @transport.event_handler("on_bot_interrupted")
        async def on_bot_interrupted(transport: MoqAudioTransport, report: moq_audio.FlushReport) -> None:
            print(f"barge-in: the listener heard {report.heard_ms:.0f} ms, {report.dropped_ms:.0f} ms dropped")

        runner = WorkerRunner()
        await runner.add_workers(worker)
        await runner.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:4443", help="address to serve the page and MoQ on")
    asyncio.run(main(parser.parse_args().addr))
