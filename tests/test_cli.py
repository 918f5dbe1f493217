"""The moq-audio command line, as a person runs it: real processes, real QUIC on loopback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import wave

import numpy as np
import pytest

CLI = [sys.executable, "-m", "moq_audio.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


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


def test_demo_writes_a_wav_with_the_cut_and_the_next_sentence(tmp_path):
    out = tmp_path / "heard.wav"
    result = run("demo", "--out", str(out), "--interrupt-after", "1.5")
    assert result.returncode == 0, result.stderr
    assert "flush -> generation 1" in result.stderr
    assert "marks: first=played, second=played" in result.stderr
    old = float(re.search(r"rendered ([\d.]+) ms of old audio", result.stderr).group(1))
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_say_and_listen_as_separate_processes(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([*CLI, "serve", "--addr", f"127.0.0.1:{port}", "--no-web"],
                              stderr=subprocess.PIPE, text=True)
    listener = None
    try:
        assert "serving MoQ on" in server.stderr.readline()
        out = tmp_path / "heard.wav"
        listener = subprocess.Popen([*CLI, "listen", url, "--out", str(out), "--timeout", "30"],
                                    stderr=subprocess.PIPE, text=True)
        assert "connected to" in listener.stderr.readline()
        said = run("say", "--url", url, "--wait-listener", "1", "--interrupt-after", "1.5",
                   "This sentence is long enough to be interrupted in the middle of a word, or so I hope.")
        assert said.returncode == 0, said.stderr
        assert "flush -> generation 1" in said.stderr
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
