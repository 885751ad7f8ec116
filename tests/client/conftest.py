"""Fixtures for the client tests: the fake TradingService on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from tests.client.fake_service import FakeTradingService


@pytest.fixture
def fake() -> Iterator[FakeTradingService]:
    service = FakeTradingService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((service,))
    service.target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    yield service
    server.stop(grace=None)
