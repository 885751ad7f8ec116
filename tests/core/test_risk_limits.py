"""The pre-trade rules and the limits they read, at the rule level: each rule
with a hand-made context refuses what it should (its code, and the numbers in
the detail) and passes what it should; the config validates as a whole, loads
from TOML and round-trips through its text form; `reduces_position` means
exactly what it says; and NaN never passes a rule.

Rules are judged one at a time here; the engine (which exempts reducing trades
from the rules that do not apply to them) is tested through the harness in
test_risk_rules.py.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError, InvalidInput
from domain.events import Envelope, OrderUpdated
from domain.orders import Order, OrderStateChange, OrderStatus, OrderType, Side
from domain.portfolio import Account, Position
from domain.risk import RiskDecision, RuleVerdict
from domain.signals import TradeSignal
from engines.clock import datetime_to_ns
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.config import RiskConfig, RiskConfigError, load_risk_config
from engines.risk.rules import (
    BrokerHealthRule,
    DailyLossRule,
    DuplicateSignalRule,
    GrossExposureRule,
    MarketHoursRule,
    MaxOrderNotionalRule,
    MaxOrderQuantityRule,
    MaxPositionSizeRule,
    MaxPositionsPerSymbolRule,
    MinConfidenceRule,
    NumericDomainRule,
    OrderRateRule,
    PriceCollarRule,
    RiskContext,
    RiskRule,
    StaleDataRule,
    default_rules,
    reduces_position,
)
from tests.support.market import SESSION_START

NOW = SESSION_START
D = Decimal


# --- hand-made worlds ------------------------------------------------------------------


def make_signal(
    symbol: str = "SPY",
    side: Side = Side.BUY,
    quantity: str | Decimal = "10",
    price: str | Decimal = "100",
    confidence: float = 0.9,
    source: str = "strategy:test",
    limit_price: str | Decimal | None = None,
) -> TradeSignal:
    return TradeSignal(
        signal_id="s1",
        source=source,
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        reference_price=D(price),
        confidence=confidence,
        rationale="test",
        created_at=NOW,
        order_type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
        limit_price=None if limit_price is None else D(limit_price),
    )


class World:
    """A portfolio and its prices, built directly (no bus, no broker)."""

    def __init__(self, cash: str = "100000", **last: float) -> None:
        self.prices = MarketPrices()
        self.portfolio = Portfolio(self.prices, D(cash))
        self._orders = 0
        for symbol, price in last.items():
            self.tick(symbol, price)

    def tick(self, symbol: str, price: float, at: datetime = NOW) -> None:
        self.prices.last[symbol] = price
        self.prices.last_ns[symbol] = datetime_to_ns(at)

    def hold(self, *positions: tuple[str, str, str]) -> World:
        """Seed positions: (symbol, signed quantity, average price)."""
        self.portfolio.seed(
            Account(self.portfolio.cash, self.portfolio.cash, self.portfolio.cash),
            [Position(s, D(q), D(p), D(p)) for s, q, p in positions],
        )
        return self

    def in_flight(
        self,
        symbol: str,
        side: Side,
        quantity: str,
        filled: str = "0",
        limit_price: str | None = None,
    ) -> World:
        """An open order (its fills, if any, are not booked to the position here)."""
        self._orders += 1
        order = Order(
            order_id=f"o{self._orders}",
            client_order_id=f"c{self._orders}",
            decision_id=f"d{self._orders}",
            symbol=symbol,
            side=side,
            quantity=D(quantity),
            order_type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
            limit_price=None if limit_price is None else D(limit_price),
            status=OrderStatus.PARTIALLY_FILLED if D(filled) else OrderStatus.ACCEPTED,
            filled_quantity=D(filled),
            average_fill_price=D(0),
            created_at=NOW,
            updated_at=NOW,
            history=(OrderStateChange(OrderStatus.ACCEPTED, NOW),),
        )
        self.portfolio.on_order_updated(Envelope(self._orders, NOW, 0, OrderUpdated(order)))
        return self

    def ctx(
        self,
        config: RiskConfig | None = None,
        now: datetime = NOW,
        broker_healthy: bool = True,
        session_open_equity: Decimal | None = None,
        reduces: bool = False,
    ) -> RiskContext:
        return RiskContext(
            self.portfolio,
            now,
            config or RiskConfig(),
            self.prices,
            broker_healthy,
            session_open_equity,
            reduces,
        )


def decided(signal: TradeSignal, at: datetime, approved: bool = True) -> RiskDecision:
    verdict = RuleVerdict("Test", approved, "OK" if approved else "NO")
    return RiskDecision(f"d-{at.isoformat()}", signal, approved, (verdict,), at)


def refused(verdict: RuleVerdict, code: str, detail: str | None = None) -> None:
    assert (verdict.passed, verdict.code) == (False, code), verdict
    if detail is not None:
        assert verdict.detail == detail


def passed(verdict: RuleVerdict, detail: str | None = None) -> None:
    assert (verdict.passed, verdict.code) == (True, "OK"), verdict
    if detail is not None:
        assert verdict.detail == detail


# --- the rule set ----------------------------------------------------------------------

APPLIES_TO_REDUCING = {
    "NumericDomainRule": True,
    "MarketHoursRule": True,
    "BrokerHealthRule": False,
    "UnresolvedOrderRule": True,
    "StaleDataRule": False,
    "PriceCollarRule": True,
    "MinConfidenceRule": False,
    "MaxOrderQuantityRule": False,
    "MaxOrderNotionalRule": False,
    "MaxPositionSizeRule": False,
    "MaxPositionsPerSymbolRule": False,
    "GrossExposureRule": False,
    "DailyLossRule": False,
    "DuplicateSignalRule": False,
    "OrderRateRule": True,
}


def test_the_default_rule_set_has_every_rule_once_with_its_reducing_exemption(
    calendar: Any,
) -> None:
    rules = default_rules(calendar)

    assert {r.name: r.applies_to_reducing for r in rules} == APPLIES_TO_REDUCING
    assert len({r.name for r in rules}) == len(rules) == 15


def test_each_rule_shows_the_limits_it_reads_by_their_config_keys(calendar: Any) -> None:
    config = RiskConfig().updated({"max_order_notional": "12345.5"})
    limits = config.as_limits()
    shown = {r.name: r.parameters(config) for r in default_rules(calendar)}

    assert shown["MaxOrderNotionalRule"] == {"max_order_notional": "12345.5"}
    assert shown["OrderRateRule"] == {
        "order_rate_window": "60",
        "max_orders_per_window": "30",
        "max_orders_per_symbol_per_window": "10",
    }
    assert shown["MarketHoursRule"] == {"calendar": "XNYS"}
    assert shown["NumericDomainRule"]["price"] == "[0.0001, 10000000]"
    configured = {
        k: v for name, p in shown.items() if name != "NumericDomainRule" for k, v in p.items()
    }
    del configured["calendar"]
    # Every limit is shown by some rule, under its own key and value.
    assert configured == limits


def test_a_signal_within_every_limit_passes_every_rule(calendar: Any) -> None:
    world = World(SPY=100.0)
    ctx = world.ctx(session_open_equity=D(100000))

    verdicts = [rule.check(make_signal(), ctx) for rule in default_rules(calendar)]

    assert [v.code for v in verdicts] == ["OK"] * 15, verdicts


# --- NumericDomainRule, MarketHoursRule, BrokerHealthRule --------------------------------


def test_numeric_domain_refuses_non_finite_and_out_of_domain_numbers() -> None:
    world = World(SPY=100.0)
    rule = NumericDomainRule()

    passed(rule.check(make_signal(), world.ctx()))
    refused(rule.check(make_signal(quantity="NaN"), world.ctx()), "NON_FINITE_VALUE")
    verdict = rule.check(make_signal(quantity="2e9"), world.ctx())
    refused(verdict, "OUTSIDE_NUMERIC_DOMAIN")
    assert "quantity=2E+9 outside (0, 1000000000]" in verdict.detail


def test_market_hours_refuses_outside_the_session(calendar: Any) -> None:
    rule = MarketHoursRule(calendar)
    world = World(SPY=100.0)

    passed(rule.check(make_signal(), world.ctx()), "2024-03-05T14:31:00Z in session")
    saturday = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)
    refused(
        rule.check(make_signal(), world.ctx(now=saturday)),
        "OUTSIDE_MARKET_HOURS",
        "2024-03-09T15:00:00Z is outside the XNYS regular session",
    )


def test_broker_health() -> None:
    rule = BrokerHealthRule()
    world = World(SPY=100.0)

    passed(rule.check(make_signal(), world.ctx(broker_healthy=True)))
    refused(
        rule.check(make_signal(), world.ctx(broker_healthy=False)),
        "BROKER_UNHEALTHY",
        "the broker is not answering",
    )


# --- StaleDataRule ---------------------------------------------------------------------


def test_stale_data_passes_a_tick_up_to_max_data_age_old() -> None:
    world = World()
    world.tick("SPY", 100.0, at=NOW - timedelta(minutes=5))

    verdict = StaleDataRule().check(make_signal(), world.ctx())

    passed(verdict, "last tick 2024-03-05T14:26:00.000000Z age=300s max_data_age=300s")


def test_stale_data_refuses_a_tick_older_than_max_data_age_by_the_core_clock() -> None:
    world = World()
    world.tick("SPY", 100.0, at=NOW - timedelta(minutes=5, microseconds=1))

    verdict = StaleDataRule().check(make_signal(), world.ctx())

    refused(
        verdict,
        "STALE_MARKET_DATA",
        "last tick 2024-03-05T14:25:59.999999Z age=300.000001s max_data_age=300s",
    )
    # A longer allowance, effective for the next signal without a new rule.
    longer = RiskConfig().updated({"max_data_age": "600"})
    passed(StaleDataRule().check(make_signal(), world.ctx(config=longer)))


def test_stale_data_refuses_a_symbol_never_ticked() -> None:
    world = World(SPY=100.0)

    refused(
        StaleDataRule().check(make_signal(symbol="QQQ"), world.ctx()),
        "STALE_MARKET_DATA",
        "no tick for QQQ yet, max_data_age=300s",
    )


# --- PriceCollarRule -------------------------------------------------------------------


@pytest.mark.parametrize("price", ["95", "100", "105"])
def test_price_collar_passes_prices_within_five_percent_of_the_last_trade(price: str) -> None:
    world = World(SPY=100.0)

    passed(PriceCollarRule().check(make_signal(price=price), world.ctx()))


def test_price_collar_refuses_a_reference_price_just_outside() -> None:
    world = World(SPY=100.0)

    refused(
        PriceCollarRule().check(make_signal(price="105.001"), world.ctx()),
        "PRICE_OUTSIDE_COLLAR",
        "reference_price=105.001 last=100.00 allowed=[95.00, 105.00] price_collar_pct=0.05",
    )


def test_price_collar_judges_a_limit_order_by_its_limit_price() -> None:
    world = World(SPY=100.0)
    rule = PriceCollarRule()

    # Sized at 100, limit far below: the limit is what reaches the market.
    verdict = rule.check(make_signal(price="100", limit_price="90"), world.ctx())
    refused(verdict, "PRICE_OUTSIDE_COLLAR")
    assert verdict.detail.startswith("limit_price=90.00 last=100.00")
    wider = RiskConfig().updated({"price_collar_pct": "0.1"})
    passed(rule.check(make_signal(price="100", limit_price="90"), world.ctx(config=wider)))


def test_price_collar_refuses_without_a_last_trade() -> None:
    world = World(SPY=math.nan)  # a price outside the domain is no price

    refused(
        PriceCollarRule().check(make_signal(), world.ctx()),
        "NO_MARKET_PRICE",
        "no usable last trade for SPY",
    )
    refused(PriceCollarRule().check(make_signal(symbol="QQQ"), world.ctx()), "NO_MARKET_PRICE")


# --- MinConfidenceRule -----------------------------------------------------------------


def test_min_confidence() -> None:
    world = World(SPY=100.0)
    rule = MinConfidenceRule()

    passed(rule.check(make_signal(confidence=0.6), world.ctx()), "confidence=0.60 minimum=0.60")
    refused(
        rule.check(make_signal(confidence=0.59), world.ctx()),
        "CONFIDENCE_BELOW_MINIMUM",
        "confidence=0.59 minimum=0.60",
    )


def test_a_refused_confidence_never_reads_as_equal_to_the_minimum() -> None:
    world = World(SPY=100.0)

    verdict = MinConfidenceRule().check(make_signal(confidence=0.5999999), world.ctx())

    refused(verdict, "CONFIDENCE_BELOW_MINIMUM", "confidence=0.5999999 minimum=0.60")


def test_min_confidence_reads_the_limit_in_force() -> None:
    world = World(SPY=100.0)
    rule = MinConfidenceRule()
    lower = RiskConfig().updated({"min_confidence": "0.55"})

    passed(rule.check(make_signal(confidence=0.59), world.ctx(config=lower)))


# --- per-order caps --------------------------------------------------------------------


def test_max_order_quantity() -> None:
    world = World(SPY=1.0)
    rule = MaxOrderQuantityRule()

    passed(rule.check(make_signal(quantity="10000", price="1"), world.ctx()))
    refused(
        rule.check(make_signal(quantity="10000.5", price="1"), world.ctx()),
        "ORDER_QUANTITY_EXCEEDS_LIMIT",
        "quantity=10000.5 limit=10000",
    )


def test_max_order_notional_shows_every_digit_that_decides() -> None:
    world = World(SPY=100.0)
    rule = MaxOrderNotionalRule()

    passed(rule.check(make_signal(quantity="250"), world.ctx()), "notional=25000.00 limit=25000.00")
    refused(
        rule.check(make_signal(quantity="250.00004"), world.ctx()),
        "ORDER_NOTIONAL_EXCEEDS_LIMIT",
        "notional=25000.004 limit=25000.00",
    )


def test_max_order_notional_values_a_limit_order_at_its_limit_price() -> None:
    world = World(SPY=100.0)

    verdict = MaxOrderNotionalRule().check(
        make_signal(quantity="240", price="100", limit_price="110"), world.ctx()
    )

    refused(verdict, "ORDER_NOTIONAL_EXCEEDS_LIMIT", "notional=26400.00 limit=25000.00")


# --- the position and the account ------------------------------------------------------


def test_position_size_counts_the_position_and_orders_in_flight() -> None:
    # Equity 100 000: 98 000 cash and 20 held at 100.
    world = World("98000", SPY=100.0).hold(("SPY", "20", "100")).in_flight("SPY", Side.BUY, "20")
    rule = MaxPositionSizeRule()

    passed(rule.check(make_signal(quantity="10"), world.ctx()), "notional=5000.00 limit=5000.00")
    refused(
        rule.check(make_signal(quantity="11"), world.ctx()),
        "POSITION_SIZE_EXCEEDS_LIMIT",
        "notional=5100.00 limit=5000.00",
    )
    wider = RiskConfig().updated({"max_position_pct": "0.1"})
    passed(rule.check(make_signal(quantity="11"), world.ctx(config=wider)))


def test_position_size_refuses_without_equity() -> None:
    world = World(cash="-1", SPY=100.0)

    refused(MaxPositionSizeRule().check(make_signal(), world.ctx()), "NO_EQUITY", "equity=-1.00")


def test_positions_per_symbol_counts_entries_and_pending_orders() -> None:
    world = World(SPY=100.0).hold(("SPY", "5", "100"))
    rule = MaxPositionsPerSymbolRule()

    passed(rule.check(make_signal(), world.ctx()), "open=1 limit=2")
    world.in_flight("SPY", Side.BUY, "5")
    refused(rule.check(make_signal(), world.ctx()), "MAX_POSITIONS_PER_SYMBOL", "open=2 limit=2")


def test_gross_exposure_sums_positions_orders_in_flight_and_this_order() -> None:
    world = (
        World(cash="100000", SPY=100.0, QQQ=50.0)
        .hold(("SPY", "300", "100"), ("QQQ", "-600", "50"))  # 30 000 long, 30 000 short
        .in_flight("SPY", Side.SELL, "100", filled="40")  # 60 left at the mark: 6 000
        .in_flight("QQQ", Side.BUY, "100", limit_price="49")  # 4 900
    )
    # Equity: 100 000 cash, +30 000 - 30 000 of positions = 100 000.
    rule = GrossExposureRule()
    parts = "positions=60000.00 in_flight=10900.00 order={} equity=100000.00"

    passed(rule.check(make_signal(quantity="291"), world.ctx()))
    verdict = rule.check(make_signal(quantity="291.1"), world.ctx())
    refused(
        verdict,
        "GROSS_EXPOSURE_EXCEEDS_LIMIT",
        "gross=100010.00 limit=100000.00 " + parts.format("29110.00") + " max_gross_exposure_pct=1",
    )
    levered = RiskConfig().updated({"max_gross_exposure_pct": "1.5"})
    passed(rule.check(make_signal(quantity="291.1"), world.ctx(config=levered)))


def test_gross_exposure_refuses_without_equity() -> None:
    world = World(cash="0", SPY=100.0)

    refused(GrossExposureRule().check(make_signal(), world.ctx()), "NO_EQUITY", "equity=0.00")


def test_daily_loss_refuses_new_exposure_below_the_floor() -> None:
    rule = DailyLossRule()
    at_floor = World(cash="97000", SPY=100.0)
    below = World(cash="96999.99", SPY=100.0)

    passed(
        rule.check(make_signal(), at_floor.ctx(session_open_equity=D("100000"))),
        "equity=97000.00 floor=97000.00 loss=3000.00 session_open_equity=100000.00 "
        "daily_loss_pct=0.03",
    )
    refused(
        rule.check(make_signal(), below.ctx(session_open_equity=D("100000"))),
        "DAILY_LOSS_LIMIT",
        "equity=96999.99 floor=97000.00 loss=3000.01 session_open_equity=100000.00 "
        "daily_loss_pct=0.03",
    )


def test_daily_loss_passes_before_the_session_has_an_opening_equity() -> None:
    world = World(cash="1", SPY=100.0)

    verdict = DailyLossRule().check(make_signal(), world.ctx(session_open_equity=None))

    passed(verdict, "no session opening equity yet")


# --- rules with memory -----------------------------------------------------------------


def test_duplicate_signal_within_the_window_is_refused_and_the_window_is_live() -> None:
    world = World(SPY=100.0)
    rule = DuplicateSignalRule()
    signal = make_signal()
    passed(rule.check(signal, world.ctx()))
    rule.record(decided(signal, NOW))

    refused(
        rule.check(signal, world.ctx(now=NOW + timedelta(seconds=59.5))),
        "DUPLICATE_SIGNAL",
        "same signal approved 59.5s ago, window=60s",
    )
    passed(rule.check(signal, world.ctx(now=NOW + timedelta(seconds=60))))
    # Another side or source is not a duplicate; a narrower window applies at once.
    passed(rule.check(make_signal(side=Side.SELL), world.ctx(now=NOW + timedelta(seconds=1))))
    passed(rule.check(make_signal(source="idea:1"), world.ctx(now=NOW + timedelta(seconds=1))))
    narrow = RiskConfig().updated({"duplicate_window": "10"})
    passed(rule.check(signal, world.ctx(config=narrow, now=NOW + timedelta(seconds=11))))


def test_a_rejected_signal_does_not_start_a_duplicate_window() -> None:
    world = World(SPY=100.0)
    rule = DuplicateSignalRule()
    rule.record(decided(make_signal(), NOW, approved=False))

    passed(rule.check(make_signal(), world.ctx(now=NOW + timedelta(seconds=1))))


def test_order_rate_limits_each_symbol_within_the_window() -> None:
    world = World(SPY=100.0, QQQ=50.0)
    rule = OrderRateRule()
    for k in range(10):
        rule.record(decided(make_signal(), NOW + timedelta(seconds=k)))
    later = NOW + timedelta(seconds=30)

    refused(
        rule.check(make_signal(), world.ctx(now=later)),
        "ORDER_RATE_EXCEEDED",
        "symbol=SPY symbol_orders=10 symbol_limit=10 total_orders=10 total_limit=30 window=60s",
    )
    passed(rule.check(make_signal(symbol="QQQ"), world.ctx(now=later)))
    # The first order leaves the window 60 s after it was approved.
    passed(rule.check(make_signal(), world.ctx(now=NOW + timedelta(seconds=60))))
    # Reducing trades count and are judged: a loop of sells is a loop.
    refused(
        rule.check(make_signal(side=Side.SELL), world.ctx(now=later, reduces=True)),
        "ORDER_RATE_EXCEEDED",
    )


def test_order_rate_limits_the_total_and_counts_only_approved_orders() -> None:
    world = World(SPY=100.0)
    rule = OrderRateRule()
    for k in range(30):
        rule.record(decided(make_signal(symbol=f"S{k % 5}"), NOW))
    for _ in range(50):
        rule.record(decided(make_signal(symbol="SPY"), NOW, approved=False))

    verdict = rule.check(make_signal(), world.ctx(now=NOW + timedelta(seconds=1)))

    refused(verdict, "ORDER_RATE_EXCEEDED")
    assert "symbol_orders=0 symbol_limit=10 total_orders=30 total_limit=30" in verdict.detail
    more = RiskConfig().updated({"max_orders_per_window": "31"})
    passed(rule.check(make_signal(), world.ctx(config=more, now=NOW + timedelta(seconds=1))))


def test_order_rate_honours_a_widened_window_and_forgets_after_a_day() -> None:
    world = World(SPY=100.0)
    rule = OrderRateRule()
    for k in range(10):
        rule.record(decided(make_signal(), NOW + timedelta(minutes=k)))
    at = NOW + timedelta(minutes=30)
    passed(rule.check(make_signal(), world.ctx(now=at)))  # none in the last 60 s

    hour = RiskConfig().updated({"order_rate_window": "3600"})
    verdict = rule.check(make_signal(), world.ctx(config=hour, now=at))

    refused(verdict, "ORDER_RATE_EXCEEDED")
    assert "symbol_orders=10 symbol_limit=10" in verdict.detail
    # A day on, everything before is forgotten: memory stays bounded.
    rule.record(decided(make_signal(symbol="QQQ"), NOW + timedelta(days=1, minutes=10)))
    assert list(rule._by_symbol) == ["QQQ"]
    assert len(rule._all) == 1


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 600),  # seconds after NOW
            st.sampled_from(["SPY", "QQQ"]),
            st.booleans(),  # approved
            st.sampled_from(["1", "30", "600"]),  # window in force for a dry run
        ),
        max_size=40,
    )
)
def test_judging_never_changes_what_a_memory_rule_decides_later(
    steps: list[tuple[int, str, bool, str]],
) -> None:
    """A dry run (check without record) leaves nothing behind (DESIGN.md invariant 4)."""
    world = World(SPY=100.0, QQQ=50.0)
    plain = [OrderRateRule(), DuplicateSignalRule()]
    probed = [OrderRateRule(), DuplicateSignalRule()]
    for offset, symbol, approved, window in sorted(steps):
        at = NOW + timedelta(seconds=offset)
        signal = make_signal(symbol=symbol)
        dry = world.ctx(RiskConfig().updated({"order_rate_window": window}), now=at)
        for rule in probed:
            rule.check(signal, dry)
        ctx = world.ctx(now=at)
        assert [r.check(signal, ctx) for r in plain] == [r.check(signal, ctx) for r in probed]
        for rule in (*plain, *probed):
            rule.record(decided(signal, at, approved))


# --- reduces_position ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "in_flight", "side", "quantity", "expected"),
    [
        ("100", "0", Side.SELL, "100", True),  # sell everything held
        ("100", "60", Side.SELL, "40", True),  # what is not already being sold
        ("100", "60", Side.SELL, "41", False),  # more than that
        ("100", "0", Side.SELL, "101", False),  # flips to a short
        ("100", "0", Side.BUY, "1", False),  # adds
        ("0", "0", Side.SELL, "1", False),  # opens a short
        ("-50", "0", Side.BUY, "50", True),  # buys back the short
        ("-50", "20", Side.BUY, "31", False),
        ("100", "0", Side.SELL, "NaN", False),
        ("100", "0", Side.SELL, "0", False),
        ("100", "0", Side.SELL, "-5", False),
    ],
)
def test_reduces_position(
    held: str, in_flight: str, side: Side, quantity: str, expected: bool
) -> None:
    world = World(SPY=100.0).hold(("SPY", held, "100"))
    if D(in_flight):
        world.in_flight("SPY", side, in_flight)

    assert reduces_position(make_signal(side=side, quantity=quantity), world.portfolio) is expected


order_st = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 100),  # quantity
    st.integers(0, 100),  # filled (capped at the quantity)
)


@settings(max_examples=300, deadline=None)
@given(
    held=st.integers(-200, 200),
    orders=st.lists(order_st, max_size=5),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    quantity=st.decimals(min_value=D("0.01"), max_value=D(300), places=2),
)
def test_reduces_position_only_for_trades_that_cannot_grow_or_flip_the_position(
    held: int, orders: list[tuple[Side, int, int]], side: Side, quantity: Decimal
) -> None:
    world = World(SPY=100.0).hold(("SPY", str(held), "100"))
    for order_side, size, filled in orders:
        world.in_flight("SPY", order_side, str(size), filled=str(min(filled, size - 1)))
    same_way_in_flight = sum(
        D(size - min(filled, size - 1)) for s, size, filled in orders if s is side
    )

    reduces = reduces_position(make_signal(side=side, quantity=quantity), world.portfolio)

    if side is Side.SELL:
        expected = held > 0 and quantity <= held - same_way_in_flight
    else:
        expected = held < 0 and quantity <= -held - same_way_in_flight
    assert reduces is expected
    if reduces:
        # Once this order and every one in flight its way is done, the position
        # has shrunk towards zero, and not crossed it.
        signed = -1 if side is Side.SELL else 1
        after = held + signed * (same_way_in_flight + quantity)
        assert abs(after) < abs(held)
        assert after == 0 or (after > 0) == (held > 0)


# --- NaN never passes a rule -----------------------------------------------------------

NOT_NUMBERS = [D("NaN"), D("sNaN"), D("Infinity"), D("-Infinity")]

# The rules that compute with the price an order is judged at: its limit price,
# else its reference price.
PRICED = {
    "NumericDomainRule",
    "PriceCollarRule",
    "MaxOrderNotionalRule",
    "MaxPositionSizeRule",
    "GrossExposureRule",
}
# Which rules must refuse a non-finite value in each field: (field, has a limit
# price) -> rules. Any other rule may pass (the number is none of its business)
# or refuse for its own reason, but never raise.
CONCERNED = {
    ("confidence", False): {"NumericDomainRule", "MinConfidenceRule"},
    ("confidence", True): {"NumericDomainRule", "MinConfidenceRule"},
    ("quantity", False): {*PRICED - {"PriceCollarRule"}, "MaxOrderQuantityRule"},
    ("quantity", True): {*PRICED - {"PriceCollarRule"}, "MaxOrderQuantityRule"},
    ("reference_price", False): PRICED,
    ("reference_price", True): {"NumericDomainRule"},  # the limit price is what is priced
    ("limit_price", True): PRICED,
}


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(sorted(CONCERNED)),
    bad=st.sampled_from(NOT_NUMBERS),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    held=st.integers(-100, 100),
    quantity=st.integers(1, 50),
    reduces=st.booleans(),
)
def test_no_rule_passes_a_non_finite_number_and_none_raises(
    calendar: Any,
    case: tuple[str, bool],
    bad: Decimal,
    side: Side,
    held: int,
    quantity: int,
    reduces: bool,
) -> None:
    field, has_limit = case
    world = World(SPY=100.0).hold(("SPY", str(held), "100"))
    limit_price = "100" if has_limit else None
    signal = make_signal(side=side, quantity=str(quantity), limit_price=limit_price)
    if field == "confidence":
        signal = replace(signal, confidence=math.nan if bad.is_snan() else float(bad))
    else:
        changes: dict[str, Any] = {field: bad}
        signal = replace(signal, **changes)
    ctx = world.ctx(session_open_equity=D(100000), reduces=reduces)

    verdicts = {rule.name: rule.check(signal, ctx) for rule in default_rules(calendar)}

    for name in CONCERNED[case]:
        verdict = verdicts[name]
        assert (verdict.passed, verdict.code) == (False, "NON_FINITE_VALUE"), verdict
    assert not all(v.passed for v in verdicts.values())


@pytest.mark.parametrize("bad", ["NaN", "Infinity"])
def test_an_account_that_cannot_be_valued_passes_no_rule_that_reads_equity(
    calendar: Any, bad: str
) -> None:
    world = World(cash=bad, SPY=100.0)
    ctx = world.ctx(session_open_equity=D(100000))

    verdicts = {r.name: r.check(make_signal(), ctx) for r in default_rules(calendar)}

    for name in ("NumericDomainRule", "MaxPositionSizeRule", "GrossExposureRule", "DailyLossRule"):
        assert (verdicts[name].passed, verdicts[name].code) == (False, "NON_FINITE_VALUE"), name


def test_an_arithmetic_error_refuses_instead_of_raising() -> None:
    world = World(SPY=100.0)
    # Beyond the default 28 digits, rounding to the cent cannot be done.
    signal = make_signal(quantity="1e30", price="1e30")

    verdict = MaxPositionSizeRule().check(signal, world.ctx())

    refused(verdict, "NON_FINITE_VALUE")


# --- RiskConfig ------------------------------------------------------------------------


def test_defaults() -> None:
    config = RiskConfig()

    assert config.as_limits() == {
        "max_position_pct": "0.05",
        "max_positions_per_symbol": "2",
        "duplicate_window": "60",
        "min_confidence": "0.6",
        "max_order_notional": "25000",
        "max_order_quantity": "10000",
        "order_rate_window": "60",
        "max_orders_per_window": "30",
        "max_orders_per_symbol_per_window": "10",
        "max_gross_exposure_pct": "1",
        "daily_loss_pct": "0.03",
        "daily_loss_resets_next_session": "true",
        "price_collar_pct": "0.05",
        "max_data_age": "300",
    }
    assert list(config.as_limits()) == [f.name for f in fields(RiskConfig)]


def test_updated_applies_changes_to_a_new_config() -> None:
    config = RiskConfig()

    changed = config.updated(
        {
            "max_position_pct": "0.1",
            "order_rate_window": "0.5",
            "daily_loss_resets_next_session": "FALSE",
            "max_orders_per_window": " 40 ",
            "min_confidence": "0.75",
        }
    )

    assert changed.max_position_pct == D("0.1")
    assert changed.order_rate_window == timedelta(milliseconds=500)
    assert changed.daily_loss_resets_next_session is False
    assert changed.max_orders_per_window == 40
    assert changed.min_confidence == 0.75
    assert config == RiskConfig()  # unchanged
    assert config.updated({}) == config


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"max_position_pct": "0.12345678", "duplicate_window": "0.000001"},
        {"max_gross_exposure_pct": "10", "max_order_notional": "10000000000000000"},
        {
            "min_confidence": "0",
            "max_data_age": "604800",
            "daily_loss_resets_next_session": "false",
        },
        {"max_orders_per_window": "5", "max_orders_per_symbol_per_window": "5"},
    ],
)
def test_as_limits_and_updated_round_trip(changes: dict[str, str]) -> None:
    config = RiskConfig().updated(changes)

    assert RiskConfig().updated(config.as_limits()) == config
    assert config.updated(config.as_limits()) == config


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"max_positon_pct": "0.1"}, "unknown key 'max_positon_pct' (known: max_position_pct"),
        ({"max_position_pct": "-0.05"}, "max_position_pct='-0.05': must be in (0, 1]"),
        ({"max_position_pct": "0"}, "max_position_pct='0': must be in (0, 1]"),
        ({"daily_loss_pct": "1.5"}, "daily_loss_pct='1.5': must be in (0, 1]"),
        ({"price_collar_pct": "abc"}, "price_collar_pct='abc': not a number"),
        ({"max_gross_exposure_pct": "10.5"}, "max_gross_exposure_pct='10.5': must be in (0, 10]"),
        ({"min_confidence": "1.01"}, "min_confidence='1.01': must be in [0, 1]"),
        ({"min_confidence": "nan"}, "min_confidence='nan': must be a finite number"),
        ({"max_order_notional": "Infinity"}, "max_order_notional='Infinity': must be a finite"),
        ({"max_order_quantity": "NaN"}, "max_order_quantity='NaN': must be a finite number"),
        ({"max_order_quantity": "1e-20"}, "max_order_quantity='1e-20': finer than 8 decimal"),
        ({"order_rate_window": "0"}, "order_rate_window='0': must be in (0, 86400] seconds"),
        ({"duplicate_window": "-60"}, "duplicate_window='-60': must be in (0, 86400] seconds"),
        ({"max_data_age": "1e9"}, "max_data_age='1e9': must be in (0, 604800] seconds"),
        ({"max_data_age": "0.0000001"}, "max_data_age='0.0000001': finer than a microsecond"),
        ({"max_orders_per_window": "0"}, "max_orders_per_window='0': must be in [1, 100000]"),
        ({"max_positions_per_symbol": "2.5"}, "max_positions_per_symbol='2.5': must be a whole"),
        ({"daily_loss_resets_next_session": "yes"}, "must be true or false"),
        ({"max_order_notional": "1" * 65}, "longer than 64 characters"),
        (
            {"max_orders_per_window": "5"},
            "max_orders_per_symbol_per_window=10 is more than max_orders_per_window=5",
        ),
        (
            {"max_orders_per_symbol_per_window": "31"},
            "max_orders_per_symbol_per_window=31 is more than max_orders_per_window=30",
        ),
    ],
)
def test_a_bad_limit_is_refused_by_name_and_nothing_changes(
    changes: dict[str, str], problem: str
) -> None:
    config = RiskConfig()

    with pytest.raises(InvalidInput) as raised:
        config.updated(changes)

    assert problem in str(raised.value)
    assert str(raised.value).startswith("invalid risk limits: ")
    assert raised.value.reason == "INVALID_RISK_LIMITS"
    [key] = changes
    if "is more than" in problem:  # a contradiction is laid at the per-symbol limit
        key = "max_orders_per_symbol_per_window"
    assert list(raised.value.metadata) == [key]
    assert config == RiskConfig()


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidInput) as raised:
        RiskConfig().updated(
            {
                "bogus": "1",
                "max_position_pct": "2",
                "order_rate_window": "x",
                "min_confidence": "-1",
                "max_orders_per_symbol_per_window": "50",
            }
        )

    message = str(raised.value)
    assert set(raised.value.metadata) == {
        "bogus",
        "max_position_pct",
        "order_rate_window",
        "min_confidence",
        "max_orders_per_symbol_per_window",
    }
    for fragment in (
        "unknown key 'bogus'",
        "max_position_pct='2': must be in (0, 1]",
        "order_rate_window='x': not a number of seconds",
        "min_confidence='-1': must be in [0, 1]",
        "max_orders_per_symbol_per_window=50 is more than max_orders_per_window=30",
    ):
        assert fragment in message


def test_a_config_is_valid_by_construction() -> None:
    with pytest.raises(InvalidInput, match=r"max_position_pct=0\.1: must be a Decimal"):
        RiskConfig(max_position_pct=0.1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_orders_per_window=True: must be a int"):
        RiskConfig(max_orders_per_window=True)
    with pytest.raises(InvalidInput, match="must be in"):
        replace(RiskConfig(), duplicate_window=timedelta(0))


# --- load_risk_config ------------------------------------------------------------------


def test_no_file_means_the_defaults() -> None:
    assert load_risk_config(None) == RiskConfig()


def test_a_toml_file_sets_the_keys_it_names(tmp_path: Path) -> None:
    path = tmp_path / "risk.toml"
    path.write_text(
        "# limits for the small account\n"
        "max_position_pct = 0.1\n"
        'max_order_notional = "50000.50"\n'
        "max_positions_per_symbol = 3\n"
        "order_rate_window = 30\n"
        "max_data_age = 90.5\n"
        "daily_loss_resets_next_session = false\n"
        "min_confidence = 0.7\n"
    )

    config = load_risk_config(path)

    assert config == RiskConfig(
        max_position_pct=D("0.1"),
        max_order_notional=D("50000.50"),
        max_positions_per_symbol=3,
        order_rate_window=timedelta(seconds=30),
        max_data_age=timedelta(seconds=90.5),
        daily_loss_resets_next_session=False,
        min_confidence=0.7,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("max_position_pct = ", "not valid TOML"),
        ("max_position_pct = 2\n", "max_position_pct='2': must be in (0, 1]"),
        ("max_position_pct = nan\n", "max_position_pct='nan': must be a finite number"),
        ("maximum = 1\n", "unknown key 'maximum'"),
        ("max_positions_per_symbol = 2.0\n", "must be a whole number"),
        ("daily_loss_resets_next_session = 1\n", "must be true or false"),
        ("[risk]\nmax_position_pct = 0.1\n", "risk is a table; expected a number"),
        ("max_data_age = [1, 2]\n", "max_data_age is list"),
    ],
)
def test_a_bad_file_is_refused_in_one_line_naming_it(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "risk.toml"
    path.write_text(content)

    with pytest.raises(RiskConfigError) as raised:
        load_risk_config(path)

    message = str(raised.value)
    assert message.startswith(f"risk config {path}: ")
    assert problem in message
    assert "\n" not in message
    assert isinstance(raised.value, DomainError)
    assert raised.value.reason == "BAD_RISK_CONFIG"


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RiskConfigError, match=r"risk\.toml: no such file"):
        load_risk_config(tmp_path / "risk.toml")
    with pytest.raises(RiskConfigError, match="cannot be read"):
        load_risk_config(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(RiskConfigError, match=r"binary\.toml: not valid TOML"):
        load_risk_config(binary)


def _check_protocol(rule: RiskRule) -> RiskRule:
    return rule


def test_every_rule_satisfies_the_protocol(calendar: Any) -> None:
    for rule in default_rules(calendar):
        assert _check_protocol(rule).name == type(rule).__name__
