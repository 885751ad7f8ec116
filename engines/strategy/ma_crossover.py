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
default is 0.6): the core fails closed. The score is computed in floating point
from the prices as they came, only at a crossing, by `_score`, which both
paths below share, so a crossing's confidence and rationale never depend on
how the ticks were batched.

When a crossing happens: exact arithmetic
-----------------------------------------
Whether the averages crossed is decided in exact integers, so that the answer
cannot depend on the order of additions, and so on where a feed split its
ticks into messages:

- each price becomes, once, an integer number of 1e-8 units
  (`domain.numeric.PRICE_SCALE`): u = round-half-even(price * 1e8), where the
  product is the IEEE double product (correctly rounded, so the same in Python
  and in numpy, element by element) and the rounding is Python's `round` in
  the per-tick path and `np.rint` in the batch path (both exact, half to even).
  For a price with at most 8 decimals in the domain the product is within 0.23
  of the intended integer, so u is exactly the decimal price in 1e-8 units; a
  price with more digits (a synthetic path) is judged by its rounding, so a
  difference of the averages finer than that unit may go either way, but
  always the same way;
- a window sum is the exact integer sum of its units, and the short MA is
  above the long one when short_sum * long_n - long_sum * short_n > 0, below
  when < 0; when it is exactly 0 (a tie: a flat stretch) the side is kept
  (the float running sums used before broke such ties by rounding noise, so a
  flat stretch could buy and then sell);
- a price that is not finite or whose magnitude exceeds the domain's
  MAX_PRICE (1e7; the edge refuses such prices, the core does not rely on it)
  is unmeasurable: it counts as 0 units, and while the long window holds one no
  crossing is judged (the side is kept), so one bad tick cannot invent a
  crossing, nor silence the symbol once it has left the window. A zero or
  negative price within the bound is measured (its crossing scores 0, above).

The per-tick path uses Python ints, which cannot overflow. The batch path
uses int64: every measurable price is at most 1e15 units, so with periods
whose product is at most 4,611 (the default 20/50: 1,000) the cross
difference, |diff| <= 2 * short * long * 1e15, and the window sums fit int64
at any price. With larger periods a batch is checked first: one whose largest
price could overflow them (above INT64_MAX / (2 * short * long) units, 7.7e6
for 60/100) runs through the per-tick path instead, with the same answer,
slower. Window sums are differences of an int64 running sum (cumsum) over the
carried window and the batch; over many large prices that running sum wraps
around 2**64, but numpy's integer arrays wrap (two's complement), so each
difference is exact modulo 2**64, and being a window sum that fits int64, exact.

