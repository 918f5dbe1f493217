//! # moq-audio: interruptible voice over Media over QUIC
//!
//! A voice agent gets TTS audio faster than real time; when the listener talks over it
//! (barge-in) every buffer between the TTS and the listener's ear keeps playing. This crate
//! publishes PCM as paced Opus on a MoQ track and can drop everything not yet heard — its own
//! queue, the unsent part of groups in flight, and (in band, by generation) the listener's jitter
//! buffer — without closing the track. Listeners report what they actually played, so marks
//! resolve on real playout and a flush says how far the listener got.
//!
//! ```no_run
//! # async fn run() -> moq_audio::Result<()> {
//! use moq_audio::{Pcm, ProducerOptions, Server, ServerOptions, Session, ConnectOptions};
//! let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerOptions::default()).await?;
//! let session = Session::connect(&server.url(), ConnectOptions::default()).await?;
//! let bot = session.publish_audio("bot", ProducerOptions::new(24_000, 1))?;
//! bot.write(Pcm::I16(&[0; 24_000])).await?;   // paced: only a small lead is ever on the network
//! bot.mark("sentence-1")?;                     // resolves when a listener plays it
//! let report = bot.flush();                    // barge-in: instant, the track stays open
//! println!("the listener heard {} ms", report.heard.ms);
//! # Ok(()) }
//! ```
//!
//! ## Map of the crate
//! The modules follow the audio, and imports only run down this list:
//! - [`error`]: [`Error`], whose variants say what the caller can do.
//! - [`wire`]: what goes on the wire, as pure data: the catalog, LOC audio frames with the
//!   generation in each, the listeners' playout reports.
//! - [`codec`]: PCM validation, libopus, rubato resampling.
//! - [`publish`]: PCM → encode → pacer → groups → track: [`AudioProducer`] (write, flush,
//!   mark, finish, cancel) and its marks.
//! - [`listen`]: track → [`AudioConsumer`] (decode) → jitter buffer → [`Player`] (playout,
//!   playout reports).
//! - [`net`]: [`Session`] (connect, tokens) and the embedded [`Server`] (moq-relay in-process).
//! - [`broadcast`]: the owners that tie both sides to a session: [`AudioBroadcast`]
//!   (`Session::publish_audio`), `Session::play_audio`, the feedback collector.
//!
//! `docs/architecture.md` in the repository walks through the audio path, the generation and
//! wire format, and the feedback loop; the README's "Wire format" section is the reference.

#![warn(missing_docs)]

pub mod broadcast;
pub mod codec;
pub mod error;
pub mod listen;
pub mod net;
pub mod publish;
pub mod wire;

/// The moq-net version this crate is built on (its broadcast and track types are in our API).
pub use moq_net;

pub use broadcast::AudioBroadcast;
pub use codec::pcm::Pcm;
pub use error::{Error, Result};
pub use listen::{
    AudioConsumer, AudioFrame, ConsumerOptions, EndReason, Player, PlayerHandle, PlayerOptions,
    PlayerReport,
};
pub use net::{ConnectOptions, Server, ServerOptions, Session};
pub use publish::{
    AudioProducer, FlushReport, Heard, MarkEvent, MarkState, ProducerOptions, WriteOutcome,
};
