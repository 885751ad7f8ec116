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
A path with no noise at all scores 1 (the limit as z -> inf; a documented case).
A move that cannot be measured (a volatility or swing that is NaN or infinite,
or a price in the window that is not positive and finite) scores 0 with
z = NaN, so it fails any positive confidence threshold (MinConfidenceRule's
default is 0.6): the core fails closed.

The work per tick is O(1): two running sums over a ring of the last long +
short prices, and the sign of their difference. Only a crossing tick, which is
rare, does O(long + short) work to score itself from the ring (exact sums, no
drift). The running sums are kept in floating point and rebuilt from the ring
once per lap of it (every long + short ticks), so their rounding error never
builds up past one lap, and a price huge enough to swamp them is forgotten a
lap after it has left the window. A sign change of the running sums is
confirmed with exact sums from the ring before it counts as a crossing (rare,
so free), so garbage left by such a price cannot invent one. A sum that has
become NaN or infinite is rebuilt at once, and while a window holds a
non-finite value no crossing is judged, so one bad tick cannot silence a symbol
until a restart. A replay reproduces all of it exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from domain.orders import Side
from engines.strategy.base import BaseStrategy, SignalIntent

_INF = math.inf


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
        neg_inf, inf = -_INF, _INF  # locals: the finiteness check runs every tick
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
                # Once a lap (every long + short ticks, so O(1) a tick) the sums are
                # rebuilt from the ring: rounding error cannot build up past one lap,
                # and a huge price that swamped them is forgotten once it has left.
                sum_long, sum_short = _window_sum(ring, 0, long_n), _window_sum(ring, 0, short_n)
            if count < long_n:
                continue
            # The sign of short_ma - long_ma, without dividing.
            diff = sum_short * long_n - sum_long * short_n
            if not neg_inf < diff < inf:
                # NaN or inf in the sums (inf - inf stays NaN forever): rebuild them
                # from the window, which no longer holds a value that has left it.
                sum_long, sum_short = _window_sum(ring, i, long_n), _window_sum(ring, i, short_n)
                diff = sum_short * long_n - sum_long * short_n
                if not neg_inf < diff < inf:
                    continue  # the averages are not finite: no crossing can be judged
            new_side = 1 if diff > 0.0 else -1 if diff < 0.0 else side
            if new_side != side:
                # Confirmed with exact sums before it is believed (rare, so free): a
                # running sum that absorbed a huge price is garbage once that price
                # has left, and must not invent a crossing.
                sum_long, sum_short = _window_sum(ring, i, long_n), _window_sum(ring, i, short_n)
                diff = sum_short * long_n - sum_long * short_n
                if not neg_inf < diff < inf:
                    continue  # exact sums overflow: the averages are not finite
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
        O(long + short) work, only on a crossing tick.

        Fails closed: when the move cannot be measured (a price in the window that
        is not positive and finite, or a volatility or swing that overflowed to
        inf or NaN) the confidence is 0, never the zero-noise limit of 1."""
        short_n, long_n = self.short_period, self.long_period
        window = ring[next_index:] + ring[:next_index]  # oldest first, newest last
        known = min(count, len(window))
        direction = "above" if side > 0 else "below"
        intent_side = Side.BUY if side > 0 else Side.SELL
        crossed = f"{short_n}-period MA crossed {direction} the {long_n}-period MA"
        # The edge keeps prices inside the numeric domain, but the core does not
        # rely on it: a zero, negative or non-finite price would divide by zero
        # or poison every sum below.
        if not all(0.0 < p < _INF for p in window[len(window) - known :]):
            return SignalIntent(
                intent_side,
                0.0,
                f"{crossed}; a price in the window is not positive and finite, "
                "so the move cannot be measured: confidence 0",
            )
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
        # d * d, not d ** 2: float ** raises OverflowError where * gives inf.
        sigma = math.sqrt(sum(d * d for d in (r - mean for r in returns)) / len(returns))
        swing = abs(spread - spread_then)
        noise = sigma * self._noise_factor
        z, confidence = swing_confidence(swing, noise)
        rationale = f"{crossed}; swing {swing:.4%} vs noise {noise:.4%} (z={z:.2f})"
        if math.isnan(z):
            rationale += "; the move cannot be measured (a non-finite value): confidence 0"
        return SignalIntent(intent_side, confidence, rationale)


def swing_confidence(swing: float, noise: float) -> tuple[float, float]:
    """(z, confidence) of a swing against the noise a random walk would make.

    The documented limit stays: no noise and a positive swing score 1 (z = inf),
    and so does a z too large to square. A NaN or infinite swing or noise (a
    volatility that overflowed) is not a limit but a failure to measure: it
    scores 0 with z = NaN, so it fails any positive confidence threshold."""
    if not (-_INF < swing < _INF and -_INF < noise < _INF):
        return math.nan, 0.0
    if noise > 0.0:
        z = swing / noise
        z_squared = z * z
        return z, z_squared / (z_squared + 1.0) if z_squared < _INF else 1.0
    return math.inf, 1.0 if swing > 0.0 else 0.0


def _window_sum(ring: list[float], next_index: int, n: int) -> float:
    """The sum of the last `n` prices of the ring, whose next slot is `next_index`."""
    if n <= next_index:
        return sum(ring[next_index - n : next_index])
    return sum(ring[next_index - n :]) + sum(ring[:next_index])


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
