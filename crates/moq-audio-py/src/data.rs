//! Message tracks (`DataWriter`, `DataReader`) for Python.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use tokio::sync::Mutex;

use crate::errors::to_py;
use crate::runtime::py_future;

fn payload(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(pyo3::exceptions::PyValueError::new_err(format!(
        "a message is str or bytes, not {}",
        obj.get_type().name()?
    )))
}

/// Writes messages (str or bytes) to a track, one group each.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct DataWriter {
    pub inner: moq_audio::net::DataWriter,
}

#[pymethods]
impl DataWriter {
    /// Write one message (str is sent as UTF-8).
    fn write(&self, message: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.write(payload(message)?).map_err(to_py)
    }

    /// End the track.
    fn finish(&self) {
        self.inner.finish();
    }
}

/// Messages of a track as bytes: `async for message in reader`.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct DataReader {
    pub inner: Arc<Mutex<moq_audio::net::DataReader>>,
}

#[pymethods]
impl DataReader {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        py_future(py, async move {
            match inner.lock().await.next().await.map_err(to_py)? {
                Some(bytes) => Ok(Python::attach(|py| PyBytes::new(py, &bytes).unbind())),
                None => Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
            }
        })
    }
}

/// A data-only broadcast; published while this object lives.
#[pyclass(module = "moq_audio._native", frozen)]
pub struct DataBroadcast {
    pub broadcast: moq_audio::moq_net::broadcast::Producer,
    /// Writers of the tracks, in the order they were named.
    #[pyo3(get)]
    pub tracks: Vec<Py<DataWriter>>,
}

#[pymethods]
impl DataBroadcast {
    /// Unpublish the broadcast.
    fn close(&self) {
        self.broadcast.close();
    }
}
