//! The embedded MoQ server: upstream `moq-relay`, in-process, plus our web page.
//!
//! [`Server::bind`] runs the same relay code a deployment runs (crate `moq-relay`, embedded as
//! a library), so the embedded server and a production relay behave alike: QUIC/WebTransport on
//! a UDP port; on the TCP port with the same number, plain HTTP serving `/certificate.sha256`
//! (how `http://` clients — `@moq/net` in a browser and [`crate::Session`] — learn the
//! self-signed certificate to pin) and the MoQ WebSocket fallback. We add one thing: static
//! files (the browser listener) for plain GET requests, through `tower-http`'s `ServeDir`.
//!
//! Every session may publish and subscribe anything (the relay's `--auth-public` for all paths),
//! scoped to the URL path it connected to. For tokens, run a real `moq-relay` with an auth
//! server (see `docs/deploying.md`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use moq_net::origin;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use url::Url;

use crate::{Error, Result};

/// How many ports [`Server::bind`] tries when port 0 was asked and the UDP port it probed is
/// taken over TCP (or the other way round) by the time the relay binds.
const BIND_ATTEMPTS: usize = 8;
/// How long [`Server::close`] lets sessions drain (the relay sends each a GOAWAY).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Routes the relay answers over HTTP; every other plain request is a static file.
const RELAY_ROUTES: [&str; 4] = ["/certificate.sha256", "/health", "/announced", "/fetch/"];

/// Options for [`Server::bind`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Serve the MoQ WebSocket fallback (qmux over WebSocket) on the HTTP port. Default `true`.
    pub websocket: bool,
    /// Serve static files from this directory over HTTP (`index.html` at `/`). Default `None`.
    pub static_dir: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            websocket: true,
            static_dir: None,
        }
    }
}

impl ServerOptions {
    /// Turn the WebSocket fallback on or off.
    pub fn with_websocket(mut self, websocket: bool) -> Self {
        self.websocket = websocket;
        self
    }

    /// Serve static files from `dir`.
    pub fn with_static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }
}

