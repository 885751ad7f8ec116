"""A fake of Alpaca's Trading API on loopback ports, for the real alpaca-py 0.44 clients:

    with FakeAlpaca(cash="100000") as fake:
        fake.set_price("AAPL", "187.25")
        client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)
        stream = TradingStream(fake.key_id, fake.secret_key, url_override=fake.stream_url)
        fake.fail_next("POST /v2/orders", after_accept(504))   # created, then a gateway error
        ...
        fake.fill("cid-1", "3", "187.30")                       # the broker executes 3 shares

REST (`alpaca_http`): POST/GET/DELETE /v2/orders, GET/PATCH/DELETE /v2/orders/{id},
GET /v2/orders:by_client_order_id, GET /v2/account, GET /v2/positions[/{symbol}],
GET /v2/assets/{symbol}, GET /v2/clock; bodies in Alpaca's v2 shapes, numbers as strings.
The account model, its validation and the lifecycle live in `alpaca_broker`; the
trade_updates websocket in `alpaca_stream`; faults in `alpaca_faults`.

Lifecycle: a POST answers the snapshot with status "accepted"; "new" follows, and with
`auto_fill` a marketable market/limit order (DAY/GTC/IOC/FOK; OPG/CLS wait for an auction)
fills completely in one execution at `set_price`'s price. Those events are queued to the
stream before the HTTP answer is written (`set_activation_delay` moves them after it). A
DELETE answers 204, sends "pending_cancel", and "canceled" `cancel_delay` seconds later
(`auto_cancel = False`: the order stays pending_cancel until `cancel()`). client_order_ids
are unique forever. The account is a cash account (multiplier 1): buying power is cash less
what open buy orders hold; short selling is allowed unless `shorting = False`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.fakes.alpaca_broker import Broker
from tests.fakes.alpaca_faults import (
    Fault,
    FaultKind,
    after_accept,
    drop,
    hang,
    rate_limited,
    refuse,
    server_error,
)
from tests.fakes.alpaca_http import ROUTES, RecordedRequest, RestFront, serve
from tests.fakes.alpaca_stream import TradeUpdatesServer
from tests.fakes.alpaca_wire import Clock

__all__ = [
    "ROUTES",
    "FakeAlpaca",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "after_accept",
    "drop",
    "hang",
    "rate_limited",
    "refuse",
    "server_error",
]


class FakeAlpaca:
    key_id: str = "PKTEST"
    secret_key: str = "SECRETTEST"
    account_number: str = "PA1TESTFAKE"

    def __init__(self, cash: str = "100000", *, auto_fill: bool = True) -> None:
        self._stream = TradeUpdatesServer(self.key_id, self.secret_key)
        self._broker = Broker(Decimal(cash), self._stream.publish, Clock(), self.account_number)
        self._broker.auto_fill = auto_fill
        self._front = RestFront(self._broker, self.key_id, self.secret_key)
        self._server = serve(self._front)
        # A short poll interval, so that close() (which waits for the next poll) is quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._closed = False

    # --- addresses ---

    @property
    def base_url(self) -> str:
        """For `TradingClient(url_override=...)`: the SDK appends /v2/..."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def stream_url(self) -> str:
        """For `TradingStream(url_override=...)`."""
        return self._stream.url

    # --- behaviour switches ---

    @property
    def auto_fill(self) -> bool:
        """True: a marketable order fills completely at once, in one execution after "new".
        False: every order rests until the test fills it."""
        return self._broker.auto_fill

    @auto_fill.setter
    def auto_fill(self, value: bool) -> None:
        with self._broker.lock:
            self._broker.auto_fill = value

    @property
    def auto_cancel(self) -> bool:
        """True: a cancel request completes `cancel_delay` s after "pending_cancel".
        False: it stays pending_cancel until `cancel()` (or a fill wins the race)."""
        return self._broker.auto_cancel

    @auto_cancel.setter
    def auto_cancel(self, value: bool) -> None:
        with self._broker.lock:
            self._broker.auto_cancel = value

    @property
    def cancel_delay(self) -> float:
        return self._broker.cancel_delay

    @cancel_delay.setter
    def cancel_delay(self, seconds: float) -> None:
        with self._broker.lock:
            self._broker.cancel_delay = seconds

    @property
    def shorting(self) -> bool:
        """False: selling more than the position (less open sells) is refused with 403
        40310000 "insufficient qty available for order (requested: x, available: y)"."""
        return self._broker.shorting

    @shorting.setter
    def shorting(self, value: bool) -> None:
        with self._broker.lock:
            self._broker.shorting = value

    @property
    def market_open(self) -> bool:
        """What GET /v2/clock says (it changes nothing else)."""
        return self._broker.market_open

    @market_open.setter
    def market_open(self, value: bool) -> None:
        with self._broker.lock:
            self._broker.market_open = value

    @property
    def binary_frames(self) -> bool:
        """True (as Alpaca's paper stream): trade_updates frames are binary JSON; else text."""
        return self._stream.binary_frames

    @binary_frames.setter
    def binary_frames(self, value: bool) -> None:
        self._stream.binary_frames = value

    def set_activation_delay(self, seconds: float) -> None:
        """Delay "new" (and the automatic fill) this long after a POST is accepted, so that
        they come after the HTTP answer. Acting on the order meanwhile activates it first."""
        with self._broker.lock:
            self._broker.activation_delay = seconds

    # --- market and account ---

    def set_price(self, symbol: str, price: str) -> None:
        """The price market orders (and marketable limits) fill at, and positions are marked at.
        Changing it does not fill resting orders."""
        with self._broker.lock:
            self._broker.prices[symbol] = Decimal(price)

    def set_cash(self, cash: str) -> None:
        with self._broker.lock:
            self._broker.cash = Decimal(cash)

    def set_position(self, symbol: str, qty: str, avg_entry_price: str) -> None:
        """Seed (or, with qty "0", remove) a position; cash is not touched."""
        self._broker.set_position(symbol, Decimal(qty), Decimal(avg_entry_price))

    def set_account(self, **fields: Any) -> None:
        """Override fields of GET /v2/account, e.g. `pattern_day_trader=True, daytrade_count=3,
        trading_blocked=True` (they change only what the account says, not what it allows)."""
        with self._broker.lock:
            self._broker.account_overrides.update(fields)

    # --- state ---

    def orders(self) -> list[dict[str, Any]]:
        """Every order the fake holds, in the REST JSON shape, oldest first."""
        with self._broker.lock:
            return [o.to_json() for o in self._broker.orders.values()]

    def orders_for(self, client_order_id: str) -> list[dict[str, Any]]:
        return [o for o in self.orders() if o["client_order_id"] == client_order_id]

    def order(self, client_order_id: str) -> dict[str, Any]:
        """The order with this client_order_id (KeyError if there is none)."""
        with self._broker.lock:
            return self._broker.order_by_client_id(client_order_id).to_json()

    def positions(self) -> dict[str, dict[str, Any]]:
        """GET /v2/positions by symbol."""
        return {p["symbol"]: p for p in self._broker.all_positions().body}

    def account(self) -> dict[str, Any]:
        """GET /v2/account."""
        body: dict[str, Any] = self._broker.account().body
        return body

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every REST request received, refused ones included, in arrival order."""
        with self._front.lock:
            return list(self._front.requests)

    def submissions(self) -> list[RecordedRequest]:
        """The POST /v2/orders requests received (including refused ones)."""
        return [r for r in self.requests if r.route == "POST /v2/orders"]

    def trade_updates(self) -> list[dict[str, Any]]:
        """The `data` of every trade_updates message sent (or that would have been sent, had a
        stream been listening), oldest first; `repeat_last_event` copies are not included."""
        return self._broker.emitted()

    @property
    def stream_authentications(self) -> int:
        """Successful authenticate + listen(trade_updates) exchanges; a reconnect adds one."""
        return self._stream.authentications

    @property
    def stream_auth_failures(self) -> int:
        return self._stream.auth_failures

    @property
    def refused_handshakes(self) -> int:
        """Websocket handshakes refused by `refuse_streams`."""
        return self._stream.refused_handshakes

    @property
    def streams_listening(self) -> int:
        """Connections listening to trade_updates right now."""
        return self._stream.listening

    # --- what the broker does to orders (each sends the matching trade_updates event) ---

    def fill(self, client_order_id: str, qty: str, price: str) -> str:
        """One execution of `qty` at `price`: "partial_fill", or "fill" once the cumulative
        quantity is complete. Updates filled_qty (cumulative), filled_avg_price (the exact
        Decimal average), the position and cash. Returns the execution_id."""
        return self._broker.fill(client_order_id, Decimal(qty), Decimal(price))

    def cancel(self, client_order_id: str) -> None:
        """A broker-side cancel (or the completion of a pending one): "canceled"."""
        self._broker.cancel(client_order_id)

    def expire(self, client_order_id: str) -> None:
        """ "expired", as a DAY order at the close."""
        self._broker.expire(client_order_id)

    def reject(self, client_order_id: str, reason: str = "rejected by the fake broker") -> None:
        """An asynchronous rejection: "rejected" (the event carries this fake's own `reason`)."""
        self._broker.reject(client_order_id, reason)

    def emit(
        self, client_order_id: str, event: str, *, status: str | None = None, **extra: str
    ) -> None:
        """Send any event string for the order (done_for_day, calculated, stopped, suspended,
        order_cancel_rejected, order_replace_rejected, or an unheard-of one), setting the
        order's status first when `status` is given; `extra` goes into the event's data."""
        self._broker.emit(client_order_id, event, status, dict(extra))

    def repeat_last_event(self, times: int = 1) -> None:
        """Send the last trade_updates message again, byte for byte (duplicated delivery)."""
        self._stream.repeat_last(times)

    def place_external(
        self,
        symbol: str,
        side: str,
        qty: str,
        *,
        type: str = "limit",
        limit_price: str | None = "1.00",
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        """An order placed outside the service (a person in the dashboard): created "new" and
        announced, never filled automatically. Returns its JSON."""
        return self._broker.place_external(
            symbol,
            side,
            Decimal(qty),
            type,
            None if limit_price is None else Decimal(limit_price),
            client_order_id,
        )

    # --- faults ---

    def fail_next(self, route: str, *faults: Fault) -> None:
        """Script faults for a route ("POST /v2/orders", "GET /v2/orders:by_client_order_id",
        "DELETE /v2/orders/{id}", ...; see ROUTES): each later request to it takes one."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known: {sorted(ROUTES)}")
        with self._front.lock:
            self._front.faults[route].extend(faults)

    def set_latency(self, seconds: float, route: str | None = None) -> None:
        """Delay every answer (of that route, or of all routes) by `seconds`, after the request
        has taken effect. 0 removes it."""
        if route is not None and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}")
        with self._front.lock:
            self._front.latency[route] = seconds

    def set_down(self, down: bool) -> None:
        """While down, every REST request gets 503 {"code": 50300000, ...} (the stream is
        not affected: see drop_streams/refuse_streams)."""
        with self._front.lock:
            self._front.down = down

    def drop_streams(self) -> None:
        """Abort every websocket connection (no close frame); alpaca-py then reconnects,
        and nothing sent meanwhile is replayed."""
        self._stream.drop_all()

    def refuse_streams(self, refuse: bool, status: int = 429) -> None:
        """While True, websocket handshakes are refused with this HTTP status; events that
        happen meanwhile are never delivered later (a gap, as with real Alpaca)."""
        self._stream.refuse(status if refuse else None)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll `predicate` until it holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.01)

    # --- lifetime ---

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._front.closing.set()  # wakes hung and slow answers
        self._broker.close()
        self._server.shutdown()
        self._server.server_close()
        self._stream.close()

    def __enter__(self) -> FakeAlpaca:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
