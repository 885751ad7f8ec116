"""A broker that stops answering halts trading as the broker's own cause, and its
recovery lifts only that cause."""

from __future__ import annotations

from typing import Any

from domain.risk import TradingCause, TradingState
from server.broker_supervisor import BrokerSupervisor
from tests.core.fakes import HoldingBroker
from tests.core.harness import failed_codes, make_harness


class FlakyBroker(HoldingBroker):
    pass


def test_a_broker_that_stops_answering_halts_and_its_return_resumes(calendar: Any) -> None:
    broker = FlakyBroker()
    harness = make_harness(calendar, broker)
    guard = BrokerSupervisor(harness.core, sweep_every_s=3600)  # checked by hand below
    guard.check()  # the start-up reconciliation
    try:
        broker.up = False
        guard.check()
        status = harness.core.risk.causes[TradingCause.BROKER]
        assert (status.state, status.changed_by) == (TradingState.HALTED, "system:broker")
        assert "RISK_ENGINE_DEACTIVATED" in failed_codes(harness.signal(quantity="1"))

        broker.up = True
        guard.check()
        assert harness.core.risk.state is TradingState.ACTIVE
        assert harness.signal(symbol="QQQ", quantity="1").approved
    finally:
        guard.close()


def test_the_brokers_recovery_never_lifts_an_operators_halt(calendar: Any) -> None:
    broker = FlakyBroker()
    harness = make_harness(calendar, broker)
    guard = BrokerSupervisor(harness.core, sweep_every_s=3600)
    try:
        broker.up = False  # the start-up sweep fails: halted until it runs
        guard.check()
        harness.core.set_trading_state(TradingState.HALTED, "alice", "investigating")
        broker.up = True
        guard.check()

        assert set(harness.core.risk.causes) == {TradingCause.OPERATOR}
        assert harness.core.risk.trading.changed_by == "alice"
    finally:
        guard.close()
