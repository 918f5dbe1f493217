"""Issue 12: the stock browser player follows our broadcast across flushes without losing new audio.

The page is `tests/stock-player/`: the unmodified `<moq-watch>` element of `@moq/watch` 0.4.6
(pinned with its dependencies in that package's lockfile) plus a recorder of what the page sends
to its speakers (every node connected to the AudioContext's destination also feeds an
AudioWorklet tap on the same clock). Our agent publishes through the embedded server, which also
serves the page, and flushes several times in a row. Everything is measured on the recorded
output, not from logs:

- generation 0 is a 440 Hz tone (the first reply), flushed ~2 s into playout;
- every new generation opens with a 1.0 s linear chirp 1500 -> 3500 Hz, so the frequency heard
  at any instant says which millisecond of the new reply is playing; a dropped 100 ms group is a
  100 ms hole in the chirp's positions. It then holds a tone unique to the generation until the
  next flush (~2 s later), so stale audio after a flush is attributable.

Per flush we record: ms of the previous generation rendered before and after the flush (stock
players do not drop their buffer: after-flush audio is expected, up to about their latency),
**ms of the new generation's chirp never rendered**, in its first 100 ms (the new generation's
first group, where issue 12 loses audio; asserted <= 10 ms, the analysis resolution at the onset)
and in all (asserted <= 40 ms: two Opus frames; a lost group is 100 ms), and the time from
`flush()` to the new generation's first sample at the page's output (reported; only a generous
bound is asserted). The recording (WAV), a spectrogram and the numbers go to
`test-artifacts/stock-player-*`. The isolation probes at the end play single hand-made v2 frames
(LOC with our properties, the 1-byte marker packet, an invalid packet) to the same page.

Needs Debian's chromium and node/npm: the page is built from the lockfile (`npm ci`, `npm run
build` in tests/stock-player) when `dist/` is missing or older than its sources.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import moq_audio

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent / "stock-player"
DIST = PACKAGE / "dist"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"]

RATE = 24_000  # Hz, the agent's rate in README's example; the catalog advertises it
AMP = 0.3  # peak amplitude of every probe tone (float PCM)
FIRST_HZ = 440.0  # generation 0
CHIRP_LO_HZ, CHIRP_HI_HZ, CHIRP_MS = 1_500.0, 3_500.0, 1_000.0  # opens every new generation
HOLD_HZ = (660.0, 770.0, 880.0, 990.0)  # generation k holds HOLD_HZ[k - 1] after its chirp
FLUSHES = 3
INTO_PLAYOUT_S = 2.0  # each flush comes this long after the reply it interrupts started

# Analysis: 20 ms Hann windows every 5 ms; the 4096-point FFT peak, refined by parabolic
# interpolation, is the frequency of the window (error well under the 25 Hz tolerance for the
# steady tones and ~10 Hz = 5 ms of chirp position for the chirp, which sweeps 2 Hz per ms).
WIN_MS, HOP_MS, NFFT = 20.0, 5.0, 4096
TONE_TOL_HZ = 25.0
SILENCE_RMS = 0.01  # windows quieter than this are silence (probes render at ~0.1 RMS)
MAX_DROPPED_MS = 40.0  # of the whole chirp: two Opus frames (a lost group is 100 ms)
HEAD_MS = 100.0  # the new generation's first group (5 x 20 ms frames): where issue 12 loses audio
MAX_HEAD_DROPPED_MS = 10.0  # of that first group: the analysis resolution at the chirp's onset

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or (shutil.which("npm") is None and not (DIST / "index.html").exists()),
    reason="needs /usr/bin/chromium and node/npm (tests/stock-player is built from its lockfile)",
)


# ---------------------------------------------------------------------------------------------
# Probe signals


def tone(hz: float, seconds: float, rate: int = RATE) -> npt.NDArray[np.float32]:
    """A sine of ``hz`` Hz, ``seconds`` long, peak ``AMP``: float32 shape (n,)."""
    t = np.arange(round(rate * seconds)) / rate
    return (AMP * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def chirp(rate: int = RATE) -> npt.NDArray[np.float32]:
    """The 1.0 s linear chirp CHIRP_LO_HZ -> CHIRP_HI_HZ every new generation opens with."""
    seconds = CHIRP_MS / 1000
    t = np.arange(round(rate * seconds)) / rate
    phase = 2 * np.pi * (CHIRP_LO_HZ * t + (CHIRP_HI_HZ - CHIRP_LO_HZ) * t * t / (2 * seconds))
    return (AMP * np.sin(phase)).astype(np.float32)


def new_reply(generation: int, hold_s: float, rate: int = RATE) -> npt.NDArray[np.float32]:
    """Generation ``generation`` (>= 1): the chirp, then its own hold tone for ``hold_s`` s."""
    return np.concatenate([chirp(rate), tone(HOLD_HZ[generation - 1], hold_s, rate)])


def content_of(generation: int) -> list[float]:
    """Steady tones (Hz) that belong to ``generation`` (its chirp is classified separately)."""
    return [FIRST_HZ] if generation == 0 else [HOLD_HZ[generation - 1]]


# ---------------------------------------------------------------------------------------------
# Analysis


@dataclass
class FrequencyTrack:
    """Dominant frequency of a recording: one entry per HOP_MS, windows WIN_MS long."""

    start_s: npt.NDArray[np.float64]  # window start, s from the recording's first sample
    hz: npt.NDArray[np.float64]  # dominant frequency, Hz (NaN for silence)

    @property
    def centre_s(self) -> npt.NDArray[np.float64]:
        return self.start_s + WIN_MS / 2000


def frequency_track(pcm: npt.NDArray[np.float32], rate: int) -> FrequencyTrack:
    """Dominant frequency (Hz) of ``pcm`` (float, shape (n,)) every HOP_MS ms; NaN where silent."""
    win = int(rate * WIN_MS / 1000)
    hop = int(rate * HOP_MS / 1000)
    if len(pcm) < win:
        return FrequencyTrack(np.zeros(0), np.zeros(0))
    frames = np.lib.stride_tricks.sliding_window_view(pcm.astype(np.float64), win)[::hop]
    window = np.hanning(win)
    hz = np.full(len(frames), np.nan)
    for lo in range(0, len(frames), 2_000):
        chunk = frames[lo : lo + 2_000]
        rms = np.sqrt(np.mean(chunk * chunk, axis=1))
        mag = np.abs(np.fft.rfft(chunk * window, NFFT, axis=1))
        k = np.clip(np.argmax(mag[:, 1:-1], axis=1) + 1, 1, mag.shape[1] - 2)
        rows = np.arange(len(k))
        a, b, c = (np.log(mag[rows, k + d] + 1e-12) for d in (-1, 0, 1))
        denom = a - 2 * b + c
        offset = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
        est = (k + offset) * rate / NFFT
        hz[lo : lo + len(chunk)] = np.where(rms >= SILENCE_RMS, est, np.nan)
    return FrequencyTrack(np.arange(len(frames)) * hop / rate, hz)


def chirp_position_ms(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Position in the chirp (ms from its start) of each frequency; NaN outside the chirp's band."""
    pos = (hz - CHIRP_LO_HZ) / (CHIRP_HI_HZ - CHIRP_LO_HZ) * CHIRP_MS
    inside = (hz >= CHIRP_LO_HZ - 2 * TONE_TOL_HZ) & (hz <= CHIRP_HI_HZ + 2 * TONE_TOL_HZ)
    return np.where(inside, np.clip(pos, 0.0, CHIRP_MS), np.nan)


