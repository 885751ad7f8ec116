"""Throw-away PostgreSQL databases for tests.

Tests use the real server the project's machines run on 127.0.0.1:5432 (trust
auth, user postgres). Each caller gets a fresh database with a unique name and
drops it afterwards. Without a server, `require_postgres()` skips the test with
the reason; with REQUIRE_POSTGRES=1 (set by CI) it fails it instead, so a
broken CI database cannot pass as a green run.
"""

from __future__ import annotations

import functools
import os
import uuid

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=HOST, port=PORT, user=USER, dbname="postgres", connect_timeout=2, autocommit=True
    )


@functools.cache
def postgres_error() -> str | None:
    """Why the server cannot be used, or None when it answers. Asked once per run."""
    try:
        with _admin() as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return None


def postgres_available() -> bool:
    return postgres_error() is None


def require_postgres() -> None:
    """Skip the calling test without a server; fail it if REQUIRE_POSTGRES=1."""
    error = postgres_error()
    if error is None:
        return
    message = f"PostgreSQL not reachable on {HOST}:{PORT}: {error}"
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def create_database(prefix: str = "test") -> str:
    """Create an empty database; return its SQLAlchemy URL (postgresql+psycopg://...)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{name}"


def drop_database(url: str) -> None:
    """Drop the database `url` names, disconnecting anyone still using it."""
    name = make_url(url).database
    assert name, f"no database in {url!r}"
    with _admin() as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A plain psycopg connection to the database `url` names, bypassing SQLAlchemy."""
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host or HOST,
        port=parsed.port or PORT,
        user=parsed.username or USER,
        dbname=parsed.database,
        connect_timeout=2,
        autocommit=autocommit,
    )


def with_port(url: str, port: int) -> str:
    """`url` reached through another port, e.g. a tests.tcp_proxy.TcpProxy in front."""
    return make_url(url).set(port=port).render_as_string(hide_password=False)
