"""Following alpaca-py's trade_updates stream: when it is up, when it is down.

alpaca-py's `TradingStream` reconnects by itself (backing off from 1 s to 30 s),
re-authenticates and listens again, with no replay of what happened meanwhile,
and tells its caller nothing. `ObservedTradingStream` is a subclass that reports
to a `StreamWatch` at the two points every connection passes through:

- up: the server acknowledged `listen` for trade_updates (the `listening`
  message, which the SDK otherwise drops), or a trade update arrived;
- down: the SDK closes the socket (`close()`), which it does after every
  dropped connection, failed handshake or authentication, and on stop.

Subclassing keeps the SDK's own loop, backoff and parsing; nothing in the SDK
module is replaced. The watch turns these into `on_gap` calls: after every
(re)connection, since events may have been missed, and every few seconds while
the stream is down, so the service keeps sweeping REST.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from alpaca.trading.stream import TradingStream

log = logging.getLogger(__name__)

CONNECTED = "trade_updates connected"
RECONNECTED = "trade_updates reconnected"


class StreamWatch:
    """The stream's state, thread-safe. `on_gap` is called outside the lock."""

    def __init__(
        self,
        on_gap: Callable[[str], None],
        *,
        grace_s: float,
        gap_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_gap = on_gap
        self._grace_s = grace_s
        self._gap_interval_s = gap_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._up = False
        self._connections = 0
        self._down_since = clock()
        self._last_gap = self._down_since
        self._note = "not connected yet"

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def starting(self) -> None:
        """The stream is being started: its grace (and the gap timer) count from now."""
        with self._lock:
            if not self._up:
                self._down_since = self._last_gap = self._clock()

    def connected(self) -> None:
        with self._lock:
            if self._up:
                return
            self._up = True
            self._connections += 1
            first = self._connections == 1
            self._note = ""
        log.info("Alpaca trade_updates %s", "connected" if first else "reconnected")
        self._on_gap(CONNECTED if first else RECONNECTED)

    def disconnected(self, note: str = "") -> None:
        with self._lock:
            if note:
                self._note = note
            if not self._up:
                return
            self._up = False
            self._down_since = self._last_gap = self._clock()
            self._note = note or "connection closed; the SDK reconnects"
        if note == "stopped":
            log.info("Alpaca trade_updates stopped")
        else:
            log.warning("Alpaca trade_updates disconnected: %s", note or "connection closed")

    def note(self, text: str) -> None:
        with self._lock:
            self._note = text

    def tick(self) -> None:
        """Called every second or so: while down, a gap every `gap_interval_s`."""
        with self._lock:
            if self._up:
                return
            now = self._clock()
            if now - self._last_gap < self._gap_interval_s:
                return
            self._last_gap = now
            down_for = now - self._down_since
        self._on_gap(f"trade_updates down for {down_for:.0f}s")

    def state(self) -> tuple[bool, str]:
        """(connected for health's sake: up, or down for less than the grace; detail)."""
        with self._lock:
            if self._up:
                return True, "trade_updates connected"
            down_for = self._clock() - self._down_since
            within_grace = down_for < self._grace_s
            detail = f"trade_updates down for {down_for:.1f}s"
            if self._note:
                detail += f" ({self._note})"
            if within_grace:
                detail += f", within the {self._grace_s:g}s grace"
            return within_grace, detail


class ObservedTradingStream(TradingStream):
    """alpaca-py's TradingStream, raw data, reporting connects and closes to `watch`."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        url: str,
        watch: StreamWatch,
        open_timeout_s: float,
    ) -> None:
        super().__init__(
            api_key,
            secret_key,
            raw_data=True,
            url_override=url,
            websocket_params={
                # The SDK's defaults, but a dead socket is noticed within 30 s, not 190.
                "ping_interval": 10,
                "ping_timeout": 20,
                "max_queue": 1024,
                "open_timeout": open_timeout_s,
                "close_timeout": 2,
            },
        )
        self._watch = watch

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[no-untyped-call]
        except ValueError:
            self._watch.note("Alpaca refused the stream's credentials")
            raise

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        stream = msg.get("stream") if isinstance(msg, dict) else None
        if stream == "listening":
            data = msg.get("data")
            streams = data.get("streams") if isinstance(data, dict) else None
            if isinstance(streams, list) and "trade_updates" in streams:
                self._watch.connected()
        elif stream == "trade_updates":
            self._watch.connected()
        await super()._dispatch(msg)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._watch.disconnected("" if self._should_run else "stopped")

    async def _stop_now(self) -> None:
        """The SDK's `stop_ws`, and the socket closed too: otherwise the SDK notices the
        stop only when its 5 s receive poll runs out."""
        await self.stop_ws()
        ws = self._ws
        if ws is not None:
            await ws.close()

    def stop_from_thread(self, timeout_s: float) -> None:
        """`stop()` from another thread, also when `run()` has only just been started
        (the SDK's `stop()` needs the loop `run()` creates)."""
        deadline = time.monotonic() + timeout_s
        while self._loop is None and time.monotonic() < deadline:
            time.sleep(0.01)
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self._stop_now(), loop)
        try:
            future.result(timeout=max(deadline - time.monotonic(), 0.1))
        except Exception:  # the loop ended meanwhile: stopped either way
            log.debug("trade_updates stop: loop already gone", exc_info=True)
