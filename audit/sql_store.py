"""The audit log in SQLite (the default) or PostgreSQL, through SQLAlchemy Core.

How a row travels:

* `append()` runs on the core's thread, under the core's lock. It seals the
  row in memory (next seq, prev_hash, hash; see audit.chain) and queues it with
  its INSERT parameters. It does no I/O, so auditing costs the hot path a hash
  and a deque append.
* One writer thread commits queued rows in order, many per transaction (group
  commit): it commits when `batch_size` rows are waiting, when `flush()` or
  `close()` asks, or after a window of `flush_interval_s` since rows arrived.
  It writes them with COPY on PostgreSQL and multi-row INSERTs on SQLite, the
  ways that hold the GIL, which the appender needs, the least (see _copy_rows
  and _insert_rows).
* After each commit the writer calls the commit listeners with the committed
  rows in seq order, and only then releases `flush()` callers: when `flush()`
  returns, every listener has seen every row appended before the call.

Failing closed: if a commit fails, the rows stay queued, in order, and the
writer retries (at once, then with backoff up to a second). A second
consecutive failure marks the store unhealthy and tells the health listeners,
so the service can halt trading; `flush()` raises Unavailable instead of
waiting forever. When a commit succeeds again the store is healthy again and
the backlog is committed in order. A commit whose acknowledgement was lost
(it reached the database, the reply did not reach us) is recognised on the
retry by the hash of the last row in the database, so no row is written twice
and no seq is skipped.

Durability: SQLite runs in WAL mode with synchronous=FULL, so a committed row
survives power loss, not only a crash; PostgreSQL commits with its default
fsync settings.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic.util.exc import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from audit.chain import GENESIS, Sealer, walk
from audit.chain import MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from audit.migrations import upgrade_connection, use_sqlalchemy_transactions
from audit.records import (
    AuditQuery,
    AuditRecord,
    CommitListener,
    HealthListener,
    NewRecord,
    VerifyResult,
)
from audit.schema import audit_events
from audit.sql_reads import RECORD_COLUMNS, select_records, stream_records
from audit.sql_reads import describe_error as _describe
from domain.errors import DomainError, Unavailable

log = logging.getLogger(__name__)

_EXAMPLE_URLS = "sqlite:///var/audit.db or postgresql+psycopg://user@host:5432/dbname"
_SUPPORTED = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}
_DEFAULT_DRIVER = {"sqlite": "pysqlite", "postgresql": "psycopg"}
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 1.0

CommitTimer = Callable[[int, float], None]
"""Told (rows, seconds) of each committed transaction (`add_commit_timer`)."""


class StoreConfigError(DomainError):
    """DATABASE_URL is malformed or names a database this store cannot use."""


class _LogDiverged(Exception):
    """The database's last row is not one this store wrote: another writer, or a restore."""


# A query parameter that may carry a secret: password=, sslpassword=, ...token=, ...secret=.
_SECRET_PARAM = re.compile(r"(?i)([?&][^?&=#]*(?:pass|secret|token)[^?&=#]*=)[^&]*")


def redact_url(raw: str) -> str:
    """`raw` (a database URL, well-formed or not) fit for a log line or an error:
    the password, and any query parameter that may hold a secret, become ***.

    A password may hold '@', ':' or '/' unencoded (SQLAlchemy itself then misreads
    the URL), so the user part is taken to end at the *last* '@' of what follows
    the scheme: that over-redacts a URL with an '@' further on, but never shows
    any of a password. The one function for every place that shows a URL.
    """
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "", raw
    at = rest.rfind("@")
    if at > 0 and not rest.startswith("/"):
        user, colon, _ = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    return _SECRET_PARAM.sub(r"\1***", f"{scheme}{sep}{rest}")


_UNENCODED_AT = (
    "its user name or password holds an unencoded '@'; "
    "percent-encode it ('@' as %40, ':' as %3A, '/' as %2F)"
)


