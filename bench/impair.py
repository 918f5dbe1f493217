#!/usr/bin/env python3
"""A userspace network impairment proxy for UDP (QUIC) and TCP (HTTP, the WebSocket fallback).

This kernel has no ``netem`` (``tc qdisc ... netem`` fails), so the harness impairs traffic in
userspace: a client connects to the proxy's loopback port instead of the server's, and every UDP
datagram / TCP chunk crossing the proxy goes through a per-direction pipeline:

1. **outage** - scheduled windows ``(t1, t2)`` in seconds on the proxy clock (0 = start): UDP
   datagrams arriving inside are dropped; TCP bytes are held and delivered once the window ends
   (TCP cannot lose data; a real stack would retransmit after the outage).
2. **loss** (UDP only) - independent random loss (``loss_pct``) or bursty loss with a
   Gilbert-Elliott two-state Markov chain (``burst``), stepped once per datagram. TCP cannot
   lose bytes, so loss settings are ignored on TCP (a lost segment would come back as a
   retransmission delay, which this harness does not model).
3. **bandwidth cap** (``rate_kbps``) - a link serialising at that rate behind a finite FIFO queue
   (``queue_ms`` of backlog at that rate). UDP: tail drop when the backlog is full. TCP: the
   proxy stops reading until the backlog drains (the sender's window fills instead).
4. **one-way delay + jitter** - each datagram is released ``delay_ms + X`` after it left the link,
   X uniform in ``[-jitter_ms, +jitter_ms]`` or normal with sigma ``jitter_ms`` (netem's
   convention), the total clipped at 0. UDP datagrams are released at their own times, so
   jitter reorders them (counted as ``reordered``). TCP keeps byte order: a chunk is released at
   ``max(its own time, the previous chunk's)``, so jitter delays chunks in order.

One UDP "connection" per client address: the first datagram from a new client (ip, port) opens a
new upstream socket (a new ephemeral source port), like a NAT; QUIC uses one 4-tuple per
connection, so each QUIC connection gets its own association. Upstream replies go back to that
client from the listening socket. The TCP listener uses the **same port number** as the UDP
one, because moq-audio's server puts QUIC on UDP and HTTP (``/certificate.sha256``) + WebSocket
on TCP on one port: a client given ``http://127.0.0.1:PROXYPORT/`` fetches the certificate over
TCP, then connects QUIC over UDP to the same port, both through the proxy.

Randomness comes from one ``random.Random`` per direction seeded with ``f"{seed}:{direction}"``,
so the same seed and the same sequence of datagrams give the same loss and jitter decisions (the
bandwidth queue depends on arrival times, so its tail drops are not part of that guarantee).
Only loopback addresses are accepted (listen and upstream).

Libraries checked on PyPI before writing this (2026-11): ``faulty`` 0.2.1 (asyncio TCP chaos
proxy: TCP only, no UDP, no seeded jitter/Gilbert-Elliott), ``netshape`` 1.0.2 (HTTP/HTTPS
forward proxy: no UDP/QUIC), ``netemu`` 0.0.7 (network namespaces + ``tc``: needs netem),
``tcconfig`` / ``pynetem`` / ``pytrafficcontrol`` / ``trafficshaper`` (``tc`` wrappers: need
netem), ``toxiproxy-python`` (client of the Go Toxiproxy server, TCP only, server not on PyPI),
``vaurien`` 1.9 (TCP, Python 2 era), ``simple-udp-proxy`` 0.0.4 (forwarding only, no
impairment). None impairs UDP in userspace, so this module is our own, kept small.

Use it three ways::

    # library
    async with Impairment(listen="127.0.0.1:0", upstream="127.0.0.1:4443",
                          up=Profile(delay_ms=50), down=Profile(delay_ms=50, jitter_ms=20, loss_pct=1),
                          seed=1) as proxy:
        url = f"http://{proxy.addr}/"          # hand this to moq_audio.connect()
        ...
        print(proxy.stats())                   # per-direction counters

    # CLI (Ctrl-C prints the counters)
    python bench/impair.py --listen 127.0.0.1:5000 --upstream 127.0.0.1:4443 --delay-ms 50 --jitter-ms 20 --loss 1

    # pytest: tests/test_impair.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import math
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from typing_extensions import Self

Direction = Literal["up", "down"]
#: "up" = client -> server (the listener's ACKs and feedback), "down" = server -> client (audio).
DIRECTIONS: tuple[Direction, Direction] = ("up", "down")
#: A UDP association with no traffic for this long is closed (s); QUIC's default idle timeout is 30 s.
UDP_IDLE_TIMEOUT_S = 120.0
TCP_READ_SIZE = 16_384


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GilbertElliott:
    """Bursty loss: a two-state Markov chain stepped once per UDP datagram.

    ``p``: probability Good -> Bad per datagram; ``r``: Bad -> Good. In Good a datagram is lost
    with ``loss_good``, in Bad with ``loss_bad``. Stationary loss rate
    ``(r * loss_good + p * loss_bad) / (p + r)``; mean Bad run ``1 / r`` datagrams.
    Raises ValueError for probabilities outside [0, 1] or ``p + r == 0``.
    """

    p: float
    r: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_good", "loss_bad"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"GilbertElliott.{name} must be in [0, 1], got {v}")
        if self.p + self.r <= 0.0:
            raise ValueError("GilbertElliott needs p + r > 0")

    @classmethod
    def from_mean(cls, loss_pct: float, mean_burst: float = 3.0) -> GilbertElliott:
        """The simple Gilbert model (lose every datagram in Bad, none in Good) with stationary
        loss ``loss_pct`` % and a mean burst of ``mean_burst`` datagrams (>= 1).

        Raises ValueError for ``loss_pct`` outside [0, 100) or ``mean_burst < 1``.
        """
        if not 0.0 <= loss_pct < 100.0:
            raise ValueError(f"loss_pct must be in [0, 100), got {loss_pct}")
        if mean_burst < 1.0:
            raise ValueError(f"mean_burst must be >= 1 datagram, got {mean_burst}")
        loss = loss_pct / 100.0
        r = 1.0 / mean_burst
        p = r * loss / (1.0 - loss)
        return cls(p=min(1.0, p), r=r)

    @property
    def mean_loss(self) -> float:
        """Stationary loss probability (0..1)."""
        return (self.r * self.loss_good + self.p * self.loss_bad) / (self.p + self.r)


@dataclass(frozen=True)
class Profile:
    """Impairment of one direction. Times in ms, ``loss_pct`` in percent, rate in kbit/s.

    - ``delay_ms``: one-way delay added to every datagram/chunk.
    - ``jitter_ms``: half-width of the uniform distribution around ``delay_ms``, or the standard
      deviation when ``jitter_dist == "normal"`` (netem's convention); total delay clipped at 0.
    - ``loss_pct``: independent random loss, UDP only. ``burst``: Gilbert-Elliott loss instead
      (UDP only); setting both raises ValueError.
    - ``rate_kbps``: bandwidth cap (None = unlimited); ``queue_ms``: the FIFO in front of it
      holds this much backlog at that rate (UDP tail-drops beyond it).
    - ``outages``: ``((t1, t2), ...)`` in seconds on the proxy clock; UDP drops everything
      arriving in ``[t1, t2)``, TCP holds it until ``t2``.
    - ``keep_order``: UDP jitter without reordering (a datagram never overtakes an earlier one,
      as on TCP). Off by default: independent per-datagram jitter reorders, like netem's.

    Raises ValueError for negative times, a loss outside [0, 100] or an empty outage window.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: Literal["uniform", "normal"] = "uniform"
    loss_pct: float = 0.0
    burst: GilbertElliott | None = None
    rate_kbps: float | None = None
    queue_ms: float = 100.0
    outages: tuple[tuple[float, float], ...] = ()
    keep_order: bool = False

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.queue_ms < 0:
            raise ValueError("delay_ms, jitter_ms and queue_ms must be >= 0")
        if self.jitter_dist not in ("uniform", "normal"):
            raise ValueError(f"jitter_dist must be 'uniform' or 'normal', got {self.jitter_dist!r}")
        if not 0.0 <= self.loss_pct <= 100.0:
            raise ValueError(f"loss_pct must be in [0, 100], got {self.loss_pct}")
        if self.burst is not None and self.loss_pct > 0:
            raise ValueError("give either loss_pct (random loss) or burst (Gilbert-Elliott), not both")
        if self.rate_kbps is not None and self.rate_kbps <= 0:
            raise ValueError("rate_kbps must be > 0 (None = unlimited)")
        for t1, t2 in self.outages:
            if not 0 <= t1 < t2:
                raise ValueError(f"outage window must satisfy 0 <= t1 < t2, got ({t1}, {t2})")

    @property
    def mean_loss_pct(self) -> float:
        """Configured long-run UDP loss, percent (random or Gilbert-Elliott)."""
        return self.burst.mean_loss * 100.0 if self.burst is not None else self.loss_pct


@dataclass
class Stats:
    """Counters of one direction. UDP counts datagrams (``received`` ... ``bytes_forwarded``);
    TCP counts chunks as read (<= 16 KiB) in ``tcp_chunks`` / ``tcp_bytes`` only."""

    received: int = 0
    forwarded: int = 0
    dropped_loss: int = 0
    dropped_outage: int = 0
    dropped_queue: int = 0
    #: UDP datagrams released after a later-arriving datagram of the same association.
    reordered: int = 0
    bytes_forwarded: int = 0
    tcp_chunks: int = 0
    tcp_bytes: int = 0

    @property
    def dropped(self) -> int:
        """All UDP drops: loss + outage + queue."""
        return self.dropped_loss + self.dropped_outage + self.dropped_queue

    def as_dict(self) -> dict[str, int]:
        d = dataclasses.asdict(self)
        d["dropped"] = self.dropped
        return d


@dataclass
class Decision:
    """What the pipeline decided for one UDP datagram (for traces and tests).

    ``seq``: arrival index in its direction; ``at``: arrival time (s, proxy clock);
    ``release``: when it is sent on (s, proxy clock), None if dropped; ``reason``: "loss",
    "outage" or "queue" when dropped; ``jitter_ms``: the random offset drawn (ms).
    """

    direction: Direction
    seq: int
    size: int
    at: float
    release: float | None
    reason: str | None = None
    jitter_ms: float = 0.0


# --- the per-direction pipeline (pure: no sockets) ------------------------------------------------


@dataclass
class Pipeline:
    """The impairment state of one direction; ``udp()`` / ``tcp()`` decide one datagram/chunk.

    Pure apart from its seeded RNG: give it arrival times (s) and sizes (bytes), get release
    times (s) or None for a drop. Used by :class:`Impairment`, and directly by unit tests.
    """

    profile: Profile
    rng: random.Random
    direction: Direction = "down"
    stats: Stats = field(default_factory=Stats)
    _seq: int = 0
    _bad: bool = False  # Gilbert-Elliott state
    _link_free: float = 0.0  # when the rate-limited link finishes the last accepted packet (s)
    _tcp_last: float = 0.0  # release time of the previous TCP chunk (order is kept)
    _udp_last: float = 0.0  # release time of the previous UDP datagram (with keep_order)
    extra_outages: list[tuple[float, float]] = field(default_factory=list)

    def in_outage(self, t: float) -> float | None:
        """End of the outage window containing ``t`` (s), or None."""
        for t1, t2 in (*self.profile.outages, *self.extra_outages):
            if t1 <= t < t2:
                return t2
        return None

    def _lost(self) -> bool:
        p = self.profile
        if p.burst is not None:
            g = p.burst
            # Step the chain, then lose with the new state's probability.
            if self._bad:
                if self.rng.random() < g.r:
                    self._bad = False
            elif self.rng.random() < g.p:
                self._bad = True
            return self.rng.random() < (g.loss_bad if self._bad else g.loss_good)
        if p.loss_pct > 0:
            return self.rng.random() * 100.0 < p.loss_pct
        return False

    def _jitter(self) -> float:
        p = self.profile
        if p.jitter_ms <= 0:
            return 0.0
        if p.jitter_dist == "normal":
            return self.rng.gauss(0.0, p.jitter_ms)
        return self.rng.uniform(-p.jitter_ms, p.jitter_ms)

    def _serialise(self, t: float, size: int, drop_when_full: bool) -> float | None:
        """Time the packet leaves the rate-limited link, or None (tail drop)."""
        p = self.profile
        if p.rate_kbps is None:
            return t
        bytes_per_s = p.rate_kbps * 1000.0 / 8.0
        backlog_s = max(0.0, self._link_free - t)
        if drop_when_full and backlog_s > p.queue_ms / 1000.0:
            return None
        self._link_free = max(self._link_free, t) + size / bytes_per_s
        return self._link_free

    def backlog_s(self, t: float) -> float:
        """Seconds of data waiting in front of the rate-limited link at time ``t``."""
        return max(0.0, self._link_free - t)

    def udp(self, t: float, size: int) -> Decision:
        """Decide one datagram of ``size`` bytes arriving at ``t`` (s)."""
        seq = self._seq
        self._seq += 1
        self.stats.received += 1
        d = Decision(self.direction, seq, size, t, None)
        # Draw loss and jitter for every datagram, dropped or not, so the random sequence (and
        # thus every decision) depends only on the seed and the datagram count.
        lost = self._lost()
        d.jitter_ms = self._jitter()
        if self.in_outage(t) is not None:
            d.reason = "outage"
            self.stats.dropped_outage += 1
            return d
        if lost:
            d.reason = "loss"
            self.stats.dropped_loss += 1
            return d
        left = self._serialise(t, size, drop_when_full=True)
        if left is None:
            d.reason = "queue"
            self.stats.dropped_queue += 1
            return d
        d.release = left + max(0.0, self.profile.delay_ms + d.jitter_ms) / 1000.0
        if self.profile.keep_order:
            # (+0.1 µs: asyncio's timer heap does not keep FIFO order between equal times)
            d.release = max(d.release, self._udp_last + 1e-7)
            self._udp_last = d.release
        return d

    def tcp(self, t: float, size: int) -> float:
        """Release time (s) of a TCP chunk of ``size`` bytes read at ``t`` (s); order is kept."""
        self.stats.tcp_chunks += 1
        self.stats.tcp_bytes += size
        start = self.in_outage(t) or t
        left = self._serialise(start, size, drop_when_full=False)
        assert left is not None
        release = left + max(0.0, self.profile.delay_ms + self._jitter()) / 1000.0
        release = max(release, self._tcp_last)
        self._tcp_last = release
        return release


# --- addresses ------------------------------------------------------------------------------------


def parse_addr(addr: str) -> tuple[str, int]:
    """``"127.0.0.1:5000"`` / ``"[::1]:5000"`` / ``"localhost:5000"`` -> (host, port).

    Raises ValueError for a malformed address or a host that is not loopback.
    """
    host, sep, port_s = addr.rpartition(":")
    if not sep or not port_s.isdigit():
        raise ValueError(f"expected HOST:PORT, got {addr!r}")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{addr!r}: only literal loopback addresses (127.0.0.0/8, ::1, localhost)") from None
    if not ip.is_loopback:
        raise ValueError(f"{addr!r} is not a loopback address: the harness only runs on 127.0.0.0/8 and ::1")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {addr!r}")
    return host, port


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- the proxy ------------------------------------------------------------------------------------


#: Socket receive buffer asked for (bytes): bursts must queue in the proxy, not be dropped by the
#: kernel outside the configured impairment (the default, net.core.rmem_default, is ~208 KiB).
RCVBUF_BYTES = 4 << 20


def _big_rcvbuf(sock: socket.socket) -> None:
    """Raise a UDP socket's receive buffer (SO_RCVBUFFORCE as root, else up to rmem_max)."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise OSError
        sock.setsockopt(socket.SOL_SOCKET, force, RCVBUF_BYTES)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)


class _Association(asyncio.DatagramProtocol):
    """One client's UDP flow: the upstream socket (own ephemeral port) and reorder tracking."""

    def __init__(self, proxy: Impairment, client: tuple[Any, ...]) -> None:
        self.proxy = proxy
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last_seen = time.monotonic()
        self.max_released = {"up": -1, "down": -1}
        self.pending: list[bytes] = []  # datagrams released before the upstream socket opened

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport does not subclass DatagramTransport, so no isinstance check)
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _big_rcvbuf(sock)
        for data in self.pending:
            self.transport.sendto(data)
        self.pending.clear()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.last_seen = time.monotonic()
        self.proxy._udp_in("down", self, data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable: keep going
        pass


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: Impairment) -> None:
        self.proxy = proxy
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport does not subclass DatagramTransport, so no isinstance check)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.proxy._udp_from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class Impairment:
    """The impairment proxy: UDP and TCP on one loopback port, forwarding to ``upstream``.

    Args:
        listen: ``HOST:PORT`` to listen on (port 0 picks one free for both UDP and TCP).
        upstream: ``HOST:PORT`` of the server (UDP and TCP, same port number).
        up: impairment client -> server; down: server -> client (default: none).
        seed: seeds both directions' RNGs (``f"{seed}:up"``, ``f"{seed}:down"``).
        udp / tcp: serve that protocol (both by default).
        trace: keep a :class:`Decision` per UDP datagram in ``self.trace``.
        websocket: False closes TCP connections whose first request asks for a WebSocket
            upgrade (counted in ``websocket_refused``), so a MoQ client that races a WebSocket
            fallback against QUIC (moq-tokio, after 200 ms) cannot win it over TCP, which this
            proxy cannot make lossy. Plain HTTP (``/certificate.sha256``) still passes.

    Use ``async with Impairment(...) as proxy`` (or ``await proxy.start()`` / ``await
    proxy.close()``); ``proxy.addr`` is ``"127.0.0.1:PORT"``. Raises ValueError for a
    non-loopback address, OSError when the port cannot be bound for both protocols.
    """

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        upstream: str = "127.0.0.1:4443",
        up: Profile = Profile(),
        down: Profile = Profile(),
        *,
        seed: int | str = 0,
        udp: bool = True,
        tcp: bool = True,
        trace: bool = False,
        websocket: bool = True,
    ) -> None:
        self.listen = parse_addr(listen)
        self.upstream = parse_addr(upstream)
        self.seed = seed
        self.pipelines: dict[Direction, Pipeline] = {
            "up": Pipeline(up, random.Random(f"{seed}:up"), "up"),
            "down": Pipeline(down, random.Random(f"{seed}:down"), "down"),
        }
        self._serve_udp = udp
        self._serve_tcp = tcp
        self._websocket = websocket
        self.websocket_refused = 0
        self.trace: list[Decision] | None = [] if trace else None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._assocs: dict[tuple[Any, ...], _Association] = {}
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._waiters: list[tuple[Direction, int, asyncio.Future[None]]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self.port = 0
        self.tcp_connections = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> Self:
        """Bind UDP and TCP on the same port and start forwarding. Returns self."""
        self._loop = asyncio.get_running_loop()
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(64 if port == 0 else 1):
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            tcp_sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp_sock.bind((host, port))
                _big_rcvbuf(udp_sock)
                bound = udp_sock.getsockname()[1]
                tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp_sock.bind((host, bound))
            except OSError:
                udp_sock.close()
                tcp_sock.close()
                if port != 0:
                    raise
                continue
            break
        else:
            raise OSError(f"no port free for both UDP and TCP on {host}")
        self.port = bound
        self._t0 = self._loop.time()
        if self._serve_udp:
            transport, _ = await self._loop.create_datagram_endpoint(lambda: _Listener(self), sock=udp_sock)
            self._udp = transport
        else:
            udp_sock.close()
        if self._serve_tcp:
            tcp_sock.listen(64)
            tcp_sock.setblocking(False)
            self._tcp = await asyncio.start_server(self._tcp_client, sock=tcp_sock)
        else:
            tcp_sock.close()
        self._reaper = asyncio.create_task(self._reap_idle())
        return self

    async def close(self) -> None:
        """Stop listening, drop everything in flight, close every association. Idempotent."""
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for a in self._assocs.values():
            if a.transport is not None:
                a.transport.close()
        self._assocs.clear()
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for t in list(self._tcp_tasks):
            t.cancel()
        for t in list(self._tcp_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- public state -------------------------------------------------------------------------------
    @property
    def addr(self) -> str:
        """``HOST:PORT`` clients connect to (UDP and TCP)."""
        return _fmt(self.listen[0], self.port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``: the moq-audio server URL through the proxy."""
        return f"http://{self.addr}/"

    def clock(self) -> float:
        """Seconds since the proxy started (the clock of ``Profile.outages``)."""
        assert self._loop is not None, "start the proxy first"
        return self._loop.time() - self._t0

    def add_outage(self, t1: float, t2: float, direction: Direction | Literal["both"] = "both") -> None:
        """Schedule an outage ``[t1, t2)`` (s, proxy clock) from now on. Raises ValueError if empty."""
        if not 0 <= t1 < t2:
            raise ValueError(f"outage window must satisfy 0 <= t1 < t2, got ({t1}, {t2})")
        for d in DIRECTIONS if direction == "both" else (direction,):
            self.pipelines[d].extra_outages.append((t1, t2))

    @property
    def up(self) -> Stats:
        """Counters client -> server."""
        return self.pipelines["up"].stats

    @property
    def down(self) -> Stats:
        """Counters server -> client."""
        return self.pipelines["down"].stats

    async def wait_received(self, direction: Direction, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` UDP datagrams have entered ``direction`` (decided, not yet released).

        Raises TimeoutError (asyncio.TimeoutError) after ``timeout`` s.
        """
        if self.pipelines[direction].stats.received >= n:
            return
        assert self._loop is not None, "start the proxy first"
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((direction, n, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters = [w for w in self._waiters if w[2] is not fut]

    def stats(self) -> dict[str, Any]:
        """``{"up": {...}, "down": {...}, "udp_associations": n, "tcp_connections": n}``."""
        return {
            "up": self.up.as_dict(),
            "down": self.down.as_dict(),
            "udp_associations": len(self._assocs),
            "tcp_connections": self.tcp_connections,
            "websocket_refused": self.websocket_refused,
        }

    # -- UDP ----------------------------------------------------------------------------------------
    def _udp_from_client(self, data: bytes, addr: tuple[Any, ...]) -> None:
        key = addr[:2]
        a = self._assocs.get(key)
        if a is None:
            a = _Association(self, addr)
            self._assocs[key] = a
            assert self._loop is not None
            self._loop.create_task(self._open_upstream(a))
        a.last_seen = time.monotonic()
        self._udp_in("up", a, data)

    async def _open_upstream(self, a: _Association) -> None:
        assert self._loop is not None
        try:
            await self._loop.create_datagram_endpoint(lambda: a, remote_addr=self.upstream)
        except OSError:
            self._assocs.pop(a.client[:2], None)

    def _udp_in(self, direction: Direction, a: _Association, data: bytes) -> None:
        assert self._loop is not None
        now = self._loop.time()
        d = self.pipelines[direction].udp(now - self._t0, len(data))
        if self.trace is not None:
            self.trace.append(d)
        if self._waiters:
            received = self.pipelines[direction].stats.received
            for w_dir, w_n, fut in self._waiters:
                if w_dir == direction and received >= w_n and not fut.done():
                    fut.set_result(None)
        if d.release is None:
            return
        when = self._t0 + d.release
        if when <= now:
            self._udp_out(direction, a, data, d.seq, None)
            return
        handle: asyncio.TimerHandle
        handle = self._loop.call_at(when, lambda: self._udp_out(direction, a, data, d.seq, handle))
        self._timers.add(handle)

    def _udp_out(
        self, direction: Direction, a: _Association, data: bytes, seq: int, handle: asyncio.TimerHandle | None
    ) -> None:
        if handle is not None:
            self._timers.discard(handle)
        st = self.pipelines[direction].stats
        if seq < a.max_released[direction]:
            st.reordered += 1
        else:
            a.max_released[direction] = seq
        st.forwarded += 1
        st.bytes_forwarded += len(data)
        if direction == "up":
            if a.transport is None:
                a.pending.append(data)
            else:
                a.transport.sendto(data)
        elif self._udp is not None:
            self._udp.sendto(data, a.client)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE_TIMEOUT_S / 4)
            cutoff = time.monotonic() - UDP_IDLE_TIMEOUT_S
            for key, a in list(self._assocs.items()):
                if a.last_seen < cutoff:
                    if a.transport is not None:
                        a.transport.close()
                    del self._assocs[key]

    # -- TCP ----------------------------------------------------------------------------------------
    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tcp_tasks.add(task)
        self.tcp_connections += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            first = b""
            if not self._websocket:
                first = await reader.read(TCP_READ_SIZE)
                if b"upgrade: websocket" in first.lower():
                    self.websocket_refused += 1
                    return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            pumps = [
                asyncio.create_task(self._tcp_pump("up", reader, up_writer, first)),
                asyncio.create_task(self._tcp_pump("down", up_reader, writer)),
            ]
            try:
                # Both directions until both ended; an error in one ends the other.
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
            finally:
                for t in pumps:
                    t.cancel()
                for t in pumps:
                    with contextlib.suppress(asyncio.CancelledError, OSError):
                        await t
        except OSError:
            pass
        finally:
            self._tcp_tasks.discard(task)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    async def _tcp_pump(
        self, direction: Direction, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes = b""
    ) -> None:
        """Read chunks (``first`` was read already), give each its release time, deliver them in
        order at those times."""
        assert self._loop is not None
        pipe = self.pipelines[direction]
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            assert self._loop is not None
            while True:
                item = await queue.get()
                if item is None:
                    break
                when, chunk = item
                delay = when - self._loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        ended = False
        try:
            while True:
                chunk, first = first or await reader.read(TCP_READ_SIZE), b""
                if not chunk:
                    break
                now = self._loop.time()
                queue.put_nowait((self._t0 + pipe.tcp(now - self._t0, len(chunk)), chunk))
                # Bandwidth cap: stop reading while the link's backlog exceeds the queue.
                limit = pipe.profile.queue_ms / 1000.0
                while pipe.profile.rate_kbps is not None and pipe.backlog_s(self._loop.time() - self._t0) > limit:
                    await asyncio.sleep(pipe.backlog_s(self._loop.time() - self._t0) - limit + 0.001)
            ended = True
        finally:
            queue.put_nowait(None)
            if not ended:  # an error or close(): do not deliver the rest
                sender.cancel()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await sender


# --- CLI ------------------------------------------------------------------------------------------

_FIELDS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("delay-ms", "delay_ms", float, "one-way delay, ms"),
    ("jitter-ms", "jitter_ms", float, "jitter: half-width (uniform) or sigma (normal), ms"),
    ("jitter-dist", "jitter_dist", str, "uniform (default) or normal"),
    ("loss", "loss_pct", float, "random loss, percent (UDP only)"),
    ("burst-loss", "burst_loss", float, "Gilbert-Elliott loss instead, mean percent (UDP only)"),
    ("burst-len", "burst_len", float, "mean burst length in datagrams for --burst-loss (default 3)"),
    ("rate-kbps", "rate_kbps", float, "bandwidth cap, kbit/s (default unlimited)"),
    ("queue-ms", "queue_ms", float, "queue in front of the cap, ms of backlog (default 100)"),
    ("outage", "outage", str, "T1:T2 seconds after start, drop everything (repeatable)"),
    ("keep-order", "keep_order", int, "1: UDP jitter without reordering (default 0: reorder, like netem)"),
]


def profile_from_args(ns: argparse.Namespace, direction: Direction) -> Profile:
    """Build a direction's Profile from the CLI: ``--up-X`` / ``--down-X`` override ``--X``."""

    def get(name: str) -> Any:
        v = getattr(ns, f"{direction}_{name}")
        return v if v is not None else getattr(ns, name)

    kw: dict[str, Any] = {}
    for _flag, name, _typ, _help in _FIELDS:
        v = get(name)
        if v is None or name in ("burst_loss", "burst_len", "outage"):
            continue
        kw[name] = bool(v) if name == "keep_order" else v
    burst = get("burst_loss")
    if burst:
        kw["burst"] = GilbertElliott.from_mean(burst, get("burst_len") or 3.0)
    outs = get("outage") or []
    windows = []
    for o in outs:
        a, _, b = o.partition(":")
        windows.append((float(a), float(b)))
    kw["outages"] = tuple(windows)
    return Profile(**kw)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="impair.py",
        description=(
            "Userspace network impairment proxy for UDP (QUIC) and TCP (HTTP/WebSocket) on one loopback port. "
            "Every --X applies to both directions; --up-X (client->server) and --down-X (server->client) override it. "
            "Loss applies to UDP only (TCP cannot lose bytes). Prints the listening address, then the counters "
            "as JSON on exit (Ctrl-C or --duration)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python bench/impair.py --listen 127.0.0.1:5000 --upstream 127.0.0.1:4443 "
        "--delay-ms 50 --jitter-ms 20 --loss 1\nthen connect to http://127.0.0.1:5000/",
    )
    ap.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT to listen on, loopback only (default 127.0.0.1:0)"
    )
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the server, loopback only")
    ap.add_argument("--seed", default="0", help="RNG seed (same seed, same decisions)")
    ap.add_argument("--duration", type=float, help="exit after this many seconds")
    ap.add_argument("--no-udp", action="store_true", help="do not proxy UDP")
    ap.add_argument("--no-tcp", action="store_true", help="do not proxy TCP")
    ap.add_argument(
        "--no-websocket",
        action="store_true",
        help="refuse WebSocket upgrades on TCP (plain HTTP passes), so MoQ clients stay on QUIC",
    )
    ap.add_argument("--stats-every", type=float, default=0.0, help="print counters every S seconds to stderr")
    for prefix in ("", "up-", "down-"):
        grp = ap.add_argument_group(f"{prefix or 'both '}directions" if not prefix else f"{prefix[:-1]} direction only")
        for flag, name, typ, hlp in _FIELDS:
            dest = f"{prefix.replace('-', '_')}{name}"
            if name == "outage":
                grp.add_argument(
                    f"--{prefix}{flag}", dest=dest, action="append", help=hlp if not prefix else argparse.SUPPRESS
                )
            else:
                grp.add_argument(
                    f"--{prefix}{flag}", dest=dest, type=typ, help=hlp if not prefix else argparse.SUPPRESS
                )
    return ap


async def _cli(ns: argparse.Namespace) -> dict[str, Any]:
    up = profile_from_args(ns, "up")
    down = profile_from_args(ns, "down")
    async with Impairment(
        ns.listen,
        ns.upstream,
        up,
        down,
        seed=ns.seed,
        udp=not ns.no_udp,
        tcp=not ns.no_tcp,
        websocket=not ns.no_websocket,
    ) as proxy:
        print(
            f"impair: listening on {proxy.addr} (UDP+TCP) -> {_fmt(*proxy.upstream)}; url {proxy.url}", file=sys.stderr
        )
        print(f"impair: up {up}\nimpair: down {down}", file=sys.stderr, flush=True)
        t_end = math.inf if ns.duration is None else time.monotonic() + ns.duration
        try:
            while time.monotonic() < t_end:
                step = min(ns.stats_every or 3600.0, t_end - time.monotonic())
                await asyncio.sleep(max(0.0, step))
                if ns.stats_every:
                    print(json.dumps(proxy.stats()), file=sys.stderr, flush=True)
        except asyncio.CancelledError:
            pass
        return proxy.stats()


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    ns = ap.parse_args(argv)
    try:
        parse_addr(ns.listen)
        parse_addr(ns.upstream)
        profile_from_args(ns, "up")
        profile_from_args(ns, "down")
    except ValueError as e:
        ap.error(str(e))
    try:
        stats = asyncio.run(_cli(ns))
    except KeyboardInterrupt:
        return 0
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