def chirp_coverage(positions_ms: npt.NDArray[np.float64]) -> tuple[float, list[tuple[float, float]]]:
    """(ms of the chirp heard, holes [(from_ms, to_ms)]) from the chirp positions of the windows.

    Consecutive windows are HOP_MS apart on the output, so a continuously rendered chirp yields
    positions HOP_MS apart; each stands for [p - HOP_MS, p + HOP_MS] (overlapping, which absorbs
    the ~1 ms estimation jitter). A window straddling a cut takes the frequency of one side, so a
    hole reads at most 2 * HOP_MS short. The chirp's first and last WIN_MS / 2 are never a
    window's centre: they count as heard when the windows next to them are.
    """
    half = HOP_MS + 2.0
    spans = sorted((p - half, p + half) for p in positions_ms if np.isfinite(p))
    if spans and spans[0][0] <= WIN_MS / 2 + half:
        spans.insert(0, (0.0, spans[0][0]))
    if spans and max(hi for _, hi in spans) >= CHIRP_MS - WIN_MS / 2 - half:
        spans.append((max(hi for _, hi in spans), CHIRP_MS))
    heard, holes, reach = 0.0, [], 0.0
    for lo, hi in spans:
        lo, hi = min(max(0.0, lo), CHIRP_MS), min(CHIRP_MS, hi)
        if lo > reach:
            holes.append((round(float(reach), 1), round(float(lo), 1)))
        if hi > reach:
            heard += hi - max(lo, reach)
            reach = hi
    if reach < CHIRP_MS:
        holes.append((round(reach, 1), CHIRP_MS))
    return float(heard), holes


