//! [`AudioProducer`]: the public API of the publish side — write, flush, mark, finish, cancel.
//!
//! ```text
//! write(pcm) ─► queue ─► pump: resample + Opus encode ─► frames ─► pacer ─► GroupWriter ─► track
//!                 ▲ capacity (write waits)                          ▲ hands frame k at its due time
//! flush(): generation += 1 and the queue and the encoded frames are dropped, under the one
//! lock the pump also takes to hand out a frame; the pump then ends the old groups in flight and
//! writes the marker before any new frame (State::write_cut).
//! ```
//! See [`super::queue`] for the shared state and [`super::pump`] for the task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encode::EncodePipeline;
use super::groups::{GroupWriter, TrackWrite};
use super::marks::{Heard, ListenerPlayout, MarkEvent, MarkTracker};
use super::options::ProducerOptions;
use super::pacer::Pacer;
use super::pcm_queue::PcmQueue;
use super::queue::{Shared, State, Status};
use crate::codec::opus::codec_rate;
use crate::codec::pcm::Pcm;
use crate::wire::loc::Event;
use crate::wire::playout::PlayoutReport;
use crate::{Error, Result};

/// After a reconnect, how long the producer holds its carried audio for a listener to
/// resubscribe (see [`AudioProducer::reconnected`]): a listener notices a crashed relay after
/// the QUIC idle timeout (4 s) and redials with backoff, so its session can be back a few
/// seconds after ours.
const RESUME_HOLD: Duration = Duration::from_secs(5);

/// What a [`AudioProducer::flush`] dropped and how far the flushed generation had got.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FlushReport {
    /// The new generation (the flushed one was `generation - 1`).
    pub generation: u64,
    /// Audio dropped before encoding (PCM queue and the encoder's partial frame).
    pub dropped_pcm: Duration,
    /// Audio dropped as encoded Opus frames not yet handed to the track.
    pub dropped_encoded: Duration,
    /// Audio of the flushed generation already handed to the track.
    pub sent: Duration,
    /// How far into the flushed generation listeners had rendered at the cut; see [`Heard`].
    pub heard: Heard,
}

impl FlushReport {
    fn nothing(generation: u64) -> Self {
        Self {
            generation,
            dropped_pcm: Duration::ZERO,
            dropped_encoded: Duration::ZERO,
            sent: Duration::ZERO,
            heard: Heard::default(),
        }
    }
}

/// Result of one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Every sample was queued.
    Queued,
    /// A flush happened before all samples were queued; the rest were dropped with the old
    /// generation (samples written before a flush never play in the new one).
    Flushed,
}

/// A write that passed validation, bound to the generation it was made in, waiting to be
/// queued ([`AudioProducer::prepare`]).
#[derive(Debug)]
pub struct PendingWrite {
    samples: Vec<f32>,
    generation: u64,
}

/// Publishes PCM as paced Opus on one MoQ track, and drops it on demand.
///
/// Cheap to clone; clones share the track. All methods may be called from any thread.
/// Dropping the last clone cancels the track (like [`AudioProducer::cancel`]); call
/// [`AudioProducer::finish`] to play out what is queued first.
#[derive(Clone)]
pub struct AudioProducer {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

struct DropGuard(Arc<Shared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        cancel(&self.0);
    }
}

impl AudioProducer {
    /// Start publishing on `track`, whose broadcast's catalog must describe it (see
    /// [`crate::wire::catalog::build`]; [`crate::Session::publish_audio`] does all of it).
    /// Spawns the pump on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad options; [`Error::Opus`] if libopus rejects them.
    pub fn new(track: moq_net::track::Producer, options: ProducerOptions) -> Result<Self> {
        options.validate()?;
        let pipeline = EncodePipeline::new(
            options.sample_rate,
            options.channels,
            options.frame_duration,
            options.bitrate,
        )?;
        let now = Instant::now();
        let demand = track.clone();
        let state = State {
            generation: 0,
            status: Status::Open,
            pcm: PcmQueue::default(),
            in_encoder: 0,
            codec_pending: 0,
            frames: Default::default(),
            pacer: Pacer::new(now, options.lead, options.frame_duration.duration()),
            sent_frames: 0,
            written: 0,
            drained: false,
            pipeline_pending: false,
            last_write: now,
            error: None,
            marks: MarkTracker::default(),
            disconnected: false,
            carried_from: None,
            hold_until: None,
            cut: None,
            trash: Vec::new(),
        };
        let rate = codec_rate(options.sample_rate);
        let groups = GroupWriter::new(track, options.group_frames, options.channels);
        let shared = Arc::new(Shared::new(state, options, rate, demand, groups));
        tokio::spawn(super::pump::run(shared.clone(), pipeline));
        Ok(Self {
            _guard: Arc::new(DropGuard(shared.clone())),
            shared,
        })
    }

