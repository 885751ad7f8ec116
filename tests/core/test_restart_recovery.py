"""After a restart the service knows what it did: orders come back from the audit
log, the paper account is rebuilt from the recorded fills, and orders the broker
no longer knows are reconciled instead of being followed forever."""

from __future__ import annotations

from typing import Any

from domain.orders import OrderStatus
from server.bootstrap import build_core, start_trading
from server.settings import Settings
from tests.conftest import RunningService, StartService
from tests.core.fakes import HoldingBroker
from tests.core.harness import make_harness
from tests.support.market import minute_ticks, v_reversal


def test_orders_positions_and_cash_survive_a_restart(
    start_service: StartService, database_url: str
) -> None:
    first = start_service(database_url=database_url)
    first.client.stream_market_data([minute_ticks("SPY", v_reversal())])
    before = _snapshot(first)
    first.stop()

    second = start_service(database_url=database_url)

    assert _snapshot(second) == before
    [order] = second.client.list_order_history().orders
    assert len(order.history) == 3  # NEW, ACCEPTED, FILLED: the full history came back
    # Idempotent: the same decision can never be placed again; new ones still trade.
    assert second.client.get_execution_status().open_orders == 0


def _snapshot(running: RunningService) -> tuple[Any, ...]:
    client = running.client
    return (
        [(o.order_id, o.status, o.filled_quantity) for o in client.list_order_history().orders],
        [(p.symbol, p.quantity, p.average_price) for p in client.list_positions().positions],
        client.get_account().account.cash,
    )


def test_an_order_the_broker_no_longer_knows_is_reconciled_as_expired(calendar: Any) -> None:
    harness = make_harness(calendar, HoldingBroker())
    assert harness.signal(quantity="5").approved
    [open_order] = harness.core.execution.orders(open_only=True)

    # Restart on the same log with a broker that has never heard of the order.
    restarted = build_core(
        Settings(trading_clock="event"), harness.store, calendar, HoldingBroker()
    )
    start_trading(restarted)
    found = restarted.sweep("start-up reconciliation")

    assert found.missing == (open_order.client_order_id,)  # looked up: the broker has none
    reconciled = restarted.execution.get(open_order.order_id)
    assert reconciled.status is OrderStatus.EXPIRED
    assert "no longer knows" in reconciled.history[-1].reason
    assert not restarted.execution.orders(open_only=True)
    assert not restarted.portfolio.in_flight("SPY", open_order.side)


def test_the_event_clock_resumes_where_the_log_ends(
    start_service: StartService, database_url: str
) -> None:
    first = start_service(database_url=database_url)
    first.client.stream_market_data([minute_ticks("SPY", v_reversal())])
    last_tick = first.client.get_status().now
    first.stop()

    second = start_service(database_url=database_url)

    assert second.client.get_status().now.ToDatetime() >= last_tick.ToDatetime()
    halted = second.client.deactivate_risk("after the restart").trading
    assert halted.changed_at.ToDatetime() >= last_tick.ToDatetime()
