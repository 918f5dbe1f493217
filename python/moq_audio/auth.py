"""A small grant server for ``moq-relay --auth-url``, and the tokens it accepts.

moq-relay (>= 0.15; we test 0.17.10) does not verify tokens itself: for every session it POSTs
one JSON request per event (``connect``, ``revalidate``, ``end``) to the server named by
``--auth-url`` and admits the session on the *grant* that server answers. This module is such
a server, for deployments that want "the agent's backend signs a short-lived token per user;
the relay admits exactly what the token says" without running anything else.

Tokens are JWTs (RFC 7519) signed with HMAC-SHA256 under a shared secret, made and verified
with PyJWT. Claims::

    {"publish": ["bot/**"], "subscribe": [], "exp": 1767225600, "iat": 1767222000}

``publish`` / ``subscribe`` are moq-relay path patterns relative to the URL path the client
dials (``bot`` is exactly the broadcast ``bot``; ``bot/**`` is ``bot`` and everything under it;
``**`` is everything). ``exp`` (unix seconds) is required: the grant carries it as
``expires`` and the relay closes the session when it passes.

Clients present the token as the ``jwt`` query parameter of the URL they connect to
(``https://relay.example/?jwt=TOKEN``; ``moq_audio.connect(url, token=TOKEN)`` adds it), or as
a moq-transport SETUP token of type 0. The relay forwards both to us unparsed.

The contract (moq-auth 0.2, the crate moq-relay 0.17 links):

* request: ``{"id", "event": "connect"|"revalidate"|"end", "node", "transport", "path",
  "query"?, "token"?: {"kind", "value" (base64url)}, "remote"?, ...}``;
* answer to ``connect``/``revalidate``: HTTP 200 with ``{"publish": [...], "subscribe": [...],
  "expires": unix_s}`` admits; 401 or 403 refuses (the relay answers the client's WebTransport
  CONNECT with 401); anything else or no answer within 10 s counts as an outage (502);
* ``end`` is informational (what the session moved); any 2xx.

Why not upstream's ``moq auth serve`` (crate moq-cli 0.14.10, which matches moq-relay 0.17.10)?
It is the reference implementation and verifies the same kind of token, but moq-cli bundles the
whole upstream toolbox (RTMP, SRT, WebRTC, HLS, an OpenH264 build): ~840 crates to compile just
to answer one JSON POST. A deployment that already builds moq-cli can use it instead; the relay
flags are the same. See docs/deploying.md.

Command line::

    python -m moq_audio.auth generate --out relay-auth.key
    python -m moq_audio.auth sign --key relay-auth.key --publish 'bot/**' --ttl 3600
    python -m moq_audio.auth serve --key relay-auth.key --listen 127.0.0.1:4440

Tokens are never written to logs or error messages; the server logs the session id, the
event, the path and the decision.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, final

import jwt

__all__ = [
    "Decision",
    "GrantServer",
    "decide",
    "generate_secret",
    "load_secret",
    "sign_token",
]

log = logging.getLogger("moq_audio.auth")

#: HMAC-SHA256 is the only algorithm accepted (no "none", no algorithm confusion).
ALGORITHM = "HS256"
#: RFC 7518 §3.2: an HS256 key must be at least 256 bits.
MIN_SECRET_BYTES = 32
#: moq-transport SETUP token type 0: "negotiated out of band", read as a JWT (as moq-auth does).
TOKEN_KIND_JWT = 0
#: Clock skew tolerated when checking ``exp`` / ``nbf``, seconds.
LEEWAY_S = 5


def generate_secret() -> str:
    """A new random 256-bit secret, base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).rstrip(b"=").decode()


def load_secret(path: str | os.PathLike[str] | None = None) -> bytes:
    """The signing secret from ``path`` (a file holding what :func:`generate_secret` made) or,
    without a path, from the ``MOQ_AUTH_SECRET`` environment variable.

    Returns the raw key bytes. Raises ValueError when none is given or it is shorter than
    256 bits (RFC 7518 §3.2).
    """
    if path is not None:
        text = Path(path).read_text(encoding="utf-8").strip()
    else:
        text = os.environ.get("MOQ_AUTH_SECRET", "").strip()
        if not text:
            raise ValueError("no secret: pass --key FILE or set MOQ_AUTH_SECRET")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as err:
        raise ValueError(f"the secret is not base64url: {err}") from None
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret has {len(raw)} bytes; HS256 needs at least {MIN_SECRET_BYTES}")
    return raw


