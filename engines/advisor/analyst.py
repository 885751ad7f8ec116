"""The analyst port: what every analyst is given and what it answers.

An analyst gets a frozen snapshot of the world (`AnalysisContext`), taken under
the sequencer, and is called *outside* it, since a model may take seconds. Its
answer (`AnalystReply`) is untrusted: the proposed ideas are plain values as
the analyst wrote them, and `engines.advisor.validation` decides which of them
may become ideas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from domain.ideas import AnalysisKind
from domain.portfolio import Position

# The two moving averages every analyst is shown (in prices, most recent last).
SHORT_MA = 10
LONG_MA = 30


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """What a person asked for. Empty `symbols` means the portfolio's."""

    kind: AnalysisKind
    question: str = ""
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The risk gate's limits, so that ideas can respect them.

    `max_position_pct` is MaxPositionSizeRule's (None when that rule is not in
    use); `rules` holds every rule's parameters, as GetRiskStatus shows them.
    """

    max_position_pct: Decimal | None
    rules: dict[str, dict[str, str]]

    def position_ceiling(self, equity: Decimal) -> Decimal | None:
        """The largest position the size rule allows, in money."""
        if self.max_position_pct is None:
            return None
        return (equity * self.max_position_pct).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class MarketView:
    """One symbol's last price and recent prices (oldest first)."""

    symbol: str
    last_price: Decimal | None
    recent: tuple[float, ...]

    def moving_average(self, periods: int) -> float | None:
        """Mean of the last `periods` prices; None until that many are known."""
        if periods <= 0 or len(self.recent) < periods:
            return None
        return sum(self.recent[-periods:]) / periods


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    """The world as the analyst sees it: account, positions, markets and limits.

    `symbols` are the symbols of interest, resolved (the request's, else the
    portfolio's, else the strategies'). `markets` covers those and every held
    symbol; `prices` has the last price of every symbol the core knows.
    `strategy_symbols` are the symbols the strategies trade.
    """

    request: AnalysisRequest
    symbols: tuple[str, ...]
    now: datetime
    cash: Decimal
    equity: Decimal
    positions: tuple[Position, ...]
    markets: tuple[MarketView, ...]
    prices: dict[str, Decimal]
    strategy_symbols: tuple[str, ...]
    limits: RiskLimits
    trading_active: bool
    idea_ttl: timedelta
    max_ideas: int

    def market(self, symbol: str) -> MarketView | None:
        return next((m for m in self.markets if m.symbol == symbol), None)

    def held(self, symbol: str) -> Decimal:
        return next((p.quantity for p in self.positions if p.symbol == symbol), Decimal(0))


@dataclass(frozen=True, slots=True)
class ProposedIdea:
    """An idea as an analyst wrote it: untrusted until validated.

    Either `quantity` (shares) or `notional` (money) sizes it; `side` is the
    analyst's text ("BUY" / "SELL"); `expires_in_minutes` None means the
    advisor's default time to live.
    """

    symbol: str
    side: str
    quantity: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    confidence: float
    rationale: str
    risks: tuple[str, ...]
    expires_in_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class AnalystReply:
    """An analyst's answer. `dropped` holds a reason for each part of the output
    that could not even be read (malformed JSON, a malformed idea); the ideas in
    `ideas` are yet to be validated. `model` and `prompt_version` name what
    produced the reply, for the audit log."""

    text: str
    warnings: tuple[str, ...]
    ideas: tuple[ProposedIdea, ...]
    model: str
    prompt_version: str
    dropped: tuple[str, ...] = ()


class Analyst(Protocol):
    """Writes an analysis. May block on I/O; raises domain.errors.Unavailable when
    the service behind it cannot be reached. Never sees or changes engine state.
    `model` is the model it is configured to use (a reply names the one that served)."""

    name: str
    model: str

    def analyze(self, context: AnalysisContext) -> AnalystReply: ...