@dataclass
class FlushResult:
    """What the page's output did around one flush. Times are ms; 'output' is the speaker."""

    generation: int  # the new generation
    old_before_ms: float  # previous generation rendered between the previous flush and this one
    old_after_ms: float  # previous generation rendered after this flush (stale: not dropped)
    new_heard_ms: float  # of the new generation's 1000 ms chirp (distinct positions)
    chirp_rendered_ms: float  # output time spent in the chirp (> CHIRP_MS if parts played twice)
    dropped_ms: float  # = CHIRP_MS - new_heard_ms
    head_dropped_ms: float  # of the chirp's first HEAD_MS (the new generation's first group)
    holes_ms: list[tuple[float, float]]  # chirp positions never rendered
    flush_to_new_ms: float | None  # flush() -> first sample of the new generation at the output
    first_position_ms: float | None  # chirp position of that first sample (0 = its start)
    console: list[str] = field(default_factory=list)  # player warnings in the 2 s after the flush


def analyse(
    pcm: npt.NDArray[np.float32], rate: int, flush_s: list[float], end_s: float, console: list[tuple[float, str]]
) -> list[FlushResult]:
    """Per flush, from the recording ``pcm`` (float, (n,)) and the flush instants ``flush_s``
    (s on the recording's time axis, at the output), the numbers of :class:`FlushResult`."""
    track = frequency_track(pcm, rate)
    t = track.centre_s
    hop_ms = HOP_MS
    positions = chirp_position_ms(track.hz)
    results = []
    for i, fs in enumerate(flush_s):
        generation = i + 1
        prev_start = flush_s[i - 1] if i else 0.0
        next_flush = flush_s[i + 1] if i + 1 < len(flush_s) else end_s
        old = np.zeros(len(t), dtype=bool)
        for hz in content_of(generation - 1):
            old |= np.abs(track.hz - hz) <= TONE_TOL_HZ
        before = (t >= prev_start) & (t < fs)
        after = (t >= fs) & (t < next_flush)
        new = after & np.isfinite(positions)
        if generation > 1:
            # the previous generation's own chirp played in its window before this flush
            old_before = float(np.count_nonzero(before & (old | np.isfinite(positions))) * hop_ms)
        else:
            old_before = float(np.count_nonzero(before & old) * hop_ms)
        heard, holes = chirp_coverage(positions[new])
        first_idx = np.flatnonzero(new)
        flush_to_new = first_pos = None
        if len(first_idx):
            j = first_idx[0]
            first_pos = max(0.0, float(positions[j]) - WIN_MS / 2)
            # the first window the chirp dominates is centred within ~HOP_MS of its first sample
            flush_to_new = round((float(t[j]) - fs) * 1000, 1)
        warnings = [text for at, text in console if fs - 0.05 <= at < fs + 2.0 and "skipping" in text]
        results.append(
            FlushResult(
                generation=generation,
                old_before_ms=old_before,
                old_after_ms=float(np.count_nonzero(after & old) * hop_ms),
                new_heard_ms=round(heard, 1),
                chirp_rendered_ms=float(np.count_nonzero(new) * hop_ms),
                dropped_ms=round(CHIRP_MS - heard, 1),
                head_dropped_ms=round(float(sum(max(0.0, min(hi, HEAD_MS) - lo) for lo, hi in holes)), 1),
                holes_ms=holes,
                flush_to_new_ms=flush_to_new,
                first_position_ms=None if first_pos is None else round(first_pos, 1),
                console=warnings,
            )
        )
    return results


# ---------------------------------------------------------------------------------------------
# The page


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        newest = max([newest] + [f.stat().st_mtime for f in files])
    return newest


@pytest.fixture(scope="session")
def stock_page() -> Path:
    """tests/stock-player/dist, built from the lockfile when missing or older than its sources."""
    sources = [PACKAGE / n for n in ("index.html", "src", "public", "package-lock.json", "vite.config.js")]
    index = DIST / "index.html"
    if index.exists() and (index.stat().st_mtime >= _newest_mtime(sources) or shutil.which("npm") is None):
        return DIST
    lock = PACKAGE / "package-lock.json"
    installed = PACKAGE / "node_modules" / ".package-lock.json"
    steps = [["npm", "run", "build"]]
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        steps.insert(0, ["npm", "ci", "--no-audit", "--no-fund"])
    for cmd in steps:
        done = subprocess.run(cmd, check=False, cwd=PACKAGE, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} in {PACKAGE} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return DIST


def page_url(server_url: str, latency: int | None) -> str:
    url = f"{server_url}index.html?url={server_url}&name=bot"
    return url if latency is None else f"{url}&latency={latency}"


