"""The core without the transport: engines wired exactly as the server wires them,
on the in-memory event store, with a broker of the test's choosing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from audit.memory_store import InMemoryEventStore
from audit.records import AuditQuery, AuditRecord
from brokers.base import Broker
from domain.events import SignalGenerated
from domain.orders import Side
from domain.risk import RiskDecision
from domain.signals import TradeSignal
from engines.clock import datetime_to_ns
from engines.core import Core
from server.bootstrap import build_core
from server.settings import Settings
from tests.support.market import SESSION_START


@dataclass
class Harness:
    core: Core
    store: InMemoryEventStore

    def signal(
        self,
        symbol: str = "SPY",
        side: Side = Side.BUY,
        quantity: str = "10",
        price: str = "100",
        confidence: float = 0.9,
        source: str = "strategy:test",
        marks: dict[str, float] | None = None,
    ) -> RiskDecision:
        """Send a hand-made signal through the risk gate (and on to execution), as if
        a tick at `price` (and at `marks` for other symbols) had just arrived."""
        signal = TradeSignal(
            signal_id=f"t{self.store.last_seq() + 1}",
            source=source,
            symbol=symbol,
            side=side,
            quantity=Decimal(quantity),
            reference_price=Decimal(price),
            confidence=confidence,
            rationale="test",
            created_at=self.core.bus.clock.now(),
        )

        def work() -> None:
            now_ns = self.core.bus.clock.now_ns()
            for name, last in {**(marks or {}), symbol: float(price)}.items():
                self.core.prices.last[name] = last
                self.core.prices.last_ns[name] = now_ns
            self.core.bus.publish(SignalGenerated(signal))

        self.core.bus.process(work)
        self.store.flush()
        return self.core.risk.recent[-1]

    def at(self, moment: datetime) -> None:
        self.core.bus.clock.observe(datetime_to_ns(moment))

    def records(self, *types: str) -> list[AuditRecord]:
        self.store.flush()
        return list(self.store.query(AuditQuery(event_types=frozenset(types))))

    def payloads(self, *types: str) -> list[dict[str, Any]]:
        return [json.loads(r.payload) for r in self.records(*types)]


def make_harness(
    calendar: Any,
    broker: Broker | None = None,
    start: datetime | None = SESSION_START,
    replaying: bool = False,
    **settings: Any,
) -> Harness:
    """`replaying`: a core for engines/replay.py, which never sends anything."""
    store = InMemoryEventStore()
    core = build_core(
        Settings(trading_clock="event", **settings), store, calendar, broker, replaying=replaying
    )
    if broker is not None:
        # What the service's start-up sweep would give, without journaling it, so
        # the log starts with the test's own inputs.
        snapshot = broker.snapshot(frozenset())
        core.portfolio.seed(snapshot.account, list(snapshot.positions))
    harness = Harness(core, store)
    if start is not None:
        harness.at(start)
    return harness


def failed_codes(decision: RiskDecision) -> set[str]:
    return {v.code for v in decision.verdicts if not v.passed}
