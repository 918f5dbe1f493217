//! A client MoQ session: connect to a relay (or a [`crate::server::Server`]), publish
//! broadcasts and consume the broadcasts others announce.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moq_net::{broadcast, origin};
use tokio::sync::watch;
use url::Url;

use super::chain;
use crate::{Error, Result};

/// Default for [`ConnectOptions::timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for [`Session::connect`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// A token for a relay that asks an auth server (moq-relay `--auth-url`): sent as the
    /// `jwt` query parameter of the connect URL, never logged or shown in errors.
    pub token: Option<String>,
    /// Hex SHA-256 of the server's leaf certificate to pin (64 hex digits, any case) instead
    /// of verifying against the system roots. Meant for `https://` URLs; an `http://` URL
    /// fetches and pins `/certificate.sha256` by itself.
    pub fingerprint: Option<String>,
    /// How long connecting (fingerprint fetch, QUIC or WebSocket handshake and MoQ setup)
    /// may take. `None` means [`DEFAULT_CONNECT_TIMEOUT`] (10 s); must not be zero.
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("fingerprint", &self.fingerprint)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ConnectOptions {
    /// Authenticate with `token` (see [`ConnectOptions::token`]).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Pin the server certificate to this hex SHA-256 fingerprint.
    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Give up connecting after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// One MoQ connection to a server. Cheap to clone; clones share the connection, which is
/// closed (gracefully, when a tokio runtime is around) when the last clone drops.
///
/// There is no automatic redial: when the connection ends, [`Session::closed`] resolves and a
/// new session has to be connected.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL without query, fragment or credentials, for messages.
    url: String,
    connection: moq_tokio::Connection,
    client: moq_tokio::Client,
    /// Broadcasts we publish to the server.
    publish: origin::Producer,
    /// Broadcasts the server announces to us.
    subscribe: origin::Producer,
    closing: AtomicBool,
    /// Set once a close started by [`Session::close`] (or drop) has finished.
    closed: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connect to `url` and complete the MoQ handshake.
    ///
    /// * `http://host:port/path`: fetch `/certificate.sha256` over plain HTTP and pin it
    ///   (done by moq-tokio), then connect over WebTransport, with the WebSocket fallback
    ///   (`ws://`) racing it after 200 ms.
    /// * `https://`: verify against the system roots, or only against
    ///   [`ConnectOptions::fingerprint`] when given.
    /// * `ws://`, `wss://`: WebSocket only.
    ///
    /// The URL path scopes every broadcast path of this session. Fails fast (no redial):
    /// [`Error::InvalidInput`] for a bad URL, scheme, fingerprint or zero timeout,
    /// [`Error::Connection`] when the server cannot be reached or the handshake fails (the
    /// message names the URL), [`Error::Timeout`] when it takes longer than the timeout.
    /// Must be called inside a tokio runtime.
    pub async fn connect(url: &Url, options: ConnectOptions) -> Result<Session> {
        super::install_crypto();
        let shown = display_url(url);
        if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
            return Err(Error::InvalidInput(format!(
                "unsupported URL scheme {:?} in {shown}: expected http, https, ws or wss",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(Error::InvalidInput(format!("URL {shown} has no host")));
        }
        let timeout = options.timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::InvalidInput(
                "connect timeout must be greater than zero".into(),
            ));
        }

        let mut config = moq_tokio::connect::Config::default();
        config.timeout = timeout;
        config.once = Some(true);
        if let Some(fingerprint) = &options.fingerprint {
            let bytes = moq_tokio::tls::parse_fingerprint(fingerprint).map_err(|err| {
                Error::InvalidInput(format!("certificate fingerprint {fingerprint:?}: {err}"))
            })?;
            config.tls.fingerprint = vec![hex::encode(bytes)];
        }
        let client = config.init(Default::default()).map_err(|err| {
            Error::Connection(format!("creating the client for {shown}: {}", chain(&err)))
        })?;

        let mut url = url.clone();
        if let Some(token) = &options.token {
            if token.is_empty() {
                return Err(Error::InvalidInput("the token is empty".into()));
            }
            url.query_pairs_mut().append_pair("jwt", token);
        }

        let publish = moq_tokio::origin::spawn();
        let subscribe = moq_tokio::origin::spawn();
        let connecting = client
            .clone()
            .with_publisher(publish.consume())
            .with_subscriber(subscribe.clone())
            .with_reconnect(false)
            .connect(url)
            .established();
        let connection = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(moq_tokio::Error::ConnectTimeout(_))) | Err(_) => {
                return Err(Error::Timeout(format!(
                    "connecting to {shown} ({timeout:?})"
                )))
            }
            Ok(Err(err)) => {
                let why = redact(&chain(&err), options.token.as_deref());
                return Err(if is_refusal(&why) {
                    Error::Forbidden(format!("{shown} refused the session: {why}"))
                } else {
                    Error::Connection(format!("connecting to {shown}: {why}"))
                });
            }
        };

        Ok(Session {
            inner: Arc::new(Inner {
                url: shown,
                connection,
                client,
                publish,
                subscribe,
                closing: AtomicBool::new(false),
                closed: Arc::new(watch::channel(false).0),
            }),
        })
    }

    /// Create a broadcast at `path` (relative to the URL path) and announce it to the server.
    ///
    /// Add tracks with [`broadcast::Producer::create_track`]; subscribers ask for tracks by
    /// name. The broadcast is unannounced when the producer (and its clones) drop or
    /// [`broadcast::Producer::close`] is called. Errors with [`Error::Moq`] for an invalid
    /// path or when the session is closed.
    pub fn publish_broadcast(&self, path: &str) -> Result<broadcast::Producer> {
        let broadcast = self.create_broadcast(path)?;
        broadcast.announce(Default::default())?;
        Ok(broadcast)
    }

    /// Create a broadcast at `path` without announcing it: add its tracks first, then
    /// [`broadcast::Producer::announce`] it, so that nobody who sees it can ask for a track
    /// that does not exist yet (and get "not found").
    ///
    /// # Errors
    /// [`Error::Moq`] for an invalid path or when the session is closed.
    pub fn create_broadcast(&self, path: &str) -> Result<broadcast::Producer> {
        Ok(self.inner.publish.create_broadcast(path)?)
    }

    /// Wait up to `timeout` until anyone on the server announces a broadcast at `path`
    /// (relative to the URL path), and return a consumer of it.
    ///
    /// Errors with [`Error::Timeout`] when it is not announced in time, [`Error::Connection`]
    /// when the session ends first, [`Error::Moq`] for an invalid path.
    pub async fn consume_broadcast(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<broadcast::Consumer> {
        let consumer = self.inner.subscribe.consume();
        let routed = tokio::time::timeout(timeout, consumer.routed_broadcast(path));
        tokio::select! {
            res = routed => match res {
                Ok(res) => Ok(res?),
                Err(_) => Err(Error::Timeout(format!(
                    "broadcast {path:?} to be announced on {} ({timeout:?})",
                    self.inner.url
                ))),
            },
            res = self.inner.connection.closed() => Err(Error::Connection(format!(
                "session with {} ended while waiting for broadcast {path:?}{}",
                self.inner.url,
                res.err().map(|err| format!(": {}", chain(&err))).unwrap_or_default()
            ))),
        }
    }

    /// Close the session for every clone. Idempotent and non-blocking: data already queued
    /// is still delivered (for up to about a second) in a background task when called
    /// inside a tokio runtime; outside one, the connection is cut at once.
    /// [`Session::closed`] resolves once the close is done.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Resolve when the connection has ended: `Ok` after [`Session::close`] (once it is
    /// done); otherwise [`Error::Connection`] saying why (server closed or went away,
    /// network error, idle timeout). A session is never redialed.
    pub async fn closed(&self) -> Result<()> {
        let res = self.inner.connection.closed().await;
        if self.inner.closing.load(Ordering::SeqCst) {
            let _ = self
                .inner
                .closed
                .subscribe()
                .wait_for(|closed| *closed)
                .await;
            return Ok(());
        }
        res.map_err(|err| {
            Error::Connection(format!(
                "session with {} ended: {}",
                self.inner.url,
                chain(&err)
            ))
        })
    }
}

impl Inner {
    fn close(&self) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        let connection = self.connection.clone();
        let closed = self.closed.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let client = self.client.clone();
                runtime.spawn(async move {
                    let _ = connection.close().await;
                    client.close().await;
                    closed.send_replace(true);
                });
            }
            Err(_) => {
                connection.abort(moq_net::Error::Cancel);
                closed.send_replace(true);
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// `text` with every occurrence of `token` (raw or URL-encoded) replaced.
pub fn redact(text: &str, token: Option<&str>) -> String {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return text.to_string();
    };
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    text.replace(token, "<token>").replace(&encoded, "<token>")
}

/// Whether a connect error is the server saying no (a bad, expired or insufficient token),
/// which retrying will not fix.
fn is_refusal(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    ["unauthorized", "forbidden", "401", "403"].iter().any(|w| why.contains(w))
}

/// `scheme://host:port/path`: no credentials, query or fragment (they may carry tokens).
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

impl Session {
    /// The broadcasts the server announces to this session (relative to the URL path).
    pub(crate) fn remote(&self) -> origin::Consumer {
        self.inner.subscribe.consume()
    }
}
