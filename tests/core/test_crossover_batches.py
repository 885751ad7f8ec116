"""The crossover's batch path (numpy) gives exactly the answers of its per-tick
path, for any split of the same ticks into batches, in row or columnar form:
the same crossings at the same ticks, with the same confidence and rationale,
and the same state after them (DESIGN.md invariant 4).

The per-tick `process_market_event` is the reference. The batch path decides
crossings in exact integers (prices in 1e-8 units), as the reference does, so
the property holds by construction; these tests check the construction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import numeric
from domain.orders import Side
from engines.strategy.base import SignalIntent
from engines.strategy.ma_crossover import (
    MovingAverageCrossoverStrategy,
    MovingAverageState,
    price_units,
)
from tests.support.market import sideways, v_reversal

NAN, INF = math.nan, math.inf
BAD_VALUES = [NAN, INF, -INF, 0.0, -0.0, -5.0, 5e-324, 1e300, 1.7e308, 2e7]
EDGES = [numeric.MIN_PRICE, numeric.MAX_PRICE, 1.0, 100.0]
# 20/50 is the service's default; 60/100 is a pair whose cross products could
# overflow int64 at the largest prices, so its batches may take the exact fallback.
PERIODS = [(20, 50), (2, 5), (5, 12), (1, 2), (60, 100)]

Crossing = tuple[int, Side, float, str]


def reference(
    prices: Sequence[float], short_n: int = 20, long_n: int = 50
) -> tuple[list[Crossing], MovingAverageState]:
    """Every crossing, tick by tick through `process_market_event`, and the state after."""
    strategy = MovingAverageCrossoverStrategy(short_period=short_n, long_period=long_n)
    state = strategy.new_state("SPY")
    crossings = [
        _row(k, intent)
        for k, price in enumerate(prices)
        if (intent := strategy.process_market_event("SPY", price, k, state)) is not None
    ]
    return crossings, state


def batched(
    prices: Sequence[float],
    sizes: Sequence[int],
    short_n: int = 20,
    long_n: int = 50,
    columnar: bool = False,
    vectorise_from: int | None = None,
) -> tuple[list[Crossing], MovingAverageState]:
    """The same through `process_market_events`, batch by batch (the sizes cover
    the path; the last batch takes what is left)."""
    strategy = MovingAverageCrossoverStrategy(short_period=short_n, long_period=long_n)
    if vectorise_from is not None:
        strategy.vectorise_from = vectorise_from
    state = strategy.new_state("SPY")
    crossings: list[Crossing] = []
    offset = 0
    for size in [*sizes, len(prices)]:
        chunk = list(prices[offset : offset + size])
        if not chunk:
            continue
        column = np.asarray(chunk, dtype=np.float64) if columnar else chunk
        stamps = list(range(offset, offset + len(chunk)))
        for k, intent in strategy.process_market_events("SPY", column, stamps, state):
            assert type(k) is int  # the engine journals it
            crossings.append(_row(offset + k, intent))
        offset += len(chunk)
    assert offset == len(prices)
    return crossings, state


def _row(k: int, intent: SignalIntent) -> Crossing:
    assert type(intent.confidence) is float
    return (k, intent.side, intent.confidence, intent.rationale)


def fingerprint(state: MovingAverageState) -> tuple[object, ...]:
    """Every slot of the state; floats by repr, so NaN equals NaN and -0.0 is not 0.0."""
    return tuple(
        [repr(p) for p in value] if name == "prices" else value
        for name in MovingAverageState.__slots__
        for value in [getattr(state, name)]
    )


# --- the property ------------------------------------------------------------------


@st.composite
def price_paths(draw: st.DrawFn) -> list[float]:
    """Random walks (smooth, noisy, trending), with flat stretches (exact ties),
    prices on a cent grid, extreme-but-valid levels, and now and then a value
    that got past the edge: NaN, inf, 0, negative, subnormal, huge."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 700))
    level = draw(st.sampled_from([0.01, 1.0, 100.0, 5_000.0, 9_000_000.0, numeric.MAX_PRICE]))
    volatility = draw(st.sampled_from([0.0, 0.0005, 0.003, 0.02]))
    flat = draw(st.sampled_from([0.0, 0.05, 0.5]))
    on_a_grid = draw(st.booleans())
    bad = draw(st.sampled_from([0.0, 0.0, 0.01, 0.05]))
    edges = draw(st.sampled_from([0.0, 0.0, 0.05]))
    price, trend, path = level, 0.0, []
    for _ in range(n):
        if rng.random() < 0.02:
            trend = rng.choice((-1, 1)) * rng.uniform(0.0, 0.01)
        if rng.random() >= flat:
            price *= 1 + trend + rng.gauss(0, volatility)
            price = min(max(price, numeric.MIN_PRICE), numeric.MAX_PRICE)
            if on_a_grid:
                price = max(round(price, 2), 0.01)
        value = price
        if rng.random() < edges:
            value = rng.choice(EDGES)
        if rng.random() < bad:
            value = rng.choice(BAD_VALUES)
        path.append(value)
    return path