@dataclass
class Recording:
    """What the page sent to its speakers (mono mix) and how to place it in time."""

    rate: int
    pcm: npt.NDArray[np.float32]  # float in [-1, 1], shape (n,)
    epoch_ms_at_0: float  # wall clock (ms since the Unix epoch) when sample 0 left the speaker
    contexts: list[dict[str, Any]]
    clock_source: str

    def at(self, epoch_s: float) -> float:
        """Seconds on the recording's axis of the wall-clock instant ``epoch_s`` (time.time())."""
        return (epoch_s * 1000 - self.epoch_ms_at_0) / 1000


async def export_recording(page: Any) -> Recording:
    """Fetch the recorder's output for the page's live AudioContext (the stock element recreates
    its context when the decoder's rate differs from the catalog's; the last one plays)."""
    contexts = await page.evaluate("stockTap.contexts()")
    assert contexts, "the stock player never connected anything to its speakers"
    live = [c for c in contexts if c["frames"] > 0] or contexts
    ctx = live[-1]
    ex = await page.evaluate(f"stockTap.export({ctx['id']})")
    pcm = (np.frombuffer(base64.b64decode(ex["pcm16"]), dtype="<i2") / 32767).astype(np.float32)
    rate = int(ex["rate"])
    # Context time -> wall clock at the speaker. getOutputTimestamp() pairs the context time now
    # leaving the output with its performance.now(); without one (no output device), the render
    # clock plus the reported output latency.
    out = [c for c in ex["clock"] if c["outPerfMs"] > 0 and c["outCtxTime"] > 0]
    if out:
        offsets = [c["timeOriginMs"] + c["outPerfMs"] - c["outCtxTime"] * 1000 for c in out]
        source = "getOutputTimestamp"
    else:
        offsets = [
            c["timeOriginMs"] + c["perfMs"] - c["ctxTime"] * 1000 + (c["outputLatency"] or c["baseLatency"]) * 1000
            for c in ex["clock"]
        ]
        source = "currentTime+outputLatency"
    epoch_at_0 = float(np.median(offsets)) + ex["startFrame"] / rate * 1000
    return Recording(rate, pcm, epoch_at_0, contexts, source)


def write_wav(path: Path, pcm: npt.NDArray[np.float32], rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())


def save_plot(path: Path, rec: Recording, flush_s: list[float], title: str) -> None:
    """Spectrogram of the recording with the flushes marked (for humans reading the artifacts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 4))
    with np.errstate(divide="ignore"):  # log of digital silence
        ax.specgram(rec.pcm, NFFT=512, Fs=rec.rate, noverlap=384, cmap="magma")
    for fs in flush_s:
        ax.axvline(fs, color="cyan", lw=1)
    ax.set_ylim(0, 4_500)
    ax.set_xlabel("s (page output; cyan = flush())")
    ax.set_ylabel("Hz")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# The test


@contextlib.asynccontextmanager
async def chromium_page(url: str) -> AsyncIterator[Any]:
    """Debian's Chromium (headless, autoplay allowed) with one page at ``url``; closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url)
            yield page
        finally:
            await browser.close()


async def until_playing(page: Any, timeout_ms: float = 30_000) -> None:
    """Wait until the page's speakers carry sound (the recorder's last 100 ms are not silent)."""
    await page.wait_for_function(
        "window.stockTap && stockTap.contexts().length > 0 &&"
        f" stockTap.rms(stockTap.contexts().at(-1).id, 100) > {SILENCE_RMS * 2}",
        polling=20,
        timeout=timeout_ms,
    )


async def until_silent(page: Any, timeout_ms: float = 15_000) -> None:
    """Wait until the page has played everything: its output silent for 300 ms."""
    await page.wait_for_function(
        f"stockTap.rms(stockTap.contexts().at(-1).id, 300) < {SILENCE_RMS / 2}", polling=50, timeout=timeout_ms
    )


async def capture(page: Any) -> tuple[Recording | None, list[tuple[float, str]]]:
    """The recording and the console ((epoch s, "level: text")), or (None, []) if the page is gone."""
    from playwright.async_api import Error as PlaywrightError

    try:
        rec = await export_recording(page)
        origin = await page.evaluate("performance.timeOrigin")
        messages = await page.evaluate("window.stockConsole || []")
    except (PlaywrightError, AssertionError):
        return None, []
    return rec, [((origin + m["perfMs"]) / 1000, f"{m['level']}: {m['text']}") for m in messages]


