"""Operator decisions survive a restart: a halt (DeactivateRisk) and a
deactivated strategy are read back from the audit log by the next process on
the same database, and they still act: a crossover after the restart places
no order. The health service reports the trading service NOT_SERVING while
halted. Runs on SQLite and on PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2

from tests.conftest import RunningService, StartService
from tests.support.calls import TRADING_SERVICE, health_of
from tests.support.market import SESSION, STRATEGY, crossover_prices, ticks
from trading_sdk.v1 import risk_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _restart(start_service: StartService, handle: RunningService) -> RunningService:
    """Stop `handle` and start a fresh process on the same database."""
    database_url = handle.settings.database_url
    handle.stop()
    return start_service(database_url=database_url)


def _health(handle: RunningService, service: str) -> int:
    with grpc.insecure_channel(handle.target) as channel:
        return health_of(channel, service)


def test_a_halt_survives_a_restart(start_service: StartService, database_url: str) -> None:
    first = start_service(database_url=database_url)
    halted = first.client.deactivate_risk(reason="maintenance").trading
    assert halted.state == risk_pb2.TRADING_STATE_HALTED
    assert _health(first, TRADING_SERVICE) == NOT_SERVING

    second = _restart(start_service, first)

    risk = second.client.get_risk_status()
    assert not risk.active
    assert risk.trading.state == risk_pb2.TRADING_STATE_HALTED
    assert risk.trading.reason == "maintenance"
    assert risk.trading.changed_by == halted.changed_by == "operator"
    assert risk.trading.changed_at == halted.changed_at
    assert _health(second, TRADING_SERVICE) == NOT_SERVING
    assert _health(second, "") == SERVING

    # Still halted in deed: the crossover's signal is rejected, no order is sent.
    summary = second.client.stream_market_data([ticks("SPY", crossover_prices())])
    assert (summary.signals, summary.approvals, summary.orders) == (1, 0, 0)
    (decision,) = second.client.get_risk_status(recent_decisions=1).recent_decisions
    assert "RISK_ENGINE_DEACTIVATED" in {v.code for v in decision.verdicts if not v.passed}
    assert not second.client.list_order_history().orders

    resumed = second.client.activate_risk(reason="maintenance done").trading
    assert resumed.state == risk_pb2.TRADING_STATE_ACTIVE
    assert _health(second, TRADING_SERVICE) == SERVING


def test_an_activation_after_a_halt_survives_a_restart(
    start_service: StartService, database_url: str
) -> None:
    """The last decision wins: halt, resume, restart -> active and SERVING."""
    first = start_service(database_url=database_url)
    first.client.deactivate_risk(reason="maintenance")
    first.client.activate_risk(reason="back")

    second = _restart(start_service, first)

    trading = second.client.get_risk_status().trading
    assert (trading.state, trading.reason) == (risk_pb2.TRADING_STATE_ACTIVE, "back")
    assert _health(second, TRADING_SERVICE) == SERVING


def test_a_deactivated_strategy_stays_deactivated_after_a_restart(
    start_service: StartService, database_url: str
) -> None:
    first = start_service(database_url=database_url)
    assert not first.client.deactivate_strategy(STRATEGY).strategy.active

    second = _restart(start_service, first)

    (strategy,) = second.client.list_strategies().strategies
    assert (strategy.name, strategy.active) == (STRATEGY, False)
    # Off in deed: the crossover produces no signal and no order.
    summary = second.client.stream_market_data([ticks("SPY", crossover_prices())])
    assert (summary.events_accepted, summary.signals, summary.orders) == (90, 0, 0)

    assert second.client.activate_strategy(STRATEGY).strategy.active
    third = _restart(start_service, second)
    (strategy,) = third.client.list_strategies().strategies
    assert strategy.active
    later = ticks("SPY", crossover_prices(), start=SESSION.replace(hour=17))
    assert third.client.stream_market_data([later]).signals >= 1
