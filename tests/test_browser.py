"""The full-duplex barge-in demo in real Chromium: the page plays the bot, a fake microphone
speaks over it, the agent's VAD flushes, the page goes silent and the answer plays.

Needs Debian's chromium (/usr/bin/chromium) and the built page (web-demo/dist); the README's
test command installs and builds both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import moq_audio
from moq_audio.speech import speak, write_wav

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and moq_audio.web_root() is not None),
    reason="needs /usr/bin/chromium and the built web-demo (run the README's test command)",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        [sys.executable, "-m", "moq_audio.cli", "demo", "--web", "--addr", f"127.0.0.1:{port}",
         "--events", str(events), "--first-delay", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def test_talking_over_the_bot_in_chromium_silences_it_and_it_answers(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    url, events_path, _proc = demo
    mic = tmp_path / "mic.wav"
    fake_microphone(mic)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}%noloop",
            ],
        )
        try:
            page = browser.new_page()
            page.goto(f"{url}?autostart=1")
            poll = lambda: page.wait_for_timeout(100)  # noqa: E731
            state = lambda: page.evaluate("window.moqAudio ? window.moqAudio.state : null") or {}  # noqa: E731
            wait_for(lambda: page.evaluate("!!(window.moqAudio && window.moqAudio.ready)"), 20, "the page to connect", poll)

            # 1. The page renders the bot's voice.
            wait_for(lambda: state().get("playing") and state()["level"] > 0.001, 20, "bot audio", poll)

            # 2. The fake microphone talks over it: the agent's VAD detects a barge-in and flushes.
            barge = wait_for(
                lambda: [e for e in read_events(events_path) if e["event"] == "barge_in" and e["why"].startswith("voice")],
                30, "a voice barge-in", poll,
            )[0]
            assert barge["flush_us"] < 5_000, "flush() is instant"

            # 3. The page went silent after the flush, within the bound it reports (the fade).
            flush = wait_for(
                lambda: [f for f in page.evaluate("window.moqAudio.flushes") if f["to"] >= barge["generation"]],
                10, "the page to measure the flush", poll,
            )[0]
            assert 0 <= flush["flushToSilenceMs"] <= 10.0, flush

            # 4. The bot answers, and the page plays the answer.
            wait_for(
                lambda: any(e["event"] == "speak" and e["text"].startswith("You interrupted me")
                            for e in read_events(events_path)),
                15, "the answer", poll,
            )
            wait_for(lambda: (state()["renderedGeneration"] or 0) >= barge["generation"] and state()["playing"],
                     15, "the answer to play", poll)
            interrupted = [e for e in read_events(events_path) if e["event"] == "interrupted"][0]
            assert not interrupted["heard_estimated"], "the page's playout feedback reached the agent"
            assert interrupted["heard_ms"] > 0
            # Marks resolve from the page's feedback: the cut reply flushed, the answer played.
            cut = wait_for(lambda: [e for e in read_events(events_path) if e["event"] == "mark"], 10, "the cut mark", poll)[0]
            assert cut["state"] == "flushed", cut
            answered = wait_for(
                lambda: [e for e in read_events(events_path) if e["event"] == "spoke" and e["text"].startswith("You interrupted")],
                15, "the answer's mark", poll,
            )[0]
            assert answered["state"] == "played" and answered["listener"] == state()["listenerId"], answered

            # 5. The Interrupt button path: during the next reply.
            def next_reply():
                spoken = [e for e in read_events(events_path) if e["event"] == "speak"]
                answer = next(i for i, e in enumerate(spoken) if e["text"].startswith("You interrupted"))
                return len(spoken) > answer + 1

            wait_for(next_reply, 30, "the next reply", poll)
            wait_for(lambda: state()["playing"], 10, "the next reply to play", poll)
            page.click("#interrupt")
            button = wait_for(
                lambda: [e for e in read_events(events_path) if e["event"] == "barge_in" and e["why"] == "Interrupt button"],
                10, "the Interrupt button barge-in", poll,
            )[0]
            wait_for(lambda: [f for f in page.evaluate("window.moqAudio.flushes") if f["to"] >= button["generation"]],
                     10, "the page to measure the second flush", poll)
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