async def page_stalls(page: Any) -> dict[str, list[tuple[float, float]]]:
    """When the page was not scheduled (main thread: a 10 ms timer > 30 ms late) or got no
    network data (> 60 ms), as (epoch s, ms) per stall; empty if the page is gone. Reported with
    a failure: a real-time player skips groups after such a stall whatever the wire format."""
    from playwright.async_api import Error as PlaywrightError

    try:
        origin = await page.evaluate("performance.timeOrigin")
        main = await page.evaluate("window.stockStalls || []")
        net = await page.evaluate("window.stockNetStalls || []")
    except PlaywrightError:
        return {"main": [], "net": []}
    return {
        "main": [((origin + m["perfMs"]) / 1000, round(m["lateMs"], 1)) for m in main],
        "net": [((origin + m["perfMs"]) / 1000, round(m["gapMs"], 1)) for m in net],
    }


@pytest.mark.xfail(
    hasattr(moq_audio, "GENERATION_SHIFT"),  # wire format v1 (generation in the group sequence)
    reason="issue 12: on wire format v1 the stock player stalls on the sequence jump and drops the start "
    "of the new reply (20-100 ms at the default latency, one whole 100 ms group at 200 ms)",
    raises=AssertionError,
    strict=True,
)
@pytest.mark.timeout(240)
@pytest.mark.parametrize("latency", [None, 200], ids=["default-latency", "latency-200ms"])
async def test_stock_moq_watch_plays_every_new_generation_whole(stock_page: Path, latency: int | None) -> None:
    # Up to two more attempts only when one lost audio: the stock consumer's latency policy
    # skips a whole group now and then when a busy 2-core CI machine stalls the page (about one
    # run in five at 200 ms on a loaded machine; its console then says "skipping slow group"),
    # flush or no flush, and a starved page leaves 10-45 ms holes mid-reply. The wire format it
    # guards against (v1) lost audio in every run, so it would still fail all three; every
    # attempt's numbers, with the page's stalls, are kept in test-artifacts/. (A CI run on
    # 2026-11-22 lost the new reply's first group in 2 of 3 attempts: the marker then had a
    # group of its own, which moq-lite sent after the newer audio group, and the player waited
    # for it. The marker now opens the audio's group; see publish/groups.rs.)
    failures = []
    for attempt in (1, 2, 3):
        failure = await stock_player_run(stock_page, latency, attempt)
        if failure is None:
            return
        failures.append(failure)
    raise AssertionError("\n\n".join(f"attempt {n}: {f}" for n, f in enumerate(failures, 1)))


async def stock_player_run(stock_page: Path, latency: int | None, attempt: int) -> str | None:
    """One run of the scenario; None when it passed, else what failed."""
    name = f"stock-player-{'default' if latency is None else f'{latency}ms'}" + ("" if attempt == 1 else f"-{attempt}")
    ARTIFACTS.mkdir(exist_ok=True)
    flushes: list[tuple[float, int]] = []  # (time.time() just before flush(), new generation)
    numbers: dict[str, Any] = {"latency": latency or "default (real-time)", "rate": RATE}
    async with (
        moq_audio.Server("127.0.0.1:0", static_dir=stock_page) as server,
        moq_audio.connect(server.url) as session,
    ):
        bot = session.publish_audio("bot", sample_rate=RATE)
        async with chromium_page(page_url(server.url, latency)) as page:
            try:
                assert await bot.write(tone(FIRST_HZ, 20.0))  # the first reply (interrupted)
                await until_playing(page)
                await asyncio.sleep(INTO_PLAYOUT_S)  # the listener barges in 2 s into the reply
                for k in range(1, FLUSHES + 1):
                    at = time.time()
                    report = bot.flush()
                    flushes.append((at, report.generation))
                    last = k == FLUSHES
                    assert await bot.write(new_reply(k, 0.5 if last else 5.0))
                    if not last:
                        await asyncio.sleep(INTO_PLAYOUT_S)
                await bot.finish()
                await until_silent(page)
            finally:
                rec, console = await capture(page)
                stalls = await page_stalls(page)

    assert rec is not None
    flush_s = [rec.at(at) for at, _ in flushes]
    results = analyse(rec.pcm, rec.rate, flush_s, len(rec.pcm) / rec.rate, [(rec.at(at), m) for at, m in console])
    numbers.update(
        generations=[g for _, g in flushes],
        clock=rec.clock_source,
        contexts=rec.contexts,
        flushes=[asdict(r) for r in results],
        skipping_warnings=[m for _, m in console if "skipping" in m],
        # (s after the first flush, ms) of each stall of the page from the first flush on
        page_stalls={
            kind: [(round(at - flushes[0][0], 3), ms) for at, ms in seen if at >= flushes[0][0]]
            for kind, seen in stalls.items()
        },
    )
    write_wav(ARTIFACTS / f"{name}.wav", rec.pcm, rec.rate)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(numbers, indent=2))
    save_plot(
        ARTIFACTS / f"{name}.png", rec, flush_s, f"stock <moq-watch> @moq/watch 0.4.6, latency {latency or 'default'}"
    )

    summary = "\n".join(
        f"  gen {r.generation}: dropped {r.head_dropped_ms} ms of the first {HEAD_MS:.0f} ms, {r.dropped_ms} ms in all"
        f" {r.holes_ms}, flush->new {r.flush_to_new_ms} ms,"
        f" old before {r.old_before_ms} / after {r.old_after_ms} ms, {r.console}"
        for r in results
    ) + (
        f"\n  page stalls from the first flush on, (s after it, ms): main thread {numbers['page_stalls']['main']},"
        f" network {numbers['page_stalls']['net']}"
    )
    first = results[0]
    # Not playing the first reply, or never reaching a generation, is not the flaky group skip.
    assert first.old_before_ms >= 1_000, f"the page did not play the first reply before the flush:\n{summary}"
    for r in results:
        assert r.flush_to_new_ms is not None, f"generation {r.generation} never reached the page's output:\n{summary}"
        assert 0 <= r.flush_to_new_ms <= 1_500, f"flush -> new generation out of bounds:\n{summary}"
    if any(r.head_dropped_ms > MAX_HEAD_DROPPED_MS for r in results):
        return f"the stock player dropped the start of the new reply (issue 12):\n{summary}"
    if any(r.dropped_ms > MAX_DROPPED_MS for r in results):
        return f"the stock player dropped new-generation audio (> {MAX_DROPPED_MS} ms):\n{summary}"
    return None


