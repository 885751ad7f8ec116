"""The core: the sequencer and the engines wired on its bus, with the inputs the
outside world may give it. The server calls only this; every call is one input,
processed to completion in sequence, and returns the events it caused."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from domain.broker import Reconciliation
from domain.errors import DomainError
from domain.events import Envelope, OrderUpdated, RiskDecisionMade, SignalGenerated
from domain.market import MarketBatch
from domain.orders import ManualOrder, Order
from domain.portfolio import Account, Position
from domain.risk import RiskDecision, TradingCause, TradingState
from domain.signals import TradeSignal
from engines.advisor.engine import AdvisorEngine
from engines.bus import Sequencer, TickLocator
from engines.desk import FlattenReport, closing_orders, manual_signal
from engines.execution.engine import ExecutionEngine
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.config import RiskConfig
from engines.risk.engine import RiskEngine, StateChange
from engines.risk.rules import reduces_position
from engines.strategy.engine import StrategyEngine, StrategyInfo


@dataclass(slots=True)
class CoreStats:
    market_events: int = 0  # ticks accepted
    market_messages: int = 0  # the messages they came in (one increment per message, not per tick)


class Core:
    def __init__(
        self,
        bus: Sequencer,
        prices: MarketPrices,
        portfolio: Portfolio,
        strategies: StrategyEngine,
        risk: RiskEngine,
        execution: ExecutionEngine,
        advisor: AdvisorEngine,
    ) -> None:
        self.bus = bus
        self.prices = prices
        self.portfolio = portfolio
        self.strategies = strategies
        self.risk = risk
        self.execution = execution
        self.advisor = advisor
        self.stats = CoreStats()

    def ingest(
        self,
        batch: MarketBatch,
        source: str,
        *,
        stream: object | None = None,
        journal_now: bool = False,
        at_ns: int | None = None,
        feed_id: str = "",
        sequence: int = 0,
    ) -> list[Envelope]:
        """One market-data message: admitted and journaled (or staged) by the
        sequencer, then run through the strategies. `stream` names the sender (one
        stream's staged ticks are never journaled with another's); `journal_now`
        journals it before returning even if it caused nothing; `at_ns` is the
        recorded stamp in a replay. `feed_id` and `sequence` (1, 2, ...) make it
        processed once: a message of that feed numbered no higher than the last
        one accepted raises engines.bus.DuplicateMessage and changes nothing.

        Under the event clock a tick older than the last one accepted for its
        symbol refuses the message (InvalidInput, BAD_MARKET_EVENT) before anything
        changes, so the same history streamed twice cannot trade twice."""

        def apply(locate: TickLocator) -> None:
            self.stats.market_events += len(batch)
            self.stats.market_messages += 1
            self.strategies.on_market_data(batch, locate)

        def in_order() -> None:
            self.prices.check_in_order(batch)

        return self.bus.ingest(
            batch,
            source,
            apply,
            stream=stream,
            journal_now=journal_now,
            at_ns=at_ns,
            admit=in_order if self.bus.clock.name == "event" else None,
            feed_id=feed_id,
            sequence=sequence,
        )

    def set_strategy_active(
        self, name: str, active: bool, by: str, *, at_ns: int | None = None
    ) -> StrategyInfo:
        return self.bus.process(lambda: self.strategies.set_active(name, active, by), at_ns=at_ns)[
            0
        ]

    def set_trading_state(
        self,
        state: TradingState,
        by: str,
        reason: str,
        *,
        cause: TradingCause = TradingCause.OPERATOR,
        at_ns: int | None = None,
    ) -> StateChange:
        return self.bus.process(
            lambda: self.risk.set_trading_state(state, cause, by, reason), at_ns=at_ns
        )[0]

    def update_risk_limits(self, changes: Mapping[str, str], by: str, reason: str) -> RiskConfig:
        return self.bus.process(lambda: self.risk.update_limits(changes, by, reason))[0]

    def cancel_order(self, order_id: str, by: str = "", *, at_ns: int | None = None) -> Order:
        """Ask the broker to cancel; the order as it is once the broker's immediate
        answer (if any) is in: PENDING_CANCEL until the broker says more."""
        self.bus.process(lambda: self.execution.cancel(order_id, by), at_ns=at_ns)
        return self._current(order_id)

    def sweep(self, reason: str) -> Reconciliation:
        """Read the broker's whole state and reconcile with it (blocking; raises
        brokers.base.BrokerUnavailable): at start-up, after the broker's stream
        reconnects, and periodically."""
        return self.execution.sweep(reason)

    def account(self) -> Account:
        """The account as the core sees it (no broker I/O)."""
        with self.bus.reading():
            return self.portfolio.account()

    def positions(self) -> list[Position]:
        with self.bus.reading():
            return self.portfolio.positions()

    def _current(self, order_id: str) -> Order:
        with self.bus.reading():
            return self.execution.get(order_id)

    # --- by hand ---------------------------------------------------------------------

    def check_order(self, order: ManualOrder, principal: str) -> tuple[RiskDecision, bool]:
        """Every rule's verdict on `order` as the gate would decide now, and whether
        it only reduces a position. Read-only: nothing is recorded, nothing counts."""
        with self.bus.reading():
            now = self.bus.clock.now()
            signal = manual_signal(order, f"manual:{principal}", "check", self.prices, now)
            outcome = self.risk.evaluate(signal, decision_id="check")
            return outcome.decision, reduces_position(signal, self.portfolio)

    def submit_order(self, order: ManualOrder, principal: str) -> tuple[RiskDecision, Order | None]:
        """A person's order: a signal with source manual:<principal>, through the gate."""

        def work() -> Envelope:
            signal = self._signal(order, f"manual:{principal}")
            return self.bus.publish(SignalGenerated(signal))

        envelope, caused = self.bus.process(work)
        [decision] = _decisions(caused, envelope.seq)
        placed = _order_of(caused, decision)
        return decision, self._current(placed.order_id) if placed is not None else None

    def flatten(self, by: str, reason: str) -> tuple[StateChange, FlattenReport]:
        """The kill switch: only reducing trades from here on, cancel every working
        order, then (once the broker's immediate answers to the cancels are in)
        close every position with market orders through the gate, then halt."""
        why = f"flatten: {reason}" if reason else "flatten"

        def cancel_all() -> list[str]:
            self.risk.set_trading_state(TradingState.REDUCING, TradingCause.OPERATOR, by, why)
            cancelled = []
            for order in self.execution.orders(open_only=True):
                with contextlib.suppress(DomainError):  # the broker refused: still listed
                    self.execution.cancel(order.order_id, by)
                cancelled.append(order.order_id)
            return cancelled

        cancelled, _ = self.bus.process(cancel_all)

        def close_all() -> tuple[StateChange, list[int], list[str]]:
            closing, deferred = closing_orders(self.portfolio, why)
            signals = [
                self.bus.publish(SignalGenerated(self._signal(order, f"flatten:{by}"))).seq
                for order in closing
            ]
            halted = self.risk.set_trading_state(
                TradingState.HALTED, TradingCause.OPERATOR, by, why
            )
            return halted, signals, deferred

        (halted, signals, deferred), caused = self.bus.process(close_all)
        decisions = [d for seq in signals for d in _decisions(caused, seq)]
        orders = [self._current(o.order_id) for d in decisions if (o := _order_of(caused, d))]
        cancelled_now = [self._current(i) for i in cancelled]
        return halted, FlattenReport(cancelled_now, decisions, orders, deferred)

    def _signal(self, order: ManualOrder, source: str) -> TradeSignal:
        """A person's order as a signal (inside an input)."""
        signal_id = f"m{self.bus.next_seq()}"
        return manual_signal(order, source, signal_id, self.prices, self.bus.clock.now())


def _decisions(caused: list[Envelope], signal_seq: int) -> list[RiskDecision]:
    return [
        e.event.decision
        for e in caused
        if isinstance(e.event, RiskDecisionMade) and e.caused_by == signal_seq
    ]


def _order_of(caused: list[Envelope], decision: RiskDecision) -> Order | None:
    """The order a decision led to (its intent, recorded within the input)."""
    orders = [
        e.event.order
        for e in caused
        if isinstance(e.event, OrderUpdated) and e.event.order.decision_id == decision.decision_id
    ]
    return orders[-1] if orders else None