@st.composite
def splits(draw: st.DrawFn, n: int) -> list[int]:
    """Batch sizes covering n ticks: one a batch, all in one, a fixed size, or
    random boundaries (small and large batches mixed)."""
    kind = draw(st.sampled_from(["one-each", "all", "fixed", "random"]))
    if kind == "one-each":
        return [1] * n
    if kind == "all":
        return [n]
    if kind == "fixed":
        return [draw(st.sampled_from([2, 7, 49, 50, 64, 69, 70, 71, 100, 333]))] * (n + 1)
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    sizes, total = [], 0
    while total < n:
        sizes.append(rng.choice([1, 2, 3, rng.randint(1, 80), rng.randint(60, 400)]))
        total += sizes[-1]
    return sizes


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    path=price_paths(),
    periods=st.sampled_from(PERIODS),
    columnar=st.booleans(),
    vectorise_from=st.sampled_from([None, 1]),
)
def test_any_split_into_batches_gives_the_crossings_and_state_of_tick_by_tick(
    data: st.DataObject,
    path: list[float],
    periods: tuple[int, int],
    columnar: bool,
    vectorise_from: int | None,
) -> None:
    """`vectorise_from=1` sends every batch, even of one tick, through numpy; the
    default sends small ones through the per-tick loop."""
    short_n, long_n = periods
    sizes = data.draw(splits(len(path)), label="sizes")
    expected, expected_state = reference(path, short_n, long_n)

    got, state = batched(path, sizes, short_n, long_n, columnar, vectorise_from)

    assert got == expected
    assert fingerprint(state) == fingerprint(expected_state)


# --- chosen cases ------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[1] * 140, [140], [7, 63, 64, 6], [50, 1, 89]])
@pytest.mark.parametrize("columnar", [False, True])
def test_a_decisive_reversal_buys_once_however_it_is_batched(
    sizes: list[int], columnar: bool
) -> None:
    expected, _ = reference(v_reversal())
    got, _ = batched(v_reversal(), sizes, columnar=columnar, vectorise_from=1)

    [(tick, side, confidence, rationale)] = got
    assert got == expected
    assert side is Side.BUY and confidence > 0.6 and "crossed above" in rationale
    assert 80 < tick < 140


def test_sideways_noise_in_one_batch_crosses_as_often_as_tick_by_tick() -> None:
    path = sideways(n=3000, seed=11)
    expected, _ = reference(path)
    assert len(expected) >= 20
    assert batched(path, [3000])[0] == expected


def test_a_flat_stretch_is_a_tie_that_neither_buys_nor_sells() -> None:
    """A fall to 10.01, 80 ticks flat, a fall again. The float running sums of the
    old implementation differed by rounding on the flat stretch and bought at
    tick 139 and sold at 140; in exact units the flat averages are equal, the side
    is kept, and nothing crosses."""
    path = (
        [round(10.01 + 0.05 * (60 - j), 2) for j in range(60)]
        + [10.01] * 80
        + [round(10.01 - 0.05 * j, 2) for j in range(1, 40)]
    )
    assert reference(path)[0] == []
    assert batched(path, [len(path)])[0] == []
    assert batched(path, [1] * len(path), vectorise_from=1)[0] == []


def test_a_constant_price_never_crosses() -> None:
    path = [0.1] * 500 + [0.3] * 500
    _, state = reference(path)
    assert reference(path)[0] == [] == batched(path, [1000])[0]
    assert state.side == 1  # the step up set the side, silently, and it stayed


@pytest.mark.parametrize("periods", [(20, 50), (60, 100)])
def test_prices_at_the_top_of_the_domain_are_exact_in_batches_of_100_000(
    periods: tuple[int, int],
) -> None:
    """100,000 ticks near MAX_PRICE: the int64 running sum wraps past 2**63 many
    times (1e20 units), and the window sums taken from it are still exact. For
    60/100 the cross products could overflow int64 (2 * 60 * 100 * 1e15 > 2**63),
    so such batches take the exact Python-int path: the same answers."""
    short_n, long_n = periods
    rng = random.Random(5)
    top, path = numeric.MAX_PRICE, []
    price = top
    for _ in range(100_000):
        price = min(top, max(top * 0.999, price * (1 + rng.gauss(0, 0.0002))))
        path.append(price)
    assert sum(round(p * 1e8) for p in path) > 2**63
    expected, expected_state = reference(path, short_n, long_n)
    assert len(expected) > 10

    for sizes in ([100_000], [99_999, 1], [30_000] * 4):
        got, state = batched(path, sizes, short_n, long_n, columnar=True)
        assert got == expected
        assert fingerprint(state) == fingerprint(expected_state)


