//! [`AudioProducer`]: PCM in, paced Opus frames out on a MoQ track, with generation flush.
//!
//! ```text
//! write(pcm) ─► PCM queue ─► pump: resample + Opus encode ─► frame queue ─► pacer ─► track
//!                  ▲ capacity (write waits)                              ▲ hands frame k at its due time
//! flush(): generation += 1; PCM queue, frame queue and the open group are dropped, all under
//! the one lock the pacer also takes to hand out a frame.
//! ```
//! The pump is a tokio task. It encodes outside the lock and re-checks the generation before
//! queueing what it encoded, so `flush()` only ever waits for the queue lock, never for libopus,
//! the network or a writer (DESIGN.md invariant 4).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::encode::EncodePipeline;
use crate::generation::{group_sequence, GROUPS_PER_GENERATION};
use crate::opus::{codec_rate, FrameDuration};
use crate::pacer::Pacer;
use crate::pcm::{check_format, Pcm};
use crate::marks::{MarkEvent, MarkTracker};
use crate::{Error, Result};

/// Frames the pump keeps encoded ahead of the pacer. Small, so a flush drops mostly unencoded
/// PCM and little CPU is spent on audio nobody hears.
const ENCODE_AHEAD: usize = 3;

/// How long a partial frame waits for more input before anything was sent in a generation.
const IDLE_PARTIAL: Duration = Duration::from_millis(200);

/// Settings for [`AudioProducer`]. Start from [`ProducerOptions::new`] or `Default`
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
    /// back from a listener that ignores generations. Default 60 ms.
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
        if self.lead > Duration::from_secs(5) {
            return Err(Error::InvalidInput(format!("lead {:?} is over 5 s", self.lead)));
        }
        if self.capacity < self.frame_duration.duration() {
            return Err(Error::InvalidInput(format!(
                "capacity {:?} is less than one Opus frame",
                self.capacity
            )));
        }
        if self.group_frames == 0 {
            return Err(Error::InvalidInput("group_frames must be at least 1".into()));
        }
        Ok(())
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
        }
    }
}

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
    /// How far into the flushed generation listeners had rendered at the cut; see
    /// [`crate::marks::Heard`].
    pub heard: crate::marks::Heard,
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

/// A write that passed validation, waiting to be queued.
#[derive(Debug)]
pub struct PendingWrite {
    samples: Vec<f32>,
    generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Open,
    Finishing,
    Finished,
    Cancelled,
}

struct OpenGroup {
    group: moq_net::group::Producer,
    frames: u32,
}

struct State {
    generation: u64,
    status: Status,
    /// Interleaved input-rate samples of the current generation, not yet taken by the pump.
    pcm: VecDeque<f32>,
    /// Input samples the pump took and is encoding right now.
    in_encoder: usize,
    /// Codec-rate samples in the pump's partial frame.
    codec_pending: usize,
    /// Encoded frames not yet handed to the track.
    frames: VecDeque<Bytes>,
    pacer: Pacer,
    group: Option<OpenGroup>,
    /// Recently finished groups, which may still have unsent bytes: aborted on flush too.
    recent: VecDeque<moq_net::group::Producer>,
    next_group: u64,
    /// Frames of the current generation handed to the track.
    sent_frames: u64,
    /// Input samples written in the current generation (for marks).
    written: u64,
    /// Set when the pump drained the encoder at finish.
    drained: bool,
    /// Whether the pump holds input back (resampler, partial frame).
    pipeline_pending: bool,
    /// When samples were last queued.
    last_write: Instant,
    error: Option<String>,
    marks: MarkTracker,
}

struct Shared {
    state: Mutex<State>,
    /// Things that must live as long as the producer (its broadcast, the catalog track).
    attached: Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
    broadcast: Mutex<Option<moq_net::broadcast::Producer>>,
    track: moq_net::track::Producer,
    space: Notify,
    work: Notify,
    done: watch::Sender<bool>,
    options: ProducerOptions,
    codec_rate: u32,
    capacity_samples: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving rather than poisoning
        // every later call (and never panic across into Python).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn frame_us(&self) -> u64 {
        self.options.frame_duration.as_ms() as u64 * 1000
    }

    fn input_us(&self, samples: usize) -> u64 {
        crate::pcm::samples_to_us(samples, self.options.sample_rate, self.options.channels)
    }

    fn codec_us(&self, samples: usize) -> u64 {
        crate::pcm::samples_to_us(samples, self.codec_rate, self.options.channels)
    }
}

