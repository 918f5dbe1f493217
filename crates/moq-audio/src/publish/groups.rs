//! [`GroupWriter`]: Opus frames into MoQ groups, and the groups a flush must reset.
//!
//! Group sequences are contiguous over the whole track (0, 1, 2, … across flushes): stock hang
//! players follow a track only at sequence + 1. The generation rides in every frame instead
//! ([`crate::wire::loc`]). At a flush the writer resets (QUIC RESET_STREAM, through moq-net's
//! abort) the open group and the last finished ones, which may still hold unsent bytes, and
//! writes a one-frame marker group so listeners cut over before any new audio exists.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::wire::loc::{Event, Frame};
use crate::Result;

/// Duration of the marker's Opus packet (TOC config 16: 2.5 ms), µs.
pub(crate) const MARKER_US: u64 = 2_500;

/// Finished groups kept for a reset at the next flush. With the default 60 ms lead and 100 ms
/// groups, at most the last two finished groups can still have bytes in the send buffer.
const RECENT_GROUPS: usize = 2;

/// Writes one track's groups.
pub(crate) struct GroupWriter {
    track: moq_net::track::Producer,
    /// The group frames are appended to, and how many it holds.
    open: Option<(moq_net::group::Producer, u32)>,
    /// Recently finished groups, which may still have unsent bytes: reset at the next flush.
    recent: VecDeque<moq_net::group::Producer>,
    group_frames: u32,
    channels: u32,
    /// The highest timestamp written, µs: nothing goes below it.
    last_ts_us: u64,
}

impl GroupWriter {
    pub(crate) fn new(track: moq_net::track::Producer, group_frames: u32, channels: u32) -> Self {
        Self {
            track,
            open: None,
            recent: VecDeque::new(),
            group_frames,
            channels,
            last_ts_us: 0,
        }
    }

    /// Append an audio frame of `generation` stamped `timestamp_us`, opening and closing groups
    /// every `group_frames` frames.
    ///
    /// # Errors
    /// [`crate::Error::Moq`] when the track is closed (the session ended).
    pub(crate) fn write(
        &mut self,
        timestamp_us: u64,
        generation: u64,
        payload: Bytes,
    ) -> Result<()> {
        let frame = Frame {
            timestamp_us,
            generation,
            event: None,
            payload,
        };
        let (group, frames) = match &mut self.open {
            Some(open) => open,
            None => self.open.insert((self.track.append_group()?, 0)),
        };
        frame.write_to(group)?;
        *frames += 1;
        self.last_ts_us = self.last_ts_us.max(timestamp_us);
        if *frames >= self.group_frames {
            let (group, _) = self.open.take().expect("open");
            group.finish()?;
            self.recent.push_back(group);
            while self.recent.len() > RECENT_GROUPS {
                self.recent.pop_front();
            }
        }
        Ok(())
    }

    /// Close the old generation's groups at a flush: reset them (their unsent bytes die in the
    /// sender and in relays, which pass the reset on) when `reset`, else finish the open one so
    /// what was handed out is delivered whole. Generation-aware listeners drop those frames
    /// either way; a stock hang player (no generations) stalls on the hole a reset leaves and
    /// then drops up to 100 ms of the new reply to catch up (measured, see
    /// [`crate::publish::ProducerOptions::reset_in_flight`]).
    pub(crate) fn end_generation(&mut self, reset: bool) {
        if reset {
            self.reset_unsent();
        } else {
            if let Some((group, _)) = self.open.take() {
                let _ = group.finish();
            }
            self.recent.clear();
        }
    }

    /// Reset the open group and the recent ones: their unsent bytes die in the sender (and in
    /// relays, which pass the reset on).
    pub(crate) fn reset_unsent(&mut self) {
        if let Some((group, _)) = self.open.take() {
            let _ = group.abort(moq_net::Error::Cancel);
        }
        for group in self.recent.drain(..) {
            // A group whose bytes are all acknowledged is already gone from the send side;
            // resetting it is a no-op error we ignore.
            let _ = group.abort(moq_net::Error::Cancel);
        }
    }

    /// Write a one-frame marker group announcing `event` for `generation` at `at_us`, where the
    /// old audio ends; the caller starts the new audio [`MARKER_US`] later, so a stock decoder
    /// that plays the marker's 2.5 ms "no data" packet ([`crate::wire::loc::marker_payload`]) as
    /// concealment sees one continuous timeline (an overlap made upstream's decoder reset and
    /// trim new audio; the measurements are in the README's wire format section). Never below
    /// what was already written.
    ///
    /// # Errors
    /// [`crate::Error::Moq`] when the track is closed.
    pub(crate) fn marker(&mut self, at_us: u64, generation: u64, event: Event) -> Result<()> {
        let at = at_us.max(self.last_ts_us);
        let mut group = self.track.append_group()?;
        Frame::marker(at, generation, event, self.channels).write_to(&mut group)?;
        group.finish()?;
        self.last_ts_us = at;
        Ok(())
    }

    /// Close the open group and end the track cleanly.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if let Some((group, _)) = self.open.take() {
            group.finish()?;
        }
        self.track.finish()?;
        Ok(())
    }
}
