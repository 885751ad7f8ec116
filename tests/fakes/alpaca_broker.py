"""The fake Alpaca's account: orders, positions, cash, and what the broker does to them.

Everything here runs under one re-entrant lock, and every change that Alpaca announces on
trade_updates is published (through the `publish` callback) while the lock is held, so the
stream shows changes in exactly the order they happened. Quantities and prices are `Decimal`
inside and strings on the wire.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.fakes.alpaca_orders import (
    NOT_CANCELABLE,
    ZERO,
    Order,
    Position,
    asset_json,
    position_json,
)
from tests.fakes.alpaca_requests import OrderTicket, decimal_field, parse_order, parse_orders_query
from tests.fakes.alpaca_wire import (
    Clock,
    Refusal,
    Reply,
    fmt,
    invalid,
    not_found,
    rfc3339,
    unprocessable,
)

AUCTION_TIME_IN_FORCE = frozenset({"opg", "cls"})  # never auto-filled: they wait for an auction
ACCOUNT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-alpaca/account"))
ACCOUNT_CREATED = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)

Publish = Callable[[dict[str, Any]], None]


class Broker:
    """The account's state and its rules. Thread-safe: every public method takes the lock."""

    def __init__(self, cash: Decimal, publish: Publish, clock: Clock, account_number: str) -> None:
        self.lock = threading.RLock()
        self.account_number = account_number
        self._publish = publish
        self._clock = clock
        self.cash = cash
        self.prices: dict[str, Decimal] = {}
        self.orders: dict[str, Order] = {}  # by id, oldest first
        self.by_client_id: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        self.account_overrides: dict[str, Any] = {}
        self.auto_fill = True
        self.auto_cancel = True
        self.cancel_delay = 0.05
        self.activation_delay = 0.0
        self.shorting = True
        self.market_open = True
        self._timers: list[threading.Timer] = []
        self._closed = False
        self._emitted: list[dict[str, Any]] = []

    # --- REST: orders ---

    def submit(self, body: Any) -> Reply:
        """POST /v2/orders: validate as Alpaca does, create the order, answer its snapshot with
        status "accepted", then (at once, or after `activation_delay`) "new" and an automatic
        fill. Events are queued to the stream before the HTTP answer is written."""
        with self.lock:
            order = self._new_order(parse_order(body))
            self.orders[order.id] = order
            self.by_client_id[order.client_order_id] = order
            snapshot = order.to_json()
            if self.activation_delay > 0:
                self._later(self.activation_delay, lambda: self._activate(order))
            else:
                self._activate(order)
            return Reply(200, snapshot)

    def list_orders(self, query: Mapping[str, str]) -> Reply:
        wanted = parse_orders_query(query)
        with self.lock:
            chosen = [
                o
                for o in self.orders.values()
                if (wanted.status == "all" or (wanted.status == "open") == o.open)
                and (wanted.after is None or o.submitted_at > wanted.after)
                and (wanted.until is None or o.submitted_at < wanted.until)
                and (not wanted.symbols or o.symbol in wanted.symbols)
                and (wanted.side is None or o.side == wanted.side)
            ]
            if wanted.direction == "desc":
                chosen.reverse()
            return Reply(200, [o.to_json() for o in chosen[: wanted.limit]])

    def get_order(self, order_id: str) -> Reply:
        with self.lock:
            return Reply(200, self._order_by_id(order_id).to_json())

    def get_order_by_client_id(self, query: Mapping[str, str]) -> Reply:
        client_order_id = query.get("client_order_id")
        if not client_order_id:
            raise invalid("client_order_id is missing")
        with self.lock:
            order = self.by_client_id.get(client_order_id)
            if order is None:
                raise not_found("order not found")
            return Reply(200, order.to_json())

    def request_cancel(self, order_id: str) -> Reply:
        """DELETE /v2/orders/{id}: 204 at once; the order goes pending_cancel, and canceled
        shortly after (or when the test calls `cancel`, if `auto_cancel` is off)."""
        with self.lock:
            order = self._order_by_id(order_id)
            self._start_cancel(order)
            return Reply(204)

    def request_cancel_all(self) -> Reply:
        with self.lock:
            answers = []
            for order in list(self.orders.values()):
                if order.status in NOT_CANCELABLE:
                    continue
                self._start_cancel(order)
                answers.append({"id": order.id, "status": 200, "body": order.to_json()})
            return Reply(207, answers)

    def replace(self, order_id: str, body: Any) -> Reply:
        """PATCH /v2/orders/{id}: a new order replaces the old one (new id, new client id);
        the old one is announced "replaced", the new one "new"."""
        if not isinstance(body, dict):
            raise Refusal(400, 40010000, "request body format is invalid")
        with self.lock:
            old = self._order_by_id(order_id)
            self._activate(old)
            if old.status in NOT_CANCELABLE:
                raise unprocessable(f'order is already in "{old.status}" state')
            qty = decimal_field(body, "qty") or old.qty
            limit_price = decimal_field(body, "limit_price") or old.limit_price
            new_body: dict[str, Any] = {
                "symbol": old.symbol,
                "side": old.side,
                "type": old.type,
                "time_in_force": body.get("time_in_force", old.time_in_force),
                "qty": qty,
                "notional": old.notional if qty is None else None,
                "limit_price": limit_price,
                "extended_hours": old.extended_hours,
                "client_order_id": body.get("client_order_id"),
            }
            new = self._new_order(parse_order(new_body), credit=self._cost(old))
            new.replaces = old.id
            now = self._clock.now()
            old.status, old.replaced_at, old.replaced_by, old.updated_at = (
                "replaced",
                now,
                new.id,
                now,
            )
            self.orders[new.id] = new
            self.by_client_id[new.client_order_id] = new
            snapshot = new.to_json()
            self._announce(old, "replaced")
            self._activate(new)
            return Reply(200, snapshot)

    # --- REST: account ---

    def account(self) -> Reply:
        with self.lock:
            long_value = sum(
                (p.qty * self._mark(p) for p in self.positions.values() if p.qty > 0), ZERO
            )
            short_value = sum(
                (p.qty * self._mark(p) for p in self.positions.values() if p.qty < 0), ZERO
            )
            equity = self.cash + long_value + short_value
            buying_power = fmt(self.buying_power())
            body: dict[str, Any] = {
                "id": ACCOUNT_ID,
                "admin_configurations": {},
                "user_configurations": None,
                "account_number": self.account_number,
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "options_approved_level": 0,
                "options_trading_level": 0,
                "currency": "USD",
                "buying_power": buying_power,
                "regt_buying_power": buying_power,
                "daytrading_buying_power": "0",
                "effective_buying_power": buying_power,
                "non_marginable_buying_power": buying_power,
                "options_buying_power": buying_power,
                "bod_dtbp": "0",
                "cash": fmt(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": fmt(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": rfc3339(ACCOUNT_CREATED),
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": self.shorting,
                "equity": fmt(equity),
                "last_equity": fmt(equity),
                "long_market_value": fmt(long_value),
                "short_market_value": fmt(short_value),
                "position_market_value": fmt(long_value - short_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
                "balance_asof": rfc3339(self._clock.now())[:10],
                "crypto_tier": 1,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
            }
            body.update(self.account_overrides)
            return Reply(200, body)

    def all_positions(self) -> Reply:
        with self.lock:
            return Reply(200, [self._position_json(p) for p in self.positions.values()])

    def position(self, symbol: str) -> Reply:
        with self.lock:
            position = self.positions.get(symbol)
            if position is None:
                raise not_found("position does not exist")
            return Reply(200, self._position_json(position))

    def asset(self, symbol: str) -> Reply:
        return Reply(200, asset_json(symbol))

    def clock(self) -> Reply:
        now = self._clock.now()
        opens = now + timedelta(hours=17 if self.market_open else 1)
        closes = now + timedelta(hours=1 if self.market_open else 8)
        return Reply(
            200,
            {
                "timestamp": now.isoformat(),
                "is_open": self.market_open,
                "next_open": opens.isoformat(timespec="seconds"),
                "next_close": closes.isoformat(timespec="seconds"),
            },
        )

    # --- what the broker does (control API) ---

    def fill(self, client_order_id: str, qty: Decimal, price: Decimal) -> str:
        with self.lock:
            order = self.order_by_client_id(client_order_id)
            self._activate(order)
            if not order.open:
                raise ValueError(f"order {client_order_id} is {order.status}: it cannot fill")
            remaining = order.remaining_qty
            if qty <= 0 or (remaining is not None and qty > remaining):
                raise ValueError(f"cannot fill {qty} of {client_order_id}: {remaining} remain")
            return self._execute(order, qty, price)

    def cancel(self, client_order_id: str) -> None:
        with self.lock:
            order = self.order_by_client_id(client_order_id)
            self._activate(order)
            self._finish(order, "canceled")

    def expire(self, client_order_id: str) -> None:
        with self.lock:
            order = self.order_by_client_id(client_order_id)
            self._activate(order)
            self._finish(order, "expired")

    def reject(self, client_order_id: str, reason: str) -> None:
        with self.lock:
            order = self.order_by_client_id(client_order_id)
            if not order.open:
                raise ValueError(f"order {client_order_id} is {order.status}: it cannot reject")
            order.awaiting_activation = False  # an asynchronous rejection replaces "new"
            now = self._clock.now()
            order.status, order.failed_at, order.updated_at = "rejected", now, now
            self._announce(order, "rejected", reason=reason)

    def emit(
        self, client_order_id: str, event: str, status: str | None, extra: dict[str, Any]
    ) -> None:
        with self.lock:
            order = self.order_by_client_id(client_order_id)
            if status is not None:
                order.awaiting_activation = False
                order.status, order.updated_at = status, self._clock.now()
            self._announce(order, event, **extra)

    def place_external(
        self,
        symbol: str,
        side: str,
        qty: Decimal,
        order_type: str,
        limit_price: Decimal | None,
        client_order_id: str | None,
    ) -> dict[str, Any]:
        """An order someone placed outside the service: it rests ("new"), never auto-filled."""
        with self.lock:
            client_order_id = client_order_id or str(uuid.uuid4())
            if client_order_id in self.by_client_id:
                raise ValueError(f"client_order_id {client_order_id} is taken")
            order = Order(
                id=str(uuid.uuid4()),
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                type=order_type,
                time_in_force="day" if order_type == "market" else "gtc",
                qty=qty,
                notional=None,
                limit_price=limit_price if order_type == "limit" else None,
                extended_hours=False,
                position_intent=self._intent(symbol, side),
                submitted_at=self._clock.now(),
            )
            self.orders[order.id] = order
            self.by_client_id[order.client_order_id] = order
            order.awaiting_activation = False
            order.status, order.updated_at = "new", self._clock.now()
            self._announce(order, "new")
            return order.to_json()

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        with self.lock:
            if qty == 0:
                self.positions.pop(symbol, None)
            else:
                self.positions[symbol] = Position(symbol, qty, avg_entry_price)

    def emitted(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._emitted)

    def buying_power(self) -> Decimal:
        """Cash less what open buy orders hold (a cash account: multiplier 1)."""
        with self.lock:
            held = sum((self._cost(o) for o in self.orders.values() if o.open), ZERO)
            return max(ZERO, self.cash - held)

    def close(self) -> None:
        with self.lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    # --- inside (lock held) ---

    def _new_order(self, ticket: OrderTicket, credit: Decimal = ZERO) -> Order:
        """The order a well-formed ticket asks for, or the Refusal this account gives it.
        `credit`: buying power that an order being replaced holds and will release."""
        client_order_id = ticket.client_order_id or str(uuid.uuid4())
        if client_order_id in self.by_client_id:
            raise invalid("client_order_id must be unique")
        order = Order(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            symbol=ticket.symbol,
            side=ticket.side,
            type=ticket.type,
            time_in_force=ticket.time_in_force,
            qty=ticket.qty,
            notional=ticket.notional,
            limit_price=ticket.limit_price,
            extended_hours=ticket.extended_hours,
            position_intent=ticket.position_intent or self._intent(ticket.symbol, ticket.side),
            submitted_at=self._clock.now(),
        )
        if order.side == "sell" and not self.shorting and order.qty is not None:
            self._check_available(order.symbol, order.qty)
        if order.side == "buy":
            cost = self._cost(order)
            power = self.buying_power() + credit
            if cost > power:
                raise Refusal(
                    403,
                    40310000,
                    "insufficient buying power",
                    buying_power=fmt(power),
                    cost_basis=fmt(cost),
                )
        return order

    def _check_available(self, symbol: str, qty: Decimal) -> None:
        position = self.positions.get(symbol)
        existing = position.qty if position is not None and position.qty > 0 else ZERO
        held = self._held_for_sale(symbol)
        available = max(ZERO, existing - held)
        if qty > available:
            raise Refusal(
                403,
                40310000,
                f"insufficient qty available for order (requested: {fmt(qty)}, "
                f"available: {fmt(available)})",
                available=fmt(available),
                existing_qty=fmt(existing),
                held_for_orders=fmt(held),
                symbol=symbol,
            )

    def _intent(self, symbol: str, side: str) -> str:
        position = self.positions.get(symbol)
        held = position.qty if position is not None else ZERO
        if side == "buy":
            return "buy_to_close" if held < 0 else "buy_to_open"
        return "sell_to_close" if held > 0 else "sell_to_open"

    def _cost(self, order: Order) -> Decimal:
        """What an open buy order holds of the buying power."""
        if order.side != "buy":
            return ZERO
        if order.notional is not None:
            return max(ZERO, order.notional - order.filled_value)
        price = order.limit_price or self.prices.get(order.symbol, ZERO)
        return (order.remaining_qty or ZERO) * price

    def _marketable_price(self, order: Order) -> Decimal | None:
        price = self.prices.get(order.symbol)
        if price is None or order.time_in_force in AUCTION_TIME_IN_FORCE:
            return None
        if order.type == "market" or order.limit_price is None:
            return price
        if order.side == "buy":
            return price if order.limit_price >= price else None
        return price if order.limit_price <= price else None

    def _activate(self, order: Order) -> None:
        """The order reaches the market: "new", then (auto_fill) one complete execution if it is
        marketable, or a cancel for an unmarketable IOC/FOK."""
        if not order.awaiting_activation or self._closed:
            return
        order.awaiting_activation = False
        order.status, order.updated_at = "new", self._clock.now()
        self._announce(order, "new")
        if not self.auto_fill:
            return
        price = self._marketable_price(order)
        if price is not None:
            qty = order.qty
            if qty is None:  # notional: as many shares as the amount buys, to 9 decimals
                assert order.notional is not None
                qty = (order.notional / price).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
            self._execute(order, qty, price)
        elif order.time_in_force in ("ioc", "fok"):
            self._finish(order, "canceled")

    def _execute(self, order: Order, qty: Decimal, price: Decimal) -> str:
        execution_id = str(uuid.uuid4())
        now = self._clock.now()
        order.filled_qty += qty
        order.filled_value += qty * price
        order.executions.append(execution_id)
        if order.qty is not None:
            complete = order.filled_qty >= order.qty
        else:
            assert order.notional is not None
            complete = order.filled_value >= order.notional - Decimal("0.01")
        order.status = "filled" if complete else "partially_filled"
        order.updated_at = now
        if complete:
            order.filled_at = now
        signed = qty if order.side == "buy" else -qty
        self.cash -= signed * price
        position = self._apply_to_position(order.symbol, signed, price)
        self._announce(
            order,
            "fill" if complete else "partial_fill",
            execution_id=execution_id,
            price=fmt(price),
            qty=fmt(qty),
            position_qty=fmt(position),
        )
        return execution_id

    def _apply_to_position(self, symbol: str, signed: Decimal, price: Decimal) -> Decimal:
        position = self.positions.setdefault(symbol, Position(symbol))
        old, new = position.qty, position.qty + signed
        if old == 0 or (old > 0) == (signed > 0):  # opening or adding: a new average
            position.avg_entry_price = (old * position.avg_entry_price + signed * price) / new
        elif (old > 0) != (new > 0) and new != 0:  # through zero: the rest opens at `price`
            position.avg_entry_price = price
        position.qty = new
        if new == 0:
            del self.positions[symbol]
        return new

    def _start_cancel(self, order: Order) -> None:
        self._activate(order)
        if order.status in NOT_CANCELABLE:
            raise unprocessable(f'order is already in "{order.status}" state')
        order.status, order.updated_at = "pending_cancel", self._clock.now()
        self._announce(order, "pending_cancel")
        if self.auto_cancel:
            self._later(self.cancel_delay, lambda: self._complete_cancel(order))

    def _complete_cancel(self, order: Order) -> None:
        with self.lock:
            if order.status == "pending_cancel" and not self._closed:
                self._finish(order, "canceled")

    def _finish(self, order: Order, status: str) -> None:
        if not order.open:
            raise ValueError(f"order {order.client_order_id} is already {order.status}")
        now = self._clock.now()
        order.status, order.updated_at = status, now
        if status == "canceled":
            order.canceled_at = now
        elif status == "expired":
            order.expired_at = now
        self._announce(order, status)

    def _announce(self, order: Order, event: str, **extra: Any) -> None:
        data: dict[str, Any] = {
            "event": event,
            "timestamp": rfc3339(order.updated_at or self._clock.now()),
            "order": order.to_json(),
            **extra,
        }
        self._emitted.append(data)
        self._publish({"stream": "trade_updates", "data": data})

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        def run() -> None:
            with self.lock:
                if self._closed:
                    return
                action()

        timer = threading.Timer(delay, run)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _order_by_id(self, order_id: str) -> Order:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise invalid("order_id is missing") from None
        order = self.orders.get(order_id)
        if order is None:
            raise not_found("order not found")
        return order

    def order_by_client_id(self, client_order_id: str) -> Order:
        order = self.by_client_id.get(client_order_id)
        if order is None:
            raise KeyError(f"no order with client_order_id {client_order_id!r} at the fake")
        return order

    def _mark(self, position: Position) -> Decimal:
        return self.prices.get(position.symbol, position.avg_entry_price)

    def _position_json(self, position: Position) -> dict[str, Any]:
        return position_json(position, self._mark(position), self._held_for_sale(position.symbol))

    def _held_for_sale(self, symbol: str) -> Decimal:
        """Shares that open sell orders hold."""
        return sum(
            (
                o.remaining_qty or ZERO
                for o in self.orders.values()
                if o.open and o.symbol == symbol and o.side == "sell"
            ),
            ZERO,
        )