def parse_url(raw: str) -> URL:
    """Validate a DATABASE_URL for the audit store; StoreConfigError says what is wrong."""
    try:
        url = make_url(raw)
    except (sa_exc.ArgumentError, ValueError) as exc:
        # Not the exception's text: it may quote part of a password make_url misread.
        problem = "it is not a URL" if isinstance(exc, sa_exc.ArgumentError) else "bad port number"
        hint = f" ({_UNENCODED_AT})" if raw.count("@") > 1 else ""
        raise StoreConfigError(
            f"malformed DATABASE_URL {redact_url(raw)!r}: {problem}{hint}; "
            f"expected e.g. {_EXAMPLE_URLS}"
        ) from None
    if url.host is not None and "@" in url.host:
        # make_url took the password to end at its first '@' and the rest for the host.
        raise StoreConfigError(f"malformed DATABASE_URL {redact_url(raw)!r}: {_UNENCODED_AT}")
    backend, _, driver = url.drivername.partition("+")
    if (backend, driver or _DEFAULT_DRIVER.get(backend)) not in _SUPPORTED:
        raise StoreConfigError(
            f"unsupported DATABASE_URL scheme {url.drivername!r}; use {_EXAMPLE_URLS}"
        )
    if backend == "sqlite" and (not url.database or url.database == ":memory:"):
        raise StoreConfigError(
            "DATABASE_URL names an in-memory SQLite database, which loses the audit log "
            "on exit; give a file, e.g. sqlite:///var/audit.db"
        )
    return url


SQLITE_FILE_MODE = 0o600
"""The audit log is readable and writable by the service's user only."""


def _private_sqlite_files(database: Path) -> None:
    """Make the SQLite audit file (and its -wal and -shm files) owner-only.

    A new file is created here with mode 0600 before SQLite opens it: SQLite
    creates the -wal, -shm (and any -journal) files later with the permissions
    of the database file, so they are 0600 too. An existing file, or companion,
    that others may read or write is tightened to 0600, with a warning.
    """
    try:
        fd = os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, SQLITE_FILE_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unavailable(
            f"audit store unavailable: cannot create {str(database)!r}: {exc.strerror}"
        ) from exc
    else:
        os.close(fd)
        return
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                path.chmod(SQLITE_FILE_MODE)
                log.warning(
                    "audit file %s was mode %o (others could read it); now %o",
                    path,
                    mode,
                    SQLITE_FILE_MODE,
                )
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot make audit file %s owner-only: %s", path, exc.strerror)


