//! The bridge to asyncio: the shared tokio runtime, releasing the GIL, awaitables, and a clean
//! interpreter exit.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tokio::sync::Notify;

use crate::errors::{to_py, MoqAudioError};

/// Awaitables whose Rust future has not finished yet.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static SHUTDOWN: Notify = Notify::const_new();

struct InFlight;

impl InFlight {
    fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Worker threads' stack: 8 MiB like a main thread, not tokio's 2 MiB, because futures of a
/// debug build (the relay's start-up in particular) need more than 2 MiB when polled deep.
const WORKER_STACK: usize = 8 << 20;

/// Configure the shared runtime before its first use (at module import).
pub fn configure() {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .thread_name("moq-audio");
    pyo3_async_runtimes::tokio::init(builder);
}

/// The shared tokio runtime (pyo3-async-runtimes' multi-thread runtime).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Run `f` with the GIL released and map its error. Blocking work and waits go through here.
pub fn detach<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> moq_audio::Result<T> + Send,
) -> PyResult<T> {
    py.detach(f).map_err(to_py)
}

/// Turn a future into a Python awaitable on the shared runtime. Every awaitable goes through
/// here, so that at interpreter exit they can all be ended while Python can still take their
/// results (see [`shutdown`]).
pub fn py_future<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        return Err(MoqAudioError::new_err("the interpreter is shutting down"));
    }
    let guard = InFlight::new();
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let _guard = guard;
        tokio::select! {
            res = fut => res,
            _ = SHUTDOWN.notified() => Err(MoqAudioError::new_err("the interpreter is shutting down")),
        }
    })
}

/// Run a core future on the shared runtime and wait for it from an `async fn` coroutine (the
/// coroutine is polled by the asyncio loop; the work stays on tokio). Counted like
/// [`py_future`], so it ends at interpreter exit.
pub async fn spawn<T, F>(fut: F) -> PyResult<T>
where
    F: Future<Output = moq_audio::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        return Err(MoqAudioError::new_err("the interpreter is shutting down"));
    }
    let guard = InFlight::new();
    let task = runtime().spawn(async move {
        let _guard = guard;
        tokio::select! {
            res = fut => res.map_err(to_py),
            _ = SHUTDOWN.notified() => Err(MoqAudioError::new_err("the interpreter is shutting down")),
        }
    });
    task.await
        .map_err(|e| MoqAudioError::new_err(format!("the write task failed: {e}")))?
}

/// [`py_future`] for a core future, mapping its error.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = moq_audio::Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    py_future(py, async move { fut.await.map_err(to_py) })
}

/// Registered with `atexit`: end every pending awaitable and wait (GIL released, at most 1 s)
/// for the runtime to hand their results back. Without this, a future finishing after the
/// interpreter finalized would take the GIL of a dead interpreter and abort the process
/// ("Fatal Python error: PyGILState_Release").
#[pyfunction]
pub fn _shutdown(py: Python<'_>) {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    SHUTDOWN.notify_waiters();
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(1);
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Let the last results be handed to Python (that happens just after the count drops).
        std::thread::sleep(Duration::from_millis(20));
    });
}
