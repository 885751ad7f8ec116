"""Fixtures of the edge tests.

`svc` is narrowed to SQLite here: what these tests check (authentication,
validation, status codes, reflection, health) happens at the gRPC edge before
or after the store is touched, and the store's own behaviour on PostgreSQL is
covered by tests/audit and the service tests. The restart test, whose subject
is what the store keeps, still runs on both databases (`database_url`).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.conftest import RunningService, StartService
from tests.support.market import crossover_prices, ticks


@pytest.fixture
def svc(start_service: StartService) -> RunningService:
    """The default service: event clock, SQLite audit file, SPY/QQQ/IWM crossover."""
    return start_service()


@pytest.fixture
def channel(svc: RunningService) -> Iterator[grpc.Channel]:
    """A plain insecure channel to `svc`; it carries no credentials of its own."""
    with grpc.insecure_channel(svc.target) as chan:
        yield chan


@pytest.fixture
def traded(svc: RunningService) -> RunningService:
    """The default service after a crossover: one filled buy, an open SPY position."""
    summary = svc.client.stream_market_data([ticks("SPY", crossover_prices())])
    assert summary.orders == 1
    assert len(svc.client.list_positions().positions) == 1
    return svc
