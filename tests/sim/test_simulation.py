"""The seeded simulator of the whole core, in the suite: a few thousand random runs
with faults and restarts, every invariant checked after every step (see
tests/sim/simulator.py). A failure names its seed; `python -m tests.sim --seed N`
replays it exactly, and a seed that once failed belongs in REGRESSION_SEEDS.

SIM_SEEDS sets how many seeds this runs (CI: the default); `make soak SEEDS=N`
runs as many as asked outside pytest, printing progress."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from tests.sim.simulator import SimulationFailure, run_seed

SEEDS = int(os.environ.get("SIM_SEEDS", "300"))
STEPS = 30
# Seeds whose replay once diverged: an order refused because the store was down
# ("not sent") is an outcome of the world, not of the input, so the replay's store
# must fail the same flushes. And seeds whose replay diverged because the daily loss
# breaker's trip was journaled as an input (caused_by 0) rather than as an effect of
# the signal that tripped it. Kept, with more steps, as regressions.
REGRESSION_SEEDS = [2, 7, 9, 18, 38, 114, 129]


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    # Refused duplicate reports are logged as warnings by design; thousands of runs
    # would bury a real failure's output.
    caplog.set_level(logging.ERROR)


@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
def test_a_seed_that_once_failed_keeps_every_invariant(seed: int, calendar: Any) -> None:
    stats = run_seed(seed, calendar, STEPS + 10)
    assert stats.steps == STEPS + 10


def test_thousands_of_random_runs_keep_every_invariant(calendar: Any) -> None:
    failures: list[str] = []
    totals = dict.fromkeys(
        ("ticks", "approvals", "orders", "restarts", "outages", "refused", "duplicates"), 0
    )
    for seed in range(SEEDS):
        try:
            stats = run_seed(seed, calendar, STEPS)
        except SimulationFailure as failure:
            failures.append(str(failure))
            if len(failures) >= 3:
                break
            continue
        for name in totals:
            totals[name] += getattr(stats, name)
    assert not failures, "\n\n".join(failures)
    # The runs must exercise what they claim to: trading, faults and restarts.
    assert all(totals[name] > 0 for name in totals), totals
