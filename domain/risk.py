"""Risk decisions, the tokens that let a trade through, and the trading state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from domain.signals import TradeSignal


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One rule's judgement of one signal.

    `code` is stable (clients act on it); `detail` is the context a person reads,
    for example `notional=6200.00 limit=5000.00`.
    """

    rule: str
    passed: bool
    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The risk engine's answer to a signal, with every rule's verdict."""

    decision_id: str
    signal: TradeSignal
    approved: bool
    verdicts: tuple[RuleVerdict, ...]
    decided_at: datetime

    @property
    def rejections(self) -> tuple[RuleVerdict, ...]:
        return tuple(v for v in self.verdicts if not v.passed)


@dataclass(frozen=True, slots=True)
class ApprovedTrade:
    """A decision that passed every rule: the only thing execution turns into an order."""

    decision: RiskDecision

    def __post_init__(self) -> None:
        if not self.decision.approved:
            raise ValueError("a rejected decision cannot become an ApprovedTrade")


@dataclass(frozen=True, slots=True)
class RejectedTrade:
    """A decision that failed at least one rule; `decision.rejections` says which."""

    decision: RiskDecision

    def __post_init__(self) -> None:
        if self.decision.approved:
            raise ValueError("an approved decision cannot become a RejectedTrade")


class TradingState(str, Enum):
    """Whether new orders may be sent. HALTED fails closed: signals are rejected."""

    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class TradingStatus:
    """The trading state with who changed it, why and when."""

    state: TradingState
    changed_by: str
    reason: str
    changed_at: datetime
