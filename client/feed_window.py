"""A feed's send window: ticks from the source not yet sent, and messages sent
but not yet confirmed by the service (what a resend after a reconnect repeats;
the service drops what it already has, by feed id and sequence)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Final

from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

# How often a waiting thread looks up from its wait (a stream that ended).
_POLL_SECONDS: Final = 0.1


class SendWindow:
    """Ticks from Alpaca not yet sent, and messages sent but not yet confirmed.

    One lock guards both and the current stream ("session"): a message is numbered
    and added to the unconfirmed ones in the same step as its ticks are taken, and
    only for the stream that is current, so a stream that ended can never take
    ticks that the next one would then not resend.
    """

    def __init__(self, feed_id: str, first_sequence: int, max_held: int) -> None:
        self.feed_id = feed_id
        self._cv = threading.Condition()
        self._waiting: deque[market_pb2.MarketEvent] = deque()
        self._unconfirmed: deque[pb.StreamMarketDataRequest] = deque()
        self._held = 0  # ticks waiting or unconfirmed
        self._next = first_sequence
        self._max_held = max_held
        self._session = 0

    def put(self, event: market_pb2.MarketEvent) -> bool:
        """Queue a tick; False (and nothing queued) when `max_held` ticks are held."""
        with self._cv:
            if self._held >= self._max_held:
                return False
            self._waiting.append(event)
            self._held += 1
            self._cv.notify_all()
            return True

    def begin(self) -> tuple[int, list[pb.StreamMarketDataRequest]]:
        """A new stream: its id, and the messages it must send again first."""
        with self._cv:
            self._session += 1
            return self._session, list(self._unconfirmed)

    def end(self) -> None:
        with self._cv:
            self._session += 1
            self._cv.notify_all()

    def current(self, session: int) -> bool:
        with self._cv:
            return self._session == session

    def take(
        self, session: int, max_batch: int, timeout: float
    ) -> pb.StreamMarketDataRequest | None:
        """The next message for stream `session`: up to `max_batch` waiting ticks,
        numbered and kept until confirmed. None when there are none within `timeout`
        or the stream is no longer current."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not self._waiting and self._session == session:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(min(left, _POLL_SECONDS))
            if self._session != session or not self._waiting:
                return None
            events = [self._waiting.popleft() for _ in range(min(max_batch, len(self._waiting)))]
            request = pb.StreamMarketDataRequest(
                events=events, feed_id=self.feed_id, sequence=self._next
            )
            self._next += 1
            self._unconfirmed.append(request)
            return request

    def confirm(self, last_sequence: int) -> tuple[int, bool]:
        """The service accepted every message up to `last_sequence`: forget them.
        Returns (ticks confirmed, renumbered). A last sequence at or above any number
        this run gave means another run numbered higher (its clock was ahead, or it
        shares the feed id): the unconfirmed messages are numbered above it."""
        with self._cv:
            if last_sequence >= self._next:
                # New messages, not changed ones: a message once sent is never altered.
                renumbered = deque(
                    pb.StreamMarketDataRequest(
                        events=r.events, feed_id=r.feed_id, sequence=last_sequence + k
                    )
                    for k, r in enumerate(self._unconfirmed, start=1)
                )
                self._unconfirmed = renumbered
                self._next = last_sequence + len(renumbered) + 1
                return 0, True
            ticks = 0
            while self._unconfirmed and self._unconfirmed[0].sequence <= last_sequence:
                ticks += len(self._unconfirmed.popleft().events)
            self._held -= ticks
            return ticks, False

    def drop_refused(self, event_index: int | None) -> list[market_pb2.MarketEvent] | None:
        """Leave out what the service refused in the first unconfirmed message: the
        tick at `event_index`, or (None) the whole message. The rest keeps its number
        and is sent again. None when nothing is unconfirmed."""
        with self._cv:
            if not self._unconfirmed:
                return None
            first = self._unconfirmed.popleft()
            if event_index is None or not 0 <= event_index < len(first.events):
                self._held -= len(first.events)
                return list(first.events)
            events = list(first.events)
            refused = events.pop(event_index)
            if events:  # the rest, as a new message under the same number
                rest = pb.StreamMarketDataRequest(
                    events=events, feed_id=first.feed_id, sequence=first.sequence
                )
                self._unconfirmed.appendleft(rest)
            self._held -= 1
            return [refused]

    def counts(self) -> tuple[int, int]:
        """(ticks waiting, ticks sent but unconfirmed)."""
        with self._cv:
            return len(self._waiting), self._held - len(self._waiting)
