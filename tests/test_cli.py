"""The moq-audio command line, as a person runs it: real processes, real QUIC on loopback."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import wave

import numpy as np
import pytest
import soundfile

from conftest import frames_of
from moq_audio.speech import read_wav
from support.net import free_port

CLI = [sys.executable, "-m", "moq_audio.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed run; asserts it is exactly one line, not a traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("moq-audio: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("sub", ["", "serve", "say", "publish", "listen", "demo"])
def test_every_subcommand_has_help(sub):
    result = run(*([sub] if sub else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: moq-audio" in result.stdout


def test_errors_are_one_clear_line_not_a_traceback(tmp_path):
    result = run("publish", str(tmp_path / "missing.wav"), "--url", "http://127.0.0.1:1/")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "missing.wav" in result.stderr
    one_line_error(result)


def test_a_file_that_is_not_audio_is_a_one_line_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("remember to buy milk\n" * 20)
    error = one_line_error(run("publish", str(notes), "--url", "http://127.0.0.1:1/"))
    assert "notes.txt" in error and "not a WAV file" in error


def test_an_unreachable_server_is_a_one_line_error(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.zeros(4_800, dtype=np.float32), 48_000, subtype="PCM_16")
    error = one_line_error(run("publish", str(path), "--url", "http://127.0.0.1:1/"))
    assert "127.0.0.1:1" in error


def stereo_tone(rate: int, seconds: float) -> np.ndarray:
    """440 Hz left, 660 Hz right, amplitude 0.3, float64."""
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize(
    ("subtype", "exact_to"),
    [
        ("PCM_16", 2**-15),  # int16: the file's samples exactly, scaled by 2^15 here
        ("PCM_24", 2**-23),  # float32 keeps all 24 bits
        ("FLOAT", 2**-24),  # float32 as stored (rounding of the float64 tone)
    ],
)
def test_read_wav_keeps_every_bit_of_16_24_bit_and_float_files(tmp_path, subtype, exact_to):
    rate = 44_100
    tone = stereo_tone(rate, 0.5)
    path = tmp_path / f"tone-{subtype}.wav"
    soundfile.write(path, tone, rate, subtype=subtype)
    pcm, got_rate = read_wav(path)
    assert got_rate == rate
    assert pcm.shape == tone.shape
    assert pcm.dtype == (np.int16 if subtype == "PCM_16" else np.float32)
    scaled = pcm / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float64)
    assert np.max(np.abs(scaled - tone)) <= exact_to


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
async def test_publish_plays_24_bit_and_float_wav_files(server, ear_session, tmp_path, subtype):
    rate = 44_100
    path = tmp_path / f"tone-{subtype}.wav"
    soundfile.write(path, stereo_tone(rate, 1.0), rate, subtype=subtype)
    heard = tmp_path / "heard.wav"
    cli = await asyncio.create_subprocess_exec(
        *CLI, "publish", str(path), "--url", server.url, "--wait-listener", "ear", stderr=subprocess.PIPE
    )
    try:
        player = await ear_session.play_audio("bot", wav_path=heard, listener_id="ear", timeout=30)
        report = await asyncio.wait_for(player.wait(), 30)
        _, err = await asyncio.wait_for(cli.communicate(), 30)
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.wait()
    assert cli.returncode == 0, err.decode()
    out_rate = report.sample_rate
    assert abs(frames_of(report, 0) / out_rate - 1.0) < 0.08  # 1 s ± padding to whole frames
    audio, wav_rate = soundfile.read(heard, dtype="float32")
    assert wav_rate == out_rate and audio.shape[1] == 2
    loud_at = np.flatnonzero(np.max(np.abs(audio), axis=1) > 0.05)
    loud = audio[loud_at[0] : loud_at[-1] + 1]  # the tone, without the silence around it
    assert len(loud) > 0.8 * out_rate
    # The channels in order, at the file's level (a wrong scale would be silent or clipped).
    assert abs(peak_hz(loud[:, 0], out_rate) - 440) < 5
    assert abs(peak_hz(loud[:, 1], out_rate) - 660) < 5
    assert 0.15 < float(np.sqrt(np.mean(loud.astype(np.float64) ** 2))) < 0.3


def test_demo_writes_a_wav_with_the_cut_and_the_next_sentence(tmp_path):
    out = tmp_path / "heard.wav"
    result = run("demo", "--out", str(out), "--interrupt-after", "1.5")
    assert result.returncode == 0, result.stderr
    assert "flush -> generation 1" in result.stderr
    assert "marks: first=played, second=played" in result.stderr
    found = re.search(r"rendered ([\d.]+) ms of old audio", result.stderr)
    assert found is not None, result.stderr
    old = float(found.group(1))
    assert old <= 10.0
    with wave.open(str(out)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    # ~1.5 s of the first sentence, then the 2-3 s answer: far less than the 13 s first sentence.
    assert 3.0 < len(audio) / rate < 7.0, len(audio) / rate
    block = rate // 10  # 100 ms
    blocks = audio[: len(audio) // block * block].reshape(-1, block)
    loud = np.sqrt(np.mean(blocks**2, axis=1)) > 200
    assert loud[:15].sum() >= 8 and loud[20:].sum() >= 8, "speech before and after the cut"


def start_server() -> tuple[subprocess.Popen[str], str]:
    """``moq-audio serve`` on a free port; another process may take the port between the probe
    and the bind, so a start that does not report serving is retried on a new port."""
    for _ in range(3):
        port = free_port()
        server = subprocess.Popen(
            [*CLI, "serve", "--addr", f"127.0.0.1:{port}", "--no-web"], stderr=subprocess.PIPE, text=True
        )
        assert server.stderr is not None
        if "serving MoQ on" in server.stderr.readline():
            return server, f"http://127.0.0.1:{port}/"
        server.terminate()
        server.wait(timeout=10)
    raise AssertionError("moq-audio serve did not start on three free ports")


def test_serve_say_and_listen_as_separate_processes(tmp_path):
    server, url = start_server()
    listener = None
    try:
        out = tmp_path / "heard.wav"
        listener = subprocess.Popen(
            [*CLI, "listen", url, "--out", str(out), "--timeout", "30", "--listener-id", "ear"],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert listener.stderr is not None
        assert "connected to" in listener.stderr.readline()
        # `say` speaks once the listener plays the broadcast, and flushes once its playout
        # reports say it heard 1.5 s.
        said = run(
            "say",
            "--url",
            url,
            "--wait-listener",
            "ear",
            "--interrupt-after",
            "1.5",
            "This sentence is long enough to be interrupted in the middle of a word, or so I hope.",
        )
        assert said.returncode == 0, said.stderr
        assert "flush -> generation 1" in said.stderr
        assert "(estimate)" not in said.stderr, "the flush used the listener's playout reports"
        _, err = listener.communicate(timeout=30)
        assert listener.returncode == 0, err
        assert "generation 1 arrived" in err
        with wave.open(str(out)) as w:
            assert w.getnframes() / w.getframerate() > 2.0
    finally:
        for p in (listener, server):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