    /// The options this producer was built with.
    pub fn options(&self) -> &ProducerOptions {
        &self.shared.options
    }

    /// The Opus sample rate in Hz (the input rate, or 48 kHz when it had to be resampled).
    pub fn codec_rate(&self) -> u32 {
        self.shared.codec_rate
    }

    /// The current generation: 0 at start, +1 per [`flush`](Self::flush).
    pub fn generation(&self) -> u64 {
        self.shared.lock().generation
    }

    /// Audio written in the current generation: the position a [`mark`](Self::mark) would pin,
    /// on the same scale as [`FlushReport::heard`] and mark positions (ms into the generation).
    pub fn written(&self) -> Duration {
        let st = self.shared.lock();
        Duration::from_micros(self.shared.input_us(st.written as usize))
    }

    /// Audio queued and not yet handed to the track (PCM, partial frame and encoded frames).
    pub fn queued(&self) -> Duration {
        let st = self.shared.lock();
        Duration::from_micros(st.queued_us(&self.shared))
    }

    /// Validate `pcm` and bind it to the current generation, without queueing it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (see [`Pcm::to_f32`]) or [`Error::Closed`] after finish/cancel.
    /// A rejected write queues nothing and leaves the producer usable.
    pub fn prepare(&self, pcm: Pcm<'_>) -> Result<PendingWrite> {
        let samples = pcm.to_f32(self.shared.options.channels)?;
        let st = self.shared.lock();
        st.check_writable(&self.shared)?;
        Ok(PendingWrite {
            samples,
            generation: st.generation,
        })
    }

    /// Queue a prepared write if it fits now, without waiting; hands it back if it does not
    /// (nothing of it is queued then).
    ///
    /// # Errors
    /// [`Error::Closed`] if the producer was finished or cancelled.
    pub fn try_write(
        &self,
        write: PendingWrite,
    ) -> Result<std::result::Result<WriteOutcome, PendingWrite>> {
        let shared = &self.shared;
        {
            let mut st = shared.lock();
            st.check_writable(shared)?;
            if !st.same_stream(write.generation) {
                return Ok(Ok(WriteOutcome::Flushed));
            }
            let len = write.samples.len();
            if len > st.room(shared) {
                return Ok(Err(write));
            }
            st.pcm.push(write.samples);
            st.written += len as u64;
            st.last_write = Instant::now();
        }
        shared.work.notify_one();
        Ok(Ok(WriteOutcome::Queued))
    }

    /// Queue a prepared write, waiting while the queue is full.
    ///
    /// Returns [`WriteOutcome::Flushed`] if a flush dropped (part of) it meanwhile.
    ///
    /// # Errors
    /// [`Error::Closed`] if the producer was finished or cancelled meanwhile.
    pub async fn write_prepared(&self, mut write: PendingWrite) -> Result<WriteOutcome> {
        let shared = &self.shared;
        let total = write.samples.len();
        let mut offset = 0;
        loop {
            let notified = shared.space.notified();
            tokio::pin!(notified);
            {
                let mut st = shared.lock();
                st.check_writable(shared)?;
                if !st.same_stream(write.generation) {
                    return Ok(WriteOutcome::Flushed);
                }
                let room = st.room(shared);
                // Keep whole sample frames together.
                let room = room - room % shared.options.channels as usize;
                let take = room.min(total - offset);
                if take == total {
                    // All of it at once (the usual case): the buffer moves in, uncopied.
                    st.pcm.push(std::mem::take(&mut write.samples));
                } else {
                    st.pcm.push(write.samples[offset..offset + take].to_vec());
                }
                st.written += take as u64;
                st.last_write = Instant::now();
                offset += take;
                if offset < total {
                    // Wait for room, registered before the lock is let go: the pump and flush()
                    // notify after they take it. Only then, so that a write that fits (the usual
                    // case) does not take the notifier's own lock, which flush() also takes.
                    notified.as_mut().enable();
                }
            }
            shared.work.notify_one();
            if offset == total {
                return Ok(WriteOutcome::Queued);
            }
            notified.await;
        }
    }

