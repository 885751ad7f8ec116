"""The trading lease: only one instance of the service trades an account at a time.

`acquire_lease(database_url, key, holder)` takes the lease on `key` (what is
traded, e.g. "alpaca:PA1234" or "paper") in the database the audit log lives in,
or raises LeaseHeld naming the live instance that has it. The lease carries a
fencing `epoch`, strictly greater than that of every earlier holder of the key
on that database, so whatever an instance writes can be told apart from what a
holder before it wrote.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`, on a 64-bit
number derived from the key) held by a connection of its own that stays open as
long as the lease. A holder that dies, even by SIGKILL, loses its connection and
with it the lock, so it never blocks the next one. The lease also writes a row
of `trading_lease` (key, holder, epoch, acquired_at), under the lock, with epoch
one more than the row held: it names the holder to an instance that is refused.
The table is created here on first use (under a transaction-scoped advisory
lock, so concurrent first users do not race); it is not in the audit Alembic
migrations, whose schema tests pin the audit tables alone.

SQLite (a file): an exclusive `flock` on a sidecar file next to the database,
`<database file>.<key>.lease` (mode 0600, one per key), holding JSON {key,
holder, epoch, acquired_at} and read back for the next epoch; the file is kept
when the lease ends, since it holds the last epoch. The kernel drops the lock
when the holder's process dies. In-memory SQLite (`sqlite://`,
`sqlite:///:memory:`) has nothing to share: the lease is a no-op with epoch 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import stat
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import URL, Connection, create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from audit.sql_store import parse_url, redact_url
from domain.errors import PreconditionFailed, Unavailable

log = logging.getLogger(__name__)

LEASE_TABLE = "trading_lease"
LEASE_FILE_MODE = 0o600
"""The SQLite lease file is readable and writable by the service's user only."""
APPLICATION_NAME = "trading-lease"
"""The lease connection's application_name, as pg_stat_activity shows it."""

# Namespaces the advisory-lock numbers, so they do not meet other applications' locks.
_LOCK_NAMESPACE = b"trading.v1 lease\x00"
_SCHEMA_LOCK_NAME = "\x00create trading_lease"

_CREATE_TABLE = f"""CREATE TABLE {LEASE_TABLE} (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL CHECK (epoch > 0),
    acquired_at TIMESTAMPTZ NOT NULL
)"""
_TAKE_ROW = f"""INSERT INTO {LEASE_TABLE} (key, holder, epoch, acquired_at)
VALUES (:key, :holder, 1, now())
ON CONFLICT (key) DO UPDATE SET
    holder = EXCLUDED.holder, epoch = {LEASE_TABLE}.epoch + 1, acquired_at = EXCLUDED.acquired_at
RETURNING epoch, acquired_at"""
_READ_ROW = f"SELECT holder, epoch, acquired_at FROM {LEASE_TABLE} WHERE key = :key"


class LeaseHeld(PreconditionFailed):
    """Another live instance holds the lease: stop it (or wait for it to exit) first.

    `holder` is its name as it recorded it ("unknown" if it has not yet);
    `since` and `epoch` are those of its acquisition when known; `database` is
    the redacted URL of the database the lease is on.
    """

    def __init__(
        self,
        key: str,
        holder: str,
        database: str,
        *,
        since: datetime | None = None,
        epoch: int | None = None,
        where: str = "",
    ) -> None:
        when = f" since {since.astimezone(UTC).isoformat(timespec='seconds')}" if since else ""
        numbered = f" (epoch {epoch})" if epoch is not None else ""
        # repr(): a name read from the database cannot break the message onto two lines.
        super().__init__(
            f"trading lease {key!r} on {database} is held by {holder!r}{when}{numbered}{where};"
            " stop that instance, or wait for it to exit, before starting another",
            reason="LEASE_HELD",
            metadata={"key": key, "holder": holder, "database": database},
        )
        self.key = key
        self.holder = holder
        self.database = database
        self.since = since
        self.epoch = epoch


class Lease(Protocol):
    """A held trading lease. `still_held()` is False once it is released or lost."""

    @property
    def key(self) -> str: ...
    @property
    def holder(self) -> str: ...
    @property
    def epoch(self) -> int: ...

    def still_held(self) -> bool:
        """Whether the lease is still ours; cheap enough for a health check."""
        ...

    def release(self) -> None:
        """Give the lease up; idempotent."""
        ...


def default_holder(instance_id: str | None = None) -> str:
    """The name an instance holds leases under: "<hostname>:<pid>:<instance id>"."""
    return f"{socket.gethostname()}:{os.getpid()}:{instance_id or uuid.uuid4().hex[:12]}"


