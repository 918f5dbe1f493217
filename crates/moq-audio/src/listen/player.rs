//! [`Player`]: renders what a listener hears, in real time, through the jitter buffer.
//!
//! A render clock advances with wall time in quanta (default 10 ms). Packets go undecoded into
//! the adaptive [`JitterBuffer`] as they arrive; each quantum takes that much audio from it
//! (decoded at that moment, concealed by Opus PLC where a packet is missing, silence when there
//! is none), appends it to an optional WAV file (so the file's sample index *is* the render
//! clock), logs what was rendered, and every `report_interval` publishes a [`PlayoutReport`] on
//! the feedback track, if one is given.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::conceal::OpusPackets;
use super::consumer::{AudioConsumer, EndReason};
use super::jitter::{JitterBuffer, JitterOptions, JitterStats, Rendered};
use crate::codec::pcm::f32_to_i16;
use crate::wire::playout::PlayoutReport;
use crate::{Error, Result};

/// Settings for [`Player`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PlayerOptions {
    /// The jitter buffer's target delay before anything was measured, default 40 ms; it then
    /// adapts to the network (see [`crate::listen::delay`]) within `min_target..=max_target`.
    pub target: Duration,
    /// Smallest target delay, default 20 ms. `min_target == max_target` fixes the target.
    pub min_target: Duration,
    /// Largest target delay, default 400 ms (above the ~250 ms a QUIC retransmission takes at
    /// 100 ms one-way delay). The publisher's lead (its catalog's `leadMs`) comes on top: audio
    /// sent ahead is kept, and only skipped over max(`max_target`, lead) + 100 ms.
    pub max_target: Duration,
    /// Fade-out at a flush, default 5 ms (at most 10 ms).
    pub fade: Duration,
    /// Write what is rendered to this WAV file (16-bit PCM at the consumer's rate), on a thread
    /// of its own. A file that cannot be created fails [`Player::start`]; one that cannot be
    /// written (a full disk) ends the player with [`Error::Io`] naming it.
    pub wav_path: Option<PathBuf>,
    /// Render quantum, default 10 ms (an audio device callback's usual period).
    pub quantum: Duration,
    /// How often playout is reported on the feedback track, default 50 ms.
    pub report_interval: Duration,
}

impl Default for PlayerOptions {
    fn default() -> Self {
        Self {
            target: Duration::from_millis(40),
            min_target: Duration::from_millis(20),
            max_target: Duration::from_millis(400),
            fade: Duration::from_millis(5),
            wav_path: None,
            quantum: Duration::from_millis(10),
            report_interval: Duration::from_millis(50),
        }
    }
}

/// A stretch of the render clock with one kind of content.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// First sample frame of the stretch on the render clock (= index in the WAV file).
    pub start: u64,
    /// Sample frames in the stretch.
    pub frames: u64,
    /// Generation rendered, `None` for silence.
    pub generation: Option<u64>,
    /// Media timestamp (µs) of the first sample, for audio.
    pub ts_us: u64,
    /// Whether this is the fade-out of a flushed generation.
    pub fade: bool,
    /// Whether this stretch was concealed (Opus PLC in place of a missing packet).
    pub concealed: bool,
}

/// When the first frame of a generation reached the player.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    /// The generation.
    pub generation: u64,
    /// Render clock (sample frames) when it arrived.
    pub at_frame: u64,
}

/// What the player has done so far.
#[derive(Clone, Debug, Default)]
pub struct PlayerReport {
    /// Sample rate of the render clock in Hz.
    pub sample_rate: u32,
    /// Channels rendered.
    pub channels: u32,
    /// Sample frames rendered (length of the WAV file).
    pub rendered_frames: u64,
    /// Everything rendered, as stretches.
    pub segments: Vec<Segment>,
    /// First arrival of each generation.
    pub arrivals: Vec<Arrival>,
    /// Jitter buffer counters and its adaptation's state (target, jitter, delay, concealment).
    pub stats: JitterStats,
    /// (generation, media timestamp µs) just past the last sample rendered.
    pub position: Option<(u64, u64)>,
    /// How the track ended, once it has.
    pub end: Option<EndReason>,
    /// Whether the player has stopped.
    pub stopped: bool,
}

