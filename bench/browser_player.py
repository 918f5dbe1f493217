"""A tiny listener that renders like a browser player, for the upstream (moq-rs) comparison.

Method in one sentence: it plays every decoded frame it has received in timestamp order at real
time (a render clock advancing with wall time in 10 ms quanta, starting once 40 ms are
buffered, silence on underrun and re-buffering), and never drops or skips audio - what a browser
AudioWorklet ring buffer fed by WebCodecs does with future-dated frames.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

import numpy as np


class BrowserLikePlayer:
    def __init__(self, rate: int = 48_000, target_ms: float = 40.0, quantum_ms: float = 10.0) -> None:
        self.rate = rate
        self.target = int(rate * target_ms / 1000)
        self.quantum = quantum_ms / 1000
        self._heap: list = []  # (timestamp_us, seq, pcm)
        self._seq = itertools.count()
        self._cur: np.ndarray | None = None
        self._cur_off = 0
        self.buffered = 0  # frames waiting
        self.rendered = 0  # render clock, frames (audio + silence)
        self.audio_rendered = 0  # frames of audio rendered
        self.segments: list[tuple[int, int]] = []  # (start, frames) of audio on the render clock
        self.received = 0
        self.first_arrival_frame: int | None = None
        self._playing = False
        self._tasks: list[asyncio.Task] = []
        self._epoch = 0.0
        self._stopped = False

    # -- input ------------------------------------------------------------------------------
    def push(self, timestamp_us: int, pcm: np.ndarray) -> None:
        if self.first_arrival_frame is None:
            self.first_arrival_frame = self.rendered
        heapq.heappush(self._heap, (timestamp_us, next(self._seq), pcm))
        self.buffered += len(pcm)
        self.received += len(pcm)

    async def _receive(self, consumer) -> None:
        async for frame in consumer:
            self.push(frame.timestamp_us, np.frombuffer(frame.data, dtype=np.float32))

    # -- render -----------------------------------------------------------------------------
    def _take(self, n: int) -> int:
        got = 0
        while got < n:
            if self._cur is None or self._cur_off >= len(self._cur):
                if not self._heap:
                    break
                _, _, self._cur = heapq.heappop(self._heap)
                self._cur_off = 0
            k = min(n - got, len(self._cur) - self._cur_off)
            self._cur_off += k
            got += k
        self.buffered -= got
        return got

    def _tick(self) -> None:
        due = int((time.perf_counter() - self._epoch) * self.rate)
        n = due - self.rendered
        if n <= 0:
            return
        if not self._playing and self.buffered >= self.target:
            self._playing = True
        got = 0
        if self._playing:
            got = self._take(n)
            if got < n:
                self._playing = False  # underrun: silence, re-buffer to the target
        if got:
            self.segments.append((self.rendered, got))
            self.audio_rendered += got
        self.rendered += n

    async def _render(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self.quantum)
            self._tick()

    def start(self, consumer) -> None:
        self._epoch = time.perf_counter()
        self._tasks = [asyncio.create_task(self._receive(consumer)), asyncio.create_task(self._render())]

    async def wait_audio_ms(self, ms: float, timeout: float = 20.0) -> None:
        need = int(self.rate * ms / 1000)
        deadline = time.monotonic() + timeout
        while self.audio_rendered < need:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rendered only {self.audio_rendered} of {need} frames")
            await asyncio.sleep(0.002)

    def audio_after(self, frame: int) -> int:
        """Audio frames rendered at or after render-clock frame ``frame``."""
        total = 0
        for start, n in self.segments:
            total += max(0, start + n - max(start, frame))
        return total

    async def stop(self) -> None:
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        # Collect the cancelled tasks; how each ended does not matter any more.
        await asyncio.gather(*self._tasks, return_exceptions=True)
