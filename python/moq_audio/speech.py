"""Real speech for demos and tests: espeak-ng text-to-speech and WAV file I/O.

espeak-ng is a Debian package (``apt-get install espeak-ng``); it writes 16-bit mono WAV at
22 050 Hz, which also exercises the producer's resampler (22.05 kHz is not an Opus rate).
WAV files are read and written with soundfile (libsndfile, bundled in its wheels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

__all__ = ["EspeakMissing", "read_wav", "speak", "write_wav"]

#: PCM as ``read_wav`` and ``speak`` return it and ``AudioProducer.write`` takes it.
Pcm = npt.NDArray[np.int16] | npt.NDArray[np.float32]

#: libsndfile subtypes that int16 holds exactly (8-bit files are scaled up by 256).
_INT16_EXACT = frozenset({"PCM_S8", "PCM_U8", "PCM_16"})


class EspeakMissing(RuntimeError):
    """espeak-ng is not installed (``apt-get install espeak-ng``)."""


def speak(text: str, *, words_per_minute: int = 175, voice: str = "en") -> tuple[npt.NDArray[np.int16], int]:
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
        pcm, rate = read_wav(out)
    if pcm.dtype != np.int16:
        raise ValueError(f"espeak-ng wrote {pcm.dtype} samples, expected 16-bit PCM")
    return pcm.astype(np.int16, copy=False), rate


def read_wav(path: str | os.PathLike[str]) -> tuple[Pcm, int]:
    """Read a WAV file of any PCM width or floating point, mono or multichannel.

    Other formats libsndfile recognises by their header (FLAC, AIFF, Ogg Vorbis ...) are read too.

    Returns:
        ``(pcm, sample_rate)`` with ``pcm`` of shape (n,) for mono or (n, channels), and the
        rate in Hz. The dtype keeps every bit of the file: **int16** for 8- and 16-bit PCM
        (8-bit values scaled by 256), **float32** in [-1, 1] for everything wider (24- and
        32-bit PCM, 32/64-bit float): float32's 24-bit mantissa holds 24-bit PCM exactly.
        ``AudioProducer.write`` takes either.

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: the file cannot be opened.
        ValueError: the file is not audio libsndfile can read (e.g. a text file).
    """
    with open(path, "rb") as f:
        try:
            info = soundfile.info(f)
            f.seek(0)
            dtype = "int16" if info.subtype in _INT16_EXACT else "float32"
            data, rate = soundfile.read(f, dtype=dtype, always_2d=False)
        except soundfile.LibsndfileError as e:
            raise ValueError(f"{os.fspath(path)}: not a WAV file ({e.error_string.rstrip('.')})") from None
    pcm: Pcm = np.asarray(data)
    return pcm, int(rate)


def write_wav(path: str | os.PathLike[str], pcm: npt.ArrayLike, sample_rate: int) -> None:
    """Write PCM as a 16-bit WAV file.

    Args:
        path: the file to (over)write.
        pcm: int16 samples, or floats in [-1, 1] (clipped), of shape (n,) or (n, channels).
        sample_rate: rate in Hz.
    """
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    soundfile.write(os.fspath(path), samples, sample_rate, subtype="PCM_16", format="WAV")