impl PlayerReport {
    /// Render-clock sample frames of `generation` (`None`: any audio, not silence) that lie at
    /// or after render frame `after`; `fade`: only the fade-out (`Some(true)`), only what was not
    /// faded (`Some(false)`), or both (`None`).
    ///
    /// E.g. the old audio a listener heard after a flush reached it:
    /// `report.frames_of(Some(0), arrival_of_generation_1, None)`.
    pub fn frames_of(&self, generation: Option<u64>, after: u64, fade: Option<bool>) -> u64 {
        self.segments
            .iter()
            .filter(|s| {
                s.generation.is_some() && (generation.is_none() || s.generation == generation)
            })
            .filter(|s| fade.is_none_or(|f| s.fade == f))
            .map(|s| (s.start + s.frames).saturating_sub(s.start.max(after)))
            .sum()
    }

    /// [`frames_of`](Self::frames_of) in ms.
    pub fn ms_of(&self, generation: Option<u64>, after: u64, fade: Option<bool>) -> f64 {
        self.frames_of(generation, after, fade) as f64 * 1000.0 / self.sample_rate.max(1) as f64
    }

    /// Total rendered, ms (the length of the WAV file).
    pub fn rendered_ms(&self) -> f64 {
        self.rendered_frames as f64 * 1000.0 / self.sample_rate.max(1) as f64
    }

    /// Render frame at which the first frame of `generation` (or a newer one) reached the player.
    pub fn arrival_of(&self, generation: u64) -> Option<u64> {
        self.arrivals
            .iter()
            .find(|a| a.generation >= generation)
            .map(|a| a.at_frame)
    }
}

/// Where a [`Player`] reports its playout: a track of a broadcast of its own
/// (`<audio broadcast>/listeners/<id>`, see [`crate::wire::playout`]), kept alive by the player.
pub struct PlayoutFeedback {
    broadcast: moq_net::broadcast::Producer,
    track: moq_net::track::Producer,
}

impl PlayoutFeedback {
    /// Report on `track`, a track of `broadcast`.
    pub fn new(broadcast: moq_net::broadcast::Producer, track: moq_net::track::Producer) -> Self {
        Self { broadcast, track }
    }
}

/// Real-time playout of an [`AudioConsumer`].
pub struct Player {
    shared: watch::Sender<PlayerReport>,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    task: Option<JoinHandle<Result<()>>>,
}

impl Player {
    /// Start playing `consumer` now. `feedback`: where playout reports are written (see
    /// [`crate::wire::playout`]); `None` plays without reporting.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a fade over 10 ms, a zero quantum or a `min_target` above
    /// `max_target`; [`Error::Opus`] if the stream's decoder cannot be built; [`Error::Io`] if the
    /// WAV file cannot be created.
    pub fn start(
        consumer: AudioConsumer,
        options: PlayerOptions,
        feedback: Option<PlayoutFeedback>,
    ) -> Result<Self> {
        if options.fade > Duration::from_millis(10) {
            return Err(Error::InvalidInput(format!(
                "fade {:?} is over 10 ms",
                options.fade
            )));
        }
        if options.quantum.is_zero() || options.report_interval.is_zero() {
            return Err(Error::InvalidInput(
                "quantum and report interval must be > 0".into(),
            ));
        }
        if options.min_target > options.max_target {
            return Err(Error::InvalidInput(format!(
                "min_target {:?} is above max_target {:?}",
                options.min_target, options.max_target
            )));
        }
        let rate = consumer.sample_rate();
        let channels = consumer.channels();
        let wav = match &options.wav_path {
            Some(path) => Some(WavSink::create(
                path,
                hound::WavSpec {
                    channels: channels as u16,
                    sample_rate: rate,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                },
            )?),
            None => None,
        };
        let mut jopts = JitterOptions::new(rate, channels);
        jopts.target_us = options.target.as_micros() as u64;
        jopts.min_target_us = options.min_target.as_micros() as u64;
        jopts.max_target_us = options.max_target.as_micros() as u64;
        jopts.fade_us = options.fade.as_micros() as u64;
        jopts.lead_us = consumer.description().lead_ms.unwrap_or(0) as u64 * 1_000;
        let decoder = OpusPackets::new(rate, consumer.description().sample_rate, channels)?;
        let shared = watch::channel(PlayerReport {
            sample_rate: rate,
            channels,
            ..PlayerReport::default()
        })
        .0;
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let playout = Playout {
            consumer,
            jitter: JitterBuffer::new(jopts, decoder),
            options,
            wav,
            feedback,
            shared: shared.clone(),
            stop: stop_rx,
            done: done_tx,
        };
        Ok(Self {
            shared,
            stop,
            done,
            task: Some(tokio::spawn(playout.run())),
        })
    }

    /// A cloneable handle for reading reports and stopping the player from elsewhere.
    pub fn handle(&self) -> PlayerHandle {
        PlayerHandle {
            report: self.shared.subscribe(),
            stop: self.stop.clone(),
        }
    }