/// A running embedded MoQ server. Dropping it stops everything, like [`Server::close`]
/// without waiting.
pub struct Server {
    local_addr: SocketAddr,
    url: Url,
    fingerprint: String,
    websocket: bool,
    origin: origin::Producer,
    shutdown: moq_relay::shutdown::Trigger,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Bind QUIC (UDP) on `addr` and plain HTTP (TCP) on the same IP and port number.
    ///
    /// The certificate is freshly generated (moq-tokio's `tls.generate`): a self-signed ECDSA
    /// P-256 certificate for `localhost` and the bound IP, valid for 14 days, which is what
    /// browsers accept for WebTransport `serverCertificateHashes`. Port 0 picks a free port (the
    /// same number for UDP and TCP).
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] when a socket cannot be bound (the message names which address);
    /// [`Error::Connection`] when the relay cannot be set up.
    pub async fn bind(addr: SocketAddr, options: ServerOptions) -> Result<Server> {
        crate::net::install_crypto();
        let mut attempt = 1;
        let relay = loop {
            let try_addr = if addr.port() == 0 {
                SocketAddr::new(addr.ip(), free_port(addr.ip())?)
            } else {
                addr
            };
            // Boxed: the relay's start-up future is large (tens of KiB in a debug build), more than a
            // 2 MiB tokio worker stack (the Python binding's runtime) holds next to its callers.
            match Box::pin(moq_relay::Relay::load(relay_config(try_addr, &options))).await {
                Ok(relay) => break relay,
                Err(err) if addr.port() == 0 && attempt < BIND_ATTEMPTS && in_use(&err) => {
                    attempt += 1
                }
                Err(err) if in_use(&err) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!("binding {try_addr}: {err:#}"),
                    )
                    .into())
                }
                Err(err) => {
                    return Err(Error::Connection(format!(
                        "starting the server on {try_addr}: {err:#}"
                    )))
                }
            }
        };
        let local_addr = relay.quic_addr().map_err(|err| {
            Error::Connection(format!("the QUIC listener has no address: {err:#}"))
        })?;
        let fingerprint = fingerprint(relay.web().routes()).await?;
        let origin = relay.cluster().origin.clone();
        let shutdown = relay.shutdown_trigger().clone();
        let relay_routes = relay.web().routes();
        let app = match options.static_dir.clone() {
            Some(dir) => with_static_files(relay_routes, dir),
            None => relay_routes,
        };
        let relay = relay.with_web(app).with_signals(false);
        let ready = relay.ready();
        let task = tokio::spawn(async move {
            if let Err(err) = relay.run().await {
                tracing::warn!(err = %format!("{err:#}"), "the embedded server stopped");
            }
        });
        ready.wait().await.map_err(|err| {
            Error::Connection(format!("starting the server on {local_addr}: {err:#}"))
        })?;

        let url_host = SocketAddr::new(loopback_if_unspecified(local_addr.ip()), local_addr.port());
        let url =
            Url::parse(&format!("http://{url_host}/")).expect("a socket address makes a valid URL");
        Ok(Server {
            local_addr,
            url,
            fingerprint,
            websocket: options.websocket,
            origin,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address (UDP for QUIC; TCP for HTTP uses the same IP and port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://IP:PORT/`, the URL [`crate::Session::connect`] and `@moq/net` take.
    /// An unspecified bind IP (`0.0.0.0`, `::`) is reported as loopback.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// Lowercase hex SHA-256 of the DER leaf certificate (64 characters), as served at
    /// `/certificate.sha256`.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// `ws://IP:PORT/` when the WebSocket fallback is served (on the HTTP port), else `None`.
    pub fn websocket_url(&self) -> Option<Url> {
        if !self.websocket {
            return None;
        }
        let mut url = self.url.clone();
        url.set_scheme("ws")
            .expect("http and ws are both special schemes");
        Some(url)
    }

    /// The server's origin: publish or consume broadcasts in-process, without a session.
    /// Paths here are absolute: a broadcast at `room/x` is `x` to a client connected at
    /// `http://host:port/room`, and `room/x` to one connected at the root.
    pub fn origin(&self) -> origin::Producer {
        self.origin.clone()
    }

    /// Stop all listeners and sessions, sending each session a GOAWAY and its close, and free
    /// the port.
    pub async fn close(mut self) {
        self.shutdown.start();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn relay_config(addr: SocketAddr, options: &ServerOptions) -> moq_relay::Config {
    let mut config = moq_relay::Config::default();
    config.listen.bind = Some(moq_tokio::listen::Bind::Addr(addr));
    config.listen.tls.generate = vec!["localhost".into()];
    if !addr.ip().is_unspecified() {
        config.listen.tls.generate.push(addr.ip().to_string());
    }
    config.web.http.listen = Some(addr);
    config.web.ws = options.websocket;
    config.auth.public = vec![moq_net::Pattern::all()];
    config.drain_timeout = CLOSE_TIMEOUT;
    config
}

/// The relay's first certificate fingerprint, as its routes serve it.
async fn fingerprint(routes: axum::Router) -> Result<String> {
    let response = routes
        .oneshot(
            Request::get("/certificate.sha256")
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
        .map_err(|err| Error::Connection(format!("reading the certificate fingerprint: {err}")))?;
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map_err(|err| Error::Connection(format!("reading the certificate fingerprint: {err}")))?;
    let text = String::from_utf8_lossy(&body);
    let fingerprint = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if fingerprint.len() != 64 {
        return Err(Error::Connection(format!(
            "unexpected certificate fingerprint {text:?}"
        )));
    }
    Ok(fingerprint)
}

/// Plain GETs go to `ServeDir`, everything else (WebSocket upgrades, the relay's own routes)
/// to the relay. Explicit routes, not a fallback: the relay installs its landing page as the
/// router's fallback when it serves.
fn with_static_files(relay: axum::Router, dir: PathBuf) -> axum::Router {
    let files = tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true);
    let dispatch = tower::service_fn(move |request: Request<Body>| {
        let relay = relay.clone();
        let files = files.clone();
        async move {
            let upgrade = request
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            let path = request.uri().path();
            if upgrade
                || RELAY_ROUTES
                    .iter()
                    .any(|r| path == *r || (r.ends_with('/') && path.starts_with(r)))
            {
                relay.oneshot(request).await
            } else {
                let response = files.oneshot(request).await.unwrap_or_else(|e| match e {});
                let (mut parts, body) = response.into_parts();
                parts.headers.insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-cache"),
                );
                Ok(axum::response::Response::from_parts(parts, Body::new(body)))
            }
        }
    });
    axum::Router::new()
        .route_service("/", dispatch.clone())
        .route_service("/{*path}", dispatch)
}

/// A port free for both UDP and TCP on `ip` right now (the relay binds both with one number).
fn free_port(ip: IpAddr) -> Result<u16> {
    for _ in 0..64 {
        let udp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(SocketAddr::new(ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no port free for both UDP and TCP on {ip}"),
    )
    .into())
}

fn in_use(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    }) || format!("{err:#}").contains("Address already in use")
}

/// Loopback of the same family for an unspecified IP, else the IP itself.
fn loopback_if_unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}
