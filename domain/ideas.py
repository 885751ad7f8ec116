"""The AI advisor's output: analyses and the trade ideas a human approves or rejects.

An idea is advice, not an order. It is born PENDING_APPROVAL; only a human
decision moves it on, and an approved idea becomes a `TradeSignal` that meets
the same risk gate as every strategy signal. Ideas expire: a human decides on
the world as it is, not as it was when the idea was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from domain.orders import Side


class AnalysisKind(str, Enum):
    """The help asked for: a review of the portfolio's risk, a reading of market
    conditions, or an explanation (education, no trade ideas)."""

    PORTFOLIO_REVIEW = "PORTFOLIO_REVIEW"
    MARKET_CONDITIONS = "MARKET_CONDITIONS"
    EDUCATION = "EDUCATION"


class IdeaState(str, Enum):
    """Lifecycle of an idea. Every state but PENDING_APPROVAL is final."""

    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class TradeIdea:
    """A suggested trade, sized and priced when it was written.

    `reference_price` is the last price the analyst saw; an approval is refused
    when the market has moved too far from it. `limit_price` None means a market
    order. `decision_id` and `order_id` name the risk decision and the order an
    approval led to, once they exist.
    """

    idea_id: str
    symbol: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    reference_price: Decimal
    confidence: float
    rationale: str
    risks: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    state: IdeaState
    analysis_id: str
    decided_by: str = ""
    decision_reason: str = ""
    decided_at: datetime | None = None
    decision_id: str = ""
    order_id: str = ""

    @property
    def notional(self) -> Decimal:
        return self.quantity * (self.limit_price or self.reference_price)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the advisor wrote for one Analyze request, and who wrote it.

    `analyst`, `model` and `prompt_version` say which analyst, which model and
    which version of the prompt produced it. `dropped` holds one reason per
    piece of the analyst's output that was refused rather than turned into an idea.
    """

    analysis_id: str
    requested_by: str
    kind: AnalysisKind
    question: str
    symbols: tuple[str, ...]
    text: str
    warnings: tuple[str, ...]
    analyst: str
    model: str
    prompt_version: str
    created_at: datetime
    idea_ids: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
