"""A backtest on a path whose every number can be checked by hand: three round
trips through the real core, risk gate and paper broker, and every metric of the
summary and every file of the report."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from brokers.paper.config import Commission
from client.backtest.data import load_market_data
from client.backtest.report import write_report
from client.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from client.cli import main
from domain.orders import Side
from server.bootstrap import load_calendar
from tests.support.market import MINUTE, SESSION_START

# A 2/3 crossover on this path crosses up at ticks 6, 12 and 18 (110, 115, 120)
# and down at 9, 15 and 22 (100, 96, 130); the down cross at 4 finds nothing to sell.
PRICES = [100, 101, 102, 103, 90, 80, 110, 120, 125, 100, 90, 85, 115, 125, 130, 96, 90, 88]
PRICES += [120, 150, 160, 140, 130]
# Confidence of each up cross (the strategy's score): refused at a 0.6 minimum.
WEAK_BUYS = 2  # at 6 (0.08) and 12 (0.59)

# By hand, no slippage, 0.01 a share with a 1.00 minimum (so 1.00 a fill), 4% of
# equity an entry, floor to whole shares:
#   1. buy 36 (4000 / 110 = 36.4) at 110, sell at 100: -360 - 2 = -362 -> 99,638
#   2. buy 34 (3985.52 / 115 = 34.7) at 115, sell at 96: -646 - 2 = -648 -> 98,990
#   3. buy 32 (3959.60 / 120 = 33.0) at 120, sell at 130: +320 - 2 = +318 -> 99,308
TRADES = [(6, 9, 36, 110, 100, Decimal(-362)), (12, 15, 34, 115, 96, Decimal(-648))]
TRADES += [(18, 22, 32, 120, 130, Decimal(318))]
# Equity after each tick (cash + shares at the tick's price).
EQUITY = [100_000.0] * 6 + [99_999, 100_359, 100_539] + [99_638] * 3
EQUITY += [99_637, 99_977, 100_147] + [98_990] * 3 + [98_989, 99_949, 100_269, 99_629, 99_308]
RISK = "min_confidence = 0\n"


def _stamp(k: int) -> int:
    return int((SESSION_START + k * MINUTE).timestamp()) * 1_000_000_000


def write_path(folder: Path, prices: Sequence[float] = PRICES, name: str = "path.csv") -> Path:
    path = folder / name
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Symbol", "Timestamp", "Close", "Volume"])
        for k, price in enumerate(prices):
            when = SESSION_START + k * MINUTE
            writer.writerow(["ABC", when.isoformat().replace("+00:00", "Z"), price, 100])
    return path


def _run(folder: Path, risk: str = RISK) -> BacktestResult:
    (folder / "risk.toml").write_text(risk)
    config = BacktestConfig(
        short_period=2,
        long_period=3,
        slippage_bps=Decimal(0),
        commission=Commission(Decimal("0.01"), Decimal(0), Decimal("1.00")),
        risk_config=folder / "risk.toml",
        batch_size=5,
    )
    return run_backtest(load_market_data(write_path(folder)), config)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    return _run(tmp_path_factory.mktemp("hand"))


def test_the_three_round_trips_are_the_ones_worked_out_by_hand(result: BacktestResult) -> None:
    assert [(t.entry_ns, t.exit_ns) for t in result.trades] == [
        (_stamp(entry), _stamp(exit)) for entry, exit, *_ in TRADES
    ]
    for trade, (_, _, quantity, entry, exit, pnl) in zip(result.trades, TRADES, strict=True):
        assert trade.side is Side.BUY and not trade.open
        assert trade.quantity == quantity
        assert trade.entry_price == entry and trade.exit_price == exit
        assert trade.fees == Decimal(2)
        assert trade.pnl == pnl


def test_the_equity_curve_is_cash_plus_shares_at_each_tick(result: BacktestResult) -> None:
    assert result.curve.times_ns.tolist() == [_stamp(k) for k in range(len(PRICES))]
    assert result.curve.equity.tolist() == pytest.approx(EQUITY, abs=1e-9)
    assert result.core_equity == Decimal(99_308)  # the core's own books agree
    assert result.curve.benchmark[-1] == pytest.approx(100_000 / 100 * 130)


def test_every_metric_of_the_summary(result: BacktestResult) -> None:
    s = result.summary
    assert s.final_equity == 99_308
    assert s.total_return == pytest.approx(99_308 / 100_000 - 1)
    years = (len(PRICES) - 1) * 60 / (365.25 * 86_400)
    assert s.annualised_return is None  # 22 minutes: too short to annualise
    assert s.trades == 3 and s.open_trades == 0
    assert s.win_rate == pytest.approx(1 / 3)
    assert s.average_win == 318 and s.average_loss == (-362 - 648) / 2
    assert s.fees == 6
    # Positions open over the intervals after ticks 6-8, 12-14 and 18-21: 10 of 22.
    assert s.exposure == pytest.approx(10 / 22)
    traded = 36 * (110 + 100) + 34 * (115 + 96) + 32 * (120 + 130)
    assert s.turnover == pytest.approx(traded / np.mean(EQUITY))
    assert s.buy_and_hold_return == pytest.approx(0.30)
    # The peak is 100,539 after tick 8, the trough 98,989 after the buy at 18.
    dd = s.max_drawdown
    assert dd.depth == pytest.approx(98_989 / 100_539 - 1)
    assert (dd.peak_ns, dd.trough_ns, dd.recovered_ns) == (_stamp(8), _stamp(18), None)
    returns = np.diff(EQUITY) / np.array(EQUITY[:-1])
    per_year = 22 / years
    assert s.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(per_year))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0) ** 2)))
    assert s.sortino == pytest.approx(returns.mean() / downside * math.sqrt(per_year))
    assert (s.signals, s.rejected, s.rejected_by_code) == (6, 0, {})
    assert result.audit.ok and result.audit.checked > 0


def test_refused_signals_are_counted_by_reason_and_never_traded(tmp_path: Path) -> None:
    result = _run(tmp_path, risk="min_confidence = 0.6\n")
    s = result.summary
    # The weak buys are refused, so their sells have nothing to sell: only trade 3.
    assert (s.signals, s.rejected) == (2 + WEAK_BUYS, WEAK_BUYS)
    assert s.rejected_by_code == {"CONFIDENCE_BELOW_MINIMUM": WEAK_BUYS}
    assert [(t.entry_ns, t.exit_ns, t.quantity) for t in result.trades] == [
        (_stamp(18), _stamp(22), Decimal(33))  # 4% of 100,000 at 120: 33 shares
    ]
    refused = [d for d in result.decisions if not d.approved]
    assert [d.at_ns for d in refused] == [_stamp(6), _stamp(12)]


def test_the_report_files(result: BacktestResult, tmp_path: Path) -> None:
    files = {p.name: p for p in write_report(result, tmp_path / "out")}
    assert set(files) == {
        "trades.csv",
        "equity.csv",
        "equity.png",
        "price-ABC.png",
        "report.html",
    }
    with files["trades.csv"].open() as f:
        trades = list(csv.DictReader(f))
    assert [(r["entry_price"], r["exit_price"], r["pnl"], r["fees"]) for r in trades] == [
        ("110.0000", "100.0000", "-362.0000", "2.00"),
        ("115.0000", "96.0000", "-648.0000", "2.00"),
        ("120.0000", "130.0000", "318.0000", "2.00"),
    ]
    assert trades[0]["entry_time"] == (SESSION_START + 6 * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ")
    with files["equity.csv"].open() as f:
        equity = [float(r["equity"]) for r in csv.DictReader(f)]
    assert equity == pytest.approx(EQUITY)
    for name in ("equity.png", "price-ABC.png"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files["report.html"].read_text()
    assert page.count("data:image/png;base64,") == 2  # self-contained
    assert "-0.69%" in page and "CONFIDENCE_BELOW_MINIMUM" not in page


def test_tradectl_backtest_prints_the_summary_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_path(tmp_path)
    (tmp_path / "risk.toml").write_text(RISK)
    common = ["--short", "2", "--long", "3", "--slippage-bps", "0", "--risk-config"]
    common += [str(tmp_path / "risk.toml"), "--commission-per-share", "0.01"]
    common += ["--commission-minimum", "1"]
    assert main(["backtest", str(data), *common, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "Total return" in printed and "-0.69%" in printed
    assert f"wrote {tmp_path / 'out' / 'report.html'}" in printed
    assert main(["--json", "backtest", str(data), *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["final_equity"] == 99_308 and summary["trades"] == 3
    assert summary["audit_verified"] is True


def test_an_empty_database_can_keep_the_log_and_a_used_one_is_refused(tmp_path: Path) -> None:
    data = load_market_data(write_path(tmp_path))
    url = f"sqlite:///{tmp_path / 'backtest.db'}"
    config = BacktestConfig(short_period=2, long_period=3, database_url=url)
    first = run_backtest(data, config)
    assert first.audit.ok and first.audit.checked > 0
    with pytest.raises(ValueError, match="already holds an audit log"):
        run_backtest(data, config)


def test_a_split_fill_and_a_trade_open_at_the_end(tmp_path: Path) -> None:
    # Stop before the last down cross: trade 3 is still open, marked at 130.
    data = load_market_data(write_path(tmp_path, PRICES[:-1]))
    (tmp_path / "risk.toml").write_text(RISK)
    config = BacktestConfig(
        short_period=2, long_period=3, slippage_bps=Decimal(0), risk_config=tmp_path / "risk.toml"
    )
    result = run_backtest(data, config)
    *closed, last = result.trades
    assert len(closed) == 2 and last.open and last.exit_ns is None
    assert last.pnl == (140 - 120) * last.quantity
    assert result.summary.trades == 2 and result.summary.open_trades == 1


def test_daily_bars_of_a_date_alone_trade_inside_the_session(tmp_path: Path) -> None:
    path = tmp_path / "SPY.csv"
    calendar = load_calendar()
    days = [d.date() for d in calendar.sessions_in_range("2024-01-02", "2024-03-28")]
    rows = ["Date,Close"] + [
        f"{day.isoformat()},{100 + 10 * math.sin(i / 3):.2f}" for i, day in enumerate(days)
    ]
    path.write_text("\n".join(rows) + "\n")
    data = load_market_data(path)
    assert data.symbol_names == ["SPY"]  # from the file name
    result = run_backtest(data, BacktestConfig(short_period=2, long_period=5))
    codes = result.summary.rejected_by_code
    assert "MARKET_CLOSED" not in codes and "OUTSIDE_MARKET_HOURS" not in codes
    assert result.summary.signals > 0
