"""SubscribeEvents: committed audit rows fanned out to live subscribers.

Subscribers hear about an event only once it is committed, so nothing a client
was told about can be lost. A subscriber that asks for `from_seq` first reads
the log from there, then continues live: it registers for live rows *before*
reading the log and drops live rows it already read, so there is neither a
gap nor a duplicate at the seam.

A subscriber holds its stream slot and thread (server/stream_limits.py) and
nothing that others need: the log is read a chunk at a time with the database
connection given back before any row is sent, so a client that does not read
its stream pins no pooled connection or snapshot; and the rows waiting for it
are bounded in count and bytes, past which it is dropped with UNAVAILABLE and
resubscribes with from_seq. A subscriber notices a cancelled call within
POLL_SECONDS, and the hub's close ends every subscriber without waiting for any.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence

from audit.codec import record_to_envelope
from audit.records import AuditQuery, AuditRecord, EventStore
from domain.errors import Unavailable
from server.translate import envelope_to_event
from trading_sdk.v1 import events_pb2

MARKET_DATA = "MarketDataReceived"
# How often a waiting subscriber checks that its call is still active.
POLL_SECONDS = 0.25
# Rows read from the log per query while replaying.
READ_CHUNK_ROWS = 500
# What may wait for one subscriber; one event larger than the byte budget is
# still taken when nothing else waits, so no event is too big to deliver.
MAX_QUEUED_EVENTS = 10_000
MAX_QUEUED_BYTES = 4 * 1024 * 1024


class _Signal:
    """A reason the wait for the next event ended without one."""


_CLOSED, _OVERFLOWED = _Signal(), _Signal()


class _Subscriber:
    def __init__(
        self, types: frozenset[str], symbols: frozenset[str], max_events: int, max_bytes: int
    ) -> None:
        self.types = types
        self.symbols = symbols
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._cond = threading.Condition()
        self._waiting: deque[tuple[AuditRecord, int]] = deque()
        self._bytes = 0
        self.overflowed = False
        self.closed = False

    def wants(self, record: AuditRecord) -> bool:
        if self.types:
            if record.event_type not in self.types:
                return False
        elif record.event_type == MARKET_DATA:
            return False
        return not self.symbols or record.symbol in self.symbols

    def offer(self, record: AuditRecord, size: int) -> None:
        """Called on the store's writer thread: never blocks, and does no more than
        queue the row (it is decoded and translated on the subscriber's own thread,
        so a flush() waiting on the writer never waits for subscribers)."""
        with self._cond:
            if self.overflowed or self.closed:
                return
            if self._waiting and (
                len(self._waiting) >= self._max_events or self._bytes + size > self._max_bytes
            ):
                self.overflowed = True
            else:
                self._waiting.append((record, size))
                self._bytes += size
            self._cond.notify()

    def close(self) -> None:
        """Take no more events; those already waiting are still delivered."""
        with self._cond:
            self.closed = True
            self._cond.notify()

    def take(self, timeout: float) -> AuditRecord | _Signal | None:
        """The next row; once those taken in are delivered, _CLOSED or
        _OVERFLOWED; None if nothing came within `timeout`."""
        with self._cond:
            if not (self._waiting or self.closed or self.overflowed):
                self._cond.wait(timeout)
            if self._waiting:
                record, size = self._waiting.popleft()
                self._bytes -= size
                return record
            if self.closed:
                return _CLOSED
            return _OVERFLOWED if self.overflowed else None


class EventHub:
    def __init__(
        self,
        store: EventStore,
        *,
        read_chunk_rows: int = READ_CHUNK_ROWS,
        max_queued_events: int = MAX_QUEUED_EVENTS,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self._store = store
        self._read_chunk_rows = read_chunk_rows
        self._max_queued = (max_queued_events, max_queued_bytes)
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []
        self._closed = False
        store.add_commit_listener(self._on_commit)

    def _on_commit(self, records: Sequence[AuditRecord]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        if not subscribers:
            return
        for record in records:
            size = len(record.payload)  # about what its event weighs, to bound the queue
            for sub in subscribers:
                if not sub.overflowed and sub.wants(record):
                    sub.offer(record, size)

    def subscribers(self) -> int:
        """How many subscriptions are registered now."""
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription once the events already waiting for it are
        delivered, and refuse new ones. Never blocks, whoever is not reading."""
        with self._lock:
            self._closed = True
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            sub.close()

    def subscribe(
        self,
        types: frozenset[str],
        symbols: frozenset[str],
        from_seq: int,
        is_active: Callable[[], bool],
    ) -> Iterator[events_pb2.Event]:
        sub = _Subscriber(types, symbols, *self._max_queued)
        with self._lock:
            if self._closed:
                raise Unavailable("the service is shutting down; subscribe again once it is back")
            self._subscribers.append(sub)

        try:
            # Live rows before from_seq are not asked for, even when from_seq is
            # past the end of the log (then nothing is replayed).
            last = max(0, from_seq - 1)
            if from_seq:
                # Even once the hub is closed the replay runs to its end (bounded by
                # the log's end now), so the live events waiting follow on without a gap.
                query = AuditQuery(from_seq=from_seq, event_types=types, symbol=None)
                replay = read_in_chunks(self._store, query, is_active, self._read_chunk_rows)
                for record in replay:
                    if sub.wants(record):
                        yield envelope_to_event(record_to_envelope(record))
                    last = record.seq
            while is_active():
                item = sub.take(POLL_SECONDS)
                if item is None:
                    continue
                if item is _CLOSED:
                    return
                if item is _OVERFLOWED:
                    raise Unavailable(
                        "subscriber fell too far behind and was dropped; resubscribe with from_seq"
                    )
                assert isinstance(item, AuditRecord)
                if item.seq > last:
                    yield envelope_to_event(record_to_envelope(item))
        finally:
            with self._lock:
                if sub in self._subscribers:
                    self._subscribers.remove(sub)


def read_in_chunks(
    store: EventStore,
    query: AuditQuery,
    is_active: Callable[[], bool],
    chunk_rows: int = READ_CHUNK_ROWS,
) -> Iterator[AuditRecord]:
    """The committed rows matching `query`, up to the end of the log as it is
    now, oldest first, read `chunk_rows` at a time.

    Each chunk is read whole and its database connection given back before any
    of its rows is handed on, so a consumer that is slow to take them holds one
    chunk of rows, never a pooled connection or a database snapshot. Rows are
    committed in seq order and each chunk starts after the last row of the one
    before, so nothing is skipped or repeated; a chunk that comes back short is
    the last (rows committed later are the live feed's business). Stops early
    once `is_active()` is false, checked before each chunk.
    """
    end = store.last_seq()
    if query.to_seq is not None:
        end = min(end, query.to_seq)
    cursor = query.from_seq or 1
    while cursor <= end and is_active():
        rows = store.query(dataclasses.replace(query, from_seq=cursor, to_seq=end))
        try:
            chunk = list(itertools.islice(rows, chunk_rows))
        finally:
            if isinstance(rows, Generator):
                rows.close()  # ends the read: the connection goes back to the pool
        yield from chunk
        if len(chunk) < chunk_rows:
            return
        cursor = chunk[-1].seq + 1
