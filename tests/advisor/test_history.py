"""Recent prices per symbol, taken from journaled market data."""

from __future__ import annotations

from domain.events import Envelope, MarketDataReceived
from domain.market import MarketBatch
from engines.advisor.history import PriceHistory
from tests.support.market import SESSION


def _journaled(symbols: list[str], prices: list[float]) -> Envelope:
    batch = MarketBatch(symbols, prices, [0.0] * len(prices), [1] * len(prices))
    return Envelope(1, SESSION, 0, MarketDataReceived(batch, "test"))


def test_keeps_the_latest_prices_of_each_symbol_oldest_first() -> None:
    history = PriceHistory(depth=3)

    history.on_market_data(_journaled(["A"] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]))
    history.on_market_data(_journaled(["A", "B", "A", "B"], [6.0, 10.0, 7.0, 11.0]))

    assert history.recent("A") == (5.0, 6.0, 7.0)
    assert history.recent("B") == (10.0, 11.0)
    assert history.recent("C") == ()


def test_a_symbol_rare_in_a_long_batch_keeps_only_its_ticks_near_the_end() -> None:
    history = PriceHistory(depth=2)
    # The scan from the end visits at most depth x symbols x 4 = 16 ticks.
    symbols = ["R", *(["A"] * 30), "R"]
    prices = [1.0, *([5.0] * 30), 2.0]

    history.on_market_data(_journaled(symbols, prices))

    assert history.recent("R") == (2.0,)
    assert history.recent("A") == (5.0, 5.0)
