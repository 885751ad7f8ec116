"""The fake Alpaca's trade_updates websocket: `ws://127.0.0.1:<port>/stream`.

The protocol alpaca-py 0.44's `TradingStream` speaks (alpaca/trading/stream.py):
  client {"action":"authenticate","data":{"key_id":K,"secret_key":S}}
  server {"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}
         (or "unauthorized"; the SDK checks only data.status, then logs and reconnects)
  client {"action":"listen","data":{"streams":["trade_updates"]}}
  server {"stream":"listening","data":{"streams":["trade_updates"]}}   (the SDK ignores it)
  server {"stream":"trade_updates","data":{"event":..., "timestamp":..., "order":{...}, ...}}
Frames are binary JSON, as Alpaca's paper stream sends them (`binary_frames = False` for text).

Every frame to a connection goes through that connection's queue, filled in the order
`publish` was called, so the stream never reorders events. A message reaches only the
connections listening when it is published: nothing is replayed after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

STREAM_PATH = "/stream"


@dataclass(eq=False)
class _Session:
    """One websocket connection and what it has negotiated."""

    connection: ServerConnection
    outbox: asyncio.Queue[bytes | str] = field(default_factory=asyncio.Queue)
    authorized: bool = False
    listening: bool = False


class TradeUpdatesServer:
    """A websocket server on its own event loop in a daemon thread."""

    def __init__(self, key_id: str, secret_key: str) -> None:
        self._key_id = key_id
        self._secret_key = secret_key
        self._lock = threading.Lock()
        self._sessions: list[_Session] = []
        self._last_message: bytes | str | None = None
        self._refuse_status: int | None = None
        self.binary_frames = True
        self.authentications = 0
        self.auth_failures = 0
        self.refused_handshakes = 0
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the fake trade_updates server did not start")
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]

    # --- control, from any thread ---

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{STREAM_PATH}"

    @property
    def listening(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions if s.listening)

    def publish(self, message: dict[str, Any]) -> None:
        """Send `message` to every connection listening to trade_updates right now."""
        text = json.dumps(message, separators=(",", ":"))
        frame: bytes | str = text.encode() if self.binary_frames else text
        with self._lock:
            self._last_message = frame
            self._deliver(frame)

    def repeat_last(self, times: int = 1) -> None:
        with self._lock:
            if self._last_message is None:
                raise ValueError("no trade_updates message has been sent yet")
            for _ in range(times):
                self._deliver(self._last_message)

    def refuse(self, status: int | None) -> None:
        """Refuse every websocket handshake with this HTTP status (None: accept again)."""
        with self._lock:
            self._refuse_status = status

    def drop_all(self) -> None:
        """Abort every connection's transport: no close frame, the client sees 1006."""

        async def abort_all() -> None:
            with self._lock:
                sessions = list(self._sessions)
                for session in sessions:
                    session.listening = False
            for session in sessions:
                session.connection.transport.abort()

        asyncio.run_coroutine_threadsafe(abort_all(), self._loop).result(timeout=5)

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def shut_down() -> None:
            assert self._server is not None
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                session.connection.transport.abort()
            self._server.close(close_connections=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut_down(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # --- the event loop thread ---

    def _deliver(self, frame: bytes | str) -> None:
        # Called with the lock held; call_soon_threadsafe keeps publication order per queue.
        for session in self._sessions:
            if session.listening:
                self._loop.call_soon_threadsafe(session.outbox.put_nowait, frame)

    def _send(self, session: _Session, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"))
        frame: bytes | str = text.encode() if self.binary_frames else text
        self._loop.call_soon_threadsafe(session.outbox.put_nowait, frame)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await serve(
                self._handle,
                "127.0.0.1",
                0,
                process_request=self._process_request,
                ping_interval=None,
                compression=None,
            )

        self._loop.run_until_complete(start())
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0] != STREAM_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        with self._lock:
            status = self._refuse_status
            if status is not None:
                self.refused_handshakes += 1
        if status is not None:
            return connection.respond(status, "connection limit exceeded\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        session = _Session(connection)
        with self._lock:
            self._sessions.append(session)
        sender = asyncio.create_task(self._pump(session))
        try:
            async for frame in connection:
                self._on_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                session.listening = False
                self._sessions.remove(session)
            sender.cancel()

    async def _pump(self, session: _Session) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await session.connection.send(await session.outbox.get())

    def _on_frame(self, session: _Session, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
            action = message.get("action")
            data = message.get("data")
            data = data if isinstance(data, dict) else {}
        except (ValueError, AttributeError):
            self._send(session, {"stream": "error", "data": {"error": "invalid message"}})
            return
        with self._lock:
            if action == "authenticate":
                ok = data.get("key_id") == self._key_id and data.get("secret_key") == (
                    self._secret_key
                )
                session.authorized = ok
                if not ok:
                    self.auth_failures += 1
                status = "authorized" if ok else "unauthorized"
                self._send(
                    session,
                    {"stream": "authorization", "data": {"status": status, "action": action}},
                )
            elif action == "listen":
                if not session.authorized:
                    self._send(
                        session,
                        {
                            "stream": "authorization",
                            "data": {"status": "unauthorized", "action": "listen"},
                        },
                    )
                    return
                streams = [s for s in data.get("streams") or [] if s == "trade_updates"]
                if streams and not session.listening:
                    self.authentications += 1
                session.listening = bool(streams)
                self._send(session, {"stream": "listening", "data": {"streams": streams}})
            else:
                self._send(session, {"stream": "error", "data": {"error": "unknown action"}})
