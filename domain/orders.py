"""Orders, their state machine and fills."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum

from domain.errors import IllegalTransition


class Side(str, Enum):
    """Direction of a signal, idea or order."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Enum):
    """How the order is priced at the broker."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(str, Enum):
    """How long an order works at the broker (Alpaca's six)."""

    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    OPG = "OPG"
    CLS = "CLS"


def default_time_in_force(order_type: OrderType) -> TimeInForce:
    """DAY for every type: an order a strategy sized on today's prices should not
    outlive today's session (and Alpaca takes fractional orders only as DAY). A
    signal or a person may ask for another."""
    del order_type  # the same for both types today; the seam is here for a new one
    return TimeInForce.DAY


class OrderStatus(str, Enum):
    """Lifecycle of an order.

    NEW: durable as an intent, not yet sent. SUBMITTED: sent, not yet acknowledged
    (also an order whose submission had no clear answer, while it is looked up).
    PENDING_CANCEL: a cancel was asked for and the broker has not answered."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    PENDING_CANCEL = "PENDING_CANCEL"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

_WORKING_OR_ENDED = frozenset(
    {
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.PENDING_CANCEL,
    }
)

# Every legal move of the state machine; anything else is refused. A broker may
# report a fill before it reports the acceptance, so NEW may jump straight to a
# fill; a broker may refuse a cancel, so PENDING_CANCEL may go back to working.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: _WORKING_OR_ENDED | {OrderStatus.SUBMITTED},
    OrderStatus.SUBMITTED: _WORKING_OR_ENDED,
    OrderStatus.ACCEPTED: _WORKING_OR_ENDED - {OrderStatus.ACCEPTED},
    OrderStatus.PARTIALLY_FILLED: _WORKING_OR_ENDED - {OrderStatus.ACCEPTED, OrderStatus.REJECTED},
    OrderStatus.PENDING_CANCEL: _WORKING_OR_ENDED - {OrderStatus.PENDING_CANCEL},
}


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in _TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True, slots=True)
class OrderStateChange:
    """One entry of an order's history."""

    status: OrderStatus
    at: datetime
    reason: str = ""
    fill_quantity: Decimal = Decimal(0)
    fill_price: Decimal = Decimal(0)
    execution_id: str = ""
    """The broker's id of the execution a fill came from (a repeat is not booked twice)."""
    fill_fee: Decimal = Decimal(0)
    """What the broker charged for this fill (commission); it leaves the cash with it."""


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the execution engine tracks it.

    `client_order_id` is derived from the risk decision that approved it, so a
    retry or a restart can never place the same decision twice. An order placed
    at the broker outside the service (a person in the broker's dashboard) is
    adopted with `external` set and no decision.
    """

    order_id: str
    client_order_id: str
    decision_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    average_fill_price: Decimal
    created_at: datetime
    updated_at: datetime
    broker_order_id: str = ""
    history: tuple[OrderStateChange, ...] = field(default=())
    time_in_force: TimeInForce = TimeInForce.DAY
    external: bool = False
    amount: Decimal | None = None
    """A notional order: this much money's worth, at market. `quantity` is then the
    estimate the risk gate judged, until the broker says what it bought or sold."""

    @property
    def executions(self) -> frozenset[str]:
        """Execution ids already booked on this order."""
        return frozenset(c.execution_id for c in self.history if c.execution_id)

    @property
    def fees(self) -> Decimal:
        """Every fill's fee, summed."""
        return sum((c.fill_fee for c in self.history), Decimal(0))

    @property
    def filled_notional(self) -> Decimal:
        """Quantity times price over every fill, exactly (no division)."""
        return sum((c.fill_quantity * c.fill_price for c in self.history), Decimal(0))

    @property
    def working_status(self) -> OrderStatus:
        """Where the order goes back to when the broker refuses to cancel it."""
        return OrderStatus.PARTIALLY_FILLED if self.filled_quantity else OrderStatus.ACCEPTED

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    def transition(
        self,
        new: OrderStatus,
        at: datetime,
        *,
        reason: str = "",
        fill_quantity: Decimal = Decimal(0),
        fill_price: Decimal = Decimal(0),
        fill_fee: Decimal = Decimal(0),
        broker_order_id: str = "",
        execution_id: str = "",
        quantity: Decimal | None = None,
    ) -> Order:
        """Return the order moved to `new`, or raise IllegalTransition. `quantity`: a
        notional order's quantity as the broker fixed it."""
        if not can_transition(self.status, new):
            raise IllegalTransition(
                f"order {self.order_id} cannot move from {self.status.value} to {new.value}"
            )
        if quantity is not None and self.amount is None:
            raise IllegalTransition(f"order {self.order_id} has a fixed quantity")
        size = self.quantity if quantity is None else quantity
        filled = self.filled_quantity + fill_quantity
        if filled > size:
            raise IllegalTransition(
                f"order {self.order_id} would be overfilled: {filled} > {self.quantity}"
            )
        average = self.average_fill_price
        if fill_quantity:
            # One division over the exact notional of every fill, never a running
            # average: partial fills come out at the exact average, however many.
            average = (self.filled_notional + fill_quantity * fill_price) / filled
        change = OrderStateChange(
            new, at, reason, fill_quantity, fill_price, execution_id, fill_fee
        )
        return replace(
            self,
            status=new,
            quantity=size,
            filled_quantity=filled,
            average_fill_price=average,
            updated_at=at,
            broker_order_id=broker_order_id or self.broker_order_id,
            history=(*self.history, change),
        )


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Command from execution to a broker."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    amount: Decimal | None = None
    """Set: a notional order for this much money (`quantity` is only the estimate)."""


@dataclass(frozen=True, slots=True)
class ManualOrder:
    """An order a person asks for (SubmitOrder, CheckOrder), validated at the edge:
    a positive quantity, a limit price exactly when the type is LIMIT."""

    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    reason: str = ""
    time_in_force: TimeInForce | None = None
    """None: the default for the order type (`default_time_in_force`)."""
    amount: Decimal | None = None
    """Set: a notional (market, DAY) order for this much money; `quantity` is then 0
    and the signal's quantity is estimated from the last price."""
