"""A parameter grid: the same backtest for every (short, long) pair, every cell a
full run through the risk gate, on all cores of this machine, or on a Dask
cluster when one is named (`--cluster tcp://scheduler:8786`). A cell's result
does not depend on where it ran: each is its own fresh core, so the local run and
the cluster's agree cell for cell.

Ranges are START:STOP:STEP with STOP included (``10:40:5`` is 10, 15, ..., 40),
or one number. Pairs with short >= long are skipped.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from client.backtest.data import MarketData
from client.backtest.runner import BacktestConfig, run_backtest

METRICS: Final = (
    "total_return",
    "annualised_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "trades",
    "exposure",
    "turnover",
    "fees",
)


def parse_range(text: str, what: str) -> list[int]:
    """'10:40:5' -> [10, 15, ..., 40]; '20' -> [20]. ValueError, naming `what`."""
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{what} {text!r}: use N or START:STOP:STEP") from None
    if len(numbers) == 1:
        values = numbers
    elif len(numbers) == 3 and numbers[2] > 0 and numbers[0] <= numbers[1]:
        start, stop, step = numbers
        values = list(range(start, stop + 1, step))
    else:
        raise ValueError(f"{what} {text!r}: use N or START:STOP:STEP, STEP > 0, START <= STOP")
    if min(values) < 1:
        raise ValueError(f"{what} {text!r}: periods start at 1")
    return values


@dataclass(frozen=True, slots=True)
class Cell:
    short_period: int
    long_period: int
    metrics: dict[str, float | None]


def pairs(shorts: Sequence[int], longs: Sequence[int]) -> list[tuple[int, int]]:
    return [(s, n) for s in shorts for n in longs if s < n]


def run_cell(data: MarketData, config: BacktestConfig, short: int, long: int) -> Cell:
    """One backtest of the grid (module-level, so that processes and Dask can ship it)."""
    result = run_backtest(data, replace(config, short_period=short, long_period=long))
    s = result.summary
    metrics: dict[str, float | None] = {
        "total_return": s.total_return,
        "annualised_return": s.annualised_return,
        "sharpe": s.sharpe,
        "sortino": s.sortino,
        "max_drawdown": s.max_drawdown.depth,
        "win_rate": s.win_rate,
        "trades": float(s.trades),
        "exposure": s.exposure,
        "turnover": s.turnover,
        "fees": s.fees,
    }
    return Cell(short, long, metrics)


def run_grid(
    data: MarketData,
    config: BacktestConfig,
    shorts: Sequence[int],
    longs: Sequence[int],
    *,
    cluster: str | None = None,
    workers: int | None = None,
    done: Callable[[int, int], None] | None = None,
) -> list[Cell]:
    """Every pair's cell, in (short, long) order. `cluster`: a Dask scheduler address."""
    if config.database_url is not None:
        raise ValueError("a grid keeps each cell's audit log in memory: drop the database")
    todo = pairs(shorts, longs)
    if not todo:
        raise ValueError("no pair with short < long in the grid")
    if cluster is not None:
        return _on_dask(data, config, todo, cluster, done)
    cells: list[Cell] = []
    # Spawned, not forked: a fork of a process with threads (a gRPC client, a progress
    # bar) may copy a held lock; the children import the core once each.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=spawn) as pool:
        futures = [pool.submit(run_cell, data, config, s, n) for s, n in todo]
        for future in futures:
            cells.append(future.result())
            if done is not None:
                done(len(cells), len(todo))
    return cells


def _on_dask(
    data: MarketData,
    config: BacktestConfig,
    todo: list[tuple[int, int]],
    address: str,
    done: Callable[[int, int], None] | None,
) -> list[Cell]:
    from distributed import Client, as_completed

    with Client(address, timeout="10s") as client:  # type: ignore[no-untyped-call]
        shared = client.scatter(data, broadcast=True)
        futures = [client.submit(run_cell, shared, config, s, n, pure=False) for s, n in todo]
        for finished, _ in enumerate(as_completed(futures), start=1):  # type: ignore[no-untyped-call]
            if done is not None:
                done(finished, len(todo))
        cells: list[Cell] = client.gather(futures)
    return cells


def write_grid(cells: Sequence[Cell], metric: str, out: Path) -> list[Path]:
    """grid.csv (every metric of every cell) and heatmap.png (one metric)."""
    out.mkdir(parents=True, exist_ok=True)
    table = out / "grid.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("short", "long", *METRICS))
        for c in cells:
            writer.writerow(
                (
                    c.short_period,
                    c.long_period,
                    *("" if c.metrics[m] is None else c.metrics[m] for m in METRICS),
                )
            )
    return [table, _heatmap(cells, metric, out / "heatmap.png")]


def _heatmap(cells: Sequence[Cell], metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shorts = sorted({c.short_period for c in cells})
    longs = sorted({c.long_period for c in cells})
    grid = np.full((len(shorts), len(longs)), np.nan)
    for c in cells:
        value = c.metrics[metric]
        grid[shorts.index(c.short_period), longs.index(c.long_period)] = (
            np.nan if value is None else value
        )
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(longs), 1.2 + 0.45 * len(shorts)))
    image: Any = ax.imshow(grid, cmap="RdYlGn", aspect="auto", origin="lower")
    ax.set_xticks(range(len(longs)), [str(n) for n in longs])
    ax.set_yticks(range(len(shorts)), [str(s) for s in shorts])
    ax.set_xlabel("long period")
    ax.set_ylabel("short period")
    ax.set_title(metric.replace("_", " "))
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
