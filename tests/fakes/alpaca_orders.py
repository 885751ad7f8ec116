"""What the fake Alpaca holds: orders and positions, and their JSON exactly as Alpaca's v2 API
and the trade_updates stream carry it (numbers as strings, times RFC 3339 with a Z)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.fakes.alpaca_wire import fmt, fmt_or_none, rfc3339

ZERO = Decimal(0)
# Statuses after which an order never changes again (Alpaca's `status=closed`).
TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
NOT_CANCELABLE = TERMINAL | {"pending_cancel", "pending_replace"}


def asset_id(symbol: str) -> str:
    """A stable asset id per symbol, as Alpaca's are."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-alpaca/asset/{symbol}"))


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    extended_hours: bool
    position_intent: str
    submitted_at: datetime
    status: str = "accepted"
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO  # sum of qty * price over the executions
    awaiting_activation: bool = True  # "new" (and an automatic fill) not happened yet
    executions: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def filled_avg_price(self) -> Decimal | None:
        return self.filled_value / self.filled_qty if self.filled_qty else None

    @property
    def remaining_qty(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

    def to_json(self) -> dict[str, Any]:
        """The order exactly as Alpaca's v2 REST API and trade_updates carry it."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.submitted_at),
            "updated_at": rfc3339(self.updated_at or self.submitted_at),
            "submitted_at": rfc3339(self.submitted_at),
            "filled_at": _time_or_none(self.filled_at),
            "expired_at": _time_or_none(self.expired_at),
            "expires_at": None,
            "canceled_at": _time_or_none(self.canceled_at),
            "failed_at": _time_or_none(self.failed_at),
            "replaced_at": _time_or_none(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": asset_id(self.symbol),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": fmt_or_none(self.notional),
            "qty": fmt_or_none(self.qty),
            "filled_qty": fmt(self.filled_qty),
            "filled_avg_price": fmt_or_none(self.filled_avg_price),
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": fmt_or_none(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }


def _time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


@dataclass
class Position:
    symbol: str
    qty: Decimal = ZERO  # negative when short
    avg_entry_price: Decimal = ZERO


def position_json(position: Position, price: Decimal, held_for_orders: Decimal) -> dict[str, Any]:
    """A position as GET /v2/positions answers it, marked at `price`."""
    market_value = position.qty * price
    cost_basis = position.qty * position.avg_entry_price
    unrealized = market_value - cost_basis
    plpc = unrealized / abs(cost_basis) if cost_basis else ZERO
    return {
        "asset_id": asset_id(position.symbol),
        "symbol": position.symbol,
        "exchange": "NASDAQ",
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": fmt(position.qty),
        "qty_available": fmt(position.qty - held_for_orders if position.qty > 0 else position.qty),
        "avg_entry_price": fmt(position.avg_entry_price),
        "side": "long" if position.qty > 0 else "short",
        "market_value": fmt(market_value),
        "cost_basis": fmt(cost_basis),
        "unrealized_pl": fmt(unrealized),
        "unrealized_plpc": fmt(plpc),
        "unrealized_intraday_pl": fmt(unrealized),
        "unrealized_intraday_plpc": fmt(plpc),
        "current_price": fmt(price),
        "lastday_price": fmt(price),
        "change_today": "0",
    }


def asset_json(symbol: str) -> dict[str, Any]:
    """An asset as GET /v2/assets/{symbol} answers it: every symbol is a tradable stock."""
    return {
        "id": asset_id(symbol),
        "class": "us_equity",
        "exchange": "NASDAQ",
        "symbol": symbol,
        "name": f"{symbol} Inc. Common Stock",
        "status": "active",
        "tradable": True,
        "marginable": True,
        "maintenance_margin_requirement": 30,
        "shortable": True,
        "easy_to_borrow": True,
        "fractionable": True,
        "attributes": [],
    }
