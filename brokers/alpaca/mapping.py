"""Alpaca's words for orders, events, accounts and positions, in the domain's.

Every amount is read as a `Decimal` from the JSON string Alpaca sends (the client
and the stream run with `raw_data=True`, so no SDK model ever turns one into a
float). A JSON number, which Alpaca does not send for these fields, is read from
its shortest repr, which is the text it was parsed from.

Order status (`order["status"]`, all 18 values of alpaca-py's `OrderStatus`):

| Alpaca status        | domain           | why |
| -------------------- | ---------------- | --- |
| new                  | working          | routed, working at the venue |
| accepted             | working          | taken, not yet routed (after hours: queued) |
| pending_new          | working          | routed, the venue has not acknowledged it yet |
| accepted_for_bidding | working          | taken for an auction (OPG/CLS) |
| pending_review       | working          | held for a review; it can still fill or be rejected |
| held                 | working          | a bracket/OTO leg waiting for its parent |
| calculated           | working          | done for the day, settlement pending |
| stopped              | working          | a fill is guaranteed at a stated price, not yet done |
| suspended            | working          | not eligible for trading for now, still open at Alpaca |
| done_for_day         | working          | no more fills today; expires, or works next session |
| pending_replace      | working          | a replace is in flight; the order still works |
| partially_filled     | PARTIALLY_FILLED | |
| filled               | FILLED           | |
| pending_cancel       | PENDING_CANCEL   | a cancel is in flight; next comes canceled, or a fill |
| canceled             | CANCELLED        | reason "canceled at Alpaca", or the event's reason |
| expired              | EXPIRED          | its time in force ran out |
| replaced             | CANCELLED        | reason "replaced by <id>": the replacement is another |
|                      |                  | order (its own client order id), adopted as external |
| rejected             | REJECTED         | |
| anything else        | working          | logged as a warning; the next REST sweep resolves it |

"working" is ACCEPTED, or PARTIALLY_FILLED once the cumulative `filled_qty` is
above zero: an order Alpaca still holds open, whatever its sub-state.

Trade events (`data["event"]`, always a plain `str` in alpaca-py 0.44): an event
that says what happened decides the status; an informational one leaves it to
the order snapshot the event carries (so a `restated` or a `pending_replace`
during a pending cancel stays PENDING_CANCEL):

| event            | domain status |
| ---------------- | ------------- |
| fill             | FILLED, with its Execution |
| partial_fill     | PARTIALLY_FILLED, with its Execution |
| canceled         | CANCELLED |
| expired          | EXPIRED |
| rejected         | REJECTED |
| replaced         | CANCELLED ("replaced by <id>") |
| pending_cancel   | PENDING_CANCEL |
| new, accepted, pending_new, restated, done_for_day, calculated, stopped, |
| suspended, pending_replace, order_replace_rejected, order_cancel_rejected |
|                  | the order's own status (table above) |
| anything else    | the order's own status, logged as a warning |

`order_cancel_rejected` thus moves a PENDING_CANCEL order back to working (or to
FILLED when that is why the cancel failed), as the domain's state machine allows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.broker import BrokerOrder, BrokerReport, Execution, ReportSource
from domain.orders import OrderStatus, OrderType, Side, TimeInForce
from domain.portfolio import Account, Position

log = logging.getLogger(__name__)

ZERO = Decimal(0)
_REASON_LIMIT = 200

# --- enums: one dict and its inverse each ---------------------------------------------

SIDE_TO_ALPACA: dict[Side, str] = {Side.BUY: "buy", Side.SELL: "sell"}
SIDE_FROM_ALPACA: dict[str, Side] = {v: k for k, v in SIDE_TO_ALPACA.items()}

TIME_IN_FORCE_TO_ALPACA: dict[TimeInForce, str] = {
    TimeInForce.DAY: "day",
    TimeInForce.GTC: "gtc",
    TimeInForce.IOC: "ioc",
    TimeInForce.FOK: "fok",
    TimeInForce.OPG: "opg",
    TimeInForce.CLS: "cls",
}
TIME_IN_FORCE_FROM_ALPACA: dict[str, TimeInForce] = {
    v: k for k, v in TIME_IN_FORCE_TO_ALPACA.items()
}

ORDER_TYPE_TO_ALPACA: dict[OrderType, str] = {OrderType.MARKET: "market", OrderType.LIMIT: "limit"}
ORDER_TYPE_FROM_ALPACA: dict[str, OrderType] = {v: k for k, v in ORDER_TYPE_TO_ALPACA.items()} | {
    # Orders placed outside the service may be of a type the domain does not have:
    # each is named by what it executes as once triggered.
    "stop": OrderType.MARKET,
    "trailing_stop": OrderType.MARKET,
    "stop_limit": OrderType.LIMIT,
}

# --- statuses and events ----------------------------------------------------------------

WORKING: None = None
"""In the tables: ACCEPTED, or PARTIALLY_FILLED once something has filled."""

STATUS_FROM_ALPACA: dict[str, OrderStatus | None] = {
    "new": WORKING,
    "accepted": WORKING,
    "pending_new": WORKING,
    "accepted_for_bidding": WORKING,
    "pending_review": WORKING,
    "held": WORKING,
    "calculated": WORKING,
    "stopped": WORKING,
    "suspended": WORKING,
    "done_for_day": WORKING,
    "pending_replace": WORKING,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "replaced": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}

FROM_ORDER: None = None
"""In the event table: the event is informational; the order's own status decides."""

