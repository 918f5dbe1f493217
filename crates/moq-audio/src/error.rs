//! The crate's error type.

/// Everything that can go wrong in moq-audio.
///
/// Each variant's doc says what the caller can do about it. Cloneable, so a failure of a
/// background task (the producer's pump, a player) reaches every caller that waits on it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PCM or a setting passed in was invalid (wrong dtype, channel count, NaN, sample rate out
    /// of range, ...). Nothing from the call was queued; fix the input and call again.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The producer was finished or cancelled; create a new producer to publish more audio.
    #[error("the audio track is closed ({0})")]
    Closed(&'static str),

    /// libopus rejected a setting or a packet. On the publish side the producer is closed (it
    /// cannot encode); on the listen side the packet is skipped and the consumer stays usable.
    #[error("opus: {0}")]
    Opus(String),

    /// The resampler could not be built for this rate pair.
    #[error("resampler: {0}")]
    Resample(String),

    /// Connecting, TLS, or the MoQ session failed; check the URL and that the server is running.
    #[error("connection: {0}")]
    Connection(String),

    /// The server refused what the session asked for (publish or subscribe outside what its
    /// token grants, or a bad or expired token). Fix the token or the path; retrying won't help.
    #[error("not allowed: {0}")]
    Forbidden(String),

    /// The broadcast path is already published on this session; pick another path or close the
    /// producer that holds it.
    #[error("broadcast {0:?} is already published on this session")]
    Duplicate(String),

    /// A MoQ transport error on a broadcast or track (e.g. the publisher went away).
    #[error("moq: {0}")]
    Moq(#[from] moq_net::Error),

    /// The catalog or a frame on the wire could not be parsed; the publisher is not a moq-audio
    /// or hang publisher, or speaks an incompatible version.
    #[error("wire format: {0}")]
    Wire(String),

    /// A timeout elapsed (the message names what was being waited for).
    #[error("timed out waiting for {0}")]
    Timeout(String),

    /// Local I/O (binding a socket, writing a WAV file).
    #[error("io: {0}")]
    Io(std::sync::Arc<std::io::Error>),
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Io(std::sync::Arc::new(err))
    }
}

impl From<hang::Error> for Error {
    fn from(err: hang::Error) -> Self {
        Error::Wire(err.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
