"""The ``moq-audio`` command line: serve, say, publish, listen, demo.

Status lines go to stderr; ``--help`` on every subcommand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import moq_audio

from .speech import read_wav, speak

DEFAULT_FIRST = (
    "Thanks for calling. Your order shipped on Monday and should arrive by Thursday. "
    "The tracking number is in the email we sent, and you can change the delivery address "
    "until the parcel leaves the depot. Is there anything else I can help you with today?"
)
DEFAULT_SECOND = "Sorry, go ahead. What did you want to change?"


def status(msg: str) -> None:
    """One status line on stderr, prefixed with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def speak_with_interrupt(
    producer: moq_audio.AudioProducer,
    first: np.ndarray,
    second: Optional[np.ndarray],
    interrupt_after: Optional[float],
    *,
    wait_playout=None,
) -> Optional[moq_audio.FlushReport]:
    """Write ``first`` at once (faster than real time, as TTS does), flush ``interrupt_after``
    seconds into playout, then write ``second``; wait until everything is played out.

    ``wait_playout(ms)``: awaitable that resolves once the listener rendered ``ms`` of audio; by
    default the wall clock stands in for it (the producer paces at real time).
    """
    producer.mark("first")
    write = asyncio.ensure_future(producer.write(first))
    report = None
    if interrupt_after is not None:
        if wait_playout is not None:
            await wait_playout(interrupt_after * 1000.0)
        else:
            await asyncio.sleep(interrupt_after)
        report = producer.flush()
        status(
            f"flush -> generation {report.generation}: dropped {report.dropped_ms:.0f} ms "
            f"({report.dropped_pcm_ms:.0f} ms PCM + {report.dropped_encoded_ms:.0f} ms encoded), "
            f"sent {report.sent_ms:.0f} ms, listener heard {report.heard_ms:.0f} ms"
            + (" (estimate)" if report.heard_estimated else "")
        )
    await write
    if second is not None:
        await producer.write(second)
        producer.mark("second")
        status(f"speaking generation {producer.generation}")
    await producer.finish()
    return report



async def cmd_serve(args: argparse.Namespace) -> int:
    web = None if args.no_web else (args.web_root or moq_audio.web_root())
    async with moq_audio.Server(args.addr, static_dir=web) as server:
        status(f"serving MoQ on {server.url} (certificate sha256 {server.fingerprint})")
        if web:
            status(f"browser listener: {server.url}?broadcast=bot")
        if server.websocket_url:
            status(f"WebSocket fallback: {server.websocket_url}")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
    return 0


async def _publish(args: argparse.Namespace, first: np.ndarray, rate: int, second: Optional[np.ndarray]) -> int:
    channels = 1 if first.ndim == 1 else first.shape[1]
    async with moq_audio.connect(args.url) as session:
        status(f"connected to {args.url}")
        producer = session.publish_audio(args.broadcast, sample_rate=rate, channels=channels, lead_ms=args.lead_ms)
        status(f"publishing {len(first) / rate:.1f} s at {rate} Hz on broadcast {args.broadcast!r}")
        if args.wait_listener:
            await asyncio.sleep(args.wait_listener)
        await speak_with_interrupt(producer, first, second, args.interrupt_after)
        status("finished")
    return 0


async def cmd_say(args: argparse.Namespace) -> int:
    first, rate = speak(" ".join(args.text))
    second = speak(args.then)[0] if args.interrupt_after is not None and args.then else None
    return await _publish(args, first, rate, second)


async def cmd_publish(args: argparse.Namespace) -> int:
    first, rate = read_wav(args.file)
    second = None
    if args.interrupt_after is not None and args.then_file:
        second, rate2 = read_wav(args.then_file)
        if rate2 != rate:
            raise SystemExit(f"{args.then_file} is {rate2} Hz but {args.file} is {rate} Hz")
    return await _publish(args, first, rate, second)


