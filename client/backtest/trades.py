"""Fills into round trips: a trade opens when a symbol's position leaves zero and
closes when it is back at zero.

A fill that carries the position through zero (a sell of more than is held, when
shorting is allowed) closes the trade with the part it needs and opens the next
one with the rest; its fee is split between the two in proportion. A trade still
open at the end of the data is listed with no exit, marked at the last price
(`open` set); it is not counted among the closed trades of the summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from domain.orders import Side

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution as the audit log recorded it."""

    at_ns: int
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    order_id: str

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol: str
    side: Side  # BUY: a long trade; SELL: a short one
    quantity: Decimal  # the most the position held
    entry_ns: int
    entry_price: Decimal  # the average over the entry fills
    exit_ns: int | None
    exit_price: Decimal | None  # the average over the exit fills; the mark if open
    pnl: Decimal  # after fees
    fees: Decimal
    open: bool = False


@dataclass(slots=True)
class _Building:
    symbol: str
    side: Side
    entry_ns: int
    position: Decimal = ZERO
    peak: Decimal = ZERO
    entry_quantity: Decimal = ZERO
    entry_value: Decimal = ZERO
    exit_quantity: Decimal = ZERO
    exit_value: Decimal = ZERO
    fees: Decimal = ZERO

    def add(self, quantity: Decimal, price: Decimal, fee: Decimal, opening: bool) -> None:
        if opening:
            self.entry_quantity += quantity
            self.entry_value += quantity * price
        else:
            self.exit_quantity += quantity
            self.exit_value += quantity * price
        self.fees += fee
        self.position += quantity if opening else -quantity
        self.peak = max(self.peak, self.position)

    def finish(self, exit_ns: int | None, mark: Decimal | None) -> RoundTrip:
        entry_price = self.entry_value / self.entry_quantity
        if exit_ns is None:  # still open: the rest valued at the mark
            exit_value = self.exit_value + self.position * (mark or entry_price)
            exit_quantity = self.entry_quantity
        else:
            exit_value, exit_quantity = self.exit_value, self.exit_quantity
        gross = exit_value - self.entry_value
        if self.side is Side.SELL:
            gross = -gross
        exit_price = exit_value / exit_quantity if exit_quantity else None
        return RoundTrip(
            symbol=self.symbol,
            side=self.side,
            quantity=self.peak,
            entry_ns=self.entry_ns,
            entry_price=entry_price,
            exit_ns=exit_ns,
            exit_price=exit_price,
            pnl=gross - self.fees,
            fees=self.fees,
            open=exit_ns is None,
        )


def round_trips(fills: Iterable[Fill], marks: Mapping[str, Decimal]) -> list[RoundTrip]:
    """Every round trip of `fills` (oldest first), by exit time then entry time;
    open trades last, marked at `marks` (symbol -> last price)."""
    building: dict[str, _Building] = {}
    closed: list[RoundTrip] = []
    for fill in fills:
        remaining, fee = fill.quantity, fill.fee
        while remaining > 0:
            trade = building.get(fill.symbol)
            if trade is None:
                trade = building[fill.symbol] = _Building(fill.symbol, fill.side, fill.at_ns)
            if fill.side is trade.side:
                trade.add(remaining, fill.price, fee, opening=True)
                break
            part = min(remaining, trade.position)
            part_fee = fee if part == remaining else (fee * part / remaining)
            trade.add(part, fill.price, part_fee, opening=False)
            remaining -= part
            fee -= part_fee
            if trade.position == 0:
                closed.append(trade.finish(fill.at_ns, None))
                del building[fill.symbol]
    still_open = [t.finish(None, marks.get(s)) for s, t in sorted(building.items())]
    return closed + still_open
