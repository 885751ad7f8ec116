"""The offline analyst: deterministic rules, the same message types as OpenAI's."""

from __future__ import annotations

from decimal import Decimal

from domain.ideas import AnalysisKind
from domain.portfolio import Position
from engines.advisor.offline import OfflineAnalyst, trend
from engines.advisor.validation import validate_all
from tests.advisor.contexts import context, rising

FALLING = rising(120.0, 100.0)


def test_the_same_snapshot_always_gives_the_same_analysis() -> None:
    held = Position("IBM", Decimal(100), Decimal(130), Decimal("100.0"))
    snapshot = context(
        symbols=("AAPL", "IBM"),
        positions=[held],
        history={"AAPL": rising(180, 190), "IBM": FALLING},
    )

    assert OfflineAnalyst().analyze(snapshot) == OfflineAnalyst().analyze(snapshot)


def test_a_position_above_the_limit_gets_a_warning_and_an_idea_to_trim_the_excess() -> None:
    held = Position("AAPL", Decimal(100), Decimal(150), Decimal("190.0"))  # 19000 of 100000
    snapshot = context(cash=Decimal(81000), positions=[held])

    reply = OfflineAnalyst().analyze(snapshot)

    assert any(
        "AAPL is 19.0% of equity, above the 5.0% position limit" in w for w in reply.warnings
    )
    [trim] = reply.ideas
    # (19000 - 5000) / 190 = 73.7 -> 74 shares, which brings it within the limit.
    assert (trim.side, trim.quantity) == ("SELL", Decimal(74))
    assert trim.risks


def test_a_losing_position_in_a_downtrend_gets_an_idea_to_halve_it() -> None:
    held = Position("IBM", Decimal(21), Decimal(130), Decimal("100.0"))  # 23% below cost
    snapshot = context(symbols=("IBM",), positions=[held], history={"IBM": FALLING})

    reply = OfflineAnalyst().analyze(snapshot)

    assert any("IBM is 23.1% below its cost" in w and "trend down" in w for w in reply.warnings)
    assert [(i.symbol, i.side, i.quantity) for i in reply.ideas] == [("IBM", "SELL", Decimal(10))]


def test_a_losing_position_in_an_uptrend_is_only_flagged() -> None:
    recovering = rising(90.0, 100.0)
    held = Position("IBM", Decimal(20), Decimal(130), Decimal("100.0"))
    snapshot = context(
        kind=AnalysisKind.MARKET_CONDITIONS,
        symbols=("IBM",),
        positions=[held],
        history={"IBM": recovering},
    )

    reply = OfflineAnalyst().analyze(snapshot)

    assert any("IBM is 23.1% below its cost" in w for w in reply.warnings)
    assert reply.ideas == ()


def test_idle_cash_gets_a_small_buy_of_the_strongest_uptrend() -> None:
    snapshot = context(
        symbols=("AAPL", "MSFT", "IBM"),
        history={"AAPL": rising(180, 190), "MSFT": rising(300, 330), "IBM": FALLING},
    )

    reply = OfflineAnalyst().analyze(snapshot)

    [buy] = reply.ideas
    # Half the 5000 ceiling at 330.
    assert (buy.symbol, buy.side, buy.quantity) == ("MSFT", "BUY", Decimal(7))
    assert "cash drag" in reply.text


def test_market_conditions_never_suggest_buying() -> None:
    reply = OfflineAnalyst().analyze(context(kind=AnalysisKind.MARKET_CONDITIONS))

    assert reply.ideas == ()
    assert "AAPL: last 190.0" in reply.text and "trend up" in reply.text


def test_education_explains_the_limits_and_suggests_nothing() -> None:
    reply = OfflineAnalyst().analyze(context(kind=AnalysisKind.EDUCATION))

    assert reply.ideas == ()
    assert "at most 5.0% of equity (5000.00 now) in one position" in reply.text


def test_too_few_prices_read_no_trend() -> None:
    snapshot = context(history={"AAPL": rising(180, 190, count=12)})

    assert trend(snapshot.market("AAPL")) == ("unknown", 0.0)
    assert OfflineAnalyst().analyze(snapshot).ideas == ()


def test_its_ideas_pass_the_same_validation_as_a_models() -> None:
    held = Position("AAPL", Decimal(100), Decimal(150), Decimal("190.0"))
    losing = Position("IBM", Decimal(21), Decimal(130), Decimal("100.0"))
    snapshot = context(
        symbols=("AAPL", "IBM", "MSFT"),
        cash=Decimal(60000),
        positions=[held, losing],
        history={"AAPL": rising(180, 190), "IBM": FALLING, "MSFT": rising(300, 330)},
    )

    reply = OfflineAnalyst().analyze(snapshot)
    valid, dropped = validate_all(reply.ideas, snapshot)

    assert len(reply.ideas) == 3
    assert (len(valid), dropped) == (3, [])
