"""Price paths and tick builders shared by the core tests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from client.sdk import market_event
from domain.market import MarketBatch
from trading.v1 import market_pb2

# Tuesday 5 March 2024, 09:31 New York (EST, UTC-5): inside the regular session,
# with 390 one-minute ticks of room before the close.
SESSION_START = datetime(2024, 3, 5, 14, 31, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def v_reversal(
    down: int = 80, up: int = 60, start: float = 100.0, step: float = 0.005
) -> list[float]:
    """A sustained fall then a sustained rise: the 20-period MA crosses the 50-period
    MA upwards exactly once, decisively."""
    prices, price = [], start
    for k in range(down + up):
        price *= 1 - step if k < down else 1 + step
        prices.append(round(price, 4))
    return prices


def sideways(n: int = 300, level: float = 100.0, noise: float = 0.01, seed: int = 7) -> list[float]:
    """Price wandering around a flat level: the MAs cross often, for no reason."""
    rng = random.Random(seed)
    return [round(level * (1 + rng.gauss(0, noise)), 4) for _ in range(n)]


def ticks(
    symbol: str, prices: Sequence[float], start: datetime = SESSION_START, step: timedelta = MINUTE
) -> list[market_pb2.MarketEvent]:
    return [
        market_event(symbol, price, volume=100, timestamp=start + k * step)
        for k, price in enumerate(prices)
    ]


def batch(
    symbol: str, prices: Sequence[float], start: datetime = SESSION_START, step: timedelta = MINUTE
) -> MarketBatch:
    """The same ticks as the core sees them, for engine-level tests."""
    stamps = [int((start + k * step).timestamp()) * 1_000_000_000 for k in range(len(prices))]
    return MarketBatch([symbol] * len(prices), list(prices), [100.0] * len(prices), stamps)
