"""The pre-trade risk rules. Each judges one signal and always answers with a
verdict: a stable code plus the numbers behind it, passed or not, so the audit
log says why every trade was allowed as well as why any was refused.

Limits are read from the context (`ctx.config`, a `RiskConfig`), never kept by
a rule, so a limit update takes effect for the next signal; a rule with memory
(`DuplicateSignalRule`, `OrderRateRule`) keeps it across updates.

Reducing a position (`reduces_position`) cuts risk, so it must always be
possible: the engine passes such a trade with REDUCES_POSITION, without asking,
every rule whose `applies_to_reducing` is False (the exemption is made there,
once). A rule with `applies_to_reducing` True still judges it: the market must
be open, the price sane, the order rate sane and every number a number.

Numbers fail closed (DESIGN.md invariant 7). `NumericDomainRule` refuses any
signal whose numbers, or the account's, are not finite (NON_FINITE_VALUE) or
lie outside the numeric domain of `domain.numeric` (OUTSIDE_NUMERIC_DOMAIN).
Every other rule asks whether the numbers it uses are finite before it compares
them, and refuses with NON_FINITE_VALUE when not; any arithmetic error left
(an overflow, say) refuses with NON_FINITE_VALUE too instead of raising.
Comparisons are written as "passes if inside the limit", so NaN never passes.

Details print numbers so that a refusal shows why: money to the cent when that
is exact and in full otherwise (never `5000.00 > 5000.00`), a confidence to two
places when that is exact and in full otherwise, durations in seconds exactly.
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import pandas as pd

from domain import numeric
from domain.orders import OrderStatus, Side
from domain.risk import RiskDecision, RuleVerdict
from domain.signals import TradeSignal
from engines.clock import datetime_to_ns, ns_to_datetime
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.config import MAX_WINDOW, RiskConfig

OK = "OK"
REDUCES_POSITION = "REDUCES_POSITION"
NON_FINITE_VALUE = "NON_FINITE_VALUE"
OUTSIDE_NUMERIC_DOMAIN = "OUTSIDE_NUMERIC_DOMAIN"
NO_EQUITY = "NO_EQUITY"
POSITION_SIZE_EXCEEDS_LIMIT = "POSITION_SIZE_EXCEEDS_LIMIT"
MAX_POSITIONS_PER_SYMBOL = "MAX_POSITIONS_PER_SYMBOL"
DUPLICATE_SIGNAL = "DUPLICATE_SIGNAL"
OUTSIDE_MARKET_HOURS = "OUTSIDE_MARKET_HOURS"
MARKET_CALENDAR_OUT_OF_RANGE = "MARKET_CALENDAR_OUT_OF_RANGE"
CONFIDENCE_BELOW_MINIMUM = "CONFIDENCE_BELOW_MINIMUM"
ORDER_NOTIONAL_EXCEEDS_LIMIT = "ORDER_NOTIONAL_EXCEEDS_LIMIT"
ORDER_QUANTITY_EXCEEDS_LIMIT = "ORDER_QUANTITY_EXCEEDS_LIMIT"
ORDER_RATE_EXCEEDED = "ORDER_RATE_EXCEEDED"
GROSS_EXPOSURE_EXCEEDS_LIMIT = "GROSS_EXPOSURE_EXCEEDS_LIMIT"
DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
PRICE_OUTSIDE_COLLAR = "PRICE_OUTSIDE_COLLAR"
NO_MARKET_PRICE = "NO_MARKET_PRICE"
STALE_MARKET_DATA = "STALE_MARKET_DATA"
BROKER_UNHEALTHY = "BROKER_UNHEALTHY"
ORDER_UNRESOLVED = "ORDER_UNRESOLVED"

NOT_A_NUMBER = Decimal("NaN")
ZERO = Decimal(0)
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class RiskContext:
    """The world a rule judges against, as of one signal: the portfolio and the
    prices as they are now, the core's clock, the limits in force, whether the
    broker is answering, the equity the session opened with (None before the
    session's first signal) and whether the signal only reduces a position
    (`reduces_position`, computed once by the engine)."""

    portfolio: Portfolio
    now: datetime
    config: RiskConfig
    prices: MarketPrices
    broker_healthy: bool
    session_open_equity: Decimal | None
    reduces: bool


class RiskRule(Protocol):
    name: str
    # False: the engine passes a reducing trade with REDUCES_POSITION without asking the rule.
    applies_to_reducing: bool

    def parameters(self, config: RiskConfig) -> dict[str, str]:
        """The limits this rule reads, by their `RiskConfig` key, as text."""
        ...

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict: ...

    def record(self, decision: RiskDecision) -> None:
        """See every decision made (approved or not), for rules that remember."""
        ...


def reduces_position(signal: TradeSignal, portfolio: Portfolio) -> bool:
    """True exactly when the signal only shrinks the position in its symbol:

    - a SELL of `q` while the position is long (held > 0) and
      `q <= held - s`, where `s` is the remaining quantity of every SELL order
      in flight in the symbol (what is held and not already being sold);
    - a BUY of `q` while the position is short (held < 0) and
      `q <= -held - b`, where `b` is the remaining quantity of every BUY order
      in flight in the symbol (the short not already being bought back);

    with `q` finite and above zero. Anything else is False and is judged as new
    exposure: a flat position, adding to it, selling more than is held (that
    opens a short), or any of these numbers not finite."""
    try:
        quantity = signal.quantity
        held = portfolio.quantity(signal.symbol)
        in_flight = portfolio.in_flight_quantity(signal.symbol, signal.side)
        if not (quantity.is_finite() and held.is_finite() and in_flight.is_finite()):
            return False
        if not quantity > 0:
            return False
        if signal.side is Side.SELL:
            return held > 0 and quantity <= held - in_flight
        return held < 0 and quantity <= -held - in_flight
    except ArithmeticError:
        return False


class _Rule:
    """What every rule shares: `parameters` from the config keys it reads, a
    `check` that never raises on a number, and no memory unless it keeps one."""

    name: str
    applies_to_reducing: bool = False
    keys: tuple[str, ...] = ()

    def parameters(self, config: RiskConfig) -> dict[str, str]:
        limits = config.as_limits()
        return {key: limits[key] for key in self.keys}

    def check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        try:
            return self._check(signal, ctx)
        except ArithmeticError as exc:
            detail = f"a number could not be computed with ({type(exc).__name__})"
            return RuleVerdict(self.name, False, NON_FINITE_VALUE, detail)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        raise NotImplementedError

    def record(self, decision: RiskDecision) -> None:
        pass

    def passed(self, detail: str, code: str = OK) -> RuleVerdict:
        return RuleVerdict(self.name, True, code, detail)

    def refused(self, code: str, detail: str) -> RuleVerdict:
        return RuleVerdict(self.name, False, code, detail)


# --- how numbers are shown -------------------------------------------------------------


def _show(amount: Decimal, places: int = 2) -> str:
    """`amount` to `places` decimals when that is exact, in full otherwise: two
    amounts that differ never look the same. Non-finite: NaN, Infinity."""
    if not amount.is_finite():
        return str(amount)
    try:
        rounded = amount.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # too many digits to round: shown as it is
        return str(amount)
    if rounded == amount:
        return f"{rounded:f}"
    if not -40 < amount.adjusted() < 40:
        return str(amount)
    text = f"{amount:f}"  # not exact at `places`, so it has a point and more digits
    return text.rstrip("0")


def _fraction(value: Decimal) -> str:
    """A limit given as a fraction, as it was set: 0.05, 1, 0.125."""
    return _show(value, 0)


def _confidence(value: float) -> str:
    """Two places when that is exact (0.59, 0.60), the float in full otherwise
    (0.5999999): never `confidence=0.60 minimum=0.60` for a refusal."""
    if not math.isfinite(value):
        return repr(value)
    text = f"{value:.2f}"
    return text if float(text) == value else repr(value)


def _seconds(duration: timedelta) -> str:
    return _show(Decimal(duration // timedelta(microseconds=1)).scaleb(-6), 0)


def _seconds_ns(ns: int) -> str:
    return _show(Decimal(ns).scaleb(-9), 0)


def _finite(*values: Decimal | float) -> bool:
    return all(numeric.is_finite(v) for v in values)


def _computed(amount: Callable[[], Decimal]) -> Decimal:
    """`amount()`, or NaN when it cannot be computed."""
    try:
        return amount()
    except ArithmeticError:
        return NOT_A_NUMBER


def _order_price(signal: TradeSignal) -> Decimal:
    """The price a signal is judged at: its limit price, else its reference price."""
    return signal.limit_price if signal.limit_price is not None else signal.reference_price


# --- the rules -------------------------------------------------------------------------


class NumericDomainRule(_Rule):
    """Every number the decision rests on must be finite and inside the numeric
    domain (`domain.numeric`): the signal's confidence, quantity, reference and
    limit price and notional, the account's equity, and the signal symbol's
    position (quantity, average price, mark and unrealised P&L).

    Not finite (NaN, ±inf, or not computable) refuses with NON_FINITE_VALUE;
    finite but outside the domain refuses with OUTSIDE_NUMERIC_DOMAIN. The
    detail names each offending value. It applies to position-reducing signals
    too: a number that is not a number cannot be judged, so it is never passed.
    Its bounds are the service's domain, not limits: they are not configurable.
    """

    name = "NumericDomainRule"
    applies_to_reducing = True

    def parameters(self, config: RiskConfig) -> dict[str, str]:
        return {
            "price": numeric.PRICE_RANGE,
            "order_quantity": numeric.ORDER_QUANTITY_RANGE,
            "money": numeric.MONEY_RANGE,
            "confidence": numeric.CONFIDENCE_RANGE,
        }

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        price = _order_price(signal)
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
            values.append(("position_quantity", held.quantity, numeric.is_finite, "finite"))
            money += [
                ("average_price", held.average_price),
                ("market_price", held.market_price),
                ("unrealized_pnl", _computed(lambda: held.unrealized_pnl)),
            ]
        values += [(label, v, numeric.money_in_domain, numeric.MONEY_RANGE) for label, v in money]
        non_finite = [f"{label}={v}" for label, v, _, _ in values if not numeric.is_finite(v)]
        if non_finite:
            return self.refused(NON_FINITE_VALUE, " ".join(non_finite))
        outside = [
            f"{label}={v} outside {domain}" for label, v, inside, domain in values if not inside(v)
        ]
        if outside:
            return self.refused(OUTSIDE_NUMERIC_DOMAIN, "; ".join(outside))
        return self.passed("every number finite and inside the domain")


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


class MarketHoursRule(_Rule):
    """The core's clock must be inside a regular NYSE session, as the
    exchange-calendars package defines it: holidays, early closes and (where a
    calendar has them) breaks included. The calendar's schedule is read once into
    a table of session bounds, so judging a signal is a dict lookup, not pandas.
    It judges reducing trades too: no order goes out while the market is shut."""

    name = "MarketHoursRule"
    applies_to_reducing = True

    def __init__(self, calendar: Any) -> None:
        self.calendar = calendar
        self._sessions = session_table(calendar)
        self._first = min(self._sessions)
        self._last = max(self._sessions)

    def parameters(self, config: RiskConfig) -> dict[str, str]:
        return {"calendar": str(self.calendar.name)}

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        now = ctx.now
        when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        day = now.date()
        if not self._first <= day <= self._last:
            detail = f"{when} is outside the calendar's range {self._first}..{self._last}"
            return self.refused(MARKET_CALENDAR_OUT_OF_RANGE, detail)
        bounds = self._sessions.get(day, ())
        # (open, close) or (open, break start, break end, close): inside an odd interval.
        inside = sum(1 for edge in bounds if edge <= now) % 2 == 1
        if not inside:
            detail = f"{when} is outside the {self.calendar.name} regular session"
            return self.refused(OUTSIDE_MARKET_HOURS, detail)
        return self.passed(f"{when} in session")


class BrokerHealthRule(_Rule):
    """New exposure only while the broker answers (`ctx.broker_healthy`): an order
    the broker cannot take, or whose fate cannot be learned, is not sent. Reducing
    trades are exempt (the engine's job), so an exit is tried as soon as it can be."""

    name = "BrokerHealthRule"

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        if ctx.broker_healthy is not True:
            return self.refused(BROKER_UNHEALTHY, "the broker is not answering")
        return self.passed("the broker is answering")


class UnresolvedOrderRule(_Rule):
    """No new order in a symbol while one of its orders was sent without a clear
    answer (SUBMITTED: a timeout, a dropped connection, a 5xx) and is still being
    looked up: that order may be live at the broker, and a second one could
    double the trade. Reducing trades too: the exit might be the duplicate."""

    name = "UnresolvedOrderRule"
    applies_to_reducing = True

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        unresolved = [
            o.order_id
            for o in ctx.portfolio.in_flight_orders()
            if o.symbol == signal.symbol and o.status is OrderStatus.SUBMITTED
        ]
        if unresolved:
            detail = f"order {unresolved[0]} in {signal.symbol} has no answer from the broker yet"
            return self.refused(ORDER_UNRESOLVED, detail)
        return self.passed(f"no unresolved order in {signal.symbol}")


class StaleDataRule(_Rule):
    """The symbol's last tick must be at most `max_data_age` old by the core's
    clock (`ctx.now`): a silent or lagging feed is not traded on. No tick at all
    refuses too. Reducing trades are exempt: an exit does not wait for the feed."""

    name = "StaleDataRule"
    keys = ("max_data_age",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        max_age = ctx.config.max_data_age
        tick = ctx.prices.last_ns.get(signal.symbol)
        limit = f"max_data_age={_seconds(max_age)}s"
        if tick is None:
            return self.refused(STALE_MARKET_DATA, f"no tick for {signal.symbol} yet, {limit}")
        age_ns = datetime_to_ns(ctx.now) - tick
        at = ns_to_datetime(tick).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        detail = f"last tick {at} age={_seconds_ns(age_ns)}s {limit}"
        if not age_ns <= max_age // timedelta(microseconds=1) * 1000:
            return self.refused(STALE_MARKET_DATA, detail)
        return self.passed(detail)


class PriceCollarRule(_Rule):
    """The order's price (its limit price; for a market order the signal's
    reference price) must lie within `price_collar_pct` of the symbol's last
    trade (`ctx.prices.last_price`): in [last * (1 - pct), last * (1 + pct)].
    No usable last trade refuses with NO_MARKET_PRICE. It judges reducing trades
    too: selling at a price far from the market is a mistake whatever the side."""

    name = "PriceCollarRule"
    applies_to_reducing = True
    keys = ("price_collar_pct",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        pct = ctx.config.price_collar_pct
        label = "limit_price" if signal.limit_price is not None else "reference_price"
        price = _order_price(signal)
        last = ctx.prices.last_price(signal.symbol)
        if last is None:
            return self.refused(NO_MARKET_PRICE, f"no usable last trade for {signal.symbol}")
        if not _finite(price):
            return self.refused(NON_FINITE_VALUE, f"{label}={price} last={_show(last)}")
        low, high = last * (1 - pct), last * (1 + pct)
        detail = (
            f"{label}={_show(price)} last={_show(last)} "
            f"allowed=[{_show(low)}, {_show(high)}] price_collar_pct={_fraction(pct)}"
        )
        if not low <= price <= high:
            return self.refused(PRICE_OUTSIDE_COLLAR, detail)
        return self.passed(detail)


class MinConfidenceRule(_Rule):
    """The signal's confidence must be at least `min_confidence`; a non-finite
    confidence refuses with NON_FINITE_VALUE."""

    name = "MinConfidenceRule"
    keys = ("min_confidence",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        confidence, minimum = signal.confidence, ctx.config.min_confidence
        detail = f"confidence={_confidence(confidence)} minimum={_confidence(minimum)}"
        if not math.isfinite(confidence):
            return self.refused(NON_FINITE_VALUE, detail)
        # "At least the minimum" passes; written so that NaN (had it got here) fails.
        if not confidence >= minimum:
            return self.refused(CONFIDENCE_BELOW_MINIMUM, detail)
        return self.passed(detail)


class MaxOrderQuantityRule(_Rule):
    """One order's quantity must be at most `max_order_quantity` shares."""

    name = "MaxOrderQuantityRule"
    keys = ("max_order_quantity",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        quantity, limit = signal.quantity, ctx.config.max_order_quantity
        detail = f"quantity={_show(quantity, 0)} limit={_show(limit, 0)}"
        if not _finite(quantity):
            return self.refused(NON_FINITE_VALUE, detail)
        if not quantity <= limit:
            return self.refused(ORDER_QUANTITY_EXCEEDS_LIMIT, detail)
        return self.passed(detail)


class MaxOrderNotionalRule(_Rule):
    """One order's notional (quantity times its limit price, or the reference
    price for a market order) must be at most `max_order_notional`."""

    name = "MaxOrderNotionalRule"
    keys = ("max_order_notional",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        limit = ctx.config.max_order_notional
        notional = _computed(lambda: signal.quantity * _order_price(signal))
        detail = f"notional={_show(notional)} limit={_show(limit)}"
        if not _finite(notional):
            return self.refused(NON_FINITE_VALUE, detail)
        if not notional <= limit:
            return self.refused(ORDER_NOTIONAL_EXCEEDS_LIMIT, detail)
        return self.passed(detail)


class MaxPositionSizeRule(_Rule):
    """The position after this order, valued at the signal's price, must not exceed
    `max_position_pct` of account equity. "The position after" counts the filled
    position plus every order in flight in the same direction, so two quick
    signals cannot together slip past the limit. Both amounts are rounded to the
    cent before they are compared, so the detail shows exactly what was compared.
    Equity at or below zero refuses with NO_EQUITY."""

    name = "MaxPositionSizeRule"
    keys = ("max_position_pct",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        portfolio = ctx.portfolio
        equity = portfolio.equity()
        direction = 1 if signal.side is Side.BUY else -1
        exposure = (
            portfolio.quantity(signal.symbol) * direction
            + portfolio.in_flight_quantity(signal.symbol, signal.side)
            + signal.quantity
        )
        price = _order_price(signal)
        if not _finite(equity, exposure, price):
            detail = f"equity={equity} quantity_after={exposure} price={price}"
            return self.refused(NON_FINITE_VALUE, detail)
        if not equity > 0:
            return self.refused(NO_EQUITY, f"equity={_show(equity)}")
        limit = (equity * ctx.config.max_position_pct).quantize(CENT)
        notional = (exposure * price).quantize(CENT)
        detail = f"notional={notional} limit={limit}"
        if not notional <= limit:
            return self.refused(POSITION_SIZE_EXCEEDS_LIMIT, detail)
        return self.passed(detail)


class MaxPositionsPerSymbolRule(_Rule):
    """At most `max_positions_per_symbol` open entries in one symbol.

    An *open entry* is an order in the position's direction that is part of the
    current position: each one that has filled (wholly or partly) since the
    position was last flat, plus each one still in flight with nothing filled
    yet. A buy that would make a third entry into a long is refused; closing
    the position to flat starts the count again.
    """

    name = "MaxPositionsPerSymbolRule"
    keys = ("max_positions_per_symbol",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        portfolio = ctx.portfolio
        limit = ctx.config.max_positions_per_symbol
        held = portfolio.quantity(signal.symbol)
        if not _finite(held):
            return self.refused(NON_FINITE_VALUE, f"position_quantity={held}")
        same_way = held == 0 or (held > 0) == (signal.side is Side.BUY)
        filled_entries = portfolio.entries(signal.symbol) if same_way and held else 0
        pending = sum(
            1 for o in portfolio.in_flight(signal.symbol, signal.side) if not o.filled_quantity
        )
        open_entries = filled_entries + pending
        detail = f"open={open_entries} limit={limit}"
        if not open_entries < limit:
            return self.refused(MAX_POSITIONS_PER_SYMBOL, detail)
        return self.passed(detail)


class GrossExposureRule(_Rule):
    """Gross exposure after this order must be at most `max_gross_exposure_pct` of
    equity. Gross exposure is the sum of |quantity * mark price| over every
    position, plus the remaining notional of every order in flight (its remaining
    quantity at its limit price, or at the symbol's mark for a market order;
    sells count too, so this errs on the side of caution), plus this order's
    notional. Equity at or below zero refuses with NO_EQUITY."""

    name = "GrossExposureRule"
    keys = ("max_gross_exposure_pct",)

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        portfolio = ctx.portfolio
        pct = ctx.config.max_gross_exposure_pct
        equity = portfolio.equity()
        positions = _total(abs(p.quantity * p.market_price) for p in portfolio.positions())
        in_flight = _total(
            o.remaining_quantity
            * (o.limit_price if o.limit_price is not None else portfolio.mark_price(o.symbol))
            for o in portfolio.in_flight_orders()
        )
        order = _computed(lambda: signal.quantity * _order_price(signal))
        gross = _computed(lambda: positions + in_flight + order)
        parts = (
            f"positions={_show(positions)} in_flight={_show(in_flight)} order={_show(order)} "
            f"equity={_show(equity)} max_gross_exposure_pct={_fraction(pct)}"
        )
        if not _finite(equity, gross):
            return self.refused(NON_FINITE_VALUE, f"gross={_show(gross)} {parts}")
        if not equity > 0:
            return self.refused(NO_EQUITY, f"equity={_show(equity)}")
        limit = equity * pct
        detail = f"gross={_show(gross)} limit={_show(limit)} {parts}"
        if not gross <= limit:
            return self.refused(GROSS_EXPOSURE_EXCEEDS_LIMIT, detail)
        return self.passed(detail)


def _total(amounts: Iterable[Decimal]) -> Decimal:
    return _computed(lambda: sum(amounts, ZERO))


class DailyLossRule(_Rule):
    """No new exposure once equity has fallen more than `daily_loss_pct` below the
    session's opening equity (`ctx.session_open_equity`): refuses when equity <
    opening * (1 - daily_loss_pct). Before the session's opening equity is known
    (None) it passes. The engine trips the daily-loss breaker itself (trading
    goes to REDUCING); this rule only gives the verdict."""

    name = "DailyLossRule"
    keys = ("daily_loss_pct", "daily_loss_resets_next_session")

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        opening = ctx.session_open_equity
        if opening is None:
            return self.passed("no session opening equity yet")
        pct = ctx.config.daily_loss_pct
        equity = ctx.portfolio.equity()
        if not _finite(opening, equity):
            detail = f"equity={equity} session_open_equity={opening}"
            return self.refused(NON_FINITE_VALUE, detail)
        floor = opening * (1 - pct)
        detail = (
            f"equity={_show(equity)} floor={_show(floor)} loss={_show(opening - equity)} "
            f"session_open_equity={_show(opening)} daily_loss_pct={_fraction(pct)}"
        )
        if not equity >= floor:
            return self.refused(DAILY_LOSS_LIMIT, detail)
        return self.passed(detail)


class DuplicateSignalRule(_Rule):
    """Refuses a signal with the same source, symbol and side as one *approved*
    less than `duplicate_window` ago (by the core's clock). Rejected signals do
    not start a window, so a signal refused for a passing reason can be sent
    again."""

    name = "DuplicateSignalRule"
    keys = ("duplicate_window",)

    def __init__(self) -> None:
        self._approved_at: dict[tuple[str, str, Side], datetime] = {}

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        window = ctx.config.duplicate_window
        previous = self._approved_at.get((signal.source, signal.symbol, signal.side))
        if previous is None:
            return self.passed(f"none approved before, window={_seconds(window)}s")
        age = ctx.now - previous
        detail = f"same signal approved {_seconds(age)}s ago, window={_seconds(window)}s"
        if age < window:
            return self.refused(DUPLICATE_SIGNAL, detail)
        return self.passed(detail)

    def record(self, decision: RiskDecision) -> None:
        if decision.approved:
            s = decision.signal
            self._approved_at[(s.source, s.symbol, s.side)] = decision.decided_at


class OrderRateRule(_Rule):
    """At most `max_orders_per_window` orders in total, and
    `max_orders_per_symbol_per_window` in one symbol, approved less than
    `order_rate_window` ago (by `decided_at`, against the core's clock). It
    counts the approved decisions it is shown (`record`), and judges reducing
    trades too: a loop of sells is still a bug.

    `check` only reads (a dry run changes nothing a later decision sees). The
    rule remembers the approvals of the last `MAX_WINDOW` (a day, the widest
    window a config may set), so a widened window counts every approval it
    covers, and memory is bounded by a day's orders. An approval stamped later
    than the clock (a wall clock stepped back) counts until it is old."""

    name = "OrderRateRule"
    applies_to_reducing = True
    keys = ("order_rate_window", "max_orders_per_window", "max_orders_per_symbol_per_window")

    def __init__(self) -> None:
        # Approval times, each list sorted (insort keeps it so if the clock steps back).
        self._all: list[datetime] = []
        self._by_symbol: dict[str, list[datetime]] = {}

    def _check(self, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
        config = ctx.config
        window = config.order_rate_window
        since = ctx.now - window
        total = _after(self._all, since)
        mine = _after(self._by_symbol.get(signal.symbol, []), since)
        symbol_limit, total_limit = (
            config.max_orders_per_symbol_per_window,
            config.max_orders_per_window,
        )
        detail = (
            f"symbol={signal.symbol} symbol_orders={mine} symbol_limit={symbol_limit} "
            f"total_orders={total} total_limit={total_limit} window={_seconds(window)}s"
        )
        if not (mine < symbol_limit and total < total_limit):
            return self.refused(ORDER_RATE_EXCEEDED, detail)
        return self.passed(detail)

    def record(self, decision: RiskDecision) -> None:
        if not decision.approved:
            return
        at = decision.decided_at
        bisect.insort(self._all, at)
        bisect.insort(self._by_symbol.setdefault(decision.signal.symbol, []), at)
        cutoff = at - MAX_WINDOW
        del self._all[: bisect.bisect_right(self._all, cutoff)]
        for symbol, times in list(self._by_symbol.items()):
            del times[: bisect.bisect_right(times, cutoff)]
            if not times:
                del self._by_symbol[symbol]


def _after(times: list[datetime], since: datetime) -> int:
    """How many of the sorted `times` are later than `since`."""
    return len(times) - bisect.bisect_right(times, since)


def default_rules(calendar: Any) -> list[RiskRule]:
    """Every rule, in the order their verdicts are listed: is the input sane (the
    numbers, the market, the broker, the data, the price), then the signal's
    own quality, then per-order caps, then the position and the account, then
    repetition and rate. Every rule is evaluated for every signal whatever the
    order; limits come from the `RiskConfig` in each context."""
    return [
        NumericDomainRule(),
        MarketHoursRule(calendar),
        BrokerHealthRule(),
        UnresolvedOrderRule(),
        StaleDataRule(),
        PriceCollarRule(),
        MinConfidenceRule(),
        MaxOrderQuantityRule(),
        MaxOrderNotionalRule(),
        MaxPositionSizeRule(),
        MaxPositionsPerSymbolRule(),
        GrossExposureRule(),
        DailyLossRule(),
        DuplicateSignalRule(),
        OrderRateRule(),
    ]
