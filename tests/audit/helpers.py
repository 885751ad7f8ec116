"""Records to append and ways to reach behind the store's back, for the audit tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import make_url

from audit.codec import canonical_json
from audit.records import NewRecord
from audit.sql_store import SqlAlchemyEventStore
from tests import pg

T0 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)

OpenStore = Callable[..., SqlAlchemyEventStore]
"""The open_store fixture: (url, **SqlAlchemyEventStore options) -> an open store."""


def record(
    i: int,
    *,
    event_type: str = "SignalGenerated",
    symbol: str | None = "AAPL",
    order_id: str | None = None,
    idea_id: str | None = None,
    at: datetime | None = None,
) -> NewRecord:
    """The i-th event of a test run: one second after the previous, a ~300-byte payload."""
    payload = canonical_json(
        {
            "i": i,
            "symbol": symbol,
            "side": "BUY",
            "qty": "100",
            "limit_price": "187.25",
            "strategy": "sma_cross",
            "reason": "fast SMA crossed above slow SMA on 1m bars",
            "verdicts": [
                {"rule": "max_position", "ok": True, "reason": "within 10000 limit"},
                {"rule": "market_hours", "ok": True, "reason": "XNYS open"},
            ],
            "note": "grüße ✓",  # non-ASCII must survive storage and hashing unchanged
        }
    )
    return NewRecord(
        recorded_at=at or T0 + timedelta(seconds=i),
        event_type=event_type,
        caused_by=i,
        payload=payload,
        symbol=symbol,
        order_id=order_id,
        idea_id=idea_id,
    )


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database is not None
    return database


def execute_raw(url: str, statement: str) -> None:
    """Run one statement on a plain driver connection (no SQLAlchemy, no store) and commit."""
    if is_postgres(url):
        with pg.connect(url) as pg_connection:
            pg_connection.execute(statement)
        return
    lite = sqlite3.connect(sqlite_path(url))
    try:
        with lite:
            lite.execute(statement)
    finally:
        lite.close()


def tamper(url: str, statement: str) -> None:
    """Change audit_events behind the append-only triggers' back, as a database
    owner could: disable them, run `statement`, put them back, in one transaction."""
    if is_postgres(url):
        with pg.connect(url) as pg_connection:
            pg_connection.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            pg_connection.execute(statement)
            pg_connection.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
        return
    lite = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        triggers = lite.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            " AND tbl_name = 'audit_events'"
        ).fetchall()
        assert triggers, "the append-only triggers are missing"
        lite.execute("BEGIN")
        for name, _ in triggers:
            lite.execute(f'DROP TRIGGER "{name}"')
        lite.execute(statement)
        for _, sql in triggers:
            lite.execute(sql)
        lite.execute("COMMIT")
    finally:
        lite.close()
