"""The browser page in real Chromium.

1. The full-duplex barge-in demo: the page plays the bot, a fake microphone speaks over it, the
   agent's VAD flushes, the page goes silent and the answer plays.
2. Wire format v2 on the listen side: a v2 publisher (web-demo/tests/harness/v2-publisher.ts,
   WebCodecs Opus + @moq/net, injected into the page) sends a tone per generation with LOC
   generation properties, flush markers and a cancel marker through the embedded server; the page
   plays each generation at its pitch (measured on its output), cuts at each flush within the
   fade, and reports the track "cancelled". At 48 and 24 kHz, and from an AudioContext started at
   another rate than the decoder's (the page moves to the decoder's rate; Web Audio resamples).

Needs Debian's chromium (/usr/bin/chromium), the built page (web-demo/dist) and its node_modules
(esbuild bundles the harness); the README's test command installs and builds them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import moq_audio
from moq_audio.speech import speak, write_wav
from support.net import free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WEB_DEMO = Path(__file__).resolve().parent.parent / "web-demo"
ESBUILD = WEB_DEMO / "node_modules" / ".bin" / "esbuild"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and moq_audio.web_root() is not None),
    reason="needs /usr/bin/chromium and the built web-demo (run the README's test command)",
)


def fake_microphone(path: Path) -> None:
    """3 s of silence, then a person talking for ~2.5 s, then silence (played once)."""
    voice, rate = speak("Wait, stop please. I have a question about my order.")
    silence = np.zeros(rate * 3, dtype=np.int16)
    write_wav(path, np.concatenate([silence, voice, np.zeros(rate * 20, dtype=np.int16)]), rate)


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout: float, what: str, poll=None):
    """Poll ``predicate`` (a browser page and a process log are not awaitable from here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        poll() if poll else time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def demo(tmp_path):
    port = free_port()
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moq_audio.cli",
            "demo",
            "--web",
            "--addr",
            f"127.0.0.1:{port}",
            "--events",
            str(events),
            "--first-delay",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        yield url, events, proc
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "browser-agent.log").write_text(err or "")


# One rerun, only for an answer mark that resolved "unknown": in 2 of about 8 fresh-clone runs on
# a loaded 2-core machine (2026-11-22, one of them in CI) the page stopped sending playout reports
# short of the answer's end, so the mark timed out. In the CI run's artifacts the page had run
# dry once (10 ms concealed, no underrun: nothing came after), so it never got audio up to the
# mark; whether the answer's last, padded frame (publish/pump.rs, partial_deadline) was sent late
# or not at all is not known yet. Every other assertion fails at once.
@pytest.mark.flaky(reruns=1, only_rerun=["the answer's mark resolved 'unknown'"])
def test_talking_over_the_bot_in_chromium_silences_it_and_it_answers(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    url, events_path, _proc = demo
    mic = tmp_path / "mic.wav"
    fake_microphone(mic)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}%noloop"],
        )
        try:
            page = browser.new_page()
            page.goto(f"{url}?autostart=1")
            poll = lambda: page.wait_for_timeout(100)
            state = lambda: page.evaluate("window.moqAudio ? window.moqAudio.state : null") or {}
            wait_for(
                lambda: page.evaluate("!!(window.moqAudio && window.moqAudio.ready)"), 20, "the page to connect", poll
            )

            # 1. The page renders the bot's voice.
            wait_for(lambda: state().get("playing") and state()["level"] > 0.001, 20, "bot audio", poll)

            # 2. The fake microphone talks over it: the agent's VAD detects a barge-in and flushes.
            barge = wait_for(
                lambda: [
                    e for e in read_events(events_path) if e["event"] == "barge_in" and e["why"].startswith("voice")
                ],
                30,
                "a voice barge-in",
                poll,
            )[0]
            assert barge["flush_us"] < 5_000, "flush() is instant"

            # 3. The page went silent after the flush, within the bound it reports (the fade).
            flush = wait_for(
                lambda: [f for f in page.evaluate("window.moqAudio.flushes") if f["to"] >= barge["generation"]],
                10,
                "the page to measure the flush",
                poll,
            )[0]
            assert 0 <= flush["flushToSilenceMs"] <= 10.0, flush

            # 4. The bot answers, and the page plays the answer.
            wait_for(
                lambda: any(
                    e["event"] == "speak" and e["text"].startswith("You interrupted me")
                    for e in read_events(events_path)
                ),
                15,
                "the answer",
                poll,
            )
            wait_for(
                lambda: (state()["renderedGeneration"] or 0) >= barge["generation"] and state()["playing"],
                15,
                "the answer to play",
                poll,
            )
            interrupted = next(e for e in read_events(events_path) if e["event"] == "interrupted")
            assert not interrupted["heard_estimated"], "the page's playout feedback reached the agent"
            assert interrupted["heard_ms"] > 0
            # Marks resolve from the page's feedback: the cut reply flushed, the answer played.
            cut = wait_for(
                lambda: [e for e in read_events(events_path) if e["event"] == "mark"], 10, "the cut mark", poll
            )[0]
            assert cut["state"] == "flushed", cut
            answered = wait_for(
                lambda: [
                    e
                    for e in read_events(events_path)
                    if e["event"] == "spoke" and e["text"].startswith("You interrupted")
                ],
                15,
                "the answer's mark",
                poll,
            )[0]
            assert answered["state"] == "played" and answered["listener"] == state()["listenerId"], (
                f"the answer's mark resolved {answered['state']!r}: {answered}"
            )

            # 5. The Interrupt button path: during the next reply.
            def next_reply():
                spoken = [e for e in read_events(events_path) if e["event"] == "speak"]
                answer = next(i for i, e in enumerate(spoken) if e["text"].startswith("You interrupted"))
                return len(spoken) > answer + 1

            wait_for(next_reply, 30, "the next reply", poll)
            wait_for(lambda: state()["playing"], 10, "the next reply to play", poll)
            page.click("#interrupt")
            button = wait_for(
                lambda: [
                    e for e in read_events(events_path) if e["event"] == "barge_in" and e["why"] == "Interrupt button"
                ],
                10,
                "the Interrupt button barge-in",
                poll,
            )[0]
            wait_for(
                lambda: [f for f in page.evaluate("window.moqAudio.flushes") if f["to"] >= button["generation"]],
                10,
                "the page to measure the second flush",
                poll,
            )
        finally:
            try:
                page.screenshot(path=str(ARTIFACTS / "browser-demo.png"), full_page=True)
                timeline = page.evaluate(
                    "window.moqAudio ? ({state: window.moqAudio.state, flushes: window.moqAudio.flushes,"
                    " timeline: window.moqAudio.timeline}) : null"
                )
                (ARTIFACTS / "browser-timeline.json").write_text(json.dumps(timeline, indent=2))
            finally:
                browser.close()
    shutil.copy(events_path, ARTIFACTS / "browser-events.jsonl")


# ---- wire format v2 on the listen side -----------------------------------------------------------

