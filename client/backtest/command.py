"""`tradectl backtest`: the arguments, the progress bar and the printed summary.

Offline: it needs no service and no token. Exit status 0 when the backtest ran
(whatever it earned), 2 for a bad file or argument (one line on stderr, naming the
file's line where there is one), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, TextIO

from client.progress import progress_bar

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 2


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="CSV or Parquet file (see `--help` epilog)")
    parser.add_argument(
        "--short", default="20", help="short MA period, or a range START:STOP:STEP for a grid"
    )
    parser.add_argument(
        "--long", default="50", help="long MA period, or a range START:STOP:STEP for a grid"
    )
    parser.add_argument(
        "--columns",
        default="",
        help="map the file's column names: timestamp=Date,symbol=Ticker,price=Close,volume=Volume",
    )
    parser.add_argument("--symbol", help="the symbol of a file without a symbol column")
    parser.add_argument(
        "--timezone", help="the zone of time stamps without an offset (America/New_York, ...)"
    )
    parser.add_argument("--out", type=Path, help="write the report's files into this folder")
    parser.add_argument("--cash", type=_decimal, default=Decimal(100_000), help="starting cash")
    parser.add_argument(
        "--slippage-bps", type=_decimal, default=Decimal(5), help="paper fills' slippage (bps)"
    )
    parser.add_argument(
        "--commission-per-share", type=_decimal, default=Decimal(0), help="fee per share"
    )
    parser.add_argument(
        "--commission-bps", type=_decimal, default=Decimal(0), help="fee in bps of notional"
    )
    parser.add_argument(
        "--commission-minimum", type=_decimal, default=Decimal(0), help="least fee per fill"
    )
    parser.add_argument(
        "--fraction", type=_decimal, help="share of equity one entry buys (service default)"
    )
    parser.add_argument("--risk-config", type=Path, help="TOML file of risk limits")
    parser.add_argument(
        "--database-url", help="keep the audit log in this (empty) database; default: memory"
    )
    parser.add_argument(
        "--batch", type=int, default=10_000, help="ticks per market-data message (%(default)s)"
    )
    parser.add_argument(
        "--metric",
        default="sharpe",
        help="the grid's heatmap metric: total_return, annualised_return, sharpe (default), "
        "sortino, max_drawdown, win_rate, trades, exposure, turnover, fees",
    )
    parser.add_argument("--cluster", help="run a grid on this Dask scheduler (tcp://host:8786)")
    parser.add_argument("--workers", type=int, help="local processes for a grid (all cores)")


def run_backtest_command(args: argparse.Namespace, out: TextIO, as_json: bool) -> int:
    # Imported here, not at the top: tradectl's other commands need none of it.
    from client.backtest.data import DataError

    try:
        return _run(args, out, as_json)
    except (DataError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED


def _run(args: argparse.Namespace, out: TextIO, as_json: bool) -> int:
    from brokers.paper.config import Commission
    from client.backtest.data import load_market_data, parse_columns
    from client.backtest.grid import METRICS, parse_range, run_grid, write_grid
    from client.backtest.report import write_report
    from client.backtest.runner import BacktestConfig, run_backtest

    if args.metric not in METRICS:
        raise ValueError(f"--metric {args.metric!r}: one of {', '.join(METRICS)}")
    shorts, longs = parse_range(args.short, "--short"), parse_range(args.long, "--long")
    grid = len(shorts) > 1 or len(longs) > 1
    if (args.cluster or args.workers) and not grid:
        raise ValueError("--cluster and --workers are for a grid: give --short or --long a range")
    data = load_market_data(
        args.data,
        columns=parse_columns(args.columns),
        symbol=args.symbol,
        timezone=args.timezone,
    )
    config = BacktestConfig(
        short_period=shorts[0],
        long_period=longs[-1] if grid else longs[0],
        starting_cash=args.cash,
        slippage_bps=args.slippage_bps,
        commission=Commission(
            args.commission_per_share, args.commission_bps, args.commission_minimum
        ),
        sizing_fraction=args.fraction,
        risk_config=args.risk_config,
        database_url=args.database_url,
        batch_size=args.batch,
    )
    if grid:
        with progress_bar("grid cells") as advance:
            cells = run_grid(
                data,
                config,
                shorts,
                longs,
                cluster=args.cluster,
                workers=args.workers,
                done=advance,
            )
        files = write_grid(cells, args.metric, args.out) if args.out else []
        if as_json:
            rows = [{"short": c.short_period, "long": c.long_period, **c.metrics} for c in cells]
            print(json.dumps({"cells": rows, "files": [str(f) for f in files]}), file=out)
        else:
            _print_grid(cells, args.metric, out)
            print_files(files, out)
        return EXIT_OK
    with progress_bar("ticks") as advance:
        result = run_backtest(data, config, progress=advance)
    files = write_report(result, args.out) if args.out else []
    if as_json:
        summary = result.summary.as_dict()
        summary["config"] = config.describe()
        summary["files"] = [str(f) for f in files]
        summary["audit_verified"] = result.audit.ok
        print(json.dumps(summary, default=str), file=out)
        return EXIT_OK
    print_summary(result.summary, data.symbol_names, out)
    print_files(files, out)
    return EXIT_OK


def print_summary(summary: Any, symbols: list[str], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    from client.backtest.report import summary_rows

    table = Table(title=f"Backtest: {', '.join(symbols)}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in summary_rows(summary):
        table.add_row(label, value)
    Console(file=out, width=110).print(table)


def _print_grid(cells: list[Any], metric: str, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    longs = sorted({c.long_period for c in cells})
    table = Table(title=f"{metric.replace('_', ' ')} by short (rows) x long (columns)")
    table.add_column("short")
    for n in longs:
        table.add_column(str(n), justify="right")
    for short in sorted({c.short_period for c in cells}):
        mine = {c.long_period: c.metrics[metric] for c in cells if c.short_period == short}
        table.add_row(
            str(short),
            *(
                "" if n not in mine else "n/a" if mine[n] is None else f"{mine[n]:.3f}"
                for n in longs
            ),
        )
    Console(file=out, width=200).print(table)


def print_files(files: list[Path], out: TextIO) -> None:
    for path in files:
        print(f"wrote {path}", file=out)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be finite and 0 or more")
    return value
