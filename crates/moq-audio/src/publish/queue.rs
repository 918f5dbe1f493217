//! The producer's queue: the state that writers, `flush()` and the pump share under one lock.
//!
//! ```text
//! write(pcm) ─► pcm ─► (pump: encode) ─► frames ─► (pump: pacer) ─► GroupWriter ─► track
//!                ▲ capacity                         ▲ due time
//! ```
//! Everything not yet handed to the [`GroupWriter`] sits here, where a flush can still drop it.
//! [`State::start_generation`] is the one path to a new generation.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::groups::GroupWriter;
use super::marks::MarkTracker;
use super::options::ProducerOptions;
use super::pacer::Pacer;
use crate::codec::pcm::samples_to_us;
use crate::wire::loc::Event;
use crate::{Error, Result};

/// Where the producer is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    /// `finish()` was called: play out what is queued, then end the track.
    Finishing,
    Finished,
    Cancelled,
}

/// What a flush dropped, in µs.
pub(crate) struct Dropped {
    pub(crate) pcm_us: u64,
    pub(crate) encoded_us: u64,
    pub(crate) sent_us: u64,
}

/// Everything under the producer's lock.
pub(crate) struct State {
    pub(crate) generation: u64,
    pub(crate) status: Status,
    /// Interleaved input-rate samples of the current generation, not yet taken by the pump.
    pub(crate) pcm: VecDeque<f32>,
    /// Input samples the pump took and is encoding right now.
    pub(crate) in_encoder: usize,
    /// Codec-rate samples in the pump's partial frame.
    pub(crate) codec_pending: usize,
    /// Encoded frames not yet handed to the track.
    pub(crate) frames: VecDeque<Bytes>,
    pub(crate) pacer: Pacer,
    pub(crate) groups: GroupWriter,
    /// Frames of the current generation handed to the track.
    pub(crate) sent_frames: u64,
    /// Input samples written in the current generation (for marks).
    pub(crate) written: u64,
    /// Set when the pump drained the encoder at finish.
    pub(crate) drained: bool,
    /// Whether the pump holds input back (resampler, partial frame).
    pub(crate) pipeline_pending: bool,
    /// When samples were last queued.
    pub(crate) last_write: Instant,
    /// Why the producer failed, for every later caller.
    pub(crate) error: Option<Error>,
    pub(crate) marks: MarkTracker,
    /// The session is down: nothing is handed to the track (it would go nowhere).
    pub(crate) disconnected: bool,
    /// The generation whose queued audio the current one carried over at a reconnect: the
    /// pump keeps its encoder and accepts frames it was encoding for it.
    pub(crate) carried_from: Option<u64>,
    /// After a reconnect, hand nothing out before this (or before someone subscribes,
    /// whichever is first), so a listener whose session reconnects a moment later gets the
    /// carried audio from its start.
    pub(crate) hold_until: Option<Instant>,
}

impl State {
    /// Drop everything of the current generation that was not handed out, close its groups in
    /// flight (reset them on a cancel, or per [`ProducerOptions::reset_in_flight`]), move to the
    /// next generation and announce it in band with a marker group
    /// (`event`: a flush, or the cancel that ends the track).
    ///
    /// The pacer keeps its schedule: new audio written right away goes out on the old timeline,
    /// `lead` ahead of playout, not in a burst. A stock hang player (which ignores generations)
    /// then hears the new reply continue the old one without a hole; a burst made `@moq/watch`
    /// take the early frames for a faster network, skip ahead and drop 20–30 ms of the new reply
    /// (measured, issue 12). Our listeners re-buffer their jitter target after the cut. After the
    /// writer was idle (the usual barge-in: the agent waits for the user), the pacer re-anchors at
    /// "now" anyway and the first lead goes out at once, as at the start of any talk spurt.
    ///
    /// Returns what was dropped. The marker is written even if nothing was sent (a listener may
    /// hold nothing, but a relay may still hold the reset groups' tails).
    pub(crate) fn start_generation(&mut self, shared: &Shared, event: Event) -> Dropped {
        let dropped = Dropped {
            pcm_us: shared.input_us(self.pcm.len() + self.in_encoder)
                + shared.codec_us(self.codec_pending),
            encoded_us: self.frames.len() as u64 * shared.frame_us(),
            sent_us: self.sent_frames * shared.frame_us(),
        };
        self.pcm.clear();
        self.pcm.shrink_to(0);
        self.frames.clear();
        self.in_encoder = 0;
        self.codec_pending = 0;
        self.pipeline_pending = false;
        self.groups
            .end_generation(event == Event::Cancel || shared.options.reset_in_flight);
        self.generation += 1;
        self.carried_from = None;
        self.sent_frames = 0;
        self.written = 0;
        self.announce(event);
        dropped
    }

    /// Move to a new generation *keeping* what is queued (after a reconnect): the listeners'
    /// view of the old generation ended with the outage, so the rest plays as a new one they
    /// cut over to, not spliced onto audio from before the outage. Marks on queued audio move
    /// with it; marks on audio already sent stay with the old generation (played if a late
    /// report says so, else unknown after the mark timeout). Writers waiting for room keep
    /// their place.
    pub(crate) fn carry_over_generation(&mut self, shared: &Shared) {
        let queued = self.pcm.len() + self.in_encoder;
        let queued_codec = self.codec_pending + self.frames.len() * shared.frame_samples_codec();
        let queued_input = queued + shared.codec_to_input_samples(queued_codec);
        let consumed = (self.written as usize).saturating_sub(queued_input);
        let old = self.generation;
        self.groups.reset_unsent();
        self.generation += 1;
        self.carried_from = Some(old);
        self.sent_frames = 0;
        self.written -= consumed as u64;
        self.marks
            .rebase(old, self.generation, shared.input_us(consumed));
        self.announce(Event::Flush);
    }

