"""A backtest's files: trades and equity as CSV, pictures as PNG, and one
self-contained HTML report (the summary and the pictures inlined) to open or send.

    DIR/trades.csv        one row per round trip (client/backtest/trades.py)
    DIR/equity.csv        one row per curve point: time, equity, cash, invested,
                          buy and hold, drawdown
    DIR/equity.png        equity and buy and hold over time, drawdown below
    DIR/price-SYMBOL.png  price with both moving averages, fills as markers
                          (buys ^, sells v), signals the risk gate refused as x
    DIR/report.html       the summary, the settings, the pictures

Long series are thinned for drawing only (every k-th point, and the last), so a
million bars draw in a second; the CSVs keep every point.
"""

from __future__ import annotations

import base64
import csv
import html
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from client.backtest.metrics import Summary, rejected_codes
from client.backtest.runner import BacktestResult
from client.backtest.trades import RoundTrip
from domain.orders import Side

MAX_PLOT_POINTS: Final = 4000
MAX_PRICE_CHARTS: Final = 8
_FOUR: Final = Decimal("0.0001")
TRADE_COLUMNS: Final = (
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "fees",
    "open",
)


def iso(ns: int | None) -> str:
    """A time in ns as ISO 8601 UTC to the second; '' for none."""
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary as (label, value) for a person: the terminal table and the HTML."""
    dd = summary.max_drawdown

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.2%}"

    def num(x: float | None, digits: int = 2) -> str:
        return "n/a" if x is None else f"{x:,.{digits}f}"

    recovered = iso(dd.recovered_ns) or "not recovered"
    return [
        ("Period", f"{iso(summary.start_ns)} to {iso(summary.end_ns)} ({summary.points} points)"),
        ("Starting cash", num(summary.starting_cash)),
        ("Final equity", num(summary.final_equity)),
        ("Total return", pct(summary.total_return)),
        ("Annualised return", pct(summary.annualised_return)),
        ("Buy and hold", pct(summary.buy_and_hold_return)),
        (
            "Max drawdown",
            f"{dd.depth:.2%} (peak {iso(dd.peak_ns)}, trough {iso(dd.trough_ns)}, {recovered})",
        ),
        ("Sharpe ratio", num(summary.sharpe)),
        ("Sortino ratio", num(summary.sortino)),
        ("Trades (closed)", f"{summary.trades} (+{summary.open_trades} open)"),
        ("Win rate", "n/a" if summary.win_rate is None else f"{summary.win_rate:.1%}"),
        ("Average win", num(summary.average_win)),
        ("Average loss", num(summary.average_loss)),
        ("Exposure", f"{summary.exposure:.1%}"),
        ("Turnover", f"{summary.turnover:.2f}x"),
        ("Fees paid", num(summary.fees)),
        ("Signals", f"{summary.signals} ({summary.rejected} refused by risk)"),
        ("Refused by reason", rejected_codes(summary.rejected_by_code)),
    ]


def write_report(result: BacktestResult, out: Path) -> list[Path]:
    """Write every file into `out` (made if missing); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [_write_trades(result, out / "trades.csv"), _write_equity(result, out / "equity.csv")]
    pictures = [_draw_equity(result, out / "equity.png")]
    for symbol in result.data.symbol_names[:MAX_PRICE_CHARTS]:
        pictures.append(_draw_prices(result, symbol, out / f"price-{_file_safe(symbol)}.png"))
    written += pictures
    written.append(_write_html(result, pictures, out / "report.html"))
    return written


def _file_safe(symbol: str) -> str:
    return symbol.replace("/", "_")


def _trade_cells(t: RoundTrip) -> list[str]:
    """One round trip as the CSV and the HTML table show it (TRADE_COLUMNS)."""
    exit_price = "" if t.exit_price is None else str(t.exit_price.quantize(_FOUR))
    return [
        t.symbol,
        "long" if t.side is Side.BUY else "short",
        str(t.quantity),
        iso(t.entry_ns),
        str(t.entry_price.quantize(_FOUR)),
        iso(t.exit_ns),
        exit_price,
        str(t.pnl.quantize(_FOUR)),
        str(t.fees),
        "yes" if t.open else "no",
    ]


def _write_trades(result: BacktestResult, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TRADE_COLUMNS)
        writer.writerows(_trade_cells(t) for t in result.trades)
    return path


def _write_equity(result: BacktestResult, path: Path) -> Path:
    curve = result.curve
    drawdown = curve.equity / np.maximum.accumulate(curve.equity) - 1.0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("time", "equity", "cash", "invested", "buy_and_hold", "drawdown"))
        for i in range(len(curve)):
            writer.writerow(
                (
                    iso(int(curve.times_ns[i])),
                    f"{curve.equity[i]:.4f}",
                    f"{curve.cash[i]:.4f}",
                    f"{curve.invested[i]:.4f}",
                    f"{curve.benchmark[i]:.4f}",
                    f"{drawdown[i]:.6f}",
                )
            )
    return path


