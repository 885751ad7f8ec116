"""Backtests: bars/s through the whole core (crossover, sizing, the risk gate, paper
fills, the in-memory audit chain) on one symbol, the cost of one signal, and the
time from a cold `tradectl backtest` to its summary.

Two paths (`BARS` bars, a fifth of that for the walk), stamped `STEP_NS` apart
inside one regular NYSE session (the event clock judges market hours by them, so
signals are approved, sized and filled): a seeded random walk, on which a 20/50
crossover crosses on about 2% of ticks, and a slow sine with a little noise, on
which it crosses rarely (about 0.1%). The risk limits are opened up (rates, repeats,
the daily loss breaker) so that crossings trade rather than pile up as refusals;
confidence still refuses the weak ones, as it would live. Each figure is the best of
`ROUNDS`.

The signal cost is measured as engines' own cost: a hand-made signal published
through the core on the in-memory store, refused (its signal and decision rows)
or approved (signal, decision, the order's intent, acceptance and fill).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from client.backtest.data import MarketData
from client.backtest.runner import BacktestConfig, run_backtest
from domain.orders import Side
from server.bootstrap import load_calendar
from tests.bench.bench_stream import RELAXED_RISK
from tests.core.harness import Harness, make_harness
from tests.support.market import SESSION_START

Out = Callable[[str], None]

BARS: Final = 1_000_000
STEP_NS: Final = 20_000_000  # 20 ms: a million bars in 5.6 hours of one session
ROUNDS: Final = 2
SIGNALS: Final = 2_000


def _path(kind: str) -> MarketData:
    rng = np.random.default_rng(7)
    bars = BARS // 5 if kind == "walk" else BARS  # its crossings bind: a fifth suffices
    k = np.arange(bars)
    if kind == "walk":
        prices = 100 * np.exp(np.cumsum(rng.normal(0, 4e-4, bars)))
    else:
        prices = 100 + 5 * np.sin(k / 4000) + rng.normal(0, 0.002, bars)
    start = int(SESSION_START.timestamp()) * 1_000_000_000
    return MarketData(
        np.full(bars, "SPY", dtype=object),
        (start + k * STEP_NS).astype(np.int64),
        prices.astype(np.float64),
        np.full(bars, 100.0),
    )


def _bars_per_second(data: MarketData, risk: Path) -> tuple[float, int, int]:
    config = BacktestConfig(risk_config=risk, batch_size=10_000)
    best = math.inf
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = run_backtest(data, config)
        best = min(best, time.perf_counter() - started)
    return len(data) / best, result.summary.signals, len(result.fills)


def _signal_cost(harness: Harness, approved: bool) -> float:
    """Microseconds per signal, best of ROUNDS batches of SIGNALS."""
    best = math.inf
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(SIGNALS):
            harness.signal(
                symbol="SPY",
                side=Side.BUY if i % 2 == 0 else Side.SELL,
                quantity="1",
                price="100",
                confidence=0.9 if approved else 0.1,
            )
        best = min(best, time.perf_counter() - started)
    return best / SIGNALS * 1e6


def _cold_start(folder: Path) -> float:
    data = folder / "small.csv"
    lines = ["symbol,timestamp,price"]
    for i in range(300):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SESSION_START.timestamp() + 60 * i))
        lines.append(f"SPY,{stamp},{100 + 3 * math.sin(i / 7):.4f}")
    data.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "client.cli", "--json", "backtest", str(data)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def run(out: Out) -> None:
    out("== backtest: one symbol, full gate, paper fills, memory audit ==")
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as folder:
        risk = Path(folder) / "risk.toml"
        risk.write_text(RELAXED_RISK)
        for kind, label in (("walk", "random walk (~2% crossings)"), ("sine", "rare crossings")):
            data = _path(kind)
            rate, signals, fills = _bars_per_second(data, risk)
            out(
                f"  {label:<28} {rate:>12,.0f} bars/s   {len(data):,} bars, signals "
                f"{signals:,} ({signals / len(data):.2%} of bars), fills {fills:,}"
            )
        out(f"  cold start to summary        {_cold_start(Path(folder)):>12.2f} s  (300 bars)")
    harness = make_harness(load_calendar())
    out(f"  one signal, refused          {_signal_cost(harness, False):>12.1f} µs")
    harness = make_harness(load_calendar())
    out(f"  one signal, approved+filled  {_signal_cost(harness, True):>12.1f} µs")
