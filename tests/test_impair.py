"""The userspace impairment proxy (bench/impair.py) with real sockets on loopback, and moq-audio
through it end to end.

Statistical checks use seeded RNGs with bounds several standard deviations wide; timing checks use
generous bounds (CI is a noisy 2-core machine). Completion is signalled by events (the receiver
has everything the proxy forwarded), never by sleeping.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

import moq_audio
from conftest import SENTENCES, speech

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from impair import GilbertElliott, Impairment, Pipeline, Profile
from network import as_dict
from network import frames_of as frames_in

HDR = struct.Struct("!Id")  # sequence number, sender's loop time (s)


class Sink(asyncio.DatagramProtocol):
    """A UDP server that records (seq, sent_at, received_at) and optionally echoes."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.got: list[tuple[int, float, float]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self._want = math.inf
        self._done = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport does not subclass DatagramTransport, so no isinstance check)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        seq, sent = HDR.unpack_from(data)
        self.got.append((seq, sent, asyncio.get_running_loop().time()))
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)
        if len(self.got) >= self._want:
            self._done.set()

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` datagrams arrived."""
        self._want = n
        if len(self.got) >= n:
            return
        await asyncio.wait_for(self._done.wait(), timeout)


async def udp_endpoint(proto: asyncio.DatagramProtocol, **kw: Any) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, **kw)
    return transport


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    t = await udp_endpoint(s, local_addr=("127.0.0.1", 0))
    try:
        yield s
    finally:
        t.close()


def port_of(s: Sink) -> int:
    assert s.transport is not None
    port: int = s.transport.get_extra_info("sockname")[1]
    return port


async def send_paced(
    proxy: Impairment, n: int, *, every_s: float = 0.0, size: int = 64, batch: int = 20
) -> tuple[asyncio.DatagramTransport, Sink]:
    """Send ``n`` numbered datagrams to the proxy from one client socket.

    ``every_s`` > 0 sends one per interval (a real-time sender); otherwise ``batch`` at a time with
    a 1 ms gap so the proxy's socket never overflows. Returns the client transport and a Sink
    that receives what comes back.
    """
    back = Sink()
    client = await udp_endpoint(back, remote_addr=("127.0.0.1", proxy.port))
    loop = asyncio.get_running_loop()
    pad = b"\0" * max(0, size - HDR.size)
    t_next = loop.time()
    for i in range(n):
        client.sendto(HDR.pack(i, loop.time()) + pad)
        if every_s > 0:
            t_next += every_s
            await asyncio.sleep(max(0.0, t_next - loop.time()))
        elif i % batch == batch - 1:
            await asyncio.sleep(0.001)
    return client, back


async def forwarded(proxy: Impairment, sent: int) -> int:
    """Datagrams the proxy forwards client -> server, once it has taken all ``sent`` (from its trace)."""
    await proxy.wait_received("up", sent)
    assert proxy.trace is not None
    return sum(1 for d in proxy.trace if d.release is not None)


# --- pure pipeline ------------------------------------------------------------------------------------


def test_profile_validation_and_gilbert_elliott_mean() -> None:
    with pytest.raises(ValueError):
        Profile(delay_ms=-1)
    with pytest.raises(ValueError):
        Profile(loss_pct=1, burst=GilbertElliott.from_mean(1))
    with pytest.raises(ValueError):
        Profile(outages=((2.0, 1.0),))
    ge = GilbertElliott.from_mean(3.0, mean_burst=4.0)
    assert ge.mean_loss == pytest.approx(0.03)
    assert ge.r == pytest.approx(0.25)
    with pytest.raises(ValueError):
        Impairment(listen="10.0.0.1:5000", upstream="127.0.0.1:1")
    with pytest.raises(ValueError):
        Impairment(listen="127.0.0.1:0", upstream="192.168.1.1:443")


def test_tcp_pipeline_keeps_order_under_jitter() -> None:
    import random

    pipe = Pipeline(Profile(delay_ms=50, jitter_ms=40), random.Random(1))
    releases = [pipe.tcp(i * 0.001, 100) for i in range(500)]
    assert releases == sorted(releases)
    assert all(r >= 0.010 + i * 0.001 for i, r in enumerate(releases))  # >= delay - jitter


# --- UDP over real sockets ----------------------------------------------------------------------------


async def test_delay_is_added_in_each_direction_within_tolerance() -> None:
    echo = Sink(echo=True)
    t = await udp_endpoint(echo, local_addr=("127.0.0.1", 0))
    try:
        up, down = Profile(delay_ms=30), Profile(delay_ms=50)
        async with Impairment(upstream=f"127.0.0.1:{port_of(echo)}", up=up, down=down, trace=True) as proxy:
            client, back = await send_paced(proxy, 40, every_s=0.005)
            try:
                await back.wait_for(40)
            finally:
                client.close()
    finally:
        t.close()
    one_way = [(srv - sent) * 1000 for _, sent, srv in echo.got]
    rtt = [(recv - sent) * 1000 for _, sent, recv in back.got]
    # asyncio timers fire up to 1 ms early (clock resolution) and a few ms late on a busy machine.
    assert min(one_way) >= 29.0, min(one_way)
    assert sorted(one_way)[len(one_way) // 2] < 30 + 15, one_way
    assert min(rtt) >= 79.0, min(rtt)
    assert sorted(rtt)[len(rtt) // 2] < 80 + 25, rtt
    assert proxy.up.forwarded == proxy.down.forwarded == 40
    assert proxy.stats()["udp_associations"] == 0  # closed with the proxy


async def test_jitter_spreads_delay_and_reorders(sink: Sink) -> None:
    prof = Profile(delay_ms=40, jitter_ms=20)
    async with Impairment(upstream=f"127.0.0.1:{port_of(sink)}", up=prof, trace=True, seed=3) as proxy:
        client, _ = await send_paced(proxy, 200, every_s=0.002)
        try:
            await sink.wait_for(200)
        finally:
            client.close()
        stats = proxy.up
    delays = [(rx - sent) * 1000 for _, sent, rx in sink.got]
    assert min(delays) >= 19.0 and max(delays) < 60 + 30, (min(delays), max(delays))
    # Uniform ±20 ms: both halves are populated (a constant delay would put all near 40 ms).
    assert sum(d < 35 for d in delays) > 30 and sum(d > 45 for d in delays) > 30
    seqs = [s for s, _, _ in sink.got]
    assert seqs != sorted(seqs), "datagrams 2 ms apart with ±20 ms jitter must be reordered"
    seen = -1
    late = 0
    for s in seqs:
        if s < seen:
            late += 1
        seen = max(seen, s)
    assert stats.reordered == late > 20


async def test_keep_order_jitters_without_reordering(sink: Sink) -> None:
    prof = Profile(delay_ms=40, jitter_ms=20, keep_order=True)
    async with Impairment(upstream=f"127.0.0.1:{port_of(sink)}", up=prof, trace=True, seed=3) as proxy:
        client, _ = await send_paced(proxy, 200, every_s=0.002)
        try:
            await sink.wait_for(200)
        finally:
            client.close()
        assert proxy.up.reordered == 0
    seqs = [s for s, _, _ in sink.got]
    assert seqs == sorted(seqs)
    delays = [(rx - sent) * 1000 for _, sent, rx in sink.got]
    assert min(delays) >= 19.0 and max(delays) - min(delays) > 15, (min(delays), max(delays))


async def test_random_loss_rate_is_within_binomial_bounds(sink: Sink) -> None:
    n, p = 4000, 0.05
    async with Impairment(upstream=f"127.0.0.1:{port_of(sink)}", up=Profile(loss_pct=p * 100), trace=True) as proxy:
        client, _ = await send_paced(proxy, n)
        try:
            await sink.wait_for(await forwarded(proxy, n))
        finally:
            client.close()
        stats = proxy.up
    sd = math.sqrt(n * p * (1 - p))
    lost = n - len(sink.got)
    assert abs(lost - n * p) < 4.5 * sd, (lost, n * p, sd)  # p ~ 7e-6 of a false failure
    assert stats.dropped_loss == lost and stats.received == n and stats.forwarded == len(sink.got)


def burst_lengths(received: set[int], n: int) -> list[int]:
    runs: list[int] = []
    cur = 0
    for i in range(n):
        if i in received:
            if cur:
                runs.append(cur)
            cur = 0
        else:
            cur += 1
    if cur:
        runs.append(cur)
    return runs


async def test_gilbert_elliott_bursts_are_longer_than_random_loss_at_the_same_mean() -> None:
    n = 4000
    runs: dict[str, list[int]] = {}
    rates: dict[str, float] = {}
    for name, prof in {
        "random": Profile(loss_pct=5),
        "bursty": Profile(burst=GilbertElliott.from_mean(5, mean_burst=4)),
    }.items():
        s = Sink()
        t = await udp_endpoint(s, local_addr=("127.0.0.1", 0))
        try:
            async with Impairment(upstream=f"127.0.0.1:{port_of(s)}", up=prof, trace=True, seed=11) as proxy:
                client, _ = await send_paced(proxy, n)
                try:
                    await s.wait_for(await forwarded(proxy, n))
                finally:
                    client.close()
        finally:
            t.close()
        got = {seq for seq, _, _ in s.got}
        runs[name] = burst_lengths(got, n)
        rates[name] = 1 - len(got) / n
    mean_run = {k: sum(v) / len(v) for k, v in runs.items()}
    # Random 5 % loss: mean run 1/(1-p) ~ 1.05; Gilbert-Elliott with mean burst 4: ~4.
    assert mean_run["random"] < 1.3, mean_run
    assert mean_run["bursty"] > 2.5 * mean_run["random"], mean_run
    assert 0.035 < rates["random"] < 0.065, rates
    assert 0.025 < rates["bursty"] < 0.085, rates  # ~50 bursts: a wider spread than random loss


async def test_bandwidth_cap_limits_throughput_and_tail_drops(sink: Sink) -> None:
    rate_kbps, size = 800.0, 1000  # 100 kB/s: 100 datagrams of 1000 bytes per second
    prof = Profile(rate_kbps=rate_kbps, queue_ms=50)
    async with Impairment(upstream=f"127.0.0.1:{port_of(sink)}", up=prof, trace=True) as proxy:
        # Offer twice the capacity for 1 s.
        client, _ = await send_paced(proxy, 200, every_s=0.005, size=size)
        try:
            await sink.wait_for(await forwarded(proxy, 200))
        finally:
            client.close()
        stats = proxy.up
    arrivals = sorted(rx for _, _, rx in sink.got)
    span = arrivals[-1] - arrivals[0]
    throughput = (len(arrivals) - 1) * size / span
    assert 0.8 * 100_000 < throughput < 1.15 * 100_000, throughput
    assert 60 < stats.dropped_queue < 130, stats  # about half of the offered load
    assert stats.dropped_loss == stats.dropped_outage == 0


async def test_outage_drops_everything_in_its_window(sink: Sink) -> None:
    async with Impairment(upstream=f"127.0.0.1:{port_of(sink)}", trace=True) as proxy:
        t1 = proxy.clock() + 0.2
        t2 = t1 + 0.3
        proxy.add_outage(t1, t2, "up")
        client, _ = await send_paced(proxy, 160, every_s=0.005)  # 0.8 s
        try:
            await sink.wait_for(await forwarded(proxy, 160))
        finally:
            client.close()
        assert proxy.trace is not None
        trace = list(proxy.trace)
    inside = [d for d in trace if t1 <= d.at < t2]
    assert len(inside) > 40  # ~60 datagrams were offered during the outage
    assert all(d.reason == "outage" for d in inside)
    assert all(d.release is not None for d in trace if not t1 <= d.at < t2)
    got = {seq for seq, _, _ in sink.got}
    assert got == {d.seq for d in trace if d.release is not None}
    assert not got & {d.seq for d in inside}


async def test_same_seed_same_decisions() -> None:
    prof = Profile(delay_ms=10, jitter_ms=10, jitter_dist="normal", burst=GilbertElliott.from_mean(8, 3))

    async def decisions(seed: int) -> list[tuple[int, str | None, float]]:
        s = Sink()
        t = await udp_endpoint(s, local_addr=("127.0.0.1", 0))
        try:
            async with Impairment(upstream=f"127.0.0.1:{port_of(s)}", up=prof, seed=seed, trace=True) as proxy:
                client, _ = await send_paced(proxy, 500)
                try:
                    await s.wait_for(await forwarded(proxy, 500))
                finally:
                    client.close()
                assert proxy.trace is not None
                received = {seq for seq, _, _ in s.got}
                assert received == {d.seq for d in proxy.trace if d.release is not None}
                return [(d.seq, d.reason, round(d.jitter_ms, 9)) for d in proxy.trace]
        finally:
            t.close()

    a, b, c = await decisions(5), await decisions(5), await decisions(6)
    assert a == b
    assert a != c
    assert any(r == "loss" for _, r, _ in a)


# --- TCP ---------------------------------------------------------------------------------------------


async def test_tcp_forwarding_keeps_bytes_intact_under_delay_jitter_and_a_rate_cap() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = os.urandom(300_000)
    prof = Profile(delay_ms=20, jitter_ms=15, loss_pct=50, rate_kbps=8_000, queue_ms=50)  # loss: ignored on TCP
    try:
        async with Impairment(upstream=f"127.0.0.1:{port}", up=prof, down=prof, udp=False) as proxy:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

            async def send() -> None:
                view = memoryview(payload)
                i = 0
                while i < len(view):
                    step = 1 + (i * 7919) % 9000  # uneven chunks
                    writer.write(view[i : i + step])
                    i += step
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            got = await asyncio.wait_for(reader.read(-1), 30)
            await sender
            elapsed = loop.time() - t0
            writer.close()
            assert proxy.up.tcp_bytes == len(payload) == proxy.down.tcp_bytes
    finally:
        server.close()
    assert got == payload
    # 300 kB at 8 Mbit/s takes >= 0.3 s per direction (pipelined) plus 2 x 20 ms delay.
    assert elapsed > 0.3, elapsed


async def test_websocket_upgrades_can_be_refused_while_plain_http_passes() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(65536))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upgrade = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    plain = b"GET /certificate.sha256 HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        async with Impairment(upstream=f"127.0.0.1:{port}", udp=False, websocket=False) as proxy:
            replies = []
            for request in (upgrade, plain):
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writer.write(request)
                replies.append(await asyncio.wait_for(reader.read(-1), 10))
                writer.close()
            assert proxy.websocket_refused == 1
    finally:
        server.close()
    assert replies == [b"", plain]


async def test_udp_and_tcp_share_the_port_number() -> None:
    async with Impairment(upstream="127.0.0.1:9") as proxy:
        host, port = proxy.addr.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) == proxy.port > 0
        _, w = await asyncio.open_connection("127.0.0.1", proxy.port)  # the TCP side accepts
        w.close()


def test_cli_help_and_loopback_only() -> None:
    script = str(BENCH / "impair.py")
    out = subprocess.run([sys.executable, script, "--help"], check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--jitter-ms" in out.stdout and "--down-loss" not in out.stdout
    bad = subprocess.run(
        [sys.executable, script, "--upstream", "8.8.8.8:53", "--duration", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "loopback" in bad.stderr
    ok = subprocess.run(
        [
            sys.executable,
            script,
            "--upstream",
            "127.0.0.1:9",
            "--down-loss",
            "3",
            "--delay-ms",
            "5",
            "--duration",
            "0.2",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert '"dropped"' in ok.stdout and "loss_pct=3.0" in ok.stderr


# --- moq-audio end to end ------------------------------------------------------------------------------


async def test_player_through_the_proxy_renders_speech_and_a_flush_still_cuts() -> None:
    pcm, rate = speech(" ".join(SENTENCES[:2]))
    second, _ = speech(SENTENCES[2])
    net = Profile(delay_ms=50, jitter_ms=20, loss_pct=1)
    async with (
        moq_audio.Server("127.0.0.1:0") as server,
        # websocket=False: QUIC cannot lose the race to moq-tokio's WebSocket fallback.
        Impairment(upstream=f"127.0.0.1:{server.port}", up=net, down=net, seed=9, websocket=False) as proxy,
        moq_audio.connect(server.url) as bot_session,
        moq_audio.connect(proxy.url) as ear_session,  # certificate over TCP, QUIC over UDP, same port
    ):
        producer = bot_session.publish_audio("bot", sample_rate=rate)
        player = await ear_session.play_audio("bot")
        try:
            await producer.write(pcm[: 5 * rate])
            await asyncio.wait_for(player.wait_rendered(1_500, generation=0), 20)
            producer.flush()
            await producer.write(second)
            await producer.finish()
            # (as_dict: the Player report as a dict, whether the binding returns one or a PlayerReport)
            report = as_dict(await asyncio.wait_for(player.wait(), 30))
        finally:
            producer.cancel()
        stats = proxy.stats()
    assert stats["tcp_connections"] >= 1, "the certificate was fetched through the proxy"
    # QUIC datagrams through the impairment (not the WebSocket fallback over TCP).
    assert stats["down"]["forwarded"] > 100 and stats["up"]["forwarded"] > 20, stats
    assert stats["down"]["dropped"] + stats["up"]["dropped"] + stats["down"]["reordered"] > 0, stats
    out_rate = report["sample_rate"]
    heard_old = frames_in(report, 0) * 1000 / out_rate
    heard_new = frames_in(report, 1) * 1000 / out_rate
    assert heard_old >= 1_400, heard_old
    # QUIC retransmits what the proxy drops, so the whole second sentence plays (± the fade and
    # what concealment/underruns cost at 1 % loss).
    assert heard_new > len(second) * 1000 / rate - 200, heard_new
    arrival = next(a["at_frame"] for a in report["arrivals"] if a["generation"] == 1)
    old_after = frames_in(report, 0, lo=arrival)
    # As on loopback (tests/test_flush.py): the fade (5 ms) plus at most one render quantum (10 ms).
    assert old_after <= out_rate * 15 // 1000, old_after
    first_new = min(s["start"] for s in report["segments"] if s["generation"] == 1)
    assert frames_in(report, 0, lo=first_new) == 0
