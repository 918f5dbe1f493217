//! `AudioProducer`, `FlushReport`, `MarkEvent` for Python.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::Mutex;

use crate::errors::to_py;
use crate::pcm::extract;
use crate::runtime::{awaitable, detach, py_future, runtime};

/// The rest of a write that did not fit at the call, waiting in a coroutine.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct PendingWriteHandle(
    std::sync::Mutex<Option<(moq_audio::AudioBroadcast, moq_audio::publish::PendingWrite)>>,
);

/// A coroutine that returns `queued` at once (the write fit).
#[pyfunction]
async fn written(queued: bool) -> bool {
    queued
}

fn written_coroutine(py: Python<'_>, queued: bool) -> PyResult<Bound<'_, PyAny>> {
    static WRITTEN: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let f = WRITTEN.get_or_try_init(py, || {
        wrap_pyfunction!(written, py).map(|f| f.into_any().unbind())
    })?;
    f.bind(py).call1((queued,))
}

/// A coroutine that queues the rest of a write as room frees up, on the shared runtime.
#[pyfunction]
async fn write_rest(rest: Py<PendingWriteHandle>) -> PyResult<bool> {
    let taken = rest
        .get()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some((producer, pending)) = taken else {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "this write was already awaited",
        ));
    };
    crate::runtime::spawn(async move {
        Ok(producer.write_prepared(pending).await? == moq_audio::WriteOutcome::Queued)
    })
    .await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Publishes PCM as paced Opus on a MoQ track; `flush()` drops everything not yet heard.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct AudioProducer {
    pub inner: moq_audio::AudioBroadcast,
}

