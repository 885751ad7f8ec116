"""A recorded audit log, opened to be read and never written.

`SqlAlchemyEventStore` is the log's writer: opening one creates a missing
SQLite file, tightens its mode, switches it to WAL, runs the migrations and
starts a commit thread. A tool that examines a log someone else recorded (a
replay, an audit) must change none of that, so it reads through `LogReader`:

* SQLite: the file is opened with `mode=ro` (a missing file is an error, never
  created), and no pragma is set. SQLite itself refuses every write on the
  connection. Reading a WAL-mode file may leave the empty `-wal` and `-shm`
  files any reader needs beside it; the database file is not touched.
* PostgreSQL: every transaction of the reader's connections is READ ONLY, so
  the server refuses a write whatever the statement.
* Nothing is migrated and no lease is taken: a database without the audit
  table is reported, not given one.

Queries answer as the store's do (`audit.sql_reads`), committed rows only,
oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event, func, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from audit.records import AuditQuery, AuditRecord
from audit.schema import audit_events
from audit.sql_reads import describe_error, select_records, stream_records
from audit.sql_store import parse_url, redact_url
from domain.errors import NotFound, Unavailable

APPLICATION_NAME = "trading-audit-reader"
"""The reader's application_name, as pg_stat_activity shows it."""


class LogReader:
    """A read-only view of the audit log at a database URL.

    Raises StoreConfigError for a malformed or unsupported URL, NotFound when
    there is no log there (no such SQLite file, no audit table), Unavailable
    when the database cannot be reached. Close it when done (or use `with`).
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        parsed = parse_url(url)
        self.shown_url = redact_url(url)
        self._engine = _read_only_engine(parsed, self.shown_url, connect_timeout_s)
        try:
            self._check_table()
        except BaseException:
            self._engine.dispose()
            raise

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_table(self) -> None:
        try:
            with self._engine.connect() as connection:
                present = inspect(connection).has_table(audit_events.name)
        except sa_exc.DBAPIError as exc:
            raise Unavailable(
                f"audit log unavailable: cannot read {self.shown_url}: {describe_error(exc)}"
            ) from exc
        if not present:
            raise NotFound(f"no audit log in {self.shown_url}: it has no {audit_events.name} table")

    def last_seq(self) -> int:
        """Seq of the last committed row; 0 when the log is empty."""
        try:
            with self._engine.connect() as connection:
                last = connection.execute(select(func.max(audit_events.c.seq))).scalar()
        except sa_exc.DBAPIError as exc:
            raise Unavailable(f"audit log unavailable: {describe_error(exc)}") from exc
        return int(last or 0)

    def query(self, query: AuditQuery) -> Generator[AuditRecord, None, None]:
        """Committed rows matching `query`, oldest first, fetched in chunks (lazily:
        the database is first touched on the first next())."""
        return stream_records(self._engine, select_records(query))

    def record(self, seq: int) -> AuditRecord | None:
        """The row numbered `seq`, or None."""
        return next(iter(self.query(AuditQuery(from_seq=seq, to_seq=seq))), None)

    def close(self) -> None:
        self._engine.dispose()


def _read_only_engine(url: URL, shown: str, connect_timeout_s: float) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, shown, connect_timeout_s)
    options: dict[str, Any] = {
        "connect_timeout": max(2, round(connect_timeout_s)),  # libpq's floor is 2 s
        "application_name": APPLICATION_NAME,
    }
    for name in url.query:  # options spelled out in the URL win
        options.pop(name, None)
    engine = create_engine(url, connect_args=options, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: object) -> None:
        # psycopg starts every transaction of this connection READ ONLY.
        dbapi_connection.read_only = True

    return engine


def _sqlite_engine(url: URL, shown: str, connect_timeout_s: float) -> Engine:
    database = url.database
    assert database is not None  # parse_url refused the in-memory forms
    if url.query.get("uri"):
        # The URL names the file as a URI already: sqlite:///file:x.db?uri=true
        path = Path(database.removeprefix("file:").partition("?")[0])
        target = f"{database}{'&' if '?' in database else '?'}mode=ro"
    else:
        path = Path(database)
        target = f"file:{quote(str(path.absolute()))}?mode=ro"
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise NotFound(f"no audit log at {shown}: {str(path)!r} {what}")

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(target, uri=True, timeout=connect_timeout_s, check_same_thread=False)

    # NullPool: a connection per reader, closed with it (readers may overlap).
    return create_engine("sqlite://", creator=connect, poolclass=NullPool)
