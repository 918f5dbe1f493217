//! # moq-audio: interruptible voice over Media over QUIC
//!
//! A voice agent gets TTS audio faster than real time; when the listener talks over it
//! (barge-in) every buffer between the TTS and the listener's ear keeps playing. This crate
//! publishes PCM as paced Opus on a MoQ track and can drop everything not yet heard — its own
//! queue, the unsent part of groups in flight, and (in-band, by generation) the listener's jitter
//! buffer — without closing the track. Listeners report what they actually played, so marks
//! resolve on real playout and a flush says how far the listener got.
//!
//! ## Map of the crate
//! Publish side:
//! - [`pcm`]: PCM input validation and conversion.
//! - [`resample`]: rubato sample-rate conversion.
//! - [`opus`]: libopus encoder and decoder.
//! - [`encode`]: PCM → Opus frames pipeline.
//! - [`pacer`]: real-time pacing and timestamps.
//! - [`generation`]: how the generation travels in the group sequence number.
//! - [`catalog`]: the hang catalog (`catalog.json`) with the `moqAudio` section.
//! - [`producer`]: [`AudioProducer`]: write, flush, mark, finish, cancel.
//! - [`marks`]: marks and heard-up-to, resolved from listener feedback.
//!
//! Listen side:
//! - [`consumer`]: [`AudioConsumer`]: subscribe and decode, never going back in generation.
//! - [`jitter`]: the generation-aware jitter buffer with the fade at a flush.
//! - [`player`]: [`Player`]: real-time playout, WAV output, playout feedback.
//! - [`feedback`]: the playout report wire format and the producer's feedback collection.
//! - [`data`]: small message tracks beside the audio (transcript, control).
//!
//! Transport:
//! - [`server`]: the embedded MoQ server (QUIC + `/certificate.sha256` over HTTP).
//! - [`session`]: a client session: connect, publish and consume broadcasts.
//! - [`audio_session`]: `publish_audio` / `subscribe_audio` on a session.
//!
//! See `DESIGN.md` and the README's "Wire format" section for what goes on the wire.

#![warn(missing_docs)]

pub mod audio_session;
pub mod catalog;
pub mod consumer;
pub mod data;
pub mod encode;
pub mod error;
pub mod feedback;
pub mod generation;
pub mod jitter;
pub mod marks;
pub mod opus;
pub mod pacer;
pub mod pcm;
pub mod player;
pub mod producer;
pub mod resample;
pub mod server;
pub mod session;

/// The moq-net version this crate is built on (its broadcast and track types are in our API).
pub use moq_net;

pub use consumer::{AudioConsumer, AudioFrame, ConsumerOptions, EndReason};
pub use error::{Error, Result};
pub use marks::{Heard, MarkEvent, MarkState};
pub use pcm::Pcm;
pub use player::{Player, PlayerHandle, PlayerOptions, PlayerReport};
pub use producer::{AudioProducer, FlushReport, ProducerOptions, WriteOutcome};
pub use server::{Server, ServerOptions};
pub use session::{ConnectOptions, Session};
