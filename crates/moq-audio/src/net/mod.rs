//! The transport: connecting to a server or relay, and the embedded server.
//!
//! - [`session`]: [`Session`]: connect (with a token), publish and consume broadcasts.
//! - [`server`]: [`Server`]: upstream `moq-relay` in-process, plus the web page's files.
//! - [`data`]: small message tracks beside the audio (transcript, control).

pub mod data;
pub mod server;
pub mod session;

pub use data::{DataReader, DataWriter};
pub use server::{Server, ServerOptions};
pub use session::{ConnectOptions, Session};

/// Install the process-wide rustls crypto provider (aws-lc-rs) once; later calls are no-ops.
pub(crate) fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Someone else (the application) may have installed one already: keep theirs.
        let _ = moq_tokio::crypto::install_default();
    });
}

/// An error and its `source()` chain as one line.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        let text = err.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = err.source();
    }
    out
}