#[pymethods]
impl AudioProducer {
    /// Queue `pcm`; returns a coroutine of `True` when all of it was queued, `False` when a
    /// flush dropped (part of) it meanwhile. Validation (ValueError) and the write position
    /// (what `mark()` pins) are decided at the call, not at the first await; the coroutine only
    /// waits (without blocking the event loop) while the queue is full. A coroutine, so
    /// `asyncio.create_task(producer.write(pcm))` works.
    fn write<'py>(slf: &Bound<'py, Self>, pcm: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let pending = this.prepare(py, pcm)?;
        match this.inner.try_write(pending).map_err(to_py)? {
            Ok(outcome) => written_coroutine(py, outcome == moq_audio::WriteOutcome::Queued),
            Err(pending) => {
                let rest = Py::new(
                    py,
                    PendingWriteHandle(std::sync::Mutex::new(Some((this.inner.clone(), pending)))),
                )?;
                wrap_pyfunction!(write_rest, py)?.call1((rest,))
            }
        }
    }

    /// Like `write` but blocking the calling thread (the GIL is released while it waits).
    fn write_blocking(&self, py: Python<'_>, pcm: &Bound<'_, PyAny>) -> PyResult<bool> {
        let pending = self.prepare(py, pcm)?;
        // A write that fits is queued with the GIL held, as in `write`: it takes the queue lock
        // for a push, less than releasing and re-taking the GIL costs, and a writer thread then
        // never holds the queue lock while `flush()` (which keeps the GIL) waits for it.
        let pending = match self.inner.try_write(pending).map_err(to_py)? {
            Ok(outcome) => return Ok(outcome == moq_audio::WriteOutcome::Queued),
            Err(pending) => pending,
        };
        let inner = self.inner.clone();
        detach(py, move || {
            Ok(runtime().block_on(inner.write_prepared(pending))?
                == moq_audio::WriteOutcome::Queued)
        })
    }

    /// Drop everything not yet played and start a new generation. Instant; any thread.
    fn flush(&self, py: Python<'_>) -> FlushReport {
        // A lock and a few counters: releasing and re-taking the GIL would cost more than the
        // work (and add the wait for the GIL to come back while another thread writes).
        let _ = py;
        FlushReport::from(self.inner.flush())
    }

    /// Pin `id` to the current write position.
    fn mark(&self, id: &str) -> PyResult<()> {
        self.inner.mark(id).map_err(to_py)
    }

    /// Awaitable of the `MarkEvent` of mark `id` (at once if it already resolved).
    #[pyo3(signature = (id, timeout=None))]
    fn wait_mark<'py>(
        &self,
        py: Python<'py>,
        id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        awaitable(py, async move {
            let wait = inner.wait_mark(&id);
            let event = match timeout {
                Some(t) => tokio::time::timeout(Duration::from_secs_f64(t), wait)
                    .await
                    .map_err(|_| moq_audio::Error::Timeout(format!("mark {id:?} ({t} s)")))??,
                None => wait.await?,
            };
            Ok(MarkEvent::from(event))
        })
    }

    /// An async iterator of `MarkEvent`s resolved from now on.
    fn marks(&self) -> MarkEvents {
        MarkEvents {
            rx: Arc::new(Mutex::new(self.inner.mark_events())),
        }
    }

    /// Awaitable: play out what is queued, then end the track cleanly.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        awaitable(py, async move { inner.finish().await })
    }

    /// Add a message track (e.g. "transcript.json") to this producer's broadcast.
    fn data_track(&self, name: &str) -> PyResult<crate::data::DataWriter> {
        Ok(crate::data::DataWriter {
            inner: self.inner.data_track(name).map_err(to_py)?,
        })
    }

    /// Drop everything and end the track with an error code.
    fn cancel(&self, py: Python<'_>) {
        let _ = py;
        self.inner.cancel();
    }

    /// What each listener last reported about its playout, sorted by listener id.
    fn listeners(&self) -> Vec<ListenerPlayout> {
        self.inner
            .listeners()
            .into_iter()
            .map(|l| ListenerPlayout {
                listener: l.listener,
                generation: l.generation,
                position_ms: ms(l.position),
                playing: l.playing,
                age_ms: ms(l.age),
            })
            .collect()
    }

    /// The broadcast path.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().to_string()
    }

    /// Current generation (0 at start, +1 per flush).
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// Audio queued and not yet handed to the network, in ms.
    #[getter]
    fn queued_ms(&self) -> f64 {
        ms(self.inner.queued())
    }

    /// ms written in the current generation: where `mark()` would pin, on the scale of
    /// `FlushReport.heard_ms` (record it before an utterance to know how much of it was heard).
    #[getter]
    fn written_ms(&self) -> f64 {
        ms(self.inner.written())
    }

    /// Input sample rate in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.options().sample_rate
    }

    /// Input channels.
    #[getter]
    fn channels(&self) -> u32 {
        self.inner.options().channels
    }

    /// Opus sample rate in Hz.
    #[getter]
    fn codec_rate(&self) -> u32 {
        self.inner.codec_rate()
    }

    /// Pacing lead in ms.
    #[getter]
    fn lead_ms(&self) -> f64 {
        ms(self.inner.options().lead)
    }

    /// Whether finish() completed or cancel() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn __repr__(&self) -> String {
        let o = self.inner.options();
        format!(
            "AudioProducer(sample_rate={}, channels={}, generation={}, queued_ms={:.0})",
            o.sample_rate,
            o.channels,
            self.inner.generation(),
            ms(self.inner.queued())
        )
    }
}

impl AudioProducer {
    fn prepare(
        &self,
        py: Python<'_>,
        pcm: &Bound<'_, PyAny>,
    ) -> PyResult<moq_audio::publish::PendingWrite> {
        let owned = extract(pcm, self.inner.options().channels)?;
        let inner = self.inner.clone();
        detach(py, move || inner.prepare(owned.as_pcm()))
    }
}

/// What a flush dropped and how far the listener got.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
pub struct FlushReport {
    /// The new generation.
    pub generation: u64,
    /// ms dropped from the PCM queue (never encoded).
    pub dropped_pcm_ms: f64,
    /// ms dropped as encoded Opus frames not yet sent.
    pub dropped_encoded_ms: f64,
    /// ms of the flushed generation already handed to the network.
    pub sent_ms: f64,
    /// How far into the flushed generation the listener had rendered (max over listeners), ms.
    pub heard_ms: f64,
    /// True when `heard_ms` is the sender's estimate (no listener feedback yet).
    pub heard_estimated: bool,
    /// Per listener id, ms rendered into the flushed generation.
    pub heard_per_listener: HashMap<String, f64>,
}

