//! The listen side: subscribe, decode, buffer, render, report what was played.
//!
//! In the order the audio flows:
//! - [`consumer`]: [`AudioConsumer`]: catalog, subscription, Opus decode; never goes back in
//!   generation.
//! - [`jitter`]: the generation-aware jitter buffer, with the fade at a flush.
//! - [`player`]: [`Player`]: real-time playout through the jitter buffer, WAV output and
//!   playout reports.

pub mod consumer;
pub mod jitter;
pub mod player;

pub use consumer::{AudioConsumer, AudioFrame, ConsumerOptions, EndReason, EndWatch, Resubscribe};
pub use jitter::{JitterBuffer, JitterOptions, JitterStats};
pub use player::{Player, PlayerHandle, PlayerOptions, PlayerReport, PlayoutFeedback};
