"""Shared fixtures: an embedded server per test, sessions, and real espeak-ng speech."""

from __future__ import annotations

import functools
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