    /// A snapshot of what has been rendered so far.
    pub fn report(&self) -> PlayerReport {
        self.shared.borrow().clone()
    }

    /// Wait until `pred` holds for the report (it is re-checked after every render quantum), and
    /// return that report.
    pub async fn wait_until(&self, pred: impl FnMut(&PlayerReport) -> bool) -> PlayerReport {
        self.handle().wait_until(pred).await
    }

    /// Wait until the track ended and everything buffered was rendered.
    pub async fn wait(&mut self) -> Result<PlayerReport> {
        let _ = self.done.wait_for(|d| *d).await;
        self.join().await
    }

    /// Stop now (the WAV file is finalized) and return the final report.
    pub async fn stop(&mut self) -> Result<PlayerReport> {
        self.stop.send_replace(true);
        self.join().await
    }

    async fn join(&mut self) -> Result<PlayerReport> {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(res) => res?,
                Err(e) => {
                    return Err(Error::Io(
                        std::io::Error::other(format!("player task failed: {e}")).into(),
                    ))
                }
            }
        }
        Ok(self.report())
    }
}

/// Reads a [`Player`]'s reports and stops it, without owning it.
#[derive(Clone)]
pub struct PlayerHandle {
    report: watch::Receiver<PlayerReport>,
    stop: watch::Sender<bool>,
}

impl PlayerHandle {
    /// A snapshot of what has been rendered so far.
    pub fn report(&self) -> PlayerReport {
        self.report.borrow().clone()
    }

    /// Ask the player to stop (it finalizes its WAV file and ends).
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Wait until `pred` holds for the report, re-checked after every render quantum.
    pub async fn wait_until(&self, mut pred: impl FnMut(&PlayerReport) -> bool) -> PlayerReport {
        let mut rx = self.report.clone();
        let r = rx.wait_for(|r| pred(r) || r.stopped).await;
        r.map(|r| r.clone()).unwrap_or_else(|_| self.report())
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The optional WAV file, written on a thread of its own: a write that blocks (a disk busy
/// with writeback) must not hold up the render clock, which would look like network jitter to
/// the jitter buffer (and delay every task on that Tokio worker).
struct WavSink {
    /// Rendered quanta (interleaved i16 samples) on their way to the writer thread.
    tx: std::sync::mpsc::Sender<Vec<i16>>,
    /// The writer thread; `None` once joined.
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl WavSink {
    /// Create the file now (so a bad path is an error from [`Player::start`]) and start the writer.
    fn create(path: &std::path::Path, spec: hound::WavSpec) -> Result<Self> {
        let mut writer = hound::WavWriter::create(path, spec).map_err(|e| wav_error(path, e))?;
        let path = path.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<i16>>();
        let thread = std::thread::Builder::new()
            .name("moq-audio-wav".into())
            .spawn(move || {
                for quantum in rx {
                    for s in quantum {
                        writer.write_sample(s).map_err(|e| wav_error(&path, e))?;
                    }
                }
                writer.finalize().map_err(|e| wav_error(&path, e))
            })
            .map_err(|e| Error::Io(e.into()))?;
        Ok(Self {
            tx,
            thread: Some(thread),
        })
    }

    /// Queue one rendered quantum. Fails with the writer's error if it stopped (a full disk).
    fn write(&mut self, quantum: Vec<i16>) -> Result<()> {
        if self.tx.send(quantum).is_ok() {
            return Ok(());
        }
        // The writer ended early, so it failed: its error (it has returned; the join is at once).
        Err(match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            _ => Error::Io(std::io::Error::other("the WAV writer stopped").into()),
        })
    }

    /// Write what is queued, finalize the file (its header's length) and return any error.
    async fn finish(self) -> Result<()> {
        let Self { tx, thread } = self;
        drop(tx);
        let Some(thread) = thread else {
            return Ok(()); // it failed, and write() returned its error
        };
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(res)) => res,
            _ => Err(Error::Io(
                std::io::Error::other("the WAV writer panicked").into(),
            )),
        }
    }
}

fn wav_error(path: &std::path::Path, e: hound::Error) -> Error {
    Error::Io(std::io::Error::other(format!("{}: {e}", path.display())).into())
}

/// The player's task and everything it owns.
struct Playout {
    consumer: AudioConsumer,
    jitter: JitterBuffer<OpusPackets>,
    options: PlayerOptions,
    wav: Option<WavSink>,
    feedback: Option<PlayoutFeedback>,
    shared: watch::Sender<PlayerReport>,
    stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
}

impl Playout {
    async fn run(mut self) -> Result<()> {
        let result = self.play().await;
        let written = match self.wav.take() {
            Some(w) => w.finish().await,
            None => Ok(()),
        };
        if let Some(feedback) = self.feedback.take() {
            let _ = feedback.track.finish();
            drop(feedback.broadcast);
        }
        self.shared.send_modify(|sh| sh.stopped = true);
        self.done.send_replace(true);
        result.and(written)
    }

