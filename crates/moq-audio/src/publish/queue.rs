//! The producer's queue: the state that writers, `flush()` and the pump share under one lock.
//!
//! ```text
//! write(pcm) ─► pcm ─► (pump: encode) ─► frames ─► (pump: pacer) ─► GroupWriter ─► track
//!                ▲ capacity                         ▲ due time
//! ```
//! Everything not yet handed to the [`GroupWriter`] sits here, where a flush can still drop it.
//! [`State::start_generation`] is the one path to a new generation. The [`GroupWriter`] has a
//! lock of its own ([`Shared::write_track`]): what goes on the track is decided under this lock
//! and written under that one, so nobody waits on the queue while a track write runs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::groups::{GroupWriter, TrackWrite, MARKER_US};
use super::marks::MarkTracker;
use super::options::ProducerOptions;
use super::pacer::Pacer;
use super::pcm_queue::PcmQueue;
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
    pub(crate) pcm: PcmQueue,
    /// Input samples the pump took and is encoding right now.
    pub(crate) in_encoder: usize,
    /// Codec-rate samples in the pump's partial frame.
    pub(crate) codec_pending: usize,
    /// Encoded frames not yet handed to the track.
    pub(crate) frames: VecDeque<Bytes>,
    pub(crate) pacer: Pacer,
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
    /// A generation change not yet on the track ([`State::take_cut`]).
    pub(crate) cut: Option<Cut>,
    /// PCM a flush dropped, for the pump to free outside the lock.
    pub(crate) trash: Vec<PcmQueue>,
}

/// The in-band side of a generation change, left by `flush()` (or a reconnect) for the pump.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cut {
    /// Reset the old generation's groups in flight rather than finish them.
    reset: bool,
    /// What the marker announces: [`Event::Flush`] or [`Event::Cancel`].
    event: Event,
}

impl State {
    /// Drop everything of the current generation that was not handed out, move to the next
    /// generation, and leave the in-band side of the cut to the pump ([`Self::take_cut`]):
    /// closing the old generation's groups in flight (reset on a cancel, or per
    /// [`ProducerOptions::reset_in_flight`]) and the marker announcing `event` (a flush,
    /// or the cancel that ends the track).
    ///
    /// Nothing here touches the track, so a `flush()` is a lock and a few counters and never
    /// wakes a network task itself: writing the marker wakes the session's tasks, and on a busy
    /// 2-core machine the flushing thread was then preempted while it held the lock (p99 of
    /// `flush()` 890 µs with a writer thread, 63 µs without the track writes; bench/results.md).
    ///
    /// The pacer keeps its schedule: new audio written right away goes out on the old timeline,
    /// `lead` ahead of playout, not in a burst. A stock hang player (which ignores generations)
    /// then hears the new reply continue the old one without a hole; a burst made `@moq/watch`
    /// take the early frames for a faster network, skip ahead and drop 20–30 ms of the new reply
    /// (measured, issue 12). Our listeners re-buffer their jitter target after the cut. After the
    /// writer was idle (the usual barge-in: the agent waits for the user), the pacer re-anchors at
    /// "now" anyway and the first lead goes out at once, as at the start of any talk spurt.
    ///
    /// Returns what was dropped.
    pub(crate) fn start_generation(&mut self, shared: &Shared, event: Event) -> Dropped {
        let dropped = Dropped {
            pcm_us: shared.input_us(self.pcm.len() + self.in_encoder)
                + shared.codec_us(self.codec_pending),
            encoded_us: self.frames.len() as u64 * shared.frame_us(),
            sent_us: self.sent_frames * shared.frame_us(),
        };
        // The pump frees the dropped buffers: freeing hundreds of a writer thread's buffers
        // here made `flush()` wait on the allocator (p50 8 → 44 µs with a writer thread).
        let dropped_pcm = self.pcm.take_all();
        self.trash.push(dropped_pcm);
        self.frames.clear();
        self.in_encoder = 0;
        self.codec_pending = 0;
        self.pipeline_pending = false;
        self.generation += 1;
        shared.generation.store(self.generation, Ordering::Release);
        self.carried_from = None;
        self.sent_frames = 0;
        self.written = 0;
        let reset = event == Event::Cancel || shared.options.reset_in_flight;
        self.cut_pending(reset, event);
        dropped
    }

