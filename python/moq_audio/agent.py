"""The full-duplex barge-in demo behind ``moq-audio demo --web``.

One process: the embedded MoQ server serving the browser listener, and a bot that speaks long
replies with espeak-ng. The bot listens to the page's microphone broadcast (``user``, Opus),
runs a voice activity detector (webrtcvad, which ships its model), and when the person talks
over it for ``--min-speech-ms`` it flushes at once and answers. The page's Interrupt button
arrives as a message on the ``control.json`` track of the same broadcast and does the same.
The bot's transcript (what it is saying, truncated to what was heard after a barge-in) goes out
on ``transcript.json`` in the bot's broadcast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import IO

import numpy as np

import moq_audio

from .cli import status
from .speech import speak

REPLIES = [
    (
        "Hello! I am a voice agent speaking over Media over QUIC. This is a long answer on purpose, "
        "so that you have time to talk over me. When you do, I stop at once, because every buffer "
        "between my voice and your ear is flushed, including the jitter buffer in your browser."
    ),
    (
        "Here is another long story. Media over QUIC delivers audio in groups of frames. When I am "
        "interrupted I start a new generation, and the new generation overtakes everything that was "
        "still on its way. Your browser drops the old audio with a fade of five milliseconds."
    ),
    (
        "Let me tell you about the weather on the coast. In the morning there is fog over the bay, "
        "by noon the sun burns through, and in the afternoon the wind picks up from the west, "
        "which makes it a good time for sailing, if you like that kind of thing."
    ),
]

#: webrtcvad aggressiveness 0..3; 2 balances missed speech against noise triggers.
VAD_MODE = 2
#: webrtcvad takes 10, 20 or 30 ms frames at 8/16/32/48 kHz; we decode the mic at 16 kHz.
VAD_RATE = 16_000
#: Silence that ends the user's turn before the bot answers (ms).
END_OF_TURN_MS = 600
#: Conversational pauses (s): after a reply the person let finish, and after answering a barge-in.
PAUSE_AFTER_REPLY_S = 1.5
PAUSE_AFTER_ANSWER_S = 1.0
#: How long the bot waits for the person to finish their turn after a barge-in (s).
TURN_TIMEOUT_S = 10.0
#: Back-off before subscribing again after the page's broadcast failed or left (s). The next
#: subscribe itself waits for the broadcast to be announced; this only keeps a broadcast that
#: fails at once from spinning the loop.
RESUBSCRIBE_BACKOFF_S = 0.5


class Events:
    """JSON-lines event log (for tests and for people): one object per line, flushed per line."""

    def __init__(self, path: str | None) -> None:
        # Open for the whole demo; close() at its end.
        self._file: IO[str] | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115

    def emit(self, kind: str, **fields: object) -> None:
        """Append ``{"event": kind, "time": <Unix s>, **fields}``."""
        if self._file is not None:
            self._file.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Bot:
    """Speaks replies, flushes on barge-in, answers."""

    def __init__(self, producer: moq_audio.AudioProducer, transcript: moq_audio.DataWriter, events: Events) -> None:
        self.producer = producer
        self.transcript = transcript
        self.events = events
        self.barge_in = asyncio.Event()
        self.user_done = asyncio.Event()
        self.speaking = False
        self.turn = 0
        #: The last barge-in's flush report, and how much of the interrupted utterance was heard.
        self.interrupt_report: moq_audio.FlushReport | None = None
        self.heard_ms = 0.0

    def say_text(self, text: str) -> None:
        self.transcript.write(json.dumps({"generation": self.producer.generation, "text": text}))

    async def speak(self, text: str) -> bool:
        """Speak ``text``; returns False if it was interrupted."""
        pcm, _rate = speak(text)
        self.turn += 1
        mark = f"turn-{self.turn}"
        self.barge_in.clear()
        self.say_text(text)
        self.speaking = True
        # Positions (marks, heard_ms) count from the start of the generation, which may hold
        # earlier utterances: remember where this one starts.
        start_ms = self.producer.written_ms
        self.events.emit("speak", text=text, generation=self.producer.generation, start_ms=start_ms)
        await self.producer.write(pcm)
        self.producer.mark(mark)
        done = asyncio.ensure_future(self.producer.wait_mark(mark))
        interrupted = asyncio.ensure_future(self.barge_in.wait())
        await asyncio.wait({done, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        self.speaking = False
        if not interrupted.done():
            interrupted.cancel()
            ev = done.result()
            self.events.emit("spoke", text=text, mark=mark, state=ev.state, listener=ev.listener)
            return True
        report = self.interrupt_report
        assert report is not None, "barge_in is set only after a flush"
        self.heard_ms = max(0.0, report.heard_ms - start_ms)
        heard = moq_audio.truncate_text(text, self.heard_ms)
        self.say_text(heard + " …")
        self.events.emit(
            "interrupted",
            generation=report.generation,
            heard_ms=self.heard_ms,
            heard_estimated=report.heard_estimated,
            dropped_ms=report.dropped_ms,
            heard_text=heard,
        )
        ev = await done  # resolves as flushed (or played, if the listener got there first)
        self.events.emit("mark", mark=mark, state=ev.state, listener=ev.listener)
        return False

    def interrupt(self, why: str) -> None:
        """Barge-in: flush at once (if speaking) and remember the report."""
        if not self.speaking or self.barge_in.is_set():
            return
        t0 = time.perf_counter()
        self.interrupt_report = self.producer.flush()
        flush_us = (time.perf_counter() - t0) * 1e6
        r = self.interrupt_report
        status(
            f"barge-in ({why}): flushed in {flush_us:.0f} µs -> generation {r.generation}; "
            f"listener heard {r.heard_ms:.0f} ms{' (estimate)' if r.heard_estimated else ''}, "
            f"dropped {r.dropped_ms:.0f} ms"
        )
        self.events.emit("barge_in", why=why, flush_us=flush_us, generation=r.generation)
        self.user_done.clear()
        self.barge_in.set()

    async def run(self, first_delay: float) -> None:
        await asyncio.sleep(first_delay)
        i = 0
        while True:
            completed = await self.speak(REPLIES[i % len(REPLIES)])
            i += 1
            if completed:
                await asyncio.sleep(PAUSE_AFTER_REPLY_S)
                continue
            # Wait for the person to finish their turn (VAD silence, or the button), then answer.
            try:
                await asyncio.wait_for(self.user_done.wait(), TURN_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass
            self.user_done.clear()
            heard_s = self.heard_ms / 1000
            await self.speak(f"You interrupted me after {heard_s:.1f} seconds. What would you like to know?")
            await asyncio.sleep(PAUSE_AFTER_ANSWER_S)


async def listen_to_user(session: moq_audio.Session, bot: Bot, min_speech_ms: float, events: Events) -> None:
    """Decode the page's microphone and run VAD; a long enough run of speech is a barge-in."""
    import webrtcvad

    vad = webrtcvad.Vad(VAD_MODE)
    frame_len = VAD_RATE // 50  # 20 ms
    while True:
        try:
            mic = await session.subscribe_audio("user", sample_rate=VAD_RATE, timeout=3600)
        except moq_audio.MoqAudioError as e:
            # The page is not there (yet, or any more): try again shortly.
            events.emit("mic_unavailable", error=str(e))
            await asyncio.sleep(RESUBSCRIBE_BACKOFF_S)
            continue
        status("microphone of the page subscribed")
        events.emit("mic_subscribed")
        speech_ms = 0.0
        silence_ms = 0.0
        pending = np.zeros(0, dtype=np.int16)
        try:
            async for frame in mic:
                samples = (np.clip(frame.pcm[:, 0], -1, 1) * 32767).astype(np.int16)
                pending = np.concatenate([pending, samples])
                while len(pending) >= frame_len:
                    chunk, pending = pending[:frame_len], pending[frame_len:]
                    if vad.is_speech(chunk.tobytes(), VAD_RATE):
                        speech_ms += 20
                        silence_ms = 0
                        if speech_ms >= min_speech_ms and bot.speaking:
                            events.emit("vad_speech", speech_ms=speech_ms)
                            bot.interrupt(f"voice, {speech_ms:.0f} ms of speech")
                    else:
                        silence_ms += 20
                        if silence_ms >= END_OF_TURN_MS:
                            if speech_ms >= min_speech_ms:
                                bot.user_done.set()
                            speech_ms = 0
        except moq_audio.MoqAudioError as e:
            events.emit("mic_error", error=str(e))
        status("microphone of the page ended")


