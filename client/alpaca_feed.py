"""tradectl feed alpaca: Alpaca's live bars into the trading service, exactly once.

    tradectl feed alpaca                      # the bars the active strategies need
    tradectl feed alpaca --symbols SPY,QQQ    # these instead

The feed is an outside client like any other: it subscribes with alpaca-py's
``StockDataStream`` to 1Min bars (one kind per symbol, so a symbol's ticks stay
in time order), turns each bar into one tick stamped at the bar's end
(``client.alpaca_bars``, the rule the download uses) and streams the ticks into
``StreamMarketData`` through the SDK, printing a line per bar it forwards.

Exactly once, across drops on either side:

* **Numbered messages.** Every message names the feed (``alpaca-bars-<feed>`` by
  default) and carries a sequence number; the service drops a message whose
  number it already accepted for that feed, durably, across its restarts. A run
  numbers its first message with its start time in microseconds since the epoch
  and each next one +1, so a later run of the same feed always numbers above an
  earlier one (one process per feed id).
* **Resume point.** The feed keeps each message it sent until the service
  confirms it: a stream is closed a few seconds after its first bar (and, idle,
  once a minute), and its summary's ``last_sequence`` is the service's word
  on what it accepted; a stream cut short says the same in its error details.
  When the service is unreachable, restarting or out of capacity, the feed
  waits (backoff doubling from 0.5 s to 30 s), reconnects and sends again every
  message above that point: what the service had already taken is dropped there,
  nothing is skipped here. Bars that arrive meanwhile wait, up to a bound (then
  Alpaca's stream is made to wait instead of bars being dropped).
* **Alpaca's side.** alpaca-py reconnects to Alpaca by itself (with its own
  backoff) but replays nothing: after a reconnect the feed fetches the minute
  bars it missed from Alpaca's REST API (``StockHistoricalDataClient``) before
  taking live bars again, and forwards a symbol's bar only if it starts after the
  last one forwarded, so a bar is neither lost nor sent twice.
* **A refused tick** (say, older than one the service already has for that
  symbol) is reported, left out and the rest resent; nothing else is dropped.

Not forwarded: Alpaca's updated (late-corrected) bars, which would repeat a
bar's time stamp; the service would count one minute twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

import grpc

from client.alpaca_history import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    AlpacaCredentials,
    AlpacaError,
    add_credential_arguments,
    credentials_from,
    data_client,
    fetch_bars,
    format_stamp,
    symbol_list,
)
from client.feed_window import SendWindow
from trading_sdk.client import TradingClient, error_info
from trading_sdk.tls import ClientTLS, open_channel, resolve_tls
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

if TYPE_CHECKING:  # alpaca-py takes a second to import: only once a feed starts
    from alpaca.data.models import Bar as AlpacaModelBar

__all__ = [
    "AlpacaFeed",
    "FeedError",
    "FeedOutput",
    "FeedSettings",
    "FeedStats",
    "add_arguments",
    "default_feed_id",
    "run_command",
]

FEED_ID_PREFIX: Final = "alpaca-bars-"
# Codes after which the feed waits and tries again: the service is down, restarting,
# busy (stream caps) or cut the call; anything else is a refusal to show and stop on.
RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
REFUSED_REASON: Final = "MARKET_DATA_MESSAGE_REFUSED"
# How often a waiting thread looks up from its wait (stop requests, session changes).
_POLL_SECONDS: Final = 0.1


class FeedError(Exception):
    """The feed cannot go on; `status` is tradectl's exit status for it."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FeedSettings:
    """How the feed runs; the defaults are the command line's.

    - `symbols`: empty asks the service for the symbols of its active strategies
      (and asks again every `refresh_seconds`, subscribing to new ones).
    - `feed_id`: empty is ``alpaca-bars-<iex|sip>``.
    - `initial_backoff`, `max_backoff`: seconds between tries to reach the
      service, doubling from the first to the most.
    - `confirm_seconds`, `confirm_messages`: a stream is closed, and the service's
      summary read, this long after its first unconfirmed message or after this
      many messages, whichever comes first (what a restart may have to resend).
    - `max_batch`: ticks per message at most; `max_held`: ticks held (waiting,
      or sent and unconfirmed) at most while the service is away; then Alpaca's
      stream is made to wait.
    - `count`: stop once this many bars are confirmed (0: run until stopped).
    """

    symbols: tuple[str, ...] = ()
    feed_id: str = ""
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    confirm_seconds: float = 5.0
    confirm_messages: int = 100
    max_batch: int = 500
    max_held: int = 100_000
    refresh_seconds: float = 60.0
    count: int = 0
    call_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("the backoff must be positive, and its first step at most its most")
        if self.confirm_seconds <= 0 or self.confirm_messages < 1 or self.refresh_seconds <= 0:
            raise ValueError("confirm_seconds, confirm_messages and refresh_seconds must be > 0")
        if self.max_batch < 1 or self.max_held < self.max_batch or self.count < 0:
            raise ValueError("need max_batch >= 1, max_held >= max_batch, count >= 0")


def default_feed_id(feed: str) -> str:
    return f"{FEED_ID_PREFIX}{feed}"


def _check_feed_id(feed_id: str) -> str:
    # The service's rule (server/validation.py), checked here so a bad id fails at once.
    if not 1 <= len(feed_id) <= 128 or not feed_id.isprintable() or feed_id != feed_id.strip():
        raise FeedError(
            f"--feed-id must be 1-128 printable characters without surrounding spaces, "
            f"got {feed_id!r}",
            EXIT_USAGE,
        )
    return feed_id


@dataclass
class FeedStats:
    """Counts since the feed started (read by tests and the final line)."""

    received: int = 0  # bars from Alpaca, live and fetched
    backfilled: int = 0  # of them fetched from REST after a reconnect
    repeated: int = 0  # bars not newer than the last of their symbol: not forwarded
    sent: int = 0  # ticks numbered and sent (first time)
    confirmed: int = 0  # ticks the service confirmed
    duplicates_dropped: int = 0  # resent messages the service already had
    refused: int = 0  # ticks the service refused (left out)
    service_failures: int = 0  # streams that failed and were retried
    data_reconnects: int = 0  # Alpaca stream drops
    backoffs: list[float] = field(default_factory=list)  # the waits, in order


class FeedOutput:
    """What the feed says: a line per forwarded bar and per notice on `out`,
    warnings on `err`; JSON objects, one a line, with `as_json`."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, as_json: bool = False
    ) -> None:
        # None: sys.stdout / sys.stderr as they are when a line is written.
        self._out, self._err, self._json = out, err, as_json
        self._lock = threading.Lock()

    def bar(self, event: market_pb2.MarketEvent, sequence: int) -> None:
        stamp = format_stamp(event.timestamp.ToDatetime(tzinfo=UTC))
        if self._json:
            fields = {"symbol": event.symbol, "timestamp": stamp, "price": event.price}
            self._emit(False, {"bar": {**fields, "volume": event.volume, "seq": sequence}})
        else:
            text = f"{event.symbol:<6} {stamp}  close {event.price:g}  volume {event.volume:g}"
            self._emit(False, f"{text}  #{sequence}")

    def info(self, text: str) -> None:
        self._emit(False, {"info": text} if self._json else text)

    def warning(self, text: str) -> None:
        self._emit(True, {"warning": text} if self._json else f"warning: {text}")

    def _emit(self, to_err: bool, item: str | dict[str, Any]) -> None:
        line = json.dumps(item) if isinstance(item, dict) else item
        stream = (self._err or sys.stderr) if to_err else (self._out or sys.stdout)
        with self._lock:
            print(line, file=stream, flush=True)


# --- Alpaca's side --------------------------------------------------------------------


class _Stream(Protocol):
    """What the feed uses of its StockDataStream."""

    def subscribe_bars(self, handler: Callable[[Any], Awaitable[None]], *symbols: str) -> None: ...
    def run(self) -> None: ...
    async def stop_ws(self) -> None: ...
    async def close(self) -> None: ...
    def loop(self) -> asyncio.AbstractEventLoop | None: ...


def _bar_stream(source: _AlpacaSource, credentials: AlpacaCredentials) -> _Stream:
    """alpaca-py's StockDataStream, telling `source` when it has subscribed, when a
    connection closed and when Alpaca refused the keys."""
    from alpaca.data.live.stock import StockDataStream

    class BarStream(StockDataStream):
        async def _auth(self) -> None:
            try:
                await super()._auth()
            except ValueError as error:
                source.auth_failed(str(error))
                raise

        async def _dispatch(self, msg: dict[str, Any]) -> None:
            if isinstance(msg, dict) and msg.get("T") == "subscription":
                await source.subscribed(msg)
            await super()._dispatch(msg)

        async def close(self) -> None:
            try:
                await super().close()
            finally:
                source.closed(stopping=not self._should_run)

        def loop(self) -> asyncio.AbstractEventLoop | None:
            running: asyncio.AbstractEventLoop | None = self._loop
            return running

    return BarStream(
        credentials.api_key,
        credentials.secret_key,
        feed=credentials.data_feed,
        url_override=credentials.stream_endpoint(),
        websocket_params={
            # The SDK's defaults, but a dead socket is noticed within 30 s, not 190.
            "ping_interval": 10,
            "ping_timeout": 20,
            "max_queue": 1024,
            "open_timeout": 10,
            "close_timeout": 2,
        },
    )


class _AlpacaSource:
    """Alpaca's live 1Min bars, in a thread of their own, into the window; after a
    reconnect, the bars missed meanwhile from REST first."""

    def __init__(self, feed: AlpacaFeed, credentials: AlpacaCredentials, symbols: Sequence[str]):
        self._feed = feed
        self._credentials = credentials
        self._symbols = set(symbols)
        self._symbols_lock = threading.Lock()
        from client.alpaca_bars import MINUTE, BarStamper, to_market_event, to_service_bar

        self._minute = MINUTE
        stamper = BarStamper(MINUTE)
        # The live bar's tick: the conversion the download uses too.
        self._to_event: Callable[[AlpacaModelBar], market_pb2.MarketEvent] = lambda bar: (
            to_market_event(to_service_bar(bar, stamper))
        )
        # Only the stream's loop thread reads and writes these.
        self._last_start: dict[str, datetime] = {}
        self._subscribed_once = False
        self._since: datetime | None = None  # when the first subscription was confirmed
        self._gap = False  # a connection dropped; the next subscription fetches what was missed
        self._rest: Any = None
        self._last_error = ""
        self._stream = _bar_stream(self, credentials)
        self._thread = threading.Thread(target=self._run, daemon=True, name="alpaca-bars")

    def start(self) -> None:
        self._stream.subscribe_bars(self._on_bar, *sorted(self._symbols))
        self._thread.start()

    def symbols(self) -> set[str]:
        with self._symbols_lock:
            return set(self._symbols)

    def add(self, symbols: set[str]) -> None:
        """Subscribe to more symbols while running (a strategy was activated)."""
        with self._symbols_lock:
            new = symbols - self._symbols
            self._symbols |= new
        if not new:
            return
        self._feed.output.info(f"subscribing to bars of {', '.join(sorted(new))} as well")
        try:
            self._stream.subscribe_bars(self._on_bar, *sorted(new))
        except Exception as error:  # the socket is down: the reconnect subscribes them
            self._feed.output.warning(f"subscribing now failed ({error}); it is done on reconnect")

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        while self._stream.loop() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        loop = self._stream.loop()
        if loop is not None and loop.is_running():
            stopping = self._shut_down()
            try:
                asyncio.run_coroutine_threadsafe(stopping, loop).result(timeout)
            except Exception:  # the loop ended meanwhile: stopped either way
                if not loop.is_running():
                    stopping.close()  # never started: say so, rather than warn it was not
        self._thread.join(max(deadline - time.monotonic(), 0.1))

    async def _shut_down(self) -> None:
        await self._stream.stop_ws()
        # Wake its receive too: it looks at the stop request only every 5 s.
        await self._stream.close()

    def _run(self) -> None:
        try:
            self._stream.run()
        except Exception as error:
            self._feed.fail(f"Alpaca's data stream failed: {error}")
            return
        if not self._feed.stopping():  # the SDK gave up by itself
            why = f": {self._last_error}" if self._last_error else ""
            self._feed.fail(f"Alpaca's data stream ended{why}")

    # Called on the stream's loop thread.

    def auth_failed(self, message: str) -> None:
        """Alpaca answered the keys with an error (Alpaca's codes: 402 "auth failed",
        406 "connection limit exceeded", 409 "insufficient subscription", ...)."""
        self._last_error = message
        text = message.lower()
        if "auth failed" in text:
            self._feed.fail(
                f"Alpaca refused the API keys ({message}): check ALPACA_API_KEY and "
                "ALPACA_SECRET_KEY",
                EXIT_USAGE,
            )
        elif "insufficient subscription" in text:  # alpaca-py gives up by itself
            self._feed.fail(
                f"Alpaca refused the {self._credentials.feed} feed ({message}): sip needs a "
                "market-data plan; --feed iex is free",
                EXIT_USAGE,
            )
        else:  # e.g. the connection limit: alpaca-py tries again with backoff
            self._feed.output.warning(f"Alpaca's data stream: {message}; trying again")

    def closed(self, stopping: bool) -> None:
        if stopping or not self._subscribed_once or self._gap:
            return
        self._gap = True
        self._feed.stats.data_reconnects += 1
        self._feed.output.warning(
            "Alpaca's data stream dropped; alpaca-py reconnects, and the bars missed "
            "meanwhile are then fetched from Alpaca's REST API"
        )

    async def subscribed(self, msg: dict[str, Any]) -> None:
        bars = ", ".join(str(s) for s in msg.get("bars") or ())
        if not self._subscribed_once:
            self._subscribed_once = True
            self._since = _minute(datetime.now(UTC))
            self._feed.output.info(f"subscribed to Alpaca's {self._credentials.feed} bars: {bars}")
            return
        if not self._gap:
            self._feed.output.info(f"subscribed to Alpaca's bars: {bars}")
            return
        self._gap = False
        self._feed.output.info(f"Alpaca's data stream is back ({bars}); fetching missed bars")
        await self._backfill()

    async def _backfill(self) -> None:
        """The bars the stream missed, before this minute's (which come live).

        Connected, the stream delivers a minute's bars of every symbol together, soon
        after the minute: so bars that started more than a minute before the newest
        one received had all arrived, and what may be missing starts after each
        symbol's last bar and no earlier than a minute before that newest one. The
        look-back is the outage plus a minute, not the time since a quiet symbol's
        last bar."""
        symbols = sorted(self.symbols())
        assert self._since is not None
        newest = max(self._last_start.values(), default=self._since)
        settled = newest - timedelta(minutes=1)
        since = min(max(self._last_start.get(s, settled), settled) for s in symbols)
        until = _minute(datetime.now(UTC))  # this minute's bars are still to come, live
        if since >= until:
            return
        try:
            if self._rest is None:
                self._rest = data_client(self._credentials)
            bars = await asyncio.to_thread(
                fetch_bars,
                self._rest,
                symbols,
                self._minute,
                since,
                until,
                feed=self._credentials.data_feed,
            )
        except AlpacaError as error:
            self._feed.output.warning(
                f"could not fetch the bars missed since {format_stamp(since)}: {error}; "
                "they are not forwarded"
            )
            return
        fetched = 0
        for bar in bars:
            if await self._admit(bar):
                fetched += 1
        self._feed.stats.backfilled += fetched
        self._feed.output.info(f"fetched {fetched} missed bars from Alpaca's REST API")

    async def _on_bar(self, bar: AlpacaModelBar) -> None:
        await self._admit(bar)

    async def _admit(self, bar: AlpacaModelBar) -> bool:
        """Forward `bar` unless its symbol already had one as new; True if forwarded."""
        stats = self._feed.stats
        stats.received += 1
        last = self._last_start.get(bar.symbol)
        if last is not None and bar.timestamp <= last:
            stats.repeated += 1
            return False
        self._last_start[bar.symbol] = bar.timestamp
        event = self._to_event(bar)
        warned = False
        while not self._feed.window_put(event):
            if self._feed.stopping():
                return False
            if not warned:
                warned = True
                self._feed.output.warning(
                    "the most bars are waiting for the trading service: Alpaca's stream now "
                    "waits too (it may drop the connection; missed bars are fetched again)"
                )
            await asyncio.sleep(_POLL_SECONDS)
        return True


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class _AlpacaLog(logging.Handler):
    """alpaca-py's warnings and errors as one-line feed warnings (no tracebacks)."""

    def __init__(self, output: FeedOutput, stopping: Callable[[], bool]) -> None:
        super().__init__(logging.WARNING)
        self._output = output
        self._stopping = stopping

    def emit(self, record: logging.LogRecord) -> None:
        if not self._stopping():  # closing the socket to stop makes the SDK complain
            self._output.warning(f"alpaca-py: {record.getMessage()}")