    /// Render in real time until stopped, or until the track ended and the buffer ran out.
    async fn play(&mut self) -> Result<()> {
        let rate = self.consumer.sample_rate() as u64;
        let ch = self.consumer.channels() as usize;
        let start = Instant::now();
        let mut rendered: u64 = 0;
        let mut ticker = tokio::time::interval(self.options.quantum);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_report = Instant::now();
        let mut last_sent: Option<(u64, u64, bool)> = None;
        let mut ended = false;
        let mut out = Vec::new();
        loop {
            tokio::select! {
                _ = self.stop.wait_for(|s| *s) => return Ok(()),
                packet = self.consumer.next_packet(), if !ended => match packet {
                    Some(packet) => {
                        self.shared.send_if_modified(|sh| {
                            let first = !sh.arrivals.iter().any(|a| a.generation >= packet.generation);
                            if first {
                                sh.arrivals.push(Arrival { generation: packet.generation, at_frame: rendered });
                            }
                            first
                        });
                        // A marker carries no audio: an empty packet only announces its generation.
                        let payload = if packet.is_marker() { bytes::Bytes::new() } else { packet.payload };
                        self.jitter.push(packet.generation, packet.timestamp_us, payload);
                    }
                    None => {
                        ended = true;
                        let end = self.consumer.end_reason();
                        self.shared.send_modify(|sh| sh.end = end);
                    }
                },
                _ = ticker.tick() => {
                    let due = start.elapsed().as_micros() as u64 * rate / 1_000_000;
                    let n = due.saturating_sub(rendered) as usize;
                    if n == 0 { continue; }
                    out.resize(n * ch, 0.0);
                    let spans = self.jitter.render(&mut out);
                    if let Some(w) = &mut self.wav {
                        w.write(out.iter().map(|&s| f32_to_i16(s)).collect())?;
                    }
                    let jitter = &self.jitter;
                    self.shared.send_modify(|sh| {
                        log_spans(&mut sh.segments, rendered, &spans);
                        sh.rendered_frames = rendered + n as u64;
                        sh.stats = jitter.stats().clone();
                        sh.position = jitter.last_rendered();
                    });
                    rendered += n as u64;
                    let finished = ended && !self.jitter.is_playing() && self.jitter.buffered_us() == 0;
                    // Report at most every interval, and always the last position before leaving.
                    if (last_report.elapsed() >= self.options.report_interval || finished)
                        && report_playout(&mut self.feedback, &self.jitter, &mut last_sent)
                    {
                        last_report = Instant::now();
                    }
                    if finished {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Write a playout report if the position changed; returns whether one was written.
fn report_playout(
    feedback: &mut Option<PlayoutFeedback>,
    jitter: &JitterBuffer<OpusPackets>,
    last_sent: &mut Option<(u64, u64, bool)>,
) -> bool {
    let (Some(PlayoutFeedback { track, .. }), Some((generation, ts_us))) =
        (feedback.as_mut(), jitter.last_rendered())
    else {
        return false;
    };
    let playing = jitter.is_playing();
    if *last_sent == Some((generation, ts_us, playing)) {
        return false;
    }
    let report = PlayoutReport {
        listener: String::new(),
        generation,
        ts_us,
        playing,
        render_time_ms: now_ms(),
    };
    if let Err(e) = track.write_frame(moq_net::Timestamp::now(), report.encode()) {
        tracing::warn!(%e, "playout feedback track closed");
        *feedback = None;
    }
    *last_sent = Some((generation, ts_us, playing));
    true
}

/// Append rendered spans to the segment log, merging contiguous stretches of the same kind.
fn log_spans(segments: &mut Vec<Segment>, mut at: u64, spans: &[Rendered]) {
    for span in spans {
        let frames = span.frames as u64;
        if let Some(last) = segments.last_mut() {
            if last.generation == span.generation
                && last.fade == span.fade
                && last.concealed == span.concealed
                && last.start + last.frames == at
            {
                last.frames += frames;
                at += frames;
                continue;
            }
        }
        segments.push(Segment {
            start: at,
            frames,
            generation: span.generation,
            ts_us: span.ts_us,
            fade: span.fade,
            concealed: span.concealed,
        });
        at += frames;
    }
}