async def listen_to_controls(session: moq_audio.Session, bot: Bot) -> None:
    """The page's Interrupt button: ``{"type": "interrupt"}`` on ``user/control.json``."""
    while True:
        try:
            controls = await session.subscribe_data("user", "control.json", timeout=3600)
            async for message in controls:
                try:
                    kind = json.loads(message).get("type")
                except (ValueError, AttributeError):
                    continue
                if kind == "interrupt":
                    bot.interrupt("Interrupt button")
                    bot.user_done.set()
        except moq_audio.MoqAudioError:
            pass
        await asyncio.sleep(RESUBSCRIBE_BACKOFF_S)  # the page left (or failed): subscribe again


async def run_web_demo(args: argparse.Namespace) -> int:
    """``moq-audio demo --web``: serve the page and hold barge-in conversations until Ctrl-C.

    Raises:
        FileNotFoundError: when the browser page is not built.
    """
    web = moq_audio.web_root()
    if web is None:
        raise FileNotFoundError("the browser page is not built: run `npm ci && npm run build` in web-demo/")
    events = Events(getattr(args, "events", None))
    try:
        return await _serve_web_demo(args, web, events)
    finally:
        events.close()


async def _serve_web_demo(args: argparse.Namespace, web: Path, events: Events) -> int:
    async with moq_audio.Server(args.addr, static_dir=web) as server:
        status(f"open {server.url} in Chromium and press Start (talk over the bot to interrupt it)")
        print(server.url, flush=True)
        events.emit("serving", url=server.url)
        async with moq_audio.connect(server.url) as session:
            rate = speak("ready")[1]
            producer = session.publish_audio("bot", sample_rate=rate, lead_ms=args.lead_ms)
            bot = Bot(producer, producer.data_track("transcript.json"), events)
            tasks = [
                asyncio.ensure_future(bot.run(first_delay=getattr(args, "first_delay", 2.0))),
                asyncio.ensure_future(listen_to_user(session, bot, args.min_speech_ms, events)),
                asyncio.ensure_future(listen_to_controls(session, bot)),
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
    return 0
