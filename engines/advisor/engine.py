"""The advisor engine: keeps the ideas, runs analyses, and turns a human's
approval into a signal for the risk gate.

Analyze is three steps, so that a slow model never holds up the core: the
snapshot is taken in the sequencer (`process`, which first journals any staged
market data, so the recent prices are complete), the analyst is called with no
lock held, and the result is validated and journaled as a second input:
`AnalysisCompleted`, then one `IdeaUpdated` per idea, each PENDING_APPROVAL.

A decision is judged on the world as it is when the human decides: the idea
must still be pending and unexpired (by the core's clock), and its symbol's
last price within `price_band_pct` of the price the idea was written at. An
approval journals the idea as APPROVED, then publishes a `SignalGenerated`
whose source is `idea:<id>`: from there on it is a signal like any other,
which the risk engine approves or rejects with the portfolio as it is now.

Ideas change only in the event handlers, from journaled events. Expiry is
noticed lazily, when ideas are read or decided, and journaled then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import NoReturn, TypeVar

from domain import numeric
from domain.errors import DomainError, NotFound, PreconditionFailed, Unavailable
from domain.events import (
    AnalysisCompleted,
    Envelope,
    IdeaUpdated,
    MarketDataReceived,
    OrderUpdated,
    RequestRefused,
    RiskDecisionMade,
    SignalGenerated,
)
from domain.ideas import Analysis, IdeaState, TradeIdea
from domain.orders import Order, OrderType
from domain.risk import RiskDecision
from domain.signals import TradeSignal
from engines.advisor.analyst import (
    AnalysisContext,
    AnalysisRequest,
    Analyst,
    AnalystReply,
    MarketView,
    RiskLimits,
)
from engines.advisor.history import PriceHistory
from engines.advisor.validation import numbers_outside_domain, validate_all
from engines.bus import Sequencer
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.engine import RiskEngine
from engines.risk.rules import MaxPositionSizeRule
from engines.strategy.engine import StrategyEngine

IDEA_SOURCE = "idea:"
DISCLAIMER = (
    "Not financial advice: these are suggestions for a person to judge. Nothing is "
    "traded unless a person approves an idea, and an approved idea still has to pass "
    "every risk rule."
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AdvisorConfig:
    """`idea_ttl`: how long an idea may wait for a decision. `price_band_pct`: how
    far the last price may have moved from the idea's reference price for an
    approval to be accepted. `max_ideas`: per analysis; more are dropped.
    `history_depth`: recent prices kept per symbol for trends and the model."""

    idea_ttl: timedelta = timedelta(minutes=15)
    price_band_pct: Decimal = Decimal("0.05")
    max_ideas: int = 5
    history_depth: int = 60


@dataclass(slots=True)
class AdvisorStats:
    """Running totals since start, for operators watching approval rates."""

    analyses: int = 0
    proposed: int = 0
    approved: int = 0
    rejected: int = 0
    expired: int = 0
    dropped: int = 0
    unavailable: int = 0


@dataclass(frozen=True, slots=True)
class IdeaRecord:
    """An idea with what its approval led to: the risk decision and the order."""

    idea: TradeIdea
    decision: RiskDecision | None = None
    order: Order | None = None


class AdvisorEngine:
    def __init__(
        self,
        bus: Sequencer,
        prices: MarketPrices,
        portfolio: Portfolio,
        risk: RiskEngine,
        strategies: StrategyEngine,
        analyst: Analyst,
        config: AdvisorConfig | None = None,
    ) -> None:
        self._bus = bus
        self._prices = prices
        self._portfolio = portfolio
        self._risk = risk
        self._strategies = strategies
        self.analyst = analyst
        self.config = config or AdvisorConfig()
        self.stats = AdvisorStats()
        self.history = PriceHistory(self.config.history_depth)
        self._ideas: dict[str, IdeaRecord] = {}  # in the order they were proposed
        self._pending: dict[str, None] = {}  # ids of ideas waiting for a decision
        self._idea_of_decision: dict[str, str] = {}
        self._submitting: str | None = None
        bus.subscribe(MarketDataReceived, self.history.on_market_data)
        bus.subscribe(AnalysisCompleted, self.on_analysis_completed)
        bus.subscribe(IdeaUpdated, self.on_idea_updated)
        bus.subscribe(RiskDecisionMade, self.on_risk_decision)
        bus.subscribe(OrderUpdated, self.on_order_updated)

    # --- inputs (each one is sequenced) ------------------------------------------------

    def analyze(self, request: AnalysisRequest, principal: str) -> tuple[Analysis, list[TradeIdea]]:
        """Snapshot, ask the analyst with no lock held, then journal the outcome.
        Raises Unavailable (recorded as a refused request) when the analyst is,
        and PreconditionFailed (recorded too) when the account's numbers are
        outside the numeric domain, so no analysis can be made from them."""
        context = self._bus.process(lambda: self._analysable_context(request, principal))[0]
        try:
            reply = self.analyst.analyze(context)
        except Unavailable as exc:
            self._bus.process(partial(self._record_outage, principal, exc))
            raise
        except ArithmeticError as exc:
            # The context is checked above, so this is a number the analyst made
            # itself; it is refused as a domain error, never left to escape as UNKNOWN.
            error = PreconditionFailed(
                f"the analysis could not be computed ({type(exc).__name__}); the account's "
                "numbers may be at the edge of the numeric domain: check GetAccount"
            )
            self._bus.process(partial(self._record_refused_analysis, principal, error))
            raise error from None
        return self._bus.process(lambda: self._record(context, reply, principal))[0]

    def decide(
        self, idea_id: str, approve: bool, principal: str, reason: str, *, at_ns: int | None = None
    ) -> IdeaRecord:
        """A human's decision. A refusal (unknown, already decided, expired, price
        moved) is journaled as a refused request and raised; the idea is unchanged.
        `at_ns`: the recorded stamp, in a replay."""
        return self._bus.process(
            lambda: self._decide(idea_id, approve, principal, reason), at_ns=at_ns
        )[0]

    def ideas(self, state: IdeaState | None = None) -> list[IdeaRecord]:
        """Every idea (or those in `state`), oldest first, expiry brought up to date."""
        return self._read(
            lambda: [r for r in self._ideas.values() if state is None or r.idea.state is state]
        )

    def get(self, idea_id: str) -> IdeaRecord:
        def find() -> IdeaRecord:
            record = self._ideas.get(idea_id)
            if record is None:
                raise NotFound(f"no idea with id {idea_id!r} (see ListIdeas)")
            return record

        return self._read(find)

    def counters(self) -> AdvisorStats:
        """The running totals; call under the sequencer. A pending idea past its
        expiry counts as expired already, though only a read or a decision
        journals that, so reading the counters changes nothing."""
        now = self._bus.clock.now()
        due = sum(1 for i in self._pending if self._ideas[i].idea.is_expired(now))
        return replace(self.stats, expired=self.stats.expired + due)

    def _read(self, read: Callable[[], T]) -> T:
        def work() -> T:
            self._expire_due()
            return read()

        return self._bus.process(work)[0]

    # --- the snapshot an analyst sees -----------------------------------------------------

    def context(self, request: AnalysisRequest) -> AnalysisContext:
        """The world for an analysis; call it under the sequencer."""
        portfolio = self._portfolio
        positions = tuple(portfolio.positions())
        held = tuple(p.symbol for p in positions)
        strategy_symbols = tuple(
            dict.fromkeys(s for info in self._strategies.list() for s in info.symbols)
        )
        symbols = request.symbols or held or strategy_symbols
        markets = tuple(
            MarketView(s, self._prices.last_price(s), self.history.recent(s))
            for s in dict.fromkeys((*symbols, *held))
        )
        config = self._risk.config
        has_size_rule = any(isinstance(r, MaxPositionSizeRule) for r in self._risk.rules)
        limits = RiskLimits(
            max_position_pct=config.max_position_pct if has_size_rule else None,
            rules={rule.name: rule.parameters(config) for rule in self._risk.rules},
        )
        return AnalysisContext(
            request=request,
            symbols=symbols,
            now=self._bus.clock.now(),
            cash=portfolio.cash,
            equity=portfolio.equity(),
            positions=positions,
            markets=markets,
            prices={
                s: price
                for s in self._prices.last
                if (price := self._prices.last_price(s)) is not None
            },
            strategy_symbols=strategy_symbols,
            limits=limits,
            trading_active=self._risk.active,
            idea_ttl=self.config.idea_ttl,
            max_ideas=self.config.max_ideas,
        )

    def _analysable_context(self, request: AnalysisRequest, principal: str) -> AnalysisContext:
        """The snapshot, if every number in it is inside the numeric domain; otherwise
        the refusal is journaled and raised (FAILED_PRECONDITION at the edge)."""
        context = self.context(request)
        outside = numbers_outside_domain(context)
        if outside:
            error = PreconditionFailed(
                "the account cannot be analysed: "
                + "; ".join(outside)
                + f" (money must be finite and within {numeric.MONEY_RANGE}); a price or "
                "fill outside the numeric domain got into the account: reconcile it with "
                "the broker (restart) before asking again"
            )
            self._record_refused_analysis(principal, error)
            raise error
        return context

    # --- inside the sequencer -----------------------------------------------------------

    def _record(
        self, context: AnalysisContext, reply: AnalystReply, principal: str
    ) -> tuple[Analysis, list[TradeIdea]]:
        valid, dropped = validate_all(reply.ideas, context)
        seq = self._bus.next_seq()
        now = self._bus.clock.now()
        analysis = Analysis(
            analysis_id=f"a{seq}",
            requested_by=principal,
            kind=context.request.kind,
            question=context.request.question,
            symbols=context.symbols,
            text=reply.text,
            warnings=(*reply.warnings, DISCLAIMER),
            analyst=self.analyst.name,
            model=reply.model,
            prompt_version=reply.prompt_version,
            created_at=now,
            idea_ids=tuple(f"i{seq}.{n}" for n in range(1, len(valid) + 1)),
            dropped=(*reply.dropped, *dropped),
        )
        envelope = self._bus.publish(AnalysisCompleted(analysis))
        ideas = [
            v.to_idea(idea_id, analysis.analysis_id, now)
            for idea_id, v in zip(analysis.idea_ids, valid, strict=True)
        ]
        for idea in ideas:
            self._bus.publish(IdeaUpdated(idea), caused_by=envelope.seq)
        return analysis, ideas

    def _record_refused_analysis(self, principal: str, error: DomainError) -> None:
        self._bus.publish(RequestRefused("Analyze", principal, str(error)))

    def _record_outage(self, principal: str, exc: Unavailable) -> None:
        self.stats.unavailable += 1
        self._bus.publish(RequestRefused("Analyze", principal, str(exc)))

    def _decide(self, idea_id: str, approve: bool, principal: str, reason: str) -> IdeaRecord:
        if idea_id not in self._ideas:
            self._refuse(principal, NotFound(f"no idea with id {idea_id!r} (see ListIdeas)"))
        self._expire_due()
        idea = self._ideas[idea_id].idea
        if idea.state is IdeaState.EXPIRED:
            self._refuse(
                principal,
                PreconditionFailed(
                    f"idea {idea_id} expired at {idea.expires_at.isoformat()} and can no "
                    "longer be decided; ask for a fresh analysis"
                ),
            )
        if idea.state is not IdeaState.PENDING_APPROVAL:
            when = idea.decided_at.isoformat() if idea.decided_at else "?"
            self._refuse(
                principal,
                PreconditionFailed(
                    f"idea {idea_id} was already {idea.state.value} by {idea.decided_by} at "
                    f"{when}; a decision is final"
                ),
            )
        price = self._approval_price(idea, principal) if approve else None
        decided = replace(
            idea,
            state=IdeaState.APPROVED if approve else IdeaState.REJECTED,
            decided_by=principal,
            decision_reason=reason,
            decided_at=self._bus.clock.now(),
        )
        envelope = self._bus.publish(IdeaUpdated(decided))
        if price is not None:
            self._submit(decided, price, envelope.seq)
        return self._ideas[idea_id]

    def _approval_price(self, idea: TradeIdea, principal: str) -> Decimal:
        """The last price, if it is within the band of the idea's reference price."""
        price = self._prices.last_price(idea.symbol)
        if price is None:
            self._refuse(
                principal,
                PreconditionFailed(
                    f"no market price for {idea.symbol} now, so idea {idea.idea_id} cannot be "
                    "judged against the current market"
                ),
            )
        band = self.config.price_band_pct
        moved = abs(price - idea.reference_price) / idea.reference_price
        if moved > band:
            self._refuse(
                principal,
                PreconditionFailed(
                    f"{idea.symbol} has moved {moved:.2%} since idea {idea.idea_id} was written "
                    f"({idea.reference_price} -> {price}), beyond the {band:.2%} band; "
                    "ask for a fresh analysis"
                ),
            )
        return price

    def _submit(self, idea: TradeIdea, price: Decimal, caused_by: int) -> None:
        signal = TradeSignal(
            signal_id=f"s{caused_by}.{idea.idea_id}",
            source=f"{IDEA_SOURCE}{idea.idea_id}",
            symbol=idea.symbol,
            side=idea.side,
            quantity=idea.quantity,
            reference_price=price,
            confidence=idea.confidence,
            rationale=f"idea {idea.idea_id} approved by {idea.decided_by}: {idea.rationale}",
            created_at=self._bus.clock.now(),
            order_type=OrderType.MARKET if idea.limit_price is None else OrderType.LIMIT,
            limit_price=idea.limit_price,
        )
        self._submitting = idea.idea_id
        try:
            self._bus.publish(SignalGenerated(signal), caused_by=caused_by)
        finally:
            self._submitting = None

    def _refuse(self, principal: str, error: DomainError) -> NoReturn:
        self._bus.publish(RequestRefused("DecideIdea", principal, str(error)))
        raise error

    def _expire_due(self) -> None:
        now = self._bus.clock.now()
        for idea_id in list(self._pending):
            idea = self._ideas[idea_id].idea
            if idea.is_expired(now):
                self._bus.publish(IdeaUpdated(replace(idea, state=IdeaState.EXPIRED)))

    # --- event handlers: the only writers of the engine's state ------------------------------

    def on_analysis_completed(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, AnalysisCompleted)
        self.stats.analyses += 1
        self.stats.dropped += len(event.analysis.dropped)

    def on_idea_updated(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, IdeaUpdated)
        idea = event.idea
        previous = self._ideas.get(idea.idea_id)
        self._ideas[idea.idea_id] = (
            IdeaRecord(idea) if previous is None else replace(previous, idea=idea)
        )
        if idea.state is IdeaState.PENDING_APPROVAL:
            self._pending[idea.idea_id] = None
            self.stats.proposed += 1
            return
        self._pending.pop(idea.idea_id, None)
        if idea.state is IdeaState.APPROVED:
            self.stats.approved += 1
        elif idea.state is IdeaState.REJECTED:
            self.stats.rejected += 1
        else:
            self.stats.expired += 1

    def on_risk_decision(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, RiskDecisionMade)
        decision = event.decision
        source = decision.signal.source
        if not source.startswith(IDEA_SOURCE):
            return
        idea_id = source.removeprefix(IDEA_SOURCE)
        record = self._ideas.get(idea_id)
        if record is None:
            return
        self._idea_of_decision[decision.decision_id] = idea_id
        self._ideas[idea_id] = replace(
            record,
            idea=replace(record.idea, decision_id=decision.decision_id),
            decision=decision,
        )

    def on_order_updated(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, OrderUpdated)
        order = event.order
        idea_id = self._idea_of_decision.get(order.decision_id)
        if idea_id is None and self._submitting is not None:
            # Execution subscribed to decisions before this engine did, so the
            # order for the idea being submitted arrives before its decision does.
            # Nothing else can place an order while the submission is dispatched.
            idea_id = self._idea_of_decision[order.decision_id] = self._submitting
        record = self._ideas.get(idea_id) if idea_id is not None else None
        if record is None:
            return
        self._ideas[record.idea.idea_id] = replace(
            record, idea=replace(record.idea, order_id=order.order_id), order=order
        )
