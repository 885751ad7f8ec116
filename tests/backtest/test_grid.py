"""A parameter grid: every pair a full backtest; on local processes and on a Dask
cluster, cell for cell the same, and the same as running the pair alone."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from distributed import LocalCluster

from client.backtest.data import load_market_data
from client.backtest.grid import pairs, parse_range, run_grid, write_grid
from client.backtest.runner import BacktestConfig, run_backtest
from tests.backtest.test_backtest_report import write_path

PRICES = [100 + 12 * math.sin(k / 4) + (k % 7) for k in range(160)]


def test_ranges_include_their_stop_and_bad_ones_are_refused() -> None:
    assert parse_range("10:40:5", "--short") == [10, 15, 20, 25, 30, 35, 40]
    assert parse_range("20", "--short") == [20]
    for bad in ("10:5:1", "1:2:0", "a", "0", "1:2"):
        with pytest.raises(ValueError, match="--short"):
            parse_range(bad, "--short")
    assert pairs([2, 5], [3, 5]) == [(2, 3), (2, 5)]


def test_local_and_dask_grids_agree_cell_for_cell(tmp_path: Path) -> None:
    data = load_market_data(write_path(tmp_path, PRICES))
    config = BacktestConfig(short_period=2, long_period=9)
    shorts, longs = [2, 4], [6, 9]
    local = run_grid(data, config, shorts, longs, workers=2)
    assert [(c.short_period, c.long_period) for c in local] == [(2, 6), (2, 9), (4, 6), (4, 9)]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:  # type: ignore[no-untyped-call]
        remote = run_grid(data, config, shorts, longs, cluster=cluster.scheduler_address)
    assert remote == local
    alone = run_backtest(data, BacktestConfig(short_period=4, long_period=9)).summary
    assert local[3].metrics["total_return"] == alone.total_return
    assert local[3].metrics["trades"] == alone.trades
    assert len({c.metrics["total_return"] for c in local}) > 1  # the pairs differ

    files = write_grid(local, "total_return", tmp_path / "grid")
    with files[0].open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["short"], r["long"]) for r in rows] == [
        ("2", "6"),
        ("2", "9"),
        ("4", "6"),
        ("4", "9"),
    ]
    assert float(rows[3]["total_return"]) == alone.total_return
    assert files[1].read_bytes()[:4] == b"\x89PNG"
