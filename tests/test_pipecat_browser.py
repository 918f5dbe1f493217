"""The offline Pipecat bot (``python -m moq_audio.pipecat.demo``, what ``moq-audio demo --pipecat``
runs) with the browser page in real Chromium and a fake microphone.

The page plays the bot; ~3 s in, the fake microphone (espeak-ng speech) talks over it; the
page's microphone broadcast goes through the transport's input and Silero VAD, the bot is
interrupted and flushes; the page goes silent within its fade and shows the transcript cut to
what it played ("... …"); the assistant context holds that, not the whole reply; the bot's
answer plays and quotes it.

Needs Debian's chromium, the built page (web-demo/dist) and Pipecat (Python >= 3.11).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import moq_audio
from moq_audio.speech import speak, write_wav
from support.net import free_port

pytest.importorskip(
    "pipecat",
    reason="Pipecat 1.x needs Python >= 3.11"
    if sys.version_info < (3, 11)
    else 'Pipecat is not installed: pip install "moq-audio[pipecat]"',
)

from moq_audio.pipecat.demo import STORIES

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
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
    """3 s of silence, a person talking for ~2.5 s, then silence (played once)."""
    voice, rate = speak("Wait, stop please. I have a question about my order.")
    write_wav(path, np.concatenate([np.zeros(rate * 3, np.int16), voice, np.zeros(rate * 30, np.int16)]), rate)


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Any, timeout: float, what: str, poll: Any) -> Any:
    """Poll ``predicate`` (a browser page and a process log are not awaitable from here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        poll()
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def bot(tmp_path):
    events = tmp_path / "events.jsonl"
    cmd = [sys.executable, "-m", "moq_audio.pipecat.demo", "--addr", f"127.0.0.1:{free_port()}"]
    cmd += ["--events", str(events), "--first-delay", "0.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        yield url, events
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "pipecat-browser-bot.log").write_text(err or "")


def test_talking_over_the_pipecat_bot_in_chromium(bot, tmp_path):
    from playwright.sync_api import sync_playwright

    url, events_path = bot
    mic = tmp_path / "mic.wav"
    fake_microphone(mic)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}%noloop"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{url}?autostart=1")

            def poll() -> None:
                page.wait_for_timeout(100)

            def state() -> dict[str, Any]:
                return page.evaluate("window.moqAudio ? window.moqAudio.state : null") or {}

            def events(kind: str) -> list[dict[str, Any]]:
                return [e for e in read_events(events_path) if e["event"] == kind]

            wait_for(lambda: page.evaluate("!!(window.moqAudio && window.moqAudio.ready)"), 20, "the page", poll)
            # 1. The page's microphone reached the bot, and the page plays the bot's first reply.
            wait_for(lambda: events("client_connected"), 20, "the page's microphone at the bot", poll)
            wait_for(lambda: state().get("playing") and state()["level"] > 0.001, 20, "bot audio", poll)

            # 2. The fake microphone talks over it: Silero (in the user aggregator) -> interruption ->
            #    the output flushes, with the page's playout feedback.
            cut = wait_for(lambda: events("interrupted"), 30, "a barge-in", poll)[0]
            assert not cut["heard_estimated"], "the page's playout feedback reached the bot"
            assert cut["heard_ms"] > 500, cut

            # 3. The page went silent within the fade, and shows the transcript cut to what it played.
            flush = wait_for(
                lambda: [f for f in page.evaluate("window.moqAudio.flushes") if f["to"] >= cut["generation"]],
                10,
                "the page to measure the flush",
                poll,
            )[0]
            assert 0 <= flush["flushToSilenceMs"] <= 10.0, flush
            shown = wait_for(
                lambda: (state().get("transcript") or "").endswith("…") and state()["transcript"], 10, "…", poll
            )
            heard_text = shown.rstrip("… ").strip()
            assert heard_text and STORIES[0].startswith(heard_text), shown

            # 4. The assistant context got what was heard (a prefix of the reply), not the reply.
            turn = wait_for(lambda: [t for t in events("assistant_turn") if t["interrupted"]], 10, "the commit", poll)[
                0
            ]
            assert turn["text"].strip() and STORIES[0].startswith(turn["text"].strip()), turn
            assert len(turn["text"]) < len(STORIES[0]) * 0.8, "the unheard part is not in the context"

            # 5. The answer plays and quotes what was heard.
            answer = wait_for(
                lambda: [h for h in events("heard") if h["text"].startswith("You interrupted me")], 30, "answer", poll
            )
            assert answer
            assert (state()["renderedGeneration"] or 0) >= cut["generation"]
        finally:
            try:
                page.screenshot(path=str(ARTIFACTS / "pipecat-browser.png"), full_page=True)
                timeline = page.evaluate(
                    "window.moqAudio ? ({state: window.moqAudio.state, flushes: window.moqAudio.flushes}) : null"
                )
                (ARTIFACTS / "pipecat-browser-timeline.json").write_text(json.dumps(timeline, indent=2))
            finally:
                browser.close()
