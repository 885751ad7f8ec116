"""The core: the sequencer and the engines wired on its bus, with the inputs the
outside world may give it. The server calls only this; every call is one input,
processed to completion in sequence, and returns the events it caused."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Envelope
from domain.market import MarketBatch
from domain.orders import Order
from domain.risk import TradingState, TradingStatus
from engines.advisor.engine import AdvisorEngine
from engines.bus import Sequencer, TickLocator
from engines.execution.engine import ExecutionEngine
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.engine import RiskEngine
from engines.strategy.engine import StrategyEngine, StrategyInfo


@dataclass(slots=True)
class CoreStats:
    market_events: int = 0


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
    ) -> list[Envelope]:
        """One market-data message: admitted and journaled (or staged) by the
        sequencer, then run through the strategies. `stream` names the sender (one
        stream's staged ticks are never journaled with another's); `journal_now`
        journals it before returning even if it caused nothing; `at_ns` is the
        recorded stamp in a replay."""

        def apply(locate: TickLocator) -> None:
            self.stats.market_events += len(batch)
            self.strategies.on_market_data(batch, locate)

        return self.bus.ingest(
            batch, source, apply, stream=stream, journal_now=journal_now, at_ns=at_ns
        )

    def set_strategy_active(
        self, name: str, active: bool, by: str, *, at_ns: int | None = None
    ) -> StrategyInfo:
        return self.bus.process(lambda: self.strategies.set_active(name, active, by), at_ns=at_ns)[
            0
        ]

    def set_trading_state(
        self, state: TradingState, by: str, reason: str, *, at_ns: int | None = None
    ) -> TradingStatus:
        return self.bus.process(
            lambda: self.risk.set_trading_state(state, by, reason), at_ns=at_ns
        )[0]

    def cancel_order(self, order_id: str, by: str = "", *, at_ns: int | None = None) -> Order:
        return self.bus.process(lambda: self.execution.cancel(order_id, by), at_ns=at_ns)[0]
