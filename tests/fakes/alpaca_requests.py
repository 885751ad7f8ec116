"""What the fake Alpaca accepts: the rules an order request or an order query must meet on their
own, answered with Alpaca's error documents. Rules that need the account (unique client ids,
buying power, shares available) are the broker's (`alpaca_broker`).

Messages known from Alpaca (see /work/shared/research/alpaca.md): "client_order_id must be
unique" (422 40010001), "invalid limit_price 290.123. sub-penny increment does not fulfill
minimum pricing criteria" (422 42210000), 'only type="limit" is allowed for extended hours
orders', "fractional orders must be DAY orders". The other messages are plausible, not quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes.alpaca_wire import Refusal, decimals, invalid, unprocessable

CLIENT_ORDER_ID_MAX = 48
SIDES = frozenset({"buy", "sell"})
TYPES = frozenset({"market", "limit"})
UNSUPPORTED_TYPES = frozenset({"stop", "stop_limit", "trailing_stop"})
TIME_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
MAX_DECIMALS = 9


@dataclass(frozen=True)
class OrderTicket:
    """A well-formed POST /v2/orders body."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    extended_hours: bool
    client_order_id: str | None
    position_intent: str | None


@dataclass(frozen=True)
class OrdersQuery:
    """A well-formed GET /v2/orders query."""

    status: str  # open | closed | all
    limit: int
    direction: str  # asc | desc
    after: datetime | None
    until: datetime | None
    symbols: frozenset[str]
    side: str | None


def decimal_field(body: Mapping[str, Any], name: str) -> Decimal | None:
    """A number as the SDK sends it (a JSON number: alpaca-py's request models hold floats, read
    here as Decimal to keep the digits sent) or as a string (which Alpaca also accepts)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
        raise invalid(f"{name} is invalid")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid(f"{name} is invalid") from None
    if not number.is_finite():
        raise invalid(f"{name} is invalid")
    return number


def parse_order(body: Any) -> OrderTicket:
    if not isinstance(body, dict):
        raise Refusal(400, 40010000, "request body format is invalid")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise invalid("symbol is required")
    qty = decimal_field(body, "qty")
    notional = decimal_field(body, "notional")
    if qty is None and notional is None:
        raise invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise invalid("only one of qty or notional may be specified")
    side = body.get("side")
    if side not in SIDES:
        raise invalid("side must be buy or sell")
    order_type = body.get("type")
    if order_type in UNSUPPORTED_TYPES:
        raise invalid(f'this fake supports type "market" and "limit" only, not "{order_type}"')
    if order_type not in TYPES:
        raise invalid("invalid order type")
    time_in_force = body.get("time_in_force")
    if time_in_force not in TIME_IN_FORCE:
        raise invalid("invalid time_in_force")
    if body.get("order_class") not in (None, "", "simple"):
        raise invalid(f'this fake supports simple orders only, not "{body["order_class"]}"')
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and not isinstance(client_order_id, str):
        raise invalid("client_order_id is invalid")
    if client_order_id is not None and len(client_order_id) > CLIENT_ORDER_ID_MAX:
        raise invalid(f"client_order_id must be no more than {CLIENT_ORDER_ID_MAX} characters")
    for name, amount in (("qty", qty), ("notional", notional)):
        if amount is None:
            continue
        if amount <= 0:
            raise invalid(f"{name} must be > 0")
        if decimals(amount) > MAX_DECIMALS:
            raise invalid(f"{name} must have no more than {MAX_DECIMALS} decimal places")
    limit_price = decimal_field(body, "limit_price")
    if order_type == "limit":
        if limit_price is None:
            raise invalid("limit_price is required for limit orders")
        if limit_price <= 0:
            raise invalid("limit_price must be > 0")
        if decimals(limit_price) > (2 if limit_price >= 1 else 4):
            raise unprocessable(
                f"invalid limit_price {limit_price}. sub-penny increment does not fulfill "
                "minimum pricing criteria"
            )
    elif limit_price is not None:
        raise invalid("limit_price must not be given for market orders")
    if notional is not None and order_type != "market":
        raise unprocessable("notional orders must be market orders")
    fractional = notional is not None or (qty is not None and qty != qty.to_integral_value())
    if fractional and time_in_force != "day":
        raise unprocessable("fractional orders must be DAY orders")
    extended_hours = bool(body.get("extended_hours", False))
    if extended_hours and order_type != "limit":
        raise invalid('only type="limit" is allowed for extended hours orders')
    if extended_hours and time_in_force != "day":
        raise invalid('only time_in_force="day" is allowed for extended hours orders')
    intent = body.get("position_intent")
    return OrderTicket(
        symbol=symbol,
        side=side,
        type=order_type,
        time_in_force=time_in_force,
        qty=qty,
        notional=notional,
        limit_price=limit_price,
        extended_hours=extended_hours,
        client_order_id=client_order_id,
        position_intent=intent if isinstance(intent, str) and intent else None,
    )


def parse_orders_query(query: Mapping[str, str]) -> OrdersQuery:
    status = query.get("status", "open")
    if status not in ("open", "closed", "all"):
        raise invalid("status is invalid")
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise invalid("limit is invalid") from None
    if not 0 < limit <= 500:
        raise invalid("limit must be between 1 and 500")
    direction = query.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise invalid("direction is invalid")
    side = query.get("side")
    if side is not None and side not in SIDES:
        raise invalid("side is invalid")
    return OrdersQuery(
        status=status,
        limit=limit,
        direction=direction,
        after=_query_time(query, "after"),
        until=_query_time(query, "until"),
        symbols=frozenset(s for s in query.get("symbols", "").split(",") if s),
        side=side,
    )


def _query_time(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{name} is invalid") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
