//! `AudioConsumer` and `AudioFrame` for Python.

use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use tokio::sync::{Mutex, Notify};

use crate::errors::to_py;
use crate::runtime::py_future;

/// Decoded audio frames of a broadcast: `async for frame in consumer`.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct AudioConsumer {
    /// `None` once closed.
    pub inner: Arc<Mutex<Option<moq_audio::AudioConsumer>>>,
    /// Readable while another task holds `inner` across `next().await`.
    end: moq_audio::listen::EndWatch,
    /// Wakes an iteration in progress when `close()` is called.
    closed: Arc<Notify>,
    pub sample_rate: u32,
    pub channels: u32,
}

impl AudioConsumer {
    pub fn new(inner: moq_audio::AudioConsumer) -> Self {
        Self {
            sample_rate: inner.sample_rate(),
            channels: inner.channels(),
            end: inner.end_watch(),
            closed: Arc::new(Notify::new()),
            inner: Arc::new(Mutex::new(Some(inner))),
        }
    }
}

#[pymethods]
impl AudioConsumer {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        let closed = self.closed.clone();
        py_future(py, async move {
            let closing = closed.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            let mut guard = inner.lock().await;
            let Some(consumer) = guard.as_mut() else {
                return Err(pyo3::exceptions::PyStopAsyncIteration::new_err(()));
            };
            let next = tokio::select! {
                next = consumer.next() => Some(next.map_err(to_py)?),
                _ = closing => None,
            };
            match next {
                Some(Some(frame)) => Ok(AudioFrame { inner: frame }),
                Some(None) => Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
                None => {
                    // close() was called meanwhile: drop the consumer (unsubscribes).
                    guard.take();
                    Err(pyo3::exceptions::PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }

    /// Output sample rate in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Output channels.
    #[getter]
    fn channels(&self) -> u32 {
        self.channels
    }

    /// How the track ended: None while live, else "finished", "cancelled" or "failed: <why>".
    /// Readable while another task iterates.
    #[getter]
    fn end_reason(&self) -> Option<String> {
        self.end.get().map(|e| e.to_string())
    }

    /// Stop consuming (unsubscribes). An iteration in progress in another task ends
    /// (StopAsyncIteration), and so do later ones.
    fn close(&self) {
        self.closed.notify_waiters();
        let inner = self.inner.clone();
        // Without the lock (another task iterates) the iterating task drops it on wake-up;
        // dropping the consumer unsubscribes.
        let dropped = match inner.try_lock() {
            Ok(mut guard) => {
                guard.take();
                true
            }
            Err(_) => false,
        };
        if !dropped {
            crate::runtime::runtime().spawn(async move {
                inner.lock().await.take();
            });
        }
    }
}

/// One decoded frame.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct AudioFrame {
    inner: moq_audio::AudioFrame,
}

#[pymethods]
impl AudioFrame {
    /// numpy float32 array, shape (n, channels), values in [-1, 1].
    #[getter]
    fn pcm<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ch = self.inner.channels as usize;
        let n = self.inner.pcm.len() / ch;
        let array = PyArray1::from_vec(py, self.inner.pcm.clone());
        Ok(array.reshape([n, ch])?.into_any())
    }

    /// Sample rate of `pcm` in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate
    }

    /// Channels of `pcm`.
    #[getter]
    fn channels(&self) -> u32 {
        self.inner.channels
    }

    /// Generation of the frame.
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// Media timestamp of the first sample, µs.
    #[getter]
    fn timestamp_us(&self) -> u64 {
        self.inner.timestamp_us
    }

    /// Duration in ms.
    #[getter]
    fn duration_ms(&self) -> f64 {
        self.inner.duration_us() as f64 / 1000.0
    }

    fn __repr__(&self) -> String {
        format!(
            "AudioFrame(generation={}, timestamp_us={}, samples={}, sample_rate={}, channels={})",
            self.inner.generation,
            self.inner.timestamp_us,
            self.inner.pcm.len() / self.inner.channels as usize,
            self.inner.sample_rate,
            self.inner.channels
        )
    }
}
