"""The execution engine: the only code that calls a broker.

It acts on the approved trades the risk engine hands it, nothing else. For each
it records the order as an intent (NEW) and asks the sequencer to send it once
the input is over: the send makes the journal durable first, so no order leaves
the process before its intent is in the audit log, and it never runs while the
sequencer is held. The client order id is derived from the log's id and the
decision, so one decision can never become two orders at a broker, whatever
retries or restarts, and no two logs can ever send the same id.

Whatever the broker says comes back as an input (journaled before it is
applied): a report moves the order through its state machine
(engines/execution/reports.py), a failed request resolves or keeps it, and a
sweep of the broker's REST state reconciles everything. An order whose
submission had no clear answer stays SUBMITTED, in flight, and is looked up
until the broker answers; it is resubmitted (same id) only when the broker says
it has no such order, and closed only by the broker's answer, never by a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial

from brokers.base import Broker
from domain import numeric
from domain.broker import (
    BrokerHealth,
    BrokerInfo,
    BrokerReport,
    Outcome,
    Reconciliation,
    ReportSource,
    RequestFailure,
    RequestKind,
)
from domain.errors import NotFound, PreconditionFailed, Unavailable
from domain.events import (
    BrokerReconciled,
    BrokerReportReceived,
    BrokerRequestFailed,
    BrokerSwept,
    CancelRequested,
    Envelope,
    OrderUpdated,
    ServiceStarted,
)
from domain.orders import Order, OrderStateChange, OrderStatus, SubmitOrder
from domain.risk import ApprovedTrade
from engines.bus import Sequencer
from engines.execution.reports import Overfill, Step, plan
from engines.portfolio import Portfolio

log = logging.getLogger(__name__)
ZERO = Decimal(0)
REPLAY = BrokerInfo("none", endpoint="replay: no broker", account="")
AWAITING_ANSWER = frozenset({OrderStatus.NEW, OrderStatus.SUBMITTED})


@dataclass(slots=True)
class ExecutionStats:
    submitted: int = 0
    filled: int = 0
    cancelled: int = 0
    rejected: int = 0


def client_order_id_for(log_id: str, decision_id: str) -> str:
    """Deterministic: one risk decision of one log, one client order id, whatever
    retries (at most 48 characters: `ts-` + 12 + `-d` + the decision's seq)."""
    return f"ts-{log_id}-{decision_id}" if log_id else f"ts-{decision_id}"


class ExecutionEngine:
    """`broker` None: a replay or a backtest, where nothing is ever sent and every
    answer comes from the journal."""

    def __init__(
        self,
        bus: Sequencer,
        broker: Broker | None,
        portfolio: Portfolio,
        *,
        lookup_attempts: int = 5,
    ) -> None:
        self._bus = bus
        self._broker = broker
        self._portfolio = portfolio
        self._lookup_attempts = lookup_attempts
        self._orders: dict[str, Order] = {}
        self._by_client_id: dict[str, str] = {}
        # Seq of each order's latest event: the cause of its next change.
        self._last_seq: dict[str, int] = {}
        # Client ids placed since the service last started: an answer to their
        # submission is still to come, and one the broker says it does not have
        # may be resubmitted. After a restart, only the broker's word counts.
        self._this_run: set[str] = set()
        # Requests about an unresolved order that got no answer, per client id.
        self._unanswered: dict[str, int] = {}
        # Client ids resubmitted whose submission has not been answered yet: a "not
        # found" that answers an older lookup must not send the order once more.
        self._resending: set[str] = set()
        self._inline = 0  # > 0: an in-process broker is answering inside the input
        self.log_id = ""
        # Why reports may have been missed since the last sweep ("": nothing known).
        self.gap_reason = ""
        self.fills_booked = 0
        self.last_reconciliation: tuple[datetime, Reconciliation] | None = None
        self.stats = ExecutionStats()
        bus.subscribe(BrokerReportReceived, self._on_report)
        bus.subscribe(BrokerRequestFailed, self._on_failure)
        bus.subscribe(BrokerSwept, self._on_swept)
        bus.subscribe(ServiceStarted, self.on_service_started)

    # --- the broker ----------------------------------------------------------------

    def start(self) -> None:
        """Connect the broker's answers to this engine (its streams start here)."""
        if self._broker is not None:
            self._broker.start(self)

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()

    @property
    def broker_name(self) -> str:
        return self._broker.name if self._broker is not None else REPLAY.name

    def broker_info(self) -> BrokerInfo:
        return self._broker.describe() if self._broker is not None else REPLAY

    def broker_health(self) -> BrokerHealth:
        """The adapter's view, and ours: an order looked up too often without an
        answer makes the broker unhealthy too."""
        if self._broker is None:
            return BrokerHealth(reachable=True, detail="replay: no broker")
        health = self._broker.health()
        stuck = [cid for cid, n in self._unanswered.items() if n >= self._lookup_attempts]
        if stuck and health.reachable:
            detail = f"{len(stuck)} order(s) unresolved after {self._lookup_attempts} lookups"
            return BrokerHealth(False, health.stream_connected, detail)
        return health

    # --- orders ------------------------------------------------------------------

    def place(self, trade: ApprovedTrade, decision_seq: int) -> None:
        """Turn an approved trade into an order (inside the input that approved it):
        the intent is journaled now, and sent once the input is over."""
        decision = trade.decision
        client_order_id = client_order_id_for(self.log_id, decision.decision_id)
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
            time_in_force=signal.effective_time_in_force,
            amount=signal.amount,
        )
        self._record(order, decision_seq)
        self._this_run.add(client_order_id)
        self._effect(partial(self._send, client_order_id))

    def _send(self, client_order_id: str) -> None:
        """An effect: make the intent durable, then hand the order to the broker."""
        assert self._broker is not None
        try:
            self._bus.flush()
        except Unavailable as exc:
            self.on_failure(
                RequestFailure(
                    client_order_id, RequestKind.SUBMIT, Outcome.NOT_SENT, "audit-store", str(exc)
                )
            )
            return
        with self._bus.reading():
            order = self._orders[self._by_client_id[client_order_id]]
            if not order.is_open:
                return  # answered already (a resubmission raced an answer)
            self.stats.submitted += 1
        self._broker.submit_order(
            SubmitOrder(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                order_type=order.order_type,
                limit_price=order.limit_price,
                time_in_force=order.time_in_force,
                amount=order.amount,
            )
        )

    def cancel(self, order_id: str, requested_by: str) -> Order:
        """Ask the broker to cancel an open order (inside an input). Works while
        trading is halted: cancelling only reduces risk. The order is
        PENDING_CANCEL until the broker answers."""
        order = self.get(order_id)
        if not order.is_open:
            raise PreconditionFailed(f"order {order_id} is already {order.status.value}")
        if order.status is OrderStatus.PENDING_CANCEL:
            return order  # asked already; the broker's answer is awaited
        requested = self._bus.publish(CancelRequested(order_id, requested_by))
        reason = f"cancel requested by {requested_by}" if requested_by else "cancel requested"
        self._apply(order, [Step(OrderStatus.PENDING_CANCEL, reason)], "", requested.seq)
        self._effect(lambda: self._request_cancel(order.client_order_id))
        return self._orders[order_id]

    def _request_cancel(self, client_order_id: str) -> None:
        assert self._broker is not None
        with self._bus.reading():
            order = self._orders[self._by_client_id[client_order_id]]
        self._broker.cancel_order(client_order_id, order.broker_order_id)

    def _lookup(self, client_order_id: str) -> None:
        assert self._broker is not None
        self._broker.lookup_order(client_order_id)

    def _effect(self, effect: Callable[[], None]) -> None:
        """A request to the broker: after the input for a real broker; at once, inside
        the input, for an in-process simulator (whose answers are then part of the
        input); never for a replay without a broker."""
        if self._broker is None:
            return
        if not self._broker.in_process:
            self._bus.after_input(effect)
            return
        self._inline += 1
        try:
            effect()
        finally:
            self._inline -= 1

    # --- what the broker says (the ReportSink; any thread) ----------------------------

    def on_report(self, report: BrokerReport) -> None:
        self._bus.process(lambda: self._receive_report(report))

    def on_failure(self, failure: RequestFailure) -> None:
        self._bus.process(lambda: self._receive_failure(failure))

    def on_gap(self, reason: str) -> None:
        """Reports may have been missed: the supervisor sweeps (see `gap_reason`)."""
        log.warning("broker %s: %s; a sweep will follow", self.broker_name, reason)
        self.gap_reason = reason

    def _receive_report(self, report: BrokerReport) -> None:
        """Journal the report if it changes anything (or tells of an order we do not
        know), then the handler applies it. A repeat changes nothing, and a report
        that cannot be booked (an overfill, a number outside the domain: a broker
        bug) is refused loudly: neither is journaled, and the order stays as it is
        for the next sweep to settle."""
        if report.source is ReportSource.SUBMIT:
            self._resending.discard(report.client_order_id)
        order = self._known(report.client_order_id)
        if order is not None:
            try:
                steps = plan(order, report)
            except Overfill as exc:
                log.error("broker report refused, never booked: %s", exc)
                return
            if not steps:
                log.debug("report for %s changes nothing", report.client_order_id)
                return
            if not _bookable(order, steps):
                return
        order_id = order.order_id if order is not None else ""
        self._bus.publish(BrokerReportReceived(report, order_id), caused_by=self._answered(order))

    def _receive_failure(self, failure: RequestFailure) -> None:
        if failure.request is RequestKind.SUBMIT:
            self._resending.discard(failure.client_order_id)
        order = self._known(failure.client_order_id)
        if order is None or not order.is_open:
            log.info("broker answer for a closed or unknown order ignored: %s", failure)
            return
        self._bus.publish(
            BrokerRequestFailed(failure, order.order_id), caused_by=self._answered(order)
        )

    def _answered(self, order: Order | None) -> int:
        """What an answer is caused by: nothing (an input) from a real broker; the
        order's latest event when an in-process broker answers inside the input."""
        if self._inline and order is not None:
            return self._last_seq[order.order_id]
        return 0

    def _on_report(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, BrokerReportReceived)
        self._apply_report(event.report, envelope.seq)

    def _apply_report(self, report: BrokerReport, cause: int) -> bool:
        """Apply one report; True when it changed an order (or adopted one)."""
        order = self._known(report.client_order_id)
        if order is None:
            return self._adopt(report, cause)
        try:
            steps = plan(order, report)
        except Overfill as exc:
            log.error("broker report refused, never booked: %s", exc)
            return False
        if not steps:
            return False
        self._unanswered.pop(order.client_order_id, None)
        return self._apply(order, steps, report.order.broker_order_id, cause)

    def _adopt(self, report: BrokerReport, cause: int) -> bool:
        """An order the service did not place (a person in the broker's dashboard):
        followed as an external order from now on; its fills move the positions."""
        seen = report.order
        if not numeric.order_quantity_in_domain(seen.quantity):
            log.error("broker order %s refused: quantity %s", seen.client_order_id, seen.quantity)
            return False
        now = self._bus.clock.now()
        why = f"adopted: placed at the broker outside the service ({report.source.value.lower()})"
        order = Order(
            # Named for its own first event (a sweep may adopt several at once).
            order_id=f"x{self._bus.next_seq()}",
            client_order_id=seen.client_order_id,
            decision_id="",
            symbol=seen.symbol,
            side=seen.side,
            quantity=seen.quantity,
            order_type=seen.order_type,
            limit_price=seen.limit_price,
            status=OrderStatus.NEW,
            filled_quantity=ZERO,
            average_fill_price=ZERO,
            created_at=now,
            updated_at=now,
            broker_order_id=seen.broker_order_id,
            history=(OrderStateChange(OrderStatus.NEW, now, why),),
            time_in_force=seen.time_in_force,
            external=True,
        )
        log.warning("adopting order %s placed outside the service", seen.client_order_id)
        self._record(order, cause)
        try:
            steps = plan(order, report)
        except Overfill as exc:
            log.error("adopted order's report refused: %s", exc)
            return True
        self._apply(order, steps, seen.broker_order_id, cause)
        return True

    def _on_failure(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, BrokerRequestFailed)
        failure = event.failure
        order = self._known(failure.client_order_id)
        if order is None or not order.is_open:
            return
        said = f"({failure.code}) {failure.message}" if failure.code else failure.message
        cid = order.client_order_id
        step: Step | None = None
        follow_up: Callable[[], None] | None = None
        match failure.request, failure.outcome:
            case RequestKind.SUBMIT, Outcome.NOT_SENT if order.status is OrderStatus.NEW:
                step = Step(OrderStatus.REJECTED, f"not sent: {failure.message}")
            case RequestKind.SUBMIT, Outcome.REFUSED if order.status in AWAITING_ANSWER:
                step = Step(OrderStatus.REJECTED, f"refused by the broker {said}")
            case RequestKind.SUBMIT, Outcome.UNKNOWN if order.status in AWAITING_ANSWER:
                if order.status is OrderStatus.NEW:
                    why = f"unresolved: the broker gave no clear answer {said}; looking it up"
                    step = Step(OrderStatus.SUBMITTED, why)
                follow_up = self._retry(cid)
            case RequestKind.LOOKUP, Outcome.NOT_FOUND:
                step, follow_up = self._not_at_broker(order, said)
            case RequestKind.LOOKUP, Outcome.UNKNOWN | Outcome.REFUSED:
                # A refused lookup (a 403 on the GET) says nothing about the order
                # either: it stays unresolved and is looked up again.
                follow_up = self._retry(cid)
            case RequestKind.CANCEL, Outcome.REFUSED if order.status is OrderStatus.PENDING_CANCEL:
                step = Step(order.working_status, f"cancel refused by the broker {said}")
            case RequestKind.CANCEL, Outcome.UNKNOWN if order.status is OrderStatus.PENDING_CANCEL:
                follow_up = partial(self._lookup, cid)
        # The order's new state first, then the request that follows from it: an
        # in-process broker answers that request at once, on top of this state.
        if step is not None:
            self._apply(order, [step], "", envelope.seq)
        if follow_up is not None:
            self._effect(follow_up)

    def _not_at_broker(
        self, order: Order, said: str
    ) -> tuple[Step | None, Callable[[], None] | None]:
        """The broker says it has no order with this id: the step that records it, or
        the resubmission that follows."""
        cid = order.client_order_id
        if order.status in AWAITING_ANSWER and cid in self._resending:
            # A lookup asked before the resubmission now in flight: its answer is
            # stale. Sending again could make a second attempt outlive the answer to
            # this one (a refusal, then an order the service would never follow).
            log.info("order %s: resubmission in flight, stale 'not found' ignored", cid)
            return None, None
        if order.status in AWAITING_ANSWER and cid in self._this_run:
            # Sent in this run without a clear answer, and the broker never got it:
            # resubmit with the same id (the broker keeps ids unique, so at most one
            # of the attempts can ever be an order), once at a time.
            log.warning("order %s is not at the broker: resubmitting it", cid)
            self._resending.add(cid)
            return None, partial(self._send, cid)
        if order.status in AWAITING_ANSWER:
            return Step(OrderStatus.REJECTED, f"never reached the broker {said}"), None
        return Step(OrderStatus.EXPIRED, f"the broker no longer knows this order {said}"), None

    def _retry(self, client_order_id: str) -> Callable[[], None] | None:
        """Look an unresolved order up again, a bounded number of times; after that
        the broker counts as unhealthy and the sweeps keep looking."""
        unanswered = self._unanswered.get(client_order_id, 0) + 1
        self._unanswered[client_order_id] = unanswered
        if unanswered < self._lookup_attempts:
            return partial(self._lookup, client_order_id)
        return None

    # --- sweeps and reconciliation --------------------------------------------------

    def sweep(self, reason: str) -> Reconciliation:
        """Read the broker's whole state and reconcile with it (blocking: call it from
        the supervisor, never under the sequencer). Raises BrokerUnavailable."""
        assert self._broker is not None, "a replay has no broker to sweep"
        with self._bus.reading():
            open_ids = frozenset(o.client_order_id for o in self._orders.values() if o.is_open)
            fills_before = self.fills_booked
        snapshot = self._broker.snapshot(open_ids)
        self.gap_reason = ""

        def work() -> Reconciliation:
            self._bus.publish(BrokerSwept(reason, snapshot, fills_before))
            assert self.last_reconciliation is not None
            return self.last_reconciliation[1]

        return self._bus.process(work)[0]

    def _on_swept(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, BrokerSwept)
        snapshot = event.snapshot
        adopted: list[str] = []
        updated: list[str] = []
        listed: set[str] = set()
        fills = self.fills_booked
        for seen in snapshot.orders:
            listed.add(seen.client_order_id)
            known = self._known(seen.client_order_id)
            report = BrokerReport(seen, ReportSource.SWEEP, seen.broker_status)
            if self._apply_report(report, envelope.seq):
                (adopted if known is None else updated).append(seen.client_order_id)
        missing = [
            o.client_order_id
            for o in self._orders.values()
            if o.is_open
            and o.client_order_id not in listed
            and not (o.status is OrderStatus.NEW and o.client_order_id in self._this_run)
        ]
        differences = self._portfolio.differences(snapshot.positions)
        # Fills booked by other inputs since the sweep began make its positions stale.
        applied = event.fills_before == fills
        if applied:
            self._portfolio.reconcile(snapshot.account, snapshot.positions)
        reconciliation = Reconciliation(
            event.reason,
            tuple(adopted),
            tuple(updated),
            tuple(missing),
            tuple(differences),
            applied,
        )
        self._bus.publish(BrokerReconciled(reconciliation), caused_by=envelope.seq)
        self.last_reconciliation = (envelope.at, reconciliation)
        log.info("broker %s reconciled: %s", self.broker_name, reconciliation.summary)
        for cid in missing:
            self._effect(partial(self._lookup, cid))

    def on_service_started(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, ServiceStarted)
        self.log_id = event.log_id
        # A new process: nothing sent before is awaited any more, and the count of
        # fills a sweep compares with starts again (as the live process's did).
        self._this_run.clear()
        self._unanswered.clear()
        self._resending.clear()
        self.fills_booked = 0

    # --- state -------------------------------------------------------------------------

    def _apply(self, order: Order, steps: list[Step], broker_order_id: str, cause: int) -> bool:
        if not _bookable(order, steps):
            return False
        for step in steps:
            order = order.transition(
                step.status,
                self._bus.clock.now(),
                reason=step.reason,
                fill_quantity=step.fill_quantity,
                fill_price=step.fill_price,
                fill_fee=step.fill_fee,
                broker_order_id=broker_order_id,
                execution_id=step.execution_id,
                quantity=step.quantity,
            )
            if step.fill_quantity:
                self.fills_booked += 1
            if step.status is OrderStatus.FILLED:
                self.stats.filled += 1
            elif step.status is OrderStatus.CANCELLED:
                self.stats.cancelled += 1
            elif step.status is OrderStatus.REJECTED:
                self.stats.rejected += 1
            self._record(order, cause)
        if not order.is_open:
            self._unanswered.pop(order.client_order_id, None)
            self._resending.discard(order.client_order_id)
        return True

    def _record(self, order: Order, caused_by: int) -> Envelope:
        self._orders[order.order_id] = order
        self._by_client_id[order.client_order_id] = order.order_id
        envelope = self._bus.publish(OrderUpdated(order), caused_by=caused_by)
        self._last_seq[order.order_id] = envelope.seq
        return envelope

    def _known(self, client_order_id: str) -> Order | None:
        order_id = self._by_client_id.get(client_order_id)
        return self._orders[order_id] if order_id is not None else None

    # --- start-up ----------------------------------------------------------------------

    def restore(self, orders: list[tuple[Order, int]]) -> None:
        """Take back the orders recorded in the audit log (each with the seq of its
        latest event), before any input is sequenced."""
        for order, seq in orders:
            self._orders[order.order_id] = order
            self._by_client_id[order.client_order_id] = order.order_id
            self._last_seq[order.order_id] = seq

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

    def unresolved(self) -> list[Order]:
        """Orders sent without a clear answer, still being looked up."""
        return [o for o in self._orders.values() if o.status is OrderStatus.SUBMITTED]


def _bookable(order: Order, steps: list[Step]) -> bool:
    """A broker's number outside the numeric domain is a broker bug: never booked."""
    for step in steps:
        if step.fill_quantity and not (
            numeric.order_quantity_in_domain(step.fill_quantity)
            and numeric.decimal_price_in_domain(step.fill_price)
        ):
            log.error(
                "broker fill for %s refused: %s @ %s is outside the numeric domain",
                order.client_order_id,
                step.fill_quantity,
                step.fill_price,
            )
            return False
    return True