def _open_engine(url: URL, connect_timeout_s: float) -> Engine:
    if url.get_backend_name() == "sqlite":
        assert url.database is not None  # parse_url refused the in-memory forms
        folder = Path(url.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(
                f"audit store unavailable: cannot create folder {str(folder)!r}: {exc.strerror}"
            ) from exc
        if not url.query.get("uri"):
            _private_sqlite_files(Path(url.database))
        engine = create_engine(url, connect_args={"timeout": connect_timeout_s})
        use_sqlalchemy_transactions(engine)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            # WAL: readers (query, verify) and the writer do not block each other.
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before it returns, so it survives power loss.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    libpq_options: dict[str, Any] = {
        "connect_timeout": max(2, round(connect_timeout_s)),  # libpq's floor is 2 s
        "application_name": "trading-audit",
        # Notice a peer that vanished without closing the socket (host down,
        # network cut) in seconds rather than the kernel's ~15 minutes, so the
        # writer fails, reports it, and retries.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
    }
    for name in url.query:  # options spelled out in DATABASE_URL win
        libpq_options.pop(name, None)
    # pre_ping: readers get a live pooled connection after an outage. The writer
    # keeps its own connection and replaces it when a commit fails.
    return create_engine(url, connect_args=libpq_options, pool_pre_ping=True)


_Params = tuple[Any, ...]
"""One row's INSERT parameters, in AuditRecord's field order."""

_COLUMNS = ", ".join(AuditRecord._fields)
_COPY_SQL = f"COPY {audit_events.name} ({_COLUMNS}) FROM STDIN"
_INSERT_SQL = f"INSERT INTO {audit_events.name} ({_COLUMNS}) VALUES "
_SQLITE_ROW = f"({', '.join(['?'] * len(AuditRecord._fields))})"


def _copy_rows(connection: Connection, rows: list[_Params]) -> None:
    """PostgreSQL: COPY the rows in. On this path a sealed AuditRecord, a tuple in
    column order, is its own parameter row.

    COPY takes rows about twice as fast as executemany, for a third of the client
    CPU per row, CPU the appending thread would wait for under the GIL.
    """
    driver = connection.connection.driver_connection
    assert driver is not None  # only None once the connection is closed
    try:
        with driver.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
            for row in rows:
                copy.write_row(row)
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy reports a failed statement, which is what _failed expects.
        raise sa_exc.DBAPIError.instance(
            _COPY_SQL, None, exc, connection.dialect.loaded_dbapi.Error
        ) from exc


def _insert_rows(connection: Connection, rows: list[_Params]) -> None:
    """SQLite: INSERT the rows, as many per statement as SQLite's parameter limit allows.

    Not executemany: that releases the GIL around each row's step and then waits
    up to a switch interval (5 ms) to take it back from the appending thread, so
    it writes next to nothing until appends pause. One statement binds its rows
    and then steps through all of them without the GIL, next to the appender.
    """
    driver = connection.connection.driver_connection
    assert driver is not None  # only None once the connection is closed
    per_statement = max(
        1, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(AuditRecord._fields)
    )
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        # One flat tuple: a list would be taken as one parameter set per item.
        connection.exec_driver_sql(
            _INSERT_SQL + ", ".join([_SQLITE_ROW] * len(chunk)),
            tuple(itertools.chain.from_iterable(chunk)),
        )


class SqlAlchemyEventStore:
    """EventStore on SQLite or PostgreSQL with group commit and fail-closed health.

    Opening migrates the schema to the latest revision and continues the chain
    from the last row in the database. It raises StoreConfigError for a bad URL
    and Unavailable when the database cannot be reached.

    `batch_size`: most rows per transaction. `flush_interval_s`: how long rows
    may wait for company before the writer commits them unasked.
    `flush_timeout_s`: longest `flush()` (and `close()`) waits for the
    database before raising Unavailable. `max_pending`: most rows that may wait
    for commit before `room()` says none is left, so the sequencer refuses new
    inputs rather than let an outage grow the process without bound (an admitted
    input's own rows are never refused). `connect_timeout_s`: per connection attempt
    (on SQLite, how long to wait for another connection's write lock).

    Call close() before the process exits: the writer is a daemon thread, and
    rows that were appended but not yet committed are lost with the process
    (flush() is the durability point).
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 0.005,
        flush_timeout_s: float = 2.0,
        max_pending: int = 100_000,
        connect_timeout_s: float = 2.0,
    ) -> None:
        if batch_size < 1 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be at least 1")
        if flush_interval_s < 0 or flush_timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("flush_interval_s must be >= 0, the timeouts > 0")
        parsed = parse_url(url)
        self._shown_url = redact_url(url)
        self._sqlite_path = (
            Path(parsed.database)
            if parsed.get_backend_name() == "sqlite" and parsed.database
            else None
        )
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._flush_timeout_s = flush_timeout_s
        self._max_pending = max_pending
        self._engine = _open_engine(parsed, connect_timeout_s)
        on_sqlite = self._engine.dialect.name == "sqlite"
        self._write_rows = _insert_rows if on_sqlite else _copy_rows
        # SQLite keeps recorded_at as the text the hash covers (see
        # audit.schema.UtcDateTime), which sealing has just computed.
        self._time_as_text = on_sqlite
        try:
            last_seq, last_hash = self._migrate_and_load_head()
        except BaseException:
            self._engine.dispose()
            raise

        # Appender's state: touched only by the thread that appends.
        self._next_seq = last_seq + 1
        self._last_hash = last_hash
        self._sealer = Sealer()

        # Shared with the writer, under _lock. _work wakes the writer; _done
        # wakes whoever waits for commits (flush, close).
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._pending: deque[AuditRecord] = deque()
        self._pending_params: deque[_Params] = deque()  # each row's, in step with _pending
        self._committed = (last_seq, last_hash)
        self._flush_target = 0
        self._attempts = 0  # commit attempts started
        self._last_failed_attempt = 0
        self._consecutive_failures = 0
        self._failure = ""  # why the last attempt failed
        self._closing = False
        self._abandoned = False  # close() gave up waiting: the writer exits

        self._listeners: tuple[CommitListener, ...] = ()
        self._timers: tuple[CommitTimer, ...] = ()
        self._health_listeners: tuple[HealthListener, ...] = ()
        self._health_lock = threading.Lock()  # orders health changes and their notices
        self._healthy = True

        self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._writer.start()

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file holding the log; None on PostgreSQL."""
        return self._sqlite_path

    def _migrate_and_load_head(self) -> tuple[int, str]:
        try:
            with self._engine.begin() as connection:
                upgrade_connection(connection)
                head = connection.execute(
                    select(audit_events.c.seq, audit_events.c.hash)
                    .order_by(audit_events.c.seq.desc())
                    .limit(1)
                ).first()
        except sa_exc.DBAPIError as exc:
            raise Unavailable(
                f"audit store unavailable: cannot open {self._shown_url}: {_describe(exc)}"
            ) from exc
        except CommandError as exc:
            # Typically a database migrated by a newer release than this one.
            raise StoreConfigError(
                f"cannot migrate the audit schema of {self._shown_url}: {exc}"
            ) from exc
        return (head.seq, head.hash) if head is not None else (0, GENESIS)

    # --- the appender's side -------------------------------------------------

    def append(self, record: NewRecord) -> AuditRecord:
        if self._closing:
            raise Unavailable("audit store unavailable: it is closed")
        sealed, recorded_at = self._sealer.seal(record, self._next_seq, self._last_hash)
        # The INSERT's parameters are made here rather than by the writer: the
        # time's text is at hand, and the writer's CPU holds up appends (GIL).
        params = (sealed.seq, recorded_at, *sealed[2:]) if self._time_as_text else sealed
        with self._lock:
            # No backlog check here: an input admitted by `room()` always runs whole.
            backlog = len(self._pending)
            self._pending.append(sealed)
            self._pending_params.append(params)
            # Wake the writer when the first row arrives (to open the group-commit
            # window) and when a batch is full; not per row, which would cost
            # every append a context switch.
            if backlog + 1 in (1, self._batch_size):
                self._work.notify()
        self._next_seq += 1
        self._last_hash = sealed.hash
        return sealed

    def last_seq(self) -> int:
        return self._next_seq - 1

    def room(self) -> int:
        return self._max_pending - len(self._pending)

    @property
    def pending_rows(self) -> int:
        """Rows appended and not yet committed: the backlog `room` counts against."""
        return len(self._pending)

    @property
    def max_pending(self) -> int:
        return self._max_pending

    def flush(self) -> None:
        """Wait until every row appended before this call is committed.

        Raises Unavailable when a commit attempt made after this call fails
        and the store has failed at least twice in a row (a single failure is
        retried at once: it is usually a connection that went stale while idle),
        or when nothing commits within flush_timeout_s.
        """
        target = self._next_seq - 1
        with self._lock:
            if self._committed[0] >= target:
                return
            if threading.current_thread() is self._writer:
                raise RuntimeError(
                    "flush() called from a commit or health listener: "
                    "it would wait for its own thread"
                )
            self._flush_target = max(self._flush_target, target)
            started = self._attempts
            self._work.notify()
            self._done.wait_for(
                lambda: (
                    self._committed[0] >= target
                    or (self._last_failed_attempt > started and self._consecutive_failures >= 2)
                ),
                self._flush_timeout_s,
            )
            if self._committed[0] >= target:
                return
            reason = self._failure or (
                f"no commit within {self._flush_timeout_s:g} s (database slow or unreachable)"
            )
        self._set_health(False, reason, unless_committed=target)
        raise Unavailable(f"audit store unavailable: {reason}")

    # --- the writer thread ---------------------------------------------------

    def _urgent(self) -> bool:
        return (
            len(self._pending) >= self._batch_size
            or self._flush_target > self._committed[0]
            or self._closing
        )

    def _next_batch(
        self, backoff_s: float | None
    ) -> tuple[list[AuditRecord], list[_Params]] | None:
        """Wait for rows worth a transaction, and give them with their INSERT
        parameters; None when the writer should stop."""
        with self._lock:
            if backoff_s is not None:
                # The database is failing: wait before retrying, unless flush()
                # or close() asks for an attempt now.
                self._work.wait(backoff_s)
            else:
                while not self._pending and not self._closing:
                    self._work.wait()
                if not self._urgent():
                    # Group-commit window: more rows will likely join this transaction.
                    self._work.wait(self._flush_interval_s)
            if self._abandoned or not self._pending:
                return None  # only when closing: the queue never empties otherwise
            self._attempts += 1
            # Peek, do not pop: the rows leave the queue only once committed.
            return (
                list(itertools.islice(self._pending, self._batch_size)),
                list(itertools.islice(self._pending_params, self._batch_size)),
            )

    def _run(self) -> None:
        connection: Connection | None = None
        backoff_s: float | None = None  # set while commits fail
        try:
            while (next_batch := self._next_batch(backoff_s)) is not None:
                batch, params = next_batch
                started = time.monotonic()
                try:
                    if connection is None:
                        connection = self._engine.connect()
                    self._insert(connection, batch, params, reconcile=backoff_s is not None)
                except Exception as exc:  # any failure: keep the rows, retry, fail closed
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            connection.invalidate()
                        connection = None
                    backoff_s = (
                        0.0
                        if backoff_s is None
                        else min(max(backoff_s * 2, _RETRY_FIRST_S), _RETRY_MAX_S)
                    )
                    self._failed(exc, backoff_s)
                    continue
                backoff_s = None
                took = time.monotonic() - started
                self._committed_batch(batch)
                self._tell_timers(len(batch), took)
        finally:
            if connection is not None:
                connection.close()

    def _committed_batch(self, batch: list[AuditRecord]) -> None:
        self._tell_listeners(batch)
        with self._lock:
            for _ in batch:
                self._pending.popleft()
                self._pending_params.popleft()
            self._committed = (batch[-1].seq, batch[-1].hash)
            self._consecutive_failures = 0
            self._failure = ""
        # Healthy before flush() returns, and only after _committed moved, so a
        # flush() that timed out just now cannot mark the store down after this.
        self._set_health(True, "")
        with self._lock:
            self._done.notify_all()

    def _insert(
        self,
        connection: Connection,
        batch: list[AuditRecord],
        params: list[_Params],
        *,
        reconcile: bool,
    ) -> None:
        with connection.begin():
            if reconcile:
                params = params[self._already_committed(connection, batch) :]
            if params:
                self._write_rows(connection, params)

    def _already_committed(self, connection: Connection, batch: list[AuditRecord]) -> int:
        """After a failed attempt: how many rows of `batch` the database already has.

        The failed commit may have reached the database even though its reply
        was lost. Commits are whole and in order, so the database holds a prefix
        of the batch; its last row, checked by hash, says how long a prefix.
        """
        head = connection.execute(
            select(audit_events.c.seq, audit_events.c.hash)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).first()
        db_seq, db_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
        first = batch[0].seq
        if db_seq == first - 1 and db_hash == self._committed[1]:
            return 0
        if first <= db_seq <= batch[-1].seq and batch[db_seq - first].hash == db_hash:
            return db_seq - first + 1
        raise _LogDiverged(
            f"audit log diverged: the database ends at seq {db_seq}, not at a row this "
            f"store wrote (seq {first - 1} to {batch[-1].seq}); another writer or a restore?"
        )

    def _failed(self, exc: Exception, backoff_s: float) -> None:
        reason = _describe(exc)
        # A driver error is the database's doing and expected; anything else is a bug.
        log.warning(
            "audit commit failed, retrying in %.2f s: %s",
            backoff_s,
            reason,
            exc_info=not isinstance(exc, sa_exc.DBAPIError | _LogDiverged),
        )
        with self._lock:
            self._consecutive_failures += 1
            self._failure = reason
            unhealthy = self._consecutive_failures >= 2
        if unhealthy:
            self._set_health(False, reason)
        # Only now may flush() give up on this attempt: by the time it raises,
        # the health listeners have heard the store is down.
        with self._lock:
            self._last_failed_attempt = self._attempts
            self._done.notify_all()

    def _tell_listeners(self, batch: list[AuditRecord]) -> None:
        for listener in self._listeners:
            try:
                listener(batch)
            except Exception:
                # The rows are committed; a listener's bug must not stop the log.
                log.exception("audit commit listener %r failed", listener)

    def _tell_timers(self, rows: int, seconds: float) -> None:
        for timer in self._timers:
            try:
                timer(rows, seconds)
            except Exception:
                log.exception("audit commit timer %r failed", timer)

    def _set_health(self, healthy: bool, reason: str, *, unless_committed: int = 0) -> None:
        """Record and announce a change of health. `unless_committed`: a flush()
        that gave up on seq N does not mark the store down if N got committed since."""
        if healthy and self._healthy:
            return  # the common case, after every commit: no lock
        # Going down always takes the lock, so a caller returns only after the
        # listeners have been told, whichever thread told them.
        with self._health_lock:
            if healthy == self._healthy or (
                unless_committed and self._committed[0] >= unless_committed
            ):
                return
            self._healthy = healthy
            if healthy:
                log.info("audit store %s is reachable again", self._shown_url)
            else:
                log.error("audit store %s is unavailable: %s", self._shown_url, reason)
            for listener in self._health_listeners:
                try:
                    listener(healthy, reason)
                except Exception:
                    log.exception("audit health listener %r failed", listener)

    # --- readers ---------------------------------------------------------------

    def query(self, query: AuditQuery) -> Iterator[AuditRecord]:
        """Committed rows matching `query`, oldest first, fetched in chunks.

        The seq range is inclusive; the time range is [since, until). The
        database is first touched on the first next(); the rows come from one
        snapshot, so rows committed meanwhile are not part of the answer.
        """
        self._check_open()
        return stream_records(self._engine, select_records(query))

    def verify(self) -> VerifyResult:
        """Walk the committed log from seq 1; see audit.chain.walk.

        Besides the chain itself, the last row this store knows it committed
        must be in the log with the same hash: that catches a cut-off tail.
        """
        self._check_open()
        anchor = self._committed
        rows = stream_records(self._engine, select(*RECORD_COLUMNS).order_by(audit_events.c.seq))
        last_read = 0

        def reading() -> Iterator[AuditRecord]:
            nonlocal last_read
            for row in rows:
                last_read = row.seq
                yield row

        with contextlib.closing(rows):
            try:
                return walk(reading(), anchor=anchor if anchor[0] else None)
            except (ValueError, TypeError) as exc:
                # SQLite keeps whatever a tamperer writes, e.g. a recorded_at that is
                # no timestamp; such a row is a finding, not a crash. walk() had
                # accepted every row before it.
                return VerifyResult(
                    False,
                    last_read,
                    last_read,
                    last_read + 1,
                    f"row after seq {last_read} cannot be read: {exc}",
                )

    def _check_open(self) -> None:
        if self._closing:
            raise Unavailable("audit store unavailable: it is closed")

    # --- listeners, health, shutdown -------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener(rows)` on the writer thread after each commit, rows in seq order.

        Keep it quick and do not call flush() from it: flush waits for it.
        """
        self._listeners = (*self._listeners, listener)

    def add_commit_timer(self, timer: CommitTimer) -> None:
        """Call `timer(rows, seconds)` on the writer thread after each commit: how many
        rows the transaction held and how long its successful attempt took (connecting
        included; failed attempts and the wait for company are not). For metrics."""
        self._timers = (*self._timers, timer)

    @property
    def healthy(self) -> bool:
        """False from the second consecutive failed commit (or a flush timeout)
        until the next successful one."""
        return self._healthy

    def add_health_listener(self, listener: HealthListener) -> None:
        """Call `listener(healthy, reason)` on every change of `healthy`.

        It runs on the writer thread or on a thread inside flush(), one call at
        a time and in the order of the changes; do not call flush() from it.
        """
        self._health_listeners = (*self._health_listeners, listener)

    def close(self) -> None:
        """Commit what is queued (waiting up to flush_timeout_s), stop the writer and
        release the database. Raises Unavailable if rows had to be left uncommitted."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._work.notify()
            if not self._done.wait_for(lambda: not self._pending, self._flush_timeout_s):
                self._abandoned = True
                self._work.notify()
            left, reason = len(self._pending), self._failure
        self._writer.join(self._flush_timeout_s)
        self._engine.dispose()
        if left:
            raise Unavailable(
                f"audit store unavailable: closed with {left} appended rows not committed"
                f" ({reason or 'database too slow'})"
            )
