"""The crossover strategy's own batch call, ticks per second: the float running
sums it had before (per-tick loop, `Baseline` below) next to the exact
vectorised one, on a random walk that crosses at about 2% of ticks and a slow
wave that crosses at about 0.1%, at 1, 1,000 and 100,000 ticks per call.

The new one is measured with the batch as a Python list (the MarketBatch
columns of today) and as a numpy array (columnar input). Only the strategy
runs: no sizing, risk, execution or audit. Scoring a crossing is the same code
in both (`_score`, O(long + short) Python work), so on the 2% path both spend
most of their time there. Each figure is the best of a few runs.

Run it with `.venv/bin/python -m tests.bench --only crossover`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engines.strategy.base import Prices, SignalIntent, Stamps
from engines.strategy.ma_crossover import MovingAverageCrossoverStrategy

TICKS = 1_000_000
ONE_TICK_CALLS = 200_000  # a call per tick is slow: measured over fewer ticks
BATCH_SIZES = (1, 1_000, 100_000)
Out = Callable[[str], None]


class _BaselineState:
    __slots__ = ("count", "index", "prices", "side", "sum_long", "sum_short")

    def __init__(self, short_period: int, long_period: int) -> None:
        self.prices = [0.0] * (long_period + short_period)
        self.index = 0
        self.count = 0
        self.sum_short = 0.0
        self.sum_long = 0.0
        self.side = 0


class Baseline(MovingAverageCrossoverStrategy):
    """The crossover as it was: float running sums over the ring, rebuilt once a
    lap, a sign change confirmed with sums from the ring, a per-tick loop for
    every batch. Kept here, frozen, to measure against."""

    def new_state(self, symbol: str) -> Any:
        return _BaselineState(self.short_period, self.long_period)

    def process_market_event(
        self, symbol: str, price: float, timestamp_ns: int, state: Any
    ) -> SignalIntent | None:
        crossings = self.process_market_events(symbol, (price,), (timestamp_ns,), state)
        return crossings[0][1] if crossings else None

    def process_market_events(
        self, symbol: str, prices: Prices, timestamps_ns: Stamps, state: Any
    ) -> list[tuple[int, SignalIntent]]:
        st: _BaselineState = state
        short_n, long_n = self.short_period, self.long_period
        ring = st.prices
        size = len(ring)
        i, count, side = st.index, st.count, st.side
        sum_short, sum_long = st.sum_short, st.sum_long
        neg_inf, inf = -math.inf, math.inf
        crossings: list[tuple[int, SignalIntent]] = []
        for k, price in enumerate(prices):
            count += 1
            sum_long += price - ring[i - long_n]
            sum_short += price - ring[i - short_n]
            ring[i] = price
            i += 1
            if i == size:
                i = 0
                sum_long, sum_short = _window_sum(ring, 0, long_n), _window_sum(ring, 0, short_n)
            if count < long_n:
                continue
            diff = sum_short * long_n - sum_long * short_n
            if not neg_inf < diff < inf:
                sum_long, sum_short = _window_sum(ring, i, long_n), _window_sum(ring, i, short_n)
                diff = sum_short * long_n - sum_long * short_n
                if not neg_inf < diff < inf:
                    continue
            new_side = 1 if diff > 0.0 else -1 if diff < 0.0 else side
            if new_side != side:
                sum_long, sum_short = _window_sum(ring, i, long_n), _window_sum(ring, i, short_n)
                diff = sum_short * long_n - sum_long * short_n
                if not neg_inf < diff < inf:
                    continue
                new_side = 1 if diff > 0.0 else -1 if diff < 0.0 else side
                if new_side != side:
                    if side:
                        window = ring[i:] + ring[:i]
                        crossings.append((k, self._score(new_side, window, count)))
                    side = new_side
        st.index, st.count, st.side = i, count, side
        st.sum_short, st.sum_long = sum_short, sum_long
        return crossings


def _window_sum(ring: list[float], next_index: int, n: int) -> float:
    if n <= next_index:
        return sum(ring[next_index - n : next_index])
    return sum(ring[next_index - n :]) + sum(ring[:next_index])


def random_walk(n: int, seed: int = 1) -> list[float]:
    """Gaussian one-tick returns of 0.1%: the 20/50 MAs cross at about 2% of ticks."""
    rng = random.Random(seed)
    price, path = 100.0, []
    for _ in range(n):
        price *= 1 + rng.gauss(0, 0.001)
        path.append(price)
    return path


def slow_wave(n: int, seed: int = 1) -> list[float]:
    """A wave of about 1,900 ticks with a little noise: crossings at about 0.1%."""
    rng = random.Random(seed)
    return [100.0 + 5.0 * math.sin(k / 300.0) + rng.gauss(0, 0.01) for k in range(n)]


def _throughput(
    strategy: MovingAverageCrossoverStrategy, batches: Sequence[Prices], repeats: int
) -> tuple[float, list[tuple[int, str]]]:
    """Best ticks/s over `repeats` runs from a fresh state, and the crossings seen."""
    ticks = sum(len(b) for b in batches)
    stamps = [0] * max(len(b) for b in batches)
    best, crossings = 0.0, []
    for _ in range(repeats):
        state = strategy.new_state("SPY")
        seen: list[tuple[int, str]] = []
        offset = 0
        start = time.perf_counter()
        for batch in batches:
            for k, intent in strategy.process_market_events(
                "SPY", batch, stamps[: len(batch)], state
            ):
                seen.append((offset + k, intent.side.value))
            offset += len(batch)
        best = max(best, ticks / (time.perf_counter() - start))
        crossings = seen
    return best, crossings


def run(out: Out = print) -> None:
    out("Crossover strategy batch call (ticks/s), 20/50, one symbol")
    out(
        f"{'path':>12} {'crossings':>9} {'batch':>7} {'old (list)':>12} "
        f"{'new (list)':>12} {'new (array)':>12} {'new/old':>8} {'same':>5}"
    )
    for name, make in (("random walk", random_walk), ("slow wave", slow_wave)):
        path = make(TICKS)
        column = np.asarray(path, dtype=np.float64)
        for size in BATCH_SIZES:
            ticks = ONE_TICK_CALLS if size == 1 else TICKS
            lists = [path[o : o + size] for o in range(0, ticks, size)]
            arrays = [column[o : o + size] for o in range(0, ticks, size)]
            repeats = 1 if size == 1 else 3
            old, old_crossings = _throughput(Baseline(), lists, repeats)
            new, new_crossings = _throughput(MovingAverageCrossoverStrategy(), lists, repeats)
            new_array, _ = _throughput(MovingAverageCrossoverStrategy(), arrays, repeats)
            rate = len(new_crossings) / ticks
            same = "yes" if new_crossings == old_crossings else "no"
            out(
                f"{name:>12} {rate:>9.2%} {size:>7,} {old:>12,.0f} {new:>12,.0f} "
                f"{new_array:>12,.0f} {new / old:>8.1f} {same:>5}"
            )


if __name__ == "__main__":
    run()
