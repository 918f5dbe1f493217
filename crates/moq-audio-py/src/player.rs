//! `Player` for Python.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokio::sync::Mutex;

use crate::runtime::awaitable;

/// Real-time playout of a subscribed broadcast through the jitter buffer, with playout feedback.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct Player {
    pub inner: Arc<Mutex<moq_audio::Player>>,
    pub handle: moq_audio::PlayerHandle,
    #[pyo3(get)]
    pub listener_id: String,
}

fn report_dict<'py>(py: Python<'py>, r: &moq_audio::PlayerReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sample_rate", r.sample_rate)?;
    d.set_item("channels", r.channels)?;
    d.set_item("rendered_frames", r.rendered_frames)?;
    d.set_item("rendered_ms", r.rendered_frames as f64 * 1000.0 / r.sample_rate.max(1) as f64)?;
    d.set_item("position", r.position)?;
    d.set_item("stopped", r.stopped)?;
    d.set_item("end", r.end.as_ref().map(ToString::to_string))?;
    let stats = PyDict::new(py);
    stats.set_item("stale_frames", r.stats.stale_frames)?;
    stats.set_item("late_frames", r.stats.late_frames)?;
    stats.set_item("flushed_frames", r.stats.flushed_frames)?;
    stats.set_item("underruns", r.stats.underruns)?;
    stats.set_item("skipped_frames", r.stats.skipped_frames)?;
    d.set_item("stats", stats)?;
    let segments = PyList::empty(py);
    for s in &r.segments {
        let seg = PyDict::new(py);
        seg.set_item("start", s.start)?;
        seg.set_item("frames", s.frames)?;
        seg.set_item("generation", s.generation)?;
        seg.set_item("ts_us", s.ts_us)?;
        seg.set_item("fade", s.fade)?;
        segments.append(seg)?;
    }
    d.set_item("segments", segments)?;
    let arrivals = PyList::empty(py);
    for a in &r.arrivals {
        let item = PyDict::new(py);
        item.set_item("generation", a.generation)?;
        item.set_item("at_frame", a.at_frame)?;
        arrivals.append(item)?;
    }
    d.set_item("arrivals", arrivals)?;
    Ok(d)
}

#[pymethods]
impl Player {
    /// What has been rendered so far (a dict; see the stub for its keys).
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        report_dict(py, &self.handle.report())
    }

    /// Awaitable: wait until the track ended and everything buffered was rendered; returns the
    /// final report.
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        let handle = self.handle.clone();
        awaitable(py, async move {
            inner.lock().await.wait().await?;
            Ok(ReportOut(handle.report()))
        })
    }

    /// Awaitable: wait until at least `ms` of generation `generation` (any, if None) has been
    /// rendered, or the player stopped; returns the report.
    #[pyo3(signature = (ms, generation=None))]
    fn wait_rendered<'py>(&self, py: Python<'py>, ms: f64, generation: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        awaitable(py, async move {
            let report = handle
                .wait_until(|r| {
                    let frames: u64 = r
                        .segments
                        .iter()
                        .filter(|s| s.generation.is_some() && !s.fade)
                        .filter(|s| generation.is_none() || s.generation == generation)
                        .map(|s| s.frames)
                        .sum();
                    frames as f64 * 1000.0 / r.sample_rate.max(1) as f64 >= ms
                })
                .await;
            Ok(ReportOut(report))
        })
    }

    /// Awaitable: stop now (the WAV file is finalized); returns the final report.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.handle.request_stop();
        let inner = self.inner.clone();
        let handle = self.handle.clone();
        awaitable(py, async move {
            inner.lock().await.stop().await?;
            Ok(ReportOut(handle.report()))
        })
    }
}

/// A report crossing back into Python as a dict.
pub struct ReportOut(moq_audio::PlayerReport);

impl<'py> IntoPyObject<'py> for ReportOut {
    type Target = PyDict;
    type Output = Bound<'py, PyDict>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        report_dict(py, &self.0)
    }
}
