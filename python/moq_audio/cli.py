"""The ``moq-audio`` command line: serve, say, publish, listen, demo.

Status lines go to stderr; ``--help`` on every subcommand. An error is one line on stderr
(``moq-audio: error: ...``) and exit status 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import moq_audio

from .pipecat.options import add_arguments as add_pipecat_arguments
from .speech import EspeakMissing, Pcm, read_wav, speak

if TYPE_CHECKING:
    from ._native import PlayerReport

DEFAULT_FIRST = (
    "Thanks for calling. Your order shipped on Monday and should arrive by Thursday. "
    "The tracking number is in the email we sent, and you can change the delivery address "
    "until the parcel leaves the depot. Is there anything else I can help you with today?"
)
DEFAULT_SECOND = "Sorry, go ahead. What did you want to change?"

#: How often ``listen`` prints new status lines while it plays (s): a display refresh only;
#: the end of the broadcast and ``--duration`` are awaited as events.
STATUS_INTERVAL_S = 0.25

#: Errors a person can act on: each is reported as one line (exit status 1), not a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    moq_audio.MoqAudioError,
    ValueError,
    OSError,  # missing/unreadable files, ports in use
    TimeoutError,
    asyncio.TimeoutError,  # not yet an alias of TimeoutError on Python 3.10
    EspeakMissing,
    subprocess.CalledProcessError,
)

#: ``wait_heard(ms)`` resolves once the listener has heard ``ms`` of the first utterance.
WaitHeard = Callable[[float], Awaitable[object]]


def status(msg: str) -> None:
    """One status line on stderr, prefixed with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def describe(error: BaseException) -> str:
    """``error`` as one line for a person."""
    if isinstance(error, subprocess.CalledProcessError):
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr or ""
        cmd = error.cmd[0] if isinstance(error.cmd, (list, tuple)) else error.cmd
        text = f"{cmd} failed with exit status {error.returncode}: {stderr}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def wall_clock(start: float) -> WaitHeard:
    """A ``WaitHeard`` for when no listener reports playout: ``ms`` after ``start``
    (``loop.time()``) stands in for ``ms`` heard (the producer paces at real time, so the
    listener is behind by about the pacing lead plus its jitter buffer)."""

    async def wait(ms: float) -> None:
        await asyncio.sleep(max(0.0, start + ms / 1000.0 - asyncio.get_running_loop().time()))

    return wait


async def speak_with_interrupt(
    producer: moq_audio.AudioProducer,
    first: Pcm,
    second: Pcm | None,
    interrupt_after: float | None,
    *,
    wait_heard: WaitHeard | None = None,
) -> moq_audio.FlushReport | None:
    """Write ``first`` at once (faster than real time, as TTS does), flush once the listener has
    heard ``interrupt_after`` seconds of it, then write ``second``; wait until everything is
    played out and the track is finished.

    Marks: ``first`` at the start of ``first``, ``interrupt`` at the cut (with
    ``interrupt_after``), ``second`` at the end of ``second``.

    Args:
        producer: a fresh producer (positions count from its generation 0).
        first, second: PCM at the producer's rate, shape (n,) or (n, channels).
        interrupt_after: seconds of ``first`` to let the listener hear, or None for no flush.
        wait_heard: resolves once the listener has heard ``ms`` of ``first``; by default the
            ``interrupt`` mark resolving (a listener's playout report reached it, or no
            listener reported for the producer's mark timeout) does.

    Returns:
        The flush report, or None without ``interrupt_after``.

    Raises:
        ValueError: for a negative ``interrupt_after``.
    """
    producer.mark("first")
    report = None
    if interrupt_after is None:
        await producer.write(first)
    else:
        if interrupt_after < 0:
            raise ValueError(f"interrupt_after must be >= 0 s, got {interrupt_after}")
        cut = min(len(first), round(interrupt_after * producer.sample_rate))
        # Waits only if the part before the cut exceeds the queue capacity.
        await producer.write(first[:cut])
        producer.mark("interrupt")
        rest = asyncio.ensure_future(producer.write(first[cut:]))
        if wait_heard is not None:
            await wait_heard(interrupt_after * 1000.0)
        else:
            event = await producer.wait_mark("interrupt")
            if event.state != "played":
                status(f"no listener reported playing the cut ({event.state}): flushing anyway")
        report = producer.flush()
        status(
            f"flush -> generation {report.generation}: dropped {report.dropped_ms:.0f} ms "
            f"({report.dropped_pcm_ms:.0f} ms PCM + {report.dropped_encoded_ms:.0f} ms encoded), "
            f"sent {report.sent_ms:.0f} ms, listener heard {report.heard_ms:.0f} ms"
            + (" (estimate)" if report.heard_estimated else "")
        )
        await rest
    if second is not None:
        await producer.write(second)
        producer.mark("second")
        status(f"speaking generation {producer.generation}")
    await producer.finish()
    return report


