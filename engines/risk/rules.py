"""The risk rules. Each judges one signal and always answers with a verdict: a
stable code plus the numbers behind it, passed or not, so the audit log says
why every trade was allowed as well as why any was refused.

Reducing a position (selling what is held, buying back a short) is never
refused by a size or count rule: cutting risk must always be possible.

Numbers fail closed (DESIGN.md invariant 7). `NumericDomainRule` refuses any
signal whose numbers, or the account's, are not finite (NON_FINITE_VALUE) or
lie outside the numeric domain of `domain.numeric` (OUTSIDE_NUMERIC_DOMAIN).
The risk engine runs every rule so that a number a rule cannot compute with (a
Decimal NaN compared, inf - inf, an overflow) refuses with NON_FINITE_VALUE
instead of raising, and comparisons are written as "passes if inside the
limit", so that NaN never passes a rule.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pandas as pd

from domain import numeric
from domain.orders import Side
from domain.risk import RiskDecision, RuleVerdict
from domain.signals import TradeSignal
from engines.portfolio import Portfolio

OK = "OK"
REDUCES_POSITION = "REDUCES_POSITION"
NON_FINITE_VALUE = "NON_FINITE_VALUE"
OUTSIDE_NUMERIC_DOMAIN = "OUTSIDE_NUMERIC_DOMAIN"
NOT_A_NUMBER = Decimal("NaN")


@dataclass(frozen=True, slots=True)
class RiskContext:
    """The world a rule judges against: the portfolio as it is now, and the clock."""

    portfolio: Portfolio
    now: datetime


class RiskRule(Protocol):
    name: str

    def parameters(self) -> dict[str, str]: ...

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict: ...

    def record(self, decision: RiskDecision) -> None:
        """See every decision made (approved or not), for rules that remember."""
        ...


def reduces_position(signal: TradeSignal, portfolio: Portfolio) -> bool:
    """True when the signal only shrinks the current position, counting orders
    already in flight in the same direction."""
    held = portfolio.quantity(signal.symbol)
    if signal.side is Side.SELL:
        available = held - portfolio.in_flight_quantity(signal.symbol, Side.SELL)
        return held > 0 and signal.quantity <= available
    covering = -held - portfolio.in_flight_quantity(signal.symbol, Side.BUY)
    return held < 0 and signal.quantity <= covering


class _Stateless:
    def record(self, decision: RiskDecision) -> None:
        pass


def _finite(value: float | Decimal) -> bool:
    return numeric.is_finite(value)


def _computed(amount: Callable[[], Decimal]) -> Decimal:
    """`amount()`, or NaN when it cannot be computed."""
    try:
        return amount()
    except ArithmeticError:
        return NOT_A_NUMBER


class MaxPositionSizeRule(_Stateless):
    """The position after this order, valued at the signal's price, must not exceed
    `max_position_pct` of account equity. "The position after" counts the filled
    position plus every order in flight in the same direction, so two quick
    signals cannot together slip past the limit."""

    name = "MaxPositionSizeRule"

    def __init__(self, max_position_pct: Decimal = Decimal("0.05")) -> None:
        self.max_position_pct = max_position_pct

    def parameters(self) -> dict[str, str]:
        return {"max_position_pct": str(self.max_position_pct)}

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        portfolio = ctx.portfolio
        if reduces_position(signal, portfolio):
            return RuleVerdict(self.name, True, REDUCES_POSITION)
        equity = portfolio.equity()
        limit = (equity * self.max_position_pct).quantize(Decimal("0.01"))
        direction = 1 if signal.side is Side.BUY else -1
        exposure = (
            portfolio.quantity(signal.symbol) * direction
            + portfolio.in_flight_quantity(signal.symbol, signal.side)
            + signal.quantity
        )
        price = signal.limit_price or signal.reference_price
        notional = (exposure * price).quantize(Decimal("0.01"))
        detail = f"notional={notional} limit={limit}"
        if not equity > 0:
            return RuleVerdict(self.name, False, "NO_EQUITY", f"equity={equity}")
        if not notional <= limit:
            return RuleVerdict(self.name, False, "POSITION_SIZE_EXCEEDS_LIMIT", detail)
        return RuleVerdict(self.name, True, OK, detail)


class MaxPositionsPerSymbolRule(_Stateless):
    """At most `max_positions` open entries in one symbol.

    An *open entry* is an order in the position's direction that is part of the
    current position: each one that has filled (wholly or partly) since the
    position was last flat, plus each one still in flight with nothing filled
    yet. A buy that would make a third entry into a long is refused; closing
    the position to flat starts the count again.
    """

    name = "MaxPositionsPerSymbolRule"

    def __init__(self, max_positions: int = 2) -> None:
        self.max_positions = max_positions

    def parameters(self) -> dict[str, str]:
        return {"max_positions": str(self.max_positions)}

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        portfolio = ctx.portfolio
        if reduces_position(signal, portfolio):
            return RuleVerdict(self.name, True, REDUCES_POSITION)
        held = portfolio.quantity(signal.symbol)
        same_way = held == 0 or (held > 0) == (signal.side is Side.BUY)
        filled_entries = portfolio.entries(signal.symbol) if same_way and held else 0
        pending = sum(
            1 for o in portfolio.in_flight(signal.symbol, signal.side) if not o.filled_quantity
        )
        open_entries = filled_entries + pending
        detail = f"open={open_entries} limit={self.max_positions}"
        if not open_entries < self.max_positions:
            return RuleVerdict(self.name, False, "MAX_POSITIONS_PER_SYMBOL", detail)
        return RuleVerdict(self.name, True, OK, detail)


class DuplicateSignalRule:
    """Refuses a signal with the same source, symbol and side as one *approved*
    less than `window` ago (by the core's clock). Rejected signals do not start
    a window, so a signal refused for a passing reason can be sent again."""

    name = "DuplicateSignalRule"

    def __init__(self, window: timedelta = timedelta(seconds=60)) -> None:
        self.window = window
        self._approved_at: dict[tuple[str, str, Side], datetime] = {}

    def parameters(self) -> dict[str, str]:
        return {"window_seconds": str(int(self.window.total_seconds()))}

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        previous = self._approved_at.get((signal.source, signal.symbol, signal.side))
        if previous is not None and ctx.now - previous < self.window:
            age = (ctx.now - previous).total_seconds()
            detail = (
                f"same signal approved {age:.1f}s ago, window={self.window.total_seconds():.0f}s"
            )
            return RuleVerdict(self.name, False, "DUPLICATE_SIGNAL", detail)
        return RuleVerdict(self.name, True, OK)

    def record(self, decision: RiskDecision) -> None:
        if decision.approved:
            s = decision.signal
            self._approved_at[(s.source, s.symbol, s.side)] = decision.decided_at


_SESSION_TABLES: weakref.WeakKeyDictionary[Any, dict[date, tuple[datetime, ...]]] = (
    weakref.WeakKeyDictionary()
)


def session_table(calendar: Any) -> dict[date, tuple[datetime, ...]]:
    """Each session's bounds by date, read from the calendar's schedule once per
    calendar (pandas makes it take a fifth of a second; every core built on the same
    calendar, a restart or a replay, shares it: it is plain immutable data)."""
    table = _SESSION_TABLES.get(calendar)
    if table is None:
        schedule = calendar.schedule
        # A session's label is its date; NYSE sessions never cross midnight UTC.
        table = _SESSION_TABLES[calendar] = {
            label.date(): tuple(
                t.to_pydatetime()
                for t in (row.open, row.break_start, row.break_end, row.close)
                if not pd.isna(t)
            )
            for label, row in zip(schedule.index, schedule.itertuples(), strict=True)
        }
    return table


class MarketHoursRule(_Stateless):
    """The core's clock must be inside a regular NYSE session, as the
    exchange-calendars package defines it: holidays, early closes and (where a
    calendar has them) breaks included. The calendar's schedule is read once into
    a table of session bounds, so judging a signal is a dict lookup, not pandas."""

    name = "MarketHoursRule"

    def __init__(self, calendar: Any) -> None:
        self.calendar = calendar
        self._sessions = session_table(calendar)
        self._first = min(self._sessions)
        self._last = max(self._sessions)

    def parameters(self) -> dict[str, str]:
        return {"calendar": str(self.calendar.name)}

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        now = ctx.now
        when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        day = now.date()
        if not self._first <= day <= self._last:
            detail = f"{when} is outside the calendar's range {self._first}..{self._last}"
            return RuleVerdict(self.name, False, "MARKET_CALENDAR_OUT_OF_RANGE", detail)
        bounds = self._sessions.get(day, ())
        # (open, close) or (open, break start, break end, close): inside an odd interval.
        inside = sum(1 for edge in bounds if edge <= now) % 2 == 1
        if not inside:
            detail = f"{when} is outside the {self.calendar.name} regular session"
            return RuleVerdict(self.name, False, "OUTSIDE_MARKET_HOURS", detail)
        return RuleVerdict(self.name, True, OK, f"{when} in session")


class MinConfidenceRule(_Stateless):
    """The signal's confidence must be at least `min_confidence`."""

    name = "MinConfidenceRule"

    def __init__(self, min_confidence: float = 0.6) -> None:
        self.min_confidence = min_confidence

    def parameters(self) -> dict[str, str]:
        return {"min_confidence": f"{self.min_confidence:.2f}"}

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        confidence = signal.confidence
        detail = f"confidence={confidence:.2f} minimum={self.min_confidence:.2f}"
        if not math.isfinite(confidence):
            return RuleVerdict(self.name, False, NON_FINITE_VALUE, detail)
        # "At least the minimum" passes; written so that NaN (had it got here) fails.
        if not confidence >= self.min_confidence:
            return RuleVerdict(self.name, False, "CONFIDENCE_BELOW_MINIMUM", detail)
        return RuleVerdict(self.name, True, OK, detail)


class NumericDomainRule(_Stateless):
    """Every number the decision rests on must be finite and inside the numeric
    domain (`domain.numeric`): the signal's confidence, quantity, reference and
    limit price and notional, the account's equity, and the signal symbol's
    position (quantity, average price, mark and unrealised P&L).

    Not finite (NaN, ±inf, or not computable) refuses with NON_FINITE_VALUE;
    finite but outside the domain refuses with OUTSIDE_NUMERIC_DOMAIN. The
    detail names each offending value. It applies to position-reducing signals
    too: a number that is not a number cannot be judged, so it is never passed.
    """

    name = "NumericDomainRule"

    def parameters(self) -> dict[str, str]:
        return {
            "price": numeric.PRICE_RANGE,
            "order_quantity": numeric.ORDER_QUANTITY_RANGE,
            "money": numeric.MONEY_RANGE,
            "confidence": numeric.CONFIDENCE_RANGE,
        }

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        price = signal.limit_price if signal.limit_price is not None else signal.reference_price
        # (label, value, inside the domain?, the domain); each check is only
        # asked of a finite value, so a Decimal NaN is never compared.
        values: list[tuple[str, float | Decimal, Callable[[Any], bool], str]] = [
            (
                "confidence",
                signal.confidence,
                numeric.confidence_in_domain,
                numeric.CONFIDENCE_RANGE,
            ),
            (
                "quantity",
                signal.quantity,
                numeric.order_quantity_in_domain,
                numeric.ORDER_QUANTITY_RANGE,
            ),
            (
                "reference_price",
                signal.reference_price,
                numeric.decimal_price_in_domain,
                numeric.PRICE_RANGE,
            ),
        ]
        if signal.limit_price is not None:
            values.append(
                (
                    "limit_price",
                    signal.limit_price,
                    numeric.decimal_price_in_domain,
                    numeric.PRICE_RANGE,
                )
            )
        money = [
            ("notional", _computed(lambda: signal.quantity * price)),
            ("equity", _computed(ctx.portfolio.equity)),
        ]
        position = next((p for p in ctx.portfolio.positions() if p.symbol == signal.symbol), None)
        if position is not None:
            held = position
            # A position may have grown past one order's bound, so its quantity need
            # only be finite; its prices are held to the money bound, not the price
            # domain, because a fill at the top of the domain plus slippage is above it.
            values.append(("position_quantity", held.quantity, _finite, "finite"))
            money += [
                ("average_price", held.average_price),
                ("market_price", held.market_price),
                ("unrealized_pnl", _computed(lambda: held.unrealized_pnl)),
            ]
        values += [(label, v, numeric.money_in_domain, numeric.MONEY_RANGE) for label, v in money]
        non_finite = [f"{label}={v}" for label, v, _, _ in values if not numeric.is_finite(v)]
        if non_finite:
            return RuleVerdict(self.name, False, NON_FINITE_VALUE, " ".join(non_finite))
        outside = [
            f"{label}={v} outside {domain}" for label, v, inside, domain in values if not inside(v)
        ]
        if outside:
            return RuleVerdict(self.name, False, OUTSIDE_NUMERIC_DOMAIN, "; ".join(outside))
        return RuleVerdict(self.name, True, OK, "every number finite and inside the domain")
