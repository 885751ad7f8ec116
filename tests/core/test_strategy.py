"""The moving-average crossover: what it signals, how sure it is, and that batching
never changes the answer."""

from __future__ import annotations

import random

import pytest

from domain.orders import Side
from engines.strategy.base import SignalIntent
from engines.strategy.ma_crossover import MovingAverageCrossoverStrategy
from tests.support.market import sideways, v_reversal


def run(prices: list[float], **params: object) -> list[tuple[int, SignalIntent]]:
    strategy = MovingAverageCrossoverStrategy(**params)  # type: ignore[arg-type]
    state = strategy.new_state("SPY")
    return [
        (k, intent)
        for k, price in enumerate(prices)
        if (intent := strategy.process_market_event("SPY", price, k, state)) is not None
    ]


def test_a_decisive_reversal_buys_once_with_high_confidence() -> None:
    [(tick, intent)] = run(v_reversal())

    assert intent.side is Side.BUY
    assert intent.confidence > 0.6
    assert 80 < tick < 140
    assert "crossed above" in intent.rationale


@pytest.mark.parametrize("seed", range(5))
def test_a_noisy_but_real_reversal_still_clears_the_bar(seed: int) -> None:
    rng = random.Random(seed)
    prices = [p * (1 + rng.gauss(0, 0.003)) for p in v_reversal()]

    buys = [i for _, i in run(prices) if i.side is Side.BUY]
    assert max(i.confidence for i in buys) > 0.6


@pytest.mark.parametrize("seed", range(5))
def test_sideways_noise_crosses_often_but_scores_below_the_bar(seed: int) -> None:
    crossings = run(sideways(seed=seed))

    assert len(crossings) >= 5
    assert max(i.confidence for _, i in crossings) < 0.6


def test_nothing_is_signalled_before_the_long_average_exists() -> None:
    assert run(v_reversal()[:49]) == []


def test_batches_give_exactly_the_answers_of_tick_by_tick() -> None:
    rng = random.Random(3)
    prices = [100 * (1 + rng.gauss(0, 0.01)) for _ in range(2000)]
    expected = run(prices)
    strategy = MovingAverageCrossoverStrategy()
    state = strategy.new_state("SPY")
    got: list[tuple[int, SignalIntent]] = []
    offset = 0
    for size in [1, 7, 500, 3, 1000, 489]:
        chunk = prices[offset : offset + size]
        got += [
            (offset + k, i)
            for k, i in strategy.process_market_events("SPY", chunk, [0] * size, state)
        ]
        offset += size

    assert got == expected


def test_periods_are_validated() -> None:
    with pytest.raises(ValueError, match="short_period < long_period"):
        MovingAverageCrossoverStrategy(short_period=50, long_period=20)
