"""Recent prices per symbol, for the advisor's trends and the model's context.

`MarketPrices` keeps only the last price; the advisor wants the last few dozen.
This runs on the market-data path after the strategies, so it stays cheap: it
reads each batch from its end and stops as soon as every symbol in the batch has
`depth` prices (or after a bounded number of ticks), so a large batch costs
about `depth` steps per symbol rather than one per tick.
"""

from __future__ import annotations

from collections import deque

from domain import numeric
from domain.events import Envelope, MarketDataReceived

# How many ticks per wanted price a backward scan may visit before it gives up
# on a symbol that is rare in the batch (its older ticks are then not kept).
_SCAN_SLACK = 4


class PriceHistory:
    def __init__(self, depth: int = 60) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self._recent: dict[str, deque[float]] = {}

    def on_market_data(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, MarketDataReceived)
        symbols, prices = event.batch.symbols, event.batch.prices
        distinct = set(symbols)
        if len(distinct) == 1:
            self._buffer(symbols[0]).extend(prices[-self.depth :])
        else:
            self._take_tails(symbols, prices, distinct)

    def _take_tails(self, symbols: list[str], prices: list[float], distinct: set[str]) -> None:
        missing = dict.fromkeys(distinct, self.depth)
        tails: dict[str, list[float]] = {s: [] for s in missing}
        budget = self.depth * len(missing) * _SCAN_SLACK
        for index in range(len(symbols) - 1, max(len(symbols) - 1 - budget, -1), -1):
            symbol = symbols[index]
            if symbol in missing:
                tails[symbol].append(prices[index])
                missing[symbol] -= 1
                if not missing[symbol]:
                    del missing[symbol]
                    if not missing:
                        break
        for symbol, tail in tails.items():
            tail.reverse()
            self._buffer(symbol).extend(tail)

    def _buffer(self, symbol: str) -> deque[float]:
        buffer = self._recent.get(symbol)
        if buffer is None:
            buffer = self._recent[symbol] = deque(maxlen=self.depth)
        return buffer

    def recent(self, symbol: str) -> tuple[float, ...]:
        """The symbol's latest prices, oldest first (empty when none was seen).

        Prices outside the numeric domain are left out here, at read time, so the
        market-data path stays a bare append: the edge refuses them, and one that
        got in anyway must not turn a moving average into inf or NaN."""
        return tuple(p for p in self._recent.get(symbol, ()) if numeric.price_in_domain(p))
