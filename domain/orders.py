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


class OrderStatus(str, Enum):
    """Lifecycle of an order. NEW means durable as an intent, not yet acknowledged."""

    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

# Every legal move of the state machine; anything else is refused. A broker may
# report a fill before it reports the acceptance, so NEW may jump straight to a fill.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.ACCEPTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
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


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the execution engine tracks it.

    `client_order_id` is derived from the risk decision that approved it, so a
    retry or a restart can never place the same decision twice.
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
        broker_order_id: str = "",
    ) -> Order:
        """Return the order moved to `new`, or raise IllegalTransition."""
        if not can_transition(self.status, new):
            raise IllegalTransition(
                f"order {self.order_id} cannot move from {self.status.value} to {new.value}"
            )
        filled = self.filled_quantity + fill_quantity
        if filled > self.quantity:
            raise IllegalTransition(
                f"order {self.order_id} would be overfilled: {filled} > {self.quantity}"
            )
        average = self.average_fill_price
        if fill_quantity:
            average = (
                self.average_fill_price * self.filled_quantity + fill_price * fill_quantity
            ) / filled
        change = OrderStateChange(new, at, reason, fill_quantity, fill_price)
        return replace(
            self,
            status=new,
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


@dataclass(frozen=True, slots=True)
class BrokerReport:
    """What a broker tells us about one of our orders (an input to the sequencer)."""

    client_order_id: str
    status: OrderStatus
    broker_order_id: str = ""
    fill_quantity: Decimal = Decimal(0)
    fill_price: Decimal = Decimal(0)
    reason: str = ""


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
