"""The summary of a backtest: what a person reads at a glance.

Definitions (the README repeats them):

* total return: final equity / starting cash - 1; annualised: compounded over the
  calendar time the data spans (365.25-day years), none for a span under a day.
* max drawdown: the deepest fall of equity from its running peak, as a fraction of
  the peak, with the peak's and the trough's times, and when equity first regained
  the peak (none if it never did).
* Sharpe and Sortino: over the returns from one curve point to the next, with a
  risk-free rate of 0, annualised by the number of points per year the data has
  (about 252 for daily bars). Sharpe divides the mean by the standard deviation
  (ddof 1), Sortino by the downside deviation (the root mean square of the
  negative returns, zeros for the rest). None when undefined (a flat curve).
* trades, win rate, average win and loss: over closed round trips (trades.py),
  after fees; a trade at exactly 0 counts as neither a win nor a loss.
* exposure: the share of curve intervals during which any position was open.
* turnover: the money traded (every fill's quantity times price) over the average
  equity: 2.0 means the book changed hands about once over the run.
* buy and hold: curve.py's benchmark, over the same data.
* rejected: the risk gate's refusals, by reason code (a signal refused by two rules
  counts under both), beside the total of signals and of refused signals.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from client.backtest.curve import EquityCurve
from client.backtest.trades import Fill, RoundTrip

_YEAR_NS = 365.25 * 24 * 3600 * 1e9
_DAY_NS = 24 * 3600 * 1e9


@dataclass(frozen=True, slots=True)
class Drawdown:
    depth: float  # a fraction, <= 0
    peak_ns: int
    trough_ns: int
    recovered_ns: int | None


@dataclass(frozen=True, slots=True)
class Summary:
    starting_cash: float
    final_equity: float
    total_return: float
    annualised_return: float | None
    max_drawdown: Drawdown
    sharpe: float | None
    sortino: float | None
    trades: int
    open_trades: int
    win_rate: float | None
    average_win: float | None
    average_loss: float | None
    exposure: float
    turnover: float
    fees: float
    buy_and_hold_return: float
    signals: int
    rejected: int
    rejected_by_code: dict[str, int]
    start_ns: int
    end_ns: int
    points: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(
    curve: EquityCurve,
    fills: Sequence[Fill],
    trips: Sequence[RoundTrip],
    signals: int,
    rejections: Iterable[Sequence[str]],
    starting_cash: Decimal,
) -> Summary:
    """`rejections`: the failing rules' codes of each refused signal."""
    equity = curve.equity
    start = float(starting_cash)
    final = float(equity[-1])
    span_ns = float(curve.times_ns[-1] - curve.times_ns[0])
    years = span_ns / _YEAR_NS
    total = final / start - 1.0
    annualised = None
    if span_ns >= _DAY_NS and final > 0:
        annualised = (final / start) ** (1.0 / years) - 1.0
    returns = np.diff(equity) / equity[:-1] if len(equity) > 1 else np.zeros(0)
    per_year = (len(equity) - 1) / years if years > 0 else 0.0
    closed = [t for t in trips if not t.open]
    wins = [float(t.pnl) for t in closed if t.pnl > 0]
    losses = [float(t.pnl) for t in closed if t.pnl < 0]
    traded = sum(float(f.quantity * f.price) for f in fills)
    intervals = len(equity) - 1
    exposed = int(np.count_nonzero(curve.invested[:-1] > 0)) if intervals else 0
    refused = list(rejections)
    by_code = Counter(code for codes in refused for code in codes)
    return Summary(
        starting_cash=start,
        final_equity=final,
        total_return=total,
        annualised_return=annualised,
        max_drawdown=max_drawdown(curve),
        sharpe=_ratio(
            returns, float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0, per_year
        ),
        sortino=_ratio(returns, _downside(returns), per_year),
        trades=len(closed),
        open_trades=len(trips) - len(closed),
        win_rate=len(wins) / len(closed) if closed else None,
        average_win=sum(wins) / len(wins) if wins else None,
        average_loss=sum(losses) / len(losses) if losses else None,
        exposure=exposed / intervals if intervals else 0.0,
        turnover=traded / float(np.mean(equity)) if float(np.mean(equity)) > 0 else 0.0,
        fees=sum(float(f.fee) for f in fills),
        buy_and_hold_return=float(curve.benchmark[-1]) / start - 1.0,
        signals=signals,
        rejected=len(refused),
        rejected_by_code=dict(sorted(by_code.items())),
        start_ns=int(curve.times_ns[0]),
        end_ns=int(curve.times_ns[-1]),
        points=len(curve),
    )


def max_drawdown(curve: EquityCurve) -> Drawdown:
    equity = curve.equity
    peaks = np.maximum.accumulate(equity)
    depths = equity / peaks - 1.0
    trough = int(np.argmin(depths))
    peak = int(np.argmax(equity[: trough + 1]))
    after = np.flatnonzero(equity[trough:] >= equity[peak])
    recovered = int(curve.times_ns[trough + after[0]]) if len(after) and trough > peak else None
    return Drawdown(
        float(depths[trough]), int(curve.times_ns[peak]), int(curve.times_ns[trough]), recovered
    )


def _downside(returns: np.ndarray[Any, Any]) -> float:
    if not len(returns):
        return 0.0
    return math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))


def _ratio(returns: np.ndarray[Any, Any], spread: float, per_year: float) -> float | None:
    if len(returns) < 2 or not spread > 0 or not per_year > 0:
        return None
    return float(np.mean(returns)) / spread * math.sqrt(per_year)


def rejected_codes(codes: Mapping[str, int]) -> str:
    """{"MARKET_CLOSED": 3, ...} as 'MARKET_CLOSED 3, ...' (most first), or 'none'."""
    ranked = sorted(codes.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{code} {count}" for code, count in ranked) or "none"
