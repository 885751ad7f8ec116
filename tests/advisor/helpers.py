"""Market data and error helpers of the advisor tests.

AAPL is not a strategy symbol, so the only orders in these tests are the ones
an approved idea leads to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from client.sdk import market_event
from tests.conftest import RunningService
from trading.v1 import market_pb2

# Tuesday 2024-03-05, 10:00 in New York: inside a regular NYSE session.
SESSION = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
SYMBOL = "AAPL"
# 40 prices rising from 180 to 190, a second apart: the last at SESSION + 39 s.
RISING = [180.0 + 10.0 * i / 39 for i in range(40)]
LAST_TICK = SESSION + timedelta(seconds=len(RISING) - 1)


def ticks(symbol: str, prices: Iterable[float]) -> list[market_pb2.MarketEvent]:
    """One event per price, a second apart from SESSION."""
    return [
        market_event(symbol, price, 100.0, SESSION + timedelta(seconds=i))
        for i, price in enumerate(prices)
    ]


def price_at(running: RunningService, price: float, moment: datetime) -> None:
    """One AAPL tick: moves the last price and, with the event clock, the time."""
    running.client.stream_market_data([[market_event(SYMBOL, price, 100.0, moment)]])


def rpc_error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """Run a unary call that must fail; return its status code and details."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    code: grpc.StatusCode = info.value.code()
    return code, info.value.details() or ""
