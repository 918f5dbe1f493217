//! The listen side: subscribe, buffer, decode at playout time, render, report what was played.
//!
//! In the order the audio flows:
//! - [`consumer`]: [`AudioConsumer`]: catalog, subscription, packets (or decoded frames); never
//!   goes back in generation.
//! - [`jitter`]: the generation-aware adaptive jitter buffer, with the fade at a flush; its
//!   parts: [`delay`] (the target delay, adapted to arrival jitter and loss recovery),
//!   [`conceal`] (decoding at playout time, Opus PLC for missing packets) and [`stretch`]
//!   (time-scaling quiet audio to move the delay without a jump).
//! - [`player`]: [`Player`]: real-time playout through the jitter buffer, WAV output and
//!   playout reports.

pub mod conceal;
pub mod consumer;
pub mod delay;
pub mod jitter;
pub mod player;
pub mod stretch;

pub use conceal::{OpusPackets, PacketDecoder};
pub use consumer::{
    AudioConsumer, AudioFrame, AudioPacket, ConsumerOptions, EndReason, EndWatch, Resubscribe,
};
pub use jitter::{JitterBuffer, JitterOptions, JitterStats, Rendered};
pub use player::{Player, PlayerHandle, PlayerOptions, PlayerReport, PlayoutFeedback};