impl From<moq_audio::FlushReport> for FlushReport {
    fn from(r: moq_audio::FlushReport) -> Self {
        Self {
            generation: r.generation,
            dropped_pcm_ms: ms(r.dropped_pcm),
            dropped_encoded_ms: ms(r.dropped_encoded),
            sent_ms: ms(r.sent),
            heard_ms: r.heard.ms,
            heard_estimated: r.heard.estimated,
            heard_per_listener: r.heard.per_listener.into_iter().collect(),
        }
    }
}

#[pymethods]
impl FlushReport {
    /// ms dropped in total (PCM + encoded).
    #[getter]
    fn dropped_ms(&self) -> f64 {
        self.dropped_pcm_ms + self.dropped_encoded_ms
    }

    fn __repr__(&self) -> String {
        format!(
            "FlushReport(generation={}, dropped_pcm_ms={:.0}, dropped_encoded_ms={:.0}, sent_ms={:.0}, heard_ms={:.0}{})",
            self.generation,
            self.dropped_pcm_ms,
            self.dropped_encoded_ms,
            self.sent_ms,
            self.heard_ms,
            if self.heard_estimated { " (estimated)" } else { "" }
        )
    }
}

/// What one listener last reported about its playout.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
pub struct ListenerPlayout {
    /// The listener id.
    pub listener: String,
    /// The generation it is rendering.
    pub generation: u64,
    /// ms into that generation it had rendered at its last report.
    pub position_ms: f64,
    /// Whether it was rendering at that report.
    pub playing: bool,
    /// ms since that report arrived.
    pub age_ms: f64,
}

#[pymethods]
impl ListenerPlayout {
    fn __repr__(&self) -> String {
        format!(
            "ListenerPlayout(listener={:?}, generation={}, position_ms={:.0}, playing={})",
            self.listener, self.generation, self.position_ms, self.playing
        )
    }
}

/// How a mark resolved.
#[pyclass(module = "moq_audio._native", frozen, get_all)]
pub struct MarkEvent {
    /// The mark id.
    pub id: String,
    /// "played", "flushed" or "unknown".
    pub state: String,
    /// Generation the mark was made in.
    pub generation: u64,
    /// ms into that generation the mark pins.
    pub position_ms: f64,
    /// Listener that played it (state "played").
    pub listener: Option<String>,
    /// Listener's wall clock (ms since the Unix epoch) when it rendered the mark (state "played").
    pub render_time_ms: Option<f64>,
}

impl From<moq_audio::MarkEvent> for MarkEvent {
    fn from(e: moq_audio::MarkEvent) -> Self {
        let (state, listener, render_time_ms) = match e.state {
            moq_audio::MarkState::Played {
                listener,
                render_time_ms,
            } => ("played", Some(listener), Some(render_time_ms)),
            moq_audio::MarkState::Flushed => ("flushed", None, None),
            _ => ("unknown", None, None),
        };
        Self {
            id: e.id,
            state: state.to_string(),
            generation: e.generation,
            position_ms: e.position_us as f64 / 1000.0,
            listener,
            render_time_ms,
        }
    }
}

#[pymethods]
impl MarkEvent {
    fn __repr__(&self) -> String {
        format!(
            "MarkEvent(id={:?}, state={:?}, position_ms={:.0})",
            self.id, self.state, self.position_ms
        )
    }
}

/// Async iterator of mark resolutions.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct MarkEvents {
    rx: Arc<Mutex<tokio::sync::broadcast::Receiver<moq_audio::MarkEvent>>>,
}

#[pymethods]
impl MarkEvents {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rx = self.rx.clone();
        py_future(py, async move {
            let mut rx = rx.lock().await;
            loop {
                match rx.recv().await {
                    Ok(e) => return Ok(MarkEvent::from(e)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
                }
            }
        })
    }
}
