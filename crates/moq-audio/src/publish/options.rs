//! [`ProducerOptions`]: how an [`crate::AudioProducer`] encodes, paces and queues.
//!
//! The one place defaults live: the Python binding and the CLI read them from here.

use std::time::Duration;

use crate::codec::opus::FrameDuration;
use crate::codec::pcm::check_format;
use crate::{Error, Result};

/// Longest pacing lead accepted. More than a few seconds ahead is no longer "paced": it is
/// the unflushable buffering this crate exists to avoid.
pub const MAX_LEAD: Duration = Duration::from_secs(5);

/// What `write` does while the session is disconnected (a relay restart, a network blip).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnDisconnect {
    /// Keep queueing up to the capacity (then wait, as on a full queue); nothing is handed to
    /// the network until the session is back, and the queued audio then plays in a new
    /// generation. A blip of a few seconds loses nothing that was not already on the wire.
    #[default]
    Queue,
    /// Refuse: `write` fails with [`Error::Connection`] and queues nothing from that call.
    Fail,
}

/// Settings for [`crate::AudioProducer`]. Start from [`ProducerOptions::new`] or `Default`
/// (48 kHz mono) and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// Input sample rate in Hz, 8 000..=48 000. Rates libopus does not take (e.g. 22 050,
    /// 44 100) are resampled to 48 kHz.
    pub sample_rate: u32,
    /// Input channels, 1 or 2.
    pub channels: u32,
    /// Opus frame duration (default 20 ms).
    pub frame_duration: FrameDuration,
    /// Opus bitrate in bits/s; `None` lets libopus choose for the rate (≈ 24–32 kbit/s mono).
    pub bitrate: Option<u32>,
    /// How far ahead of the playout clock frames are handed to the network. Enough that the
    /// listener's jitter buffer does not starve, small because it is what a flush cannot take
    /// back from a listener that ignores generations (a stock hang player). Default 60 ms.
    pub lead: Duration,
    /// Audio the producer queues before `write` waits. Default 30 s, so a typical 10 s TTS reply
    /// written at once never waits.
    pub capacity: Duration,
    /// Opus frames per MoQ group. Default 5 (100 ms at 20 ms frames): a flush resets at most the
    /// unsent part of one group, and a late joiner starts at most one group back.
    pub group_frames: u32,
    /// A pending mark resolves `unknown` when no listener reported playout for this long while
    /// it waited (a listener that left, or none at all). Default 5 s: well over the feedback
    /// interval (50 ms) plus a jitter buffer and network delay.
    pub mark_timeout: Duration,
    /// What `write` does while the session is disconnected. Default [`OnDisconnect::Queue`].
    pub on_disconnect: OnDisconnect,
    /// At a flush, also reset (QUIC RESET_STREAM) the old generation's groups already handed to
    /// the network, so their unsent bytes die in the sender and in relays. Default `false`:
    /// listeners that know generations (ours) drop that audio anyway, while a stock hang player
    /// (`@moq/watch`) stalls on the hole a reset leaves and drops up to 100 ms of the new reply
    /// to catch up (2 of 6 runs of `tests/test_stock_player.py` with resets, 0 of 6 without).
    /// Turn it on when every listener is generation-aware and the bytes matter. `cancel()`
    /// always resets.
    pub reset_in_flight: bool,
}

impl ProducerOptions {
    /// Options for input at `sample_rate` Hz with `channels` channels, everything else default.
    pub fn new(sample_rate: u32, channels: u32) -> Self {
        Self {
            sample_rate,
            channels,
            ..Self::default()
        }
    }

    /// Check every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        check_format(self.sample_rate, self.channels)?;
        if self.lead > MAX_LEAD {
            return Err(Error::InvalidInput(format!(
                "lead {:?} is over {MAX_LEAD:?}",
                self.lead
            )));
        }
        if self.capacity < self.frame_duration.duration() {
            return Err(Error::InvalidInput(format!(
                "capacity {:?} is less than one Opus frame",
                self.capacity
            )));
        }
        if self.group_frames == 0 {
            return Err(Error::InvalidInput(
                "group_frames must be at least 1".into(),
            ));
        }
        if self.mark_timeout.is_zero() {
            return Err(Error::InvalidInput(
                "mark_timeout must be greater than zero".into(),
            ));
        }
        Ok(())
    }

    /// Input samples (all channels) that fit in [`capacity`](Self::capacity).
    pub(crate) fn capacity_samples(&self) -> usize {
        (self.capacity.as_micros() as u64 * self.sample_rate as u64 / 1_000_000) as usize
            * self.channels as usize
    }
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 1,
            frame_duration: FrameDuration::Ms20,
            bitrate: None,
            lead: Duration::from_millis(60),
            capacity: Duration::from_secs(30),
            group_frames: 5,
            mark_timeout: Duration::from_secs(5),
            on_disconnect: OnDisconnect::Queue,
            reset_in_flight: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let bad = |f: fn(&mut ProducerOptions)| {
            let mut o = ProducerOptions::default();
            f(&mut o);
            o.validate().unwrap_err().to_string()
        };
        assert!(bad(|o| o.sample_rate = 4_000).contains("4000"));
        assert!(bad(|o| o.channels = 3).contains("3 channels"));
        assert!(bad(|o| o.lead = Duration::from_secs(6)).contains("lead"));
        assert!(bad(|o| o.capacity = Duration::from_millis(5)).contains("capacity"));
        assert!(bad(|o| o.group_frames = 0).contains("group_frames"));
        assert!(bad(|o| o.mark_timeout = Duration::ZERO).contains("mark_timeout"));
        assert!(ProducerOptions::default().validate().is_ok());
    }
}