    /// Validate and queue `pcm` (interleaved), waiting while the queue is full.
    ///
    /// # Errors
    /// As [`prepare`](Self::prepare) and [`write_prepared`](Self::write_prepared).
    pub async fn write(&self, pcm: Pcm<'_>) -> Result<WriteOutcome> {
        let w = self.prepare(pcm)?;
        self.write_prepared(w).await
    }

    /// Drop everything not yet played and start a new generation; the track stays open.
    ///
    /// Atomically with respect to the pacer and writers: increments the generation and drops the
    /// PCM queue and the encoded frames not yet handed out. Then it wakes the pump, which, before
    /// it hands out any frame of the new generation, closes the flushed generation's groups in
    /// flight (resets them, QUIC RESET_STREAM, per [`ProducerOptions::reset_in_flight`]) and
    /// writes the new generation's marker so listeners cut over in band. Wakes writers
    /// waiting on a full queue; their remaining samples are dropped. The next write plays at once.
    /// Never touches the network or waits on a writer (a lock and a few counters); safe from any
    /// thread.
    ///
    /// On a finished or cancelled producer it changes nothing and reports zeros.
    pub fn flush(&self) -> FlushReport {
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.is_closed() {
            return FlushReport::nothing(st.generation);
        }
        let flushed = st.generation;
        let dropped = st.start_generation(shared, Event::Flush);
        let heard = st.marks.flush(flushed, Instant::now());
        let report = FlushReport {
            generation: st.generation,
            dropped_pcm: Duration::from_micros(dropped.pcm_us),
            dropped_encoded: Duration::from_micros(dropped.encoded_us),
            sent: Duration::from_micros(dropped.sent_us),
            heard,
        };
        drop(st);
        shared.space.notify_waiters();
        shared.work.notify_one();
        report
    }

    /// Pin `id` to the current write position (end of everything written so far in this
    /// generation). It resolves once: played when a listener renders that point, flushed if a
    /// flush drops it first. See [`super::marks`].
    ///
    /// # Errors
    /// [`Error::Closed`] after finish/cancel; [`Error::InvalidInput`] for a duplicate pending id.
    pub fn mark(&self, id: &str) -> Result<()> {
        let shared = &self.shared;
        let mut st = shared.lock();
        st.check_open()?;
        let at_us = shared.input_us(st.written as usize);
        let generation = st.generation;
        st.marks.add(id, generation, at_us)
    }

    /// Wait until mark `id` resolves and return how.
    ///
    /// Returns at once for a mark that already resolved (the last 1 024 are remembered).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if no mark `id` is pending or recently resolved.
    pub async fn wait_mark(&self, id: &str) -> Result<MarkEvent> {
        let mut rx = {
            let st = self.shared.lock();
            if let Some(event) = st.marks.resolved(id) {
                return Ok(event);
            }
            if !st.marks.is_pending(id) {
                return Err(Error::InvalidInput(format!("no mark {id:?}")));
            }
            // Subscribed under the lock that resolutions take: none can slip past.
            st.marks.subscribe()
        };
        loop {
            match rx.recv().await {
                Ok(event) if event.id == id => return Ok(event),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(event) = self.shared.lock().marks.resolved(id) {
                        return Ok(event);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(Error::Closed("dropped"))
                }
            }
        }
    }

    /// Subscribe to mark resolutions of this producer.
    pub fn mark_events(&self) -> tokio::sync::broadcast::Receiver<MarkEvent> {
        self.shared.lock().marks.subscribe()
    }

    /// Feed a listener's playout report into the mark tracker. [`crate::Session::publish_audio`]
    /// does this for every listener that publishes feedback (see [`crate::wire::playout`]).
    pub fn report_playout(&self, report: PlayoutReport) {
        self.shared.lock().marks.report(report, Instant::now());
    }

    /// What each listener last reported about its playout (generation, position, playing),
    /// sorted by listener id; empty until a listener's first report arrives.
    pub fn listeners(&self) -> Vec<ListenerPlayout> {
        self.shared.lock().marks.listeners(Instant::now())
    }

    /// A handle the feedback collector holds: it feeds reports and expires marks without
    /// keeping the producer alive (dropping the last [`AudioProducer`] still cancels it).
    pub fn playout_sink(&self) -> PlayoutSink {
        PlayoutSink(self.shared.clone())
    }

