"""Shared fixtures: an embedded server per test, sessions, and real espeak-ng speech."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pytest

import moq_audio
from moq_audio.speech import speak

SENTENCES = [
    "The first sentence tells you that your parcel left the depot this morning.",
    "The second sentence says it should arrive before noon tomorrow.",
    "The third sentence explains how to change the delivery address online.",
    "The fourth sentence is about returns and refunds, which take five days.",
]


@functools.cache
def speech(text: str) -> tuple[np.ndarray, int]:
    """espeak-ng speech for ``text`` as (int16 samples, 22050 Hz), cached per test run."""
    pcm, rate = speak(text)
    pcm.setflags(write=False)
    return pcm, rate


@pytest.fixture
async def server():
    async with moq_audio.Server("127.0.0.1:0") as s:
        yield s


@pytest.fixture
async def bot_session(server):
    async with moq_audio.connect(server.url) as s:
        yield s


@pytest.fixture
async def ear_session(server):
    async with moq_audio.connect(server.url) as s:
        yield s


def frames_of(report: Any, generation: int, *, after: int = 0, fade: bool | None = None) -> int:
    """Render-clock frames of ``generation`` in a Player report that lie at or after ``after``.

    The computation is the core's (``PlayerReport.frames_of``); this keeps the tests' call sites
    short.
    """
    return int(report.frames_of(generation, after=after, fade=fade))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``MOQ_AUDIO_REQUIRE_ALL=1`` (scripts/test.sh sets it) a skipped test fails the run:
    in CI a missing part (moq-relay, Chromium, Pipecat, upstream moq-rs) must not pass silently."""
    if not os.environ.get("MOQ_AUDIO_REQUIRE_ALL") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            print(f"\nMOQ_AUDIO_REQUIRE_ALL: {report.nodeid} was skipped: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "investigation: measures a third party's behaviour; only with `-m investigation`"
    )


#: Headless Chromium on these 2-core VMs now and then loses its renderer within a second or two of
#: loading a page ("Target crashed"). Its minidumps (~/.config/chromium/Crash Reports) all show a
#: SIGSEGV at address 0 on the renderer's main thread, in Debian's Chromium without symbols; the
#: crashes come in clusters (twice in a row on one test in two CI runs on 2026-11-22, the second
#: time reported as "Page crashed") and the same test passes when run alone or with its file, so
#: no cause in our page was found. A Chromium test that fails with exactly one of those messages
#: is run up to three more times, 5 s apart, with fresh fixtures (pytest-rerunfailures); any
#: other failure counts at once.
RENDERER_CRASHED = pytest.mark.flaky(reruns=3, reruns_delay=5, only_rerun=["Target crashed", "Page crashed"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave investigations out unless ``-m`` names them (deselected, not skipped); give the
    Chromium tests up to three reruns after a renderer crash (:data:`RENDERER_CRASHED`)."""
    for item in items:
        if item.path.name in {"test_browser.py", "test_pipecat_browser.py", "test_stock_player.py"}:
            item.add_marker(RENDERER_CRASHED)
    if "investigation" in (config.option.markexpr or ""):
        return
    keep = [item for item in items if item.get_closest_marker("investigation") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