def test_a_dip_of_a_few_units_at_the_top_of_the_domain_counts_exactly() -> None:
    """At MAX_PRICE a dip of 8 units (8e-8, below what float sums of 1e7 prices
    resolve) sets the side down; the way back up crosses, and the flat top after
    it is a tie that sells nothing."""
    top = numeric.MAX_PRICE
    below = top - 8e-8
    assert price_units(top) - price_units(below) == 8  # type: ignore[operator]
    path = [top] * 60 + [below] * 20 + [top] * 170
    expected, state = reference(path)

    assert [side for _, side, _, _ in expected] == [Side.BUY]
    assert state.sum_long * 20 == state.sum_short * 50  # flat again: a tie
    assert batched(path, [len(path)], vectorise_from=1)[0] == expected
    assert batched(path, [1] * len(path), vectorise_from=1)[0] == expected


@pytest.mark.parametrize("bad", [NAN, INF, -INF, 1e300, 2e7, -2e7])
def test_an_unmeasurable_price_blinds_the_long_window_then_crossing_resumes(bad: float) -> None:
    """While the long window holds a price that is not finite or beyond the
    domain's bound, no crossing is judged (the side is kept); after it, crossings
    resume, batch or no batch."""
    climb = [60 + 0.3 * i for i in range(140)]
    v = [102 - 0.3 * i for i in range(90)] + [75 + 0.5 * i for i in range(80)]
    clean, _ = reference(climb + v)
    path = [*climb[:100], bad, *climb[100:], *v]

    expected, state = reference(path)
    assert state.blind_until == 101 + 50
    assert [(k - 1, side) for k, side, _, _ in expected] == [(k, s) for k, s, _, _ in clean]
    for sizes in ([len(path)], [100, 1, 300], [101, 10, 10]):
        assert batched(path, sizes, vectorise_from=1)[0] == expected


@pytest.mark.parametrize("bad", [0.0, -5.0, 5e-324])
def test_a_zero_negative_or_subnormal_price_is_measured_and_its_crossing_scores_zero(
    bad: float,
) -> None:
    slide = [100 - 0.2 * i for i in range(60)]
    rally = [88 + 1.0 * i for i in range(30)]
    path = [*slide, bad, *rally]
    expected, _ = reference(path)

    [(_, side, confidence, rationale)] = expected
    assert (side, confidence) == (Side.BUY, 0.0) and "cannot be measured" in rationale
    assert batched(path, [len(path)], columnar=True)[0] == expected


def test_an_empty_batch_changes_nothing() -> None:
    strategy = MovingAverageCrossoverStrategy()
    strategy.vectorise_from = 0
    state = strategy.new_state("SPY")
    before = fingerprint(state)
    assert strategy.process_market_events("SPY", np.empty(0), [], state) == []
    assert fingerprint(state) == before


# --- the unit -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("10000000"), places=8))
def test_a_price_with_at_most_8_decimals_is_exactly_that_many_units(price: Decimal) -> None:
    assert price_units(float(price)) == int(price * numeric.PRICE_SCALE)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGES)),
        min_size=1,
        max_size=80,
    )
)
def test_numpy_converts_every_price_as_the_per_tick_rule_does(prices: list[float]) -> None:
    """The same units, element by element, whatever else is in the batch."""
    strategy = MovingAverageCrossoverStrategy(short_period=1, long_period=2)
    strategy.vectorise_from = 1
    state = strategy.new_state("SPY")
    strategy.process_market_events("SPY", prices, [0] * len(prices), state)
    size = len(state.units)
    expected = [u if (u := price_units(p)) is not None else 0 for p in prices[-size:]]
    oldest_first = state.units[state.index :] + state.units[: state.index]
    assert oldest_first == [0] * (size - len(expected)) + expected


def test_the_unit_bound_is_the_domain_s() -> None:
    assert price_units(numeric.MAX_PRICE) == 10**15
    assert price_units(-numeric.MAX_PRICE) == -(10**15)
    assert price_units(numeric.MIN_PRICE) == 10_000
    assert price_units(math.nextafter(numeric.MAX_PRICE, INF)) is None
    assert price_units(NAN) is None and price_units(INF) is None
    assert price_units(5e-324) == 0 and price_units(-0.0) == 0
