"""Fixtures of the monitoring tests: a service with its Prometheus endpoint on."""

from __future__ import annotations

import pytest

from tests.conftest import RunningService, StartService


@pytest.fixture
def monitored(start_service: StartService) -> RunningService:
    """The default service (event clock, SQLite, paper broker) with /metrics on a free port."""
    return start_service(trading_metrics_listen="127.0.0.1:0")


def metrics_port(running: RunningService) -> int:
    port = running.service.metrics_port
    assert port is not None, "the service has no metrics endpoint"
    return port
