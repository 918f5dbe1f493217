"""moq-audio as a Pipecat transport: barge-in that stops at the listener's ear, and an LLM context
that holds only what the listener heard.

Install with ``pip install "moq-audio[pipecat]"`` (Pipecat 1.x needs Python >= 3.11); ``import
moq_audio`` itself never needs Pipecat, and this package loads Pipecat only when one of the
names below is used (``moq_audio.pipecat.options`` never does).

Example::

    from moq_audio.pipecat import MoqAudioParams, MoqAudioTransport

    transport = MoqAudioTransport(MoqAudioParams(url="http://127.0.0.1:4443/", bot_broadcast="bot",
                                                 user_broadcast="user", audio_out_sample_rate=24000,
                                                 audio_in_sample_rate=16000))
    pipeline = Pipeline([transport.input(), user_aggregator, llm, tts, transport.output(),
                         assistant_aggregator])

See :class:`MoqAudioTransport` for the events, :mod:`moq_audio.pipecat.output` for how playout
drives bot-speaking frames and the heard-only context, and :mod:`moq_audio.pipecat.demo` for a
fully offline bot (``moq-audio demo --pipecat``).

Raises:
    ImportError: on first use of a name, when Pipecat is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .input import MoqAudioInputTransport
    from .output import MoqAudioOutputTransport
    from .params import MoqAudioParams
    from .transport import MoqAudioTransport
    from .tts import EspeakTTSService

__all__ = [
    "EspeakTTSService",
    "MoqAudioInputTransport",
    "MoqAudioOutputTransport",
    "MoqAudioParams",
    "MoqAudioTransport",
]

_MODULES = {
    "EspeakTTSService": ".tts",
    "MoqAudioInputTransport": ".input",
    "MoqAudioOutputTransport": ".output",
    "MoqAudioParams": ".params",
    "MoqAudioTransport": ".transport",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module, __name__), name)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] == "pipecat":
            raise ImportError(
                'moq_audio.pipecat needs Pipecat (Python >= 3.11): pip install "moq-audio[pipecat]"'
            ) from e
        raise
