"""A fake Alpaca market-data API on loopback ports: alpaca-py's own clients are
pointed at it through their URL overrides, so tests exercise the SDK's transport,
msgpack protocol, reconnects and pagination, with no network and no patching.

* **The stream**, ``ws://127.0.0.1:P/v2/<feed>`` (``stream_url(feed)``, for
  ``StockDataStream(url_override=...)``), in the msgpack protocol of
  ``alpaca/data/live/websocket.py``: ``[{"T": "success", "msg": "connected"}]`` on
  connect; ``{"action": "auth", "key", "secret"}`` answered ``authenticated`` or
  ``[{"T": "error", "code": 402, "msg": "auth failed"}]``; ``subscribe`` /
  ``unsubscribe`` answered with the ``subscription`` message; bars as
  ``{"T": "b", "S", "o", "h", "l", "c", "v", "n", "vw", "t": msgpack Timestamp}``.
  Like Alpaca, it replays nothing: a bar pushed while nobody is subscribed is
  only in the history.
* **REST**, ``GET /v2/stocks/bars`` under ``rest_url`` (for
  ``StockHistoricalDataClient(url_override=...)``): ``symbols``, ``timeframe``,
  ``start``/``end`` (inclusive, as Alpaca's), ``limit`` and ``page_token``;
  pages hold at most ``page_size`` bars across symbols (ordered by symbol, then
  time, as Alpaca's) and point on with ``next_page_token``.

    with FakeAlpacaData(page_size=3) as fake:
        fake.add_bars([bar("SPY", t0, 100.0), ...])  # history only
        fake.push_bar(bar("SPY", t1, 101.0))         # history, and live to subscribers
        fake.drop_streams()                          # every stream connection cut, abruptly
        fake.subscribers("SPY"), fake.rest_requests  # what the clients did
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlparse

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

KEY: Final = "fake-key-id"
SECRET: Final = "fake-secret-key"
# The channels of a subscription message, as alpaca-py names them.
CHANNELS: Final = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
WAIT_SECONDS: Final = 10.0


@dataclass(frozen=True)
class FakeBar:
    """One bar as Alpaca has it: stamped at its start."""

    symbol: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    timeframe: str = "1Min"
    trade_count: int = 10
    vwap: float | None = None

    def rest(self) -> dict[str, Any]:
        stamp = self.start.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {"t": stamp, **self._values()}

    def stream(self) -> dict[str, Any]:
        when = msgpack.Timestamp.from_datetime(self.start.astimezone(UTC))
        return {"T": "b", "S": self.symbol, "t": when, **self._values()}

    def _values(self) -> dict[str, Any]:
        vwap = self.vwap if self.vwap is not None else round((self.high + self.low) / 2, 4)
        return {
            "o": self.open,
            "h": self.high,
            "l": self.low,
            "c": self.close,
            "v": self.volume,
            "n": self.trade_count,
            "vw": vwap,
        }


def bar(
    symbol: str,
    start: datetime,
    close: float,
    volume: float = 1000.0,
    timeframe: str = "1Min",
) -> FakeBar:
    """A bar around `close` (open a little below, high and low either side)."""
    return FakeBar(
        symbol,
        start,
        open=round(close - 0.05, 4),
        high=round(close + 0.1, 4),
        low=round(close - 0.1, 4),
        close=close,
        volume=volume,
        timeframe=timeframe,
    )


@dataclass(frozen=True)
class RestRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(eq=False)  # one per socket: compared (and hashed) by identity
class _Connection:
    socket: ServerConnection
    feed: str
    subscribed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def wants(self, channel: str, symbol: str) -> bool:
        symbols = self.subscribed.get(channel, set())
        return symbol in symbols or "*" in symbols


class FakeAlpacaData:
    def __init__(
        self, api_key: str = KEY, secret_key: str = SECRET, page_size: int = 10_000
    ) -> None:
        self.api_key, self.secret_key = api_key, secret_key
        self.page_size = page_size
        self._lock = threading.Lock()
        self._bars: dict[tuple[str, str], dict[datetime, FakeBar]] = defaultdict(dict)
        self._connections: set[_Connection] = set()
        self._rest_requests: list[RestRequest] = []
        self._rest_failures: deque[tuple[int, dict[str, Any]]] = deque()
        self.connects = 0  # authenticated stream connections, in all
        self.auth_failures = 0
        self.subscriptions = 0  # subscription messages answered, in all
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fake-alpaca-stream"
        )
        self._loop_thread.start()
        self._ws: Server = self._call(self._start_stream())
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self))
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
            name="fake-alpaca-rest",
        )
        self._http_thread.start()

    # --- where the clients connect

    @property
    def stream_port(self) -> int:
        port: int = next(iter(self._ws.sockets)).getsockname()[1]
        return port

    def stream_url(self, feed: str = "iex") -> str:
        return f"ws://127.0.0.1:{self.stream_port}/v2/{feed}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    # --- data

    def add_bars(self, bars: list[FakeBar]) -> None:
        """Into the history (REST) only."""
        with self._lock:
            for item in bars:
                self._bars[(item.timeframe, item.symbol)][item.start] = item

    def push_bar(self, item: FakeBar) -> int:
        """Into the history, and live to every connection subscribed to its bars;
        returns to how many connections it was sent."""
        self.add_bars([item])
        sent: int = self._call(self._broadcast(item))
        return sent

    def drop_streams(self) -> int:
        """Cut every stream connection at once (no close frame); returns how many."""
        dropped: int = self._call(self._drop())
        return dropped

    def subscribers(self, symbol: str, channel: str = "bars") -> int:
        """Connections now subscribed to `symbol`'s `channel`."""
        with self._lock:
            return sum(1 for c in self._connections if c.wants(channel, symbol))

    def subscribed_symbols(self, channel: str = "bars") -> set[str]:
        with self._lock:
            return {s for c in self._connections for s in c.subscribed.get(channel, set())}

    @property
    def rest_requests(self) -> list[RestRequest]:
        with self._lock:
            return list(self._rest_requests)

    def fail_rest(self, status: int, body: dict[str, Any], times: int = 1) -> None:
        """Answer the next `times` REST requests with this status and JSON body."""
        with self._lock:
            self._rest_failures.extend([(status, body)] * times)

    # --- life

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        with contextlib.suppress(Exception):
            self._call(self._stop_stream())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(WAIT_SECONDS)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> FakeAlpacaData:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the stream, on the loop's thread

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(WAIT_SECONDS)

    async def _start_stream(self) -> Server:
        return await serve(self._session, "127.0.0.1", 0, compression=None)

    async def _stop_stream(self) -> None:
        await self._drop()
        self._ws.close()
        await self._ws.wait_closed()

    async def _session(self, socket: ServerConnection) -> None:
        path = urlparse(socket.request.path if socket.request else "").path
        feed = path.removeprefix("/v2/")
        if not path.startswith("/v2/") or feed not in ("iex", "sip", "delayed_sip", "test"):
            await socket.close(1008, f"no stream at {path}")
            return
        connection = _Connection(socket, feed)
        try:
            await socket.send(_pack([{"T": "success", "msg": "connected"}]))
            auth = _unpack(await socket.recv())
            if (
                auth.get("action") != "auth"
                or auth.get("key") != self.api_key
                or auth.get("secret") != self.secret_key
            ):
                with self._lock:
                    self.auth_failures += 1
                await socket.send(_pack([{"T": "error", "code": 402, "msg": "auth failed"}]))
                await socket.close()
                return
            await socket.send(_pack([{"T": "success", "msg": "authenticated"}]))
            with self._lock:
                self._connections.add(connection)
                self.connects += 1
            async for raw in socket:
                await self._command(connection, _unpack(raw))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.discard(connection)

    async def _command(self, connection: _Connection, message: dict[str, Any]) -> None:
        action = message.get("action")
        if action not in ("subscribe", "unsubscribe"):
            error = {"T": "error", "code": 400, "msg": "invalid syntax"}
            await connection.socket.send(_pack([error]))
            return
        with self._lock:
            now: dict[str, set[str]] = {}
            for channel in CHANNELS:
                symbols = set(message.get(channel) or ())
                before = connection.subscribed.get(channel, set())
                now[channel] = before | symbols if action == "subscribe" else before - symbols
        ack = {"T": "subscription", **{c: sorted(now[c]) for c in CHANNELS}}
        # The answer first, then the bars: a bar is never sent ahead of its subscription.
        await connection.socket.send(_pack([ack]))
        with self._lock:
            connection.subscribed.update(now)
            self.subscriptions += 1

    async def _broadcast(self, item: FakeBar) -> int:
        frame = _pack([item.stream()])
        with self._lock:
            targets = [c for c in self._connections if c.wants("bars", item.symbol)]
        sent = 0
        for connection in targets:
            with contextlib.suppress(ConnectionClosed):
                await connection.socket.send(frame)
                sent += 1
        return sent

    async def _drop(self) -> int:
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.socket.transport.abort()
        return len(connections)

    # --- REST, on the HTTP server's threads

    def answer_bars(
        self, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._rest_requests.append(RestRequest(path, params, headers))
            if self._rest_failures:
                return self._rest_failures.popleft()
        if (
            headers.get("apca-api-key-id") != self.api_key
            or headers.get("apca-api-secret-key") != self.secret_key
        ):
            return 401, {"message": "unauthorized."}
        if path != "/v2/stocks/bars":
            return 404, {"code": 40410000, "message": f"endpoint not found: {path}"}
        try:
            symbols = [s for s in params["symbols"].split(",") if s]
            timeframe = params.get("timeframe", "1Day")
            start = _time(params.get("start"), datetime.min.replace(tzinfo=UTC))
            end = _time(params.get("end"), datetime.max.replace(tzinfo=UTC))
            limit = int(params.get("limit") or 1000)
            offset = _offset(params.get("page_token"))
        except (KeyError, ValueError) as error:
            return 422, {"code": 42210000, "message": f"invalid request: {error}"}
        with self._lock:
            rows = sorted(
                (
                    item
                    for symbol in symbols
                    for item in self._bars.get((timeframe, symbol), {}).values()
                    if start <= item.start <= end
                ),
                key=lambda item: (item.symbol, item.start),
            )
        size = max(1, min(limit, self.page_size))
        page = rows[offset : offset + size]
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in page:
            grouped[item.symbol].append(item.rest())
        more = offset + size < len(rows)
        token = base64.urlsafe_b64encode(str(offset + size).encode()).decode() if more else None
        return 200, {"bars": dict(grouped), "next_page_token": token}


def _pack(messages: list[dict[str, Any]]) -> bytes:
    packed: bytes = msgpack.packb(messages)
    return packed


def _unpack(raw: bytes | str) -> dict[str, Any]:
    data = raw.encode() if isinstance(raw, str) else raw
    message = msgpack.unpackb(data)
    if not isinstance(message, dict):
        raise ValueError(f"expected a msgpack map, got {type(message).__name__}")
    return message


def _time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    return int(base64.urlsafe_b64decode(token.encode()).decode())


def _rest_handler(fake: FakeAlpacaData) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = fake.answer_bars(url.path, params, headers)
            payload = json.dumps(body).encode()
            with contextlib.suppress(OSError):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler
