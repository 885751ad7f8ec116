"""What the event store holds and answers, independent of the database behind it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class NewRecord:
    """An event ready to append: the store gives it a seq and its hashes.

    `payload` is canonical JSON (sorted keys, no spaces) produced by audit.codec.
    `recorded_at` is the core clock's time (event time in replay, wall time live).
    """

    recorded_at: datetime
    event_type: str
    caused_by: int
    payload: str
    symbol: str | None = None
    order_id: str | None = None
    idea_id: str | None = None


class AuditRecord(NamedTuple):
    """One row of the audit log. `hash` covers every column (see audit.chain for the
    exact bytes); `prev_hash` is the previous row's hash (64 zeros for seq 1).

    A NamedTuple rather than a frozen dataclass: one is built for every appended
    event, and a frozen dataclass's __init__ costs several times as much. It is as
    immutable; copy one with `_replace`, list the columns with `_fields`.
    """

    seq: int
    recorded_at: datetime
    event_type: str
    caused_by: int
    payload: str
    symbol: str | None
    order_id: str | None
    idea_id: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for reading the log; every one is optional and they combine with AND.
    Results come oldest first."""

    from_seq: int | None = None
    to_seq: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_types: frozenset[str] = frozenset()
    symbol: str | None = None
    order_id: str | None = None
    idea_id: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of walking the hash chain."""

    ok: bool
    checked: int
    last_seq: int
    first_bad_seq: int | None = None
    reason: str = ""


CommitListener = Callable[[Sequence[AuditRecord]], None]
HealthListener = Callable[[bool, str], None]


class EventStore(Protocol):
    """The audit log port. Appends are ordered by the single caller (the core's
    sequencer); `flush` makes everything appended so far durable."""

    def append(self, record: NewRecord) -> AuditRecord:
        """Assign the next seq and the hashes; queue the row for commit. Never blocks on
        I/O, and never refuses a row for a full backlog (see `room`)."""
        ...

    def room(self) -> int:
        """How many more rows the backlog accepts before new inputs are refused (may be
        negative: what an admitted input publishes is never refused). The sequencer
        asks before it admits an input, so an input runs whole or not at all."""
        ...

    def flush(self) -> None:
        """Block until every appended row is committed; raise domain.errors.Unavailable
        if the database cannot be reached."""
        ...

    def last_seq(self) -> int:
        """Seq of the last appended row (committed or not); 0 when empty."""
        ...

    def query(self, query: AuditQuery) -> Iterator[AuditRecord]:
        """Stream committed rows matching the query, oldest first, without loading all."""
        ...

    def verify(self) -> VerifyResult:
        """Walk the chain from seq 1 and report the first broken row, if any."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener` with each group of rows right after it is committed."""
        ...

    @property
    def healthy(self) -> bool:
        """False while the database cannot be reached."""
        ...

    def add_health_listener(self, listener: HealthListener) -> None:
        """Call `listener(healthy, reason)` on each change; it must not block or flush."""
        ...

    def close(self) -> None:
        """Flush what is pending and release the database."""
        ...
