"""The numeric domain in the core (DESIGN.md invariant 7): any non-finite
intermediate refuses the signal, NaN never passes a rule, and no bad number
silences a symbol or escapes as an exception.

The edge keeps prices inside the domain (tests/edge/test_numeric_edge.py);
these tests feed the core directly, because it must not rely on the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.codec import record_to_envelope
from domain import numeric
from domain.errors import PreconditionFailed
from domain.ideas import AnalysisKind
from domain.orders import Side
from domain.signals import TradeSignal
from engines.advisor.analyst import AnalysisRequest
from engines.advisor.validation import validate_all
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.config import RiskConfig
from engines.risk.rules import (
    NON_FINITE_VALUE,
    OUTSIDE_NUMERIC_DOMAIN,
    MinConfidenceRule,
    NumericDomainRule,
    RiskContext,
)
from engines.strategy.base import SignalIntent
from engines.strategy.ma_crossover import MovingAverageCrossoverStrategy, swing_confidence
from engines.strategy.sizing import FractionOfEquitySizer
from tests.advisor.contexts import context, proposal
from tests.core.fakes import HoldingBroker
from tests.core.harness import Harness, failed_codes, make_harness
from tests.support.market import SESSION_START

NAN = math.nan
INF = math.inf
SLIDE = [100 - 0.2 * i for i in range(60)]
RALLY = [88 + 1.0 * i for i in range(30)]
# Two laps of the 20/50 ring (70 prices) of a steady climb, then a fall and a
# rise: after any prefix, the climb clears the ring and the V must be seen.
CLIMB_THEN_V = (
    [60 + 0.3 * i for i in range(140)]
    + [102 - 0.3 * i for i in range(90)]
    + [75 + 0.5 * i for i in range(80)]
)


def run(prices: list[float], **params: Any) -> list[tuple[int, SignalIntent]]:
    """Every crossing of a fresh 20/50 crossover over `prices`, tick by tick."""
    strategy = MovingAverageCrossoverStrategy(**params)
    state = strategy.new_state("SPY")
    return [
        (k, intent)
        for k, price in enumerate(prices)
        if (intent := strategy.process_market_event("SPY", price, k, state)) is not None
    ]


def hand_made_signal(
    confidence: float = 0.9,
    quantity: Decimal = Decimal(10),
    price: Decimal = Decimal(100),
    limit_price: Decimal | None = None,
) -> TradeSignal:
    return TradeSignal(
        signal_id="t1",
        source="strategy:test",
        symbol="SPY",
        side=Side.BUY,
        quantity=quantity,
        reference_price=price,
        confidence=confidence,
        rationale="test",
        created_at=SESSION_START,
        limit_price=limit_price,
    )


@pytest.fixture
def paper(calendar: Any) -> Harness:
    return make_harness(calendar)


@pytest.fixture(scope="module")
def judge(calendar: Any) -> Iterator[Harness]:
    """One core for the property tests: `RiskEngine.evaluate` is pure (it records
    nothing), so examples cannot disturb one another."""
    yield make_harness(calendar)


# --- reproduction 1: a 5e-324 tick made the volatility NaN, and NaN scored 1.0 -----------


def test_a_subnormal_price_in_the_window_scores_zero_not_one() -> None:
    """It used to read "noise nan% (z=inf)" and score 1.0, which passed risk."""
    [(_, intent)] = run([*SLIDE, 5e-324, *RALLY])

    assert intent.side is Side.BUY
    assert intent.confidence == 0.0
    assert "cannot be measured" in intent.rationale
    assert "z=inf" not in intent.rationale


def test_the_zero_noise_limit_is_still_one_and_a_nan_never_is() -> None:
    assert swing_confidence(0.05, 0.0) == (INF, 1.0)  # documented: no noise, a real move
    assert swing_confidence(0.0, 0.0)[1] == 0.0
    assert swing_confidence(0.05, 1e-320)[1] == 1.0  # z too large to square: the same limit
    for swing, noise in [(0.05, NAN), (NAN, 0.01), (INF, 0.01), (0.05, INF), (NAN, NAN)]:
        z, confidence = swing_confidence(swing, noise)
        assert math.isnan(z) and confidence == 0.0


def test_a_nan_confidence_is_refused_by_its_own_rule_and_by_min_confidence(
    paper: Harness,
) -> None:
    """Reproduction 1 in the core: a NaN confidence reaching the gate (a float NaN
    cannot be journaled, so the pure `evaluate` is asked) never passes."""
    decision = paper.core.risk.evaluate(hand_made_signal(confidence=NAN), "d-nan").decision

    assert not decision.approved
    by_rule = {v.rule: v for v in decision.verdicts}
    assert by_rule["NumericDomainRule"].code == NON_FINITE_VALUE
    assert "confidence=nan" in by_rule["NumericDomainRule"].detail
    assert by_rule["MinConfidenceRule"].code == NON_FINITE_VALUE
    assert not by_rule["MinConfidenceRule"].passed


@pytest.mark.parametrize("confidence", [NAN, INF, -INF])
def test_min_confidence_rule_alone_never_passes_a_non_finite_confidence(
    paper: Harness, confidence: float
) -> None:
    ctx = _context(paper, RiskConfig(min_confidence=0.0))
    verdict = MinConfidenceRule().check(hand_made_signal(confidence=confidence), ctx)
    assert not verdict.passed


@pytest.mark.parametrize(
    ("quantity", "price", "field"),
    [
        ("NaN", "100", "quantity=NaN"),
        ("Infinity", "100", "quantity=Infinity"),
        ("10", "Infinity", "reference_price=Infinity"),
        ("10", "NaN", "reference_price=NaN"),
    ],
)
def test_a_non_finite_quantity_or_price_is_journaled_and_refused_with_every_rule_run(
    paper: Harness, quantity: str, price: str, field: str
) -> None:
    """Through the bus: the rules that compare these numbers used to raise
    decimal.InvalidOperation out of the risk engine; now every rule answers."""
    decision = paper.signal(quantity=quantity, price=price)

    assert not decision.approved
    assert NON_FINITE_VALUE in failed_codes(decision)
    assert len(decision.verdicts) == len(paper.core.risk.rules)  # every rule answered
    domain = next(v for v in decision.verdicts if v.rule == "NumericDomainRule")
    assert field in domain.detail
    assert paper.payloads("RiskDecisionMade")[-1]["decision"]["approved"] is False
    assert paper.records("OrderUpdated") == []


@pytest.mark.parametrize(
    ("signal", "field"),
    [
        (hand_made_signal(quantity=Decimal("2e9")), "quantity=2E+9 outside (0, 1000000000]"),
        (hand_made_signal(price=Decimal("5e-5")), "reference_price=0.00005 outside"),
        (hand_made_signal(price=Decimal("2e7")), "reference_price=2E+7 outside"),
        (hand_made_signal(limit_price=Decimal("1e8")), "limit_price=1E+8 outside"),
        (hand_made_signal(confidence=1.5), "confidence=1.5 outside [0, 1]"),
    ],
)
def test_finite_numbers_outside_the_domain_are_refused_with_their_own_code(
    paper: Harness, signal: TradeSignal, field: str
) -> None:
    decision = paper.core.risk.evaluate(signal, "d-out").decision

    verdict = next(v for v in decision.verdicts if v.rule == "NumericDomainRule")
    assert (verdict.passed, verdict.code) == (False, OUTSIDE_NUMERIC_DOMAIN)
    assert field in verdict.detail


def test_numbers_inside_the_domain_pass(paper: Harness) -> None:
    verdict = NumericDomainRule().check(hand_made_signal(), _context(paper))
    assert verdict.passed, verdict


# --- reproduction 2: 60 ticks at 1.7e308 silenced the symbol until a restart ------------


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param([1.7e308] * 60, id="60-ticks-at-1.7e308"),
        pytest.param([1e300], id="one-huge-finite-tick"),
        pytest.param([NAN] * 3, id="nan"),
        pytest.param([INF, -INF], id="plus-and-minus-inf"),
        pytest.param([5e-324] * 10, id="subnormals"),
    ],
)
def test_the_symbol_signals_again_once_extreme_values_have_left_the_window(
    prefix: list[float],
) -> None:
    """The old running sums stayed inf/NaN forever and no crossing was ever seen again."""
    expected = [(k, i.side, i.confidence) for k, i in run(CLIMB_THEN_V)]
    after = [(k - len(prefix), i.side, i.confidence) for k, i in run(prefix + CLIMB_THEN_V)]

    assert expected, "the clean path must cross"
    # Once the climb has filled the ring, the crossings are those of the clean
    # path, at the same ticks, with the same scores (a score is computed from the
    # ring alone, which by then holds the same prices).
    assert [c for c in after if c[0] >= 140] == expected


def test_no_crossing_is_invented_by_a_sum_that_absorbed_a_huge_price() -> None:
    """A finite 1e300 swamps the running sum; when it leaves, the sum would be
    garbage. A sign change is confirmed with exact sums before it counts."""
    declining = [100 - 0.1 * i for i in range(200)]
    assert run(declining) == []
    assert run([1e300, *declining]) == []


# --- sizing, prices and the portfolio never raise on a bad number --------------------


@pytest.mark.parametrize(
    "price", [Decimal("NaN"), Decimal("Infinity"), Decimal(0), Decimal("1e-9"), Decimal("1e8")]
)
def test_sizing_a_buy_at_a_price_outside_the_domain_gives_no_shares(price: Decimal) -> None:
    sizer = FractionOfEquitySizer(Portfolio(MarketPrices(), Decimal(100000)))
    assert sizer.quantity("SPY", Side.BUY, price, allow_short=False) == 0


def test_sizing_with_an_equity_that_is_not_a_number_gives_no_shares() -> None:
    portfolio = Portfolio(MarketPrices(), Decimal("NaN"))
    assert FractionOfEquitySizer(portfolio).quantity("SPY", Side.BUY, Decimal(100), False) == 0


def test_one_order_is_at_most_the_domain_s_quantity() -> None:
    portfolio = Portfolio(MarketPrices(), numeric.MAX_MONEY)
    quantity = FractionOfEquitySizer(portfolio).quantity(
        "SPY", Side.BUY, Decimal(repr(numeric.MIN_PRICE)), allow_short=False
    )
    assert quantity == numeric.MAX_ORDER_QUANTITY


@pytest.mark.parametrize("price", [NAN, INF, -INF, 0.0, -5.0, 5e-324, 1.7e308])
def test_a_last_price_outside_the_domain_is_no_price(price: float) -> None:
    prices = MarketPrices()
    prices.last["SPY"] = price
    assert prices.last_price("SPY") is None
    prices.last["SPY"] = 512.3
    assert prices.last_price("SPY") == Decimal("512.3")


def test_a_fill_outside_the_domain_is_never_booked(calendar: Any) -> None:
    """A broker report with a number the core cannot book is refused before it is
    journaled: the order stays open (the next sweep or fill resolves it), the
    account keeps its value, and the gate goes on judging signals."""
    broker = HoldingBroker()
    harness = make_harness(calendar, broker)
    assert harness.signal(quantity="10").approved
    [order] = broker.submitted
    equity = harness.core.portfolio.equity()
    before = harness.store.last_seq()

    broker.fill(order.client_order_id, Decimal("NaN"))

    assert harness.store.last_seq() == before
    assert harness.core.portfolio.equity() == equity
    assert [o.client_order_id for o in harness.core.execution.orders(open_only=True)] == [
        order.client_order_id
    ]
    assert harness.signal(quantity="1", symbol="QQQ").approved


def test_a_nan_confidence_through_the_bus_is_journaled_and_refused(paper: Harness) -> None:
    """The audit log records a non-finite number as it was (JSON has no NaN), so the
    refusal is explainable and replays exactly."""
    decision = paper.signal(confidence=NAN)

    assert not decision.approved
    assert NON_FINITE_VALUE in failed_codes(decision)
    [signal] = paper.payloads("SignalGenerated")
    assert signal["signal"]["confidence"] == "nan"
    [recorded] = [r for r in paper.records("RiskDecisionMade")]
    assert math.isnan(record_to_envelope(recorded).event.decision.signal.confidence)  # type: ignore[union-attr]


# --- reproduction 3: a huge mark made Analyze fail with decimal.InvalidOperation --------


@pytest.mark.parametrize("cash", [Decimal("Infinity"), Decimal("NaN"), Decimal("1e30")])
def test_analyze_on_an_account_outside_the_domain_is_a_precondition_not_a_crash(
    paper: Harness, cash: Decimal
) -> None:
    paper.core.portfolio.cash = cash
    request = AnalysisRequest(AnalysisKind.PORTFOLIO_REVIEW)

    with pytest.raises(PreconditionFailed, match="the account cannot be analysed"):
        paper.core.advisor.analyze(request, "tester")
    [refusal] = paper.payloads("RequestRefused")
    assert (refusal["method"], refusal["principal"]) == ("Analyze", "tester")
    assert "cash=" in refusal["reason"]


def test_analyze_with_a_huge_last_price_held_works(paper: Harness) -> None:
    """Reproduction 3 in the core: SPY held, then a 1.7e308 tick. The mark is no
    price, so the position is valued at cost and the analysis is made."""
    assert paper.signal(quantity="10").approved
    paper.core.prices.last["SPY"] = 1.7e308

    analysis, _ = paper.core.advisor.analyze(
        AnalysisRequest(AnalysisKind.PORTFOLIO_REVIEW), "tester"
    )
    assert "Account: equity" in analysis.text
    assert numeric.money_in_domain(paper.core.portfolio.equity())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"quantity": "1e30"}, "quantity must be within (0, 1000000000]"),
        ({"quantity": None, "notional": Decimal("1e999")}, "notional must be a finite amount"),
        ({"limit_price": Decimal("1e20")}, "limit price must be positive, finite and within"),
        ({"limit_price": Decimal("NaN")}, "limit price must be positive, finite and within"),
        ({"confidence": NAN}, "confidence must be between 0 and 1"),
    ],
)
def test_an_analyst_s_out_of_domain_number_drops_its_idea(
    overrides: dict[str, Any], reason: str
) -> None:
    quantity = overrides.pop("quantity", "10")
    valid, dropped = validate_all((proposal(quantity=quantity, **overrides),), context())

    assert valid == []
    [why] = dropped
    assert reason in why


# --- properties ------------------------------------------------------------------------

EXTREME_BUT_VALID = st.one_of(
    st.sampled_from([numeric.MIN_PRICE, numeric.MAX_PRICE, 1.0, 100.0]),
    st.floats(min_value=numeric.MIN_PRICE, max_value=numeric.MAX_PRICE),
)


@settings(max_examples=60, deadline=None)
@given(
    path=st.lists(EXTREME_BUT_VALID, min_size=60, max_size=400),
    short_long=st.sampled_from([(2, 5), (5, 12), (20, 50)]),
)
def test_every_signal_on_an_extreme_but_valid_path_has_a_finite_confidence(
    judge: Harness, path: list[float], short_long: tuple[int, int]
) -> None:
    """Prices anywhere in the domain, jumping between its ends: every crossing
    scores a finite confidence in [0, 1], and a signal made from it is never
    taken for a non-finite one by the risk gate."""
    short_n, long_n = short_long
    ctx = _context(judge)
    for k, intent in run(path, short_period=short_n, long_period=long_n):
        assert math.isfinite(intent.confidence)
        assert 0.0 <= intent.confidence <= 1.0
        assert "nan" not in intent.rationale
        signal = hand_made_signal(intent.confidence, Decimal(1), Decimal(repr(path[k])))
        verdict = NumericDomainRule().check(signal, ctx)
        assert verdict.passed, verdict


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
ANY_DECIMAL = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    confidence=st.one_of(st.floats(0.0, 1.0), ANY_FLOAT),
    quantity=st.one_of(st.decimals(1, 1000, places=0), ANY_DECIMAL),
    price=st.one_of(st.decimals(1, 1000, places=2), ANY_DECIMAL),
    limit=st.one_of(st.none(), ANY_DECIMAL),
)
def test_every_decision_with_a_non_finite_input_is_a_non_finite_rejection(
    judge: Harness,
    confidence: float,
    quantity: Decimal,
    price: Decimal,
    limit: Decimal | None,
) -> None:
    signal = hand_made_signal(confidence, quantity, price, limit)
    decision = judge.core.risk.evaluate(signal, "d-property").decision  # never raises

    inputs: list[float | Decimal] = [confidence, quantity, price]
    if limit is not None:
        inputs.append(limit)
    if not all(numeric.is_finite(v) for v in inputs):
        assert not decision.approved
        assert NON_FINITE_VALUE in failed_codes(decision)
    for verdict in decision.verdicts:
        assert verdict.code  # every rule answered with a stable code


@settings(max_examples=60, deadline=None)
@given(prefix=st.lists(st.one_of(ANY_FLOAT, EXTREME_BUT_VALID), min_size=1, max_size=150))
def test_the_crossover_keeps_crossing_after_any_values_leave_its_window(
    prefix: list[float],
) -> None:
    expected = [(k, i.side) for k, i in run(CLIMB_THEN_V)]
    after = [(k - len(prefix), i.side) for k, i in run(prefix + CLIMB_THEN_V)]
    assert [c for c in after if c[0] >= 140] == expected


def _context(harness: Harness, config: RiskConfig | None = None) -> RiskContext:
    """The context a rule judges in, as the engine builds it for a fresh account."""
    return RiskContext(
        harness.core.portfolio,
        SESSION_START,
        config or RiskConfig(),
        harness.core.prices,
        True,
        None,
        False,
    )
