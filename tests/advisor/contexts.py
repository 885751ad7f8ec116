"""Analysis contexts built by hand, for the unit tests of validation and the
offline analyst (the service tests get theirs from the engine)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from domain.ideas import AnalysisKind
from domain.portfolio import Position
from engines.advisor.analyst import (
    AnalysisContext,
    AnalysisRequest,
    MarketView,
    ProposedIdea,
    RiskLimits,
)
from tests.support.market import SESSION

EQUITY = Decimal("100000")


def rising(start: float, end: float, count: int = 40) -> tuple[float, ...]:
    return tuple(start + (end - start) * i / (count - 1) for i in range(count))


def context(
    *,
    kind: AnalysisKind = AnalysisKind.PORTFOLIO_REVIEW,
    symbols: Sequence[str] = ("AAPL",),
    requested: Sequence[str] = (),
    cash: Decimal = EQUITY,
    positions: Sequence[Position] = (),
    history: dict[str, tuple[float, ...]] | None = None,
    max_position_pct: Decimal | None = Decimal("0.05"),
    max_ideas: int = 5,
) -> AnalysisContext:
    """A snapshot: `history` gives each symbol's recent prices (the last is its price)."""
    history = {"AAPL": rising(180.0, 190.0)} if history is None else history
    prices = {s: Decimal(repr(h[-1])) for s, h in history.items()}
    equity = cash + sum((p.market_value for p in positions), Decimal(0))
    shown = dict.fromkeys((*symbols, *(p.symbol for p in positions)))
    return AnalysisContext(
        request=AnalysisRequest(kind, "", tuple(requested)),
        symbols=tuple(symbols),
        now=SESSION,
        cash=cash,
        equity=equity,
        positions=tuple(positions),
        markets=tuple(MarketView(s, prices.get(s), history.get(s, ())) for s in shown),
        prices=prices,
        strategy_symbols=("SPY", "QQQ", "IWM"),
        limits=RiskLimits(max_position_pct, {"MaxPositionSizeRule": {"max_position_pct": "0.05"}}),
        trading_active=True,
        idea_ttl=timedelta(minutes=15),
        max_ideas=max_ideas,
    )


def proposal(
    symbol: str = "AAPL",
    side: str = "BUY",
    quantity: str | None = "10",
    **overrides: object,
) -> ProposedIdea:
    """A proposal that passes validation in the default context, unless overridden."""
    values: dict[str, object] = {
        "symbol": symbol,
        "side": side,
        "quantity": None if quantity is None else Decimal(quantity),
        "notional": None,
        "limit_price": None,
        "confidence": 0.8,
        "rationale": "a reason",
        "risks": ("the price may fall",),
        "expires_in_minutes": None,
    }
    values.update(overrides)
    return ProposedIdea(**values)  # type: ignore[arg-type]
