"""Real speech for demos and tests: espeak-ng text-to-speech and WAV file I/O.

espeak-ng is a Debian package (``apt-get install espeak-ng``); it writes 16-bit mono WAV at
22 050 Hz, which also exercises the producer's resampler (22.05 kHz is not an Opus rate).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Tuple

import numpy as np

__all__ = ["speak", "read_wav", "write_wav", "EspeakMissing"]


class EspeakMissing(RuntimeError):
    """espeak-ng is not installed (``apt-get install espeak-ng``)."""


def speak(text: str, *, words_per_minute: int = 175, voice: str = "en") -> Tuple[np.ndarray, int]:
    """Synthesize ``text`` with espeak-ng.

    Args:
        text: what to say.
        words_per_minute: speaking rate (espeak-ng's ``-s``, default 175).
        voice: espeak-ng voice name (``-v``).

    Returns:
        ``(pcm, sample_rate)``: int16 samples of shape (n,) and the rate in Hz (22050).

    Raises:
        EspeakMissing: when the ``espeak-ng`` binary is not on PATH.
        ValueError: for empty text.
        subprocess.CalledProcessError: when espeak-ng fails.
    """
    if not text.strip():
        raise ValueError("nothing to say: text is empty")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakMissing("espeak-ng is not installed: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            [exe, "-v", voice, "-s", str(words_per_minute), "-w", str(out), text],
            check=True,
            capture_output=True,
        )
        return read_wav(out)


def read_wav(path: "str | os.PathLike[str]") -> Tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file.

    Returns:
        ``(pcm, sample_rate)``: int16 samples, shape (n,) for mono or (n, channels).

    Raises:
        ValueError: for a WAV file that is not 16-bit PCM.
    """
    with wave.open(os.fspath(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit WAV is not supported (16-bit PCM only)")
        channels = w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        rate = w.getframerate()
    if channels > 1:
        data = data.reshape(-1, channels)
    return data, rate


def write_wav(path: "str | os.PathLike[str]", pcm: np.ndarray, sample_rate: int) -> None:
    """Write int16 or float32 PCM (shape (n,) or (n, channels)) as a 16-bit WAV file."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16:
        pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.astype("<i2").tobytes())