def feedback_path(broadcast: str, listener_id: str) -> str:
    """The broadcast on which listener ``listener_id`` of ``broadcast`` reports its playout
    (README, "Wire format", Feedback); it has one track, ``playout.json``."""
    return f"{broadcast}/listeners/{listener_id}"


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


async def _publish(args: argparse.Namespace, first: Pcm, rate: int, second: Pcm | None) -> int:
    channels = 1 if first.ndim == 1 else first.shape[1]
    async with moq_audio.connect(args.url, token=args.token) as session:
        status(f"connected to {args.url}")
        producer = session.publish_audio(args.broadcast, sample_rate=rate, channels=channels, lead_ms=args.lead_ms)
        wait_heard: WaitHeard | None = None
        if args.wait_listener:
            status(f"waiting for listener {args.wait_listener!r} (up to {args.wait_timeout:g} s)")
            # The listener announces its feedback broadcast once it is subscribed to the audio,
            # so nothing written from here on is missed; its playout reports resolve the marks.
            await session.subscribe_data(
                feedback_path(args.broadcast, args.wait_listener), "playout.json", timeout=args.wait_timeout
            )
            status(f"listener {args.wait_listener!r} is playing")
        else:
            # Nobody we know of reports playout: the wall clock stands in for it.
            wait_heard = wall_clock(asyncio.get_running_loop().time())
        status(f"publishing {len(first) / rate:.1f} s at {rate} Hz on broadcast {args.broadcast!r}")
        await speak_with_interrupt(producer, first, second, args.interrupt_after, wait_heard=wait_heard)
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
            raise ValueError(f"{args.then_file} is {rate2} Hz but {args.file} is {rate} Hz")
    return await _publish(args, first, rate, second)


async def cmd_listen(args: argparse.Namespace) -> int:
    async with moq_audio.connect(args.url, token=args.token) as session:
        status(f"connected to {args.url}; waiting for broadcast {args.broadcast!r}")
        player = await session.play_audio(
            args.broadcast, wav_path=args.out, timeout=args.timeout, listener_id=args.listener_id
        )
        status(f"playing as listener {player.listener_id}, writing {args.out}")
        seen = 0

        def new_arrivals(report: PlayerReport) -> None:
            nonlocal seen
            arrivals = report.arrivals
            for arrival in arrivals[seen:]:
                status(f"generation {arrival.generation} arrived")
            seen = len(arrivals)

        ended = asyncio.ensure_future(player.wait())
        loop = asyncio.get_running_loop()
        deadline = None if args.duration is None else loop.time() + args.duration
        try:
            while not ended.done():
                left = STATUS_INTERVAL_S if deadline is None else min(STATUS_INTERVAL_S, deadline - loop.time())
                if left <= 0:
                    break
                await asyncio.wait({ended}, timeout=left)
                new_arrivals(player.report())
        finally:
            report = await player.stop()
        new_arrivals(report)
        status(f"rendered {report.rendered_ms / 1000:.1f} s ({report.end or 'stopped'}) -> {args.out}")
    return 0


def old_audio_after_cut(report: PlayerReport) -> float:
    """ms of generation 0 the Player rendered after generation 1 arrived (the fade)."""
    return report.ms_of(0, after=report.arrival_of(1) or 0)


async def cmd_demo(args: argparse.Namespace) -> int:
    if args.pipecat:
        try:
            from .pipecat.demo import run_pipecat_demo
        except ImportError as e:
            raise ValueError(f'--pipecat needs Pipecat: pip install "moq-audio[pipecat]" ({e})') from e
        return await run_pipecat_demo(args)
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

            report = await speak_with_interrupt(producer, first, second, args.interrupt_after, wait_heard=heard)
            final = await player.wait()
            first_mark = await producer.wait_mark("first")
            second_mark = await producer.wait_mark("second")
    status(
        f"heard.wav: {final.rendered_ms / 1000:.1f} s; after the flush the listener rendered "
        f"{old_audio_after_cut(final):.1f} ms of old audio (fade) before the new sentence"
    )
    status(f"marks: first={first_mark.state}, second={second_mark.state}")
    if report is not None:
        status(f"flush report: heard {report.heard_ms:.0f} ms of the first sentence")
    print(out)
    return 0


