"""Reading the audit table: the one SELECT for an AuditQuery, and rows streamed in chunks.

Shared by the store (`audit.sql_store`) and the read-only reader of a recorded
log (`audit.log_reader`), so a query means the same rows whichever asks.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from sqlalchemy import Engine, Select, select
from sqlalchemy import exc as sa_exc

from audit.chain import check_query, to_utc
from audit.records import AuditQuery, AuditRecord
from audit.schema import audit_events
from domain.errors import Unavailable

READ_CHUNK_ROWS = 1000
# Columns in AuditRecord's field order, so a result row is AuditRecord(*row).
RECORD_COLUMNS = [audit_events.c[name] for name in AuditRecord._fields]


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, without SQL text or driver tracebacks."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def select_records(query: AuditQuery) -> Select[Any]:
    """The rows matching `query`, oldest first: the seq range inclusive, the time
    range [since, until). Raises InvalidInput for a query no store can answer."""
    check_query(query)
    t = audit_events.c
    stmt = select(*RECORD_COLUMNS).order_by(t.seq)
    if query.from_seq is not None:
        stmt = stmt.where(t.seq >= query.from_seq)
    if query.to_seq is not None:
        stmt = stmt.where(t.seq <= query.to_seq)
    if query.since is not None:
        stmt = stmt.where(t.recorded_at >= to_utc("query since", query.since))
    if query.until is not None:
        stmt = stmt.where(t.recorded_at < to_utc("query until", query.until))
    if query.event_types:
        stmt = stmt.where(t.event_type.in_(sorted(query.event_types)))
    for column, value in (
        (t.symbol, query.symbol),
        (t.order_id, query.order_id),
        (t.idea_id, query.idea_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def stream_records(engine: Engine, stmt: Select[Any]) -> Generator[AuditRecord, None, None]:
    """The rows of `stmt` as AuditRecords, fetched in chunks on a connection of their own.

    stream_results: a server-side cursor on PostgreSQL, so a million rows never
    sit in this process; sqlite3 steps through rows lazily anyway. The database
    is first touched on the first next(); the rows come from one snapshot.
    Raises Unavailable when the database cannot be read.
    """
    try:
        with engine.connect() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=READ_CHUNK_ROWS
            ).execute(stmt)
            for row in result:
                yield AuditRecord(*row)
    except sa_exc.DBAPIError as exc:
        raise Unavailable(f"audit store unavailable: {describe_error(exc)}") from exc