/// The producer as seen by its feedback task: reports in, marks expired, without keeping the
/// producer alive (dropping the last [`AudioProducer`] still cancels it).
#[derive(Clone)]
pub(crate) struct ProducerSink(Arc<Shared>);

impl ProducerSink {
    pub(crate) fn report_playout(&self, report: crate::feedback::PlayoutReport) {
        self.0.lock().marks.report(report, Instant::now());
    }

    pub(crate) fn expire_marks(&self, timeout: Duration) {
        self.0.lock().marks.expire(Instant::now(), timeout);
    }

    pub(crate) fn mark_timeout(&self) -> Duration {
        self.0.options.mark_timeout
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.0.lock().status, Status::Finished | Status::Cancelled)
    }

    /// Closed and no mark left to resolve: feedback is no longer needed.
    pub(crate) fn is_done(&self) -> bool {
        self.is_closed() && !self.has_pending_marks()
    }

    pub(crate) fn has_pending_marks(&self) -> bool {
        self.0.lock().marks.has_pending()
    }
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
    /// Start publishing on `track` (a track of a hang broadcast whose catalog describes it; see
    /// [`crate::session`]). Spawns the pump on the current tokio runtime.
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
        let capacity_samples = (options.capacity.as_micros() as u64 * options.sample_rate as u64 / 1_000_000)
            as usize
            * options.channels as usize;
        let pacer = Pacer::new(Instant::now(), options.lead, options.frame_duration.duration());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                status: Status::Open,
                pcm: VecDeque::new(),
                in_encoder: 0,
                codec_pending: 0,
                frames: VecDeque::new(),
                pacer,
                group: None,
                recent: VecDeque::new(),
                next_group: 0,
                sent_frames: 0,
                written: 0,
                drained: false,
                pipeline_pending: false,
                last_write: Instant::now(),
                error: None,
                marks: MarkTracker::default(),
            }),
            attached: Mutex::new(Vec::new()),
            broadcast: Mutex::new(None),
            track,
            space: Notify::new(),
            work: Notify::new(),
            done: watch::channel(false).0,
            codec_rate: codec_rate(options.sample_rate),
            capacity_samples,
            options,
        });
        tokio::spawn(pump(shared.clone(), pipeline));
        Ok(Self {
            _guard: Arc::new(DropGuard(shared.clone())),
            shared,
        })
    }

    /// Add a message track (e.g. `transcript.json`) to this producer's broadcast.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the producer was not created by
    /// [`crate::Session::publish_audio`]; [`Error::Moq`] if the name is taken.
    pub fn data_track(&self, name: &str) -> Result<crate::data::DataWriter> {
        let broadcast = self.shared.broadcast.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let broadcast = broadcast.ok_or_else(|| Error::InvalidInput("this producer has no broadcast".into()))?;
        Ok(crate::data::DataWriter::new(broadcast.create_track(name, None)?))
    }

    /// Set the broadcast this producer's track belongs to (kept alive with the producer).
    pub fn set_broadcast(&self, broadcast: moq_net::broadcast::Producer) {
        *self.shared.broadcast.lock().unwrap_or_else(|e| e.into_inner()) = Some(broadcast);
    }

    /// Keep `thing` alive as long as the producer (e.g. the broadcast the track belongs to).
    pub fn attach(&self, thing: Box<dyn std::any::Any + Send + Sync>) {
        self.shared.attached.lock().unwrap_or_else(|e| e.into_inner()).push(thing);
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
        Duration::from_micros(self.queued_us(&st))
    }

    fn queued_us(&self, st: &State) -> u64 {
        let s = &self.shared;
        s.input_us(st.pcm.len() + st.in_encoder)
            + s.codec_us(st.codec_pending)
            + st.frames.len() as u64 * s.frame_us()
    }

    /// Validate `pcm` and bind it to the current generation, without queueing it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (see [`Pcm::to_f32`]) or [`Error::Closed`] after finish/cancel.
    /// A rejected write queues nothing and leaves the producer usable.
    pub fn prepare(&self, pcm: Pcm<'_>) -> Result<PendingWrite> {
        let samples = pcm.to_f32(self.shared.options.channels)?;
        let st = self.shared.lock();
        check_open(&st)?;
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
    pub fn try_write(&self, write: PendingWrite) -> Result<std::result::Result<WriteOutcome, PendingWrite>> {
        let shared = &self.shared;
        {
            let mut st = shared.lock();
            check_open(&st)?;
            if st.generation != write.generation {
                return Ok(Ok(WriteOutcome::Flushed));
            }
            let queued = st.pcm.len() + st.in_encoder;
            if queued + write.samples.len() > shared.capacity_samples {
                return Ok(Err(write));
            }
            st.pcm.extend(&write.samples);
            st.written += write.samples.len() as u64;
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
    pub async fn write_prepared(&self, write: PendingWrite) -> Result<WriteOutcome> {
        let shared = &self.shared;
        let mut offset = 0;
        loop {
            let notified = shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = shared.lock();
                check_open(&st)?;
                if st.generation != write.generation {
                    return Ok(WriteOutcome::Flushed);
                }
                let queued = st.pcm.len() + st.in_encoder;
                let room = shared.capacity_samples.saturating_sub(queued);
                // Keep whole sample frames together.
                let room = room - room % shared.options.channels as usize;
                let take = room.min(write.samples.len() - offset);
                st.pcm.extend(&write.samples[offset..offset + take]);
                st.written += take as u64;
                st.last_write = Instant::now();
                offset += take;
            }
            shared.work.notify_one();
            if offset == write.samples.len() {
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
    /// Atomically with respect to the pacer and writers: increments the generation, drops the
    /// PCM queue, the encoded frames not yet handed out, and aborts the flushed generation's
    /// groups that may still hold unsent bytes (moq-net maps that to QUIC RESET_STREAM). Wakes
    /// writers waiting on a full queue; their remaining samples are dropped. The next write
    /// plays at once. Never waits on the network or a writer; safe from any thread.
    ///
    /// On a finished or cancelled producer it changes nothing and reports zeros.
    pub fn flush(&self) -> FlushReport {
        let shared = &self.shared;
        let mut st = shared.lock();
        if matches!(st.status, Status::Finished | Status::Cancelled) {
            return FlushReport {
                generation: st.generation,
                dropped_pcm: Duration::ZERO,
                dropped_encoded: Duration::ZERO,
                sent: Duration::ZERO,
                heard: crate::marks::Heard::default(),
            };
        }
        let dropped_pcm = shared.input_us(st.pcm.len() + st.in_encoder) + shared.codec_us(st.codec_pending);
        let dropped_encoded = st.frames.len() as u64 * shared.frame_us();
        let sent = st.sent_frames * shared.frame_us();
        let flushed = st.generation;
        start_generation(&mut st);
        // Tell listeners now, in band: an empty first group of the new generation. Without it
        // they would only learn of the flush with the next audio, and play out what they had
        // buffered (lead + jitter buffer) while the agent waits for the user to finish.
        if let Err(e) = send_marker(shared, &mut st) {
            tracing::warn!(%e, "could not publish the flush marker group");
        }
        let heard = st.marks.flush(flushed, Instant::now());
        let report = FlushReport {
            generation: st.generation,
            dropped_pcm: Duration::from_micros(dropped_pcm),
            dropped_encoded: Duration::from_micros(dropped_encoded),
            sent: Duration::from_micros(sent),
            heard,
        };
        drop(st);
        shared.space.notify_waiters();
        shared.work.notify_one();
        report
    }

    /// Pin `id` to the current write position (end of everything written so far in this
    /// generation). It resolves once: played when a listener renders that point, flushed if a
    /// flush drops it first. See [`crate::marks`].
    ///
    /// # Errors
    /// [`Error::Closed`] after finish/cancel; [`Error::InvalidInput`] for a duplicate pending id.
    pub fn mark(&self, id: &str) -> Result<()> {
        let shared = &self.shared;
        let mut st = shared.lock();
        check_open(&st)?;
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
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Err(Error::Closed("dropped")),
            }
        }
    }

    /// Subscribe to mark resolutions (and feedback) of this producer.
    pub fn mark_events(&self) -> tokio::sync::broadcast::Receiver<MarkEvent> {
        self.shared.lock().marks.subscribe()
    }

    /// Feed a listener's playout report into the mark tracker. [`crate::Session::publish_audio`]
    /// does this for every listener that publishes feedback (see [`crate::feedback`]).
    pub fn report_playout(&self, report: crate::feedback::PlayoutReport) {
        self.sink().report_playout(report);
    }

    pub(crate) fn sink(&self) -> ProducerSink {
        ProducerSink(self.shared.clone())
    }

    /// Play out everything queued, then end the track cleanly. Writes fail afterwards.
    ///
    /// # Errors
    /// [`Error::Closed`] if the producer was cancelled meanwhile; [`Error::Moq`]-derived errors
    /// if the track failed.
    pub async fn finish(&self) -> Result<()> {
        {
            let mut st = self.shared.lock();
            match st.status {
                Status::Open => st.status = Status::Finishing,
                Status::Finishing | Status::Finished => {}
                Status::Cancelled => return Err(Error::Closed("cancelled")),
            }
        }
        self.shared.work.notify_one();
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
        let st = self.shared.lock();
        if let Some(e) = &st.error {
            return Err(Error::Connection(e.clone()));
        }
        match st.status {
            Status::Finished => Ok(()),
            _ => Err(Error::Closed("cancelled")),
        }
    }

    /// Drop everything and end the track with an error code (subscribers see it aborted).
    /// Idempotent; writes fail afterwards.
    pub fn cancel(&self) {
        cancel(&self.shared);
    }

    /// Whether the producer was finished or cancelled.
    pub fn is_closed(&self) -> bool {
        matches!(self.shared.lock().status, Status::Finished | Status::Cancelled)
    }
}

fn check_open(st: &State) -> Result<()> {
    match st.status {
        Status::Open => Ok(()),
        Status::Finishing | Status::Finished => Err(Error::Closed("finished")),
        Status::Cancelled => Err(Error::Closed("cancelled")),
    }
}

/// Drop the current generation's queues and groups and move to the next generation.
fn start_generation(st: &mut State) {
    st.pcm.clear();
    st.pcm.shrink_to(0);
    st.frames.clear();
    st.in_encoder = 0;
    st.codec_pending = 0;
    st.pipeline_pending = false;
    abort_groups(st);
    st.generation += 1;
    st.next_group = 0;
    st.sent_frames = 0;
    st.written = 0;
    st.pacer.restart();
}

fn abort_groups(st: &mut State) {
    if let Some(open) = st.group.take() {
        let _ = open.group.abort(moq_net::Error::Cancel);
    }
    for group in st.recent.drain(..) {
        // A group whose bytes are all acknowledged is already gone from the send side; aborting
        // it is then a no-op error we ignore.
        let _ = group.abort(moq_net::Error::Cancel);
    }
}

fn cancel(shared: &Shared) {
    let mut st = shared.lock();
    if matches!(st.status, Status::Finished | Status::Cancelled) {
        return;
    }
    st.status = Status::Cancelled;
    st.pcm.clear();
    st.frames.clear();
    abort_groups(&mut st);
    let generation = st.generation;
    st.marks.flush(generation, Instant::now());
    let _ = shared.track.clone().abort(moq_net::Error::App(crate::generation::CANCEL_CODE));
    drop(st);
    shared.space.notify_waiters();
    shared.work.notify_one();
    shared.done.send_replace(true);
}

/// Open and finish an empty group as the first group of the current generation.
fn send_marker(shared: &Shared, st: &mut State) -> Result<()> {
    let group = shared.track.create_group(moq_net::group::Info {
        sequence: group_sequence(st.generation, st.next_group),
    })?;
    st.next_group += 1;
    group.finish()?;
    Ok(())
}

/// Hand `packet` to the track at timestamp `ts_us`, opening and closing groups as needed.
fn send(shared: &Shared, st: &mut State, packet: Bytes, ts_us: u64) -> Result<()> {
    if st.group.is_none() {
        if st.next_group == GROUPS_PER_GENERATION {
            // Out of sequence numbers for this generation (29 h of speech at defaults):
            // continue in the next one. Listeners see a flush with nothing dropped.
            let generation = st.generation;
            st.marks.flush(generation, Instant::now());
            st.generation += 1;
            st.next_group = 0;
            st.sent_frames = 0;
            st.written = 0;
        }
        let sequence = group_sequence(st.generation, st.next_group);
        let group = shared.track.create_group(moq_net::group::Info { sequence })?;
        st.next_group += 1;
        st.group = Some(OpenGroup { group, frames: 0 });
    }
    let open = st.group.as_mut().expect("opened above");
    let frame = hang::container::Frame {
        timestamp: moq_net::Timestamp::from_micros(ts_us).map_err(|e| Error::Wire(e.to_string()))?,
        payload: packet,
    };
    frame.write_to(&mut open.group)?;
    open.frames += 1;
    let generation = st.generation;
    st.marks.sent(generation, st.sent_frames, ts_us, shared.frame_us());
    st.sent_frames += 1;
    if open.frames >= shared.options.group_frames {
        let open = st.group.take().expect("open");
        open.group.finish()?;
        st.recent.push_back(open.group);
        // Only groups within the lead can still have unsent bytes worth resetting.
        while st.recent.len() > 2 {
            st.recent.pop_front();
        }
    }
    Ok(())
}

enum Job {
    Encode { samples: Vec<f32>, generation: u64 },
    /// Flush the resampler and pad the partial frame: at finish, or when the listener would
    /// otherwise starve with written audio stuck in a partial frame.
    Drain { generation: u64, finishing: bool },
    Wait(Option<Instant>),
    Exit,
}

/// The producer's task: encodes ahead, hands frames out at their due time, finishes the track.
async fn pump(shared: Arc<Shared>, mut pipeline: EncodePipeline) {
    let mut epoch = 0;
    let in_frame = shared.options.frame_duration.samples(shared.options.sample_rate) * shared.options.channels as usize;
    loop {
        let notified = shared.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let job = {
            let mut st = shared.lock();
            if st.generation != epoch {
                epoch = st.generation;
                st.drained = false;
                if let Err(e) = pipeline.reset() {
                    st.error = Some(e.to_string());
                }
            }
            next_job(&shared, &mut st, in_frame)
        };
        let result = match job {
            Job::Exit => return,
            Job::Wait(deadline) => {
                match deadline {
                    Some(at) => {
                        tokio::select! {
                            _ = notified => {}
                            _ = tokio::time::sleep_until(at.into()) => {}
                        }
                    }
                    None => notified.await,
                }
                continue;
            }
            Job::Encode { samples, generation } => pipeline.push(&samples).map(|p| (p, generation, false)),
            Job::Drain { generation, finishing } => pipeline.drain().map(|p| (p, generation, finishing)),
        };
        let mut st = shared.lock();
        st.in_encoder = 0;
        match result {
            Ok((packets, generation, drained)) if generation == st.generation => {
                st.frames.extend(packets);
                st.codec_pending = pipeline.pending_samples();
                st.pipeline_pending = pipeline.has_pending();
                st.drained |= drained;
            }
            Ok(_) => {} // flushed while encoding: the generation check drops it
            Err(e) => {
                st.error = Some(e.to_string());
                st.status = Status::Cancelled;
                drop(st);
                shared.done.send_replace(true);
                return;
            }
        }
        drop(st);
        shared.space.notify_waiters();
    }
}

/// Under the lock: hand out due frames, then decide what the pump does next.
fn next_job(shared: &Shared, st: &mut State, in_frame: usize) -> Job {
    if matches!(st.status, Status::Cancelled | Status::Finished) {
        return Job::Exit;
    }
    // Pace: hand out every frame that is due.
    let now = Instant::now();
    while !st.frames.is_empty() {
        let Some(ts) = st.pacer.take(now) else { break };
        let packet = st.frames.pop_front().expect("non-empty");
        if let Err(e) = send(shared, st, packet, ts) {
            st.error = Some(e.to_string());
            st.status = Status::Cancelled;
            shared.done.send_replace(true);
            return Job::Exit;
        }
    }
    // Encode ahead.
    if st.frames.len() < ENCODE_AHEAD {
        if !st.pcm.is_empty() {
            let n = in_frame.min(st.pcm.len());
            let samples: Vec<f32> = st.pcm.drain(..n).collect();
            st.in_encoder = n;
            return Job::Encode {
                samples,
                generation: st.generation,
            };
        }
        if st.status == Status::Finishing && !st.drained {
            return Job::Drain {
                generation: st.generation,
                finishing: true,
            };
        }
        // The writer paused (TTS idle, end of a sentence) with part of a frame written: once
        // that frame is due, send it padded with silence rather than hold the audio back (a
        // mark on it could never resolve, and the listener would starve anyway).
        if st.frames.is_empty() && st.pipeline_pending && now >= partial_deadline(shared, st) {
            st.pipeline_pending = false;
            return Job::Drain {
                generation: st.generation,
                finishing: false,
            };
        }
    }
    if st.status == Status::Finishing && st.drained && st.frames.is_empty() {
        if let Some(open) = st.group.take() {
            let _ = open.group.finish();
        }
        st.status = Status::Finished;
        let _ = shared.track.finish();
        shared.done.send_replace(true);
        return Job::Exit;
    }
    Job::Wait(if !st.frames.is_empty() {
        st.pacer.due()
    } else if st.pipeline_pending {
        Some(partial_deadline(shared, st))
    } else {
        None
    })
}

/// When a partial frame left by a pausing writer must go out padded: when the listener reaches
/// it (its due time plus the lead, so a writer that keeps pace with chunks of any size is never
/// padded), or, before anything was sent, after [`IDLE_PARTIAL`] without a write.
fn partial_deadline(shared: &Shared, st: &State) -> Instant {
    match st.pacer.due() {
        Some(due) => due + shared.options.lead,
        None => st.last_write + IDLE_PARTIAL,
    }
}
