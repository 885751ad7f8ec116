"""The core's own view of the account, built from broker fills.

Risk and sizing read it; nothing but `OrderUpdated` events write it, so a
replay of the same inputs rebuilds the same view. "In flight" means an order
that is durable as an intent (NEW) or live at the broker and not yet terminal.

Nothing here raises on a bad number (DESIGN.md invariant 7). A last price
outside the price domain is no price (`MarketPrices.last_price`), so the
position is marked at its average cost. A broker fill whose quantity or price
is not finite cannot be booked: the cash becomes NaN, so equity is NaN and
every signal is refused (NON_FINITE_VALUE) until a restart reconciles the
account with the broker; that fails closed rather than trading on a portfolio
that no longer matches the broker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain import numeric
from domain.broker import PositionDifference
from domain.events import Envelope, OrderUpdated
from domain.orders import Order, Side
from domain.portfolio import Account, Position
from engines.market import MarketPrices

ZERO = Decimal(0)
NOT_A_NUMBER = Decimal("NaN")


@dataclass(slots=True)
class _Holding:
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    # Buy orders that opened or added to the current position since it was last
    # flat: the "entries" MaxPositionsPerSymbolRule counts.
    entries: int = 0


class Portfolio:
    """Cash, positions, entries and orders in flight, kept by fills as they happen."""

    def __init__(self, prices: MarketPrices, cash: Decimal = ZERO) -> None:
        self._prices = prices
        self.cash = cash
        self.buying_power = cash  # as the broker last reported it
        self._holdings: dict[str, _Holding] = {}
        self._in_flight: dict[str, Order] = {}

    def seed(self, account: Account, positions: list[Position]) -> None:
        """Start from the broker's snapshot (at start-up, before any input)."""
        self.cash = account.cash
        self.buying_power = account.buying_power
        self._holdings = {
            p.symbol: _Holding(p.quantity, p.average_price, 1 if p.quantity else 0)
            for p in positions
        }

    def differences(self, positions: tuple[Position, ...]) -> list[PositionDifference]:
        """Symbols where the broker's positions and ours disagree, in symbol order."""
        theirs = {p.symbol: p.quantity for p in positions}
        symbols = sorted(set(theirs) | {s for s, h in self._holdings.items() if h.quantity})
        return [
            PositionDifference(s, self.quantity(s), theirs.get(s, ZERO))
            for s in symbols
            if self.quantity(s) != theirs.get(s, ZERO)
        ]

    def reconcile(self, account: Account, positions: tuple[Position, ...]) -> None:
        """Take the broker's cash and positions as the truth (a sweep, as an input).
        A position that agrees keeps our exact average and entry count."""
        self.cash = account.cash
        self.buying_power = account.buying_power
        for difference in self.differences(positions):
            broker = next((p for p in positions if p.symbol == difference.symbol), None)
            if broker is None:
                self._holdings.pop(difference.symbol, None)
                continue
            holding = self._holdings.setdefault(difference.symbol, _Holding())
            holding.quantity = broker.quantity
            holding.average_price = broker.average_price
            holding.entries = max(holding.entries, 1)

    def account(self) -> Account:
        """The account as the core sees it: cash from the broker's last report moved
        by every fill since, equity at the last prices, buying power as last reported."""
        return Account(cash=self.cash, equity=self.equity(), buying_power=self.buying_power)

    # --- reads -----------------------------------------------------------------

    def quantity(self, symbol: str) -> Decimal:
        holding = self._holdings.get(symbol)
        return holding.quantity if holding else ZERO

    def entries(self, symbol: str) -> int:
        holding = self._holdings.get(symbol)
        return holding.entries if holding else 0

    def in_flight(self, symbol: str, side: Side) -> list[Order]:
        return [o for o in self._in_flight.values() if o.symbol == symbol and o.side is side]

    def in_flight_orders(self) -> list[Order]:
        """Every order in flight, of every symbol and side, oldest first."""
        return list(self._in_flight.values())

    def in_flight_quantity(self, symbol: str, side: Side) -> Decimal:
        return sum((o.remaining_quantity for o in self.in_flight(symbol, side)), ZERO)

    def mark_price(self, symbol: str) -> Decimal:
        price = self._prices.last_price(symbol)
        if price is not None:
            return price
        holding = self._holdings.get(symbol)
        return holding.average_price if holding else ZERO

    def equity(self) -> Decimal:
        """Cash plus every position at its mark; NaN when that cannot be computed,
        which every reader takes as "the account cannot be valued" and refuses."""
        try:
            return self.cash + sum(
                (h.quantity * self.mark_price(s) for s, h in self._holdings.items()), ZERO
            )
        except ArithmeticError:  # inf - inf or 0 * inf: a non-finite amount got in
            return NOT_A_NUMBER

    def positions(self) -> list[Position]:
        return [
            Position(s, h.quantity, h.average_price, self.mark_price(s))
            for s, h in sorted(self._holdings.items())
            if h.quantity
        ]

    # --- writes ----------------------------------------------------------------

    def on_order_updated(self, envelope: Envelope) -> None:
        assert isinstance(envelope.event, OrderUpdated)
        order = envelope.event.order
        if order.is_open:
            self._in_flight[order.order_id] = order
        else:
            self._in_flight.pop(order.order_id, None)
        change = order.history[-1]
        if not (
            numeric.is_finite(change.fill_quantity)
            and numeric.is_finite(change.fill_price)
            and numeric.is_finite(change.fill_fee)
        ):
            # Checked before `if change.fill_quantity`: bool(Decimal NaN) is True, and
            # the comparisons below raise on it. See the module docstring.
            self.cash = NOT_A_NUMBER
            return
        if change.fill_quantity:
            first_fill = order.filled_quantity == change.fill_quantity
            self._apply_fill(order, change.fill_quantity, change.fill_price)
            self.cash -= change.fill_fee
            if first_fill and order.side is Side.BUY and self.quantity(order.symbol) > 0:
                # A buy becomes an entry of the position with its first fill.
                self._holdings[order.symbol].entries += 1

    def _apply_fill(self, order: Order, quantity: Decimal, price: Decimal) -> None:
        holding = self._holdings.setdefault(order.symbol, _Holding())
        signed = quantity if order.side is Side.BUY else -quantity
        self.cash -= signed * price
        new_quantity = holding.quantity + signed
        if holding.quantity == 0 or (holding.quantity > 0) == (signed > 0):
            # Opening or adding: the average price moves.
            holding.average_price = (
                holding.average_price * abs(holding.quantity) + price * quantity
            ) / abs(new_quantity)
        elif new_quantity == 0 or (new_quantity > 0) != (holding.quantity > 0):
            # Closed, or flipped through zero: entries start over.
            holding.entries = 0
            holding.average_price = price if new_quantity else ZERO
        holding.quantity = new_quantity
