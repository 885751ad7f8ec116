"""Alembic environment of the audit schema.

It is only run through audit.migrations (there is no alembic.ini): the caller
hands over an open connection, usually inside its own transaction, so the
schema change and whatever the caller does next share one transaction.
"""

from __future__ import annotations

from alembic import context

from audit.migrations import VERSION_TABLE

if context.is_offline_mode():
    raise RuntimeError("audit migrations run online only, through audit.migrations.upgrade")

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("audit migrations need a connection: use audit.migrations.upgrade(url)")

context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