STATUS_FROM_EVENT: dict[str, OrderStatus | None] = {
    "fill": OrderStatus.FILLED,
    "partial_fill": OrderStatus.PARTIALLY_FILLED,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.CANCELLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "new": FROM_ORDER,
    "accepted": FROM_ORDER,
    "pending_new": FROM_ORDER,
    "restated": FROM_ORDER,
    "done_for_day": FROM_ORDER,
    "calculated": FROM_ORDER,
    "stopped": FROM_ORDER,
    "suspended": FROM_ORDER,
    "pending_replace": FROM_ORDER,
    "order_replace_rejected": FROM_ORDER,
    "order_cancel_rejected": FROM_ORDER,
}

FILL_EVENTS = frozenset({"fill", "partial_fill"})


def working_status(filled_quantity: Decimal) -> OrderStatus:
    return OrderStatus.PARTIALLY_FILLED if filled_quantity > 0 else OrderStatus.ACCEPTED


def status_from_alpaca(status: str, filled_quantity: Decimal) -> OrderStatus:
    """The domain's status for Alpaca's order status (table in the module docstring)."""
    if status not in STATUS_FROM_ALPACA:
        log.warning(
            "unknown Alpaca order status %r: kept open as working until a sweep", status[:40]
        )
    mapped = STATUS_FROM_ALPACA.get(status, WORKING)
    return working_status(filled_quantity) if mapped is None else mapped


def status_from_event(event: str, order_status: OrderStatus) -> OrderStatus:
    """The domain's status after a trade event, given the status the event's order
    snapshot maps to (table in the module docstring)."""
    if event not in STATUS_FROM_EVENT:
        log.warning("unknown Alpaca trade event %r: the order's own status is kept", event[:40])
    mapped = STATUS_FROM_EVENT.get(event, FROM_ORDER)
    return order_status if mapped is None else mapped


# --- parsing ------------------------------------------------------------------------------


class MalformedMessage(ValueError):
    """A REST body or stream message that does not have the shape of Alpaca's."""


def parse_decimal(raw: Mapping[str, Any], key: str, *, default: Decimal | None = None) -> Decimal:
    """`raw[key]` as a finite Decimal; `default` when it is absent, null or ""."""
    value = raw.get(key)
    if value is None or value == "":
        if default is None:
            raise MalformedMessage(f"{key} is missing")
        return default
    if isinstance(value, bool):
        raise MalformedMessage(f"{key} is not a number: {value!r}")
    try:
        if isinstance(value, str):
            number = Decimal(value.strip())
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            raise MalformedMessage(f"{key} is not a number: {value!r:.40}")
    except InvalidOperation as exc:
        raise MalformedMessage(f"{key} is not a number: {value!r:.40}") from exc
    if not number.is_finite():
        raise MalformedMessage(f"{key} is not finite: {value!r:.40}")
    return number


