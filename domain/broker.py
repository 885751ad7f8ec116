"""What a broker tells the core, in the domain's words: reports of orders as the
broker sees them, answers to requests that did not succeed, and snapshots of
the whole account for reconciliation.

Each of these reaches the core as an input through the sequencer and is
journaled before it changes anything (`BrokerReportReceived`,
`BrokerRequestFailed`, `BrokerSwept`), so a replay of the journal reproduces a
session with a real broker without that broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from domain.orders import OrderStatus, OrderType, Side, TimeInForce
from domain.portfolio import Account, Position

ZERO = Decimal(0)


class ReportSource(str, Enum):
    """What told us: the answer to our own request, the broker's event stream, a
    lookup of one order, or a sweep of the broker's REST state."""

    SUBMIT = "SUBMIT"
    CANCEL = "CANCEL"
    STREAM = "STREAM"
    LOOKUP = "LOOKUP"
    SWEEP = "SWEEP"


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution (fill) at the broker: its own size and price, not the order's
    cumulative ones. `execution_id` makes a repeat recognisable; `fee` is what the
    broker charged for it (commission and regulatory fees), in the account's money."""

    execution_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An order as the broker sees it now. `filled_quantity` is cumulative and
    `average_fill_price` the average over it: the truth a fill is checked against.
    `broker_status` is the broker's own word for the state (kept for the audit
    trail); `status` is what it means in the domain."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    status: OrderStatus
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    filled_quantity: Decimal = ZERO
    average_fill_price: Decimal = ZERO
    reason: str = ""
    broker_status: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BrokerReport:
    """The broker said something about one order. `event` is the broker's word for
    what happened (for example "partial_fill"); `execution` is the fill it
    announces, if any."""

    order: BrokerOrder
    source: ReportSource
    event: str = ""
    execution: Execution | None = None

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id


class RequestKind(str, Enum):
    SUBMIT = "SUBMIT"
    CANCEL = "CANCEL"
    LOOKUP = "LOOKUP"


class Outcome(str, Enum):
    """How a request to the broker ended when it did not end with a report.

    REFUSED: a definite no (the broker proved it did not and will not act: a 403
    for buying power, a 422 for a bad price); never retried.
    UNKNOWN: no answer that proves either way (timeout, dropped connection, 5xx,
    429, our own "client_order_id must be unique"): the order is looked up.
    NOT_FOUND: a lookup the broker answered: it has no order with that id.
    NOT_SENT: the service did not send it (its intent could not be made durable).
    """

    REFUSED = "REFUSED"
    UNKNOWN = "UNKNOWN"
    NOT_FOUND = "NOT_FOUND"
    NOT_SENT = "NOT_SENT"


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """A request about `client_order_id` that did not end with a report.
    `code` is the broker's (for example "40310000", or "http-504", "timeout")."""

    client_order_id: str
    request: RequestKind
    outcome: Outcome
    code: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """The broker's whole state as one REST sweep read it: the account, every
    position, and the orders that matter (every open one, and closed ones the
    core may still think open)."""

    account: Account
    positions: tuple[Position, ...]
    orders: tuple[BrokerOrder, ...]
    taken_at: datetime | None = None
    """The broker's time of the sweep (None: a broker without a clock of its own)."""


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """What the service trades on: shown at start-up and by GetStatus."""

    name: str
    endpoint: str = ""
    account: str = ""
    live: bool = False


@dataclass(frozen=True, slots=True)
class BrokerHealth:
    """The adapter's own view of its connection, cheap to read (no I/O).
    `reachable`: its last request got an answer; `stream_connected`: its event
    stream is up (True for a broker without one)."""

    reachable: bool
    stream_connected: bool = True
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.reachable and self.stream_connected


@dataclass(frozen=True, slots=True)
class PositionDifference:
    """A symbol where the core's position and the broker's differed at a sweep."""

    symbol: str
    core_quantity: Decimal
    broker_quantity: Decimal


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What a sweep found and did: orders adopted (placed outside the service, or
    unknown to it), orders whose state moved, our open orders the broker did not
    list (each then looked up), and position differences. `positions_applied`:
    the broker's positions and cash became the core's (False when fills arrived
    while the sweep ran, so its positions were already out of date)."""

    reason: str
    adopted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    differences: tuple[PositionDifference, ...] = ()
    positions_applied: bool = True

    @property
    def summary(self) -> str:
        parts = [
            f"{len(self.adopted)} adopted",
            f"{len(self.updated)} updated",
            f"{len(self.missing)} looked up",
            f"{len(self.differences)} position difference(s)",
        ]
        if not self.positions_applied:
            parts.append("positions not applied (fills arrived during the sweep)")
        return f"{self.reason}: " + ", ".join(parts)
