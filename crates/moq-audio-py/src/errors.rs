//! The exception hierarchy and the one helper that maps core errors to it.
//!
//! ```text
//! MoqAudioError(Exception)
//! ├── ConnectError(MoqAudioError, ConnectionError)      session/network failures
//! │   └── ForbiddenError(ConnectError, PermissionError) the server refused the token/path
//! ├── ClosedError(MoqAudioError)                         producer finished or cancelled
//! ├── WireError(MoqAudioError)                           peer's catalog/frames unreadable
//! ├── CodecError(MoqAudioError)                          libopus or the resampler failed
//! └── MoqTimeoutError(MoqAudioError, TimeoutError)       waited longer than the timeout
//! ValueError                                             bad input (dtype, range, taken path)
//! ```
//! Classes with two bases are made with Python's `type()` at import (PyO3's
//! `create_exception!` takes one base), so `except TimeoutError` and `except ConnectionError`
//! catch ours.

use pyo3::exceptions::{
    PyConnectionError, PyException, PyPermissionError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

pyo3::create_exception!(
    moq_audio,
    MoqAudioError,
    PyException,
    "Base class of every moq-audio error (ValueError is raised for bad input)."
);
pyo3::create_exception!(
    moq_audio,
    ClosedError,
    MoqAudioError,
    "The producer was finished or cancelled; create a new one to publish more audio."
);
pyo3::create_exception!(
    moq_audio,
    WireError,
    MoqAudioError,
    "The peer's catalog or frames are not moq-audio/hang Opus, or speak an incompatible version."
);
pyo3::create_exception!(
    moq_audio,
    CodecError,
    MoqAudioError,
    "libopus or the resampler failed on the publish side; the producer is closed."
);

static CONNECT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FORBIDDEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `class name(*bases): __doc__ = doc` in module `moq_audio`.
fn class<'py>(
    py: Python<'py>,
    name: &str,
    bases: &[Bound<'py, PyType>],
    doc: &str,
) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__doc__", doc)?;
    ns.set_item("__module__", "moq_audio")?;
    let ty = py
        .import("builtins")?
        .getattr("type")?
        .call1((name, PyTuple::new(py, bases)?, ns))?;
    Ok(ty.cast_into::<PyType>()?.unbind())
}

fn connect_error(py: Python<'_>) -> &Py<PyType> {
    CONNECT.get_or_init(py, || {
        class(
            py,
            "ConnectError",
            &[
                py.get_type::<MoqAudioError>(),
                py.get_type::<PyConnectionError>(),
            ],
            "Connecting or the MoQ session failed: check the URL and that the server is running.",
        )
        .expect("creating ConnectError")
    })
}

fn forbidden_error(py: Python<'_>) -> &Py<PyType> {
    FORBIDDEN.get_or_init(py, || {
        class(
            py,
            "ForbiddenError",
            &[
                connect_error(py).bind(py).clone(),
                py.get_type::<PyPermissionError>(),
            ],
            "The server refused the session or a publish/subscribe: the token is missing, \
             malformed, expired, or does not grant that path. Retrying will not help.",
        )
        .expect("creating ForbiddenError")
    })
}

fn timeout_error(py: Python<'_>) -> &Py<PyType> {
    TIMEOUT.get_or_init(py, || {
        class(
            py,
            "MoqTimeoutError",
            &[
                py.get_type::<MoqAudioError>(),
                py.get_type::<PyTimeoutError>(),
            ],
            "Waiting for a connection, broadcast, catalog or mark took longer than the timeout.",
        )
        .expect("creating MoqTimeoutError")
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MoqAudioError", py.get_type::<MoqAudioError>())?;
    m.add("ConnectError", connect_error(py).bind(py))?;
    m.add("ForbiddenError", forbidden_error(py).bind(py))?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("WireError", py.get_type::<WireError>())?;
    m.add("CodecError", py.get_type::<CodecError>())?;
    m.add("MoqTimeoutError", timeout_error(py).bind(py))?;
    Ok(())
}

/// Map a core error to its Python exception.
pub fn to_py(err: moq_audio::Error) -> PyErr {
    use moq_audio::Error as E;
    let msg = err.to_string();
    Python::attach(|py| match err {
        E::InvalidInput(_) | E::Duplicate(_) => PyValueError::new_err(msg),
        E::Closed(_) => ClosedError::new_err(msg),
        E::Forbidden(_) => PyErr::from_type(forbidden_error(py).bind(py).clone(), msg),
        E::Connection(_) | E::Moq(_) => PyErr::from_type(connect_error(py).bind(py).clone(), msg),
        E::Wire(_) => WireError::new_err(msg),
        E::Opus(_) | E::Resample(_) => CodecError::new_err(msg),
        E::Timeout(_) => PyErr::from_type(timeout_error(py).bind(py).clone(), msg),
        _ => MoqAudioError::new_err(msg),
    })
}
