"""The audit databases a test runs on: a SQLite file, or a throw-away PostgreSQL
database (made and dropped by `tests.pg`).

The service and the audit store must behave the same on both, so their database
fixtures are parametrized over BACKENDS; without a PostgreSQL server the
"postgres" case is skipped (or failed, with REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests import pg

# Fixture params: every database kind the service supports.
BACKENDS: Final = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database named `prefix_<random>`, dropped afterwards."""
    pg.require_postgres()
    url = pg.create_database(prefix)
    try:
        yield url
    finally:
        pg.drop_database(url)


@contextlib.contextmanager
def database(kind: str, sqlite_file: Path, prefix: str) -> Iterator[str]:
    """The URL of an empty audit database of `kind`: "sqlite" (at `sqlite_file`,
    created on first use) or "postgres" (see `postgres_database`)."""
    if kind == "sqlite":
        yield f"sqlite:///{sqlite_file}"
        return
    with postgres_database(prefix) as url:
        yield url
