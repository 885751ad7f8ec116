"""The risk engine: the mandatory gate between every signal and execution.

It has exactly two exits, both through the journal: a `RiskDecisionMade` that
approves (execution acts on it) or one that rejects (nothing happens). Every
rule is evaluated for every signal and each verdict is kept. Deactivating the
engine halts trading: signals are still judged and recorded, and all are
rejected with RISK_ENGINE_DEACTIVATED. It never lets anything through unchecked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from domain.events import Envelope, RiskDecisionMade, SignalGenerated, TradingStateChanged
from domain.risk import (
    ApprovedTrade,
    RejectedTrade,
    RiskDecision,
    RuleVerdict,
    TradingState,
    TradingStatus,
)
from domain.signals import TradeSignal
from engines.bus import Sequencer
from engines.portfolio import Portfolio
from engines.risk.rules import (
    NON_FINITE_VALUE,
    DuplicateSignalRule,
    MarketHoursRule,
    MaxPositionSizeRule,
    MaxPositionsPerSymbolRule,
    MinConfidenceRule,
    NumericDomainRule,
    RiskContext,
    RiskRule,
)

HALT_CODE = "RISK_ENGINE_DEACTIVATED"


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Limits of the default rule set."""

    max_position_pct: Decimal = Decimal("0.05")
    max_positions_per_symbol: int = 2
    duplicate_window: timedelta = timedelta(seconds=60)
    min_confidence: float = 0.6


def default_rules(config: RiskConfig, calendar: Any) -> list[RiskRule]:
    """The rule set every signal meets. NumericDomainRule is not configurable: its
    bounds are the service's numeric domain (`domain.numeric`), not a limit."""
    return [
        MaxPositionSizeRule(config.max_position_pct),
        MaxPositionsPerSymbolRule(config.max_positions_per_symbol),
        DuplicateSignalRule(config.duplicate_window),
        MarketHoursRule(calendar),
        MinConfidenceRule(config.min_confidence),
        NumericDomainRule(),
    ]


@dataclass(slots=True)
class RuleCounts:
    passed: int = 0
    rejected: int = 0


@dataclass(slots=True)
class RiskStats:
    approvals: int = 0
    rejections: int = 0
    per_rule: dict[str, RuleCounts] = field(default_factory=dict)


class RiskEngine:
    def __init__(
        self,
        bus: Sequencer,
        portfolio: Portfolio,
        rules: list[RiskRule],
        trading: TradingStatus,
        recent: int = 1000,
    ) -> None:
        self._bus = bus
        self._portfolio = portfolio
        self.rules = rules
        self.trading = trading
        self.stats = RiskStats(per_rule={r.name: RuleCounts() for r in rules})
        self.recent: deque[RiskDecision] = deque(maxlen=recent)
        bus.subscribe(SignalGenerated, self.on_signal)
        bus.subscribe(TradingStateChanged, self.on_trading_state_changed)

    @property
    def active(self) -> bool:
        return self.trading.state is TradingState.ACTIVE

    def evaluate(self, signal: TradeSignal, decision_id: str) -> ApprovedTrade | RejectedTrade:
        """Judge a signal against every rule (pure given portfolio and clock)."""
        now = self._bus.clock.now()
        ctx = RiskContext(self._portfolio, now)
        verdicts: list[RuleVerdict] = []
        if not self.active:
            t = self.trading
            detail = f"risk engine deactivated by {t.changed_by}: {t.reason}".rstrip(": ")
            verdicts.append(RuleVerdict("RiskEngine", False, HALT_CODE, detail))
        verdicts.extend(_judge(rule, signal, ctx) for rule in self.rules)
        approved = all(v.passed for v in verdicts)
        decision = RiskDecision(decision_id, signal, approved, tuple(verdicts), now)
        return ApprovedTrade(decision) if approved else RejectedTrade(decision)

    def on_signal(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, SignalGenerated)
        outcome = self.evaluate(event.signal, decision_id=f"d{envelope.seq}")
        decision = outcome.decision
        for rule in self.rules:
            rule.record(decision)
        for verdict in decision.verdicts:
            counts = self.stats.per_rule.get(verdict.rule)
            if counts is not None:
                if verdict.passed:
                    counts.passed += 1
                else:
                    counts.rejected += 1
        if decision.approved:
            self.stats.approvals += 1
        else:
            self.stats.rejections += 1
        self.recent.append(decision)
        self._bus.publish(RiskDecisionMade(decision), caused_by=envelope.seq)

    def set_trading_state(self, state: TradingState, changed_by: str, reason: str) -> TradingStatus:
        """Halt or resume (an operator command); recorded even if unchanged."""
        status = TradingStatus(state, changed_by, reason, self._bus.clock.now())
        self._bus.publish(TradingStateChanged(status))
        return self.trading

    def on_trading_state_changed(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, TradingStateChanged)
        self.trading = event.status


def _judge(rule: RiskRule, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
    """A rule's verdict; arithmetic on a bad number (ArithmeticError covers every
    decimal signal, OverflowError and ZeroDivisionError) refuses the signal with
    NON_FINITE_VALUE: every other rule still runs, and the decision is journaled."""
    try:
        return rule.check(signal, ctx)
    except ArithmeticError as exc:
        detail = f"a number could not be computed with ({type(exc).__name__}: {exc})"
        return RuleVerdict(rule.name, False, NON_FINITE_VALUE, detail)
