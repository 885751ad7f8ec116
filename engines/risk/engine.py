"""The risk engine: the mandatory gate between every signal and execution.

It has exactly two exits, both through the journal: a `RiskDecisionMade` that
approves, after which the approved trade is handed to execution directly (the
only way a signal reaches a broker), or one that rejects (nothing happens). Every
rule is evaluated for every signal and each verdict is kept.

Trading states. Each cause (an operator, the audit store, the broker, the daily
loss breaker) keeps its own setting, and only its owner clears it; the
strictest setting in force applies. HALTED rejects every signal
(RISK_ENGINE_DEACTIVATED); REDUCING lets through only a trade that reduces a
position (TRADING_REDUCING otherwise). Neither ever lets anything through
unchecked: a signal is still judged by every rule and recorded.

A trade that only reduces a position (`reduces_position`) is passed with
REDUCES_POSITION by every rule that does not apply to reducing trades (see
each rule's `applies_to_reducing`); this exemption is made here, once.

The daily loss breaker: when a signal is judged and equity is more than
`daily_loss_pct` below the session's opening equity (the equity when the
session's first signal was judged), the breaker's cause goes to REDUCING by
itself, audited; the next session clears it when `daily_loss_resets_next_session`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from domain.events import (
    Envelope,
    RiskDecisionMade,
    RiskLimitsChanged,
    SignalGenerated,
    TradingStateChanged,
)
from domain.risk import (
    ApprovedTrade,
    RejectedTrade,
    RiskDecision,
    RuleVerdict,
    TradingCause,
    TradingState,
    TradingStatus,
)
from domain.signals import TradeSignal
from engines.bus import Sequencer
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.config import RiskConfig
from engines.risk.rules import (
    NON_FINITE_VALUE,
    REDUCES_POSITION,
    RiskContext,
    RiskRule,
    reduces_position,
)

HALT_CODE = "RISK_ENGINE_DEACTIVATED"
REDUCING_CODE = "TRADING_REDUCING"
TRADING_STATE_RULE = "TradingState"
BREAKER_BY = "system:daily-loss-breaker"
STARTED = TradingStatus(TradingState.ACTIVE, "system", "started", None)


@dataclass(slots=True)
class RuleCounts:
    passed: int = 0
    rejected: int = 0
    passed_total: int = 0  # since the audit log began
    rejected_total: int = 0


@dataclass(slots=True)
class RiskStats:
    approvals: int = 0
    rejections: int = 0
    per_rule: dict[str, RuleCounts] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateChange:
    """What setting a cause's state did: the effective state after, and whether
    anything was recorded (setting what is already in force changes nothing)."""

    trading: TradingStatus
    changed: bool
    message: str


class RiskEngine:
    def __init__(
        self,
        bus: Sequencer,
        portfolio: Portfolio,
        prices: MarketPrices,
        rules: list[RiskRule],
        config: RiskConfig,
        place: Callable[[ApprovedTrade, int], None] | None = None,
        recent: int = 1000,
    ) -> None:
        self._bus = bus
        # Where an approved trade goes (execution), handed over directly with the
        # seq of its journaled decision: the gate's only way out to a broker.
        self._place = place
        self._portfolio = portfolio
        self._prices = prices
        self.rules = rules
        self.config = config
        # Settings in force (never ACTIVE), and the last change of any cause.
        self.causes: dict[TradingCause, TradingStatus] = {}
        self._last_change = STARTED
        self._session: tuple[date, Decimal] | None = None  # (session day, opening equity)
        self.stats = RiskStats(per_rule={r.name: RuleCounts() for r in rules})
        self.recent: deque[RiskDecision] = deque(maxlen=recent)
        bus.subscribe(SignalGenerated, self.on_signal)
        bus.subscribe(TradingStateChanged, self.on_trading_state_changed)
        bus.subscribe(RiskLimitsChanged, self.on_limits_changed)

    # --- the trading state -------------------------------------------------------------

    @property
    def trading(self) -> TradingStatus:
        """The effective state: the strictest setting in force (the latest among equals)."""
        if not self.causes:
            return self._last_change if self._last_change.state is TradingState.ACTIVE else STARTED
        return max(
            self.causes.values(),
            key=lambda s: (s.state.strictness, s.changed_at or _NEVER),
        )

    @property
    def state(self) -> TradingState:
        return self.trading.state

    @property
    def active(self) -> bool:
        return self.state is TradingState.ACTIVE

    def set_trading_state(
        self,
        state: TradingState,
        cause: TradingCause,
        changed_by: str,
        reason: str,
        caused_by: int = 0,
    ) -> StateChange:
        """Set one cause's state (a command, run inside the sequencer; `caused_by` is
        the signal that tripped a breaker). Setting what is already in force records
        nothing and says so."""
        current = self.causes.get(cause)
        if (current.state if current else TradingState.ACTIVE) is state:
            return StateChange(self.trading, False, _already(state, cause, current))
        previous = self.state
        status = TradingStatus(state, changed_by, reason, self._bus.clock.now(), cause)
        self._bus.publish(TradingStateChanged(status, previous), caused_by=caused_by)
        after = self.trading
        message = f"{cause.value} set to {state.value}; trading is {after.state.value}"
        return StateChange(after, True, message)

    def on_trading_state_changed(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, TradingStateChanged)
        status = _with_cause(event.status)
        if status.state is TradingState.ACTIVE:
            self.causes.pop(status.cause, None)
        else:
            self.causes[status.cause] = status
        self._last_change = status

    # --- limits ------------------------------------------------------------------------

    def update_limits(self, changes: Mapping[str, str], changed_by: str, reason: str) -> RiskConfig:
        """Replace limits (validated as a whole: InvalidInput changes nothing)."""
        updated = self.config.updated(changes)
        self._bus.publish(
            RiskLimitsChanged(updated.as_limits(), self.config.as_limits(), changed_by, reason)
        )
        return self.config

    def on_limits_changed(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, RiskLimitsChanged)
        self.config = RiskConfig().updated(event.limits)

    # --- judging -----------------------------------------------------------------------

    def evaluate(self, signal: TradeSignal, decision_id: str) -> ApprovedTrade | RejectedTrade:
        """Judge a signal against every rule: pure given the portfolio, the prices and
        the clock (CheckOrder calls it for its dry run; nothing is recorded here)."""
        now = self._bus.clock.now()
        reduces = reduces_position(signal, self._portfolio)
        ctx = RiskContext(
            self._portfolio,
            now,
            self.config,
            self._prices,
            # The broker's health as the core knows it (set by its guard, as an
            # input), never asked of the broker here: no broker I/O under the
            # sequencer, and a replay judges exactly as the live run did.
            TradingCause.BROKER not in self.causes,
            self._opening_equity(now.date()),
            reduces,
        )
        verdicts: list[RuleVerdict] = []
        trading = self.trading
        if trading.state is TradingState.HALTED:
            detail = _describe(trading)
            verdicts.append(RuleVerdict(TRADING_STATE_RULE, False, HALT_CODE, detail))
        elif trading.state is TradingState.REDUCING and not reduces:
            detail = f"only trades that reduce a position pass: {_describe(trading)}"
            verdicts.append(RuleVerdict(TRADING_STATE_RULE, False, REDUCING_CODE, detail))
        for rule in self.rules:
            if reduces and not rule.applies_to_reducing:
                detail = "reduces the position; this rule judges new exposure only"
                verdicts.append(RuleVerdict(rule.name, True, REDUCES_POSITION, detail))
            else:
                verdicts.append(_judge(rule, signal, ctx))
        approved = all(v.passed for v in verdicts)
        decision = RiskDecision(decision_id, signal, approved, tuple(verdicts), now)
        return ApprovedTrade(decision) if approved else RejectedTrade(decision)

    def on_signal(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, SignalGenerated)
        self._watch_session(envelope.seq)
        outcome = self.evaluate(event.signal, decision_id=f"d{envelope.seq}")
        decision = outcome.decision
        for rule in self.rules:
            rule.record(decision)
        self.count(decision, total_only=False)
        self.recent.append(decision)
        decided = self._bus.publish(RiskDecisionMade(decision), caused_by=envelope.seq)
        if isinstance(outcome, ApprovedTrade) and self._place is not None:
            self._place(outcome, decided.seq)

    def count(self, decision: RiskDecision, *, total_only: bool) -> None:
        """Tally a decision: live, or (`total_only`) one read back from the log at start-up."""
        for verdict in decision.verdicts:
            counts = self.stats.per_rule.get(verdict.rule)
            if counts is None:
                continue
            live = 0 if total_only else 1
            if verdict.passed:
                counts.passed_total += 1
                counts.passed += live
            else:
                counts.rejected_total += 1
                counts.rejected += live
        if not total_only:
            if decision.approved:
                self.stats.approvals += 1
            else:
                self.stats.rejections += 1

    def restore_counts(self, decisions: Iterable[RiskDecision]) -> None:
        for decision in decisions:
            self.count(decision, total_only=True)

    # --- the daily loss breaker -----------------------------------------------------------

    def _opening_equity(self, day: date) -> Decimal | None:
        """The session's opening equity as the gate would see it now (pure: the
        first signal of a session sets it to the equity of that moment)."""
        if self._session is not None and self._session[0] == day:
            return self._session[1]
        return self._portfolio.equity()

    def _watch_session(self, signal_seq: int) -> None:
        """Before a signal is judged: start a new session's record, clear the breaker
        when a session ends (if configured), and trip it on too large a loss. These
        changes are caused by the signal (a replay regenerates them from it)."""
        now = self._bus.clock.now()
        day = now.date()
        breaker = self.causes.get(TradingCause.DAILY_LOSS_BREAKER)
        if self._session is None or self._session[0] != day:
            self._session = (day, self._portfolio.equity())
            if breaker is not None and self.config.daily_loss_resets_next_session:
                self.set_trading_state(
                    TradingState.ACTIVE,
                    TradingCause.DAILY_LOSS_BREAKER,
                    BREAKER_BY,
                    f"a new session began on {day.isoformat()}",
                    signal_seq,
                )
                breaker = None
        opening = self._session[1]
        equity = self._portfolio.equity()
        limit = self.config.daily_loss_pct
        if breaker is None and opening.is_finite() and opening > 0 and equity.is_finite():
            loss = (opening - equity) / opening
            if loss > limit:
                self.set_trading_state(
                    TradingState.REDUCING,
                    TradingCause.DAILY_LOSS_BREAKER,
                    BREAKER_BY,
                    f"equity {equity:.2f} is {loss:.4%} below the session's opening "
                    f"equity {opening:.2f} (limit {limit:.4%})",
                    signal_seq,
                )


_NEVER = datetime.min.replace(tzinfo=UTC)  # orders a never-changed status first


def _judge(rule: RiskRule, signal: TradeSignal, ctx: RiskContext) -> RuleVerdict:
    """A rule's verdict; arithmetic on a bad number (ArithmeticError covers every
    decimal signal, OverflowError and ZeroDivisionError) refuses the signal with
    NON_FINITE_VALUE: every other rule still runs, and the decision is journaled."""
    try:
        return rule.check(signal, ctx)
    except ArithmeticError as exc:
        detail = f"a number could not be computed with ({type(exc).__name__}: {exc})"
        return RuleVerdict(rule.name, False, NON_FINITE_VALUE, detail)


def _describe(status: TradingStatus) -> str:
    at = status.changed_at
    # The event clock reads the epoch before its first tick: no time is known then.
    since = f" since {at:%Y-%m-%dT%H:%M:%SZ}" if at and at.timestamp() > 0 else ""
    text = f"{status.state.value} by {status.changed_by} ({status.cause.value}){since}"
    return f"{text}: {status.reason}" if status.reason else text


def _already(state: TradingState, cause: TradingCause, current: TradingStatus | None) -> str:
    if current is None:
        return f"{cause.value} was already {state.value}: nothing changed"
    return f"already {_describe(current)}; nothing changed"


def _with_cause(status: TradingStatus) -> TradingStatus:
    """Logs written before causes were recorded named the audit store only by who."""
    if status.cause is TradingCause.OPERATOR and status.changed_by == "system:audit-store":
        return TradingStatus(
            status.state,
            status.changed_by,
            status.reason,
            status.changed_at,
            TradingCause.AUDIT_STORE,
        )
    return status