def sign_token(
    secret: bytes,
    *,
    publish: Sequence[str] = (),
    subscribe: Sequence[str] = (),
    ttl_s: float = 3600.0,
    now: float | None = None,
) -> str:
    """A JWT granting ``publish`` / ``subscribe`` patterns for ``ttl_s`` seconds.

    ``secret``: raw key bytes (:func:`load_secret`). ``now``: unix seconds (default: the
    current time), e.g. a time in the past to make an already expired token for a test.
    Raises ValueError when the token would grant nothing or ``ttl_s`` is not positive.
    """
    if not publish and not subscribe:
        raise ValueError("a token must grant publish or subscribe patterns")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + int(ttl_s)}
    if publish:
        claims["publish"] = list(publish)
    if subscribe:
        claims["subscribe"] = list(subscribe)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


@dataclass(frozen=True)
class Decision:
    """The answer to one relay request: an HTTP status and a JSON body.

    ``status`` 200 admits with ``body`` as the grant; 401 (no token) and 403 (a bad token)
    refuse, with ``body["error"]`` saying why (it reaches the relay's log, not the client).
    """

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def admitted(self) -> bool:
        return self.status == HTTPStatus.OK and bool(self.body.get("publish") or self.body.get("subscribe"))


def _refuse(status: HTTPStatus, why: str) -> Decision:
    return Decision(int(status), {"error": why})


