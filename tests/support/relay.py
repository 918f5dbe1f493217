"""Upstream moq-relay processes for the relay, cluster, auth and restart suites.

Load in a test module with ``pytest_plugins = ["support.relay"]``: that registers the fixtures
``relay`` (one node), ``relay_cluster`` (nodes ``a`` and ``b``, b dials a) and ``auth_relay``
(one node behind our grant server, with tokens), plus the hook that keeps the relays' logs in
``test-artifacts/relay/<test>/`` when a test fails.

Every node listens on 127.0.0.1 with QUIC (UDP) and its plain-HTTP web listener (TCP) on the
same port number, so ``moq_audio.connect(node.url)`` (``http://127.0.0.1:PORT/``) fetches
``/certificate.sha256`` and pins it, exactly as it does for the embedded server. The certificate
is a self-signed ECDSA P-256 one made with openssl per fixture and kept across restarts, so a
restarted node has the same fingerprint (as a production relay with a real certificate does),
and cluster peers pin it with ``--connect-tls-fingerprint``.

Readiness is a successful ``GET /certificate.sha256`` answered with the certificate we gave it
(the relay opens its QUIC endpoint before it serves HTTP) within a deadline; the process is
checked on every try, so a relay that dies at start fails at once with its log. Teardown kills
and reaps every process, also when the test failed.

The binary is found at ``$MOQ_RELAY_BIN`` or in the cache ``scripts/install-relay.sh`` fills;
when it is missing the fixtures skip with a reason (``scripts/test.sh`` installs it first).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError:  # bench/fanout.py uses the process helpers from a venv without pytest
    pytest = None  # type: ignore[assignment]

from support.net import free_port

RELAY_VERSION = "0.17.10"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "relay"
#: Start (bind + TLS setup) takes ~50 ms on an idle machine; a loaded 2-core CI box is slower.
START_TIMEOUT_S = 30.0
#: A SIGTERM makes the relay GOAWAY every session and wait up to --drain-timeout; we pass 1 s
#: so a graceful stop cannot hold a test longer than that.
DRAIN_TIMEOUT = "1s"


def relay_binary() -> Path | None:
    """The moq-relay binary to test against, or None when it is not installed."""
    env = os.environ.get("MOQ_RELAY_BIN")
    if env:
        return Path(env) if os.access(env, os.X_OK) else None
    cache = Path(os.environ.get("MOQ_AUDIO_CACHE", Path.home() / ".cache" / "moq-audio"))
    path = cache / f"moq-relay-{RELAY_VERSION}" / "bin" / "moq-relay"
    return path if os.access(path, os.X_OK) else None


def require_relay() -> Path:
    """The binary, or skip the calling test with how to install it."""
    path = relay_binary()
    if path is None:
        assert pytest is not None
        pytest.skip(
            f"moq-relay {RELAY_VERSION} is not installed: run scripts/install-relay.sh "
            "(scripts/test.sh does) or set MOQ_RELAY_BIN"
        )
    return path


@dataclass(frozen=True)
class Certificate:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1/localhost and its SHA-256."""

    cert: Path
    key: Path
    fingerprint: str


def make_certificate(workdir: Path) -> Certificate:
    """Make a certificate with openssl in ``workdir/tls/`` (valid 10 days: WebTransport's
    serverCertificateHashes accepts at most 14, so the same file also works for a browser
    pinning it).

    The files get a directory of their own because moq-relay watches the certificate's
    directory to hot-reload it: with the relay's log file beside it, every log line would
    trigger a reload, which logs a line (tens of thousands of reloads a second, a core busy).
    """
    directory = workdir / "tls"
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "relay.crt", directory / "relay.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "10",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return Certificate(cert, key, hashlib.sha256(der).hexdigest())


class RelayStartError(RuntimeError):
    """The relay exited or did not become ready; the message holds its log tail."""


_live: weakref.WeakSet[RelayNode] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # Safety net for an interrupted run (Ctrl-C between setup and teardown).
    for node in list(_live):
        node.kill()


