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
    """Whether new orders may be sent. HALTED fails closed: every signal is rejected;
    REDUCING lets through only trades that reduce a position."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class TradingCause(str, Enum):
    """Who set a trading state. Each cause keeps its own setting and only its owner
    clears it; the strictest setting in force applies."""

    OPERATOR = "OPERATOR"
    """A person; cleared by a person."""
    AUDIT_STORE = "AUDIT_STORE"
    """The audit store is unreachable; cleared when it recovers."""
    BROKER = "BROKER"
    """The broker is unreachable; cleared when it answers again."""
    DAILY_LOSS_BREAKER = "DAILY_LOSS_BREAKER"
    """Equity fell too far in a session; cleared by an operator or the next session."""


@dataclass(frozen=True, slots=True)
class TradingStatus:
    """One cause's trading state with who changed it, why and when (`changed_at` is
    None before anything changed: "since start")."""

    state: TradingState
    changed_by: str
    reason: str
    changed_at: datetime | None
    cause: TradingCause = TradingCause.OPERATOR
