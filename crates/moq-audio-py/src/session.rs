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
use crate::player::Player;
use crate::producer::AudioProducer;
use crate::runtime::{awaitable, runtime};

/// A session's connection state or change: kind "connected", "disconnected" or "closed".
#[pyclass(module = "moq_audio._native", frozen, get_all)]
pub struct ConnectionEvent {
    /// "connected" (the first event of an up session, then each reconnect), "disconnected"
    /// (dropped; redialing) or "closed" (for good; the last event).
    pub kind: String,
    /// For "connected": the session's epoch (1 = the first connect, 2 after one reconnect).
    pub epoch: Option<u64>,
    /// Why it dropped or ended (None for our own close).
    pub reason: Option<String>,
}

#[pymethods]
impl ConnectionEvent {
    fn __repr__(&self) -> String {
        format!(
            "ConnectionEvent(kind={:?}, epoch={:?}, reason={:?})",
            self.kind, self.epoch, self.reason
        )
    }
}

impl From<moq_audio::net::session::ConnectionEvent> for ConnectionEvent {
    fn from(e: moq_audio::net::session::ConnectionEvent) -> Self {
        use moq_audio::net::session::ConnectionEvent as E;
        match e {
            E::Reconnected { epoch } => Self {
                kind: "connected".into(),
                epoch: Some(epoch),
                reason: None,
            },
            E::Disconnected { reason } => Self {
                kind: "disconnected".into(),
                epoch: None,
                reason: Some(reason),
            },
            E::Closed { reason } => Self {
                kind: "closed".into(),
                epoch: None,
                reason,
            },
            _ => Self {
                kind: "unknown".into(),
                epoch: None,
                reason: None,
            },
        }
    }
}

/// A connection event as (kind, epoch, reason), before it becomes a Python object.
type EventParts = (String, Option<u64>, Option<String>);

/// Async iterator of a session's connection: the current state first, then every change;
/// ends after "closed".
#[pyclass(module = "moq_audio._native", frozen)]
pub struct ConnectionEvents {
    rx: Arc<Mutex<tokio::sync::broadcast::Receiver<moq_audio::net::session::ConnectionEvent>>>,
    /// The current state, yielded first; then `None`.
    first: std::sync::Mutex<Option<EventParts>>,
    /// Set once "closed" was yielded.
    done: Arc<std::sync::atomic::AtomicBool>,
}

#[pymethods]
impl ConnectionEvents {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use std::sync::atomic::Ordering;
        if self.done.load(Ordering::SeqCst) {
            return Err(pyo3::exceptions::PyStopAsyncIteration::new_err(()));
        }
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((kind, epoch, reason)) = first {
            self.done.store(kind == "closed", Ordering::SeqCst);
            let event = ConnectionEvent {
                kind,
                epoch,
                reason,
            };
            return crate::runtime::py_future(py, async move { Ok(event) });
        }
        let rx = self.rx.clone();
        let done = self.done.clone();
        crate::runtime::py_future(py, async move {
            let mut rx = rx.lock().await;
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let event = ConnectionEvent::from(e);
                        done.store(event.kind == "closed", Ordering::SeqCst);
                        return Ok(event);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
                }
            }
        })
    }
}

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
    let addr: SocketAddr = addr.parse().map_err(|e| {
        PyValueError::new_err(format!("bad address {addr:?} (want host:port): {e}"))
    })?;
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
#[pyo3(signature = (url, fingerprint=None, timeout=None, token=None, reconnect=true, reconnect_timeout=None))]
pub fn connect<'py>(
    py: Python<'py>,
    url: &str,
    fingerprint: Option<String>,
    timeout: Option<f64>,
    token: Option<String>,
    reconnect: bool,
    reconnect_timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let shown = |u: &str| moq_audio::net::session::redact(u, token.as_deref());
    let parsed = url::Url::parse(url)
        .map_err(|e| PyValueError::new_err(format!("bad URL {:?}: {e}", shown(url))))?;
    let mut options = moq_audio::ConnectOptions::default();
    if let Some(timeout) = timeout {
        if !timeout.is_finite() || timeout <= 0.0 {
            return Err(PyValueError::new_err(format!(
                "timeout must be > 0 s, got {timeout}"
            )));
        }
        options = options.with_timeout(Duration::from_secs_f64(timeout));
    }
    if let Some(fp) = fingerprint {
        options = options.with_fingerprint(fp);
    }
    if let Some(token) = token {
        options = options.with_token(token);
    }
    options = options.with_reconnect(reconnect);
    if let Some(t) = reconnect_timeout {
        options = options.with_reconnect_timeout(duration_ms("reconnect_timeout", t * 1000.0)?);
    }
    let url = moq_audio::net::session::display_url(&parsed);
    awaitable(py, async move {
        let inner = moq_audio::Session::connect(&parsed, options).await?;
        Ok(NativeSession { inner, url })
    })
}