class RelayNode:
    """One moq-relay process on a fixed loopback port, startable again on the same port.

    ``url`` (``http://127.0.0.1:PORT/``) is what ``moq_audio.connect`` takes; ``https_url`` is
    for clients that pin ``certificate.fingerprint`` themselves. ``kill()`` is a crash
    (SIGKILL: sessions just stop, no GOAWAY); ``stop()`` is a deploy (SIGTERM: GOAWAY, drain,
    exit); ``start()`` after either brings it back on the same port with the same certificate.
    """

    def __init__(
        self,
        binary: Path,
        name: str,
        workdir: Path,
        certificate: Certificate,
        extra_args: list[str],
        *,
        port: int | None = None,
        log_level: str = "info",
    ) -> None:
        self.binary = binary
        self.name = name
        self.certificate = certificate
        self.extra_args = list(extra_args)
        self.port = port or free_port()
        self.log_level = log_level
        self.log_path = workdir / f"{name}.log"
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        _live.add(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def command(self) -> list[str]:
        addr = f"127.0.0.1:{self.port}"
        return [
            str(self.binary),
            "--listen",
            addr,
            "--listen-tls-cert",
            str(self.certificate.cert),
            "--listen-tls-key",
            str(self.certificate.key),
            "--web-http-listen",
            addr,
            "--drain-timeout",
            DRAIN_TIMEOUT,
            "--log-level",
            self.log_level,
            *self.extra_args,
        ]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Spawn the relay and return once it serves; raises RelayStartError with its log."""
        if self.running:
            raise RuntimeError(f"relay {self.name} is already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our signals only; a Ctrl-C on pytest doesn't race it
                env={**os.environ, "NO_COLOR": "1", "RUST_LOG_STYLE": "never"},
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/certificate.sha256"
        last: object = None
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise RelayStartError(f"relay {self.name} exited with {code} at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    served = resp.read().decode().strip().lower().replace(":", "")
                if served == self.certificate.fingerprint:
                    return
                last = f"served fingerprint {served!r}, expected ours"
            except (urllib.error.URLError, OSError) as err:
                last = err
            if time.monotonic() > deadline:
                raise RelayStartError(f"relay {self.name} not ready after {timeout:.0f} s ({last}):\n{self.log_tail()}")
            time.sleep(0.02)  # retry interval of the readiness probe (deadline above)

    def kill(self) -> None:
        """SIGKILL and reap (a crash: no GOAWAY). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (a deploy: the relay GOAWAYs its sessions, drains, exits), then SIGKILL after
        ``timeout`` s. Returns the exit status."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return int(proc.returncode)

    def restart(self, *, graceful: bool = False) -> None:
        """Stop (SIGTERM when ``graceful`` else SIGKILL) and start again on the same port."""
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the running process, s (from /proc/PID/stat)."""
        pid = self.pid
        if pid is None:
            return 0.0
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def close(self) -> None:
        self.kill()
        _live.discard(self)


def start_node(binary: Path, name: str, workdir: Path, certificate: Certificate, extra_args: list[str]) -> RelayNode:
    """A started node on a fresh port; retries with another port if one was taken meanwhile."""
    for attempt in range(3):
        node = RelayNode(binary, name, workdir, certificate, extra_args)
        try:
            node.start()
            return node
        except RelayStartError as err:
            node.close()
            if "in use" not in str(err).lower() or attempt == 2:
                raise
    raise AssertionError("unreachable")


def public_args() -> list[str]:
    """Anonymous sessions may publish and subscribe to everything (tests without auth)."""
    return ["--auth-public", "**"]


@dataclass
class Cluster:
    """Two nodes: ``b`` dials ``a`` (``--cluster-connect``), pinning its certificate."""

    a: RelayNode
    b: RelayNode

    @property
    def nodes(self) -> list[RelayNode]:
        return [self.a, self.b]


def start_cluster(binary: Path, workdir: Path, certificate: Certificate) -> Cluster:
    a = start_node(binary, "a", workdir, certificate, [*public_args(), "--cluster-id", "1"])
    try:
        b = start_node(
            binary,
            "b",
            workdir,
            certificate,
            [
                *public_args(),
                "--cluster-id",
                "2",
                "--cluster-connect",
                a.https_url,
                "--connect-tls-fingerprint",
                certificate.fingerprint,
            ],
        )
    except BaseException:
        a.close()
        raise
    return Cluster(a, b)


@dataclass
class AuthSetup:
    """A relay whose sessions are admitted by our grant server (``moq_audio.auth``).

    ``tokens``: ``agent`` (publish ``bot/**``, subscribe ``bot/listeners/**`` for the
    listeners' feedback), ``agent_publish_only`` (publish ``bot/**``), ``listener`` (subscribe
    ``bot/**``, publish ``bot/listeners/**``), ``listener_subscribe_only`` (subscribe ``**``),
    ``expired`` (would allow everything, expired an hour ago), ``wrong_key`` (signed with
    another secret), ``malformed`` (not a JWT). ``url_with(token)`` is the node URL with
    ``?jwt=`` for clients without a ``token=`` parameter.
    """

    relay: RelayNode
    grants: Any  # moq_audio.auth.GrantServer
    tokens: dict[str, str] = field(default_factory=dict)

    def url_with(self, token: str) -> str:
        return f"{self.relay.url}?jwt={token}"


def start_auth(binary: Path, workdir: Path, certificate: Certificate) -> AuthSetup:
    from moq_audio import auth  # PyJWT: only the auth suites need it

    key = workdir / "auth.key"
    key.write_text(auth.generate_secret())
    secret = auth.load_secret(key)
    other = workdir / "other.key"
    other.write_text(auth.generate_secret())
    grants = auth.GrantServer(secret)
    try:
        relay = start_node(binary, "auth", workdir, certificate, ["--auth-url", grants.url])
    except BaseException:
        grants.close()
        raise
    tokens = {
        "agent": auth.sign_token(secret, publish=["bot/**"], subscribe=["bot/listeners/**"]),
        "agent_publish_only": auth.sign_token(secret, publish=["bot/**"]),
        "listener": auth.sign_token(secret, subscribe=["bot/**"], publish=["bot/listeners/**"]),
        "listener_subscribe_only": auth.sign_token(secret, subscribe=["**"]),
        "expired": auth.sign_token(secret, publish=["**"], subscribe=["**"], ttl_s=60, now=time.time() - 3600),
        "wrong_key": auth.sign_token(auth.load_secret(other), publish=["**"], subscribe=["**"]),
        "malformed": "not-a-jwt",
    }
    return AuthSetup(relay, grants, tokens)


# --- fixtures ---------------------------------------------------------------------------------

if pytest is not None:

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        setattr(item, f"_relay_rep_{report.when}", report)
        return report

    def _failed(request: pytest.FixtureRequest) -> bool:
        return any(
            getattr(getattr(request.node, f"_relay_rep_{when}", None), "failed", False) for when in ("setup", "call")
        )

    @contextlib.contextmanager
    def _workdir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
        workdir = tmp_path_factory.mktemp("relay")
        try:
            yield workdir
        finally:
            if _failed(request):
                dest = ARTIFACTS / request.node.name.replace("/", "_")
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    shutil.copy(log, dest / log.name)

    @pytest.fixture
    def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayNode]:
        """One moq-relay node, anonymous publish/subscribe to everything (``--auth-public '**'``)."""
        binary = require_relay()
        with _workdir(request, tmp_path_factory) as workdir:
            node = start_node(binary, "relay", workdir, make_certificate(workdir), public_args())
            try:
                yield node
            finally:
                node.close()

    @pytest.fixture
    def relay_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        """Two moq-relay nodes: ``b`` dials ``a``; publish on one, subscribe on the other."""
        binary = require_relay()
        with _workdir(request, tmp_path_factory) as workdir:
            cluster = start_cluster(binary, workdir, make_certificate(workdir))
            try:
                yield cluster
            finally:
                for node in cluster.nodes:
                    node.close()

    @pytest.fixture
    def auth_relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthSetup]:
        """moq-relay with ``--auth-url`` pointing at our grant server; see :class:`AuthSetup`."""
        binary = require_relay()
        pytest.importorskip("jwt", reason="PyJWT is needed for moq_audio.auth (pip install -r requirements-dev.txt)")
        with _workdir(request, tmp_path_factory) as workdir:
            setup = start_auth(binary, workdir, make_certificate(workdir))
            try:
                yield setup
            finally:
                setup.relay.close()
                setup.grants.close()
