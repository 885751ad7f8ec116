"""SubscribeEvents: committed audit rows fanned out to live subscribers.

Subscribers hear about an event only once it is committed, so nothing a client
was told about can be lost. A subscriber that asks for `from_seq` first reads
the log from there, then continues live: it registers for live rows *before*
reading the log and drops live rows it already read, so there is neither a
gap nor a duplicate at the seam.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from audit.codec import record_to_envelope
from audit.records import AuditQuery, AuditRecord, EventStore
from domain.errors import Unavailable
from server.translate import envelope_to_event
from trading.v1 import events_pb2

MARKET_DATA = "MarketDataReceived"
_CLOSED = object()


@dataclass(eq=False)
class _Subscriber:
    types: frozenset[str]
    symbols: frozenset[str]
    queue: queue.Queue[object] = field(default_factory=lambda: queue.Queue(maxsize=10_000))
    overflowed: bool = False

    def wants(self, record: AuditRecord) -> bool:
        if self.types:
            if record.event_type not in self.types:
                return False
        elif record.event_type == MARKET_DATA:
            return False
        return not self.symbols or record.symbol in self.symbols


class EventHub:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []
        store.add_commit_listener(self._on_commit)

    def _on_commit(self, records: Sequence[AuditRecord]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        if not subscribers:
            return
        for record in records:
            event: events_pb2.Event | None = None
            for sub in subscribers:
                if sub.overflowed or not sub.wants(record):
                    continue
                if event is None:
                    event = envelope_to_event(record_to_envelope(record))
                try:
                    sub.queue.put_nowait(event)
                except queue.Full:
                    sub.overflowed = True

    def close(self) -> None:
        with self._lock:
            for sub in self._subscribers:
                sub.queue.put(_CLOSED)
            self._subscribers.clear()

    def subscribe(
        self,
        types: frozenset[str],
        symbols: frozenset[str],
        from_seq: int,
        is_active: Callable[[], bool],
    ) -> Iterator[events_pb2.Event]:
        sub = _Subscriber(types, symbols)
        with self._lock:
            self._subscribers.append(sub)
        try:
            last = 0
            if from_seq:
                query = AuditQuery(from_seq=from_seq, event_types=types, symbol=None)
                for record in self._store.query(query):
                    if sub.wants(record):
                        yield envelope_to_event(record_to_envelope(record))
                    last = record.seq
            while is_active():
                try:
                    item = sub.queue.get(timeout=0.25)
                except queue.Empty:
                    if sub.overflowed:
                        raise Unavailable(
                            "subscriber fell too far behind and was dropped; "
                            "resubscribe with from_seq"
                        ) from None
                    continue
                if item is _CLOSED:
                    return
                assert isinstance(item, events_pb2.Event)
                if item.seq > last:
                    yield item
        finally:
            with self._lock:
                if sub in self._subscribers:
                    self._subscribers.remove(sub)