fn duration_ms(name: &str, ms: f64) -> PyResult<Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a finite number of ms >= 0, got {ms}"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// A non-negative integer argument as u32, or ValueError naming it (never OverflowError).
fn uint(name: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!("{name} must be a whole number >= 0, got {value}"))
    })
}

#[pymethods]
impl NativeSession {
    /// Publish an audio broadcast at `path`; see the stub for the arguments. `None` means the
    /// Rust default (`ProducerOptions::default()`, the one place defaults live).
    #[pyo3(signature = (path, sample_rate, channels=1, frame_ms=None, bitrate=None, lead_ms=None, capacity_ms=None, group_frames=None, mark_timeout_ms=None, on_disconnect=None, reset_in_flight=None))]
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
        on_disconnect: Option<&str>,
        reset_in_flight: Option<bool>,
    ) -> PyResult<AudioProducer> {
        let mut options = moq_audio::ProducerOptions::new(
            uint("sample_rate", sample_rate)?,
            uint("channels", channels)?,
        );
        if let Some(frame_ms) = frame_ms {
            options.frame_duration =
                moq_audio::codec::opus::FrameDuration::from_ms(uint("frame_ms", frame_ms)?)
                    .map_err(to_py)?;
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
        if let Some(reset) = reset_in_flight {
            options.reset_in_flight = reset;
        }
        if let Some(policy) = on_disconnect {
            options.on_disconnect = match policy {
                "queue" => moq_audio::publish::OnDisconnect::Queue,
                "raise" => moq_audio::publish::OnDisconnect::Fail,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "on_disconnect must be \"queue\" or \"raise\", not {other:?}"
                    )))
                }
            };
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
    #[pyo3(signature = (path, sample_rate=None, timeout=None, resubscribe=true))]
    fn subscribe_audio<'py>(
        &self,
        py: Python<'py>,
        path: String,
        sample_rate: Option<i64>,
        timeout: Option<f64>,
        resubscribe: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = moq_audio::ConsumerOptions::default();
        options.resubscribe = resubscribe;
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
            let (player, id) = session
                .play_audio(&path, consumer, player, listener_id)
                .await?;
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
    fn subscribe_data<'py>(
        &self,
        py: Python<'py>,
        path: String,
        name: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
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
    fn publish_data(
        &self,
        py: Python<'_>,
        path: &str,
        names: Vec<String>,
    ) -> PyResult<crate::data::DataBroadcast> {
        let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
        let (writers, broadcast) = {
            let _guard = runtime().enter();
            self.inner.publish_data(path, &names_ref).map_err(to_py)?
        };
        let tracks = writers
            .into_iter()
            .map(|inner| Py::new(py, crate::data::DataWriter { inner }))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(crate::data::DataBroadcast { broadcast, tracks })
    }

    /// Whether a session is up right now (False while redialing after a drop).
    #[getter]
    fn connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// How many sessions have been up: 1 after connecting, +1 per reconnect.
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.status().borrow().epoch
    }

    /// Async iterator of the connection: the current state first, then every change from now
    /// on (take it before acting, so no change is missed); ends after "closed".
    fn events(&self) -> ConnectionEvents {
        let rx = self.inner.events();
        let now = self.inner.status().borrow().clone();
        let first = if now.closed {
            ("closed".to_string(), None, now.reason)
        } else if now.connected {
            ("connected".to_string(), Some(now.epoch), None)
        } else {
            ("disconnected".to_string(), None, now.reason)
        };
        ConnectionEvents {
            rx: Arc::new(Mutex::new(rx)),
            first: std::sync::Mutex::new(Some(first)),
            done: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
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
