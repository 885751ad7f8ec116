"""Databases and stores for the audit tests.

`store_url` runs a test on SQLite (a file under tmp_path, in a folder that does
not exist yet) and on PostgreSQL (a fresh database, dropped afterwards).
`store` adds the in-memory fake, for tests of the EventStore contract that every
implementation must keep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.memory_store import InMemoryEventStore
from audit.records import EventStore
from audit.sql_store import SqlAlchemyEventStore
from domain.errors import Unavailable
from tests.audit.helpers import OpenStore
from tests.support.databases import BACKENDS, database, postgres_database


def _database(kind: str, tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    # The SQLite file is in a folder that does not exist yet: the store makes it.
    return database(kind, tmp_path / "var" / "audit.db", "audit_test")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with _database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for tests that only make sense there."""
    with postgres_database("audit_test") as url:
        yield url


@pytest.fixture
def open_store() -> Iterator[OpenStore]:
    """Open SqlAlchemyEventStores on a URL; all are closed after the test. (Ask for the
    database fixture first, so the stores close before their database is dropped.)"""
    stores: list[SqlAlchemyEventStore] = []

    def _open(url: str, **options: Any) -> SqlAlchemyEventStore:
        store = SqlAlchemyEventStore(url, **options)
        stores.append(store)
        return store

    yield _open
    for store in stores:
        with contextlib.suppress(Unavailable):  # tests that cut the database leave rows behind
            store.close()


@pytest.fixture(params=["memory", *BACKENDS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    with _database(request.param, tmp_path) as url:
        sql_store = SqlAlchemyEventStore(url, flush_timeout_s=2.0)
        try:
            yield sql_store
        finally:
            sql_store.close()
