"""Alpaca bars as the service's ticks: the one time conversion, shared by the live
feed (`client.alpaca_feed`) and the download (`client.alpaca_history`).

Alpaca stamps a bar at its **start**; the service's files and feeds stamp a bar at
its **end**, the moment what it says is known (``client.marketdata``). The rule,
for a bar covering ``[start, end)``::

    stamp = end - 1 microsecond        (STAMP_BEFORE_END)

* Intraday bars (``Min``, ``Hour``): ``end = start + timeframe``. The 1Min bar
  that starts at 14:30Z is stamped 14:30:59.999999Z; the last regular minute of a
  session, [15:59, 16:00) New York, is stamped 15:59:59.999999 New York, inside
  the session (the service's market-hours rule takes the close as exclusive, so a
  stamp *at* the end would put that bar outside and a strategy could not act on
  it). Extended-hours bars are stamped the same way, outside the session.
* ``Day`` bars: ``end`` = that session's close on the NYSE calendar
  (exchange-calendars' XNYS), early closes included: 16:00 New York on a normal
  day, 13:00 on the day after Thanksgiving. The session is the New York date of
  the bar's start (Alpaca stamps a daily bar at midnight New York time); a date
  that is not an XNYS session is refused.
* ``Week`` and ``Month`` bars: ``end`` = the close of the last XNYS session in
  the period.

Why a microsecond and not a nanosecond: the stamp must survive the file format
(ISO 8601 read by ``datetime.fromisoformat``) and the SDK's ``market_event``
(a ``datetime``), both of microsecond resolution. ``end - 1 ns`` would become
``...59.999999`` on one path and stay ``...59.999999999`` on the other, and a
downloaded file would no longer give the ticks the live feed sends.

A bar becomes one tick: price = close, volume = volume (``to_market_event``,
through ``client.marketdata.to_market_events``, the same code `tradectl stream`
uses for a file).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from client.marketdata import Bar, to_market_events
from trading_sdk.v1 import market_pb2

__all__ = [
    "MINUTE",
    "NEW_YORK",
    "STAMP_BEFORE_END",
    "AlpacaBar",
    "BarStamper",
    "needs_calendar",
    "new_york_midnight",
    "parse_timeframe",
    "to_market_event",
    "to_service_bar",
    "xnys_calendar",
]

STAMP_BEFORE_END: Final = timedelta(microseconds=1)
NEW_YORK: Final = ZoneInfo("America/New_York")
MINUTE: Final = TimeFrame(1, TimeFrameUnit.Minute)

_TIMEFRAME: Final = re.compile(r"\s*(\d+)\s*(min|hour|day|week|month)\s*", re.IGNORECASE)
_UNITS: Final = {unit.value.lower(): unit for unit in TimeFrameUnit}
_CALENDAR_UNITS: Final = (TimeFrameUnit.Day, TimeFrameUnit.Week, TimeFrameUnit.Month)


class AlpacaBar(Protocol):
    """What the conversion reads of alpaca-py's ``Bar`` (REST and stream alike)."""

    @property
    def symbol(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def open(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def close(self) -> float: ...
    @property
    def volume(self) -> float: ...


def parse_timeframe(text: str) -> TimeFrame:
    """``1Min``, ``5Min``, ``1Hour``, ``1Day``, ``1Week``, ``1Month`` (any letter case)
    as alpaca-py's TimeFrame; ValueError names what is accepted."""
    match = _TIMEFRAME.fullmatch(text)
    if match is None:
        raise ValueError(
            f"timeframe {text!r} is not of the form <amount><unit>, "
            "e.g. 1Min, 15Min, 1Hour, 1Day, 1Week, 1Month"
        )
    amount, unit = int(match[1]), _UNITS[match[2].lower()]
    try:
        return TimeFrame(amount, unit)
    except ValueError as error:
        raise ValueError(f"timeframe {text!r}: {error}") from None


def needs_calendar(timeframe: TimeFrame) -> bool:
    """Whether bars of `timeframe` end at a session's close (Day, Week, Month)."""
    return timeframe.unit in _CALENDAR_UNITS


def xnys_calendar(first: date | None = None, last: date | None = None) -> Any:
    """The NYSE calendar (exchange-calendars XNYS), covering `first`..`last` if given
    (the package's default range otherwise: about 20 years back, 1 year ahead)."""
    import exchange_calendars as xcals  # a second to build: only when a bar needs it

    if first is None or last is None:
        return xcals.get_calendar("XNYS")
    # Room either side: a Week or Month bar looks ahead to the end of its period.
    return xcals.get_calendar(
        "XNYS", start=first - timedelta(days=7), end=last + timedelta(days=40)
    )


class BarStamper:
    """Stamps bars of one timeframe by the rule in this module's doc.

    `calendar` (an exchange-calendars XNYS calendar) is needed for Day, Week and
    Month bars; when not given, the default XNYS calendar is built on first use.
    Closes are cached per date, so stamping years of daily bars stays cheap.
    """

    def __init__(self, timeframe: TimeFrame, calendar: Any = None) -> None:
        self.timeframe = timeframe
        self._calendar = calendar
        self._ends: dict[date, datetime] = {}
        unit, amount = timeframe.unit, timeframe.amount
        self._length: timedelta | None = None
        if unit == TimeFrameUnit.Minute:
            self._length = timedelta(minutes=amount)
        elif unit == TimeFrameUnit.Hour:
            self._length = timedelta(hours=amount)

    def end(self, start: datetime) -> datetime:
        """The (exclusive) end of the bar that starts at `start`, in UTC."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"bar start {start.isoformat()} has no timezone")
        if self._length is not None:
            return (start + self._length).astimezone(UTC)
        day = start.astimezone(NEW_YORK).date()
        end = self._ends.get(day)
        if end is None:
            end = self._ends[day] = self._session_end(day)
        return end

    def stamp(self, start: datetime) -> datetime:
        """The service's time stamp for the bar that starts at `start`: its end - 1 µs."""
        return self.end(start) - STAMP_BEFORE_END

    def _session_end(self, day: date) -> datetime:
        import pandas as pd

        calendar = self._calendar
        if calendar is None:
            calendar = self._calendar = xnys_calendar()
        label = pd.Timestamp(day)
        if not calendar.first_session <= label <= calendar.last_session:
            raise ValueError(
                f"a {self.timeframe} bar of {day.isoformat()} is outside the XNYS calendar's "
                f"range {calendar.first_session.date()}..{calendar.last_session.date()}"
            )
        unit = self.timeframe.unit
        if unit == TimeFrameUnit.Day:
            if not calendar.is_session(label):
                raise ValueError(f"a 1Day bar of {day.isoformat()}, which is not an XNYS session")
            return _utc(calendar.session_close(label))
        period_end = _period_end(day, self.timeframe)
        sessions = calendar.sessions_in_range(label, pd.Timestamp(period_end - timedelta(days=1)))
        if len(sessions) == 0:
            raise ValueError(
                f"a {self.timeframe} bar from {day.isoformat()} covers no XNYS session"
            )
        return _utc(calendar.session_close(sessions[-1]))


def _period_end(day: date, timeframe: TimeFrame) -> date:
    """The first day after a Week or Month bar that starts on `day`."""
    if timeframe.unit == TimeFrameUnit.Week:
        return day + timedelta(weeks=timeframe.amount)
    months = day.month - 1 + timeframe.amount
    return date(day.year + months // 12, months % 12 + 1, 1)


def _utc(stamp: Any) -> datetime:
    moment: datetime = stamp.to_pydatetime()
    return moment.astimezone(UTC)


def to_service_bar(bar: AlpacaBar, stamper: BarStamper) -> Bar:
    """An Alpaca bar as a row of the service's market-data files, stamped at its end."""
    return Bar(
        symbol=bar.symbol,
        timestamp=stamper.stamp(bar.timestamp),
        open=float(bar.open),
        high=float(bar.high),
        low=float(bar.low),
        close=float(bar.close),
        volume=float(bar.volume),
    )


def to_market_event(bar: Bar) -> market_pb2.MarketEvent:
    """The tick a service bar is sent as: its close, its volume, its stamp."""
    (event,) = to_market_events([bar])
    return event


def new_york_midnight(day: date) -> datetime:
    """00:00 New York time on `day`, in UTC: where Alpaca starts that day's bars."""
    return datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)