def _thin(n: int) -> npt.NDArray[np.intp]:
    """Indices of at most MAX_PLOT_POINTS points, the last included."""
    if n <= MAX_PLOT_POINTS:
        return np.arange(n)
    step = math.ceil(n / MAX_PLOT_POINTS)
    return np.unique(np.append(np.arange(0, n, step), n - 1))


def _dates(ns: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    return ns.astype("datetime64[ns]")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt

    return plt


def _draw_equity(result: BacktestResult, path: Path) -> Path:
    plt = _pyplot()
    curve = result.curve
    keep = _thin(len(curve))
    when = _dates(curve.times_ns[keep])
    drawdown = curve.equity / np.maximum.accumulate(curve.equity) - 1.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(when, curve.equity[keep], label="strategy", color="tab:blue", linewidth=1.2)
    top.plot(when, curve.benchmark[keep], label="buy and hold", color="tab:gray", linewidth=1)
    top.set_ylabel("equity")
    top.set_title(
        f"Equity: strategy {result.summary.total_return:+.1%}, "
        f"buy and hold {result.summary.buy_and_hold_return:+.1%}"
    )
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.fill_between(when, drawdown[keep] * 100, 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _moving_average(prices: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """The n-tick simple moving average, NaN until n ticks are known."""
    averages = np.full(len(prices), np.nan)
    if len(prices) >= n:
        sums = np.cumsum(np.insert(prices, 0, 0.0))
        averages[n - 1 :] = (sums[n:] - sums[:-n]) / n
    return averages


def _draw_prices(result: BacktestResult, symbol: str, path: Path) -> Path:
    plt = _pyplot()
    stamps, prices = result.data.of(symbol)
    config = result.config
    keep = _thin(len(prices))
    fig, ax = plt.subplots(figsize=(10, 5))
    when = _dates(stamps[keep])
    ax.plot(when, prices[keep], color="black", linewidth=0.8, label=symbol)
    for n, colour in ((config.short_period, "tab:orange"), (config.long_period, "tab:purple")):
        ax.plot(when, _moving_average(prices, n)[keep], color=colour, linewidth=1, label=f"MA {n}")
    for side, marker, colour in ((Side.BUY, "^", "tab:green"), (Side.SELL, "v", "tab:red")):
        mine = [f for f in result.fills if f.symbol == symbol and f.side is side]
        if mine:
            ax.scatter(
                _dates(np.array([f.at_ns for f in mine], dtype=np.int64)),
                [float(f.price) for f in mine],
                marker=marker,
                color=colour,
                s=50,
                zorder=3,
                label=f"{side.value.lower()} (filled)",
            )
    refused = [d for d in result.decisions if d.symbol == symbol and not d.approved]
    if refused:
        ax.scatter(
            _dates(np.array([d.at_ns for d in refused], dtype=np.int64)),
            [float(d.price) for d in refused],
            marker="x",
            color="tab:gray",
            s=30,
            zorder=3,
            label="refused by risk",
        )
    ax.set_title(f"{symbol}: MA {config.short_period}/{config.long_period} crossover")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _write_html(result: BacktestResult, pictures: list[Path], path: Path) -> Path:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in summary_rows(result.summary)
    )
    settings = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in result.config.describe().items()
    )
    images = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode("ascii")}"></figure>'
        for p in pictures
    )
    trades = "".join(_trade_rows(result))
    header = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in TRADE_COLUMNS)
    audit = result.audit
    verified = (
        f"{audit.checked} records, hash chain verified"
        if audit.ok
        else f"hash chain BROKEN at seq {audit.first_bad_seq}: {audit.reason}"
    )
    path.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backtest: {html.escape(", ".join(result.data.symbol_names))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1050px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Backtest of {html.escape(result.data.source or "data")}</h1>
<p>{len(result.data):,} ticks of {html.escape(", ".join(result.data.symbol_names))};
audit log: {html.escape(verified)}.</p>
<h2>Summary</h2><table>{rows}</table>
{images}
<h2>Settings</h2><table>{settings}</table>
<h2>Trades</h2><table><tr>{header}</tr>{trades}</table>
</body></html>
""",
        encoding="utf-8",
    )
    return path


def _trade_rows(result: BacktestResult) -> Iterator[str]:
    for t in result.trades:
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in _trade_cells(t))
        yield f"<tr>{cells}</tr>"
