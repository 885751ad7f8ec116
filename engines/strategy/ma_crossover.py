"""Moving-average crossover: buy when the short MA crosses above the long MA,
sell when it crosses below.

Confidence (documented in the README too)
-----------------------------------------
A crossover is only as good as the move that produced it. At the crossing tick
`t` the spread s = short_ma / long_ma - 1 is about zero, so how far the spread
travelled over the last `short_period` ticks,

    swing = |s_t - s_(t - short_period)|,

measures how far the short MA was carried through the long one. We compare it
with the swing that noise alone would produce: if prices were a random walk
with the volatility just seen (sigma, the standard deviation of one-tick
returns over the long window), the swing would have standard deviation
sigma * k, where k depends only on the two periods (k = 2.64 for 20/50; it is
the norm of the weights with which each return enters the swing, computed once
in the constructor). So

    z = swing / (sigma * k)                (how many "noise swings" this is)
    confidence = z^2 / (z^2 + 1)           in [0, 1)

z = 1, a swing no bigger than a random walk's, gives 0.5; the default 0.6
threshold needs z >= 1.22. A sustained reversal that carries the short MA
clearly through scores 0.8 to 0.99; price wandering sideways around a level
crosses often, with a swing far below a random walk's, and scores under 0.1.
A path with no noise at all scores 1.

The work per tick is O(1): two running sums over a ring of the last long +
short prices, and the sign of their difference. Only a crossing tick, which is
rare, does O(long + short) work to score itself from the ring (exact sums, no
drift). The running sums are kept in floating point; their rounding error
stays far below a cent over millions of ticks, and a replay reproduces it
exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from domain.orders import Side
from engines.strategy.base import BaseStrategy, SignalIntent


class MovingAverageState:
    """The last long + short prices of one symbol in a ring, and the two running sums."""

    __slots__ = ("count", "index", "prices", "side", "sum_long", "sum_short")

    def __init__(self, short_period: int, long_period: int) -> None:
        # long + short prices: enough to rebuild both averages short_period ticks ago.
        self.prices = [0.0] * (long_period + short_period)
        self.index = 0
        self.count = 0
        self.sum_short = 0.0
        self.sum_long = 0.0
        # +1 short above long, -1 below, 0 before the long MA exists.
        self.side = 0


class MovingAverageCrossoverStrategy(BaseStrategy):
    """Long-only by default: an upward cross buys; a downward cross sells what is held
    (the sizing step finds nothing to sell when flat) and opens a short only when
    `allow_short` is set."""

    def __init__(
        self,
        symbols: list[str] | None = None,
        short_period: int = 20,
        long_period: int = 50,
        min_confidence: float = 0.6,
        allow_short: bool = False,
        name: str = "ma_crossover",
    ) -> None:
        if not 1 <= short_period < long_period:
            raise ValueError("need 1 <= short_period < long_period")
        self.name = name
        self.symbols = list(symbols or ["SPY", "QQQ", "IWM"])
        self.short_period = short_period
        self.long_period = long_period
        self.min_confidence = min_confidence
        self.allow_short = allow_short
        self._noise_factor = _random_walk_swing_factor(short_period, long_period)

    def get_required_symbols(self) -> list[str]:
        return list(self.symbols)

    def parameters(self) -> dict[str, str]:
        return {
            "short_period": str(self.short_period),
            "long_period": str(self.long_period),
            "min_confidence": str(self.min_confidence),
            "allow_short": str(self.allow_short).lower(),
        }

    def new_state(self, symbol: str) -> MovingAverageState:
        return MovingAverageState(self.short_period, self.long_period)

    def process_market_event(
        self, symbol: str, price: float, timestamp_ns: int, state: Any
    ) -> SignalIntent | None:
        crossings = self.process_market_events(symbol, (price,), (timestamp_ns,), state)
        return crossings[0][1] if crossings else None

    def process_market_events(
        self,
        symbol: str,
        prices: Sequence[float],
        timestamps_ns: Sequence[int],
        state: Any,
    ) -> list[tuple[int, SignalIntent]]:
        # The hot loop: state is loaded into locals once per batch and stored back
        # at the end, because attribute access would cost more than the arithmetic.
        # Per tick it only keeps the two sums and watches the sign of their
        # difference; the (rare) crossing is scored from the ring, in _score.
        st: MovingAverageState = state
        short_n, long_n = self.short_period, self.long_period
        ring = st.prices
        size = len(ring)
        i, count, side = st.index, st.count, st.side
        sum_short, sum_long = st.sum_short, st.sum_long
        crossings: list[tuple[int, SignalIntent]] = []
        for k, price in enumerate(prices):
            count += 1
            # ring[i - n] is the price n ticks ago (negative indices wrap); slots
            # start at 0, so before a window is full the subtraction is a no-op.
            sum_long += price - ring[i - long_n]
            sum_short += price - ring[i - short_n]
            ring[i] = price
            i += 1
            if i == size:
                i = 0
            if count < long_n:
                continue
            # The sign of short_ma - long_ma, without dividing.
            diff = sum_short * long_n - sum_long * short_n
            new_side = 1 if diff > 0.0 else -1 if diff < 0.0 else side
            if new_side != side:
                if side:
                    crossings.append((k, self._score(new_side, ring, i, count)))
                side = new_side
        st.index, st.count, st.side = i, count, side
        st.sum_short, st.sum_long = sum_short, sum_long
        return crossings

    def _score(self, side: int, ring: list[float], next_index: int, count: int) -> SignalIntent:
        """Confidence of a crossing (see the module docstring), from the ring:
        O(long + short) work, only on a crossing tick."""
        short_n, long_n = self.short_period, self.long_period
        window = ring[next_index:] + ring[:next_index]  # oldest first, newest last
        known = min(count, len(window))
        spread = _spread(window, len(window), short_n, long_n)
        # Until long + short ticks are known the spread short_n ticks ago is not:
        # taking it as 0 understates the swing, so an early crossing is judged
        # conservatively.
        spread_then = (
            _spread(window, len(window) - short_n, short_n, long_n) if count >= len(window) else 0.0
        )
        recent = window[len(window) - min(known, long_n + 1) :]
        returns = [b / a - 1.0 for a, b in itertools.pairwise(recent)]
        mean = sum(returns) / len(returns)
        sigma = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
        swing = abs(spread - spread_then)
        noise = sigma * self._noise_factor
        if noise > 0.0:
            z = swing / noise
            confidence = z * z / (z * z + 1.0)
        else:
            z = math.inf
            confidence = 1.0 if swing > 0.0 else 0.0
        direction = "above" if side > 0 else "below"
        rationale = (
            f"{short_n}-period MA crossed {direction} the {long_n}-period MA; "
            f"swing {swing:.4%} vs noise {noise:.4%} (z={z:.2f})"
        )
        return SignalIntent(Side.BUY if side > 0 else Side.SELL, confidence, rationale)


def _spread(window: list[float], end: int, short_n: int, long_n: int) -> float:
    """short MA / long MA - 1 for the ticks of `window` before position `end`."""
    short_ma = sum(window[end - short_n : end]) / short_n
    long_ma = sum(window[end - long_n : end]) / long_n
    return short_ma / long_ma - 1.0


def _random_walk_swing_factor(short_n: int, long_n: int) -> float:
    """k such that, for a random walk with one-tick volatility sigma, the swing of the
    MA spread over `short_n` ticks has standard deviation sigma * k.

    The swing is a weighted sum of the returns of the last short_n + long_n ticks:
    a return j ticks ago is inside an N-tick MA with weight (N - j) / N.
    """

    def weight(n: int, j: int) -> float:
        return (n - j) / n if 0 <= j < n else 0.0

    weights = [
        weight(short_n, j)
        - weight(short_n, j - short_n)
        - weight(long_n, j)
        + weight(long_n, j - short_n)
        for j in range(short_n + long_n)
    ]
    return math.sqrt(sum(w * w for w in weights))
