"""The injected clock: wall time live, event time in replays and tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(ns: int) -> datetime:
    """The UTC datetime of nanoseconds since the epoch, to the microsecond (no float)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def datetime_to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


class Clock(Protocol):
    """What engines ask for the time. `observe` is how market events move event time.

    The sequencer calls `begin_input` when an input starts and `end_input` when
    it is done: the time an input is processed at is read once, so every event
    of the input carries the same stamp and a replay, given the journaled stamp
    (`at_ns`), reproduces it."""

    name: str

    def now_ns(self) -> int: ...

    def now(self) -> datetime: ...

    def observe(self, event_ns: int) -> None: ...

    def begin_input(self, at_ns: int | None) -> None: ...

    def end_input(self) -> None: ...


class WallClock:
    """The machine's UTC clock, frozen for the length of each input; market-event
    timestamps do not move it. Outside an input (a read) it is the live time."""

    name = "wall"

    def __init__(self) -> None:
        self._input_ns: int | None = None

    def now_ns(self) -> int:
        frozen = self._input_ns
        return time.time_ns() if frozen is None else frozen

    def now(self) -> datetime:
        return ns_to_datetime(self.now_ns())

    def observe(self, event_ns: int) -> None:
        pass

    def begin_input(self, at_ns: int | None) -> None:
        self._input_ns = time.time_ns() if at_ns is None else at_ns

    def end_input(self) -> None:
        self._input_ns = None


class EventClock:
    """Time is the latest market-event timestamp seen, and never runs backwards.

    Before the first market event it reads `start_ns` (the Unix epoch by
    default), so that a replay of the same inputs sees the same times.
    """

    name = "event"

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def now(self) -> datetime:
        return ns_to_datetime(self._now_ns)

    def observe(self, event_ns: int) -> None:
        if event_ns > self._now_ns:
            self._now_ns = event_ns

    def begin_input(self, at_ns: int | None) -> None:
        """Event time is the input's own (its ticks move it), live and in replay alike."""

    def end_input(self) -> None:
        pass


def clock_from_name(name: str) -> Clock:
    if name == "wall":
        return WallClock()
    if name == "event":
        return EventClock()
    raise ValueError(f"TRADING_CLOCK must be 'wall' or 'event', not {name!r}")