def _token_of(request: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(jwt, problem): the JWT in the ``jwt`` query parameter or a type-0 SETUP token."""
    from_query: str | None = None
    query = request.get("query")
    if isinstance(query, str) and query:
        values = urllib.parse.parse_qs(query, keep_blank_values=True).get("jwt", [])
        values = [v for v in values if v]
        if len(values) > 1:
            return None, "more than one jwt query parameter"
        from_query = values[0] if values else None
    from_setup: str | None = None
    token = request.get("token")
    if isinstance(token, Mapping):
        if token.get("kind") != TOKEN_KIND_JWT:
            return None, f"SETUP token type {token.get('kind')!r} is not supported (only type 0, a JWT)"
        value = str(token.get("value", ""))
        try:
            from_setup = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return None, "the SETUP token is not base64url ASCII"
    if from_query and from_setup and from_query != from_setup:
        return None, "a SETUP token and a different jwt query parameter were presented"
    return (from_query or from_setup), None


def _patterns(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise jwt.InvalidTokenError(f"claim {name!r} must be a list of path patterns")
    return list(value)


def decide(request: Mapping[str, Any], secret: bytes) -> Decision:
    """Decide one relay request (the parsed JSON body of its POST).

    ``connect`` and ``revalidate``: verify the JWT (signature, ``exp`` required, ``nbf``) and
    answer its patterns as the grant, with ``expires`` = ``exp``. A missing token is 401; a
    malformed, badly signed, expired or useless one is 403 with the reason. ``end``: 200.
    Never raises for a bad request; the reason never contains the token.
    """
    event = request.get("event")
    if event == "end":
        return Decision(int(HTTPStatus.OK), {})
    if event not in ("connect", "revalidate"):
        return _refuse(HTTPStatus.BAD_REQUEST, f"unknown event {event!r}")
    token, problem = _token_of(request)
    if problem:
        return _refuse(HTTPStatus.FORBIDDEN, problem)
    if not token:
        return _refuse(HTTPStatus.UNAUTHORIZED, "no token: connect with ?jwt=TOKEN")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp"], "verify_exp": True, "verify_nbf": True},
            leeway=LEEWAY_S,
        )
        publish = _patterns(claims, "publish")
        subscribe = _patterns(claims, "subscribe")
    except jwt.ExpiredSignatureError:
        return _refuse(HTTPStatus.FORBIDDEN, "the token has expired")
    except jwt.InvalidSignatureError:
        return _refuse(HTTPStatus.FORBIDDEN, "the token's signature does not match this server's key")
    except jwt.DecodeError as err:
        return _refuse(HTTPStatus.FORBIDDEN, f"the token is malformed: {err}")
    except jwt.InvalidTokenError as err:
        return _refuse(HTTPStatus.FORBIDDEN, f"the token is invalid: {err}")
    if not publish and not subscribe:
        return _refuse(HTTPStatus.FORBIDDEN, "the token grants nothing")
    grant: dict[str, Any] = {"expires": int(claims["exp"])}
    if publish:
        grant["publish"] = publish
    if subscribe:
        grant["subscribe"] = subscribe
    return Decision(int(HTTPStatus.OK), grant)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"null")
            if not isinstance(request, dict):
                raise TypeError("the body is not a JSON object")
        except (ValueError, TypeError) as err:
            decision = _refuse(HTTPStatus.BAD_REQUEST, f"bad request body: {err}")
            request = {}
        else:
            decision = decide(request, self.server.secret)
        self.server.record(request, decision)
        body = json.dumps(decision.body).encode()
        self.send_response(decision.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server would log the request line; ours carries no token, but keep one format.
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], secret: bytes) -> None:
        super().__init__(addr, _Handler)
        self.secret = secret
        self.lock = threading.Lock()
        self.decisions: list[dict[str, Any]] = []

    def record(self, request: Mapping[str, Any], decision: Decision) -> None:
        entry = {
            "id": request.get("id"),
            "event": request.get("event"),
            "path": request.get("path"),
            "status": decision.status,
            "error": decision.body.get("error"),
        }
        with self.lock:
            self.decisions.append(entry)
        log.info(
            "%s %s path=%s -> %s%s",
            entry["id"],
            entry["event"],
            entry["path"],
            decision.status,
            f" ({entry['error']})" if entry["error"] else "",
        )


@final
class GrantServer:
    """The grant server on a loopback HTTP port, in a background thread.

    ``GrantServer(secret, host="127.0.0.1", port=0)``; ``url`` is what to pass to
    ``moq-relay --auth-url`` (the relay accepts ``http://`` only for loopback hosts). Use as a
    context manager or call :meth:`close`. :attr:`decisions` lists what was decided (session id,
    event, path, status, error; never the token), oldest first.
    """

    def __init__(self, secret: bytes, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the secret has {len(secret)} bytes; HS256 needs at least {MIN_SECRET_BYTES}")
        self._http = _HTTPServer((host, port), secret)
        self._thread = threading.Thread(target=self._http.serve_forever, name="moq-audio-auth", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._http.server_address[0])
        return f"http://{host}:{self.port}/"

    @property
    def decisions(self) -> list[dict[str, Any]]:
        with self._http.lock:
            return list(self._http.decisions)

    def close(self) -> None:
        """Stop serving and join the thread. Idempotent."""
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join()
        self._http.server_close()

    def __enter__(self) -> GrantServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listen_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m moq_audio.auth {generate,sign,serve}``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m moq_audio.auth", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a new random HS256 secret")
    gen.add_argument("--out", type=Path, required=True, help="file to write (mode 0600)")
    sign = sub.add_parser("sign", help="print a token for the given patterns")
    sign.add_argument("--key", type=Path, help="secret file (default: $MOQ_AUTH_SECRET)")
    sign.add_argument("--publish", action="append", default=[], metavar="PATTERN", help="e.g. 'bot/**'; repeatable")
    sign.add_argument("--subscribe", action="append", default=[], metavar="PATTERN", help="e.g. '**'; repeatable")
    sign.add_argument("--ttl", type=float, default=3600.0, help="seconds until the token expires (default 3600)")
    serve = sub.add_parser("serve", help="answer moq-relay --auth-url requests")
    serve.add_argument("--key", type=Path, help="secret file (default: $MOQ_AUTH_SECRET)")
    serve.add_argument(
        "--listen", type=_listen_addr, default=("127.0.0.1", 4440), help="HOST:PORT (default 127.0.0.1:4440)"
    )
    args = parser.parse_args(argv)

    if args.command == "generate":
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(generate_secret() + "\n")
        print(f"wrote a new secret to {args.out}", file=sys.stderr)
        return 0
    try:
        secret = load_secret(args.key)
        if args.command == "sign":
            print(sign_token(secret, publish=args.publish, subscribe=args.subscribe, ttl_s=args.ttl))
            return 0
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s auth %(message)s", stream=sys.stderr)
    host, port = args.listen
    server = GrantServer(secret, host=host, port=port)
    # The readiness line scripts and tests wait for: the URL for moq-relay --auth-url.
    print(f"auth server listening on {server.url}", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
