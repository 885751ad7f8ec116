"""A broker simulated in process. Market orders fill at once at the last price
plus slippage; a limit order fills at once if marketable, otherwise it rests
until cancelled, expired (`expire_day_orders`) or filled by a test
(`fill_resting`). Cash, positions and equity are tracked in Decimal.

It answers through the report sink like any broker (an acknowledgement, then
the fill). By default it does so synchronously from inside the request, and so
is `in_process`: execution asks it inside the input that placed the order, and
its answers are part of that input. `PaperBrokerConfig` switches on what a real broker does
besides (latency, partial fills, rejections, a stream that beats the REST answer
or repeats itself, ambiguous submits, outages), so the engine can be tested
against each without Alpaca.

Every request changes the broker's state under its lock and at once; the
answers are handed to the sink only after the lock is released (inline, or by
the delivery thread after the latency), so the sink may call the broker back.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal

from brokers.base import BrokerError, BrokerUnavailable, ReportSink
from brokers.paper.config import Ambiguity, PaperBrokerConfig
from brokers.paper.delivery import Gap, Message, Outbox
from brokers.paper.splits import split_quantity
from domain.broker import (
    BrokerHealth,
    BrokerInfo,
    BrokerOrder,
    BrokerReport,
    BrokerSnapshot,
    Execution,
    Outcome,
    ReportSource,
    RequestFailure,
    RequestKind,
)
from domain.orders import OrderStatus, OrderType, Side, SubmitOrder, TimeInForce
from domain.portfolio import Account, Position

ZERO = Decimal(0)
PriceSource = Callable[[str], Decimal | None]
_CENT_FRACTION = Decimal("0.0001")
_QUANTITY_QUANTUM = Decimal("1e-9")
_REFUSED_CODE = "40310000"
_DOWN_CODE = "http-503"
_DOWN_MESSAGE = "paper broker unreachable (simulated outage)"
_DRAIN_SECONDS = 5.0


@dataclass(slots=True)
class _Holding:
    quantity: Decimal = ZERO
    cost: Decimal = ZERO  # average price * quantity


@dataclass(frozen=True, slots=True)
class RecordedFill:
    """A fill from the audit log, re-booked when the simulated account is rebuilt."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO


