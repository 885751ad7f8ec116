"""Reading market-data files, and the bundled daily bars' stamping and price choices."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest

from client.marketdata import DEFAULT_BARS, Bar, batches, load_bars, to_market_events

HEADER = "symbol,timestamp,open,high,low,close,volume\n"


@pytest.fixture(scope="module")
def bundled() -> list[Bar]:
    return load_bars()


def test_the_bundled_file_has_the_four_demo_symbols_sorted(bundled: list[Bar]) -> None:
    assert {bar.symbol for bar in bundled} == {"AAPL", "IBM", "MSFT", "GOOG"}
    keys = [(bar.timestamp, bar.symbol) for bar in bundled]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_every_bundled_bar_is_stamped_a_minute_before_its_xnys_close(bundled: list[Bar]) -> None:
    calendar = xcals.get_calendar("XNYS", start="2000-01-01")
    days = sorted({bar.timestamp.date() for bar in bundled})
    expected = {
        day: calendar.session_close(pd.Timestamp(day)).to_pydatetime() - timedelta(minutes=1)
        for day in days
    }

    assert all(bar.timestamp == expected[bar.timestamp.date()] for bar in bundled)
    assert all(
        calendar.is_open_on_minute(stamp) for stamp in (bundled[0].timestamp, bundled[-1].timestamp)
    )


def test_an_early_close_is_respected(bundled: list[Bar]) -> None:
    # 2004-11-26, the day after Thanksgiving: XNYS closed at 13:00 New York (18:00 UTC).
    stamps = {bar.timestamp for bar in bundled if bar.timestamp.date() == date(2004, 11, 26)}
    normal = {bar.timestamp for bar in bundled if bar.timestamp.date() == date(2004, 11, 24)}

    assert stamps == {datetime(2004, 11, 26, 17, 59, tzinfo=UTC)}
    assert normal == {datetime(2004, 11, 24, 20, 59, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("symbol", "split_day"),
    [("AAPL", date(2000, 6, 21)), ("AAPL", date(2005, 2, 28)), ("MSFT", date(2003, 2, 18))],
)
def test_a_split_is_not_a_crash(bundled: list[Bar], symbol: str, split_day: date) -> None:
    series = [bar for bar in bundled if bar.symbol == symbol]
    day = next(i for i, bar in enumerate(series) if bar.timestamp.date() == split_day)

    # Unadjusted, each of these 2:1 splits halves the close (a ratio near 0.5).
    assert series[day].close / series[day - 1].close > 0.9


def test_the_last_bar_carries_the_quoted_prices(bundled: list[Bar]) -> None:
    last = [bar for bar in bundled if bar.symbol == "AAPL"][-1]

    assert (last.timestamp.date(), last.close, last.volume) == (date(2013, 3, 1), 430.47, 19730300)


def test_load_bars_filters_symbols_case_insensitively() -> None:
    assert {bar.symbol for bar in load_bars(DEFAULT_BARS, symbols=["ibm"])} == {"IBM"}


def test_load_bars_reads_a_plain_csv_and_converts_offsets_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        HEADER
        + "MSFT,2010-01-04T16:00:00-05:00,30.6,31.1,30.59,30.95,38409100\n"
        + "AAPL,2010-01-04T21:00:00Z,213.43,214.5,212.38,214.01,17633200\n"
    )

    bars = load_bars(path)

    assert [bar.symbol for bar in bars] == ["AAPL", "MSFT"]  # same time: ordered by symbol
    assert bars[1] == Bar(
        "MSFT", datetime(2010, 1, 4, 21, 0, tzinfo=UTC), 30.6, 31.1, 30.59, 30.95, 38409100.0
    )


def test_load_bars_reads_gzip_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "bars.dat"
    path.write_bytes(gzip.compress((HEADER + "IBM,2010-01-04T21:00:00Z,1,2,0.5,1.5,10\n").encode()))

    assert [bar.close for bar in load_bars(path)] == [1.5]


def test_load_bars_refuses_a_time_stamp_without_offset(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "IBM,2010-01-04T21:00:00,1,2,0.5,1.5,10\n")

    with pytest.raises(ValueError, match=r"bars\.csv:2: .*no UTC offset"):
        load_bars(path)


def test_load_bars_refuses_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("symbol,timestamp,close\nIBM,2010-01-04T21:00:00Z,1.5\n")

    with pytest.raises(ValueError, match="missing column"):
        load_bars(path)


def test_to_market_events_uses_close_volume_and_time() -> None:
    bar = Bar("GOOG", datetime(2012, 6, 1, 19, 59, tzinfo=UTC), 1.0, 3.0, 0.5, 2.5, 700.0)

    [event] = to_market_events([bar])

    assert (event.symbol, event.price, event.volume) == ("GOOG", 2.5, 700.0)
    assert event.timestamp.ToDatetime(tzinfo=UTC) == bar.timestamp


def test_batches_splits_lazily_with_a_short_last_batch() -> None:
    assert list(batches(iter(range(5)), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batches([], 3)) == []


def test_batches_refuses_a_size_below_one_at_once() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        batches([1, 2], 0)
