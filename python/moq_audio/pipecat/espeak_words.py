"""espeak-ng speech with word timings, through libespeak-ng (the library the ``espeak-ng`` command
is built on; Debian package ``libespeak-ng1``, installed with ``espeak-ng``).

The command line cannot report when each word is spoken; the library can: its synthesis
callback receives ``espeakEVENT_WORD`` events with the word's position in the text and in the
audio (ms). Bound with ctypes after ``speak_lib.h`` of espeak-ng 1.51.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EspeakLibraryMissing", "speak_with_word_times"]

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EE_OK = 0


class EspeakLibraryMissing(RuntimeError):
    """libespeak-ng is not installed (``apt-get install espeak-ng``)."""


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT``."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position
        ("length", ctypes.c_int),  # characters
        ("audio_position", ctypes.c_int),  # ms into the audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

# libespeak-ng keeps global state: one synthesis at a time, from any thread.
_lock = threading.Lock()
_state: dict[str, Any] = {}


def _library() -> tuple[Any, int]:
    if "lib" not in _state:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise EspeakLibraryMissing(f"libespeak-ng is not installed ({e}): apt-get install espeak-ng") from e
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if rate <= 0:
            raise EspeakLibraryMissing("espeak_Initialize failed (espeak-ng-data missing?)")
        _state["lib"], _state["rate"] = lib, int(rate)
    return _state["lib"], _state["rate"]


def speak_with_word_times(
    text: str, *, words_per_minute: int = 175, voice: str = "en"
) -> tuple[npt.NDArray[np.int16], int, list[tuple[str, float]]]:
    """Synthesize ``text`` and report when each word starts.

    Returns:
        ``(pcm, sample_rate, words)``: int16 mono samples of shape (n,), the rate in Hz
        (22050), and ``(word, start_s)`` for each word in order (the text's whitespace-delimited
        token, punctuation included), seconds from the first sample.

    Raises:
        ValueError: for empty text.
        EspeakLibraryMissing: when libespeak-ng cannot be loaded or initialized.
        RuntimeError: when espeak-ng rejects the voice or the text.
    """
    if not text.strip():
        raise ValueError("nothing to say: text is empty")
    with _lock:
        lib, rate = _library()
        chunks: list[npt.NDArray[np.int16]] = []
        words: list[tuple[str, float]] = []

        def on_synth(wav: Any, n: int, events: Any) -> int:
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.int16))
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                ev = events[i]
                if ev.type == _EVENT_WORD and ev.length > 0:
                    # The whitespace-delimited token the word starts, punctuation included.
                    token = text[ev.text_position - 1 :].split(None, 1)
                    if token:
                        words.append((token[0], ev.audio_position / 1000.0))
                i += 1
            return 0

        callback = _Callback(on_synth)  # referenced until synthesis ends
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_ESPEAK_RATE, int(words_per_minute), 0)
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        if lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None) != _EE_OK:
            raise RuntimeError("espeak-ng could not synthesize the text")
        lib.espeak_Synchronize()
        lib.espeak_SetSynthCallback(None)
        del callback
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return pcm, rate, words
