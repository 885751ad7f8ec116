"""audit_events: the hash-chained log, its indexes, and the append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The table is spelled out here rather than imported from audit.schema: a
revision must keep creating exactly what it created when it was written,
whatever the current schema module says.

The triggers make the database itself refuse UPDATE, DELETE and (on
PostgreSQL) TRUNCATE, whoever the client is. The table owner or a superuser
can still disable them; the hash chain is what exposes that (verify()).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_KEY_INDEXES = ("event_type", "symbol", "order_id", "idea_id")

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"""
    for verb in ("UPDATE", "DELETE")
]

_POSTGRES_TRIGGERS = [
    """CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP;
    END
    $$""",
    """CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
    # TRUNCATE fires no row triggers, so it needs its own statement-level one.
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "audit_events",
        # INTEGER on SQLite makes seq the rowid instead of a second index.
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        # SQLite has no time type: fixed-width UTC ISO text (see audit.schema.UtcDateTime).
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite"),
            nullable=False,
        ),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("caused_by", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("idea_id", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.CHAR(64), nullable=False),
        sa.Column("hash", sa.CHAR(64), nullable=False),
    )
    op.create_index("ix_audit_events_recorded_at", "audit_events", ["recorded_at"])
    for key in _KEY_INDEXES:
        op.create_index(f"ix_audit_events_{key}_seq", "audit_events", [key, "seq"])
    statements = _SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else _POSTGRES_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    # Dropping the table drops its triggers and indexes with it.
    op.drop_table("audit_events")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION audit_events_append_only()")