def seconds(text: str) -> float:
    """argparse type: a duration in seconds, >= 0."""
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


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

    def token_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--token",
            default=os.environ.get("MOQ_TOKEN"),
            metavar="JWT",
            help="token for a relay with auth (sent as ?jwt=; default: $MOQ_TOKEN; never printed)",
        )

    def publish_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default="http://127.0.0.1:4443/", help="server or relay URL (default %(default)s)")
        token_option(p)
        p.add_argument("--broadcast", default="bot", help="broadcast path (default %(default)s)")
        p.add_argument(
            "--interrupt-after",
            type=seconds,
            metavar="SECONDS",
            help="flush once the listener has heard this much (with --wait-listener: its playout reports say "
            "so; without: the wall clock since the first write stands in)",
        )
        p.add_argument("--lead-ms", type=float, default=60.0, help="pacing lead in ms (default %(default)s)")
        p.add_argument(
            "--wait-listener",
            metavar="ID",
            help="speak only once the listener ID plays the broadcast (e.g. `moq-audio listen --listener-id ID`)",
        )
        p.add_argument(
            "--wait-timeout",
            type=seconds,
            default=60.0,
            metavar="SECONDS",
            help="with --wait-listener: give up after this long (default %(default)s)",
        )

    p = sub.add_parser("say", help="speak TEXT with espeak-ng and publish it")
    p.add_argument("text", nargs="+", help="what to say")
    p.add_argument("--then", default=DEFAULT_SECOND, help="with --interrupt-after: the next sentence")
    publish_options(p)
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("publish", help="publish a WAV file")
    p.add_argument("file", type=Path, help="WAV file (8/16/24/32-bit PCM or float), mono or stereo, 8-48 kHz")
    p.add_argument("--then-file", type=Path, help="with --interrupt-after: the WAV to play after the flush")
    publish_options(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("listen", help="play a broadcast like a listener and write what is heard to a WAV file")
    p.add_argument("url", help="server or relay URL, e.g. http://127.0.0.1:4443/")
    token_option(p)
    p.add_argument("--broadcast", default="bot", help="broadcast path (default %(default)s)")
    p.add_argument("--out", default="heard.wav", help="WAV file of what was rendered (default %(default)s)")
    p.add_argument("--duration", type=seconds, metavar="SECONDS", help="stop after this long")
    p.add_argument("--timeout", type=seconds, default=30.0, help="seconds to wait for the broadcast")
    p.add_argument("--listener-id", metavar="ID", help="the id playout is reported under (default: a unique one)")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser(
        "demo",
        help="bot sentence cut off mid-word and the next one at once, heard by a real listener -> heard.wav",
    )
    p.add_argument("--out", default="heard.wav", help="WAV file of what the listener heard (default %(default)s)")
    p.add_argument(
        "--interrupt-after",
        type=seconds,
        default=2.5,
        metavar="SECONDS",
        help="flush this far into the first sentence's playout (default %(default)s)",
    )
    p.add_argument("--first", default=DEFAULT_FIRST, help="the sentence that gets interrupted")
    p.add_argument("--second", default=DEFAULT_SECOND, help="the answer after the interruption")
    p.add_argument("--lead-ms", type=float, default=60.0, help="pacing lead in ms (default %(default)s)")
    p.add_argument(
        "--web", action="store_true", help="instead: serve the browser page and hold a barge-in conversation with it"
    )
    p.add_argument(
        "--pipecat",
        action="store_true",
        help="instead: the offline Pipecat bot (Silero VAD, espeak-ng TTS) for the browser page; "
        'needs pip install "moq-audio[pipecat]"',
    )
    p.add_argument("--addr", default="127.0.0.1:4443", help="with --web: address to serve on")
    p.add_argument(
        "--min-speech-ms",
        type=float,
        default=180.0,
        help="with --web: speech needed before a barge-in, ms (default %(default)s; 120-250 ms rejects coughs and echo)",
    )
    p.add_argument(
        "--first-delay",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="with --web: wait this long before the first reply (default %(default)s)",
    )
    p.add_argument("--events", metavar="FILE", help="with --web: append JSON-lines events (barge-ins, replies) here")
    add_pipecat_arguments(p)  # only adds what --pipecat needs beyond the above; loads no Pipecat
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 for an error, 130 after Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        return asyncio.run(command(args))
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as e:
        print(f"moq-audio: error: {describe(e)}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
