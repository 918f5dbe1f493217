"""moq-audio as a Pipecat transport: barge-in that stops at the listener's ear, and an LLM context
that holds only what the listener heard.

Install with ``pip install "moq-audio[pipecat]"`` (Pipecat 1.x needs Python >= 3.11); ``import
moq_audio`` itself never needs Pipecat.

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
"""

from __future__ import annotations

try:
    import pipecat  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('moq_audio.pipecat needs Pipecat (Python >= 3.11): pip install "moq-audio[pipecat]"') from e

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
