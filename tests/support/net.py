"""Loopback ports for servers the tests start."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port number that is free for both UDP and TCP on ``host`` right now.

    Our servers (the embedded server, moq-relay) bind QUIC on UDP and HTTP/WebSocket on TCP with
    the same number, so probing only one protocol races with whatever holds the other. Both
    sockets are held while probing; another process can still take the port before the server
    binds it, which the callers tolerate by retrying their start.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(64):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError(f"no port free for both UDP and TCP on {host} after 64 tries")
