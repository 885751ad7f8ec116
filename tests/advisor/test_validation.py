"""Analyst output is untrusted: each proposal becomes a valid idea or a reason."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from domain.ideas import AnalysisKind
from domain.orders import Side
from domain.portfolio import Position
from engines.advisor.analyst import ProposedIdea
from engines.advisor.validation import validate_all
from tests.advisor.contexts import context, proposal


def test_a_sound_proposal_becomes_an_idea_at_the_last_price() -> None:
    [valid], dropped = validate_all((proposal(symbol=" aapl ", side="buy"),), context())

    assert dropped == []
    assert (valid.symbol, valid.side, valid.quantity) == ("AAPL", Side.BUY, Decimal(10))
    assert valid.reference_price == Decimal("190.0")
    assert valid.ttl == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (proposal(symbol="ZZZZ"), "unknown symbol 'ZZZZ'"),
        (proposal(symbol=""), "names no symbol"),
        (proposal(side="HOLD"), "side must be BUY or SELL"),
        (proposal(quantity="0"), "quantity must be positive"),
        (proposal(quantity="-3"), "quantity must be positive"),
        (proposal(quantity="2.5"), "whole shares"),
        (proposal(quantity=None), "neither a quantity nor a notional"),
        (proposal(quantity="100"), "exceeds the position ceiling 5000.00"),
        (proposal(notional=Decimal("-1"), quantity=None), "quantity must be positive"),
        (proposal(limit_price=Decimal("0")), "limit price must be positive"),
        (proposal(confidence=1.5), "confidence must be between 0 and 1"),
        (proposal(confidence=float("nan")), "confidence must be between 0 and 1"),
        (proposal(side="SELL"), "the advisor does not propose short sales"),
        (proposal(rationale="  "), "gives no rationale"),
        (proposal(risks=()), "names no risks"),
        (proposal(expires_in_minutes=0), "expiry must be in the future"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_an_unsound_proposal_is_dropped_with_its_reason(bad: ProposedIdea, reason: str) -> None:
    valid, [dropped] = validate_all((bad,), context())

    assert valid == []
    assert reason in dropped


def test_a_symbol_asked_about_but_never_priced_cannot_be_sized() -> None:
    _, [dropped] = validate_all((proposal(symbol="MSFT"),), context(requested=("MSFT",)))

    assert "no market price for MSFT" in dropped


def test_a_notional_is_turned_into_whole_shares_at_the_limit_price() -> None:
    sized = proposal(quantity=None, notional=Decimal("1000"), limit_price=Decimal("185"))

    [valid], _ = validate_all((sized,), context())

    assert (valid.quantity, valid.limit_price) == (Decimal(5), Decimal("185"))


def test_selling_what_is_held_is_never_limited_by_size() -> None:
    held = Position("AAPL", Decimal(200), Decimal(150), Decimal("190.0"))

    [valid], dropped = validate_all(
        (proposal(side="SELL", quantity="200"),), context(positions=[held])
    )

    assert dropped == []
    assert valid.quantity * valid.reference_price > Decimal(5000)


def test_an_analyst_may_shorten_an_ideas_life_but_not_extend_it() -> None:
    short, long = proposal(expires_in_minutes=5), proposal(expires_in_minutes=600)

    valid, _ = validate_all((short, long), context())

    assert [v.ttl for v in valid] == [timedelta(minutes=5), timedelta(minutes=15)]


def test_ideas_beyond_the_maximum_are_dropped() -> None:
    valid, dropped = validate_all((proposal(), proposal(), proposal()), context(max_ideas=2))

    assert len(valid) == 2
    assert dropped == ["AAPL BUY: dropped, at most 2 ideas per analysis"]


def test_without_a_size_rule_there_is_no_ceiling() -> None:
    [valid], _ = validate_all((proposal(quantity="100"),), context(max_position_pct=None))

    assert valid.quantity == Decimal(100)


def test_an_education_answer_keeps_no_idea() -> None:
    valid, dropped = validate_all((proposal(),), context(kind=AnalysisKind.EDUCATION))

    assert valid == []
    assert dropped == ["AAPL BUY: dropped, an education answer proposes no trades"]
