"""Market data inside an NYSE session: the session's times, tick builders and the
price paths that make the crossover strategy trade (or not).

Every service under test runs on the event clock, so a tick's timestamp is the
time; the builders put ticks where the risk gate's market-hours rule lets them
trade.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from domain.market import MarketBatch
from trading_sdk.client import market_event
from trading_sdk.v1 import market_pb2

# Tuesday 5 March 2024, 10:00 New York (EST, UTC-5): the middle of a regular NYSE
# session, with hours of room either side. The default start of `ticks`.
SESSION: Final = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
# The same day at 09:31 New York, a minute after the open: 390 one-minute ticks of
# room before the close. The default start of `minute_ticks`, `batch` and the
# core's harness and simulator clocks.
SESSION_START: Final = datetime(2024, 3, 5, 14, 31, tzinfo=UTC)
SECOND: Final = timedelta(seconds=1)
MINUTE: Final = timedelta(minutes=1)
# The service's default strategy: a 20/50-period moving-average crossover.
STRATEGY: Final = "ma_crossover"


def ticks(
    symbol: str,
    prices: Iterable[float],
    start: datetime = SESSION,
    step: timedelta = SECOND,
    volume: float = 100.0,
) -> list[market_pb2.MarketEvent]:
    """One event per price, `step` apart from `start`, as a feed sends them."""
    return [market_event(symbol, price, volume, start + k * step) for k, price in enumerate(prices)]


def as_series(events: Sequence[market_pb2.MarketEvent]) -> list[market_pb2.SymbolSeries]:
    """The same ticks in the columnar form: one SymbolSeries per run of consecutive
    events of one symbol, in their order (an unset timestamp becomes 0), so the
    service reads exactly the batch the events make."""
    out: list[market_pb2.SymbolSeries] = []
    for event in events:
        if not out or out[-1].symbol != event.symbol:
            out.append(market_pb2.SymbolSeries(symbol=event.symbol))
        series = out[-1]
        stamp = event.timestamp
        series.timestamps_ns.append(
            stamp.seconds * 1_000_000_000 + stamp.nanos if event.HasField("timestamp") else 0
        )
        series.prices.append(event.price)
        series.volumes.append(event.volume)
    return out


def minute_ticks(
    symbol: str, prices: Iterable[float], start: datetime = SESSION_START
) -> list[market_pb2.MarketEvent]:
    """One event per price, a minute apart from the open: the bars the core tests'
    price paths are written in (`v_reversal()` spans 140 minutes of the session)."""
    return ticks(symbol, prices, start=start, step=MINUTE)


def batch(
    symbol: str,
    prices: Sequence[float],
    start: datetime = SESSION_START,
    step: timedelta = MINUTE,
    volume: float = 100.0,
) -> MarketBatch:
    """The same ticks as `minute_ticks`, in the form the core sees them, for tests of
    the engines without the transport."""
    stamps = [int((start + k * step).timestamp()) * 1_000_000_000 for k in range(len(prices))]
    return MarketBatch([symbol] * len(prices), list(prices), [volume] * len(prices), stamps)


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


def crossover_prices() -> list[float]:
    """A slide then a sharp rally: the 20/50 crossover strategy buys once, with
    enough confidence to pass risk, and the paper broker fills the market order."""
    return [100 - 0.2 * i for i in range(60)] + [88 + 1.0 * i for i in range(30)]
