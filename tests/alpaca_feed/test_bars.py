"""The one conversion: an Alpaca bar (stamped at its start) becomes one tick stamped
at the bar's end - 1 µs, a 1Day bar just before that session's XNYS close, early
closes included, so every bar of a session lands inside the session [open, close)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alpaca.data.models import Bar as AlpacaBar

from client.alpaca_bars import (
    MINUTE,
    STAMP_BEFORE_END,
    BarStamper,
    new_york_midnight,
    parse_timeframe,
    to_market_event,
    to_service_bar,
)
from client.alpaca_history import write_bars
from client.marketdata import CSV_HEADER, load_bars, to_market_events

NORMAL_DAY = date(2024, 3, 5)  # a Tuesday, EST: the session is 14:30Z-21:00Z
DAY_AFTER_THANKSGIVING = date(2024, 11, 29)  # closes at 13:00 New York, 18:00Z
JULY_3RD = date(2024, 7, 3)  # EDT, closes at 13:00 New York, 17:00Z


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def alpaca_bar(symbol: str, start: datetime | str, close: float, volume: float = 1200) -> Any:
    """A bar as alpaca-py builds it from Alpaca's wire data ("t" is the bar's start)."""
    raw = {"t": start, "o": close - 0.5, "h": close + 1, "l": close - 1, "c": close, "v": volume}
    return AlpacaBar(symbol, {**raw, "n": 17, "vw": close - 0.1})


def session(calendar: Any, day: date) -> tuple[datetime, datetime]:
    label = pd.Timestamp(day)
    opens = calendar.session_open(label).to_pydatetime()
    closes = calendar.session_close(label).to_pydatetime()
    return opens, closes


def inside(calendar: Any, day: date, stamp: datetime) -> bool:
    """Inside the regular session as the service's market-hours rule takes it: the
    open included, the close excluded."""
    opens, closes = session(calendar, day)
    return opens <= stamp < closes


# --- intraday bars ----------------------------------------------------------------


def test_a_1min_bar_is_stamped_one_microsecond_before_its_end() -> None:
    stamper = BarStamper(MINUTE)

    assert stamper.end(utc(2024, 3, 5, 14, 30)) == utc(2024, 3, 5, 14, 31)
    assert stamper.stamp(utc(2024, 3, 5, 14, 30)) == datetime(
        2024, 3, 5, 14, 30, 59, 999_999, tzinfo=UTC
    )
    assert timedelta(microseconds=1) == STAMP_BEFORE_END


def test_every_minute_bar_of_a_session_lands_inside_it_and_none_after_it(
    calendar: Any,
) -> None:
    stamper = BarStamper(MINUTE)
    for day in (NORMAL_DAY, DAY_AFTER_THANKSGIVING, JULY_3RD):
        opens, closes = session(calendar, day)
        minutes = int((closes - opens) / timedelta(minutes=1))
        starts = [opens + k * timedelta(minutes=1) for k in range(minutes)]

        assert all(inside(calendar, day, stamper.stamp(start)) for start in starts), day
        # The bar that starts at the close is after-hours; stamped at its plain end,
        # the session's last bar would have been outside too.
        assert not inside(calendar, day, stamper.stamp(closes))
        assert not inside(calendar, day, stamper.end(starts[-1]))


def test_an_hour_bar_ends_an_hour_after_it_starts() -> None:
    stamper = BarStamper(parse_timeframe("1Hour"))
    assert stamper.stamp(utc(2024, 3, 5, 20, 0)) == utc(2024, 3, 5, 21, 0) - STAMP_BEFORE_END
    five = BarStamper(parse_timeframe("5min"))
    assert five.stamp(utc(2024, 3, 5, 20, 55)) == utc(2024, 3, 5, 21, 0) - STAMP_BEFORE_END


# --- bars of a day and longer --------------------------------------------------------


def test_a_1day_bar_lands_just_before_the_close_of_a_normal_session(calendar: Any) -> None:
    stamper = BarStamper(parse_timeframe("1Day"), calendar)
    # Alpaca stamps a daily bar at midnight New York time.
    start = new_york_midnight(NORMAL_DAY)
    assert start == utc(2024, 3, 5, 5, 0)

    stamp = stamper.stamp(start)

    assert stamp == utc(2024, 3, 5, 21, 0) - STAMP_BEFORE_END
    assert inside(calendar, NORMAL_DAY, stamp)


@pytest.mark.parametrize(
    ("day", "close"),
    [(DAY_AFTER_THANKSGIVING, utc(2024, 11, 29, 18, 0)), (JULY_3RD, utc(2024, 7, 3, 17, 0))],
)
def test_a_1day_bar_of_an_early_close_lands_before_that_early_close(
    calendar: Any, day: date, close: datetime
) -> None:
    stamper = BarStamper(parse_timeframe("1Day"), calendar)

    stamp = stamper.stamp(new_york_midnight(day))

    assert stamp == close - STAMP_BEFORE_END
    assert inside(calendar, day, stamp)
    assert stamp.astimezone(UTC).hour < 20  # not at the regular 16:00 New York close


def test_a_1day_bar_of_a_day_without_a_session_is_refused(calendar: Any) -> None:
    stamper = BarStamper(parse_timeframe("1Day"), calendar)
    with pytest.raises(ValueError, match="2024-03-09, which is not an XNYS session"):
        stamper.stamp(new_york_midnight(date(2024, 3, 9)))  # a Saturday


def test_week_and_month_bars_end_at_the_close_of_their_last_session(calendar: Any) -> None:
    week = BarStamper(parse_timeframe("1Week"), calendar)
    month = BarStamper(parse_timeframe("1Month"), calendar)

    # Thanksgiving week: its last session is the early close on Friday.
    assert week.stamp(new_york_midnight(date(2024, 11, 25))) == (
        utc(2024, 11, 29, 18, 0) - STAMP_BEFORE_END
    )
    # March 2024 ends with Good Friday, a holiday: the 28th (EDT) is its last session.
    assert month.stamp(new_york_midnight(date(2024, 3, 1))) == (
        utc(2024, 3, 28, 20, 0) - STAMP_BEFORE_END
    )


@pytest.mark.parametrize("text", ["1min", "15Min", "1Hour", "1day", "1Week", "3Month"])
def test_timeframes_read_as_alpaca_names_them(text: str) -> None:
    assert str(parse_timeframe(text)).lower() == text.lower()


@pytest.mark.parametrize("text", ["", "Min", "1Sec", "60Min", "2Day", "1 fortnight"])
def test_a_timeframe_alpaca_does_not_offer_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        parse_timeframe(text)


# --- one bar, one tick -------------------------------------------------------------


def test_a_bar_becomes_one_tick_of_its_close_and_volume_stamped_at_its_end() -> None:
    bar = alpaca_bar("SPY", "2024-03-05T14:30:00Z", close=512.25, volume=3400)

    event = to_market_event(to_service_bar(bar, BarStamper(MINUTE)))

    assert (event.symbol, event.price, event.volume) == ("SPY", 512.25, 3400)
    assert event.timestamp.ToDatetime(tzinfo=UTC) == datetime(
        2024, 3, 5, 14, 30, 59, 999_999, tzinfo=UTC
    )


def test_the_live_feed_and_a_downloaded_file_give_the_same_tick(tmp_path: Path) -> None:
    """The stream hands alpaca-py a datetime, REST a string; both go through the same
    conversion, and the file's text reads back to the very same tick."""
    stamper = BarStamper(MINUTE)
    live = alpaca_bar("QQQ", utc(2024, 3, 5, 20, 59), close=438.123456789, volume=0.5)
    rest = alpaca_bar("QQQ", "2024-03-05T20:59:00Z", close=438.123456789, volume=0.5)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    write_bars(writer, [to_service_bar(rest, stamper)])
    path = tmp_path / "bars.csv"
    path.write_text(text.getvalue())

    (from_file,) = to_market_events(load_bars(path))
    streamed = to_market_event(to_service_bar(live, stamper))

    assert from_file == streamed
    assert "QQQ,2024-03-05T20:59:59.999999Z,437.623456789," in path.read_text()
