//! `Player` and its report classes for Python.

use std::sync::Arc;

use pyo3::prelude::*;
use tokio::sync::Mutex;

use crate::runtime::awaitable;

/// Real-time playout of a subscribed broadcast through the jitter buffer, with playout feedback.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct Player {
    pub inner: Arc<Mutex<moq_audio::Player>>,
    pub handle: moq_audio::PlayerHandle,
    /// The id this listener reports playout under (`<broadcast>/listeners/<id>`).
    #[pyo3(get)]
    pub listener_id: String,
}

#[pymethods]
impl Player {
    /// What has been rendered so far.
    fn report(&self) -> PlayerReport {
        PlayerReport::from(self.handle.report())
    }

    /// Awaitable: wait until the track ended and everything buffered was rendered; returns the
    /// final report.
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        let handle = self.handle.clone();
        awaitable(py, async move {
            inner.lock().await.wait().await?;
            Ok(PlayerReport::from(handle.report()))
        })
    }

    /// Awaitable: wait until at least `ms` of generation `generation` (any, if None) has been
    /// rendered, or the player stopped; returns the report.
    #[pyo3(signature = (ms, generation=None))]
    fn wait_rendered<'py>(
        &self,
        py: Python<'py>,
        ms: f64,
        generation: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        awaitable(py, async move {
            let report = handle
                .wait_until(|r| r.ms_of(generation, 0, Some(false)) >= ms)
                .await;
            Ok(PlayerReport::from(report))
        })
    }

    /// Awaitable: wait until the first frame of `generation` (or a newer one) reached the
    /// player, or it stopped; returns the report.
    fn wait_generation<'py>(
        &self,
        py: Python<'py>,
        generation: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        awaitable(py, async move {
            let report = handle
                .wait_until(|r| r.arrival_of(generation).is_some())
                .await;
            Ok(PlayerReport::from(report))
        })
    }

    /// Awaitable: stop now (the WAV file is finalized); returns the final report.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.handle.request_stop();
        let inner = self.inner.clone();
        let handle = self.handle.clone();
        awaitable(py, async move {
            inner.lock().await.stop().await?;
            Ok(PlayerReport::from(handle.report()))
        })
    }
}

/// A stretch of the render clock with one kind of content.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
#[derive(Clone)]
pub struct Segment {
    /// First sample frame of the stretch on the render clock (= index in the WAV file).
    pub start: u64,
    /// Sample frames in the stretch.
    pub frames: u64,
    /// Generation rendered, None for silence.
    pub generation: Option<u64>,
    /// Media timestamp (µs) of the first sample, for audio.
    pub ts_us: u64,
    /// Whether this is the fade-out of a flushed generation.
    pub fade: bool,
    /// Whether this stretch was concealed (Opus PLC in place of a missing packet).
    pub concealed: bool,
}

#[pymethods]
impl Segment {
    fn __repr__(&self) -> String {
        format!(
            "Segment(start={}, frames={}, generation={:?}, fade={}, concealed={})",
            self.start, self.frames, self.generation, self.fade, self.concealed
        )
    }
}

/// When the first frame of a generation reached the player.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
#[derive(Clone)]
pub struct Arrival {
    /// The generation.
    pub generation: u64,
    /// Render clock (sample frames) when it arrived.
    pub at_frame: u64,
}

#[pymethods]
impl Arrival {
    fn __repr__(&self) -> String {
        format!(
            "Arrival(generation={}, at_frame={})",
            self.generation, self.at_frame
        )
    }
}

/// Jitter buffer counters and the state of its adaptation.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
#[derive(Clone)]
pub struct JitterStats {
    /// Frames dropped because their generation was older than the one playing.
    pub stale_frames: u64,
    /// Frames dropped because they arrived after their time (or were duplicates).
    pub late_frames: u64,
    /// Sample frames of old audio dropped at flushes (not counting the fade).
    pub flushed_frames: u64,
    /// Times playout ran dry and then went on with audio that had been late.
    pub underruns: u64,
    /// Sample frames skipped because the delay was far over the target (after an outage).
    pub skipped_frames: u64,
    /// Sample frames of concealment (Opus PLC) rendered.
    pub concealed_frames: u64,
    /// ms of concealment rendered.
    pub concealed_ms: f64,
    /// Sample frames added by stretching quiet audio (the buffer's delay grew).
    pub inserted_frames: u64,
    /// Sample frames removed from quiet audio (the buffer's delay shrank).
    pub removed_frames: u64,
    /// The current target delay, ms.
    pub target_ms: f64,
    /// The measured jitter: the relative arrival delay 99.5 % of packets stay under, ms.
    pub jitter_ms: f64,
    /// The loss-recovery peak raising the target (0 when none), ms.
    pub peak_ms: f64,
    /// The current playout delay over the fastest recent packet, ms.
    pub delay_ms: f64,
}

