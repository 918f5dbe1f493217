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
    fn wait_rendered<'py>(&self, py: Python<'py>, ms: f64, generation: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        awaitable(py, async move {
            let report = handle.wait_until(|r| r.ms_of(generation, 0, Some(false)) >= ms).await;
            Ok(PlayerReport::from(report))
        })
    }

    /// Awaitable: wait until the first frame of `generation` (or a newer one) reached the
    /// player, or it stopped; returns the report.
    fn wait_generation<'py>(&self, py: Python<'py>, generation: u64) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        awaitable(py, async move {
            let report = handle.wait_until(|r| r.arrival_of(generation).is_some()).await;
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
}

#[pymethods]
impl Segment {
    fn __repr__(&self) -> String {
        format!(
            "Segment(start={}, frames={}, generation={:?}, fade={})",
            self.start, self.frames, self.generation, self.fade
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
        format!("Arrival(generation={}, at_frame={})", self.generation, self.at_frame)
    }
}

/// Jitter buffer counters.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
#[derive(Clone)]
pub struct JitterStats {
    /// Frames dropped because their generation was older than the one playing.
    pub stale_frames: u64,
    /// Frames dropped because they arrived after their time.
    pub late_frames: u64,
    /// Sample frames of old audio dropped at flushes (not counting the fade).
    pub flushed_frames: u64,
    /// Times playout ran dry.
    pub underruns: u64,
    /// Sample frames skipped to bring an overfull buffer back to the target.
    pub skipped_frames: u64,
}

#[pymethods]
impl JitterStats {
    fn __repr__(&self) -> String {
        format!(
            "JitterStats(underruns={}, late_frames={}, stale_frames={}, flushed_frames={}, skipped_frames={})",
            self.underruns, self.late_frames, self.stale_frames, self.flushed_frames, self.skipped_frames
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

    /// Jitter buffer counters.
    #[getter]
    fn stats(&self) -> JitterStats {
        let s = &self.inner.stats;
        JitterStats {
            stale_frames: s.stale_frames,
            late_frames: s.late_frames,
            flushed_frames: s.flushed_frames,
            underruns: s.underruns,
            skipped_frames: s.skipped_frames,
        }
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
            "PlayerReport(rendered_ms={:.0}, generations={:?}, underruns={}, end={:?})",
            self.inner.rendered_ms(),
            self.inner.arrivals.iter().map(|a| a.generation).collect::<Vec<_>>(),
            self.inner.stats.underruns,
            self.inner.end.as_ref().map(ToString::to_string)
        )
    }
}
