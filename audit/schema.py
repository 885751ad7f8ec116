"""The audit_events table as SQLAlchemy Core sees it.

The database objects themselves (table, indexes, append-only triggers) are
created by the Alembic migrations in audit/migrations; this module describes
the same table for building statements, and tests check the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.types import TypeEngine

from audit.chain import utc_iso

SQLITE_TIME_CHARS = len("2025-01-02T14:30:00.000000+00:00")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, exact to the microsecond.

    PostgreSQL stores TIMESTAMPTZ. SQLite has no time type, so it stores the
    fixed-width UTC ISO text the hash uses; fixed width makes text order equal
    time order, so range filters work on the column as stored.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(SQLITE_TIME_CHARS))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return utc_iso(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return datetime.fromisoformat(value)
        # psycopg answers in the session's time zone; the log speaks UTC.
        return value.astimezone(UTC)  # type: ignore[no-any-return]


metadata = MetaData()

audit_events = Table(
    "audit_events",
    metadata,
    # INTEGER on SQLite so seq is the rowid itself rather than a second index.
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("caused_by", BigInteger, nullable=False),
    Column("symbol", Text, nullable=True),
    Column("order_id", Text, nullable=True),
    Column("idea_id", Text, nullable=True),
    Column("payload", Text, nullable=False),
    Column("prev_hash", CHAR(64), nullable=False),
    Column("hash", CHAR(64), nullable=False),
    # Each key index ends in seq so "rows for X, oldest first" is an index scan
    # with no sort, however many rows X has.
    Index("ix_audit_events_recorded_at", "recorded_at"),
    Index("ix_audit_events_event_type_seq", "event_type", "seq"),
    Index("ix_audit_events_symbol_seq", "symbol", "seq"),
    Index("ix_audit_events_order_id_seq", "order_id", "seq"),
    Index("ix_audit_events_idea_id_seq", "idea_id", "seq"),
)
