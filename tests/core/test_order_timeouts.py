"""Orders that stay working too long are cancelled, per time in force, by the
supervisor (TRADING_ORDER_TIMEOUTS), as an audited input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from brokers.base import BrokerConfigError
from domain.orders import OrderStatus, TimeInForce
from server.broker_supervisor import TIMEOUT_BY, BrokerSupervisor, parse_order_timeouts
from tests.core.fakes import HoldingBroker
from tests.core.harness import make_harness
from tests.support.market import SESSION_START


def test_a_working_order_past_its_timeout_is_cancelled_by_the_supervisor(calendar: Any) -> None:
    broker = HoldingBroker()  # orders rest until the test fills them
    harness = make_harness(calendar, broker)
    supervisor = BrokerSupervisor(
        harness.core, sweep_every_s=3600, order_timeouts=parse_order_timeouts("DAY=600")
    )
    supervisor.check()  # the start-up reconciliation
    assert harness.signal(quantity="5").approved
    [order] = harness.core.execution.orders(open_only=True)

    harness.at(SESSION_START + timedelta(minutes=5))
    supervisor.check()
    assert harness.core.execution.get(order.order_id).status is OrderStatus.ACCEPTED

    harness.at(SESSION_START + timedelta(minutes=11))
    supervisor.check()
    cancelled = harness.core.execution.get(order.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    [request] = harness.payloads("CancelRequested")
    assert request == {"order_id": order.order_id, "requested_by": TIMEOUT_BY}


def test_timeouts_are_read_per_time_in_force_and_bad_ones_are_refused() -> None:
    assert parse_order_timeouts("day=60, GTC=86400,IOC=0") == {
        TimeInForce.DAY: timedelta(seconds=60),
        TimeInForce.GTC: timedelta(days=1),
    }
    assert parse_order_timeouts("") == {}
    for bad in ("DAY", "WEEK=5", "DAY=-1", "DAY=nan", "GTC=soon"):
        with pytest.raises(BrokerConfigError, match="TRADING_ORDER_TIMEOUTS"):
            parse_order_timeouts(bad)