#: The embedded server with the page (moq_audio.Server, any free port); prints its URL.
SERVE = """
import asyncio, moq_audio
async def main():
    async with moq_audio.Server("127.0.0.1:0", static_dir=moq_audio.web_root()) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""

#: One tone per generation (Hz), each sent for this long (ms) before the next flush.
TONES = [440.0, 660.0, 880.0]
TONE_MS = 2000
#: What the page renders now: generation, pitch of its output, end of the track, publisher error.
SAMPLE = """() => ({generation: moqAudio.state.renderedGeneration, playing: moqAudio.state.playing,
                   hz: moqAudio.peakHz(), end: moqAudio.state.botEnd, error: window.v2error || null})"""


@pytest.fixture
def web_server():
    proc = subprocess.Popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        yield url
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def v2_publisher() -> str:
    """The v2 test publisher bundled (with @moq/net and the page's loc.ts) as one ES module."""
    if not ESBUILD.exists():
        pytest.skip("web-demo/node_modules is missing (npm ci in web-demo/)")
    out = subprocess.run(
        [str(ESBUILD), "tests/harness/v2-publisher.ts", "--bundle", "--format=esm", "--target=es2022"],
        cwd=WEB_DEMO,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(
    ("rate", "context_rate"),
    [(48_000, None), (24_000, None), (24_000, 24_000)],
    ids=["48k", "24k", "24k-context-moves-to-decoder-rate"],
)
def test_page_plays_v2_generations_cuts_at_markers_and_ends_cancelled(web_server, v2_publisher, rate, context_rate):
    from playwright.sync_api import sync_playwright

    url = web_server
    broadcast = f"tone{rate}"
    query = f"?autostart=1&broadcast={broadcast}&id=web-v2" + (f"&contextRate={context_rate}" if context_rate else "")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page()
            page.goto(url + query)
            poll = lambda: page.wait_for_timeout(100)
            state = lambda: page.evaluate("window.moqAudio.state")
            wait_for(
                lambda: page.evaluate("!!(window.moqAudio && window.moqAudio.ready)"), 20, "the page to connect", poll
            )
            page.add_script_tag(content=v2_publisher, type="module")
            wait_for(lambda: page.evaluate("!!window.moqV2Publisher"), 10, "the v2 publisher", poll)
            wait_for(lambda: state()["mic"] == "on", 10, "the fake microphone", poll)
            page.evaluate(
                """o => { window.v2 = window.moqV2Publisher.publish(o)
                            .then(r => (window.v2result = r), e => (window.v2error = String(e))); }""",
                {
                    "url": url,
                    "broadcast": broadcast,
                    "sampleRate": rate,
                    "channels": 1,
                    "segments": [{"hz": hz, "ms": TONE_MS} for hz in TONES],
                    "end": "cancel",
                },
            )

            # Each generation plays at its own pitch (what the page outputs, after the worklet).
            heard: dict[int, list[float]] = {g: [] for g in range(len(TONES))}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = page.evaluate(SAMPLE)
                assert now["error"] is None, now["error"]
                if now["end"]:
                    break
                if now["playing"] and now["generation"] in heard and now["hz"] is not None:
                    heard[now["generation"]].append(now["hz"])
                poll()
            s = state()
            assert s["botEnd"] == "cancelled", s
            for g, hz in enumerate(TONES):
                samples = sorted(heard[g])
                assert len(samples) >= 5, (g, heard)
                median = samples[len(samples) // 2]
                assert abs(median - hz) < 0.03 * hz, (
                    f"generation {g}: heard {median:.0f} Hz, sent {hz:.0f} Hz ({samples})"
                )

            snapshot = page.evaluate("JSON.parse(JSON.stringify(window.moqAudio))")
            catalog = snapshot["state"]["catalog"]
            assert (catalog["container"], catalog["wireVersion"], catalog["generation"]["kind"]) == ("loc", 2, "frame")
            assert snapshot["state"]["renderedGenerations"] == [0, 1, 2]
            # Every cut (two flushes, then the cancel) went silent within the fade of the worklet learning of it.
            cuts = {f["to"]: f for f in snapshot["flushes"]}
            assert sorted(cuts) == [1, 2, 3], snapshot["flushes"]
            for f in cuts.values():
                assert 0 <= f["flushToSilenceMs"] <= 10.0, f
            assert snapshot["counters"]["markers"] >= 1  # the cancel; a flush marker may be overtaken by its audio
            assert snapshot["counters"]["decodeErrors"] == 0 and snapshot["counters"]["malformedFrames"] == 0
            # The AudioContext runs at the decoder's rate (Chromium decodes Opus at 48 kHz).
            assert snapshot["state"]["decodedSampleRate"] == 48_000
            assert snapshot["state"]["sampleRate"] == snapshot["state"]["decodedSampleRate"]
            if context_rate:
                assert any("moving playback" in e["text"] for e in snapshot["timeline"]), snapshot["timeline"]
            # After the cancel the page is silent.
            wait_for(lambda: not state()["playing"] and state()["level"] < 1e-4, 5, "silence after the cancel", poll)

            # The page answers a v2 bot in v2: its microphone (Chromium's fake device) as LOC frames
            # of generation 0 under a catalog with container "loc" and moqAudio version 2.
            wait_for(
                lambda: state()["micWireVersion"] == 2 and state()["micFrames"] > 10, 10, "v2 microphone audio", poll
            )
            mic = page.evaluate(
                "o => window.moqV2Publisher.readMic(o)", {"url": url, "broadcast": "user", "frames": 10}
            )
            rendition = mic["catalog"]["audio"]["renditions"]["audio"]
            assert (rendition["codec"], rendition["sampleRate"], rendition["container"]) == (
                "opus",
                48_000,
                {"kind": "loc"},
            )
            assert mic["catalog"]["moqAudio"]["version"] == 2
            assert mic["catalog"]["moqAudio"]["generationProperty"] == 0x4D4100
            frames = mic["frames"]
            assert len(frames) == 10 and all(
                f["generation"] == 0 and f.get("event") is None and f["bytes"] > 0 for f in frames
            ), frames
            steps = {b["timestampUs"] - a["timestampUs"] for a, b in itertools.pairwise(frames)}
            assert steps <= {19_999, 20_000, 20_001}, steps  # 20 ms Opus frames (µs, rounded)
            groups = [f["group"] for f in frames]
            assert (
                all(b - a in (0, 1) for a, b in itertools.pairwise(groups)) and max(map(groups.count, groups)) <= 5
            ), groups
            assert (mic["decoded"], mic["decodedRate"]) == (10, 48_000), mic
        finally:
            if page is not None:
                ARTIFACTS.mkdir(exist_ok=True)
                name = f"browser-v2-{rate}" + (f"-ctx{context_rate}" if context_rate else "")
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.json").write_text(
                    json.dumps(
                        page.evaluate("window.moqAudio ? JSON.parse(JSON.stringify(window.moqAudio)) : null"), indent=2
                    )
                )
            browser.close()


# ---- the real producer at 24 and 48 kHz ------------------------------------------------------------

#: The embedded server and a moq-audio producer at RATE (argv[1]), driven by lines on stdin: each
#: "tone HZ" flushes (after the first) and writes 4 s of a HZ tone; "end" finishes the track.
TONE_BOT = """
import asyncio, sys
import numpy as np
import moq_audio
RATE = int(sys.argv[1])
async def main():
    async with moq_audio.Server("127.0.0.1:0", static_dir=moq_audio.web_root()) as server:
        print(server.url, flush=True)
        async with moq_audio.connect(server.url) as session:
            bot = session.publish_audio("bot", sample_rate=RATE)
            loop = asyncio.get_running_loop()
            first = True
            while (line := (await loop.run_in_executor(None, sys.stdin.readline)).split()) != ["end"]:
                if not first:
                    bot.flush()
                first = False
                t = np.arange(RATE * 4) / RATE
                await bot.write((0.3 * np.sin(2 * np.pi * float(line[1]) * t)).astype(np.float32))
                print("written", flush=True)
            await bot.finish()
            print("done", flush=True)
asyncio.run(main())
"""


@pytest.mark.parametrize("rate", [48_000, 24_000], ids=["48k", "24k"])
def test_page_plays_the_real_producer_at_its_pitch(rate):
    """Today's Rust producer (whatever wire version it speaks) at 48 and 24 kHz: the page runs its
    AudioContext at the decoder's rate and each generation is heard at the pitch that was sent."""
    from playwright.sync_api import sync_playwright

    proc = subprocess.Popen(
        [sys.executable, "-c", TONE_BOT, str(rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    def command(line: str, reply: str) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == reply

    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{url}?autostart=1&mic=0&id=web-tone")
                poll = lambda: page.wait_for_timeout(100)
                wait_for(
                    lambda: page.evaluate("window.moqAudio.state.bot === 'playing'"), 20, "the bot's catalog", poll
                )
                heard: dict[int, list[float]] = {0: [], 1: []}

                def listen(generation: int) -> bool:
                    now = page.evaluate(SAMPLE)
                    if now["playing"] and now["generation"] in heard and now["hz"] is not None:
                        heard[now["generation"]].append(now["hz"])
                    return len(heard[generation]) >= 10

                for generation, hz in enumerate((440.0, 660.0)):
                    command(f"tone {hz}", "written")
                    wait_for(lambda g=generation: listen(g), 20, f"generation {generation} to play", poll)
                command("end", "done")
                state = page.evaluate("window.moqAudio.state")
            finally:
                browser.close()
        for g, hz in enumerate((440.0, 660.0)):
            samples = sorted(heard[g])
            median = samples[len(samples) // 2]
            assert abs(median - hz) < 0.03 * hz, f"generation {g}: heard {median:.0f} Hz, sent {hz:.0f} Hz ({samples})"
        assert state["catalog"]["sampleRate"] == rate
        assert state["sampleRate"] == state["decodedSampleRate"] == 48_000, state
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_page_takes_a_server_url_and_keeps_its_token_out_of_sight(web_server):
    """?url= picks the server (here the one serving the page, named explicitly) and ?token= goes
    only into the connect URL as ?jwt=: not into the page's text, its state or its console."""
    from playwright.sync_api import sync_playwright

    url = web_server
    token = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2Vu.sig-_42"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda msg: console.append(msg.text))
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto(f"{url}?autostart=1&mic=0&url={url}&token={token}")
            poll = lambda: page.wait_for_timeout(100)
            wait_for(
                lambda: page.evaluate("!!(window.moqAudio && window.moqAudio.ready)"), 20, "the page to connect", poll
            )
            state = page.evaluate("window.moqAudio.state")
            assert state["server"] == url and state["token"] is True, state
            shown = page.inner_text("body")
            assert f"{url} (with token)" in shown
            everything = json.dumps(page.evaluate("JSON.parse(JSON.stringify(window.moqAudio))")) + shown
            everything += "\n".join(console)
            assert token not in everything and "c2VjcmV0LXRva2Vu" not in everything
            # @moq/net logs the connect URL: it went through the page's redaction.
            assert any("jwt=<token>" in line for line in console), console
            # The fingerprint fetch goes without the query (the token is for the MoQ session only).
            assert any(r.endswith("/certificate.sha256") for r in requests), requests
            assert not any(token in r for r in requests if "certificate" in r)
        finally:
            browser.close()


# ---- the adaptive jitter buffer on the page -----------------------------------------------------------

#: The page's server, a bot speaking a tone without end, and bench/impair.py's proxy in front of the
#: server (40 ms ±10 ms each way). Prints "<server url> <proxy url>"; on the line "outage" from the
#: test, drops everything towards the listener for 400 ms (the frames sent meanwhile come late, as
#: QUIC retransmissions).
IMPAIRED = """
import asyncio, sys
import numpy as np
import moq_audio
sys.path.insert(0, sys.argv[1])
from impair import Impairment, Profile

async def main():
    net = Profile(delay_ms=40, jitter_ms=10, keep_order=True)
    async with (
        moq_audio.Server("127.0.0.1:0", static_dir=moq_audio.web_root()) as server,
        Impairment(upstream=f"127.0.0.1:{server.port}", up=net, down=net, seed=2, websocket=False) as proxy,
        moq_audio.connect(server.url) as bot,
    ):
        producer = bot.publish_audio("bot", sample_rate=48000)
        tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(48000) / 48000)).astype(np.float32)

        async def speak():
            while True:
                await producer.write(tone)

        async def commands():
            loop = asyncio.get_running_loop()
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                if line.strip() == "outage":
                    t = proxy.clock()
                    proxy.add_outage(t, t + 0.4, "down")
                    print("outage", flush=True)

        print(server.url, proxy.url, flush=True)
        speaking = asyncio.create_task(speak())
        await commands()
        speaking.cancel()

asyncio.run(main())
"""


def test_page_shows_its_jitter_buffer_target_and_concealment_behind_an_impaired_network():
    """Through the impairment proxy the page plays, shows its jitter buffer's target, measured
    jitter and concealed audio (state and on screen); a 400 ms outage makes it conceal the gap
    (WebCodecs has no PLC: the worklet repeats the last pitch period) and raises its target."""
    from playwright.sync_api import sync_playwright

    bench = Path(__file__).resolve().parent.parent / "bench"
    proc = subprocess.Popen(
        [sys.executable, "-c", IMPAIRED, str(bench)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline().split()
        assert len(line) == 2 and line[1].startswith("http://127.0.0.1:"), (line, proc.stderr.read())
        server_url, proxy_url = line
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{server_url}?autostart=1&mic=0&url={proxy_url}")
                poll = lambda: page.wait_for_timeout(100)
                state = lambda: page.evaluate("window.moqAudio.state")
                wait_for(lambda: state()["playing"] and state()["level"] > 0.01, 30, "the tone through the proxy", poll)
                # Render a second of it, then the outage.
                wait_for(
                    lambda: (page.evaluate("window.moqAudio.workletStats") or {}).get("renderedFrames", 0) > 48_000,
                    10,
                    "1 s rendered",
                    poll,
                )
                before = state()
                assert before["targetMs"] > 0, before
                proc.stdin.write("outage\n")
                proc.stdin.flush()
                assert proc.stdout.readline().strip() == "outage"
                # The frames sent during the outage come ~400 ms late: the buffer runs dry (an
                # underrun), conceals, plays them when they come, and its target covers such a delay
                # from then on (within its 400 ms maximum).
                after = wait_for(
                    lambda: (
                        (s := state())["underruns"] > before["underruns"]
                        and s["concealedMs"] > before["concealedMs"]
                        and s["targetMs"] >= 300
                        and s["playing"]
                        and s
                    ),
                    20,
                    "an underrun, concealment and a raised target after the outage",
                    poll,
                )
                # What a person sees: the numbers on the page. They are redrawn every 100 ms, so
                # right after the state changed the screen may still show the target from before.
                wait_for(
                    lambda: (t := page.text_content("#target")) not in (None, "–") and int(t) >= 300,
                    5,
                    f"the raised target on screen (state: {after})",
                    poll,
                )
                assert int(page.text_content("#concealed") or "0") >= 1
                assert page.text_content("#jitter") not in (None, "–")
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "browser-impaired.log").write_text(err or "")
