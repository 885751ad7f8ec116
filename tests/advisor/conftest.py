"""Fixtures of the advisor tests: the fake OpenAI server, and services whose
advisor asks it (or the offline analyst), with AAPL at 190 inside an NYSE session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningService, StartService
from tests.fakes.openai_server import FakeOpenAI
from tests.support.aapl import RISING, SYMBOL
from tests.support.market import ticks


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def advised(start_service: StartService, fake_openai: FakeOpenAI) -> RunningService:
    """A service whose advisor asks the fake OpenAI."""
    running = start_service(
        openai_api_key="sk-test",
        openai_base_url=fake_openai.base_url,
        openai_timeout_seconds=5,
        openai_max_retries=2,
    )
    running.client.stream_market_data([ticks(SYMBOL, RISING)])
    return running


@pytest.fixture
def offline(start_service: StartService) -> RunningService:
    """A service with no OpenAI key: the offline analyst."""
    running = start_service(openai_api_key=None)
    running.client.stream_market_data([ticks(SYMBOL, RISING)])
    return running
