//! The embedded server and client sessions for Python.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::sync::Mutex;

use crate::consumer::AudioConsumer;
use crate::errors::to_py;
use crate::runtime::{awaitable, runtime};
use crate::player::Player;
use crate::producer::AudioProducer;

/// A running embedded MoQ server (create with `serve()`).
#[pyclass(module = "moq_audio._native", frozen)]
pub struct NativeServer {
    inner: Arc<Mutex<Option<moq_audio::Server>>>,
    #[pyo3(get)]
    url: String,
    #[pyo3(get)]
    fingerprint: String,
    #[pyo3(get)]
    port: u16,
    #[pyo3(get)]
    websocket_url: Option<String>,
}

#[pymethods]
impl NativeServer {
    /// Awaitable: stop listening and close every session. Idempotent.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        awaitable(py, async move {
            if let Some(server) = inner.lock().await.take() {
                server.close().await;
            }
            Ok(())
        })
    }
}

/// Awaitable of a `NativeServer` bound to `addr` ("127.0.0.1:0" picks a free port).
#[pyfunction]
#[pyo3(signature = (addr, static_dir=None, websocket=true))]
pub fn serve<'py>(
    py: Python<'py>,
    addr: &str,
    static_dir: Option<PathBuf>,
    websocket: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| PyValueError::new_err(format!("bad address {addr:?} (want host:port): {e}")))?;
    let mut options = moq_audio::ServerOptions::default().with_websocket(websocket);
    if let Some(dir) = static_dir {
        options = options.with_static_dir(dir);
    }
    awaitable(py, async move {
        let server = moq_audio::Server::bind(addr, options).await?;
        Ok(NativeServer {
            url: server.url().to_string(),
            fingerprint: server.fingerprint(),
            port: server.local_addr().port(),
            websocket_url: server.websocket_url().map(|u| u.to_string()),
            inner: Arc::new(Mutex::new(Some(server))),
        })
    })
}

/// A MoQ client session (create with `connect()`).
#[pyclass(module = "moq_audio._native", frozen)]
pub struct NativeSession {
    inner: moq_audio::Session,
    #[pyo3(get)]
    url: String,
}

/// Awaitable of a `NativeSession` connected to `url`.
#[pyfunction]
#[pyo3(signature = (url, fingerprint=None, timeout=None, token=None))]
pub fn connect<'py>(
    py: Python<'py>,
    url: &str,
    fingerprint: Option<String>,
    timeout: Option<f64>,
    token: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let shown = |u: &str| moq_audio::net::session::redact(u, token.as_deref());
    let parsed = url::Url::parse(url).map_err(|e| PyValueError::new_err(format!("bad URL {:?}: {e}", shown(url))))?;
    let mut options = moq_audio::ConnectOptions::default();
    if let Some(timeout) = timeout {
        if !timeout.is_finite() || timeout <= 0.0 {
            return Err(PyValueError::new_err(format!("timeout must be > 0 s, got {timeout}")));
        }
        options = options.with_timeout(Duration::from_secs_f64(timeout));
    }
    if let Some(fp) = fingerprint {
        options = options.with_fingerprint(fp);
    }
    if let Some(token) = token {
        options = options.with_token(token);
    }
    let url = moq_audio::net::session::display_url(&parsed);
    awaitable(py, async move {
        let inner = moq_audio::Session::connect(&parsed, options).await?;
        Ok(NativeSession { inner, url })
    })
}

fn duration_ms(name: &str, ms: f64) -> PyResult<Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(PyValueError::new_err(format!("{name} must be a finite number of ms >= 0, got {ms}")));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// A non-negative integer argument as u32, or ValueError naming it (never OverflowError).
fn uint(name: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| PyValueError::new_err(format!("{name} must be a whole number >= 0, got {value}")))
}

