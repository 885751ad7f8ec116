"""Schema migrations of the audit log, run by Alembic from code.

The store calls `upgrade_connection` every time it opens, so a database is
always at the head revision of the code that opens it (a no-op when it already
is). The revision history lives in `versions/`; to add one:

    from alembic import command
    from audit.migrations import alembic_config
    command.revision(alembic_config(), message="add column x", rev_id="0002")

then fill in upgrade()/downgrade() of the new file. Alembic's own bookkeeping
table is `audit_alembic_version`, not `alembic_version`, so the audit schema can
share a database with other components that use Alembic.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
VERSION_TABLE = "audit_alembic_version"


def alembic_config(
    connection: Connection | None = None, *, script_location: str = SCRIPT_LOCATION
) -> Config:
    """An Alembic Config for the audit scripts; env.py migrates over `connection`."""
    config = Config()
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", script_location.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("audit migrations have no head revision")
    return head


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Migrate the database behind `connection`; the caller owns the transaction."""
    command.upgrade(alembic_config(connection), revision)


def revision_of(connection: Connection) -> str | None:
    """The revision the database is at; None before the first migration."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def use_sqlalchemy_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, emit BEGIN on a SQLite engine.

    Python's sqlite3 (before 3.12's autocommit attribute) does not begin a
    transaction before DDL, so a migration would commit statement by
    statement and a failure would leave half a schema. This is SQLAlchemy's
    documented recipe; it is harmless for other dialects, which are skipped.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the audit schema of the database at `url` to `revision` (head by default)."""
    engine = create_engine(url)
    use_sqlalchemy_transactions(engine)
    try:
        with engine.begin() as connection:
            upgrade_connection(connection, revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The audit schema revision of the database at `url`; None if it has none yet."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return revision_of(connection)
    finally:
        engine.dispose()