def _text(raw: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise MalformedMessage(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise MalformedMessage(f"{key} is not a string: {value!r:.40}")
    return value


def _timestamp(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        # Alpaca sends nanoseconds; Python keeps microseconds (3.11 truncates the rest).
        return datetime.fromisoformat(value)
    except ValueError:
        log.warning("unreadable Alpaca timestamp %s=%r", key, value[:40])
        return None


def _reason(status: OrderStatus, replaced: bool, order: Mapping[str, Any], said: str) -> str:
    said = said.strip()[:_REASON_LIMIT]
    if replaced:
        replaced_by = order.get("replaced_by")
        base = f"replaced by {replaced_by}" if replaced_by else "replaced"
        return f"{base} ({said})" if said else base
    if said:
        return said
    if status is OrderStatus.CANCELLED:
        return "canceled at Alpaca"
    if status is OrderStatus.EXPIRED:
        tif = order.get("time_in_force")
        return f"expired at Alpaca (time in force {tif})" if tif else "expired at Alpaca"
    if status is OrderStatus.REJECTED:
        return "rejected by Alpaca"
    return ""


def broker_order_from(raw: Mapping[str, Any]) -> BrokerOrder:
    """An Alpaca order (a REST body, or the `order` of a trade update) as a
    BrokerOrder. Raises MalformedMessage."""
    return _order(raw, event=None, said="")


def _order(raw: Any, *, event: str | None, said: str) -> BrokerOrder:
    """`event`: the trade event the order came with (None: a REST body), which may
    decide its status; `said`: the event's reason, if any (Alpaca puts it on the
    event, not on the order)."""
    if not isinstance(raw, Mapping):
        raise MalformedMessage(f"an order is an object, not {type(raw).__name__}")
    raw_status = _text(raw, "status")
    side_word = _text(raw, "side")
    side = SIDE_FROM_ALPACA.get(side_word)
    if side is None:
        raise MalformedMessage(f"unknown side {side_word!r:.40}")
    filled = parse_decimal(raw, "filled_qty", default=ZERO)
    # A notional order has no quantity until it fills: what filled is its size so far.
    quantity = parse_decimal(raw, "qty", default=filled)
    limit_price = parse_decimal(raw, "limit_price", default=ZERO) or None
    type_word = _text(raw, "type", required=False) or _text(raw, "order_type", required=False)
    order_type = ORDER_TYPE_FROM_ALPACA.get(type_word)
    if order_type is None:
        log.warning("unknown Alpaca order type %r: read by its limit price", type_word[:40])
        order_type = OrderType.MARKET if limit_price is None else OrderType.LIMIT
    tif_word = _text(raw, "time_in_force", required=False)
    time_in_force = TIME_IN_FORCE_FROM_ALPACA.get(tif_word)
    if time_in_force is None:
        log.warning("unknown Alpaca time in force %r: read as DAY", tif_word[:40])
        time_in_force = TimeInForce.DAY
    status = status_from_alpaca(raw_status, filled)
    if event is not None:
        status = status_from_event(event, status)
    replaced = raw_status == "replaced" or event == "replaced"
    return BrokerOrder(
        client_order_id=_text(raw, "client_order_id"),
        broker_order_id=_text(raw, "id"),
        symbol=_text(raw, "symbol"),
        side=side,
        quantity=quantity,
        order_type=order_type,
        status=status,
        limit_price=limit_price,
        time_in_force=time_in_force,
        filled_quantity=filled,
        average_fill_price=parse_decimal(raw, "filled_avg_price", default=ZERO),
        reason=_reason(status, replaced, raw, said),
        broker_status=raw_status,
        updated_at=_timestamp(raw, "updated_at"),
    )


def report_from_update(raw: Mapping[str, Any]) -> BrokerReport | None:
    """A trade_updates message (the whole `{"stream": ..., "data": ...}` the SDK hands
    a raw-data handler, or just its `data`) as a STREAM report; None, logged, when it
    is malformed. Events about orders placed outside the service are reported the
    same way (the engine adopts them)."""
    try:
        data = raw.get("data") if "stream" in raw else raw
        if not isinstance(data, Mapping):
            raise MalformedMessage("no data")
        event = _text(data, "event")
        said = data.get("reason")
        order = _order(data.get("order"), event=event, said=said if isinstance(said, str) else "")
        execution = None
        if event in FILL_EVENTS:
            execution = Execution(
                execution_id=_text(data, "execution_id"),
                quantity=parse_decimal(data, "qty"),
                price=parse_decimal(data, "price"),
            )
        return BrokerReport(order, ReportSource.STREAM, event, execution)
    except (MalformedMessage, AttributeError, TypeError) as exc:
        log.warning("malformed Alpaca trade update dropped (%s): %.300r", exc, raw)
        return None


def account_from(raw: Mapping[str, Any]) -> Account:
    """GET /v2/account as an Account. Raises MalformedMessage."""
    return Account(
        cash=parse_decimal(raw, "cash"),
        equity=parse_decimal(raw, "equity"),
        buying_power=parse_decimal(raw, "buying_power"),
        currency=_text(raw, "currency", required=False) or "USD",
    )


def position_from(raw: Mapping[str, Any]) -> Position:
    """One of GET /v2/positions as a Position (negative quantity for a short).
    Raises MalformedMessage."""
    quantity = parse_decimal(raw, "qty")
    if raw.get("side") == "short" and quantity > 0:
        quantity = -quantity
    average = parse_decimal(raw, "avg_entry_price")
    return Position(
        symbol=_text(raw, "symbol"),
        quantity=quantity,
        average_price=average,
        market_price=parse_decimal(raw, "current_price", default=average),
    )