#[pymethods]
impl NativeSession {
    /// Publish an audio broadcast at `path`; see the stub for the arguments. `None` means the
    /// Rust default (`ProducerOptions::default()`, the one place defaults live).
    #[pyo3(signature = (path, sample_rate, channels=1, frame_ms=None, bitrate=None, lead_ms=None, capacity_ms=None, group_frames=None, mark_timeout_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish_audio(
        &self,
        py: Python<'_>,
        path: &str,
        sample_rate: i64,
        channels: i64,
        frame_ms: Option<i64>,
        bitrate: Option<i64>,
        lead_ms: Option<f64>,
        capacity_ms: Option<f64>,
        group_frames: Option<i64>,
        mark_timeout_ms: Option<f64>,
    ) -> PyResult<AudioProducer> {
        let mut options = moq_audio::ProducerOptions::new(uint("sample_rate", sample_rate)?, uint("channels", channels)?);
        if let Some(frame_ms) = frame_ms {
            options.frame_duration = moq_audio::codec::opus::FrameDuration::from_ms(uint("frame_ms", frame_ms)?).map_err(to_py)?;
        }
        if let Some(bitrate) = bitrate {
            options.bitrate = Some(uint("bitrate", bitrate)?);
        }
        if let Some(lead_ms) = lead_ms {
            options.lead = duration_ms("lead_ms", lead_ms)?;
        }
        if let Some(capacity_ms) = capacity_ms {
            options.capacity = duration_ms("capacity_ms", capacity_ms)?;
        }
        if let Some(group_frames) = group_frames {
            options.group_frames = uint("group_frames", group_frames)?;
        }
        if let Some(mark_timeout_ms) = mark_timeout_ms {
            options.mark_timeout = duration_ms("mark_timeout_ms", mark_timeout_ms)?;
        }
        let session = self.inner.clone();
        let path = path.to_string();
        py.detach(move || {
            let _guard = runtime().enter();
            session.publish_audio(&path, options)
        })
        .map(|inner| AudioProducer { inner })
        .map_err(to_py)
    }

    /// Awaitable of an `AudioConsumer` of the audio broadcast at `path`.
    #[pyo3(signature = (path, sample_rate=None, timeout=None))]
    fn subscribe_audio<'py>(
        &self,
        py: Python<'py>,
        path: String,
        sample_rate: Option<i64>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = moq_audio::ConsumerOptions::default();
        options.sample_rate = sample_rate.map(|r| uint("sample_rate", r)).transpose()?;
        if let Some(timeout) = timeout {
            options.timeout = duration_ms("timeout", timeout * 1000.0)?;
        }
        let session = self.inner.clone();
        awaitable(py, async move {
            let consumer = session.subscribe_audio(&path, options).await?;
            Ok(AudioConsumer::new(consumer))
        })
    }

    /// Awaitable of a `Player` of the audio broadcast at `path`, reporting playout feedback.
    #[pyo3(signature = (path, wav_path=None, sample_rate=None, target_ms=None, fade_ms=None, timeout=None, listener_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn play_audio<'py>(
        &self,
        py: Python<'py>,
        path: String,
        wav_path: Option<PathBuf>,
        sample_rate: Option<i64>,
        target_ms: Option<f64>,
        fade_ms: Option<f64>,
        timeout: Option<f64>,
        listener_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut consumer = moq_audio::ConsumerOptions::default();
        consumer.sample_rate = sample_rate.map(|r| uint("sample_rate", r)).transpose()?;
        if let Some(timeout) = timeout {
            consumer.timeout = duration_ms("timeout", timeout * 1000.0)?;
        }
        let mut player = moq_audio::PlayerOptions::default();
        player.wav_path = wav_path;
        if let Some(target_ms) = target_ms {
            player.target = duration_ms("target_ms", target_ms)?;
        }
        if let Some(fade_ms) = fade_ms {
            player.fade = duration_ms("fade_ms", fade_ms)?;
        }
        let session = self.inner.clone();
        awaitable(py, async move {
            let (player, id) = session.play_audio(&path, consumer, player, listener_id).await?;
            let handle = player.handle();
            Ok(Player {
                inner: Arc::new(Mutex::new(player)),
                handle,
                listener_id: id,
            })
        })
    }

    /// Awaitable of a `DataReader` of track `name` in the broadcast at `path`.
    #[pyo3(signature = (path, name, timeout=None))]
    fn subscribe_data<'py>(&self, py: Python<'py>, path: String, name: String, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = duration_ms("timeout", timeout.unwrap_or(10.0) * 1000.0)?;
        let session = self.inner.clone();
        awaitable(py, async move {
            let reader = session.subscribe_data(&path, &name, timeout).await?;
            Ok(crate::data::DataReader {
                inner: Arc::new(Mutex::new(reader)),
            })
        })
    }

    /// Publish a broadcast at `path` with message tracks `names`; keep the result alive.
    fn publish_data(&self, py: Python<'_>, path: &str, names: Vec<String>) -> PyResult<crate::data::DataBroadcast> {
        let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
        let (writers, broadcast) = {
            let _guard = runtime().enter();
            self.inner.publish_data(path, &names_ref).map_err(to_py)?
        };
        let tracks = writers
            .into_iter()
            .map(|inner| Py::new(py, crate::data::DataWriter { inner }))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(crate::data::DataBroadcast {
            broadcast,
            tracks,
        })
    }

    /// Close the session (idempotent).
    fn close(&self) {
        let _guard = runtime().enter();
        self.inner.close();
    }

    /// Awaitable that resolves when the connection has ended.
    fn closed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let session = self.inner.clone();
        awaitable(py, async move { session.closed().await })
    }
}