# --- the feed -------------------------------------------------------------------------


class AlpacaFeed:
    """Forwards Alpaca's bars to the service at `target` until stopped (see the module doc).

    `run()` blocks; `stop()` (from any thread) ends it after the current stream's
    summary. `run()` raises FeedError when the feed cannot go on (no symbols, Alpaca
    refused the keys) and grpc.RpcError when the service refuses it (a bad token).
    """

    def __init__(
        self,
        target: str,
        token: str,
        credentials: AlpacaCredentials,
        settings: FeedSettings = FeedSettings(),
        output: FeedOutput | None = None,
        *,
        tls: ClientTLS | None = None,
    ) -> None:
        self.target = target
        self.tls = tls  # None: plaintext
        self.settings = settings
        self.credentials = credentials
        self.output = output or FeedOutput()
        self.stats = FeedStats()
        self.feed_id = _check_feed_id(settings.feed_id or default_feed_id(credentials.feed))
        self._token = token
        # Numbers only grow, also across runs: this run starts at its start time in µs.
        self._window = SendWindow(self.feed_id, time.time_ns() // 1000, settings.max_held)
        self._stopping = threading.Event()
        self._failure: FeedError | None = None
        self._source: _AlpacaSource | None = None
        self._client: TradingClient | None = None
        self._refresh_due = math.inf
        self._failing = False  # the last stream failed: say when the service answers again

    # --- control

    def stop(self) -> None:
        self._stopping.set()

    def stopping(self) -> bool:
        return self._stopping.is_set()

    def fail(self, message: str, status: int = EXIT_FAILED) -> None:
        """Stop with an error (from any thread); run() raises it."""
        if self._failure is None:
            self._failure = FeedError(message, status)
        self._stopping.set()

    def window_put(self, event: market_pb2.MarketEvent) -> bool:
        return self._window.put(event)

    def window_counts(self) -> tuple[int, int]:
        return self._window.counts()

    # --- running

    def run(self) -> None:
        log = logging.getLogger("alpaca")
        handler = _AlpacaLog(self.output, self.stopping)
        propagate = log.propagate
        log.addHandler(handler)
        log.propagate = False
        channel = open_channel(
            self.target,
            self.tls,
            options=[
                # gRPC's own reconnect backoff grows to 120 s; keep it within ours.
                ("grpc.initial_reconnect_backoff_ms", int(self.settings.initial_backoff * 1000)),
                ("grpc.max_reconnect_backoff_ms", int(self.settings.max_backoff * 1000)),
            ],
        )
        try:
            self._client = TradingClient(
                self.target, self._token, timeout=self.settings.call_timeout, channel=channel
            )
            symbols = self._symbols()
            if symbols is None:
                return  # stopped while waiting for the service
            self._source = _AlpacaSource(self, self.credentials, symbols)
            self.output.info(
                f"feed {self.feed_id}: Alpaca {self.credentials.feed} 1Min bars of "
                f"{', '.join(symbols)} -> the trading service at {self.target}"
            )
            self._source.start()
            self._forward()
        finally:
            self._stopping.set()
            if self._source is not None:
                self._source.stop()
            channel.close()
            log.removeHandler(handler)
            log.propagate = propagate
        if self._failure is not None:
            raise self._failure
        waiting, unconfirmed = self._window.counts()
        if unconfirmed or waiting:
            self.output.warning(
                f"stopped with {unconfirmed} ticks sent but not confirmed and {waiting} not "
                f"sent; a new run does not resend them"
            )

    def _symbols(self) -> tuple[str, ...] | None:
        if self.settings.symbols:
            return self.settings.symbols
        delay = self.settings.initial_backoff
        while not self._stopping.is_set():
            try:
                symbols = self._strategy_symbols()
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                self._wait_after(error, delay)
                delay = min(delay * 2, self.settings.max_backoff)
                continue
            if not symbols:
                raise FeedError(
                    "no active strategy trades any symbol: activate one "
                    "(tradectl strategies activate NAME) or pass --symbols",
                    EXIT_USAGE,
                )
            self._refresh_due = time.monotonic() + self.settings.refresh_seconds
            return tuple(sorted(symbols))
        return None

    def _strategy_symbols(self) -> set[str]:
        assert self._client is not None
        strategies = self._client.list_strategies().strategies
        return {symbol for s in strategies if s.active for symbol in s.symbols}

    def _refresh_symbols(self) -> None:
        if self.settings.symbols or time.monotonic() < self._refresh_due:
            return
        self._refresh_due = time.monotonic() + self.settings.refresh_seconds
        try:
            symbols = self._strategy_symbols()
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE:
                raise
            return  # the stream about to start finds the service away, and waits
        assert self._source is not None
        self._source.add(symbols)

    def _forward(self) -> None:
        settings = self.settings
        delay = settings.initial_backoff
        while not self._stopping.is_set():
            self._refresh_symbols()
            session, resend = self._window.begin()
            try:
                assert self._client is not None
                summary = self._client.stream_market_data(
                    self._requests(session, resend), feed_id=self.feed_id
                )
            except grpc.RpcError as error:
                self._window.end()
                if self._failure is not None:
                    return
                if self._left_out_refused(error):
                    continue
                if error.code() not in RETRYABLE:
                    raise
                self.stats.service_failures += 1
                self._failing = True
                self._confirm_from(error)
                self._wait_after(error, delay)
                delay = min(delay * 2, settings.max_backoff)
                continue
            self._window.end()
            if self._failing:
                self._failing = False
                self.output.info(
                    f"the trading service at {self.target} answers again; what it had not "
                    "confirmed was sent again"
                )
            delay = settings.initial_backoff
            self._confirm(summary.last_sequence, summary.duplicates_dropped)
            if settings.count and self.stats.confirmed >= settings.count:
                return
            if not self._source_alive():
                return

    def _source_alive(self) -> bool:
        if self._source is not None and not self._source.alive() and not self._stopping.is_set():
            self.fail("Alpaca's data stream ended")
        return self._failure is None

    def _requests(
        self, session: int, resend: list[pb.StreamMarketDataRequest]
    ) -> Iterator[pb.StreamMarketDataRequest]:
        """One stream's messages: the unconfirmed ones again, then new ones as bars
        arrive, until it is time to read the service's summary."""
        settings = self.settings
        yield from resend
        sent = len(resend)
        confirm_at = time.monotonic() + settings.confirm_seconds if resend else math.inf
        # An idle stream is ended now and then too: a new one finds out whether the
        # service is still there.
        idle_until = time.monotonic() + settings.refresh_seconds
        while True:
            now = time.monotonic()
            if (
                self._stopping.is_set()
                or now >= confirm_at
                or (not sent and now >= idle_until)
                or sent >= settings.confirm_messages
                or now >= self._refresh_due
                or (sent and settings.count and self._sent_enough())
                or not self._window.current(session)
                or not self._source_alive()
            ):
                return
            wait = min(_POLL_SECONDS, confirm_at - now, self._refresh_due - now, idle_until - now)
            request = self._window.take(session, settings.max_batch, max(wait, 0.0))
            if request is None:
                continue
            for event in request.events:
                self.output.bar(event, request.sequence)
            self.stats.sent += len(request.events)
            sent += 1
            if confirm_at == math.inf:
                confirm_at = time.monotonic() + settings.confirm_seconds
            yield request

    def _sent_enough(self) -> bool:
        """With a `count`: the ticks confirmed and those awaiting confirmation make it."""
        return self.stats.confirmed + self._window.counts()[1] >= self.settings.count

    def _confirm(self, last_sequence: int, duplicates: int = 0) -> None:
        """The service's word on the feed: it accepted everything up to `last_sequence`
        (and dropped `duplicates` messages it already had)."""
        if not last_sequence:
            return  # a stream that sent nothing names no feed
        ticks, renumbered = self._window.confirm(last_sequence)
        if renumbered:
            self.output.warning(
                f"the service's last message of feed {self.feed_id} is #{last_sequence}, above "
                "this run's numbers (another process uses this feed id, or the clock went "
                "back): what it dropped is numbered on from there and sent again"
            )
            return
        self.stats.confirmed += ticks
        if duplicates:
            self.stats.duplicates_dropped += duplicates
            self.output.info(f"the service already had {duplicates} of the messages sent again")

    def _confirm_from(self, error: grpc.RpcError) -> None:
        info = error_info(error)
        if info is None:
            return  # no answer at all (the connection went): nothing is confirmed
        last = info.metadata.get("last_sequence", "")
        dropped = info.metadata.get("duplicates_dropped", "0")
        if last.isdigit():
            self._confirm(int(last), int(dropped) if dropped.isdigit() else 0)

    def _left_out_refused(self, error: grpc.RpcError) -> bool:
        """A tick the service refused (INVALID_ARGUMENT, MARKET_DATA_MESSAGE_REFUSED):
        confirm what came before it, leave it out, and go on at once."""
        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
            return False
        info = error_info(error)
        if info is None or info.reason != REFUSED_REASON:
            return False
        self._confirm_from(error)
        index = info.metadata.get("event_index", "")
        refused = self._window.drop_refused(int(index) if index.isdigit() else None)
        if refused is None:
            return False
        self.stats.refused += len(refused)
        what = ", ".join(
            f"{e.symbol} {format_stamp(e.timestamp.ToDatetime(tzinfo=UTC))}" for e in refused
        )
        self.output.warning(f"the service refused {what}; left out: {error.details()}")
        return True

    def _wait_after(self, error: grpc.RpcError, delay: float) -> None:
        self.stats.backoffs.append(delay)
        waiting, unconfirmed = self._window.counts()
        held = f"; {waiting + unconfirmed} ticks held" if waiting + unconfirmed else ""
        self.output.warning(
            f"the trading service at {self.target} answered {error.code().name}: "
            f"{error.details() or ''}{held}; trying again in {delay:g}s"
        )
        self._stopping.wait(delay)


# --- the command line ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`tradectl feed alpaca`'s flags."""
    defaults = FeedSettings()
    parser.add_argument(
        "--symbols",
        type=symbol_list,
        default=(),
        help="comma-separated, e.g. SPY,QQQ (default: the symbols of the active strategies, "
        "asked of the service, and asked again every minute)",
    )
    parser.add_argument(
        "--feed-id",
        default="",
        help="the feed's name at the service, which drops a message of it already accepted "
        "(default alpaca-bars-<feed>; one process per feed id)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=0,
        help="stop once this many bars are confirmed by the service (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=defaults.max_backoff,
        help="most seconds between tries to reach the service (default %(default)s)",
    )
    parser.add_argument(
        "--confirm-seconds",
        type=float,
        default=defaults.confirm_seconds,
        help="a stream's summary is read this long after its first unconfirmed bar "
        "(default %(default)s)",
    )
    add_credential_arguments(parser, stream=True)


def run_command(client: object, args: argparse.Namespace, printer: object) -> int:
    """`tradectl feed alpaca` (tradectl's own `client` is not used: the feed keeps a
    channel of its own whose reconnect backoff follows the feed's)."""
    try:
        credentials = credentials_from(args)
        settings = FeedSettings(
            symbols=tuple(args.symbols),
            feed_id=args.feed_id,
            max_backoff=args.max_backoff,
            initial_backoff=min(FeedSettings.initial_backoff, args.max_backoff),
            confirm_seconds=args.confirm_seconds,
            count=args.count,
            call_timeout=args.timeout,
        )
        tls = resolve_tls(args.tls, args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
        feed = AlpacaFeed(
            args.target, args.token, credentials, settings, FeedOutput(as_json=args.json), tls=tls
        )
    except (ValueError, FeedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status if isinstance(error, FeedError) else EXIT_USAGE
    try:
        feed.run()
    except FeedError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status
    return EXIT_OK
