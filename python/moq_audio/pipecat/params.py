"""Configuration of :class:`~moq_audio.pipecat.MoqAudioTransport`: a Pipecat ``TransportParams``."""

from __future__ import annotations

from pipecat.transports.base_transport import TransportParams
from pydantic import model_validator

__all__ = ["MoqAudioParams"]


class MoqAudioParams(TransportParams):
    """Pipecat transport parameters for moq-audio, with defaults for a voice agent.

    Everything :class:`pipecat.transports.base_transport.TransportParams` has applies; the
    defaults that differ from Pipecat's are marked. The bot publishes the broadcast
    ``bot_broadcast`` (hang catalog, Opus audio track, playout feedback, ``transcript_track`` and
    ``messages_track``); the user's page publishes ``user_broadcast`` (microphone audio and a
    ``control_track``).

    Parameters:
        url: Where to connect, as :func:`moq_audio.connect` takes it: the embedded server's
            ``http://host:port/`` (certificate pinned from ``/certificate.sha256``) or a relay's
            ``https://`` URL. Not needed when the transport is given a ``session``.
        token: Relay token (JWT), passed to :func:`moq_audio.connect` as ``token=``.
        fingerprint: Hex SHA-256 of the server certificate to pin for an ``https://`` URL.
        connect_timeout: Seconds :func:`moq_audio.connect` may take.
        bot_broadcast: Broadcast path the bot publishes.
        user_broadcast: Broadcast path of the user's microphone (the page publishes ``user``).
        audio_out_enabled: Pipecat's default is False; a voice bot speaks, so True here.
        audio_in_enabled: Pipecat's default is False; True here (the page's microphone).
        audio_out_sample_rate: Hz of the bot's audio as written to the producer (24000; Opus
            codes 8/12/16/24/48 kHz natively, other rates are resampled to 48 kHz by the core).
        audio_in_sample_rate: Hz the user's audio is decoded and resampled to (16000, what VADs
            and STT services expect).
        audio_out_10ms_chunks: Pipecat cuts the TTS audio into chunks of this many 10 ms before
            writing (Pipecat's default 4 = 40 ms). 2 here: text frames are placed on the audio
            timeline at chunk boundaries, so 20 ms chunks (one Opus frame) place them to 20 ms.
        audio_out_end_silence_secs: Pipecat's default sends 2 s of silence at the end so a
            transport that cuts the last words off does not; :meth:`AudioProducer.finish`
            plays out everything queued and ends the track cleanly, so 0 here.
        audio_out_frame_ms: Opus frame duration: 10, 20, 40 or 60 ms.
        lead_ms: How far ahead of playout audio goes to the network (the producer's pacing
            lead); what a barge-in can still let through is bounded by it.
        capacity_ms: Audio the producer queues before ``write`` waits.
        mark_timeout_ms: A playout mark with no listener feedback resolves ``unknown`` after
            this long; without any listener, bot-speaking frames and held text frames are late
            by this much.
        transcript_track: Data track (on the bot broadcast) for the heard transcript as the
            page shows it: ``{"generation": g, "text": "..."}`` frames. None disables it.
        messages_track: Data track for messages Pipecat sends (``OutputTransportMessageFrame``,
            RTVI): one JSON document per frame. None drops them.
        control_track: Data track of the user broadcast the page sends controls on
            (``{"type": "interrupt"}`` from its Interrupt button). None ignores it.
        interrupt_on_control: Broadcast an interruption when the page sends
            ``{"type": "interrupt"}``.
        heard_only_context: Hold each ``TTSTextFrame`` until the listener has played its audio,
            and drop the ones whose audio a barge-in flushed, so the assistant context holds
            what the user heard.
        truncate_interrupted_text: At a barge-in, pass on the heard prefix (whole words) of
            the sentence being spoken, estimated from the sentence's own duration.
        interruption_sync_timeout: Seconds the output waits, at a barge-in, for the next
            processor to take the heard text before the ``InterruptionFrame`` goes on.
    """

    url: str | None = None
    token: str | None = None
    fingerprint: str | None = None
    connect_timeout: float = 10.0
    bot_broadcast: str = "bot"
    user_broadcast: str = "user"
    audio_out_enabled: bool = True
    audio_in_enabled: bool = True
    audio_out_sample_rate: int | None = 24_000
    audio_in_sample_rate: int | None = 16_000
    audio_out_10ms_chunks: int = 2
    audio_out_end_silence_secs: int = 0
    audio_out_frame_ms: int = 20
    lead_ms: float = 60.0
    capacity_ms: float = 30_000.0
    mark_timeout_ms: float = 5_000.0
    transcript_track: str | None = "transcript.json"
    messages_track: str | None = "rtvi.json"
    control_track: str | None = "control.json"
    interrupt_on_control: bool = True
    heard_only_context: bool = True
    truncate_interrupted_text: bool = True
    interruption_sync_timeout: float = 1.0

    @model_validator(mode="after")
    def _check_paths(self) -> MoqAudioParams:
        if not self.bot_broadcast or not self.user_broadcast:
            raise ValueError("bot_broadcast and user_broadcast must not be empty")
        if self.bot_broadcast == self.user_broadcast:
            raise ValueError(f"bot_broadcast and user_broadcast are both {self.bot_broadcast!r}")
        if self.audio_out_channels not in (1, 2) or self.audio_in_channels not in (1, 2):
            raise ValueError("moq-audio carries 1 or 2 channels")
        return self
