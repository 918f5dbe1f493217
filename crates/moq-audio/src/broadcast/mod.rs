//! Audio broadcasts on a session: the owners that tie the publish and listen sides to the
//! transport.
//!
//! - [`audio`]: [`AudioBroadcast`] and `Session::publish_audio`: catalog + Opus track + data
//!   tracks + the feedback collector, owned together.
//! - [`listener`]: `Session::subscribe_audio` and `Session::play_audio` (a [`crate::Player`]
//!   that reports its playout).
//! - [`feedback`](self): the publisher's collector of listener playout reports.

pub mod audio;
mod feedback;
pub mod listener;

pub use audio::AudioBroadcast;