impl JitterStats {
    fn new(s: &moq_audio::listen::JitterStats, sample_rate: u32) -> Self {
        Self {
            stale_frames: s.stale_frames,
            late_frames: s.late_frames,
            flushed_frames: s.flushed_frames,
            underruns: s.underruns,
            skipped_frames: s.skipped_frames,
            concealed_frames: s.concealed_frames,
            concealed_ms: s.concealed_frames as f64 * 1000.0 / sample_rate.max(1) as f64,
            inserted_frames: s.inserted_frames,
            removed_frames: s.removed_frames,
            target_ms: s.target_us as f64 / 1000.0,
            jitter_ms: s.jitter_us as f64 / 1000.0,
            peak_ms: s.peak_us as f64 / 1000.0,
            delay_ms: s.delay_us as f64 / 1000.0,
        }
    }
}

#[pymethods]
impl JitterStats {
    fn __repr__(&self) -> String {
        format!(
            "JitterStats(target_ms={:.0}, jitter_ms={:.0}, peak_ms={:.0}, delay_ms={:.0}, concealed_ms={:.1}, \
             underruns={}, late_frames={}, stale_frames={}, flushed_frames={}, skipped_frames={}, \
             inserted_frames={}, removed_frames={})",
            self.target_ms,
            self.jitter_ms,
            self.peak_ms,
            self.delay_ms,
            self.concealed_ms,
            self.underruns,
            self.late_frames,
            self.stale_frames,
            self.flushed_frames,
            self.skipped_frames,
            self.inserted_frames,
            self.removed_frames
        )
    }
}

/// What a Player has rendered so far.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct PlayerReport {
    inner: moq_audio::PlayerReport,
}

impl From<moq_audio::PlayerReport> for PlayerReport {
    fn from(inner: moq_audio::PlayerReport) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PlayerReport {
    /// Sample rate of the render clock in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate
    }

    /// Channels rendered.
    #[getter]
    fn channels(&self) -> u32 {
        self.inner.channels
    }

    /// Sample frames rendered (the length of the WAV file).
    #[getter]
    fn rendered_frames(&self) -> u64 {
        self.inner.rendered_frames
    }

    /// ms rendered (the length of the WAV file).
    #[getter]
    fn rendered_ms(&self) -> f64 {
        self.inner.rendered_ms()
    }

    /// Everything rendered, as stretches of one kind.
    #[getter]
    fn segments(&self) -> Vec<Segment> {
        self.inner
            .segments
            .iter()
            .map(|s| Segment {
                start: s.start,
                frames: s.frames,
                generation: s.generation,
                ts_us: s.ts_us,
                fade: s.fade,
                concealed: s.concealed,
            })
            .collect()
    }

    /// The first arrival of each generation.
    #[getter]
    fn arrivals(&self) -> Vec<Arrival> {
        self.inner
            .arrivals
            .iter()
            .map(|a| Arrival {
                generation: a.generation,
                at_frame: a.at_frame,
            })
            .collect()
    }

    /// Jitter buffer counters and the state of its adaptation.
    #[getter]
    fn stats(&self) -> JitterStats {
        JitterStats::new(&self.inner.stats, self.inner.sample_rate)
    }

    /// (generation, media timestamp µs) just past the last sample rendered, or None.
    #[getter]
    fn position(&self) -> Option<(u64, u64)> {
        self.inner.position
    }

    /// How the track ended ("finished", "cancelled", "failed: <why>"), or None while live.
    #[getter]
    fn end(&self) -> Option<String> {
        self.inner.end.as_ref().map(ToString::to_string)
    }

    /// Whether the player has stopped.
    #[getter]
    fn stopped(&self) -> bool {
        self.inner.stopped
    }

    /// Render-clock sample frames of `generation` (None: any audio, not silence) at or after
    /// render frame `after`; `fade`: only the fade-out (True), only what was not faded (False),
    /// or both (None).
    #[pyo3(signature = (generation=None, *, after=0, fade=None))]
    fn frames_of(&self, generation: Option<u64>, after: u64, fade: Option<bool>) -> u64 {
        self.inner.frames_of(generation, after, fade)
    }

    /// `frames_of(...)` in ms.
    #[pyo3(signature = (generation=None, *, after=0, fade=None))]
    fn ms_of(&self, generation: Option<u64>, after: u64, fade: Option<bool>) -> f64 {
        self.inner.ms_of(generation, after, fade)
    }

    /// Render frame at which the first frame of `generation` (or a newer one) arrived, or None.
    fn arrival_of(&self, generation: u64) -> Option<u64> {
        self.inner.arrival_of(generation)
    }

    fn __repr__(&self) -> String {
        format!(
            "PlayerReport(rendered_ms={:.0}, generations={:?}, target_ms={:.0}, concealed_ms={:.1}, \
             underruns={}, end={:?})",
            self.inner.rendered_ms(),
            self.inner.arrivals.iter().map(|a| a.generation).collect::<Vec<_>>(),
            self.inner.stats.target_us as f64 / 1000.0,
            self.inner.stats.concealed_frames as f64 * 1000.0 / self.inner.sample_rate.max(1) as f64,
            self.inner.stats.underruns,
            self.inner.end.as_ref().map(ToString::to_string)
        )
    }
}