    /// Move to a new generation *keeping* what is queued (after a reconnect): the listeners'
    /// view of the old generation ended with the outage, so the rest plays as a new one they
    /// cut over to, not spliced onto audio from before the outage. Marks on queued audio move
    /// with it; marks on audio already sent stay with the old generation (played if a late
    /// report says so, else unknown after the mark timeout). Writers waiting for room keep
    /// their place. The old groups are reset and the marker written by [`Self::take_cut`].
    pub(crate) fn carry_over_generation(&mut self, shared: &Shared) {
        let queued = self.pcm.len() + self.in_encoder;
        let queued_codec = self.codec_pending + self.frames.len() * shared.frame_samples_codec();
        let queued_input = queued + shared.codec_to_input_samples(queued_codec);
        let consumed = (self.written as usize).saturating_sub(queued_input);
        let old = self.generation;
        self.generation += 1;
        shared.generation.store(self.generation, Ordering::Release);
        self.carried_from = Some(old);
        self.sent_frames = 0;
        self.written -= consumed as u64;
        self.marks
            .rebase(old, self.generation, shared.input_us(consumed));
        self.cut_pending(true, Event::Flush);
    }

    /// Record a cut for [`Self::take_cut`]. Several cuts before the pump runs make one: the
    /// latest generation's marker (a listener cuts to the highest generation it sees, so the
    /// skipped ones, which hold no audio, need none), with a reset if any of them asked for one.
    fn cut_pending(&mut self, reset: bool, event: Event) {
        let reset = reset || self.cut.is_some_and(|c| c.reset);
        self.cut = Some(Cut { reset, event });
    }

    /// Take the pending cut as a [`TrackWrite`] for the track: close (or reset) the old
    /// generation's groups, then write the current generation's marker, opening its first
    /// group, where the timeline stands; the new audio starts [`MARKER_US`] after it
    /// (timestamps only move forward). The pump takes it under the lock before it hands out
    /// any frame, so no frame of the new generation precedes its marker; a cancel takes it at
    /// once, before it ends the track. The marker is written even if nothing was sent (a
    /// listener may hold nothing, but a relay may still hold the reset groups' tails).
    pub(crate) fn take_cut(&mut self, out: &mut Vec<TrackWrite>) {
        if let Some(cut) = self.cut.take() {
            out.push(TrackWrite::Cut {
                reset: cut.reset,
                at_us: self.marker_slot(),
                generation: self.generation,
                event: cut.event,
            });
        }
    }

    /// The finish marker (the current generation, [`Event::Finish`]) and the end of the track.
    pub(crate) fn take_finish(&mut self, out: &mut Vec<TrackWrite>) {
        out.push(TrackWrite::Marker {
            at_us: self.marker_slot(),
            generation: self.generation,
            event: Event::Finish,
        });
        out.push(TrackWrite::End);
    }

    /// Where a marker goes on the timeline; the audio after it starts [`MARKER_US`] later.
    fn marker_slot(&mut self) -> u64 {
        let at = self.pacer.next_ts_us();
        self.pacer.advance(MARKER_US);
        at
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
    /// The track's writer, under its own lock ([`Shared::write_track`]).
    track: Mutex<GroupWriter>,
    /// [`State::generation`], readable without the queue lock ([`Shared::write_track`]).
    generation: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        state: State,
        options: ProducerOptions,
        codec_rate: u32,
        demand: moq_net::track::Producer,
        track: GroupWriter,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            track: Mutex::new(track),
            generation: AtomicU64::new(0),
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

    /// Carry out `writes` in order. The track's lock is taken before the queue lock `st` is
    /// released, so batches reach the track in the order they were decided; the writes then
    /// run with the queue unlocked. The order of the locks is always queue, then track.
    ///
    /// A frame whose generation a flush ended since it was handed out is skipped, so once
    /// `flush()` returns no frame of an older generation goes on the track (but for one whose
    /// write had already begun; `FlushReport::sent` counts a skipped one as sent).
    ///
    /// # Errors
    /// The first frame that could not be written ([`GroupWriter::apply`]); the rest of the
    /// batch is dropped (the track is gone).
    pub(crate) fn write_track(
        &self,
        st: MutexGuard<'_, State>,
        writes: Vec<TrackWrite>,
    ) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut track = self.track.lock().unwrap_or_else(|e| e.into_inner());
        drop(st);
        for write in writes {
            if let TrackWrite::Frame { generation, .. } = &write {
                if *generation != self.generation.load(Ordering::Acquire) {
                    continue;
                }
            }
            track.apply(write)?;
        }
        Ok(())
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