# ---------------------------------------------------------------------------------------------
# Isolation probes: how the stock player takes single frames of the v2 wire format
#
# A hand-made broadcast in the v2 shape streams a 440 Hz tone as LOC frames, 5 per group (100 ms),
# paced in real time with a 60 ms lead like our producer, until the page plays it. Then, at the
# next timestamp T, the probe: nothing (control), our generation/event properties from here on, a
# flush marker (the open group is aborted, then a one-frame group {T, 0x80}), or an invalid Opus
# packet in the same place; then 1.0 s of 660 Hz from T on, paced as before (no burst). The
# recording shows whether the player survives the probe (660 Hz plays), how long it was silent and
# what it logged. Opus packets come from upstream's encoder (moq-rs, libopus).
#
# Our `publish_data` writes one frame per group, so the audio track is published by an upstream
# moq-rs client as broadcast `probe/media` (raw groups of 5 frames) and the catalog (ours,
# `probe`) points its rendition there (`"broadcast": "media"`, resolved relative to `probe` by
# @moq/watch and by moq-ffi alike).

GENERATION_PROPERTY = 0x4D4100  # README / CONTEXT "wire format v2"
EVENT_PROPERTY = 0x4D4102
TIMESTAMP_PROPERTY = 0x10  # draft-ietf-moq-loc-04
MARKER_MONO = b"\x80"  # TOC: CELT-only 2.5 ms, one frame, zero bytes ("no data")
UNDECODABLE = b"\x83\x00"  # TOC code 3 with a frame count of 0: invalid (RFC 6716 3.4, R5)
PROBE_LEAD_HZ, PROBE_AFTER_HZ = 440.0, 660.0
PROBE_CATALOG = {  # a hang catalog with one Opus rendition in LOC, served by broadcast probe/media
    "audio": {
        "renditions": {
            "audio": {
                "codec": "opus",
                "sampleRate": RATE,
                "numberOfChannels": 1,
                "container": {"kind": "loc"},
                "broadcast": "media",
            }
        }
    }
}
GROUP_FRAMES, FRAME_US, LEAD_US = 5, 20_000, 60_000  # as our producer: 100 ms groups, 60 ms lead

PROBES = {
    # name: (probe frame's payload or None, our generation/event properties on the frames?)
    "plain-loc": (None, False),  # the control: LOC frames as @moq/loc writes them
    "our-properties": (None, True),  # + generation 0 -> 1 on every frame (unknown to stock players)
    "marker-0x80": (MARKER_MONO, False),  # + a flush marker group: the 1-byte packet at T
    "v2-marker": (MARKER_MONO, True),  # both: the v2 flush marker {T, generation 1, event 1} + 0x80
    "undecodable-packet": (UNDECODABLE, False),  # + an invalid Opus packet where the marker goes
}


def varint(value: int) -> bytes:
    """QUIC variable-length integer (RFC 9000 16)."""
    for length, prefix in ((1, 0x00), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * length - 2):
            return (value | prefix << (8 * length - 8)).to_bytes(length, "big")
    raise ValueError(value)


