"""What a broker's report means for an order the core knows: the steps of its
state machine the report justifies, and nothing else. Pure: the same order and
report always give the same steps, so a replay of journaled reports rebuilds
the same orders.

Rules, in the order they apply:

* **Fills.** The broker's cumulative filled quantity is the truth. A report
  whose cumulative quantity is above the order's books the difference, at the
  execution's own price when the report's execution is exactly that
  difference, otherwise at the price that makes the average come out as the
  broker's average. An execution already booked (same execution id), or a
  cumulative quantity not above the order's, books nothing: a fill is applied
  once, however often the stream repeats it, and a stale report never unbooks.
  A fill past the order's quantity is not booked (`Overfill`).
* **State.** The broker's state is taken when the machine allows the move; a
  report that would move an order back (an old snapshot saying "accepted" for
  an order already partly filled) is stale and moves nothing. A pending cancel
  goes back to working only when the broker says the cancel was refused.
* **Ended orders** do not move again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.broker import BrokerReport, ReportSource
from domain.orders import Order, OrderStatus, can_transition

ZERO = Decimal(0)
CANCEL_REFUSED_EVENTS = frozenset({"order_cancel_rejected"})


class Overfill(Exception):
    """The broker reports more filled than the order's quantity: never booked."""


@dataclass(frozen=True, slots=True)
class Step:
    """One move of the order's state machine."""

    status: OrderStatus
    reason: str
    fill_quantity: Decimal = ZERO
    fill_price: Decimal = ZERO
    execution_id: str = ""
    quantity: Decimal | None = None
    """A notional order's quantity as the broker fixed it."""
    fill_fee: Decimal = ZERO


def plan(order: Order, report: BrokerReport) -> list[Step]:
    """The steps `report` justifies for `order` (empty: it changes nothing)."""
    if not order.is_open:
        return []
    steps: list[Step] = []
    reason = _reason(report)
    size = _size(order, report)
    fill = _fill(order, report, size)
    status = order.status
    fixed = size if order.amount is not None and size != order.quantity else None
    if fill is not None:
        quantity, price, execution_id, fee = fill
        filled = order.filled_quantity + quantity
        status = OrderStatus.FILLED if filled == size else OrderStatus.PARTIALLY_FILLED
        steps.append(Step(status, reason, quantity, price, execution_id, fixed, fee))
        fixed = None
    wanted = report.order.status
    if status.is_terminal or wanted is status:
        return steps
    if wanted in _WORKING:
        if status in (OrderStatus.NEW, OrderStatus.SUBMITTED) and wanted is OrderStatus.ACCEPTED:
            steps.append(Step(wanted, reason, quantity=fixed))
        elif status is OrderStatus.PENDING_CANCEL and _cancel_refused(report):
            partly = order.filled_quantity or fill is not None
            steps.append(
                Step(OrderStatus.PARTIALLY_FILLED if partly else OrderStatus.ACCEPTED, reason)
            )
        # Otherwise an older view of the order (a snapshot from before its last
        # fill or cancel request), or a fill state with no quantity to book yet.
        return steps
    if can_transition(status, wanted):
        steps.append(Step(wanted, reason))
    return steps


_WORKING = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})


def _size(order: Order, report: BrokerReport) -> Decimal:
    """The order's quantity: its own; for a notional order what the broker filled
    once it says the order is filled (until then the estimate, or what it has
    filled so far if that is more)."""
    if order.amount is None:
        return order.quantity
    seen = report.order
    if seen.status is OrderStatus.FILLED and seen.filled_quantity > ZERO:
        return seen.filled_quantity
    return max(order.quantity, seen.filled_quantity)


def _fill(
    order: Order, report: BrokerReport, size: Decimal
) -> tuple[Decimal, Decimal, str, Decimal] | None:
    """(quantity, price, execution id, fee) to book, or None. The fee is the
    execution's; a fill known only from a cumulative quantity (a sweep) has none."""
    execution = report.execution
    if execution is not None and execution.execution_id in order.executions:
        execution = None  # booked already: a repeat
    cumulative = report.order.filled_quantity
    if cumulative <= ZERO and execution is not None:
        # A broker that reports executions without a cumulative quantity.
        cumulative = order.filled_quantity + execution.quantity
    quantity = cumulative - order.filled_quantity
    if quantity <= ZERO:
        return None
    if cumulative > size:
        raise Overfill(f"order {order.order_id}: the broker reports {cumulative} filled of {size}")
    execution_id = execution.execution_id if execution is not None else ""
    fee = execution.fee if execution is not None else ZERO
    if execution is not None and execution.quantity == quantity:
        return quantity, execution.price, execution_id, fee
    average = report.order.average_fill_price
    if average > ZERO:
        # The price that brings our average to the broker's over the whole quantity.
        price = (average * cumulative - order.filled_notional) / quantity
        return quantity, price, execution_id, fee
    if execution is not None:
        return quantity, execution.price, execution_id, fee
    raise Overfill(f"order {order.order_id}: a fill of {quantity} came with no price")


def _cancel_refused(report: BrokerReport) -> bool:
    return report.source is ReportSource.CANCEL or report.event in CANCEL_REFUSED_EVENTS


def _reason(report: BrokerReport) -> str:
    said = report.event or report.order.broker_status or report.order.status.value.lower()
    text = f"{report.source.value.lower()}: {said}"
    return f"{text} ({report.order.reason})" if report.order.reason else text