Two paths, one answer
---------------------
`process_market_event` and, for batches under `vectorise_from` ticks,
`process_market_events` run the reference loop, `_scan`: O(1) work per tick,
two running exact sums over a ring of the last long + short prices (units,
and the prices themselves for scoring), the sign of the cross difference.
Larger batches (a list, any sequence of floats or a numpy array, converted to
float64 once) run `_scan_vectorised`: the carried window is prepended, window
sums come from the running sum, signs and their changes are found with numpy,
and Python work is done only at a crossing. Both leave the same state (the
ring, the sums, the count, the side and `blind_until`), so any split of the
same ticks into batches gives the same crossings, in the same order, with the
same numbers (tests/core/test_crossover_batches.py checks it by property).
A replay reproduces all of it exactly.
"""

from __future__ import annotations

import math
import operator
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from domain.numeric import INT64_MAX, MAX_PRICE, PRICE_SCALE
from domain.orders import Side
from engines.strategy.base import BaseStrategy, Prices, SignalIntent, Stamps

_INF = math.inf
_SCALE = float(PRICE_SCALE)
# The largest magnitude a price may have and still be measured, and its units.
_LIMIT = MAX_PRICE
_UNIT_LIMIT = round(MAX_PRICE * _SCALE)

_T = TypeVar("_T")


def price_units(price: float) -> int | None:
    """A price in exact 1e-8 units, or None when it cannot be measured (not
    finite, or beyond MAX_PRICE in magnitude): the rule both paths apply."""
    p = float(price)
    return round(p * _SCALE) if -_LIMIT <= p <= _LIMIT else None


class MovingAverageState:
    """The last long + short prices of one symbol in a ring (as they came, and in
    exact units), the two exact window sums, and what is needed to judge the next
    tick."""

    __slots__ = (
        "blind_until",
        "count",
        "index",
        "prices",
        "side",
        "sum_long",
        "sum_short",
        "units",
    )

    def __init__(self, short_period: int, long_period: int) -> None:
        # long + short prices: enough to rebuild both averages short_period ticks ago.
        size = long_period + short_period
        self.prices = [0.0] * size
        # The same prices in 1e-8 units (0 for an unmeasurable one): the sums' terms.
        self.units = [0] * size
        self.index = 0
        self.count = 0
        # Exact sums of the units of the last long_period and short_period ticks.
        self.sum_short = 0
        self.sum_long = 0
        # No crossing is judged before the count reaches this: the long MA must
        # exist, and hold no unmeasurable price (each one pushes it on).
        self.blind_until = long_period
        # +1 short above long, -1 below, 0 before the first judgement.
        self.side = 0


class MovingAverageCrossoverStrategy(BaseStrategy):
    """Long-only by default: an upward cross buys; a downward cross sells what is held
    (the sizing step finds nothing to sell when flat) and opens a short only when
    `allow_short` is set."""

    # Batches of at least this many ticks take the numpy path; smaller ones the
    # per-tick loop, which is faster for them. The answers are the same either way.
    vectorise_from: int = 64

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
        # Whether int64 can hold every cross product at any measurable price.
        self._int64_safe = 2 * short_period * long_period * _UNIT_LIMIT <= INT64_MAX

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
        crossings = self._scan((price,), state)
        return crossings[0][1] if crossings else None

    def process_market_events(
        self,
        symbol: str,
        prices: Prices,
        timestamps_ns: Stamps,
        state: Any,
    ) -> list[tuple[int, SignalIntent]]:
        if len(prices) < self.vectorise_from:
            if isinstance(prices, np.ndarray):
                prices = prices.tolist()  # Python floats loop faster than numpy scalars
            return self._scan(prices, state)
        return self._scan_vectorised(prices, state)

    def _scan(self, prices: Prices, state: MovingAverageState) -> list[tuple[int, SignalIntent]]:
        """The reference: tick by tick, O(1) work each, exact Python ints.

        State is loaded into locals once per call and stored back at the end,
        because attribute access would cost more than the arithmetic."""
        st = state
        short_n, long_n = self.short_period, self.long_period
        ring, units = st.prices, st.units
        size = len(ring)
        i, count, side, blind_until = st.index, st.count, st.side, st.blind_until
        sum_short, sum_long = st.sum_short, st.sum_long
        limit, scale = _LIMIT, _SCALE  # locals: both are read every tick
        crossings: list[tuple[int, SignalIntent]] = []
        for k, price in enumerate(prices):
            p = float(price)
            count += 1
            if -limit <= p <= limit:  # NaN fails: see price_units
                u = round(p * scale)
            else:
                u = 0
                blind_until = count + long_n
            # units[i - n] is the tick n ago (negative indices wrap); slots start
            # at 0, so before a window is full the subtraction is a no-op.
            sum_long += u - units[i - long_n]
            sum_short += u - units[i - short_n]
            ring[i] = p
            units[i] = u
            i += 1
            if i == size:
                i = 0
            if count < blind_until:
                continue  # no long MA yet, or it holds an unmeasurable price
            # The sign of short_ma - long_ma, without dividing, exactly.
            diff = sum_short * long_n - sum_long * short_n
            if diff > 0:
                new_side = 1
            elif diff < 0:
                new_side = -1
            else:
                continue  # a tie: the side is kept
            if new_side != side:
                if side:
                    window = ring[i:] + ring[:i]  # oldest first
                    crossings.append((k, self._score(new_side, window, count)))
                side = new_side
        st.index, st.count, st.side, st.blind_until = i, count, side, blind_until
        st.sum_short, st.sum_long = sum_short, sum_long
        return crossings

    def _scan_vectorised(
        self, prices: Prices, state: MovingAverageState
    ) -> list[tuple[int, SignalIntent]]:
        """The same as `_scan` over a whole batch with numpy: the carried long
        window is prepended, window sums are differences of one int64 running sum
        (exact, see the module docstring), the side's changes are found with
        numpy (the starts of runs of equal signs), and only a crossing costs Python work."""
        batch = np.asarray(prices, dtype=np.float64)
        if batch.ndim != 1:
            raise ValueError(f"prices must be one-dimensional, not of shape {batch.shape}")
        n = int(batch.shape[0])
        if n == 0:
            return []
        st = state
        short_n, long_n = self.short_period, self.long_period
        ring, units = st.prices, st.units
        size = len(ring)
        i0, count0, side, blind_until = st.index, st.count, st.side, st.blind_until

        # Units, by the rule of price_units, straight into the window array ext
        # (the carried long window, then the batch). One check of the range decides
        # whether any price needs the slow, element-wise treatment.
        ext = np.empty(long_n + n, dtype=np.int64)
        ext[:long_n] = _last(units, i0, long_n)
        bad: npt.NDArray[np.intp] | None = None
        if batch.min() >= -_LIMIT and batch.max() <= _LIMIT:  # NaN fails both
            scaled = batch * _SCALE
        else:
            measurable = (batch >= -_LIMIT) & (batch <= _LIMIT)
            bad = (~measurable).nonzero()[0]
            scaled = np.where(measurable, batch, 0.0)
            scaled *= _SCALE
        np.rint(scaled, out=scaled)
        ext[long_n:] = scaled  # exact: integral doubles of at most 1e15
        if not self._int64_safe:
            largest = int(np.abs(ext).max())
            if 2 * short_n * long_n * largest > INT64_MAX:
                return self._scan(batch.tolist(), state)  # Python ints cannot overflow

        # Window sums ending at batch tick k (at ext[long_n + k]), from the running
        # sum cs (cs[j] = ext[0] + ... + ext[j]), and the sign of the cross difference.
        cs = ext.cumsum()
        top = cs[long_n:]
        diff = top - cs[long_n - short_n : long_n - short_n + n]  # short sums
        diff *= long_n
        long_terms = top - cs[:n]  # long sums
        long_terms *= short_n
        diff -= long_terms
        sign = np.sign(diff)
        # Ticks that are not judged have no sign: before the count reaches
        # blind_until, and within long_n ticks of an unmeasurable price.
        first_judged = blind_until - count0 - 1
        if first_judged > 0:
            sign[:first_judged] = 0
        if bad is not None and len(bad):
            latest_bad = np.full(n, -long_n, dtype=np.intp)
            latest_bad[bad] = bad
            np.maximum.accumulate(latest_bad, out=latest_bad)
            sign[np.arange(n) - latest_bad < long_n] = 0
            blind_until = count0 + int(bad[-1]) + 1 + long_n

        # The side changes only where a run of equal signs starts with a non-zero
        # sign (a 0, a tie or an unjudged tick, keeps the side), and what it changes
        # from is the sign that started the previous such run: so only the starts
        # of runs, rare on any path that trends, are looked at.
        starts = np.empty(n, dtype=np.bool_)
        starts[0] = True
        np.not_equal(sign[1:], sign[:-1], out=starts[1:])
        runs = starts.nonzero()[0]
        runs = runs[sign[runs] != 0]
        crossings: list[tuple[int, SignalIntent]] = []
        if len(runs):
            sides = sign[runs]
            previous = np.empty_like(sides)
            previous[0] = side
            previous[1:] = sides[:-1]
            turns = (sides != previous).nonzero()[0].tolist()
            tail: list[float] | None = None
            for j in turns:
                if not previous[j]:
                    continue  # the first judgement sets the side: no crossing
                end = int(runs[j]) + 1
                if end >= size:
                    window = batch[end - size : end].tolist()
                else:
                    if tail is None:
                        tail = ring[i0:] + ring[:i0]  # the carried prices, oldest first
                    window = tail[end:] + batch[:end].tolist()
                crossings.append((end - 1, self._score(int(sides[j]), window, count0 + end)))
            side = int(sides[-1])

        # The state as the per-tick loop leaves it: the last long + short ticks in
        # the ring, and the exact sums of the last windows.
        m = min(n, size)
        start = (i0 + n - m) % size
        _place(ring, start, batch[n - m :].tolist())
        _place(units, start, ext[long_n + n - m :].tolist())
        last = ext[n:].tolist()
        st.sum_long, st.sum_short = sum(last), sum(last[long_n - short_n :])
        st.index, st.count, st.side, st.blind_until = (i0 + n) % size, count0 + n, side, blind_until
        return crossings

    def _score(self, side: int, window: list[float], count: int) -> SignalIntent:
        """Confidence of a crossing (see the module docstring), from the last
        long + short prices, oldest first: O(long + short) work, only on a crossing
        tick. `count` is how many ticks the symbol has seen, this one included.

        Fails closed: when the move cannot be measured (a price in the window that
        is not positive and finite, or a volatility or swing that overflowed to
        inf or NaN) the confidence is 0, never the zero-noise limit of 1."""
        short_n, long_n = self.short_period, self.long_period
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
        # One-tick returns b / a - 1 and their deviations, with C-level loops.
        returns = [q - 1.0 for q in map(operator.truediv, recent[1:], recent[:-1])]
        mean = sum(returns) / len(returns)
        deviations = [r - mean for r in returns]
        # d * d, not d ** 2: float ** raises OverflowError where * gives inf.
        sigma = math.sqrt(sum(map(operator.mul, deviations, deviations)) / len(returns))
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


def _last(ring: list[_T], next_index: int, n: int) -> list[_T]:
    """The last `n` entries of a ring whose next slot is `next_index`, oldest first."""
    if n <= next_index:
        return ring[next_index - n : next_index]
    return ring[next_index - n :] + ring[:next_index]


def _place(ring: list[_T], start: int, values: list[_T]) -> None:
    """Write `values` (at most a lap of them) into the ring from slot `start` on."""
    first = min(len(values), len(ring) - start)
    ring[start : start + first] = values[:first]
    ring[: len(values) - first] = values[first:]


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
