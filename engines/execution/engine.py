"""The execution engine: the only code that calls a broker.

It acts on approved `RiskDecisionMade` events that came through the journal,
nothing else. For each it records the order as an intent (status NEW) and makes
the journal durable *before* the order leaves the process; the client order id
is derived from the decision, so the same decision can never be placed twice.
Broker reports come back as inputs through the sequencer and move the order
through its state machine; every change is published as `OrderUpdated`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from brokers.base import Broker, BrokerError
from domain import numeric
from domain.errors import NotFound, PreconditionFailed, Unavailable
from domain.events import CancelRequested, Envelope, OrderUpdated, RiskDecisionMade
from domain.orders import (
    BrokerReport,
    Order,
    OrderStateChange,
    OrderStatus,
    SubmitOrder,
)
from domain.portfolio import Account, Position
from domain.risk import ApprovedTrade
from engines.bus import Sequencer

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass(slots=True)
class ExecutionStats:
    submitted: int = 0
    filled: int = 0
    cancelled: int = 0
    rejected: int = 0


def client_order_id_for(decision_id: str) -> str:
    """Deterministic: one risk decision, one client order id, whatever retries."""
    return f"ts-{decision_id}"


class ExecutionEngine:
    def __init__(self, bus: Sequencer, broker: Broker) -> None:
        self._bus = bus
        self._broker = broker
        self._orders: dict[str, Order] = {}
        self._by_client_id: dict[str, str] = {}
        # Seq of each order's latest event: the cause of its next change.
        self._last_seq: dict[str, int] = {}
        self.stats = ExecutionStats()
        broker.set_report_handler(self.on_broker_report)
        bus.subscribe(RiskDecisionMade, self.on_risk_decision)

    @property
    def broker_name(self) -> str:
        return self._broker.name

    def broker_healthy(self) -> bool:
        return self._broker.healthy()

    # --- orders ------------------------------------------------------------------

    def on_risk_decision(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, RiskDecisionMade)
        if not event.decision.approved:
            return
        if not self._bus.is_journaled(envelope):
            raise PermissionError("execution refuses a decision that is not in the audit log")
        self._place(ApprovedTrade(event.decision), envelope.seq)

    def _place(self, trade: ApprovedTrade, decision_seq: int) -> None:
        decision = trade.decision
        client_order_id = client_order_id_for(decision.decision_id)
        if client_order_id in self._by_client_id:
            return  # already placed: idempotent
        signal = decision.signal
        now = self._bus.clock.now()
        order = Order(
            order_id=f"o{decision_seq}",
            client_order_id=client_order_id,
            decision_id=decision.decision_id,
            symbol=signal.symbol,
            side=signal.side,
            quantity=signal.quantity,
            order_type=signal.order_type,
            limit_price=signal.limit_price,
            status=OrderStatus.NEW,
            filled_quantity=ZERO,
            average_fill_price=ZERO,
            created_at=now,
            updated_at=now,
            history=(OrderStateChange(OrderStatus.NEW, now, "intent recorded"),),
        )
        intent = self._record(order, decision_seq)
        try:
            self._bus.flush()  # the intent is durable before the order leaves
        except Unavailable as exc:
            self._update(
                order.client_order_id, OrderStatus.REJECTED, intent.seq, reason=f"not sent: {exc}"
            )
            return
        self.stats.submitted += 1
        try:
            self._broker.submit_order(
                SubmitOrder(
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    side=order.side,
                    quantity=order.quantity,
                    order_type=order.order_type,
                    limit_price=order.limit_price,
                )
            )
        except BrokerError as exc:
            self._update(order.client_order_id, OrderStatus.REJECTED, intent.seq, reason=str(exc))

    def on_broker_report(self, report: BrokerReport) -> None:
        """Entry point for the broker's reports, from any thread: sequenced like any input."""
        self._bus.process(lambda: self._apply_report(report))

    def _apply_report(self, report: BrokerReport) -> None:
        order_id = self._by_client_id.get(report.client_order_id)
        if order_id is None:
            log.warning("report for unknown order %s ignored", report.client_order_id)
            return
        if report.fill_quantity and not (
            numeric.order_quantity_in_domain(report.fill_quantity)
            and numeric.decimal_price_in_domain(report.fill_price)
        ):
            # A broker's number outside the domain is a broker bug: it is never booked.
            log.error(
                "broker report for %s refused: fill %s @ %s is outside the numeric domain",
                report.client_order_id,
                report.fill_quantity,
                report.fill_price,
            )
            return
        try:
            self._update(
                report.client_order_id,
                report.status,
                0,
                reason=report.reason,
                fill_quantity=report.fill_quantity,
                fill_price=report.fill_price,
                broker_order_id=report.broker_order_id,
            )
        except PreconditionFailed as exc:
            log.warning("broker report refused: %s", exc)

    def _update(
        self,
        client_order_id: str,
        status: OrderStatus,
        caused_by: int,
        *,
        reason: str = "",
        fill_quantity: Decimal = ZERO,
        fill_price: Decimal = ZERO,
        broker_order_id: str = "",
    ) -> None:
        order = self._orders[self._by_client_id[client_order_id]]
        updated = order.transition(
            status,
            self._bus.clock.now(),
            reason=reason,
            fill_quantity=fill_quantity,
            fill_price=fill_price,
            broker_order_id=broker_order_id,
        )
        if status is OrderStatus.FILLED:
            self.stats.filled += 1
        elif status is OrderStatus.CANCELLED:
            self.stats.cancelled += 1
        elif status is OrderStatus.REJECTED:
            self.stats.rejected += 1
        self._record(updated, caused_by or self._last_seq.get(order.order_id, 0))

    def _record(self, order: Order, caused_by: int) -> Envelope:
        self._orders[order.order_id] = order
        self._by_client_id[order.client_order_id] = order.order_id
        envelope = self._bus.publish(OrderUpdated(order), caused_by=caused_by)
        self._last_seq[order.order_id] = envelope.seq
        return envelope

    # --- start-up ----------------------------------------------------------------------

    def restore(self, orders: list[tuple[Order, int]]) -> None:
        """Take back the orders recorded in the audit log (each with the seq of its
        latest event), before any input is sequenced."""
        for order, seq in orders:
            self._orders[order.order_id] = order
            self._by_client_id[order.client_order_id] = order.order_id
            self._last_seq[order.order_id] = seq

    def reconcile(self) -> list[Order]:
        """Orders the log says are open but the broker does not know (an intent that
        was never sent, an order that ended while we were down) cannot be followed
        any more: they are recorded as EXPIRED, with the reason. Returns them."""
        at_broker = {r.client_order_id for r in self._broker.get_open_orders()}
        stale = [
            o for o in self._orders.values() if o.is_open and o.client_order_id not in at_broker
        ]
        for order in stale:
            self._update(
                order.client_order_id,
                OrderStatus.EXPIRED,
                self._last_seq[order.order_id],
                reason="not open at the broker at start-up (reconciled)",
            )
        return [self._orders[o.order_id] for o in stale]

    def cancel(self, order_id: str, requested_by: str) -> Order:
        """Cancel an open order. Works while trading is halted: cancelling only reduces risk."""
        order = self._orders.get(order_id)
        if order is None:
            raise NotFound(f"no order with id {order_id!r}")
        if not order.is_open:
            raise PreconditionFailed(f"order {order_id} is already {order.status.value}")
        self._bus.publish(CancelRequested(order_id, requested_by))
        try:
            self._broker.cancel_order(order.client_order_id)
        except BrokerError as exc:
            raise PreconditionFailed(f"broker refused to cancel {order_id}: {exc}") from exc
        return self._orders[order_id]

    # --- reads -------------------------------------------------------------------

    def get(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise NotFound(f"no order with id {order_id!r}")
        return order

    def orders(self, *, open_only: bool, symbol: str = "") -> list[Order]:
        return [
            o
            for o in self._orders.values()
            if (not open_only or o.is_open) and (not symbol or o.symbol == symbol)
        ]

    def account(self) -> Account:
        return self._broker.get_account()

    def positions(self) -> list[Position]:
        return self._broker.get_positions()
