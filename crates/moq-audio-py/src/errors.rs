//! The exception hierarchy and the one helper that maps core errors to it.

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    moq_audio,
    MoqAudioError,
    PyException,
    "Base class of every moq-audio error (ValueError is raised for bad input)."
);
pyo3::create_exception!(
    moq_audio,
    ConnectError,
    MoqAudioError,
    "Connecting or the MoQ session failed: check the URL and that the server is running."
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
    "The peer's catalog or frames are not moq-audio/hang Opus (or a corrupt packet)."
);
pyo3::create_exception!(
    moq_audio,
    MoqTimeoutError,
    MoqAudioError,
    "Waiting for a connection, broadcast, catalog or mark took longer than the timeout."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MoqAudioError", py.get_type::<MoqAudioError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("WireError", py.get_type::<WireError>())?;
    m.add("MoqTimeoutError", py.get_type::<MoqTimeoutError>())?;
    Ok(())
}

/// Map a core error to its Python exception.
pub fn to_py(err: moq_audio::Error) -> PyErr {
    use moq_audio::Error as E;
    let msg = err.to_string();
    match err {
        E::InvalidInput(_) => PyValueError::new_err(msg),
        E::Closed(_) => ClosedError::new_err(msg),
        E::Connection(_) | E::Moq(_) => ConnectError::new_err(msg),
        E::Wire(_) | E::Opus(_) => WireError::new_err(msg),
        E::Timeout(_) => MoqTimeoutError::new_err(msg),
        _ => MoqAudioError::new_err(msg),
    }
}
