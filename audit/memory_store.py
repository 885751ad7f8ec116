"""An EventStore kept in memory: the fake for unit tests of code that audits.

It seals rows exactly like the SQL store (same validation, same hashes) and
keeps the same visibility rule: an appended row is only "committed" - visible
to `query`/`verify` and handed to commit listeners - once `flush()` runs.
(The SQL store also commits on its own every few milliseconds; the fake waits
for `flush` so a test catches code that relies on a row being durable without
flushing.) Listeners run synchronously inside `flush`, on the caller's thread.

`simulate_outage()` / `end_outage()` play the database going away and coming
back: `flush` raises Unavailable, `healthy` turns False and health listeners
hear about it, while appended rows wait, in order, for the next good flush.
A listener that raises is logged and skipped, as in the SQL store.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

from audit.chain import GENESIS, Sealer, check_query, walk
from audit.records import (
    AuditQuery,
    AuditRecord,
    CommitListener,
    HealthListener,
    NewRecord,
    VerifyResult,
)
from domain.errors import Unavailable

log = logging.getLogger(__name__)


def matches(record: AuditRecord, query: AuditQuery) -> bool:
    """The AuditQuery filter: seq range inclusive, time range [since, until)."""
    return (
        (query.from_seq is None or record.seq >= query.from_seq)
        and (query.to_seq is None or record.seq <= query.to_seq)
        and (query.since is None or record.recorded_at >= query.since)
        and (query.until is None or record.recorded_at < query.until)
        and (not query.event_types or record.event_type in query.event_types)
        and (query.symbol is None or record.symbol == query.symbol)
        and (query.order_id is None or record.order_id == query.order_id)
        and (query.idea_id is None or record.idea_id == query.idea_id)
    )


class InMemoryEventStore:
    """EventStore over two lists: committed rows and rows waiting for `flush`."""

    def __init__(self, max_pending: int = 100_000) -> None:
        self.max_pending = max_pending
        self._committed: list[AuditRecord] = []
        self._pending: list[AuditRecord] = []
        self._last_hash = GENESIS
        self._sealer = Sealer()
        self._listeners: list[CommitListener] = []
        self._health_listeners: list[HealthListener] = []
        self._outage: str | None = None
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("audit store unavailable: it is closed")

    def append(self, record: NewRecord) -> AuditRecord:
        self._check_open()
        sealed, _ = self._sealer.seal(record, self.last_seq() + 1, self._last_hash)
        self._pending.append(sealed)
        self._last_hash = sealed.hash
        return sealed

    def room(self) -> int:
        return self.max_pending - len(self._pending)

    @property
    def pending_rows(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        if self._outage is not None:
            raise Unavailable(f"audit store unavailable: {self._outage}")
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._committed.extend(batch)
        for listener in self._listeners:
            try:
                listener(batch)
            except Exception:
                # As in the SQL store: the rows are committed, a listener's bug is only logged.
                log.exception("audit commit listener %r failed", listener)

    def last_seq(self) -> int:
        return len(self._committed) + len(self._pending)

    def query(self, query: AuditQuery) -> Iterator[AuditRecord]:
        self._check_open()
        check_query(query)
        return self._scan(query)

    def _scan(self, query: AuditQuery) -> Iterator[AuditRecord]:
        # Rows committed while the caller iterates are not part of this answer,
        # as with the SQL store's snapshot.
        end = len(self._committed)
        start = 0 if query.from_seq is None else max(query.from_seq - 1, 0)
        for record in itertools.islice(self._committed, start, end):
            if matches(record, query):
                yield record

    def verify(self) -> VerifyResult:
        self._check_open()
        return walk(self._committed[:])

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    @property
    def healthy(self) -> bool:
        return self._outage is None

    def add_health_listener(self, listener: HealthListener) -> None:
        """Call `listener(healthy, reason)` on every change of `healthy`."""
        self._health_listeners.append(listener)

    def simulate_outage(self, reason: str = "simulated database outage") -> None:
        """Make the database unreachable until `end_outage()`."""
        if self._outage is None:
            self._outage = reason
            for listener in self._health_listeners:
                listener(False, reason)

    def end_outage(self) -> None:
        if self._outage is not None:
            self._outage = None
            for listener in self._health_listeners:
                listener(True, "")

    def crash(self) -> None:
        """Lose every row not yet committed, as a killed process does; the store is
        then as a restarted service finds it."""
        self._pending = []
        self._last_hash = self._committed[-1].hash if self._committed else GENESIS

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True
