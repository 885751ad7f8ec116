"""SqlAlchemyEventStore on SQLite and PostgreSQL: what only a real database can show."""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import sqlite3
import threading
import tracemalloc
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event

from audit.chain import utc_iso
from audit.migrations import (
    SCRIPT_LOCATION,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from audit.records import AuditQuery, AuditRecord
from audit.schema import metadata
from audit.sql_store import SqlAlchemyEventStore, StoreConfigError
from domain.errors import Unavailable
from tests import pg
from tests.audit.helpers import T0, OpenStore, execute_raw, is_postgres, record, tamper


def test_chain_and_seq_continue_across_reopen(store_url: str, open_store: OpenStore) -> None:
    first = open_store(store_url)
    for i in range(1, 4):
        first.append(record(i))
    first.close()

    second = open_store(store_url)
    assert second.last_seq() == 3
    fourth = second.append(record(4))
    second.append(record(5))
    second.flush()
    rows = list(second.query(AuditQuery()))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert fourth.prev_hash == rows[2].hash
    assert second.verify().ok


def test_close_commits_what_was_queued(store_url: str, open_store: OpenStore) -> None:
    # A 60 s group-commit window: nothing commits unless close() asks for it.
    store = open_store(store_url, flush_interval_s=60, batch_size=10_000)
    for i in range(1, 101):
        store.append(record(i))
    store.close()
    assert open_store(store_url).last_seq() == 100


def test_query_sees_only_committed_rows(store_url: str, open_store: OpenStore) -> None:
    store = open_store(store_url, flush_interval_s=60, batch_size=10_000)
    store.append(record(1))
    assert store.last_seq() == 1
    assert list(store.query(AuditQuery())) == []  # queued, inside the 60 s window
    store.flush()
    assert [r.seq for r in store.query(AuditQuery())] == [1]


def test_a_full_batch_commits_without_flush(store_url: str, open_store: OpenStore) -> None:
    # With a 60 s window, only a full batch can make the writer commit unasked.
    store = open_store(store_url, flush_interval_s=60, batch_size=10)
    committed: list[int] = []
    tenth = threading.Event()

    def listen(rows: Sequence[AuditRecord]) -> None:
        committed.extend(r.seq for r in rows)
        if committed[-1] == 10:
            tenth.set()

    store.add_commit_listener(listen)
    for i in range(1, 12):
        store.append(record(i))
    assert tenth.wait(30)  # a generous bound on a hang, not a timing assertion
    assert committed == list(range(1, 11))  # the 11th waits for its window
    assert [r.seq for r in store.query(AuditQuery())] == list(range(1, 11))


def _append_only_violations(url: str) -> list[str]:
    """Every mutation we can think of, through a raw driver connection; the errors."""
    statements = [
        "UPDATE audit_events SET payload = '{}' WHERE seq = 2",
        "UPDATE audit_events SET seq = seq + 100",
        "DELETE FROM audit_events WHERE seq = 3",
        # SQLite has no TRUNCATE; DELETE without WHERE is its form of it.
        "TRUNCATE audit_events" if is_postgres(url) else "DELETE FROM audit_events",
    ]
    errors = []
    for statement in statements:
        with pytest.raises((psycopg.Error, sqlite3.Error)) as caught:
            execute_raw(url, statement)
        errors.append(str(caught.value))
    return errors


def test_sqlite_runs_in_wal_mode(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "audit.db"
    open_store(f"sqlite:///{path}").close()
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


def test_sqlite_batch_spans_statements_and_keeps_time_as_hashed(
    tmp_path: Path, open_store: OpenStore
) -> None:
    # 25 parameters per statement: two rows per INSERT, so a batch of 7 takes four.
    inserts: list[str] = []

    def small_limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 25)

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO audit_events"):
            inserts.append(statement)

    event.listen(Engine, "connect", small_limit)
    event.listen(Engine, "before_cursor_execute", seen)
    try:
        path = tmp_path / "audit.db"
        store = open_store(f"sqlite:///{path}", flush_interval_s=60)
        at = T0 + timedelta(microseconds=999_998)
        appended = [
            store.append(record(i, at=at + timedelta(microseconds=i // 2))) for i in range(1, 8)
        ]  # repeated times, and the next second
        store.flush()
    finally:
        event.remove(Engine, "connect", small_limit)
        event.remove(Engine, "before_cursor_execute", seen)
    assert [statement.count("(?") for statement in inserts] == [2, 2, 2, 1]
    assert list(store.query(AuditQuery())) == appended
    assert store.verify().ok
    connection = sqlite3.connect(path)
    try:
        stored = connection.execute("SELECT recorded_at FROM audit_events ORDER BY seq").fetchall()
    finally:
        connection.close()
    assert stored == [(utc_iso(r.recorded_at),) for r in appended]


def test_database_refuses_update_delete_truncate(store_url: str, open_store: OpenStore) -> None:
    store = open_store(store_url)
    appended = [store.append(record(i)) for i in range(1, 6)]
    store.flush()
    errors = _append_only_violations(store_url)
    assert all("audit_events is append-only" in e for e in errors), errors
    assert list(store.query(AuditQuery())) == appended


@pytest.mark.parametrize(
    ("statement", "bad_seq", "reason"),
    [
        (
            'UPDATE audit_events SET payload = \'{"qty":"1000"}\' WHERE seq = 6',
            6,
            "hash mismatch: row content changed",
        ),
        (
            "UPDATE audit_events SET symbol = 'MSFT' WHERE seq = 6",
            6,
            "hash mismatch: row content changed",
        ),
        (
            "UPDATE audit_events SET caused_by = 0 WHERE seq = 6",
            6,
            "hash mismatch: row content changed",
        ),
        ("DELETE FROM audit_events WHERE seq = 6", 6, "gap: expected seq 6, found 7"),
        ("DELETE FROM audit_events WHERE seq >= 9", 9, "log ends at seq 8"),
    ],
)
def test_verify_finds_tampering_behind_the_triggers(
    store_url: str, open_store: OpenStore, statement: str, bad_seq: int, reason: str
) -> None:
    store = open_store(store_url)
    for i in range(1, 11):
        store.append(record(i))
    store.flush()
    assert store.verify().ok
    tamper(store_url, statement)
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, bad_seq)
    assert result.reason.startswith(reason)


def test_tampering_is_found_by_a_store_opened_later(store_url: str, open_store: OpenStore) -> None:
    store = open_store(store_url)
    for i in range(1, 11):
        store.append(record(i))
    store.close()
    tamper(
        store_url,
        "UPDATE audit_events SET recorded_at = "
        "(SELECT recorded_at FROM audit_events WHERE seq = 1) WHERE seq = 4",
    )
    result = open_store(store_url).verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)


def test_unreadable_tampered_row_is_a_finding_not_a_crash(
    tmp_path: Path, open_store: OpenStore
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = open_store(url)
    for i in range(1, 6):
        store.append(record(i))
    store.flush()
    tamper(url, "UPDATE audit_events SET recorded_at = 'yesterday' WHERE seq = 3")
    result = store.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert result.reason.startswith("row after seq 2 cannot be read")


def test_query_streams_instead_of_loading_everything(store_url: str, open_store: OpenStore) -> None:
    store = open_store(store_url, batch_size=5000)
    total = 20_000
    template = record(0)
    for i in range(1, total + 1):
        store.append(dataclasses.replace(template, caused_by=i))
    store.flush()
    payload_bytes = total * len(template.payload)

    rows = store.query(AuditQuery())
    lazy = inspect.isgenerator(rows)  # nothing is read before the first next()
    assert lazy
    tracemalloc.start()
    try:
        first = next(rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.seq == 1
    # Materialising 20k rows would allocate well over their payloads' size.
    assert peak < payload_bytes / 4, (peak, payload_bytes)
    if is_postgres(store_url):
        # psycopg's client-side cursor would hold the whole result in libpq
        # (invisible to tracemalloc); a server-side cursor leaves it on the server.
        with pg.connect(store_url, autocommit=True) as connection:
            queries = [
                q
                for (q,) in connection.execute(
                    "SELECT query FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
        assert any(str(q).startswith("FETCH FORWARD") for q in queries), queries
    assert sum(1 for _ in rows) == total - 1


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "",
        "postgresql+psycopg://postgres:s3cret@127.0.0.1:notaport/x",
        "mysql://postgres:s3cret@127.0.0.1/x",
        "postgresql+psycopg2://postgres@127.0.0.1/x",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_bad_url_is_a_clear_config_error(url: str) -> None:
    with pytest.raises(StoreConfigError) as caught:
        SqlAlchemyEventStore(url)
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cret" not in message
    assert "DATABASE_URL" in message


def test_unreachable_postgres_is_unavailable() -> None:
    with pytest.raises(Unavailable) as caught:
        SqlAlchemyEventStore("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x")
    message = str(caught.value)
    assert message.startswith("audit store unavailable: cannot open ")
    assert "127.0.0.1:1" in message
    assert "\n" not in message and "s3cret" not in message


def test_sqlite_file_that_cannot_exist_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(Unavailable, match="cannot create folder"):
        SqlAlchemyEventStore(f"sqlite:///{tmp_path / 'file' / 'audit.db'}")
    with pytest.raises(Unavailable, match="cannot open"):
        SqlAlchemyEventStore(f"sqlite:///{tmp_path}")  # a folder, not a database file


def test_migrations_run_at_open_and_are_idempotent(store_url: str, open_store: OpenStore) -> None:
    store = open_store(store_url)
    store.append(record(1))
    store.close()
    assert current_revision(store_url) == head_revision() == "0001"
    upgrade(store_url)  # again: nothing to do, nothing lost
    assert open_store(store_url).last_seq() == 1


def test_schema_module_matches_the_migrations(store_url: str, open_store: OpenStore) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_a_later_revision_applies_on_top(
    store_url: str, tmp_path: Path, open_store: OpenStore
) -> None:
    store = open_store(store_url)
    store.append(record(1))
    store.close()
    scripts = tmp_path / "migrations"
    shutil.copytree(SCRIPT_LOCATION, scripts)
    (scripts / "versions" / "0002_probe.py").write_text(
        '"""probe"""\n'
        "from alembic import op\n"
        "import sqlalchemy as sa\n"
        "revision = '0002'\ndown_revision = '0001'\nbranch_labels = None\n"
        "depends_on = None\n"
        "def upgrade() -> None:\n"
        "    op.create_table('audit_probe', sa.Column('id', sa.Integer, primary_key=True))\n"
        "def downgrade() -> None:\n"
        "    op.drop_table('audit_probe')\n"
    )
    engine = create_engine(store_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection, script_location=str(scripts)), "head")
    finally:
        engine.dispose()
    assert current_revision(store_url) == "0002"
    execute_raw(store_url, "INSERT INTO audit_probe (id) VALUES (1)")
    # This release only knows 0001: it must refuse to run on a newer schema.
    with pytest.raises(StoreConfigError, match="cannot migrate the audit schema"):
        SqlAlchemyEventStore(store_url)