class PaperBroker:
    """`fills`: what the audit log recorded, oldest first. The simulated account lives
    in this process, so after a restart it is rebuilt from them (its resting orders
    are not: a restart cancels them, and the start-up reconciliation finds so)."""

    name = "paper"

    def __init__(
        self,
        prices: PriceSource,
        config: PaperBrokerConfig | None = None,
        fills: Iterable[RecordedFill] = (),
    ) -> None:
        self.config = config or PaperBrokerConfig()
        self._prices = prices
        self._lock = threading.RLock()
        self._cash = self.config.starting_cash
        self._holdings: dict[str, _Holding] = {}
        self._orders: dict[str, BrokerOrder] = {}  # client order id -> as the broker has it
        self._notional: dict[str, Decimal] = {}  # client order id -> sum of quantity * price
        self._executions: dict[str, int] = {}  # client order id -> executions so far
        self._seen: set[str] = set()
        self._sink: ReportSink | None = None
        self._closed = False
        self._next_id = 0
        self._outbox = Outbox(self.config.latency_s, self.config.duplicate_reports)
        self._random = random.Random(self.config.seed)
        self._fresh_submits = 0
        self._ambiguous = dict(self.config.unknown_outcomes)  # consumed by the first submit
        self._down = self.config.down
        for fill in fills:
            self._seen.add(fill.client_order_id)
            self._book(fill.symbol, fill.side, fill.quantity, fill.price, fill.fee)

    # The reports carry no broker time: the simulator has no clock of its own, and the
    # same inputs must journal the same bytes (sweeps are stamped by the sequencer).

    @property
    def in_process(self) -> bool:
        """Without latency the simulator answers inside each request, with no I/O and
        deterministically: execution asks it inside the input, so a fill lands at the
        tick that caused it, and a replay rebuilds the simulator rather than reading
        its answers. With latency it answers from its own thread, as a real broker."""
        return self.config.latency_s == 0

    # --- the port ------------------------------------------------------------------

    def start(self, sink: ReportSink) -> None:
        with self._lock:
            self._sink = sink
            self._closed = False
            self._outbox.start(sink)

    def close(self) -> None:
        """Stop the delivery thread (answers not delivered yet are dropped); requests
        after this are ignored."""
        with self._lock:
            self._sink = None
            self._closed = True
        self._outbox.close()

    def health(self) -> BrokerHealth:
        with self._lock:
            if self._down:
                return BrokerHealth(False, stream_connected=False, detail=_DOWN_MESSAGE)
        return BrokerHealth(reachable=True, detail="in-process simulator")

    def describe(self) -> BrokerInfo:
        return BrokerInfo(self.name, endpoint="in-process", account="paper", live=False)

    def submit_order(self, order: SubmitOrder) -> None:
        self._answer(lambda: self._submit(order))

    def cancel_order(self, client_order_id: str, broker_order_id: str) -> None:
        self._answer(lambda: self._cancel(client_order_id))

    def lookup_order(self, client_order_id: str) -> None:
        self._answer(lambda: self._lookup(client_order_id))

    def snapshot(self, open_client_ids: frozenset[str]) -> BrokerSnapshot:
        with self._lock:
            if self._down:
                raise BrokerUnavailable(_DOWN_MESSAGE)
            orders = tuple(
                o
                for cid, o in self._orders.items()
                if not o.status.is_terminal or cid in open_client_ids
            )
            return BrokerSnapshot(self.account(), tuple(self.positions()), orders)

    # --- what a test does to the simulated market --------------------------------------

    def set_down(self, down: bool) -> None:
        """While down, every request answers UNKNOWN (nothing is taken), `snapshot`
        raises BrokerUnavailable, `health` is unreachable, and the stream is down: what
        happens at the broker meanwhile (`fill_resting`, `expire_day_orders`) is not
        reported. Coming back up tells the sink of the gap (`on_gap`)."""
        messages: list[Message] = []
        with self._lock:
            if self._down and not down:
                messages.append(Gap("paper broker reachable again: reports may have been missed"))
            self._down = down
            now = self._hand_over(messages)
        self._outbox.deliver(now)

    def fill_resting(
        self, client_order_id: str, quantity: Decimal | None = None, price: Decimal | None = None
    ) -> BrokerOrder:
        """The resting order fills: all that remains unless `quantity` says less, at its
        limit price unless `price` says otherwise (a market order at the last price
        plus slippage). Reported on the stream as one execution; returns the order."""
        with self._lock:
            order = self._orders.get(client_order_id)
            if order is None or order.status.is_terminal:
                state = order.status.value.lower() if order else "unknown"
                raise BrokerError(f"order {client_order_id} is not resting (it is {state})")
            remaining = order.quantity - order.filled_quantity
            quantity = remaining if quantity is None else quantity
            if not 0 < quantity <= remaining:
                raise ValueError(f"fill quantity must be in (0, {remaining}], not {quantity}")
            if price is None:
                price = order.limit_price or self._fill_price(order)
            if price is None or price <= 0:
                raise BrokerError(f"no price to fill order {client_order_id} at")
            reports = self._execute(order, [(quantity, price)])
            current = self._orders[client_order_id]
            now = self._hand_over(self._streamed(reports))
        self._outbox.deliver(now)
        return current

    def expire_day_orders(self) -> list[str]:
        """The session closed: every open DAY order expires, reported on the stream.
        Returns their client order ids."""
        with self._lock:
            reports = [
                BrokerReport(
                    self._store(o, OrderStatus.EXPIRED, "expired", "the session closed"),
                    ReportSource.STREAM,
                    "expired",
                )
                for o in list(self._orders.values())
                if not o.status.is_terminal and o.time_in_force is TimeInForce.DAY
            ]
            now = self._hand_over(self._streamed(reports))
        self._outbox.deliver(now)
        return [r.client_order_id for r in reports]

    def drain(self, timeout: float = _DRAIN_SECONDS) -> bool:
        """Wait until every answer given so far has been delivered (at once without
        latency); False if `timeout` seconds passed first. Not from inside the sink: the
        delivery it is called from counts as not delivered yet."""
        return self._outbox.drain(timeout)

    # --- the simulated account ---------------------------------------------------------

    def account(self) -> Account:
        with self._lock:
            equity = self._cash + sum(
                (
                    h.quantity * (self._prices(s) or h.cost / h.quantity)
                    for s, h in self._holdings.items()
                    if h.quantity
                ),
                ZERO,
            )
            return Account(cash=self._cash, equity=equity, buying_power=max(self._cash, ZERO))

    def positions(self) -> list[Position]:
        with self._lock:
            positions = []
            for symbol, h in sorted(self._holdings.items()):
                if not h.quantity:
                    continue
                average = (h.cost / h.quantity).quantize(_CENT_FRACTION)
                positions.append(
                    Position(symbol, h.quantity, average, self._prices(symbol) or average)
                )
            return positions

    def resting(self) -> list[BrokerOrder]:
        with self._lock:
            return [o for o in self._orders.values() if not o.status.is_terminal]

    # --- requests ----------------------------------------------------------------------

    def _answer(self, request: Callable[[], list[Message]]) -> None:
        """Run `request` under the lock, then hand its answers over without it."""
        with self._lock:
            if self._closed:
                return
            if self._sink is None:
                raise BrokerError("paper broker is not started")
            now = self._hand_over(request())
        self._outbox.deliver(now)

    def _hand_over(self, messages: list[Message]) -> list[Message]:
        """Called under the lock: with latency, queue `messages` now (so the queue holds
        them in the order they were made) and return nothing; without, return them to
        be delivered once the lock is released."""
        if self._outbox.delayed:
            self._outbox.post(messages)
            return []
        return messages

    def _submit(self, order: SubmitOrder) -> list[Message]:
        cid = order.client_order_id
        if self._down:
            return [_failure(cid, RequestKind.SUBMIT, Outcome.UNKNOWN, _DOWN_CODE, _DOWN_MESSAGE)]
        if cid in self._seen:
            # As Alpaca does: an id is unique for ever, and the answer proves nothing
            # about the order that holds it: look it up.
            return [
                _failure(
                    cid,
                    RequestKind.SUBMIT,
                    Outcome.UNKNOWN,
                    "40010001",
                    "client_order_id must be unique",
                )
            ]
        ambiguity = self._ambiguity(cid)
        if ambiguity is Ambiguity.NOT_TAKEN:
            return [
                _failure(
                    cid,
                    RequestKind.SUBMIT,
                    Outcome.UNKNOWN,
                    "http-500",
                    "internal server error (simulated; the order was not taken)",
                )
            ]
        self._seen.add(cid)
        answer, stream = self._take(order)
        if ambiguity is not None:  # TAKEN or TAKEN_SILENT: the answer is lost
            answer = _failure(
                cid,
                RequestKind.SUBMIT,
                Outcome.UNKNOWN,
                "timeout",
                "no answer in time (simulated; the broker handled the order)",
            )
            if ambiguity is Ambiguity.TAKEN_SILENT:
                stream = []
        if self.config.fill_before_ack:
            return [*stream, answer]
        return [answer, *stream]

    def _ambiguity(self, client_order_id: str) -> Ambiguity | None:
        """How this fresh submit is scripted to end (None: normally); consumes the script."""
        script = self.config.unknown_submits
        by_position = script[self._fresh_submits] if self._fresh_submits < len(script) else None
        self._fresh_submits += 1
        return self._ambiguous.pop(client_order_id, None) or by_position

    def _take(self, order: SubmitOrder) -> tuple[Message, list[Message]]:
        """What the broker does with a fresh order: its REST answer, and what its stream
        then says."""
        cid = order.client_order_id
        drawn = self._random.random() if self.config.reject_ratio > 0 else 1.0
        reason = self._refusal(order)
        if reason:
            return _failure(cid, RequestKind.SUBMIT, Outcome.REFUSED, _REFUSED_CODE, reason), []
        rejected = self.config.rejections.get(order.symbol, "")
        if not rejected and drawn < self.config.reject_ratio:
            rejected = "rejected by the simulator (reject_ratio)"
        if rejected and not self.config.async_rejections:
            return _failure(cid, RequestKind.SUBMIT, Outcome.REFUSED, _REFUSED_CODE, rejected), []
        self._next_id += 1
        accepted = BrokerOrder(
            client_order_id=cid,
            broker_order_id=f"paper-{self._next_id}",
            symbol=order.symbol,
            side=order.side,
            quantity=self._quantity(order),
            order_type=order.order_type,
            status=OrderStatus.ACCEPTED,
            limit_price=order.limit_price,
            time_in_force=order.time_in_force,
            broker_status="accepted",
        )
        self._orders[cid] = accepted
        ack = BrokerReport(accepted, ReportSource.SUBMIT, "accepted")
        if rejected:
            refused = self._store(accepted, OrderStatus.REJECTED, "rejected", rejected)
            return ack, [BrokerReport(refused, ReportSource.STREAM, "rejected")]
        price = self._fill_price(accepted)
        if price is None:
            return ack, []
        return ack, list(self._execute(accepted, self._split(accepted, price)))

    def _cancel(self, client_order_id: str) -> list[Message]:
        if self._down:
            return [
                _failure(
                    client_order_id, RequestKind.CANCEL, Outcome.UNKNOWN, _DOWN_CODE, _DOWN_MESSAGE
                )
            ]
        current = self._orders.get(client_order_id)
        if current is None or current.status.is_terminal:
            state = current.status.value.lower() if current else "unknown"
            return [
                _failure(
                    client_order_id,
                    RequestKind.CANCEL,
                    Outcome.REFUSED,
                    "42210000",
                    f"order is not open at the broker (it is {state})",
                )
            ]
        cancelled = self._store(current, OrderStatus.CANCELLED, "canceled", "cancelled on request")
        return [BrokerReport(cancelled, ReportSource.CANCEL, "canceled")]

    def _lookup(self, client_order_id: str) -> list[Message]:
        if self._down:
            return [
                _failure(
                    client_order_id, RequestKind.LOOKUP, Outcome.UNKNOWN, _DOWN_CODE, _DOWN_MESSAGE
                )
            ]
        current = self._orders.get(client_order_id)
        if current is None:
            return [
                _failure(
                    client_order_id,
                    RequestKind.LOOKUP,
                    Outcome.NOT_FOUND,
                    "40410000",
                    "order not found",
                )
            ]
        return [BrokerReport(current, ReportSource.LOOKUP, current.broker_status)]

    def _streamed(self, reports: list[BrokerReport]) -> list[Message]:
        """What the stream delivers of `reports`: nothing while the broker is down."""
        return [] if self._down else list(reports)

    # --- internals ---------------------------------------------------------------------

    def _quantity(self, order: SubmitOrder) -> Decimal:
        """What the order is for: its quantity, or what its amount buys at the fill
        price, to the ninth decimal (rounded down, as Alpaca does)."""
        if order.amount is None:
            return order.quantity
        price = self._fill_price_of(order.symbol, order.side)
        assert price is not None  # refused before, when there is no price
        return (order.amount / price).quantize(_QUANTITY_QUANTUM, rounding=ROUND_DOWN)

    def _refusal(self, order: SubmitOrder) -> str:
        if order.amount is not None:
            if (
                order.order_type is not OrderType.MARKET
                or order.time_in_force is not TimeInForce.DAY
            ):
                return "notional orders must be market orders for the day"
            if self._prices(order.symbol) is None:
                return f"no market price for {order.symbol}"
            order = replace(order, quantity=self._quantity(order))
            if order.quantity <= 0:
                return f"notional {order.amount} buys nothing at the last price"
        if order.quantity <= 0:
            return "quantity must be positive"
        last = self._prices(order.symbol)
        if last is None:
            return f"no market price for {order.symbol}"
        held = self._holdings.get(order.symbol, _Holding()).quantity
        if order.side is Side.SELL and not self.config.allow_short and order.quantity > held:
            return (
                "insufficient qty available for order "
                f"(requested: {order.quantity}, available: {held})"
            )
        if order.side is Side.BUY and order.quantity * last > self._cash:
            need = order.quantity * last
            return f"insufficient buying power: need {need:.2f}, cash {self._cash:.2f}"
        return ""

    def _fill_price_of(self, symbol: str, side: Side) -> Decimal | None:
        last = self._prices(symbol)
        if last is None:
            return None
        slip = last * self.config.slippage_bps / Decimal(10_000)
        return (last + slip if side is Side.BUY else last - slip).quantize(_CENT_FRACTION)

    def _fill_price(self, order: BrokerOrder) -> Decimal | None:
        price = self._fill_price_of(order.symbol, order.side)
        if price is None:
            return None
        if order.order_type is OrderType.LIMIT and order.limit_price is not None:
            marketable = (
                price <= order.limit_price if order.side is Side.BUY else price >= order.limit_price
            )
            return price if marketable else None
        return price

    def _split(self, order: BrokerOrder, price: Decimal) -> list[tuple[Decimal, Decimal]]:
        """The executions of a marketable order: `partial_fills` of them, each priced a
        tick worse for the taker than the one before, never beyond the limit."""
        remaining = order.quantity - order.filled_quantity
        quantities = split_quantity(remaining, self.config.partial_fills)
        tick = self.config.partial_fill_tick
        executions = []
        for i, quantity in enumerate(quantities):
            if order.side is Side.BUY:
                at = price + i * tick
                if order.limit_price is not None:
                    at = min(at, order.limit_price)
            else:
                at = max(price - i * tick, _CENT_FRACTION)
                if order.limit_price is not None:
                    at = max(at, order.limit_price)
            executions.append((quantity, at))
        return executions

    def _execute(
        self, order: BrokerOrder, executions: list[tuple[Decimal, Decimal]]
    ) -> list[BrokerReport]:
        """Book `executions` (quantity, price) on `order`, in turn; one report each."""
        cid = order.client_order_id
        reports = []
        for quantity, price in executions:
            fee = self.config.commission.fee(quantity, price)
            self._book(order.symbol, order.side, quantity, price, fee)
            count = self._executions.get(cid, 0) + 1
            self._executions[cid] = count
            notional = self._notional.get(cid, ZERO) + quantity * price
            self._notional[cid] = notional
            filled = order.filled_quantity + quantity
            done = filled == order.quantity
            order = replace(
                order,
                status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
                filled_quantity=order.quantity if done else filled,
                # The broker's exact average: the price itself for a single execution.
                average_fill_price=price if count == 1 else notional / filled,
                broker_status="filled" if done else "partially_filled",
            )
            self._orders[cid] = order
            execution = Execution(f"{order.broker_order_id}-x{count}", quantity, price, fee)
            event = "fill" if done else "partial_fill"
            reports.append(BrokerReport(order, ReportSource.STREAM, event, execution))
        return reports

    def _store(
        self, order: BrokerOrder, status: OrderStatus, word: str, reason: str
    ) -> BrokerOrder:
        changed = replace(order, status=status, broker_status=word, reason=reason)
        self._orders[order.client_order_id] = changed
        return changed

    def _book(
        self, symbol: str, side: Side, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        holding = self._holdings.setdefault(symbol, _Holding())
        signed = quantity if side is Side.BUY else -quantity
        if holding.quantity and (holding.quantity > 0) != (signed > 0):
            # Reducing: realise against the average cost.
            average = holding.cost / holding.quantity
            holding.cost += signed * average
        else:
            holding.cost += signed * price
        holding.quantity += signed
        if holding.quantity == 0:
            holding.cost = ZERO
        self._cash -= signed * price + fee


def _failure(
    client_order_id: str, request: RequestKind, outcome: Outcome, code: str, message: str
) -> RequestFailure:
    return RequestFailure(client_order_id, request, outcome, code, message)