    /// Play out everything queued, then end the track cleanly. Writes fail afterwards.
    ///
    /// # Errors
    /// [`Error::Closed`] if the producer was cancelled meanwhile; the pump's error (e.g.
    /// [`Error::Moq`] when the session ended, [`Error::Opus`]) if it failed.
    pub async fn finish(&self) -> Result<()> {
        {
            let mut st = self.shared.lock();
            match st.status {
                Status::Open => st.status = Status::Finishing,
                Status::Finishing | Status::Finished => {}
                Status::Cancelled => {
                    return Err(st.error.clone().unwrap_or(Error::Closed("cancelled")))
                }
            }
        }
        self.shared.work.notify_one();
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
        let st = self.shared.lock();
        match (st.status, &st.error) {
            (_, Some(e)) => Err(e.clone()),
            (Status::Finished, None) => Ok(()),
            _ => Err(Error::Closed("cancelled")),
        }
    }

    /// Drop everything, tell listeners in band (a cancel marker), and end the track.
    /// Idempotent; writes fail afterwards. Pending marks resolve as flushed.
    pub fn cancel(&self) {
        cancel(&self.shared);
    }

    /// Whether the producer was finished or cancelled.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().is_closed()
    }

    /// The session dropped: hand nothing to the track until [`reconnected`](Self::reconnected)
    /// (it would go nowhere); writes keep queueing or fail, per
    /// [`ProducerOptions::on_disconnect`]. [`crate::AudioBroadcast`] calls this for you.
    pub fn disconnected(&self) {
        self.shared.lock().disconnected = true;
    }

    /// The session is back: what is queued continues in a new generation (announced with a
    /// marker, so listeners drop what they held from before the outage), sent at once up to the
    /// lead and then in real time — once someone subscribes to the track again, or after 5 s,
    /// so a listener that resubscribes a moment later hears the carried audio from its start.
    /// [`crate::AudioBroadcast`] calls this for you.
    pub fn reconnected(&self) {
        let mut st = self.shared.lock();
        if st.is_closed() || !st.disconnected {
            return;
        }
        st.disconnected = false;
        st.carry_over_generation(&self.shared);
        if !self.shared.demand.is_used() {
            // Hold the carried audio until a listener is back (its session reconnects around the
            // same time), but not for long: audio for nobody is as good as none.
            st.hold_until = Some(Instant::now() + RESUME_HOLD);
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(RESUME_HOLD, shared.demand.used()).await;
                shared.lock().hold_until = None;
                shared.work.notify_one();
            });
        }
        drop(st);
        self.shared.work.notify_one();
    }

    /// Whether the producer is holding its audio because the session is down.
    pub fn is_disconnected(&self) -> bool {
        self.shared.lock().disconnected
    }

    /// End the producer with `error` (e.g. the session ended for good): queued audio is
    /// dropped, pending marks resolve flushed, writers and [`finish`](Self::finish) get the error.
    pub fn fail(&self, error: Error) {
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.is_closed() {
            return;
        }
        let generation = st.generation;
        let _pcm = st.pcm.take_all(); // freed after the lock is let go
        st.frames.clear();
        st.marks.flush(generation, Instant::now());
        shared.fail(&mut st, error);
        drop(st);
        shared.space.notify_waiters();
        shared.work.notify_one();
    }
}

fn cancel(shared: &Shared) {
    let mut st = shared.lock();
    if st.is_closed() {
        return;
    }
    let cancelled = st.generation;
    st.start_generation(shared, Event::Cancel);
    st.marks.flush(cancelled, Instant::now());
    st.status = Status::Cancelled;
    // The cancel marker, then a clean end: relays pass a finish on, not a reset's error code.
    let mut writes = Vec::new();
    st.take_cut(&mut writes);
    writes.push(TrackWrite::End);
    if let Err(e) = shared.write_track(st, writes) {
        tracing::debug!(%e, "the track was already closed at cancel");
    }
    shared.space.notify_waiters();
    shared.work.notify_one();
    shared.done.send_replace(true);
}

/// The producer as its feedback collector sees it ([`AudioProducer::playout_sink`]).
#[derive(Clone)]
pub struct PlayoutSink(Arc<Shared>);

impl PlayoutSink {
    /// A listener's playout report arrived.
    pub fn report(&self, report: PlayoutReport) {
        self.0.lock().marks.report(report, Instant::now());
    }

    /// Resolve pending marks as unknown when no listener reported for the mark timeout.
    pub fn expire_marks(&self) {
        let timeout = self.0.options.mark_timeout;
        self.0.lock().marks.expire(Instant::now(), timeout);
    }

    /// Closed and no mark left to resolve: feedback is no longer needed.
    pub fn is_done(&self) -> bool {
        let st = self.0.lock();
        st.is_closed() && !st.marks.has_pending()
    }
}
