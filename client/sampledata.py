"""Build the bundled market-data file from bokeh-sampledata's daily stock prices.

A one-off converter, kept so the file can be rebuilt and its choices checked:

    .venv/bin/python -m client.sampledata

Source: ``bokeh_sampledata/_data/stocks.csv.gz`` (Quandl WIKI prices, declared
public domain by the publisher, see ``bokeh_sampledata.stocks``). Columns
``Ticker,Date,Open,High,Low,Close,Volume,Adj Close``; one row per trading day,
2000-03-01 to 2013-03-01 (GOOG from its listing on 2004-08-19).

Output: ``client/data/daily_bars.csv.gz``, the format ``client.marketdata``
reads (``symbol,timestamp,open,high,low,close,volume``), for AAPL, IBM, MSFT and
GOOG.

Decisions:

* **Time stamp.** A daily bar is stamped one minute before that session's close
  on the NYSE calendar (``exchange_calendars``' XNYS): 20:59 or 19:59 UTC on a
  normal day (16:00 New York time, winter or summer), and 17:59 UTC (12:59 New
  York) on an early close such as the day after Thanksgiving. The service
  judges market hours by event time, so every bar falls inside the regular
  session; the close minute itself is not (the session's close is exclusive).
  Dates that are not XNYS sessions are dropped and counted (there are none in
  this source).
* **Prices.** The source's open, high, low and close are unadjusted, so a
  stock split looks like a crash (AAPL halves on 2000-06-21 and 2005-02-28,
  MSFT on 2003-02-18), and a strategy would trade on it. We back-adjust instead:
  every price of a day is scaled by that day's ``Adj Close / Close``, divided by
  the same ratio on the last day of the series. The last bar therefore carries
  the real quoted prices of 2013-03-01 (AAPL 430.47), earlier bars the prices
  on that share basis, and a split is no longer a jump. The ratio also folds in
  dividends, which moves older prices by a few per cent: acceptable for a demo,
  and it keeps the series continuous. Volume is scaled the other way, so a
  bar's traded value (price times volume) is unchanged.
* Prices are rounded to 4 decimals and volumes to whole shares; the gzip
  header carries no time stamp, so rebuilding gives the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Final

import exchange_calendars as xcals
import pandas as pd

from client.marketdata import CSV_HEADER, DEFAULT_BARS

SYMBOLS: Final = ("AAPL", "IBM", "MSFT", "GOOG")
SOURCE: Final = ("bokeh_sampledata", "_data/stocks.csv.gz")
# A bar is stamped this long before the session's (exclusive) close.
BEFORE_CLOSE: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One day of one ticker, as the source has it (unadjusted, plus Adj Close)."""

    symbol: str
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float
    adj_close: float


def read_source(symbols: Iterable[str] = SYMBOLS) -> list[SourceRow]:
    """The source rows of `symbols`, in the source's order (by ticker, then date)."""
    wanted = set(symbols)
    package, name = SOURCE
    with (
        resources.as_file(resources.files(package).joinpath(name)) as path,
        gzip.open(path, "rt", newline="") as text,
    ):
        return [
            SourceRow(
                symbol=row["Ticker"],
                day=date.fromisoformat(row["Date"]),
                open=float(row["Open"]),
                high=float(row["High"]),
                low=float(row["Low"]),
                close=float(row["Close"]),
                volume=float(row["Volume"]),
                adj_close=float(row["Adj Close"]),
            )
            for row in csv.DictReader(text)
            if row["Ticker"] in wanted
        ]


def session_stamps(days: Iterable[date]) -> dict[date, datetime]:
    """Map each day that is an XNYS session to one minute before its close (UTC)."""
    calendar = xcals.get_calendar("XNYS", start="2000-01-01")
    stamps: dict[date, datetime] = {}
    for day in set(days):
        session = pd.Timestamp(day)
        if calendar.is_session(session):
            close = calendar.session_close(session).to_pydatetime()
            stamps[day] = (close - BEFORE_CLOSE).astimezone(UTC)
    return stamps


def adjusted_rows(rows: list[SourceRow]) -> Iterator[SourceRow]:
    """Back-adjust each ticker's prices to its last day's share basis (see module doc)."""
    by_symbol: dict[str, list[SourceRow]] = defaultdict(list)
    for row in rows:
        by_symbol[row.symbol].append(row)
    for series in by_symbol.values():
        series.sort(key=lambda row: row.day)
        last = series[-1]
        basis = last.adj_close / last.close
        for row in series:
            factor = (row.adj_close / row.close) / basis
            yield SourceRow(
                symbol=row.symbol,
                day=row.day,
                open=row.open * factor,
                high=row.high * factor,
                low=row.low * factor,
                close=row.close * factor,
                volume=row.volume / factor,
                adj_close=row.adj_close,
            )


def _price(value: float) -> str:
    """At most 4 decimals, without trailing zeros: keeps the file small."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def write_bars(rows: Iterable[SourceRow], stamps: dict[date, datetime], target: Path) -> int:
    """Write the bars of `rows` whose day is in `stamps`; return how many were written."""
    lines = sorted((stamps[row.day], row.symbol, row) for row in rows if row.day in stamps)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the gzip header: the same input gives the same bytes.
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
        io.TextIOWrapper(packed, encoding="ascii", newline="") as text,
    ):
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for stamp, symbol, row in lines:
            writer.writerow(
                (
                    symbol,
                    stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    _price(row.open),
                    _price(row.high),
                    _price(row.low),
                    _price(row.close),
                    str(round(row.volume)),
                )
            )
    return len(lines)


def main(target: Path = DEFAULT_BARS) -> None:
    """Convert the source into `target` and say what was kept and dropped."""
    rows = read_source()
    stamps = session_stamps(row.day for row in rows)
    dropped = sum(1 for row in rows if row.day not in stamps)
    written = write_bars(adjusted_rows(rows), stamps, target)
    print(f"wrote {written} bars to {target} ({target.stat().st_size} bytes)")
    print(f"dropped {dropped} bars on days that are not XNYS sessions")


if __name__ == "__main__":
    main()