def advisory_lock_number(name: str) -> int:
    """The signed 64-bit number of `name`'s PostgreSQL advisory lock; stable across runs."""
    digest = hashlib.sha256(_LOCK_NAMESPACE + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def acquire_lease(database_url: str, key: str, holder: str) -> Lease:
    """Take the trading lease on `key` in the database at `database_url`.

    Raises LeaseHeld if another live instance holds it, StoreConfigError for a
    URL the audit store would refuse, Unavailable when the database (or the
    lease file's folder) cannot be reached, PreconditionFailed for a SQLite lease
    file that no longer says its last epoch.
    """
    for name, value in (("key", key), ("holder", holder)):
        if not value or not value.isprintable():
            raise ValueError(f"lease {name} must be non-empty printable text, not {value!r}")
    if _in_memory_sqlite(database_url):
        return _NoLease(key, holder)
    url = parse_url(database_url)
    shown = redact_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _FileLease.acquire(_sqlite_file(url), key, holder, shown)
    return _PostgresLease.acquire(url, key, holder, shown)


def _in_memory_sqlite(raw: str) -> bool:
    try:
        url = make_url(raw)
    except (sa_exc.ArgumentError, ValueError):
        return False  # parse_url says what is wrong with it
    if url.get_backend_name() != "sqlite":
        return False
    return not url.database or url.database == ":memory:" or url.query.get("mode") == "memory"


def _sqlite_file(url: URL) -> Path:
    assert url.database  # _in_memory_sqlite took the in-memory forms
    database = url.database
    if url.query.get("uri"):  # sqlite:///file:path?uri=true: the path between "file:" and "?"
        database = database.removeprefix("file:").partition("?")[0]
    return Path(database)


def _describe(exc: BaseException) -> str:
    """One line saying what went wrong, without SQL text or driver tracebacks."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


class _NoLease:
    """In-memory SQLite: no other process can share the database, so nothing to lock."""

    def __init__(self, key: str, holder: str) -> None:
        self.key, self.holder, self.epoch = key, holder, 1
        self._held = True

    def still_held(self) -> bool:
        return self._held

    def release(self) -> None:
        self._held = False


# --- SQLite: a locked file next to the database ----------------------------------


def lease_file(database: Path, key: str) -> Path:
    """The lease file of `key` for the SQLite database file `database`."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:64]
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return database.with_name(f"{database.name}.{readable}-{digest}.lease")


def _read_lease_file(fd: int) -> dict[str, Any] | None:
    """The JSON object at the start of the file; {} when empty, None when unreadable.

    raw_decode ignores what follows the object: a holder killed between writing a
    shorter record and truncating the file leaves the tail of the longer one.
    """
    data = os.pread(fd, 1 << 16, 0)
    if not data.strip(b"\x00 \n"):
        return {}
    try:
        found, _ = json.JSONDecoder().raw_decode(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _private(fd: int, path: Path) -> None:
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode != LEASE_FILE_MODE:
        os.fchmod(fd, LEASE_FILE_MODE)
        if mode & 0o077:
            log.warning("lease file %s was mode %o; now %o", path, mode, LEASE_FILE_MODE)


class _FileLease:
    def __init__(self, key: str, holder: str, epoch: int, fd: int) -> None:
        self.key, self.holder, self.epoch = key, holder, epoch
        self._fd: int | None = fd
        self._lock = threading.Lock()

    @classmethod
    def acquire(cls, database: Path, key: str, holder: str, shown: str) -> _FileLease:
        path = lease_file(database, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LEASE_FILE_MODE)
        except OSError as exc:
            raise Unavailable(
                f"trading lease unavailable: cannot open {str(path)!r}: {exc.strerror}"
            ) from exc
        try:
            _private(fd, path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                theirs = _read_lease_file(fd) or {}
                epoch_seen = theirs.get("epoch")
                raise LeaseHeld(
                    key,
                    str(theirs.get("holder") or "unknown"),
                    shown,
                    since=_parse_time(theirs.get("acquired_at")),
                    epoch=epoch_seen if isinstance(epoch_seen, int) else None,
                    where=f" (lease file {str(path)!r})",
                ) from None
            previous = _read_lease_file(fd)
            last = previous.get("epoch", 0) if previous is not None else None
            if not isinstance(last, int) or isinstance(last, bool) or last < 0:
                # Starting again from 1 would hand out an epoch an earlier holder had.
                raise PreconditionFailed(
                    f"trading lease file {str(path)!r} does not say its last epoch;"
                    ' restore it, or write {"epoch": N} into it, N the last epoch this'
                    " service recorded (its ServiceStarted events)",
                    reason="LEASE_FILE_UNREADABLE",
                )
            epoch = last + 1
            data = json.dumps(
                {
                    "key": key,
                    "holder": holder,
                    "epoch": epoch,
                    "acquired_at": datetime.now(UTC).isoformat(timespec="microseconds"),
                },
                ensure_ascii=False,
            ).encode()
            # Not write-new-and-rename: the lock is on this inode, which must stay.
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
            if last == 0:  # a new file: make its name durable too
                _fsync_folder(path.parent)
        except OSError as exc:
            os.close(fd)
            raise Unavailable(
                f"trading lease unavailable: cannot write {str(path)!r}: {exc.strerror}"
            ) from exc
        except BaseException:
            os.close(fd)  # drops the flock, if taken
            raise
        return cls(key, holder, epoch, fd)

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file drops the flock


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- PostgreSQL: an advisory lock on a connection of its own ---------------------


def _lease_connect_args(url: URL) -> dict[str, Any]:
    options: dict[str, Any] = {
        "connect_timeout": 2,
        "application_name": APPLICATION_NAME,
        # The connection is idle for the lease's lifetime: keepalives notice a
        # server or network that vanished, so still_held() says so within seconds.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
    }
    for name in url.query:  # options spelled out in DATABASE_URL win
        options.pop(name, None)
    return options


class _PostgresLease:
    def __init__(self, key: str, holder: str, epoch: int, connection: Connection) -> None:
        self.key, self.holder, self.epoch = key, holder, epoch
        self._connection: Connection | None = connection
        self._lock_number = advisory_lock_number(key)
        self._lock = threading.Lock()  # one statement at a time on the connection

    @classmethod
    def acquire(cls, url: URL, key: str, holder: str, shown: str) -> _PostgresLease:
        # NullPool: closing the connection closes it, and with it the session's lock.
        engine = create_engine(url, poolclass=NullPool, connect_args=_lease_connect_args(url))
        connection: Connection | None = None
        try:
            connection = engine.connect()
            number = advisory_lock_number(key)
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:number)"), {"number": number}
            ).scalar_one()
            connection.commit()  # a session lock outlives the transaction; do not idle in one
            if not taken:
                row = None
                if connection.execute(text(f"SELECT to_regclass('{LEASE_TABLE}')")).scalar():
                    row = connection.execute(text(_READ_ROW), {"key": key}).first()
                connection.rollback()
                raise LeaseHeld(
                    key,
                    row.holder if row else "unknown",
                    shown,
                    since=row.acquired_at if row else None,
                    epoch=row.epoch if row else None,
                )
            with connection.begin():
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:number)"),
                    {"number": advisory_lock_number(_SCHEMA_LOCK_NAME)},
                )
                if (
                    connection.execute(text(f"SELECT to_regclass('{LEASE_TABLE}')")).scalar()
                    is None
                ):
                    connection.execute(text(_CREATE_TABLE))
                epoch = connection.execute(
                    text(_TAKE_ROW), {"key": key, "holder": holder}
                ).scalar_one()
        except sa_exc.DBAPIError as exc:
            _close_quietly(connection)
            engine.dispose()
            raise Unavailable(
                f"trading lease unavailable: cannot take it on {shown}: {_describe(exc)}"
            ) from exc
        except BaseException:
            _close_quietly(connection)
            engine.dispose()
            raise
        return cls(key, holder, int(epoch), connection)

    def still_held(self) -> bool:
        """One round trip: the lock lives as long as its session, so a live session holds it."""
        with self._lock:
            connection = self._connection
            if connection is None:
                return False
            try:
                connection.exec_driver_sql("SELECT 1")
                connection.rollback()
            except sa_exc.DBAPIError as exc:
                log.warning("trading lease %r lost its connection: %s", self.key, _describe(exc))
                self._connection = None
                _close_quietly(connection)
                return False
            return True

    def release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is None:
                return
            # Unlock before closing: the server ends a closed session a moment
            # later, and an acquire in that moment would still find the lock taken.
            with contextlib.suppress(sa_exc.DBAPIError):
                connection.execute(
                    text("SELECT pg_advisory_unlock(:number)"), {"number": self._lock_number}
                )
                connection.commit()
            _close_quietly(connection)


def _close_quietly(connection: Connection | None) -> None:
    if connection is None:
        return
    engine = connection.engine
    with contextlib.suppress(sa_exc.SQLAlchemyError):
        connection.close()
    engine.dispose()