    /// Write the finish marker (the current generation, [`Event::Finish`]) before the track ends.
    pub(crate) fn announce_finish(&mut self) {
        self.announce(Event::Finish);
    }

    /// Write the current generation's marker where the timeline stands, and start the new
    /// audio after it (timestamps only move forward).
    fn announce(&mut self, event: Event) {
        let at = self.pacer.next_ts_us();
        if let Err(e) = self.groups.marker(at, self.generation, event) {
            tracing::warn!(%e, "could not publish the generation marker");
        }
        self.pacer.advance(super::groups::MARKER_US);
    }

    /// Audio queued and not yet handed to the track, in µs.
    pub(crate) fn queued_us(&self, shared: &Shared) -> u64 {
        shared.input_us(self.pcm.len() + self.in_encoder)
            + shared.codec_us(self.codec_pending)
            + self.frames.len() as u64 * shared.frame_us()
    }

    /// Input samples the writers may still queue before the capacity is reached.
    pub(crate) fn room(&self, shared: &Shared) -> usize {
        shared
            .capacity_samples
            .saturating_sub(self.pcm.len() + self.in_encoder)
    }

    /// `Ok` while writes are accepted.
    ///
    /// # Errors
    /// [`Error::Closed`] after finish or cancel; the pump's own error if it failed;
    /// [`Error::Connection`] while disconnected when the options say to fail.
    pub(crate) fn check_writable(&self, shared: &Shared) -> Result<()> {
        self.check_open()?;
        if self.disconnected && shared.options.on_disconnect == super::options::OnDisconnect::Fail {
            return Err(Error::Connection(
                "the session is disconnected (reconnecting); nothing was queued".into(),
            ));
        }
        Ok(())
    }

    /// `Ok` while the producer is open.
    ///
    /// # Errors
    /// [`Error::Closed`] after finish or cancel; the pump's own error if it failed.
    pub(crate) fn check_open(&self) -> Result<()> {
        match self.status {
            Status::Open => Ok(()),
            Status::Finishing | Status::Finished => Err(Error::Closed("finished")),
            Status::Cancelled => Err(self.error.clone().unwrap_or(Error::Closed("cancelled"))),
        }
    }

    /// Whether audio bound to `generation` still belongs to the current stream: the current
    /// generation, or the one it carried over at a reconnect.
    pub(crate) fn same_stream(&self, generation: u64) -> bool {
        generation == self.generation || self.carried_from == Some(generation)
    }

    /// Whether frames may be handed to the track at `now`.
    pub(crate) fn may_send(&self, now: Instant) -> bool {
        !self.disconnected && self.hold_until.is_none_or(|t| now >= t)
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.status, Status::Finished | Status::Cancelled)
    }
}

/// What the producer's handles and its pump share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Writers waiting for room.
    pub(crate) space: Notify,
    /// The pump waiting for work.
    pub(crate) work: Notify,
    /// Set once the producer finished or was cancelled.
    pub(crate) done: watch::Sender<bool>,
    pub(crate) options: ProducerOptions,
    pub(crate) codec_rate: u32,
    pub(crate) capacity_samples: usize,
    /// A handle on the track for its demand (whether anyone subscribes), outside the lock.
    pub(crate) demand: moq_net::track::Producer,
}

impl Shared {
    pub(crate) fn new(
        state: State,
        options: ProducerOptions,
        codec_rate: u32,
        demand: moq_net::track::Producer,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            space: Notify::new(),
            work: Notify::new(),
            done: watch::channel(false).0,
            codec_rate,
            capacity_samples: options.capacity_samples(),
            options,
            demand,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving rather than poisoning
        // every later call (and never panic across into Python).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn frame_us(&self) -> u64 {
        self.options.frame_duration.as_ms() as u64 * 1000
    }

    /// Codec-rate samples (all channels) in one Opus frame.
    pub(crate) fn frame_samples_codec(&self) -> usize {
        self.options.frame_duration.samples(self.codec_rate) * self.options.channels as usize
    }

    /// Input-rate samples (all channels) covering `codec` codec-rate samples.
    pub(crate) fn codec_to_input_samples(&self, codec: usize) -> usize {
        (codec as u64 * self.options.sample_rate as u64 / self.codec_rate as u64) as usize
    }

    pub(crate) fn input_us(&self, samples: usize) -> u64 {
        samples_to_us(samples, self.options.sample_rate, self.options.channels)
    }

    pub(crate) fn codec_us(&self, samples: usize) -> u64 {
        samples_to_us(samples, self.codec_rate, self.options.channels)
    }

    /// Fail the producer with `error` (the pump cannot go on): writers and `finish()` see it.
    pub(crate) fn fail(&self, st: &mut State, error: Error) {
        tracing::warn!(%error, "the audio producer failed");
        st.error = Some(error);
        st.status = Status::Cancelled;
        self.done.send_replace(true);
    }
}
