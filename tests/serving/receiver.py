"""A webhook receiver on loopback for the dispatcher's tests and benchmark: a real HTTP
server in a thread that verifies each delivery's signature and timestamp on its own (not
with the dispatcher's code) and records what it got.

It can be ``up`` (answers ``status``, 200 by default), answer errors (``status = 500``),
or be ``down`` (its socket closed: connections are refused) and come back on the same
port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: how old a signed timestamp may be (the integrator's guide says 5 minutes).
TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Received:
    path: str
    key: str
    topic: str
    timestamp: int
    body: dict[str, Any]
    signed: bool
    #: ``time.perf_counter()`` when it arrived (for latency measurements).
    arrived: float = 0.0


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """The receiver's check, as the integrator's guide writes it."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), signature)


class Receiver:
    """Receives at ``url(path)``; ``secrets`` maps each path to its subscription's secret."""

    def __init__(self, secrets: dict[str, str], *, delay: float = 0.0) -> None:
        self.secrets = dict(secrets)
        self.delay = delay
        self.status = 200
        self.received: list[Received] = []
        self.refused_signatures = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle's algorithm and
            # the client's delayed ACK hold every answer back ~40 ms
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver._server is None:  # down: drop the connection unanswered
                    self.close_connection = True
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                secret = receiver.secrets.get(self.path)
                stamp = self.headers.get("X-GiamSat-Timestamp", "")
                signed = secret is not None and verify(
                    secret, stamp, body, self.headers.get("X-GiamSat-Signature", "")
                )
                status = receiver.status if signed else 401
                if signed and status < 300:
                    item = Received(
                        self.path,
                        self.headers.get("Idempotency-Key", ""),
                        self.headers.get("X-GiamSat-Topic", ""),
                        int(stamp),
                        json.loads(body),
                        signed,
                        time.perf_counter(),
                    )
                    with receiver._lock:
                        receiver.received.append(item)
                elif not signed:
                    with receiver._lock:
                        receiver.refused_signatures += 1
                answer = b'{"ok": true}' if status < 300 else b'{"error": "try later"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Go down: the socket is closed (new connections refused) and connections kept
        alive are dropped unanswered."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()

    def keys(self, path: str) -> list[str]:
        """The idempotency keys ``path`` accepted, in arrival order (repeats included)."""
        with self._lock:
            return [r.key for r in self.received if r.path == path]

    def unique(self, path: str) -> dict[str, Received]:
        """What ``path`` accepted, deduplicated by idempotency key (as a receiver must)."""
        with self._lock:
            return {r.key: r for r in self.received if r.path == path}