async def cmd_listen(args: argparse.Namespace) -> int:
    async with moq_audio.connect(args.url) as session:
        status(f"connected to {args.url}; waiting for broadcast {args.broadcast!r}")
        player = await session.play_audio(args.broadcast, wav_path=args.out, timeout=args.timeout)
        status(f"playing as listener {player.listener_id}, writing {args.out}")
        seen = 0
        try:
            wait = asyncio.ensure_future(player.wait())
            deadline = None if args.duration is None else time.monotonic() + args.duration
            while not wait.done():
                done, _ = await asyncio.wait({wait}, timeout=0.25)
                report = player.report()
                for arrival in report["arrivals"][seen:]:
                    status(f"generation {arrival['generation']} arrived")
                seen = len(report["arrivals"])
                if deadline is not None and time.monotonic() > deadline:
                    break
        finally:
            report = await player.stop()
        status(f"rendered {report['rendered_ms'] / 1000:.1f} s ({report['end'] or 'stopped'}) -> {args.out}")
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    if args.web:
        from .agent import run_web_demo

        return await run_web_demo(args)
    first, rate = speak(args.first)
    second = speak(args.second)[0]
    out = Path(args.out)
    async with moq_audio.Server("127.0.0.1:0") as server:
        status(f"embedded server on {server.url}")
        async with moq_audio.connect(server.url) as bot_session, moq_audio.connect(server.url) as ear:
            producer = bot_session.publish_audio("bot", sample_rate=rate, lead_ms=args.lead_ms)
            player = await ear.play_audio("bot", wav_path=out)
            status(f"listener {player.listener_id} subscribed; bot speaks {len(first) / rate:.1f} s")

            async def heard(ms: float) -> None:
                await player.wait_rendered(ms, generation=0)

            report = await speak_with_interrupt(producer, first, second, args.interrupt_after, wait_playout=heard)
            final = await player.wait()
            first_mark = await producer.wait_mark("first")
            second_mark = await producer.wait_mark("second")
    arrivals = {a["generation"]: a["at_frame"] for a in final["arrivals"]}
    rate_out = final["sample_rate"]
    old_after = sum(
        s["start"] + s["frames"] - max(s["start"], arrivals.get(1, 0))
        for s in final["segments"]
        if s["generation"] == 0 and s["start"] + s["frames"] > arrivals.get(1, 0)
    )
    status(
        f"heard.wav: {final['rendered_ms'] / 1000:.1f} s; after the flush the listener rendered "
        f"{old_after * 1000 / rate_out:.1f} ms of old audio (fade) before the new sentence"
    )
    status(f"marks: first={first_mark.state}, second={second_mark.state}")
    if report is not None:
        status(f"flush report: heard {report.heard_ms:.0f} ms of the first sentence")
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moq-audio",
        description="Interruptible voice over Media over QUIC: publish, flush on barge-in, listen.",
    )
    parser.add_argument("--version", action="version", version=f"moq-audio {moq_audio.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the embedded MoQ server (and the browser listener page)")
    p.add_argument("--addr", default="127.0.0.1:4443", help="UDP+TCP address to bind (default %(default)s)")
    p.add_argument("--web-root", type=Path, help="directory of the browser listener (default: the built web-demo)")
    p.add_argument("--no-web", action="store_true", help="serve no web pages, only MoQ and /certificate.sha256")
    p.set_defaults(func=cmd_serve)

    def publish_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default="http://127.0.0.1:4443/", help="server or relay URL (default %(default)s)")
        p.add_argument("--broadcast", default="bot", help="broadcast path (default %(default)s)")
        p.add_argument("--interrupt-after", type=float, metavar="SECONDS", help="flush this far into playout")
        p.add_argument("--lead-ms", type=float, default=60.0, help="pacing lead in ms (default %(default)s)")
        p.add_argument("--wait-listener", type=float, default=0.0, metavar="SECONDS",
                       help="wait this long before speaking, for listeners to join")

    p = sub.add_parser("say", help="speak TEXT with espeak-ng and publish it")
    p.add_argument("text", nargs="+", help="what to say")
    p.add_argument("--then", default=DEFAULT_SECOND, help="with --interrupt-after: the next sentence")
    publish_options(p)
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("publish", help="publish a 16-bit WAV file")
    p.add_argument("file", type=Path, help="16-bit PCM WAV, mono or stereo, 8-48 kHz")
    p.add_argument("--then-file", type=Path, help="with --interrupt-after: the WAV to play after the flush")
    publish_options(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("listen", help="play a broadcast like a listener and write what is heard to a WAV file")
    p.add_argument("url", help="server or relay URL, e.g. http://127.0.0.1:4443/")
    p.add_argument("--broadcast", default="bot", help="broadcast path (default %(default)s)")
    p.add_argument("--out", default="heard.wav", help="WAV file of what was rendered (default %(default)s)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broadcast")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser(
        "demo",
        help="bot sentence cut off mid-word and the next one at once, heard by a real listener -> heard.wav",
    )
    p.add_argument("--out", default="heard.wav", help="WAV file of what the listener heard (default %(default)s)")
    p.add_argument("--interrupt-after", type=float, default=2.5, metavar="SECONDS",
                   help="flush this far into the first sentence's playout (default %(default)s)")
    p.add_argument("--first", default=DEFAULT_FIRST, help="the sentence that gets interrupted")
    p.add_argument("--second", default=DEFAULT_SECOND, help="the answer after the interruption")
    p.add_argument("--lead-ms", type=float, default=60.0, help="pacing lead in ms (default %(default)s)")
    p.add_argument("--web", action="store_true",
                   help="instead: serve the browser page and hold a barge-in conversation with it")
    p.add_argument("--addr", default="127.0.0.1:4443", help="with --web: address to serve on")
    p.add_argument("--min-speech-ms", type=float, default=180.0,
                   help="with --web: speech needed before a barge-in, ms (default %(default)s; "
                        "120-250 ms rejects coughs and echo)")
    p.add_argument("--first-delay", type=float, default=2.0, metavar="SECONDS",
                   help="with --web: wait this long before the first reply (default %(default)s)")
    p.add_argument("--events", metavar="FILE", help="with --web: append JSON-lines events (barge-ins, replies) here")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return asyncio.run(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (moq_audio.MoqAudioError, ValueError, OSError) as e:
        status(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
