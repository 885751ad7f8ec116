"""The README's PostgreSQL grants: a service running as a role given only them
trades, and that role cannot rewrite the audit log.

The SQL is the README's block, run as written but for two names: the database
(`trading`) and the role (`trading_app`) get names of the test's own, since a
cluster may hold a real `trading` database, and roles belong to the whole cluster.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests import pg
from tests.conftest import StartService
from tests.support.databases import postgres_database
from tests.support.market import ticks

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.postgres


def readme_grants() -> str:
    text = README.read_text()
    start = text.index("```sql\n") + len("```sql\n")
    return text[start : text.index("```", start)]


@pytest.fixture
def app_role() -> Iterator[str]:
    pg.require_postgres()
    role = f"trading_app_{uuid.uuid4().hex[:8]}"
    yield role
    with psycopg.connect(host=pg.HOST, port=pg.PORT, user=pg.USER, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_service_with_the_readme_grants_trades_and_cannot_rewrite_the_log(
    start_service: StartService, app_role: str
) -> None:
    with postgres_database("readme_grants") as owner_url:
        database = make_url(owner_url).database
        assert database is not None
        # The owner's first start runs the migrations and makes the lease table.
        start_service(database_url=owner_url).stop()
        statements = re.sub(r"\btrading_app\b", app_role, readme_grants())
        statements = re.sub(r"\bDATABASE trading\b", f'DATABASE "{database}"', statements)
        with pg.connect(owner_url, autocommit=True) as owner:
            owner.execute(statements.encode())
        app_url = make_url(owner_url).set(username=app_role).render_as_string(False)

        try:
            running = start_service(database_url=app_url)
            summary = running.client.stream_market_data([ticks("SPY", [100.0, 100.5])])
            placed = running.client.submit_order("SPY", "buy", 3, reason="as the app role")
            assert summary.events_accepted == 2
            assert placed.decision.approved
            assert running.client.verify_audit().ok
            running.stop()
            with pg.connect(app_url, autocommit=True) as app:
                for forbidden in (
                    "UPDATE audit_events SET payload = payload",
                    "DELETE FROM audit_events",
                    "TRUNCATE audit_events",
                    "DROP TABLE audit_events",
                    "CREATE TABLE shadow (x int)",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        app.execute(forbidden.encode())
        finally:
            with pg.connect(owner_url, autocommit=True) as owner:
                owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(app_role)))
