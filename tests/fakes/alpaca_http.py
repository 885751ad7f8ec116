"""The fake Alpaca's REST front: `http://127.0.0.1:<port>/v2/...` on a ThreadingHTTPServer.

Each request is recorded, then: down -> 503; bad keys -> 401; unknown route -> 404; the
route's next scripted fault (if any) -> refuse it, or let it take effect and then spoil the
answer; otherwise the broker model answers. Latency delays the answer (after the request has
taken effect, like a slow network on the way back).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.alpaca_broker import Broker
from tests.fakes.alpaca_faults import Fault, FaultKind
from tests.fakes.alpaca_wire import Refusal, Reply, error_body

Handler = Callable[[Broker, dict[str, str], dict[str, str], Any], Reply]

# "METHOD /path/{param}" -> what answers it. The names are what `fail_next` and
# `set_latency` take.
ROUTES: dict[str, Handler] = {
    "POST /v2/orders": lambda b, p, q, body: b.submit(body),
    "GET /v2/orders": lambda b, p, q, body: b.list_orders(q),
    "DELETE /v2/orders": lambda b, p, q, body: b.request_cancel_all(),
    "GET /v2/orders:by_client_order_id": lambda b, p, q, body: b.get_order_by_client_id(q),
    "GET /v2/orders/{id}": lambda b, p, q, body: b.get_order(p["id"]),
    "PATCH /v2/orders/{id}": lambda b, p, q, body: b.replace(p["id"], body),
    "DELETE /v2/orders/{id}": lambda b, p, q, body: b.request_cancel(p["id"]),
    "GET /v2/account": lambda b, p, q, body: b.account(),
    "GET /v2/positions": lambda b, p, q, body: b.all_positions(),
    "GET /v2/positions/{symbol}": lambda b, p, q, body: b.position(p["symbol"]),
    "GET /v2/assets/{symbol}": lambda b, p, q, body: b.asset(p["symbol"]),
    "GET /v2/clock": lambda b, p, q, body: b.clock(),
}
_PATTERNS = [
    (
        route,
        route.split(" ")[0],
        re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.split(" ")[1])) + "$"
        ),
    )
    for route in ROUTES
]


def match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for route, route_method, pattern in _PATTERNS:
        found = pattern.match(path)
        if found and route_method == method:
            return route, found.groupdict()
    return None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. `body` is the JSON as Python's json reads it
    (numbers as int/float); `raw_body` the bytes exactly as sent."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    headers: dict[str, str]
    raw_body: bytes = b""
    route: str | None = None


@dataclass
class RestFront:
    """What the REST side knows besides the broker: keys, faults, latency, the record."""

    broker: Broker
    key_id: str
    secret_key: str
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: defaultdict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    latency: dict[str | None, float] = field(default_factory=dict)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def admit(self, request: RecordedRequest) -> tuple[Reply | None, Fault | None]:
        """Record the request; answer it at once (down, auth, no route, a refusal) or return
        the fault to apply once it has taken effect."""
        with self.lock:
            self.requests.append(request)
            if self.down:
                return Reply(503, error_body(50300000, "service unavailable")), None
            if (
                request.headers.get("apca-api-key-id") != self.key_id
                or request.headers.get("apca-api-secret-key") != self.secret_key
            ):
                return Reply(401, error_body(None, "unauthorized.")), None
            if request.route is None:
                return Reply(404, error_body(40410000, "endpoint not found")), None
            queue = self.faults.get(request.route)
            fault = queue.popleft() if queue else None
        if fault is not None and fault.kind is FaultKind.REFUSE:
            return fault.reply, None
        return None, fault

    def delay_for(self, route: str | None) -> float:
        with self.lock:
            if route is not None and route in self.latency:
                return self.latency[route]
            return self.latency.get(None, 0.0)


def serve(front: RestFront) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(front))
    server.daemon_threads = True
    return server


def _handler_for(front: RestFront) -> type[BaseHTTPRequestHandler]:
    class AlpacaHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle and delayed
            # ACKs add 40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            found = match(method, url.path)
            route, params = found if found is not None else (None, {})
            recorded_body: Any = None
            parsed: Any = None
            if raw:
                with contextlib.suppress(ValueError):
                    recorded_body = json.loads(raw)
                    parsed = json.loads(raw, parse_float=Decimal)
            request = RecordedRequest(
                method=method,
                path=url.path,
                query=query,
                body=recorded_body if isinstance(recorded_body, dict) else None,
                headers={k.lower(): v for k, v in self.headers.items()},
                raw_body=raw,
                route=route,
            )
            reply, fault = front.admit(request)
            if reply is None:
                assert route is not None
                try:
                    reply = ROUTES[route](front.broker, params, query, parsed)
                except Refusal as refusal:
                    reply = refusal.reply()
                except Exception as bug:  # a bug in the fake: say so instead of hanging up
                    reply = Reply(500, error_body(50000000, f"fake alpaca bug: {bug!r}"))
            delay = front.delay_for(route)
            if delay and front.closing.wait(delay):
                return
            if fault is not None:
                if fault.kind is FaultKind.DROP:
                    self.close_connection = True
                    return
                if fault.kind is FaultKind.HANG and front.closing.wait(fault.seconds):
                    return
                if fault.kind is FaultKind.AFTER_ACCEPT:
                    assert fault.reply is not None
                    reply = fault.reply
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            payload = reply.payload()
            # The client may have given up (a timeout) and gone away.
            with contextlib.suppress(OSError):
                self.send_response(reply.status)
                if payload:
                    self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return AlpacaHandler