def loc_frame(timestamp_us: int, payload: bytes, **properties: int) -> bytes:
    """One LOC frame (draft-ietf-moq-loc-04): varint(properties_length) ++ properties ++ payload.

    ``properties`` (even types only: one varint value each) by name: ``generation``, ``event``.
    Types ascend and are delta-encoded, as `@moq/loc` and Rust `moq-loc` decode them.
    """
    ids = {"generation": GENERATION_PROPERTY, "event": EVENT_PROPERTY}
    props = sorted([(TIMESTAMP_PROPERTY, timestamp_us)] + [(ids[k], v) for k, v in properties.items()])
    body, previous = b"", 0
    for kind, value in props:
        body += varint(kind - previous) + varint(value)
        previous = kind
    return varint(len(body)) + body + payload


async def opus_packets(pcm: npt.NDArray[np.float32], rate: int = RATE) -> list[bytes]:
    """20 ms Opus packets of ``pcm`` (float32 mono) from upstream's encoder (moq-rs, libopus)."""
    import moq

    broadcast = moq.BroadcastProducer()
    encoder = broadcast.encode_audio(
        "a",
        moq.AudioEncoderInput(format=moq.AudioSampleFormat.F32, sample_rate=rate, channels=1),
        moq.AudioEncoderOutput(codec=moq.AudioCodec.opus()),
    )
    track = await broadcast.consume().subscribe_track("a", moq.Subscription(max_age_us=3_600_000_000, group_start=0))
    step = rate // 50
    for i in range(0, len(pcm) - step + 1, step):
        encoder.write(moq.AudioFrame(timestamp_us=i * 1_000_000 // rate, data=pcm[i : i + step].tobytes()))
    encoder.finish()
    packets: list[bytes] = []
    while len(packets) < len(pcm) // step:
        group = await asyncio.wait_for(track.next_group(), 5)
        assert group is not None
        async for frame in group:
            data = bytes(frame.payload)
            first = data[0] >> 6  # legacy container: a QUIC varint timestamp, then the packet
            packet = data[1 << first :]
            if packet:
                packets.append(packet)
    return packets


def upstream_client(server: moq_audio.Server) -> Any:
    """An upstream moq-rs client of our embedded server: ``http://`` (it pins
    ``/certificate.sha256`` like ours), QUIC only, no reconnects (a failure is a result)."""
    import moq

    return moq.connect(server.url, websocket_enabled=False, reconnect=False)


#: Duration of the marker's Opus packet (TOC config 16), µs: the new audio starts after it.
MARKER_US = 2_500


class ProbeStream:
    """The probe's audio track (an upstream ``moq.TrackProducer``) in the v2 shape: LOC frames,
    ``GROUP_FRAMES`` per group, contiguous sequences, each frame handed out LEAD_US before its
    timestamp on a real-time schedule."""

    def __init__(self, track: Any, ours: bool) -> None:
        self.track = track
        self.ours = ours
        self.generation = 0
        self.ts_us = 0
        self.group: Any = None
        self.in_group = 0
        self.start = time.monotonic()

    async def send(self, packet: bytes) -> None:
        delay = self.start + (self.ts_us - LEAD_US) / 1e6 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # real-time pacing of the publisher, not synchronisation
        if self.group is None:
            self.group = self.track.append_group()
            self.in_group = 0
        props = {"generation": self.generation} if self.ours else {}
        self.group.write_frame(loc_frame(self.ts_us, packet, **props), self.ts_us)
        self.ts_us += FRAME_US
        self.in_group += 1
        if self.in_group == GROUP_FRAMES:
            self.group.finish()
            self.group = None

    def marker(self, payload: bytes) -> int:
        """Abort the open group, write a one-frame group {T, payload} (with the flush event when
        ``ours``) and start the next generation at T. Returns T (µs)."""
        if self.group is not None:
            self.group.abort(1)
            self.group = None
        self.generation += 1
        props = {"generation": self.generation, "event": 1} if self.ours else {}
        group = self.track.append_group()
        group.write_frame(loc_frame(self.ts_us, payload, **props), self.ts_us)
        group.finish()
        at = self.ts_us
        # As our producer does: the marker's 2.5 ms packet, then the new audio right after it.
        self.ts_us += MARKER_US
        return at


async def stream_probe(
    stream: ProbeStream, lead: list[bytes], after: list[bytes], probe: bytes | None, go: asyncio.Event
) -> int:
    """``lead`` packets in a loop until ``go`` is set, then the probe (a marker group with payload
    ``probe``, or for None only the generation change) at the next timestamp T and the ``after``
    packets from T on. Returns T (µs)."""
    i = 0
    while not go.is_set():
        await stream.send(lead[i % len(lead)])
        i += 1
    if probe is None:
        stream.generation += 1
        at = stream.ts_us
    else:
        at = stream.marker(probe)
    for packet in after:
        await stream.send(packet)
    if stream.group is not None:
        stream.group.finish()
    return at


@contextlib.asynccontextmanager
async def probe_broadcast(
    server: moq_audio.Server, session: moq_audio.Session, ours: bool
) -> AsyncIterator[ProbeStream]:
    """Broadcast ``probe`` (our catalog) + ``probe/media`` (the audio, from an upstream client)."""
    import moq

    catalog = session.publish_data("probe", ["catalog.json"])
    catalog.tracks[0].write(json.dumps(PROBE_CATALOG))
    try:
        async with upstream_client(server) as client:
            media = client.create_broadcast("probe/media")
            track = media.publish_track("audio")
            media.announce()
            try:
                yield ProbeStream(track, ours)
            finally:
                with contextlib.suppress(moq.Error):  # already finished by the test
                    track.finish()
                media.close()
    finally:
        catalog.close()


# An investigation, not a regression test: how the stock player treats each kind of frame on its
# own fed the wire-format choice (README, "Wire format"). Its outcome depends on the stock
# consumer's latency policy, which skips whole groups ("skipping slow group") whenever a busy
# machine stalls the page, so it is not in the default run: `pytest -m investigation`.
@pytest.mark.investigation
@pytest.mark.timeout(120)
@pytest.mark.parametrize("probe", list(PROBES))
async def test_stock_moq_watch_takes_v2_frames_in_isolation(stock_page: Path, probe: str) -> None:
    pytest.importorskip("moq", reason="the probe uses upstream's encoder and publisher (moq-rs)")
    payload, ours = PROBES[probe]
    lead = await opus_packets(tone(PROBE_LEAD_HZ, 1.0))
    after = await opus_packets(tone(PROBE_AFTER_HZ, 1.0))
    go = asyncio.Event()
    rec: Recording | None = None
    async with (
        moq_audio.Server("127.0.0.1:0", static_dir=stock_page) as server,
        moq_audio.connect(server.url) as session,
        probe_broadcast(server, session, ours) as stream,
    ):
        writer = asyncio.create_task(stream_probe(stream, lead, after, payload, go))
        try:
            # 500 ms latency: at the default (real-time) latency the stock consumer skips a group
            # whenever the page stalls (a busy 2-core machine does), which would hide what the
            # probe does. The probe is about the decoder, not about the latency policy.
            url = f"{server.url}index.html?url={server.url}&name=probe&latency=500"
            async with chromium_page(url) as page:
                await until_playing(page)
                await asyncio.sleep(0.5)  # half a second of steady lead-in on the recording
                go.set()
                await asyncio.wait_for(writer, 10)
                await until_silent(page, 10_000)
                rec, console = await capture(page)
                decoded = await page.evaluate("window.stockDecoder || []")
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    assert rec is not None, "the page's recording could not be read"
    messages = [text for _, text in console]
    track = frequency_track(rec.pcm, rec.rate)
    is_lead = np.abs(track.hz - PROBE_LEAD_HZ) <= TONE_TOL_HZ
    is_after = np.abs(track.hz - PROBE_AFTER_HZ) <= TONE_TOL_HZ
    last_lead = float(track.centre_s[np.flatnonzero(is_lead)[-1]]) if is_lead.any() else None
    first_after = float(track.centre_s[np.flatnonzero(is_after)[0]]) if is_after.any() else None
    after_ms = float(np.count_nonzero(is_after) * HOP_MS)
    gap_ms = None if last_lead is None or first_after is None else round((first_after - last_lead) * 1000, 1)
    decoder_error = any("audio decoder error" in m for m in messages) or any("error" in d for d in decoded)
    numbers = {
        "probe": probe,
        "after_heard_ms": after_ms,  # of the 1000 ms of 660 Hz after the probe
        "gap_ms": gap_ms,  # between the last 440 Hz and the first 660 Hz window (centres)
        "decoder_error": decoder_error,
        "console": [m for m in messages if not m.startswith("debug:")][-20:],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"stock-player-probe-{probe}.json").write_text(json.dumps(numbers, indent=2))
    write_wav(ARTIFACTS / f"stock-player-probe-{probe}.wav", rec.pcm, rec.rate)
    assert last_lead is not None, numbers
    if probe == "undecodable-packet":
        # Chromium's Opus decoder rejects it ("EncodingError: Decoding error."); @moq/watch then
        # closes its AudioDecoder and stays silent until the page reloads. Never send one.
        assert decoder_error and after_ms == 0, numbers
        return
    assert not decoder_error, numbers
    assert after_ms >= 1_000 - MAX_DROPPED_MS, numbers
    assert gap_ms is not None and gap_ms <= WIN_MS + 2 * HOP_MS, numbers
