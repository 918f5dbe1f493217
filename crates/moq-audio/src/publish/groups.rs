//! [`GroupWriter`]: Opus frames into MoQ groups, and the groups a flush must reset.
//!
//! Group sequences are contiguous over the whole track (0, 1, 2, … across flushes): stock hang
//! players follow a track only at sequence + 1. The generation rides in every frame instead
//! ([`crate::wire::loc`]). At a flush the writer resets (QUIC RESET_STREAM, through moq-net's
//! abort) the open group and the last finished ones, which may still hold unsent bytes, and
//! opens the new generation's first group with its marker frame, so listeners cut over before
//! any new audio exists; the new audio follows in that same group.
//!
//! The producer decides what goes on the track under its queue lock, as a batch of
//! [`TrackWrite`]s, and carries the batch out under the writer's own lock
//! ([`super::queue::Shared::track`]): a track write wakes the session's network tasks, and a
//! thread preempted there must not hold up `flush()` or a writer.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::wire::loc::{Event, Frame};
use crate::Result;

/// Duration of the marker's Opus packet (TOC config 16: 2.5 ms), µs.
pub(crate) const MARKER_US: u64 = 2_500;

/// Finished groups kept for a reset at the next flush. With the default 60 ms lead and 100 ms
/// groups, at most the last two finished groups can still have bytes in the send buffer.
const RECENT_GROUPS: usize = 2;

/// One write to the track, decided under the producer's queue lock and carried out by
/// [`GroupWriter::apply`] outside it, in order.
#[derive(Debug)]
pub(crate) enum TrackWrite {
    /// An audio frame of `generation` stamped `timestamp_us`.
    Frame {
        timestamp_us: u64,
        generation: u64,
        payload: Bytes,
    },
    /// A new generation: close (`reset`: reset) the old one's groups, then open its first group
    /// with the marker.
    Cut {
        reset: bool,
        at_us: u64,
        generation: u64,
        event: Event,
    },
    /// The finish marker of `generation` (before [`TrackWrite::End`]).
    Marker {
        at_us: u64,
        generation: u64,
        event: Event,
    },
    /// Close the open group and end the track cleanly.
    End,
}

/// Writes one track's groups.
pub(crate) struct GroupWriter {
    track: moq_net::track::Producer,
    /// The group frames are appended to, and how many audio frames it holds (a marker that
    /// opened it does not count).
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

    /// Carry out one [`TrackWrite`]. Only a frame's failure is returned (the track is gone:
    /// the producer fails); a marker that cannot be written is logged (the generation in every
    /// frame still makes listeners cut over), and ending a track that is already closed is not
    /// an error.
    ///
    /// # Errors
    /// [`crate::Error::Moq`] when a frame cannot be written because the track is closed.
    pub(crate) fn apply(&mut self, write: TrackWrite) -> Result<()> {
        match write {
            TrackWrite::Frame {
                timestamp_us,
                generation,
                payload,
            } => return self.write(timestamp_us, generation, payload),
            TrackWrite::Cut {
                reset,
                at_us,
                generation,
                event,
            } => {
                self.end_generation(reset);
                if let Err(e) = self.marker(at_us, generation, event) {
                    tracing::warn!(%e, "could not publish the generation marker");
                }
            }
            TrackWrite::Marker {
                at_us,
                generation,
                event,
            } => {
                if let Err(e) = self.marker(at_us, generation, event) {
                    tracing::warn!(%e, "could not publish the end marker");
                }
            }
            TrackWrite::End => {
                if let Err(e) = self.finish() {
                    tracing::debug!(%e, "the track was already closed at its end");
                }
            }
        }
        Ok(())
    }

    /// Append an audio frame of `generation` stamped `timestamp_us`, opening and closing groups
    /// every `group_frames` frames.
    ///
    /// # Errors
    /// [`crate::Error::Moq`] when the track is closed (the session ended).
    fn write(&mut self, timestamp_us: u64, generation: u64, payload: Bytes) -> Result<()> {
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
            self.finish_open()?;
        }
        Ok(())
    }

    /// Close the old generation's groups at a flush: reset them (their unsent bytes die in the
    /// sender and in relays, which pass the reset on) when `reset`, else finish the open one so
    /// what was handed out is delivered whole. Generation-aware listeners drop those frames
    /// either way; a stock hang player (no generations) stalls on the hole a reset leaves and
    /// then drops up to 100 ms of the new reply to catch up (measured, see
    /// [`crate::publish::ProducerOptions::reset_in_flight`]).
    fn end_generation(&mut self, reset: bool) {
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
    fn reset_unsent(&mut self) {
        if let Some((group, _)) = self.open.take() {
            let _ = group.abort(moq_net::Error::Cancel);
        }
        for group in self.recent.drain(..) {
            // A group whose bytes are all acknowledged is already gone from the send side;
            // resetting it is a no-op error we ignore.
            let _ = group.abort(moq_net::Error::Cancel);
        }
    }

    /// Open a new group with a marker frame announcing `event` for `generation` at `at_us`,
    /// where the old audio ends; the caller starts the new audio [`MARKER_US`] later, in this
    /// same group, so a stock decoder that plays the marker's 2.5 ms "no data" packet
    /// ([`crate::wire::loc::marker_payload`]) as concealment sees one continuous timeline (an
    /// overlap made upstream's decoder reset and trim new audio; the measurements are in the
    /// README's wire format section). Never below what was already written. A group still open
    /// is finished first.
    ///
    /// The marker does not get a group of its own: moq-lite sends the newest group first, so a
    /// one-frame marker group opened at the same moment as the new audio's first group could
    /// reach a listener after it, and a stock hang player, which plays groups in sequence
    /// order, waited for the missing marker group until its latency check threw away the new
    /// reply's first 100 ms (seen on a loaded 2-core machine, `tests/test_stock_player.py`).
    ///
    /// # Errors
    /// [`crate::Error::Moq`] when the track is closed.
    fn marker(&mut self, at_us: u64, generation: u64, event: Event) -> Result<()> {
        self.finish_open()?;
        let at = at_us.max(self.last_ts_us);
        let mut group = self.track.append_group()?;
        Frame::marker(at, generation, event, self.channels).write_to(&mut group)?;
        self.open = Some((group, 0));
        self.last_ts_us = at;
        Ok(())
    }

    /// Finish the open group, if any, keeping it for a reset at the next flush.
    fn finish_open(&mut self) -> Result<()> {
        if let Some((group, _)) = self.open.take() {
            group.finish()?;
            self.recent.push_back(group);
            while self.recent.len() > RECENT_GROUPS {
                self.recent.pop_front();
            }
        }
        Ok(())
    }

    /// Close the open group and end the track cleanly.
    fn finish(&mut self) -> Result<()> {
        if let Some((group, _)) = self.open.take() {
            group.finish()?;
        }
        self.track.finish()?;
        Ok(())
    }
}
