"""The equity curve of a backtest, from the data and the fills the audit log holds.

One point per distinct tick time, after every tick and fill of that time: cash
(the starting cash moved by each fill's money and fee) plus each position at its
symbol's last price. Computed with numpy from the fills, not sampled from the
core tick by tick, so it costs the backtest nothing and anyone can recompute it
from the log; the last point equals the core's own equity (a test holds it to
that).

The benchmark is buy and hold of the same symbols: the starting cash split
equally, each part buying its symbol at its first price (no fees, no slippage)
and holding it to the end; a symbol's part is cash until its first tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from client.backtest.data import MarketData
from client.backtest.trades import Fill

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EquityCurve:
    times_ns: npt.NDArray[np.int64]
    equity: Floats
    cash: Floats
    invested: Floats  # the absolute value of every position at its mark, summed
    benchmark: Floats  # buy and hold

    def __len__(self) -> int:
        return len(self.times_ns)


def equity_curve(data: MarketData, fills: Sequence[Fill], starting_cash: Decimal) -> EquityCurve:
    stamps = data.timestamps_ns  # sorted: the distinct times without a hash table
    times = stamps[np.concatenate(([True], stamps[1:] != stamps[:-1]))] if len(stamps) else stamps
    start = float(starting_cash)
    # A fill belongs to the first point at or after it (its tick's time; the audit
    # log's clock keeps microseconds, a tick may have nanoseconds).
    fill_ns = np.array([f.at_ns for f in fills], dtype=np.int64)
    slot = np.minimum(np.searchsorted(times, fill_ns, side="left"), len(times) - 1)
    flows = np.array([-float(f.signed_quantity * f.price + f.fee) for f in fills])
    quantities = np.array([float(f.signed_quantity) for f in fills])
    fill_symbols = np.array([f.symbol for f in fills], dtype=object)
    cash = start + np.cumsum(np.bincount(slot, weights=flows, minlength=len(times)))
    value = np.zeros(len(times))
    invested = np.zeros(len(times))
    benchmark = np.zeros(len(times))
    names = data.symbol_names
    share = start / len(names)
    for symbol in names:
        own_ns, own_prices = data.of(symbol)
        last = np.searchsorted(own_ns, times, side="right") - 1
        price = np.where(last >= 0, own_prices[np.maximum(last, 0)], 0.0)
        mine = fill_symbols == symbol
        position = np.cumsum(
            np.bincount(slot[mine], weights=quantities[mine], minlength=len(times))
        )
        value += position * price
        invested += np.abs(position * price)
        benchmark += np.where(last >= 0, share / own_prices[0] * price, share)
    equity: Floats = cash + value
    return EquityCurve(times, equity, cash.astype(np.float64), invested, benchmark)
